"""Divergence: the code asks for a call its journal does not hold while recorded calls
remain that this run has not visited.

Checked in :meth:`ExecutionContext.entry` for a *new* name only, and only while
settled records are still unvisited (a set membership test on the hot path; a fresh
execution or one that is appending after its last record pays nothing more).

Parallel branches (``asyncio.gather``, ``run_child`` in parallel, ``zart.wait``) reach
their frontier in any order: a branch may ask for its first new call before another
branch has replayed its recorded ones. So the decision is deferred: the new call
waits, running nothing, while the other branches replay. Replay does no I/O, and no
new call can start anywhere while recorded names are unvisited (they all wait here),
so the run soon either visits every recorded name (the call goes ahead: an append in
a parallel branch) or stops making progress (no call claimed a name for
``QUIET_TICKS`` loop turns and a short grace period): then no other in-flight call
can visit the remaining names, and the code has diverged.

``zart.patched`` waits the same way, and answers ``False`` (this execution passed here
under the old code) where a step would diverge; pending patch questions are answered
before any step is declared diverged, since the old branch they select may visit the
remaining names.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from zart._store import StepRecord


class _Run(Protocol):
    """What the check needs of a run (the journal's ``ExecutionContext``; a protocol,
    since the journal imports this module)."""

    execution_id: str
    checkpoints: dict[str, StepRecord]
    unvisited: set[str]
    stop: BaseException | None
    seq: int
    busy: int
    patch_waiters: int

    def check_stop(self) -> None: ...


# Loop turns without a new call before the run is judged quiet, then one grace sleep.
QUIET_TICKS = 20
GRACE_SECONDS = 0.01

# Journal names of ``zart.patched`` markers: ``patched:<patch id>`` (kind "patch").
PATCH_PREFIX = "patched:"
PATCH_KIND = "patch"


class Diverged(BaseException):
    """Unwinds a durable body whose code no longer matches its journal; the engine
    records the execution as ``diverged`` (nothing past this point ran).

    A BaseException so that a body's ``except Exception`` cannot swallow it.
    """

    def __init__(
        self,
        execution_id: str,
        asked: str | None,
        kind: str | None,
        unvisited: list[str],
        reason: str | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.asked = asked
        self.kind = kind
        self.unvisited = unvisited
        self.reason = reason or _reason(asked, kind, unvisited)
        super().__init__(self.reason)

    @property
    def message(self) -> str:
        return (
            f"execution {self.execution_id!r} diverged from its journal: {self.reason}; "
            "nothing past this point ran. Deploy code compatible with its history "
            "(or guard the change with zart.patched) and resume it."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "Diverged",
            "message": self.message,
            "asked": self.asked,
            "kind": self.kind,
            "unvisited": self.unvisited,
        }

    def to_json(self) -> str:
        """The stored error of a diverged execution (``ExecutionRecord.error``)."""
        return json.dumps(self.as_dict())


def _reason(asked: str | None, kind: str | None, unvisited: list[str]) -> str:
    shown = ", ".join(repr(n) for n in unvisited[:10])
    if len(unvisited) > 10:
        shown += f", … ({len(unvisited)} in all)"
    if asked is None:
        return f"recorded calls were never visited: {shown}"
    return f"the code asked for {kind or 'call'} {asked!r}, not in the journal, while recorded calls were not visited: {shown}"  # noqa: E501


def divergence(ctx: _Run, asked: str | None, kind: str | None) -> Diverged:
    """The run's divergence (the first one found wins); stops every other branch too."""
    if isinstance(ctx.stop, Diverged):
        return ctx.stop
    order = {name: rec.seq for name, rec in ctx.checkpoints.items()}
    unvisited = sorted(ctx.unvisited, key=lambda n: (order.get(n, 0), n))
    found = Diverged(ctx.execution_id, asked, kind, unvisited)
    ctx.stop = found
    return found


async def wait_for_frontier(ctx: _Run, name: str, kind: str, *, patch: bool = False) -> bool:
    """Hold a new call until the other branches of the run have replayed.

    True: every recorded name was visited (the call may go ahead). Otherwise a patch
    question gets False (the old code passed here); a step raises :class:`Diverged`.
    """
    if patch:
        ctx.patch_waiters += 1
    try:
        quiet = 0
        while ctx.unvisited:
            ctx.check_stop()
            seen = ctx.seq
            await asyncio.sleep(0 if quiet < QUIET_TICKS else GRACE_SECONDS)
            if ctx.seq != seen or ctx.busy or (not patch and ctx.patch_waiters):
                quiet = 0
                continue
            quiet += 1
            if quiet > QUIET_TICKS:
                break
    finally:
        if patch:
            ctx.patch_waiters -= 1
    if not ctx.unvisited:
        return True
    if patch:
        return False
    raise divergence(ctx, name, kind)
