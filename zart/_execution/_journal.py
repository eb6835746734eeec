"""One run of a durable body: its journal. Replays checkpoints, runs new steps with
retries, writes fenced checkpoints; :meth:`ExecutionContext.entry` is the one helper
every step and primitive uses to look up, check and write its record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from zart._errors import (
    DuplicateStepError,
    ExecutionCancelledError,
    LeaseLostError,
    ReplayMismatchError,
    SerializationError,
    StepError,
    StepTimeoutError,
    StorageError,
)
from zart._execution._context import current_step, current_transaction
from zart._execution._divergence import (
    PATCH_KIND,
    divergence,
    wait_for_frontier,
)
from zart._execution._failures import (
    attempt_started_in,
    encode_error,
    step_error_from_record,
)
from zart._execution._identifiers import MAX_NAME_LENGTH, check_step_name
from zart._serde import fingerprint
from zart._store import (
    CANCELLED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRYING,
    JournalStore,
    StepRecord,
)
from zart._store._pauses import PauseCache
from zart._store._records import PAUSED

if TYPE_CHECKING:
    from zart._execution._durable import DurableFunction
    from zart._execution._step import StepCall
    from zart._execution._tracing import Tracing

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


class Paused(Suspend):
    """Unwinds a durable body that a pause rule holds before its next new step: the
    engine stores it as ``paused`` by ``rule_id``; once resumed, a run replays to here."""

    def __init__(self, rule_id: int, step: str) -> None:
        super().__init__(PAUSED, None)
        self.rule_id = rule_id
        self.step = step


# The pause rules of a context that has none (a replay check, a test's context).
NO_PAUSES = PauseCache(None)


class ChildRunner(Protocol):
    """What ``zart.run_child`` needs from the engine that runs the parent (the engine
    implements it; this layer does not import the engine)."""

    def create(
        self,
        durable: DurableFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
        parent_id: str | None = None,
    ) -> tuple[str, bool]: ...

    async def drive_until_done(
        self, durable: DurableFunction[Any, Any], execution_id: str
    ) -> Any: ...

    def cancel(self, execution_id: str) -> bool: ...


class Entry:
    """One call's place in the journal: its name, call order, kind and stored record.

    ``done`` / ``failed``: the record settled it in an earlier run (replay); otherwise
    the caller does the work and writes the outcome with :meth:`write` / :meth:`complete`.
    """

    __slots__ = ("ctx", "fingerprint", "interrupted", "kind", "name", "record", "seq", "started")

    def __init__(
        self, ctx: ExecutionContext, name: str, seq: int, kind: str, record: StepRecord | None
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.seq = seq
        self.kind = kind
        self.record = record
        self.fingerprint: str | None = None
        # The first unsettled call after a takeover: its attempt died with the process.
        self.interrupted = False
        started = record.started_at if record is not None else None
        self.started = started if started is not None else time.time()

    @property
    def done(self) -> bool:
        return self.record is not None and self.record.status == STEP_COMPLETED

    @property
    def failed(self) -> bool:
        return self.record is not None and self.record.status == STEP_FAILED

    def write(
        self,
        status: str,
        output: str | None = None,
        error: str | None = None,
        *,
        attempts: int = 1,
        finished: bool = True,
    ) -> None:
        """Checkpoint this entry (fenced: raises if the lease is gone)."""
        ctx = self.ctx
        ctx.save(
            StepRecord(
                ctx.execution_id, self.name, self.seq, self.kind, status, self.fingerprint,
                output, error, attempts, self.started, time.time() if finished else None,
            )
        )  # fmt: skip

    def complete(self, output: str | None, *, attempts: int = 1) -> None:
        self.write(STEP_COMPLETED, output, attempts=attempts)
        self.ctx.executed += 1


class ExecutionContext:
    """State of one run of one execution, shared by every step call in it."""

    def __init__(
        self,
        journal: JournalStore,
        execution_id: str,
        token: str,
        checkpoints: dict[str, StepRecord],
        *,
        strict: bool,
        runner: ChildRunner | None = None,
        tracing: Tracing | None = None,
        recovered: bool = False,
        claim: int = 0,
        durable_name: str = "",
        pauses: PauseCache = NO_PAUSES,
        lazy_outputs: bool = False,
    ) -> None:
        # The checkpoints hold no outputs of completed steps (JournalStore.load_journal):
        # replayed steps fetch them a page at a time (output_of).
        self.lazy_outputs = lazy_outputs
        self._pages: dict[str, int] | None = None  # step name -> place in seq order
        self._page_order: list[str] = []
        self.runner = runner
        self.durable_name = durable_name
        # This process's pause rules: read before each new step (see check_pause).
        self.pauses = pauses
        # This run took the execution over from a process that died: the first call
        # left unsettled may be the one it died in (see _count_interrupted).
        self.interrupted_pending = recovered
        self.claim = claim  # which run of the execution this is (1 = the first)
        # When this run last saw its lease held (the claim, or a fenced write that went
        # through): a step starts only after a check no older than FRESH_SECONDS.
        self.verified_at = time.monotonic()
        self.tracing = tracing
        self.journal = journal
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
        self.waits = 0  # zart.wait calls so far (their default names)
        # Settled records this run has not visited yet (patch markers aside): a new
        # name asked for while this is not empty may be a divergence (_divergence.py).
        self.unvisited: set[str] = {
            name
            for name, rec in checkpoints.items()
            if rec.status in _SETTLED and rec.kind != PATCH_KIND
        }
        self.patch_waiters = 0  # zart.patched calls waiting for the frontier
        self.busy = 0  # replayed calls waiting in-process (a short recorded sleep)
        self.patches: dict[str, bool] = {}  # zart.patched answers of this run

    # ------------------------------------------------------------------ the journal

    async def entry(self, name: str, kind: str, site: tuple[str, int] | None) -> Entry:
        """Claim ``name`` for this call (duplicate guard), find its record and check that
        it was written by the same kind of call. A settled record counts as replayed;
        a name the journal lacks while recorded names are unvisited is checked for
        divergence (:mod:`zart._execution._divergence`); otherwise the execution must
        still be ours to go on."""
        seq, rec, settled = self.claim_entry(name, kind, site)
        if settled is not None:
            return settled
        if rec is None and self.unvisited:
            await wait_for_frontier(self, name, kind)
        return self.fresh(name, seq, kind, rec)

    def claim_entry(
        self, name: str, kind: str, site: tuple[str, int] | None
    ) -> tuple[int, StepRecord | None, Entry | None]:
        """The synchronous part of :meth:`entry`: check and claim the name, find its
        record; the entry itself when an earlier run settled the call."""
        if not (len(name) <= MAX_NAME_LENGTH and name.isprintable()):
            check_step_name(name)  # rendered names too, before anything is written
        seq = self.claim_name(name, site)
        rec = self.checkpoints.get(name)
        if rec is not None:
            self.check_kind(name, kind, rec)
            if rec.status in _SETTLED:
                return seq, rec, self.replay(name, seq, kind, rec)
        return seq, rec, None

    def fresh(self, name: str, seq: int, kind: str, rec: StepRecord | None) -> Entry:
        """The entry of a call this run does (the execution must still be ours)."""
        self.check_stop()
        entry = Entry(self, name, seq, kind, rec)
        entry.interrupted, self.interrupted_pending = self.interrupted_pending, False
        return entry

    def replay(self, name: str, seq: int, kind: str, rec: StepRecord) -> Entry:
        """The entry of a call settled by an earlier run."""
        self.replayed += 1
        if self.unvisited:
            self.unvisited.discard(name)
        return Entry(self, name, seq, kind, rec)

    def check_kind(self, name: str, kind: str, rec: StepRecord) -> None:
        if rec.kind != kind:
            raise ReplayMismatchError(
                f"{name!r} in execution {self.execution_id!r} was recorded by a "
                f"{_KINDS.get(rec.kind, rec.kind)} and is now called as a "
                f"{_KINDS.get(kind, kind)}; a name belongs to one kind of call "
                "(rename one of them)"
            )

    # ------------------------------------------------------------------ patches

    async def patched(self, name: str, site: tuple[str, int] | None) -> bool:
        """``zart.patched``: True for a run reaching the marker first under code that has
        it, False for one whose journal shows it passed here under the old code; the
        answer is journaled (kind "patch") so every later replay takes the same branch."""
        known = self.patches.get(name)
        if known is not None:
            return known  # the same marker again in this run: the same answer
        check_step_name(name)
        seq = self.claim_name(name, site)
        rec = self.checkpoints.get(name)
        if rec is not None:
            self.check_kind(name, PATCH_KIND, rec)
            if rec.status in _SETTLED:
                self.replayed += 1
                answer = rec.output == "true"
                self.patches[name] = answer
                return answer
        answer = True
        if self.unvisited:
            answer = await wait_for_frontier(self, name, PATCH_KIND, patch=True)
        self.check_stop()
        self.patches[name] = answer
        self.record_patch(Entry(self, name, seq, PATCH_KIND, rec), answer)
        return answer

    def record_patch(self, entry: Entry, answer: bool) -> None:
        entry.write(STEP_COMPLETED, "true" if answer else "false")

    def deprecated_patch(self, name: str) -> None:
        """``zart.deprecate_patch``: the old branch of the marker is gone. An execution
        whose journal chose the old branch cannot go on: it diverges, loudly."""
        rec = self.checkpoints.get(name)
        if rec is None or rec.kind != PATCH_KIND or rec.output != "false":
            return
        self.patches[name] = False
        found = divergence(self, name, PATCH_KIND)
        found.reason = (
            f"it took the old branch of patch {name[len('patched:') :]!r}, which the code "
            "no longer has (zart.deprecate_patch); unvisited recorded calls: "
            + (", ".join(repr(n) for n in found.unvisited) or "none")
        )
        raise found

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
        rec = self.journal.get_execution(self.execution_id)
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
            saved = self.journal.save_step(self.token, record)
        except StorageError as exc:
            # Not the body's failure (a locked or full database, an outage): the
            # execution must be left resumable, not failed, even if user code catches
            # this exception; no attempt of the step is counted.
            self.stop = exc
            raise
        if not saved:
            raise self.lost()
        self.verified_at = time.monotonic()

    def ensure_running(self) -> None:
        """Before a step body starts: is the execution still ours and not cancelled?

        The last fenced write answers that if it is fresh (a loop of quick steps pays
        nothing); otherwise one indexed read does. So no step starts once a cancel has
        been recorded more than ``FRESH_SECONDS`` before it."""
        if self.stop is not None:
            raise self.stop
        if time.monotonic() - self.verified_at <= FRESH_SECONDS:
            return
        try:
            held = self.journal.lease_held(self.execution_id, self.token)
        except StorageError as exc:
            self.stop = exc
            raise
        if not held:
            raise self.lost()
        self.verified_at = time.monotonic()

    async def _save_batched(self, record: StepRecord) -> None:
        """:meth:`save` through the group commit (other executions run beside this one):
        returns once the batch holding the checkpoint has committed."""
        try:
            saved, checked = await self.journal.checkpoint(self.token, record)
        except StorageError as exc:
            self.stop = exc
            raise
        if not saved:
            raise self.lost()
        self.verified_at = checked

    async def _ensure_running_batched(self) -> None:
        """:meth:`ensure_running` when executions share group commits. A step starting
        in the loop round right after its last checkpoint's batch (no batch since, and
        under ``ROUND_SECONDS``) relies on that batch's lease check: the steps of many
        executions start in that one round, one after another, and a read each would
        cost more than their checkpoints. Otherwise the check joins the next batch."""
        if self.stop is not None:
            raise self.stop
        age = time.monotonic() - self.verified_at
        if age <= FRESH_SECONDS:
            return
        if age <= ROUND_SECONDS and self.journal.group.last_started <= self.verified_at:
            return
        try:
            held, checked = await self.journal.check_lease(self.execution_id, self.token)
        except StorageError as exc:
            self.stop = exc
            raise
        if not held:
            raise self.lost()
        self.verified_at = checked

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
        # entry(), without its coroutine on every step's path: it only ever waits for a
        # new call while recorded calls are unvisited (see _divergence).
        name = call.name
        seq, rec, settled = self.claim_entry(name, "step", call.site)
        if settled is not None:
            assert rec is not None
            if rec.status == STEP_FAILED:
                raise step_error_from_record(name, rec.error)
            self.check_drift(name, rec.fingerprint, call.args, call.kwargs)
            output = rec.output
            if self.lazy_outputs:
                if output is None:
                    output = self.output_of(name)
                rec.output = None  # replayed: its result is not kept for the whole run
            try:
                return call.step.codec.loads(output or "null")
            except SerializationError as exc:
                raise SerializationError(
                    f"cannot read the stored result of step {name!r}: {exc}"
                ) from None
        if rec is None and self.unvisited:
            await wait_for_frontier(self, name, "step")
        if self.pauses.watch:  # False while no rule exists: one attribute read
            self.check_pause(name, call.step.template.template)
        entry = self.fresh(name, seq, "step", rec)
        entry.fingerprint = fingerprint(call.args, call.kwargs)
        entry.started = time.time()
        # A retrying record carries the attempts so far: a crash does not reset the count.
        attempts = rec.attempts if rec is not None else 0
        if entry.interrupted:
            attempts = self._count_interrupted(call, entry, attempts)
        return await self._attempts(call, entry, attempts)

    def check_pause(self, name: str, template: str) -> None:
        """Before a new step: raise :class:`Paused` if a pause rule holds this execution
        there. The rules are this process's cached copy (read again at most once each
        ``REFRESH_SECONDS``, by the first step that finds it stale: never a query per
        step). A replayed step is not a pause point: it runs nothing."""
        for rule in self.pauses.current():
            if rule.matches(self.execution_id, self.durable_name, name, template):
                raise Paused(rule.id, name)

    def output_of(self, name: str) -> str | None:
        """The stored output of completed step ``name`` (see ``lazy_outputs``): fetched
        with the next ``OUTPUT_PAGE`` completed steps in call order, so a replay reads
        its results in pages and holds one page at a time."""
        if self._pages is None:
            done = [
                (rec.seq, n)
                for n, rec in self.checkpoints.items()
                if rec.kind == "step" and rec.status == STEP_COMPLETED and rec.output is None
            ]
            self._page_order = [n for _, n in sorted(done)]
            self._pages = {n: i for i, n in enumerate(self._page_order)}
        place = self._pages.get(name)
        if place is None:
            return None
        page = self._page_order[place : place + OUTPUT_PAGE]
        found = self.journal.load_outputs(self.execution_id, page)
        for other in page:
            rec = self.checkpoints.get(other)
            if rec is not None and rec.output is None:
                self._pages.pop(other, None)  # fetched: never asked for again
                rec.output = found.get(other) or "null"
        return found.get(name)

    def _count_interrupted(self, call: StepCall[Any], entry: Entry, attempts: int) -> int:
        """Count the attempt that died with its process (SIGKILL, OOM, power loss), so a
        step that crashes its process ends after ``max_attempts`` like any failing step.

        Only on a recovery, and only for the first call this run finds unsettled, so a
        step that succeeds pays no extra write. The run that died was in this step if
        it left a retrying record from its own run (``claim``); with no record at all,
        the previous run is taken to have died in it (it may have died just before)."""
        rec = entry.record
        if rec is not None and attempt_started_in(rec.error) != self.claim - 1:
            return attempts  # the run that died was not inside an attempt of this step
        attempts += 1
        died = StepError(
            f"step {entry.name!r} was interrupted: its process died during attempt {attempts}",
            retryable=True,
            step_name=entry.name,
            error_type="StepInterrupted",
        )
        error = encode_error(died, step_name=entry.name, claim=self.claim, next_started=True)
        if attempts >= call.retry.max_attempts:
            entry.write(STEP_FAILED, error=error, attempts=attempts)
            raise StepError(
                f"{died.message} (max_attempts={call.retry.max_attempts} reached)",
                retryable=False,
                step_name=entry.name,
                error_type="StepInterrupted",
            )
        entry.write(STEP_RETRYING, error=error, attempts=attempts, finished=False)
        return attempts

    async def _attempts(self, call: StepCall[Any], entry: Entry, attempts: int) -> Any:
        group = self.journal.group
        while True:
            attempts += 1
            if group.active > 1 or group.pending:  # GroupCommit.batching(), inline
                await self._ensure_running_batched()
            else:
                self.ensure_running()
            try:
                result = await self._invoke(call, entry, attempts)
            except _Unretryable as fatal:
                raise fatal.error from None
            except Exception as exc:
                await self._failed_attempt(call, entry, attempts, exc)
                continue
            if not call.step.transactional:  # a transactional step checkpointed already
                # Entry.complete, inline: this is every step's checkpoint.
                record = StepRecord(
                    self.execution_id, entry.name, entry.seq, "step", STEP_COMPLETED,
                    entry.fingerprint, self._encode(call, result), None, attempts,
                    entry.started, time.time(),
                )  # fmt: skip
                if group.active > 1 or group.pending:
                    await self._save_batched(record)
                else:
                    self.save(record)
                self.executed += 1
            return result

    async def _invoke(self, call: StepCall[Any], entry: Entry, attempts: int) -> Any:
        """One attempt of the step body, marked as running inside a step."""
        token = current_step.set(entry.name)
        try:
            if self.tracing is not None:
                with self.tracing.step(entry.name, self.execution_id, attempts):
                    return await self._invoke_body(call, entry, attempts)
            if call.step.transactional:
                return await self._run_transactional(call, entry, attempts)
            return await call.step.invoke(call.args, call.kwargs, call.timeout)
        finally:
            current_step.reset(token)

    async def _invoke_body(self, call: StepCall[Any], entry: Entry, attempts: int) -> Any:
        if call.step.transactional:
            return await self._run_transactional(call, entry, attempts)
        return await call._invoke_once()

    async def _failed_attempt(
        self, call: StepCall[Any], entry: Entry, attempts: int, exc: Exception
    ) -> None:
        """Record a failed attempt: retry after a delay, or fail the step (raises)."""
        if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, StepTimeoutError):
            exc = StepTimeoutError(f"step {entry.name!r} timed out after {call.timeout} s")
        error = encode_error(exc, step_name=entry.name, claim=self.claim)
        if not call.retry.should_retry(exc, attempts):
            entry.write(STEP_FAILED, error=error, attempts=attempts)
            raise _as_step_error(entry.name, exc) from exc
        entry.write(STEP_RETRYING, error=error, attempts=attempts, finished=False)
        delay = call.retry.delay(attempts)
        log.info("step %r attempt %d failed (%s); retry in %.2fs", entry.name, attempts, exc, delay)
        await asyncio.sleep(delay)
        self.check_stop()
        # The next attempt starts now: if this process dies in it, a takeover counts it.
        # (A failure path only; a step that succeeds first time never writes this.)
        started = encode_error(exc, step_name=entry.name, claim=self.claim, next_started=True)
        entry.write(STEP_RETRYING, error=started, attempts=attempts, finished=False)

    @staticmethod
    def _encode(call: StepCall[Any], result: Any) -> str:
        try:
            return call.step.codec.dumps(result)
        except SerializationError as exc:
            raise SerializationError(
                f"step {call.name!r} returned a value that cannot be stored: {exc}"
            ) from None

    async def _run_transactional(self, call: StepCall[Any], entry: Entry, attempts: int) -> Any:
        """Body and checkpoint in one transaction: both commit, or neither does."""
        try:
            with self.journal.transaction() as conn:
                tx = current_transaction.set(conn)
                try:
                    result = await call._invoke_once()
                finally:
                    current_transaction.reset(tx)
                try:
                    output = self._encode(call, result)
                except SerializationError as exc:
                    raise _Unretryable(exc) from None
                checkpoint = StepRecord(
                    self.execution_id, entry.name, entry.seq, entry.kind, STEP_COMPLETED,
                    entry.fingerprint, output, None, attempts, entry.started, time.time(),
                )  # fmt: skip
                if not self.journal.save_step_on(conn, self.token, checkpoint):
                    raise _LeaseRefused  # leaving the block rolls the body's writes back
        except _LeaseRefused:
            raise _Unretryable(self.lost()) from None
        self.executed += 1
        return result


_SETTLED = (STEP_COMPLETED, STEP_FAILED)

# How many stored step results a replay fetches at once (see output_of).
OUTPUT_PAGE = 500

# How old the last proof of holding the lease may be when a step starts (seconds).
FRESH_SECONDS = 0.002
# ...or, under group commit, how old a proof from the latest batch may be (seconds).
ROUND_SECONDS = 0.25

# How each kind of journal entry is named in messages.
_KINDS = {
    "step": "step",
    "sleep": "zart.sleep",
    "event": "zart.wait_for_event",
    "now": "zart.now",
    "capture": "zart.capture",
    "child": "zart.run_child",
    "wait": "zart.wait",
    "patch": "zart.patched",
}


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
