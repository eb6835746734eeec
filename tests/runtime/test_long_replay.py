"""A long execution's resume reads its stored results a page at a time instead of
holding every one at once (docs/architecture.md, "Life of an execution")."""

from __future__ import annotations

from typing import Any

import zart
from zart._execution._journal import OUTPUT_PAGE

STEPS = 2 * OUTPUT_PAGE + 137


@zart.step("piece-{i}")
async def piece(i: int) -> dict[str, Any]:
    return {"i": i, "square": i * i, "label": f"piece {i}"}


@zart.durable("long-replay")
async def long_replay(n: int) -> int:
    total = 0
    for i in range(n):
        total += (await piece(i))["square"]
    bonus: int = await zart.wait_for_event("bonus")
    return total + bonus


def test_a_resume_reads_results_in_pages_and_returns_the_same_values(app: zart.Zart) -> None:
    journal = app._journal
    eid = "long-replay-1"
    handle = app.submit(long_replay, STEPS, execution_id=eid)
    app.worker().run(until_idle=True)  # runs every step, then waits for the event
    assert app.status(eid).status == "waiting"

    loaded = journal.load_journal(eid)
    stored = [r for r in loaded.values() if r.kind == "step"]
    assert len(stored) == STEPS and all(r.output is None for r in stored)

    pages: list[int] = []
    original = journal.load_outputs

    def spy(execution_id: str, names: list[str]) -> dict[str, str | None]:
        pages.append(len(names))
        return original(execution_id, names)

    journal.load_outputs = spy  # type: ignore[method-assign]
    try:
        app.send_event(eid, "bonus", 7)
        assert app.run(long_replay, execution_id=eid) == sum(i * i for i in range(STEPS)) + 7
    finally:
        del journal.load_outputs
    # Every stored result was read once, in pages no larger than OUTPUT_PAGE.
    assert sum(pages) == STEPS and max(pages) == OUTPUT_PAGE and len(pages) == 3
    assert handle.execution_id == eid


def test_a_replayed_result_is_not_kept_once_returned(app: zart.Zart) -> None:
    """After the replay passed them, the run's journal holds no step results."""
    seen: list[int] = []

    @zart.durable("long-replay-held")
    async def held(n: int) -> int:
        total = 0
        for i in range(n):
            total += (await piece(i))["square"]
        ctx = zart._execution._context.current_execution.get()
        assert ctx is not None
        results = [r for r in ctx.checkpoints.values() if r.kind == "step"]
        seen.append(sum(1 for r in results if r.output is not None))
        return total + await zart.wait_for_event("go")

    eid = "long-replay-2"
    app.submit(held, STEPS, execution_id=eid)
    app.worker().run(until_idle=True)
    app.send_event(eid, "go", 1)
    assert app.run(held, execution_id=eid) == sum(i * i for i in range(STEPS)) + 1
    assert seen[-1] == 0  # the replaying run: every result dropped once returned
