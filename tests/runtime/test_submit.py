"""``Zart.submit``: the one public door for creating executions, and the typed handle."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

import zart
from zart import ExecutionConflictError, durable, step

RUNS: list[int] = []


@step("square-{x}")
async def square(x: int) -> int:
    RUNS.append(x)
    return x * x


@durable("submit-squares")
async def squares(n: int) -> list[int]:
    return [await square(i) for i in range(n)]


@durable("submit-other")
async def other(n: int) -> int:
    return n


def test_submit_creates_without_running_and_a_worker_finishes_it(app: zart.Zart) -> None:
    RUNS.clear()
    handle = app.submit(squares, 3, execution_id="sub-1")
    assert handle.created and handle.execution_id == "sub-1"
    assert app.status("sub-1").status == "pending"
    assert RUNS == []  # nothing ran: submit only creates

    async def work() -> list[int]:
        worker = app.worker(concurrency=2, poll_interval=0.05)
        await worker.run_async(until_idle=True)
        return await handle.result(timeout=10)

    assert asyncio.run(work()) == [0, 1, 4]
    assert RUNS == [0, 1, 2]


def test_submit_of_an_existing_id_attaches_and_never_replaces_the_input(app: zart.Zart) -> None:
    RUNS.clear()
    assert app.run(squares, 2, execution_id="sub-2") == [0, 1]
    again = app.submit(squares, 5, execution_id="sub-2")  # other input: ignored
    assert not again.created
    assert asyncio.run(again.result()) == [0, 1]
    bare = app.submit(squares, execution_id="sub-2")  # no input needed to attach
    assert not bare.created and asyncio.run(bare.result()) == [0, 1]
    assert RUNS == [0, 1]  # nothing ran twice


def test_an_id_of_another_durable_is_a_conflict_and_changes_nothing(app: zart.Zart) -> None:
    app.submit(squares, 1, execution_id="sub-3")
    with pytest.raises(ExecutionConflictError, match="already belongs to durable"):
        app.submit(other, 1, execution_id="sub-3")
    with pytest.raises(ExecutionConflictError):
        app.run(other, 1, execution_id="sub-3")
    status = app.status("sub-3")
    assert (status.durable_name, status.status) == ("submit-squares", "pending")


def test_submit_by_durable_name(app: zart.Zart) -> None:
    handle = app.submit("submit-other", 7)
    assert handle.durable is other and app.run(other, execution_id=handle.execution_id) == 7


def test_handle_result_is_typed_for_mypy(tmp_path: Path) -> None:
    """``ExecutionHandle[R]``: mypy knows what ``await handle.result()`` returns."""
    from mypy import api

    source = textwrap.dedent(
        """
        import zart

        @zart.durable("typed")
        async def typed(n: int) -> list[int]:
            return [n]

        async def main(app: zart.Zart) -> None:
            ok: list[int] = await app.submit(typed, 1).result()
            started = await app.start(typed, 2)
            bad: str = await started.result()
            ran: list[int] = app.run(typed, 3)
        """
    )
    module = tmp_path / "typed_use.py"
    module.write_text(source, encoding="utf-8")
    out, _err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(module)]
    )
    assert status == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out
    assert "typed_use.py:11:" in errors[0] and 'has type "list[int]"' in errors[0], out
