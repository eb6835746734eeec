"""Replaying a history without running anything: the check before a deploy.

A :class:`ReplayContext` answers every call of a durable body from a recorded history
(an exported one, or the journal of an open execution). No step body, timer, event
wait or child ever runs, and nothing is written: a call the history settled returns
its stored result; a call at the history's frontier (no record while every recorded
name was visited, or an unsettled sleep / wait / retry) parks for ever; a new call
while recorded names remain unvisited, or a call of another kind than its record,
is a divergence. :meth:`ReplayContext.drive` runs the body until it ends or every
branch has parked, then judges.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from zart._errors import SerializationError
from zart._execution._context import current_execution
from zart._execution._divergence import (
    GRACE_SECONDS,
    QUIET_TICKS,
    Diverged,
    divergence,
    wait_for_frontier,
)
from zart._execution._durable import DurableFunction
from zart._execution._failures import step_error_from_record
from zart._execution._journal import _SETTLED, Entry, ExecutionContext
from zart._store import STEP_FAILED, JournalStore, StepRecord

if TYPE_CHECKING:
    from zart._execution._step import StepCall


@dataclass(frozen=True)
class ReplayReport:
    """How a history replayed against the code now importable."""

    execution_id: str
    durable_name: str
    compatible: bool
    # The first divergence: {"type": "Diverged", "message", "asked", "kind", "unvisited"}.
    divergence: dict[str, Any] | None
    replayed: int  # recorded calls the code asked for and got from the history
    # The body ended with an error (a recorded failure it re-raised, say). A stored
    # result the code cannot decode (a return type changed incompatibly) is one, and
    # makes the report incompatible even with no divergence.
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "durable": self.durable_name,
            "compatible": self.compatible,
            "divergence": self.divergence,
            "replayed": self.replayed,
            "error": self.error,
        }


class _NoRunner:
    """``run_child`` never gets this far in a replay (a child is answered or parked)."""

    def create(self, *args: Any, **kwargs: Any) -> tuple[str, bool]:
        raise AssertionError("a replay does not start child executions")

    async def drive_until_done(self, *args: Any) -> Any:
        raise AssertionError("a replay does not run child executions")

    def cancel(self, execution_id: str) -> bool:
        return False


class ReplayContext(ExecutionContext):
    """An execution context that only replays (see the module docstring)."""

    def __init__(self, execution_id: str, checkpoints: dict[str, StepRecord]) -> None:
        super().__init__(
            cast(JournalStore, None), execution_id, "", checkpoints,
            strict=False, runner=_NoRunner(),
        )  # fmt: skip
        self.parked = 0  # branches parked at the history's frontier

    async def entry(self, name: str, kind: str, site: tuple[str, int] | None) -> Entry:
        seq = self.claim_name(name, site)
        rec = self.checkpoints.get(name)
        if rec is not None:
            if rec.kind != kind:
                found = divergence(self, name, kind)
                found.reason = (
                    f"{name!r} was recorded by a {rec.kind!r} call and is now asked for "
                    f"as a {kind!r} call"
                )
                raise found
            if rec.status in _SETTLED:
                return self.replay(name, seq, kind, rec)
        elif self.unvisited:
            await wait_for_frontier(self, name, kind)
        await self._park()
        raise AssertionError("unreachable")  # pragma: no cover

    async def run_step(self, call: StepCall[Any]) -> Any:
        """A step answered from the history through :meth:`entry` (the base class
        claims steps without it, for speed): its stored value or error."""
        entry = await self.entry(call.name, "step", call.site)
        rec = entry.record
        assert rec is not None  # entry() parks or raises for anything unsettled
        if rec.status == STEP_FAILED:
            raise step_error_from_record(call.name, rec.error)
        try:
            return call.step.codec.loads(rec.output or "null")
        except SerializationError as exc:
            raise SerializationError(
                f"cannot read the stored result of step {call.name!r}: {exc}"
            ) from None

    def record_patch(self, entry: Entry, answer: bool) -> None:
        pass  # a replay writes nothing

    async def _park(self) -> None:
        """The history ends here for this branch: wait until the replay is judged."""
        self.parked += 1
        await asyncio.get_running_loop().create_future()

    async def drive(self, durable: DurableFunction[Any, Any], input_json: str) -> ReplayReport:
        """Run the body from the history until it ends or every branch parked; judge."""
        args, kwargs = durable.args_codec.loads(input_json)
        token = current_execution.set(self)
        try:
            task = asyncio.ensure_future(durable.fn(*args, **kwargs))
        finally:
            current_execution.reset(token)
        await self._until_quiet(task)
        error: str | None = None
        unreadable = False  # a stored result the code can no longer decode
        found: Diverged | None = self.stop if isinstance(self.stop, Diverged) else None
        if task.done():
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, Diverged):
                found = exc
            elif exc is not None:
                error = f"{type(exc).__name__}: {exc}"
                unreadable = isinstance(exc, SerializationError)
        else:
            task.cancel()
            await asyncio.wait({task})
        if found is None and self.unvisited and not unreadable:
            found = divergence(self, None, None)  # an unvisited tail
        return ReplayReport(
            self.execution_id, durable.name, found is None and not unreadable,
            found.as_dict() if found is not None else None, self.replayed, error,
        )  # fmt: skip

    async def _until_quiet(self, task: asyncio.Future[Any]) -> None:
        # A little longer than a waiting call takes to judge (so a divergence is reported
        # with the call that found it, not as an unvisited tail).
        quiet = 0
        while not task.done() and quiet <= QUIET_TICKS + 2:
            seen = self.seq
            await asyncio.wait({task}, timeout=0 if quiet < QUIET_TICKS else GRACE_SECONDS)
            if self.seq != seen or self.busy or self.patch_waiters:
                quiet = 0
            else:
                quiet += 1
