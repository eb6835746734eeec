"""``Zart``: the engine object users create, and the handles it returns."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from zart._context import current_execution
from zart._durable import DurableFunction, lookup
from zart._errors import (
    DatabaseUnavailableError,
    ExecutionCancelledError,
    ExecutionNotFoundError,
    LeaseLostError,
    SerializationError,
    TaskError,
    ZartError,
)
from zart._execution import ExecutionContext, Suspend
from zart._failures import encode_error, task_error
from zart._info import ExecutionStatus, StepInfo
from zart._owner import current_owner
from zart._storage import TERMINAL_STATUSES, ExecutionRecord, SqlStorage, open_storage
from zart._storage._base import _NotFound, _RaceLost
from zart._storage._records import CANCELLED, COMPLETED, FAILED, SLEEPING, WAITING
from zart._tracing import Tracing

if TYPE_CHECKING:
    from zart._ops.admin import AuditEntry
    from zart._worker import Worker

R = TypeVar("R")
log = logging.getLogger("zart")

DEFAULT_DATABASE_URL = "sqlite:///zart.db"


def _new_token() -> str:
    return current_owner().new_token()


def _deadline_error(execution_id: str, timeout: float) -> TaskError:
    return TaskError(
        f"execution exceeded its deadline ({timeout:g} s after it was created)",
        execution_id=execution_id,
        error_type="DeadlineExceeded",
    )


# BaseExceptionGroup (Python 3.11+); nothing to catch on 3.10.
_EXCEPTION_GROUPS: Any = getattr(builtins, "BaseExceptionGroup", ())


def _merged_suspend(group: BaseException) -> Suspend | None:
    """One Suspend for a group made only of Suspends (parallel sleeps/waits): wake at the
    earliest wake time; None if the group holds anything else."""
    leaves: list[BaseException] = []
    pending = [group]
    while pending:
        exc = pending.pop()
        inner = getattr(exc, "exceptions", None)
        if isinstance(exc, _EXCEPTION_GROUPS) and inner is not None:
            pending.extend(inner)
        else:
            leaves.append(exc)
    if not leaves or not all(isinstance(e, Suspend) for e in leaves):
        return None
    suspends = [e for e in leaves if isinstance(e, Suspend)]
    times = [s.wake_at for s in suspends if s.wake_at is not None]
    status = WAITING if any(s.status == WAITING for s in suspends) else SLEEPING
    return Suspend(status, min(times) if times else None)


class _Outcome:
    """What one local run of a body ended with (None fields: it did not end here)."""

    __slots__ = ("error", "finished", "result")

    def __init__(self, finished: bool, result: Any = None, error: BaseException | None = None):
        self.finished = finished
        self.result = result
        self.error = error


class ExecutionHandle:
    """A started execution. ``await handle.result()`` waits for it, wherever it runs."""

    def __init__(self, app: Zart, durable: DurableFunction[Any, Any], execution_id: str) -> None:
        self.app = app
        self.durable = durable
        self.execution_id = execution_id
        self._task: asyncio.Task[Any] | None = None

    async def result(self, timeout: float | None = None) -> Any:
        """The execution's result.

        Raises TaskError if it failed (ExecutionCancelledError if it was cancelled).
        """
        if timeout is None:
            return await self._result()
        return await asyncio.wait_for(self._result(), timeout)

    async def _result(self) -> Any:
        if self._task is not None:
            return await asyncio.shield(self._task)
        return await self.app._drive_until_done(self.durable, self.execution_id)

    def status(self) -> ExecutionStatus:
        return self.app.status(self.execution_id)

    def __repr__(self) -> str:
        return f"<ExecutionHandle {self.execution_id!r} ({self.durable.name})>"


class Zart:
    """The durable-execution engine, bound to one database.

    ``database_url`` defaults to ``$ZART_DATABASE_URL``, else ``sqlite:///zart.db``.
    Nothing connects until first use, so creating one at import time is cheap.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        strict: bool = False,
        lease_seconds: float = 30.0,
        tracing: Any = False,
    ) -> None:
        self.database_url = (
            database_url or os.environ.get("ZART_DATABASE_URL") or DEFAULT_DATABASE_URL
        )
        self.strict = strict
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.lease_seconds = lease_seconds
        self._storage: SqlStorage | None = None
        self._storage_lock = threading.Lock()
        self._active: dict[str, ExecutionContext] = {}
        self._heartbeat: threading.Thread | None = None
        self._closing = threading.Event()
        # OpenTelemetry spans: True (global provider) or a TracerProvider; off when falsy.
        self._tracing: Tracing | None = None
        if tracing:
            self._tracing = Tracing(None if tracing is True else tracing)

    # ------------------------------------------------------------------ plumbing

    @property
    def storage(self) -> SqlStorage:
        if self._storage is None:
            with self._storage_lock:
                if self._storage is None:
                    self._storage = open_storage(self.database_url)
        return self._storage

    def close(self) -> None:
        """Stop the lease heartbeat and close database connections."""
        self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None
        self._closing.clear()

    def __enter__(self) -> Zart:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="zart-lease-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _heartbeat_loop(self) -> None:
        # A thread, not an asyncio task: a step that blocks the event loop must not
        # let the lease lapse and invite a second worker to run the same execution.
        interval = max(0.05, self.lease_seconds / 3)
        while not self._closing.wait(interval):
            tokens = list(self._active)
            if not tokens:
                continue
            try:
                lost = self.storage.renew_leases(tokens, self.lease_seconds)
            except Exception as exc:  # database briefly unreachable: try again next beat
                log.warning("could not renew leases: %s", exc)
                continue
            for token in lost:
                ctx = self._active.get(token)
                if ctx is not None and ctx.stop is None:
                    try:
                        ctx.lost()
                    except Exception:
                        ctx.stop = LeaseLostError(f"lease on {ctx.execution_id!r} lost")

    @staticmethod
    def _resolve(fn: DurableFunction[Any, Any] | str) -> DurableFunction[Any, Any]:
        if isinstance(fn, DurableFunction):
            return fn
        if isinstance(fn, str):
            return lookup(fn)
        raise TypeError(f"expected a @durable function or its name, got {fn!r}")

    # ------------------------------------------------------------------ starting

    def _create(
        self,
        durable: DurableFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
        parent_id: str | None = None,
    ) -> str:
        if current_execution.get() is not None and parent_id is None:
            raise ZartError(
                "starting an execution from inside a durable body is not journaled; "
                "use `await zart.run_child(fn, ..., name=...)` instead"
            )
        execution_id = execution_id if execution_id is not None else uuid.uuid4().hex
        if not isinstance(execution_id, str) or not execution_id:
            raise ZartError(f"execution_id must be a non-empty string, got {execution_id!r}")
        try:
            input_json = durable.args_codec.dumps(args, kwargs)
        except SerializationError as exc:
            raise SerializationError(f"cannot store the input of {durable.name!r}: {exc}") from None
        try:
            rec, _created = self.storage.create_execution(
                execution_id, durable.name, input_json, parent_id
            )
        except _RaceLost:
            found = self.storage.get_execution(execution_id)
            assert found is not None
            rec = found
        if rec.durable_name != durable.name:
            raise ZartError(
                f"execution id {execution_id!r} already belongs to durable {rec.durable_name!r}, "
                f"not {durable.name!r}; use another id"
            )
        return execution_id

    def run(
        self,
        fn: DurableFunction[Any, R] | str,
        /,
        *args: Any,
        execution_id: str | None = None,
        **kwargs: Any,
    ) -> R:
        """Start (or resume, or look up) an execution and wait for its result.

        With an ``execution_id`` that exists already, nothing runs twice: a
        completed execution returns its stored result, a failed one raises its
        stored error, and an incomplete one is resumed from its last checkpoint
        (with its stored input) once its previous owner is gone.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ZartError(
                "Zart.run() blocks, so it cannot be called from a running event loop; "
                "use `handle = await app.start(...)` and `await handle.result()`"
            )
        durable = self._resolve(fn)
        eid = self._create(durable, args, kwargs, execution_id)
        result: R = asyncio.run(self._drive_until_done(durable, eid))
        return result

    async def start(
        self,
        fn: DurableFunction[Any, R] | str,
        /,
        *args: Any,
        execution_id: str | None = None,
        **kwargs: Any,
    ) -> ExecutionHandle:
        """Start (or attach to) an execution in the background of the running loop."""
        durable = self._resolve(fn)
        eid = self._create(durable, args, kwargs, execution_id)
        handle = ExecutionHandle(self, durable, eid)
        handle._task = asyncio.ensure_future(self._drive_until_done(durable, eid))
        return handle

    def handle(self, execution_id: str) -> ExecutionHandle:
        """A handle on an existing execution (its durable function must be imported)."""
        rec = self._get(execution_id)
        return ExecutionHandle(self, self._resolve(rec.durable_name), execution_id)

    # ------------------------------------------------------------------ driving

    async def _drive_until_done(self, durable: DurableFunction[Any, Any], execution_id: str) -> Any:
        delay = 0.01
        storage = self.storage
        while True:
            rec = storage.get_execution(execution_id)
            if rec is None:
                raise ExecutionNotFoundError(f"execution {execution_id!r} disappeared")
            if rec.status in TERMINAL_STATUSES:
                return self._outcome(durable, rec)
            token = _new_token()
            claimed = storage.try_claim(execution_id, token, self.lease_seconds)
            if claimed is not None:
                outcome = await self._execute(durable, claimed, token)
                if outcome.finished:
                    if outcome.error is not None:
                        raise outcome.error
                    return outcome.result
                delay = 0.01
                continue
            # Someone else runs it (or it sleeps): wait, and take over if its owner dies.
            wait = delay
            if rec.status in (SLEEPING, WAITING) and rec.wake_at is not None:
                # Wake on time rather than up to one poll interval late.
                wait = min(delay, max(rec.wake_at - time.time() + 0.005, 0.02))
            await asyncio.sleep(wait)
            delay = min(delay * 1.5, 0.5)

    def _outcome(self, durable: DurableFunction[Any, Any], rec: ExecutionRecord) -> Any:
        if rec.status == COMPLETED:
            try:
                return durable.result_codec.loads(rec.result or "null")
            except SerializationError as exc:
                raise SerializationError(
                    f"cannot read the stored result of execution {rec.id!r}: {exc}"
                ) from None
        if rec.status == CANCELLED:
            raise ExecutionCancelledError("execution was cancelled", execution_id=rec.id)
        raise task_error(rec.id, rec.error)

    async def _fail(
        self, durable: DurableFunction[Any, Any], eid: str, token: str, exc: BaseException
    ) -> _Outcome:
        """Record a failed execution (fenced) and build the error its caller sees.

        The durable's ``on_failure`` hook may turn the failure into a fallback result.
        """
        encoded = encode_error(exc)
        if durable.on_failure is not None:
            try:
                fallback = durable.on_failure(task_error(eid, encoded, cause=exc))
                if inspect.isawaitable(fallback):
                    fallback = await fallback
                result_json = durable.result_codec.dumps(fallback)
            except Exception as hook_exc:
                log.warning("on_failure hook of %s raised %r; the execution fails", eid, hook_exc)
            else:
                if not self.storage.finish_execution(eid, token, COMPLETED, result_json, None):
                    return _Outcome(False)
                log.info("execution %s failed (%s) and on_failure gave a fallback result", eid, exc)
                return _Outcome(True, result=fallback)
        if not self.storage.finish_execution(eid, token, FAILED, None, encoded):
            return _Outcome(False)  # not ours any more: the new owner decides the outcome
        log.info("execution %s failed: %s: %s", eid, type(exc).__name__, exc)
        return _Outcome(True, error=task_error(eid, encoded, cause=exc))

    @staticmethod
    async def _run_body(
        durable: DurableFunction[Any, Any],
        rec: ExecutionRecord,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if durable.timeout is None:
            return await durable.fn(*args, **kwargs)
        remaining = rec.created_at + durable.timeout - time.time()
        if remaining <= 0:
            raise _deadline_error(rec.id, durable.timeout)
        try:
            return await asyncio.wait_for(durable.fn(*args, **kwargs), remaining)
        except asyncio.TimeoutError:
            if time.time() < rec.created_at + durable.timeout - 0.001:
                raise  # a timeout inside the body, not ours
            raise _deadline_error(rec.id, durable.timeout) from None

    def _suspend(
        self, durable: DurableFunction[Any, Any], rec: ExecutionRecord, token: str, suspend: Suspend
    ) -> None:
        wake_at = suspend.wake_at
        if durable.timeout is not None:
            # Wake at the deadline at the latest, so a sleep or wait that outlasts
            # it fails the execution on time instead of never (or late).
            deadline = rec.created_at + durable.timeout
            wake_at = deadline if wake_at is None else min(wake_at, deadline)
        self.storage.suspend_execution(rec.id, token, suspend.status, wake_at)
        log.info("execution %s is %s", rec.id, suspend.status)

    async def _traced_body(
        self,
        durable: DurableFunction[Any, Any],
        rec: ExecutionRecord,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: ExecutionContext,
    ) -> Any:
        assert self._tracing is not None
        with self._tracing.execution(durable.name, rec.id, rec.attempts) as span:
            try:
                return await self._run_body(durable, rec, args, kwargs)
            except Suspend as suspend:
                span.set_attribute("zart.suspended", suspend.status)
                raise
            except Exception as exc:
                self._tracing.fail(span, exc)
                raise
            finally:
                span.set_attribute("zart.steps.executed", ctx.executed)
                span.set_attribute("zart.steps.replayed", ctx.replayed)

    async def _execute(
        self, durable: DurableFunction[Any, Any], rec: ExecutionRecord, token: str
    ) -> _Outcome:
        """Run the body once under the lease ``token``; record how it ended."""
        storage = self.storage
        eid = rec.id
        if rec.attempts > durable.max_recoveries:
            limit = TaskError(
                f"execution was started {rec.attempts - 1} times without finishing "
                f"(max_recoveries={durable.max_recoveries}); a step may be crashing its process",
                execution_id=eid,
                error_type="RecoveryLimitExceeded",
            )
            return await self._fail(durable, eid, token, limit)
        try:
            args, kwargs = durable.args_codec.loads(rec.input)
        except SerializationError as exc:
            return await self._fail(
                durable, eid, token, SerializationError(f"cannot read the stored input: {exc}")
            )
        ctx = ExecutionContext(
            storage,
            eid,
            token,
            storage.load_steps(eid),
            strict=self.strict if durable.strict is None else durable.strict,
            app=self,
            tracing=self._tracing,
        )
        self._active[token] = ctx
        self._ensure_heartbeat()
        cv = current_execution.set(ctx)
        released = True
        log.info("execution %s (%s) started, attempt %d", eid, durable.name, rec.attempts)
        try:
            try:
                if self._tracing is None:
                    result = await self._run_body(durable, rec, args, kwargs)
                else:
                    result = await self._traced_body(durable, rec, args, kwargs, ctx)
            except Suspend as suspend:
                self._suspend(durable, rec, token, suspend)
                return _Outcome(False)
            except _EXCEPTION_GROUPS as group:
                # Sleeps or waits in several tasks of an asyncio.TaskGroup.
                merged = _merged_suspend(group)
                if merged is None:
                    raise
                self._suspend(durable, rec, token, merged)
                return _Outcome(False)
            except (LeaseLostError, ExecutionCancelledError) as exc:
                if ctx.stop is None:
                    raise
                log.info("execution %s stopped: %s", eid, exc)
                if isinstance(exc, ExecutionCancelledError):
                    return _Outcome(True, error=exc)
                return _Outcome(False)
            except Exception as exc:
                if ctx.stop is not None:
                    if isinstance(ctx.stop, DatabaseUnavailableError):
                        # An outage is not the execution's failure: hand it back so it
                        # is resumed (by us or another worker) once the database is back.
                        with contextlib.suppress(Exception):
                            storage.release(eid, token)
                    return _Outcome(False)
                return await self._fail(durable, eid, token, exc)
            try:
                result_json = durable.result_codec.dumps(result)
            except SerializationError as exc:
                msg = f"the result of {durable.name!r} cannot be stored: {exc}"
                return await self._fail(durable, eid, token, SerializationError(msg))
            if storage.finish_execution(eid, token, COMPLETED, result_json, None):
                log.info(
                    "execution %s completed (%d steps run, %d replayed)",
                    eid,
                    ctx.executed,
                    ctx.replayed,
                )
                return _Outcome(True, result=result)
            raise ctx.lost()
        except LeaseLostError:
            return _Outcome(False)
        except ExecutionCancelledError as exc:
            return _Outcome(True, error=exc)
        except BaseException:
            # Interrupted (Ctrl-C, task cancelled at shutdown): hand the execution back so
            # the next `run` or worker resumes it at once instead of after the lease.
            released = False
            raise
        finally:
            current_execution.reset(cv)
            self._active.pop(token, None)
            if not released:
                with contextlib.suppress(Exception):
                    storage.release(eid, token)

    # ------------------------------------------------------------------ inspecting

    def _get(self, execution_id: str) -> ExecutionRecord:
        rec = self.storage.get_execution(execution_id)
        if rec is None:
            raise ExecutionNotFoundError(
                f"no execution with id {execution_id!r} in {self.database_url}"
            )
        return rec

    def status(self, execution_id: str) -> ExecutionStatus:
        """Status, times, attempts and error of one execution."""
        return ExecutionStatus.from_record(self._get(execution_id))

    def steps(self, execution_id: str) -> list[StepInfo]:
        """The step history of one execution, in call order."""
        self._get(execution_id)
        records = sorted(
            self.storage.load_steps(execution_id).values(), key=lambda r: (r.seq, r.step_name)
        )
        return [StepInfo.from_record(r) for r in records]

    def list(
        self,
        status: str | None = None,
        durable_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionStatus]:
        """Executions, newest first."""
        return [
            ExecutionStatus.from_record(r)
            for r in self.storage.list_executions(status, durable_name, limit, offset)
        ]

    def result(self, execution_id: str) -> Any:
        """The stored result of a finished execution (raises TaskError if it failed)."""
        rec = self._get(execution_id)
        if rec.status not in TERMINAL_STATUSES:
            raise ZartError(f"execution {execution_id!r} has not finished (status {rec.status})")
        return self._outcome(self._resolve(rec.durable_name), rec)

    def cancel(self, execution_id: str) -> bool:
        """Cancel an execution. True if it was cancelled now, False if it had already finished."""
        rec, changed = self.storage.cancel(execution_id)
        if rec is None:
            raise ExecutionNotFoundError(
                f"no execution with id {execution_id!r} in {self.database_url}"
            )
        return changed

    def send_event(self, execution_id: str, name: str, payload: Any = None) -> None:
        """Deliver event ``name`` to an execution.

        The event is kept until the execution's ``wait_for_event(name)`` takes it,
        so sending before the wait is reached loses nothing.
        """
        try:
            text = json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"event {name!r} payload of type {type(payload).__name__} "
                f"is not JSON-serializable: {exc}"
            ) from None
        try:
            rec = self.storage.add_event(execution_id, name, text)
        except _NotFound:
            raise ExecutionNotFoundError(
                f"no execution with id {execution_id!r} in {self.database_url}"
            ) from None
        if rec.status in TERMINAL_STATUSES:
            log.warning(
                "event %r sent to execution %s, which is already %s", name, execution_id, rec.status
            )

    # ------------------------------------------------------------------ workers

    @staticmethod
    def _new_token_for_worker() -> str:
        return _new_token()

    def worker(
        self,
        *,
        concurrency: int = 8,
        durable_names: Sequence[str] | None = None,
        poll_interval: float = 0.5,
    ) -> Worker:
        """A worker that claims and runs every runnable execution of the registered durables."""
        from zart._worker import Worker

        names = list(durable_names) if durable_names is not None else None
        return Worker(
            self, concurrency=concurrency, durable_names=names, poll_interval=poll_interval
        )

    # ------------------------------------------------------------------ operations

    def retry_step(
        self, execution_id: str, step_name: str | None = None, *, actor: str | None = None
    ) -> ExecutionStatus:
        """Retry the failed step of a failed execution: its failed checkpoint is removed and
        the execution goes back to pending, so a worker (or ``run``) resumes it at that step.
        ``actor`` (default: the OS user) is recorded in the audit log."""
        from zart._ops import admin

        return admin.retry_step(self, execution_id, step_name, actor=actor)

    def restart(
        self,
        execution_id: str,
        *args: Any,
        new_id: str | None = None,
        actor: str | None = None,
        **kwargs: Any,
    ) -> ExecutionStatus:
        """Run a finished execution again from the start. With no arguments it keeps its
        input; given arguments replace it. Same id (checkpoints cleared) unless ``new_id``."""
        from zart._ops import admin

        given = bool(args or kwargs)
        return admin.restart(
            self,
            execution_id,
            args=args if given else None,
            kwargs=kwargs if given else None,
            new_id=new_id,
            actor=actor,
        )

    def rerun_from(
        self, execution_id: str, step_name: str, *, actor: str | None = None
    ) -> ExecutionStatus:
        """Re-run a finished execution from ``step_name`` on, keeping the checkpoints before it."""
        from zart._ops import admin

        return admin.rerun_from(self, execution_id, step_name, actor=actor)

    def audit_log(
        self, execution_id: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """Who retried, restarted or re-ran what, and when; newest first."""
        from zart._ops import admin

        return admin.audit_log(self, execution_id, limit)
