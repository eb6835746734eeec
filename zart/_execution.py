"""One run of a durable body: replays checkpoints, runs new steps, writes checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zart._context import current_step, current_transaction
from zart._errors import (
    DatabaseUnavailableError,
    DuplicateStepError,
    ExecutionCancelledError,
    LeaseLostError,
    ReplayMismatchError,
    SerializationError,
    StepError,
    StepTimeoutError,
)
from zart._failures import encode_error, step_error_from_record
from zart._serde import fingerprint
from zart._storage import SqlStorage, StepRecord
from zart._storage._records import (
    CANCELLED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRYING,
)

if TYPE_CHECKING:
    from zart._engine import Zart
    from zart._step import StepCall
    from zart._tracing import Tracing

log = logging.getLogger("zart")


def _site(site: tuple[str, int] | None) -> str:
    if site is None:
        return "an unknown place"
    filename, line = site
    with contextlib.suppress(ValueError):  # another drive on Windows
        filename = os.path.relpath(filename)
    return f"{filename}:{line}"


class Suspend(BaseException):
    """Unwinds a durable body that must wait (timer, event): the engine releases the
    execution with ``status`` and ``wake_at``; a later run replays up to here.

    A BaseException so that a body's ``except Exception`` cannot swallow it.
    """

    def __init__(self, status: str, wake_at: float | None) -> None:
        super().__init__(status, wake_at)
        self.status = status
        self.wake_at = wake_at


class ExecutionContext:
    """State of one run of one execution, shared by every step call in it."""

    def __init__(
        self,
        storage: SqlStorage,
        execution_id: str,
        token: str,
        checkpoints: dict[str, StepRecord],
        *,
        strict: bool,
        app: Zart | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.storage = storage
        self.execution_id = execution_id
        self.token = token
        self.checkpoints = checkpoints
        self.strict = strict
        # name -> call site of every name used by this run (duplicate guard).
        self.used: dict[str, tuple[str, int] | None] = {}
        self.seq = 0
        # Set from the heartbeat thread when the lease is lost or the execution cancelled.
        self.stop: BaseException | None = None
        self.replayed = 0
        self.executed = 0

    # ------------------------------------------------------------------ naming

    def claim_name(self, name: str, site: tuple[str, int] | None) -> int:
        """Register one use of ``name`` in this run; returns its call order."""
        if name in self.used:
            first = self.used[name]
            raise DuplicateStepError(
                f"step name {name!r} was already used in this run of execution "
                f"{self.execution_id!r} (first at {_site(first)}, again at {_site(site)}). "
                "A second call under the same name would silently return the first call's "
                "stored result. Give every call a unique name: put a parameter that changes "
                'per iteration in the step\'s template, e.g. @step("process-item-{index}"), '
                'or name the call site, e.g. .named(f"' + name + '-{i}").'
            )
        self.used[name] = site
        self.seq += 1
        return self.seq

    def check_stop(self) -> None:
        if self.stop is not None:
            raise self.stop

    def lost(self) -> BaseException:
        """Why a fenced write was refused: the execution was cancelled, or its lease lost."""
        rec = self.storage.get_execution(self.execution_id)
        if rec is not None and rec.status == CANCELLED:
            err: BaseException = ExecutionCancelledError(
                "execution was cancelled", execution_id=self.execution_id
            )
        else:
            if rec is None:
                holder = "it was deleted"
            elif rec.lease_owner:
                holder = f"now owned by {rec.lease_owner}"
            else:
                holder = f"now {rec.status}, released by another worker"
            err = LeaseLostError(
                f"execution {self.execution_id!r} is no longer held by this process "
                f"({holder}); this process stops running it"
            )
        self.stop = err
        return err

    def save(self, record: StepRecord) -> None:
        try:
            saved = self.storage.save_step(self.token, record)
        except DatabaseUnavailableError as exc:
            # Not the body's failure: the execution must be handed back, not failed,
            # even if user code catches this exception.
            self.stop = exc
            raise
        if not saved:
            raise self.lost()

    # ------------------------------------------------------------------ replay drift

    def check_drift(
        self, name: str, stored: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if stored is None:
            return
        now = fingerprint(args, kwargs)
        if now == stored:
            return
        message = (
            f"replay drift in execution {self.execution_id!r}: step {name!r} completed earlier "
            "with different arguments; its stored result is returned. Usually the data fed to "
            "it was read outside a step (fetch it inside a step so replay sees the same data)."
        )
        if self.strict:
            raise ReplayMismatchError(message)
        log.warning(message)

    # ------------------------------------------------------------------ steps

    async def run_step(self, call: StepCall[Any]) -> Any:
        name = call.name
        seq = self.claim_name(name, call.site)
        step = call.step
        rec = self.checkpoints.get(name)
        attempts = 0
        if rec is not None:
            if rec.status == STEP_COMPLETED:
                self.check_drift(name, rec.fingerprint, call.args, call.kwargs)
                self.replayed += 1
                try:
                    return step.codec.loads(rec.output or "null")
                except SerializationError as exc:
                    raise SerializationError(
                        f"cannot read the stored result of step {name!r}: {exc}"
                    ) from None
            if rec.status == STEP_FAILED:
                self.replayed += 1
                raise step_error_from_record(name, rec.error)
            attempts = rec.attempts  # retrying: a crash does not reset the count
        self.check_stop()

        def record(status: str, output: str | None, error: str | None, done: bool) -> StepRecord:
            return StepRecord(
                self.execution_id, name, seq, "step", status, fp, output, error,
                attempts, started, time.time() if done else None,
            )  # fmt: skip

        fp = fingerprint(call.args, call.kwargs)
        started = time.time()
        policy = call.retry
        while True:
            attempts += 1
            token = current_step.set(name)
            try:
                if self.tracing is not None:
                    with self.tracing.step(name, self.execution_id, attempts):
                        if step.transactional:
                            return await self._run_transactional(call, record)
                        result = await call._invoke_once()
                elif step.transactional:
                    return await self._run_transactional(call, record)
                else:
                    result = await call._invoke_once()
            except _Unretryable as fatal:
                raise fatal.error from None
            except Exception as exc:
                if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, StepTimeoutError):
                    exc = StepTimeoutError(f"step {name!r} timed out after {call.timeout} s")
                error = encode_error(exc, step_name=name)
                if policy.should_retry(exc, attempts):
                    self.save(record(STEP_RETRYING, None, error, done=False))
                    delay = policy.delay(attempts)
                    log.info(
                        "step %r attempt %d failed (%s); retry in %.2fs", name, attempts, exc, delay
                    )
                    await asyncio.sleep(delay)
                    self.check_stop()
                    continue
                self.save(record(STEP_FAILED, None, error, done=True))
                raise _as_step_error(name, exc) from exc
            finally:
                current_step.reset(token)
            self.save(record(STEP_COMPLETED, self._encode(call, result), None, done=True))
            self.executed += 1
            return result

    @staticmethod
    def _encode(call: StepCall[Any], result: Any) -> str:
        try:
            return call.step.codec.dumps(result)
        except SerializationError as exc:
            raise SerializationError(
                f"step {call.name!r} returned a value that cannot be stored: {exc}"
            ) from None

    async def _run_transactional(
        self, call: StepCall[Any], record: Callable[[str, str | None, str | None, bool], StepRecord]
    ) -> Any:
        """Body and checkpoint in one transaction: both commit, or neither does."""
        try:
            with self.storage.transaction() as conn:
                tx = current_transaction.set(conn)
                try:
                    result = await call._invoke_once()
                finally:
                    current_transaction.reset(tx)
                try:
                    output = self._encode(call, result)
                except SerializationError as exc:
                    raise _Unretryable(exc) from None
                checkpoint = record(STEP_COMPLETED, output, None, True)
                if not self.storage.save_step_on(conn, self.token, checkpoint):
                    raise _LeaseRefused  # leaving the block rolls the body's writes back
        except _LeaseRefused:
            raise _Unretryable(self.lost()) from None
        self.executed += 1
        return result


class _LeaseRefused(Exception):
    pass


class _Unretryable(Exception):
    """Carries an error out of the retry loop untouched (not a step failure)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _as_step_error(name: str, exc: BaseException) -> StepError:
    if isinstance(exc, StepError):
        return StepError(
            exc.message,
            retryable=exc.retryable,
            details=exc.details,
            step_name=name,
            error_type=exc.error_type,
        )
    return StepError(str(exc), retryable=False, step_name=name, error_type=type(exc).__name__)
