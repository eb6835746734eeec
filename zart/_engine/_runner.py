"""The execution runner: claim, replay, run, checkpoint, finish.

``Runner.drive_until_done`` takes an execution to its end from any process: it
claims it when it is runnable, runs the body once per claim (``execute``) and
otherwise waits for its owner, taking over if that owner dies. ``execute`` runs
one claim: it replays the journal, runs new steps (each checkpointed by the
:class:`~zart._execution._journal.ExecutionContext`) and records how the run
ended: finished (result or error), suspended (sleep, wait) or handed back.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import time
import uuid
from typing import Any

from zart._engine._leases import Heartbeat
from zart._errors import (
    ExecutionCancelledError,
    ExecutionConflictError,
    ExecutionNotFoundError,
    LeaseLostError,
    SerializationError,
    StorageError,
    TaskError,
    UsageError,
)
from zart._execution._context import current_execution
from zart._execution._divergence import Diverged
from zart._execution._durable import DurableFunction
from zart._execution._failures import encode_error, task_error
from zart._execution._identifiers import check_execution_id
from zart._execution._journal import ExecutionContext, Paused, Suspend
from zart._execution._tracing import Tracing
from zart._owner import current_owner
from zart._store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    SLEEPING,
    TERMINAL_STATUSES,
    WAITING,
    ExecutionRecord,
    JournalStore,
    RaceLost,
)
from zart._store._pauses import PauseStore
from zart._store._queues import SubmitOptions
from zart._store._records import DIVERGED

log = logging.getLogger("zart")

# BaseExceptionGroup (Python 3.11+); nothing to catch on 3.10.
_EXCEPTION_GROUPS: Any = getattr(builtins, "BaseExceptionGroup", ())


class Outcome:
    """What one local run of a body ended with (``finished`` False: it did not end here)."""

    __slots__ = ("error", "finished", "result")

    def __init__(self, finished: bool, result: Any = None, error: BaseException | None = None):
        self.finished = finished
        self.result = result
        self.error = error


class Runner:
    """Runs executions against one journal store; shared by ``Zart`` and its workers."""

    def __init__(
        self,
        journal: JournalStore,
        *,
        lease_seconds: float,
        strict: bool,
        tracing: Tracing | None,
    ) -> None:
        self.journal = journal
        self.lease_seconds = lease_seconds
        self.strict = strict
        self.tracing = tracing
        self.heartbeat = Heartbeat(journal, lease_seconds)
        # Pause rules (zart pause / resume): a per-process cache the steps read.
        self.pauses = PauseStore(journal.db)
        # Executions whose lease this process could not hand back (database fault).
        self._abandoned: dict[str, str] = {}

    @staticmethod
    def new_token() -> str:
        return current_owner().new_token()

    # ------------------------------------------------------------------ creating

    def create(
        self,
        durable: DurableFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
        parent_id: str | None = None,
        options: SubmitOptions | None = None,
    ) -> tuple[str, bool]:
        """Insert the execution unless its id exists; returns (id, created by this call).
        ``options`` (queue, delay, dedup, debounce: ``_store/_queues.py``) may return
        another execution's id: the one holding its dedup or debounce key."""
        if current_execution.get() is not None and parent_id is None:
            raise UsageError(
                "starting an execution from inside a durable body is not journaled; "
                "use `await zart.run_child(fn, ..., name=...)` instead"
            )
        execution_id = check_execution_id(
            execution_id if execution_id is not None else uuid.uuid4().hex
        )
        if not args and not kwargs:
            # Attaching to an existing id needs no input (its stored input is used).
            existing = self.journal.get_execution(execution_id)
            if existing is not None:
                _check_owner(durable, existing, parent_id)
                return execution_id, False
        try:
            input_json = durable.args_codec.dumps(args, kwargs)
        except SerializationError as exc:
            raise SerializationError(f"cannot store the input of {durable.name!r}: {exc}") from None
        try:
            rec, created = self.journal.create_execution(
                execution_id, durable.name, input_json, parent_id, options
            )
        except RaceLost:
            found = self.journal.get_execution(execution_id)
            assert found is not None
            rec, created = found, False
        _check_owner(durable, rec, parent_id)
        return rec.id, created

    async def create_claimed(
        self,
        durable: DurableFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
    ) -> tuple[ExecutionRecord, str] | None:
        """Create a top-level execution already claimed by this process, which runs it
        at once: one statement (batched with what runs beside it), no read-back. None
        when the id exists or the call only attaches to it (then :meth:`create`)."""
        if current_execution.get() is not None:
            return None  # create() says what to do instead
        if execution_id is not None and not args and not kwargs:
            return None  # attaching to an existing id: its stored input is used
        execution_id = check_execution_id(
            execution_id if execution_id is not None else uuid.uuid4().hex
        )
        try:
            input_json = durable.args_codec.dumps(args, kwargs)
        except SerializationError as exc:
            raise SerializationError(f"cannot store the input of {durable.name!r}: {exc}") from None
        token = self.new_token()
        rec = await self.journal.create_claimed(
            execution_id, durable.name, input_json, token, self.lease_seconds
        )
        return None if rec is None else (rec, token)

    def hold(self, count: int = 1) -> None:
        """Count executions claimed here and about to run (``execute(held=True)`` ends
        each count). Counted at the claim, not when the body starts: tasks started
        together run one by one until their first real wait, and the first must already
        see the others to batch its writes with theirs."""
        self.journal.group.active += count

    async def run_claimed(
        self, durable: DurableFunction[Any, Any], rec: ExecutionRecord, token: str
    ) -> Any:
        """Run an execution :meth:`create_claimed` made (and :meth:`hold` counted), to its
        end; its result or error."""
        outcome = await self.execute(durable, rec, token, new=True, held=True)
        if _ended(outcome):
            return outcome.result
        return await self.drive_until_done(durable, rec.id)  # it sleeps or waits

    def cancel(self, execution_id: str) -> bool:
        rec, changed = self.journal.cancel(execution_id)
        if rec is None:
            raise ExecutionNotFoundError(f"no execution with id {execution_id!r}")
        return changed

    # ------------------------------------------------------------------ driving

    async def drive_until_done(self, durable: DurableFunction[Any, Any], execution_id: str) -> Any:
        """Run (or wait for) the execution until it is finished; its result or error."""
        delay = 0.01
        self._reclaim_abandoned(execution_id)
        while True:
            rec = self.journal.get_execution(execution_id)
            if rec is None:
                raise ExecutionNotFoundError(f"execution {execution_id!r} disappeared")
            if rec.status in _ENDED:
                return stored_outcome(durable, rec)
            token = self.new_token()
            claimed = self.journal.try_claim(execution_id, token, self.lease_seconds)
            if claimed is not None:
                outcome = await self.execute(durable, claimed, token)
                if _ended(outcome):
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

    async def wait_until_done(self, durable: DurableFunction[Any, Any], execution_id: str) -> Any:
        """Wait, without ever claiming it, until the execution has finished; its result
        or error."""
        delay = 0.01
        while True:
            rec = self.journal.get_execution(execution_id)
            if rec is None:
                raise ExecutionNotFoundError(f"execution {execution_id!r} disappeared")
            if rec.status in _ENDED:
                return stored_outcome(durable, rec)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def execute(
        self,
        durable: DurableFunction[Any, Any],
        rec: ExecutionRecord,
        token: str,
        *,
        new: bool = False,
        held: bool = False,
    ) -> Outcome:
        """Run the body once under the lease ``token``; record how it ended. ``new``: it
        was created by this claim, so it has no journal to load. ``held``: the claimer
        counted it in ``group.active`` already (see :meth:`hold`)."""
        group = self.journal.group
        if not held:
            group.active += 1
        try:
            return await self._execute(durable, rec, token, new)
        finally:
            group.active -= 1

    async def _execute(
        self, durable: DurableFunction[Any, Any], rec: ExecutionRecord, token: str, new: bool
    ) -> Outcome:
        if rec.recoveries > durable.max_recoveries:
            return await self._fail(durable, rec.id, token, _recovery_limit(durable, rec))
        try:
            args, kwargs = durable.args_codec.loads(rec.input)
        except SerializationError as exc:
            unreadable = SerializationError(f"cannot read the stored input: {exc}")
            return await self._fail(durable, rec.id, token, unreadable)
        strict = self.strict if durable.strict is None else durable.strict
        ctx = ExecutionContext(
            self.journal, rec.id, token, {} if new else self.journal.load_journal(rec.id),
            strict=strict, runner=self, tracing=self.tracing, recovered=rec.recovered,
            claim=rec.attempts, durable_name=durable.name, pauses=self.pauses.cache,
            lazy_outputs=True,
        )  # fmt: skip
        self.heartbeat.track(token, ctx)
        cv = current_execution.set(ctx)
        log.info("execution %s (%s) started, attempt %d", rec.id, durable.name, rec.attempts)
        try:
            return await self._run(durable, rec, token, ctx, args, kwargs)
        except LeaseLostError:
            return Outcome(False)
        except ExecutionCancelledError as exc:
            return Outcome(True, error=exc)
        except BaseException:
            # Interrupted (Ctrl-C, task cancelled at shutdown, a database fault while
            # finishing): hand the execution back so the next `run` or worker resumes it
            # at once instead of after the lease.
            self._hand_back(rec.id, token)
            raise
        finally:
            current_execution.reset(cv)
            self.heartbeat.untrack(token)
            if ctx.stop is None:  # a branch left behind (gather) must not go on
                ctx.stop = LeaseLostError(f"the run of execution {rec.id!r} has ended")

    def _hand_back(self, execution_id: str, token: str) -> None:
        """Release the lease; if the database refuses now, remember the token so the
        next drive of this execution in this process releases it first (rather than
        waiting for the lease to expire)."""
        try:
            self.journal.release(execution_id, token)
        except Exception:
            self._abandoned[execution_id] = token

    def _reclaim_abandoned(self, execution_id: str) -> None:
        token = self._abandoned.pop(execution_id, None)
        if token is not None:
            try:
                self.journal.release(execution_id, token)
            except Exception:
                self._abandoned[execution_id] = token
                raise

    async def _run(
        self,
        durable: DurableFunction[Any, Any],
        rec: ExecutionRecord,
        token: str,
        ctx: ExecutionContext,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Outcome:
        """The body, then what its ending means: suspended, stopped, failed or finished."""
        try:
            if self.tracing is None:
                result = await _run_body(durable, rec, args, kwargs)
            else:
                result = await self._traced_body(durable, rec, args, kwargs, ctx)
        except Suspend as suspend:
            return self._suspend(durable, rec, token, suspend)
        except Diverged as found:
            return self._diverged(rec.id, token, found)
        except _EXCEPTION_GROUPS as group:
            # Sleeps or waits in several tasks of an asyncio.TaskGroup.
            if isinstance(ctx.stop, Diverged):
                return self._diverged(rec.id, token, ctx.stop)
            merged = _merged_suspend(group)
            if merged is None:
                raise
            return self._suspend(durable, rec, token, merged)
        except (LeaseLostError, ExecutionCancelledError) as exc:
            if ctx.stop is None:
                raise
            log.info("execution %s stopped: %s", rec.id, exc)
            return Outcome(isinstance(exc, ExecutionCancelledError), error=exc)
        except Exception as exc:
            if ctx.stop is None:
                return await self._fail(durable, rec.id, token, exc)
            if isinstance(ctx.stop, StorageError):
                # A database fault is not the execution's failure: hand it back so it is
                # resumed (by us or another worker) once the database is usable again.
                self._hand_back(rec.id, token)
                return Outcome(False, error=ctx.stop)
            return Outcome(False)
        return await self._complete(durable, rec.id, token, ctx, result)

    async def _complete(
        self,
        durable: DurableFunction[Any, Any],
        eid: str,
        token: str,
        ctx: ExecutionContext,
        result: Any,
    ) -> Outcome:
        try:
            result_json = durable.result_codec.dumps(result)
        except SerializationError as exc:
            msg = f"the result of {durable.name!r} cannot be stored: {exc}"
            return await self._fail(durable, eid, token, SerializationError(msg))
        # One statement, sharing a commit with the writes of what runs beside it.
        finished = await self.journal.finish_batched(eid, token, COMPLETED, result_json, None)
        if not finished:
            raise ctx.lost()
        log.info(
            "execution %s completed (%d steps run, %d replayed)", eid, ctx.executed, ctx.replayed
        )
        return Outcome(True, result=result)

    async def _fail(
        self, durable: DurableFunction[Any, Any], eid: str, token: str, exc: BaseException
    ) -> Outcome:
        """Record a failed execution (fenced) and build the error its caller sees.

        The durable's ``on_failure`` hook may turn the failure into a fallback result.
        """
        encoded = encode_error(exc)
        if durable.on_failure is not None:
            fallback = await self._fallback(durable, eid, encoded, exc)
            if fallback is not None:
                value, result_json = fallback
                if not self.journal.finish_execution(eid, token, COMPLETED, result_json, None):
                    return Outcome(False)
                log.info("execution %s failed (%s); on_failure gave a fallback result", eid, exc)
                return Outcome(True, result=value)
        if not self.journal.finish_execution(eid, token, FAILED, None, encoded):
            return Outcome(False)  # not ours any more: the new owner decides the outcome
        log.info("execution %s failed: %s: %s", eid, type(exc).__name__, exc)
        return Outcome(True, error=task_error(eid, encoded, cause=exc))

    @staticmethod
    async def _fallback(
        durable: DurableFunction[Any, Any], eid: str, encoded: str, exc: BaseException
    ) -> tuple[Any, str] | None:
        """The ``on_failure`` hook's value and its JSON; None if the hook failed too."""
        assert durable.on_failure is not None
        try:
            value = durable.on_failure(task_error(eid, encoded, cause=exc))
            if inspect.isawaitable(value):
                value = await value
            return value, durable.result_codec.dumps(value)
        except Exception as hook_exc:
            log.warning("on_failure hook of %s raised %r; the execution fails", eid, hook_exc)
            return None

    def _diverged(self, eid: str, token: str, found: Diverged) -> Outcome:
        """Stop the execution before its first call past the divergence (fenced)."""
        if not self.journal.finish_execution(eid, token, DIVERGED, None, found.to_json()):
            return Outcome(False)
        log.warning("execution %s diverged: %s", eid, found.reason)
        error = TaskError(found.message, execution_id=eid, error_type="Diverged")
        return Outcome(True, error=error)

    def _suspend(
        self, durable: DurableFunction[Any, Any], rec: ExecutionRecord, token: str, suspend: Suspend
    ) -> Outcome:
        if isinstance(suspend, Paused):
            return self._paused(rec.id, token, suspend)
        wake_at = suspend.wake_at
        if durable.timeout is not None:
            # Wake at the deadline at the latest, so a sleep or wait that outlasts
            # it fails the execution on time instead of never (or late).
            deadline = rec.created_at + durable.timeout
            wake_at = deadline if wake_at is None else min(wake_at, deadline)
        self.journal.suspend_execution(rec.id, token, suspend.status, wake_at)
        log.info("execution %s is %s", rec.id, suspend.status)
        return Outcome(False)

    def _paused(self, eid: str, token: str, paused: Paused) -> Outcome:
        """Hold the execution before its next step under the pause rule that matched (or,
        if that rule was removed meanwhile, hand it back to run on at once)."""
        status = self.pauses.hold(eid, token, paused.rule_id, paused.step)
        if status is not None:
            log.info("execution %s is %s before step %r (pause rule %d)",
                     eid, status, paused.step, paused.rule_id)  # fmt: skip
        return Outcome(False)

    async def _traced_body(
        self,
        durable: DurableFunction[Any, Any],
        rec: ExecutionRecord,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: ExecutionContext,
    ) -> Any:
        assert self.tracing is not None
        with self.tracing.execution(durable.name, rec.id, rec.attempts) as span:
            try:
                return await _run_body(durable, rec, args, kwargs)
            except Suspend as suspend:
                span.set_attribute("zart.suspended", suspend.status)
                raise
            except Exception as exc:
                self.tracing.fail(span, exc)
                raise
            finally:
                span.set_attribute("zart.steps.executed", ctx.executed)
                span.set_attribute("zart.steps.replayed", ctx.replayed)


def _ended(outcome: Outcome) -> bool:
    """Did this run end the execution? Raises its error if it failed, or the storage
    error that stopped it (then it is left resumable and the caller hears why)."""
    if outcome.finished:
        if outcome.error is not None:
            raise outcome.error
        return True
    if isinstance(outcome.error, StorageError):
        raise outcome.error
    return False


def stored_outcome(durable: DurableFunction[Any, Any], rec: ExecutionRecord) -> Any:
    """The stored result of a finished execution; raises its stored error."""
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


# Where a drive or a wait stops: finished, or diverged (it waits for a compatible deploy
# and an explicit resume; the caller hears why).
_ENDED = TERMINAL_STATUSES | {DIVERGED}


def _check_owner(
    durable: DurableFunction[Any, Any], rec: ExecutionRecord, parent_id: str | None
) -> None:
    """An existing id may be attached to only by the same durable function, and only by
    the same parent (or, for an id a user chose, by no parent): otherwise a call would
    silently get another execution's result."""
    if rec.durable_name != durable.name:
        raise ExecutionConflictError(
            f"execution id {rec.id!r} already belongs to durable {rec.durable_name!r}, "
            f"not {durable.name!r}; use another id"
        )
    if rec.parent_id != parent_id:
        if parent_id is None:
            why = f"it is a child execution of {rec.parent_id!r}"
        elif rec.parent_id is None:
            why = "it was started directly, not as a child of this execution"
        else:
            why = f"it is a child execution of {rec.parent_id!r}"
        raise ExecutionConflictError(
            f"execution id {rec.id!r} cannot be attached to here: {why}; use another id"
        )


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


def _deadline_error(execution_id: str, timeout: float) -> TaskError:
    return TaskError(
        f"execution exceeded its deadline ({timeout:g} s after it was created)",
        execution_id=execution_id,
        error_type="DeadlineExceeded",
    )


def _recovery_limit(durable: DurableFunction[Any, Any], rec: ExecutionRecord) -> TaskError:
    return TaskError(
        f"execution was recovered {rec.recoveries - 1} times after losing its process "
        f"(max_recoveries={durable.max_recoveries}) and lost it again; a step may be "
        "crashing its process",
        execution_id=rec.id,
        error_type="RecoveryLimitExceeded",
    )


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
    paused = [e for e in leaves if isinstance(e, Paused)]
    if paused:
        return paused[0]  # held by a rule: it stays so until resumed, whatever else waits
    suspends = [e for e in leaves if isinstance(e, Suspend)]
    times = [s.wake_at for s in suspends if s.wake_at is not None]
    status = WAITING if any(s.status == WAITING for s in suspends) else SLEEPING
    return Suspend(status, min(times) if times else None)
