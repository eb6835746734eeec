"""Runtime semantics that peers' test suites check (recoveries, timeouts, waits, cancel,
sends from a durable body), on both backends; the crash cases kill real processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import drain

import zart
from zart import (
    EventTimeoutError,
    ExecutionCancelledError,
    RetryPolicy,
    StepTimeoutError,
    TaskError,
    UsageError,
    durable,
    step,
)

from childproc import ChildProcess

RAN: list[str] = []


@step("s-mark-{label}")
async def mark(label: str) -> str:
    RAN.append(label)
    return label


# --------------------------------------------------------------------------- recoveries


def test_max_recoveries_one_allows_one_resume_after_a_crash(
    child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    env = {**child_env, "GUARANTEES_LOG": str(tmp_path / "log")}
    first = ChildProcess(
        env, ["recover-once", "ro-1"], stderr_path=tmp_path / "e1", module="guarantees_app"
    )
    assert first.wait() < 0  # killed itself in the step
    second = ChildProcess(
        env, ["recover-once", "ro-1"], stderr_path=tmp_path / "e2", module="guarantees_app"
    )
    assert second.wait() == 0
    assert second.lines[-1] == "RESULT ['before', 'survived']", second.lines
    status = app.status("ro-1")
    assert (status.status, status.attempts, status.recoveries) == ("completed", 2, 1)


@durable("s-sleepy", max_recoveries=1)
async def sleepy() -> int:
    for i in range(2):
        await zart.sleep(f"nap-{i}", 1.05)  # long enough to give up the worker slot
    return 2


def test_wake_ups_are_not_recoveries(app: zart.Zart) -> None:
    assert app.run(sleepy, execution_id="sleepy-1") == 2
    status = app.status("sleepy-1")
    assert (status.attempts, status.recoveries) == (3, 0)  # three runs, no recovery
    assert status.as_dict()["recoveries"] == 0


# --------------------------------------------------------------------------- timeouts

SWALLOWED: list[int] = []


@step("s-stubborn", timeout=0.2, retry=RetryPolicy(max_attempts=2, initial_delay=0.0))
async def stubborn() -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        SWALLOWED.append(1)
        return "swallowed the cancellation"
    return "slow"


@durable("s-timeout")
async def timeout_flow() -> str:
    return await stubborn()


def test_a_step_timeout_holds_even_if_the_body_swallows_the_cancellation(
    app: zart.Zart,
) -> None:
    SWALLOWED.clear()
    with pytest.raises(TaskError) as info:
        app.run(timeout_flow, execution_id="to-1")
    assert "timed out" in str(info.value)
    assert SWALLOWED == [1, 1]  # both attempts were cut off, and retried per policy
    (only,) = app.steps("to-1")
    assert (only.status, only.attempts) == ("failed", 2)
    assert "StepTimeoutError" in (only.error or "")
    assert issubclass(StepTimeoutError, TimeoutError)


# --------------------------------------------------------------------------- event deadlines


@durable("s-late")
async def late_flow() -> str:
    try:
        return str(await zart.wait_for_event("ev", timeout=1.2))
    except EventTimeoutError:
        return "timed-out"


def _events(app: zart.Zart, execution_id: str) -> list[tuple[str, Any]]:
    with app.ops_store.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT payload, consumed_by FROM zart_events WHERE execution_id = :e"),
            {"e": execution_id},
        )
        return [(r[0], r[1]) for r in rows]


def test_an_event_sent_after_the_deadline_is_not_delivered_on_resume(app: zart.Zart) -> None:
    app.submit(late_flow, execution_id="late-1")
    drain(app)  # it waits (deadline stored), and nothing runs it any more
    assert app.status("late-1").status == "waiting"
    time.sleep(1.4)
    app.send_event("late-1", "ev", "too late")
    assert app.run(late_flow, execution_id="late-1") == "timed-out"
    assert _events(app, "late-1") == [('"too late"', None)]  # left for a later wait


def test_an_event_sent_in_time_is_delivered_even_if_the_run_resumes_late(
    app: zart.Zart,
) -> None:
    app.submit(late_flow, execution_id="late-2")
    drain(app)
    app.send_event("late-2", "ev", "in time")
    # Nothing runs it before the deadline passes (no worker); then it resumes.
    time.sleep(1.4)
    assert app.run(late_flow, execution_id="late-2") == "in time"


# --------------------------------------------------------------------------- cancel


@durable("s-between")
async def between_flow(pause: float) -> list[str]:
    first = await mark("first")
    await asyncio.sleep(pause)  # not a step: the body is between two steps
    return [first, await mark("second")]


def test_no_step_starts_after_a_cancel_from_another_process(db_url: str) -> None:
    RAN.clear()
    runner, other = zart.Zart(db_url), zart.Zart(db_url)  # two processes' engines

    async def scenario() -> None:
        handle = await runner.start(between_flow, 0.5, execution_id="cb-1")
        while "first" not in RAN:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert other.cancel("cb-1") is True  # recorded while the body is between steps
        with pytest.raises(ExecutionCancelledError):
            await handle.result(timeout=10)

    try:
        asyncio.run(scenario())
    finally:
        runner.close()
        other.close()
    assert RAN == ["first"]  # the second step's body never started


def test_a_cancel_in_the_same_process_stops_at_the_next_step(app: zart.Zart) -> None:
    RAN.clear()

    async def scenario() -> None:
        handle = await app.start(between_flow, 0.3, execution_id="cb-2")
        while "first" not in RAN:
            await asyncio.sleep(0.01)
        assert app.cancel("cb-2") is True
        with pytest.raises(ExecutionCancelledError):
            await handle.result(timeout=10)

    asyncio.run(scenario())
    assert RAN == ["first"]


@durable("s-leaf")
async def leaf() -> str:
    return str(await zart.wait_for_event("never"))


@durable("s-middle")
async def middle() -> str:
    return await zart.run_child(leaf, name="leaf")


@durable("s-root")
async def root() -> str:
    return await zart.run_child(middle, name="middle")


def test_a_cancel_reaches_the_whole_tree_even_when_nothing_runs_it(app: zart.Zart) -> None:
    app.submit(root, execution_id="tree")

    async def until_the_leaf_waits() -> None:
        worker = app.worker(concurrency=4, poll_interval=0.02)
        task = asyncio.ensure_future(worker.run_async())
        deadline = time.monotonic() + 15
        while not any(s.id == "tree/middle/leaf" and s.status == "waiting" for s in app.list()):
            assert time.monotonic() < deadline, [(s.id, s.status) for s in app.list()]
            await asyncio.sleep(0.05)
        worker.stop()  # the parents, polling for their children, are handed back
        await task

    asyncio.run(until_the_leaf_waits())
    assert {s.id: s.status for s in app.list()} == {
        "tree": "pending",
        "tree/middle": "pending",
        "tree/middle/leaf": "waiting",
    }
    assert app.cancel("tree") is True
    assert {s.id: s.status for s in app.list()} == {
        "tree": "cancelled",
        "tree/middle": "cancelled",
        "tree/middle/leaf": "cancelled",
    }


# --------------------------------------------------------------------------- waiters


@durable("s-pending")
async def pending_flow() -> str:
    return await mark("pending-step")


def test_a_result_waiter_never_runs_the_execution(app: zart.Zart) -> None:
    RAN.clear()
    handle = app.submit(pending_flow, execution_id="w-1")

    async def wait_briefly() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await handle.result(timeout=0.3)

    asyncio.run(wait_briefly())
    assert RAN == []  # it only waited: no step started, nothing was handed back
    assert app.status("w-1").status == "pending"
    assert app.status("w-1").attempts == 0
    assert app.run(pending_flow, execution_id="w-1") == "pending-step"
    assert RAN == ["pending-step"]


# --------------------------------------------------------------------------- zart.wait


@step("s-fast")
async def fast() -> str:
    return "fast"


@step("s-slow")
async def slow() -> str:
    await asyncio.sleep(0.4)
    return "slow"


CRASH_ONCE: list[int] = []


class _Crash(BaseException):
    """Stands in for a process that dies after the wait (the execution is handed back)."""


@durable("s-first-done")
async def first_done() -> list[str]:
    tasks = [asyncio.ensure_future(fast()), asyncio.ensure_future(slow())]
    done, pending = await zart.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)  # both steps are checkpointed before the crash
    if not CRASH_ONCE:
        CRASH_ONCE.append(1)
        raise _Crash
    return sorted(t.result() for t in done)


def test_zart_wait_returns_the_same_split_on_replay(app: zart.Zart) -> None:
    CRASH_ONCE.clear()
    with pytest.raises(_Crash):
        app.run(first_done, execution_id="fd-1")
    # Replayed, both steps finish at once; the journal still says only "fast" had.
    assert app.run(first_done, execution_id="fd-1") == ["fast"]
    kinds = {s.name: s.kind for s in app.steps("fd-1")}
    assert kinds["zart.wait-1"] == "wait"


def test_zart_wait_needs_an_ordered_sequence() -> None:
    async def call() -> None:
        pending = asyncio.sleep(0)
        try:
            await zart.wait({pending})  # type: ignore[arg-type]
        finally:
            pending.close()  # refused before it was awaited

    with pytest.raises(TypeError, match="list or tuple"):
        asyncio.run(call())


# --------------------------------------------------------------------------- sends

SENDS: list[str] = []


@durable("s-target")
async def target() -> list[str]:
    return [str(await zart.wait_for_event("ping")), str(await zart.wait_for_event("ping2"))]


def _app_of_test() -> zart.Zart:
    return APP["app"]


APP: dict[str, zart.Zart] = {}


@step("s-send")
def send_ping(to: str) -> str:
    SENDS.append(to)
    _app_of_test().send_event(to, "ping", "from a step")
    return "sent"


@durable("s-sender")
async def sender(to: str, in_body: bool) -> str:
    if in_body:
        _app_of_test().send_event(to, "ping", "from the body")
        return "unreachable"
    result = await send_ping(to)
    await zart.sleep("settle", 1.05)  # suspends: the body is replayed afterwards
    return result


def test_a_send_from_a_durable_body_is_refused_and_from_a_step_sent_once(
    app: zart.Zart,
) -> None:
    APP["app"] = app
    SENDS.clear()
    app.submit(target, execution_id="tgt")
    with pytest.raises(TaskError) as info:
        app.run(sender, "tgt", True, execution_id="snd-body")
    assert isinstance(info.value.__cause__, UsageError)
    assert "Send it from a step" in str(info.value)
    assert app.run(sender, "tgt", False, execution_id="snd-step") == "sent"
    assert SENDS == ["tgt"]  # the body was replayed after its sleep; the send was not
    assert [p for p, _ in _events(app, "tgt")] == ['"from a step"']


# --------------------------------------------------------------------------- resume


@durable("s-resumable")
async def resumable() -> list[str]:
    first = await mark("r-first")
    go = str(await zart.wait_for_event("go"))
    return [first, go, await mark("r-second")]


def test_resume_continues_a_cancelled_execution_at_its_first_unfinished_step(
    app: zart.Zart,
) -> None:
    RAN.clear()
    app.submit(resumable, execution_id="res-1")
    drain(app)
    assert app.status("res-1").status == "waiting"
    assert app.cancel("res-1") is True
    assert app.resume("res-1").status == "pending"
    with pytest.raises(zart.ExecutionConflictError, match="not cancelled"):
        app.resume("res-1")  # pending now: nothing to resume
    app.send_event("res-1", "go", "go")
    assert app.run(resumable, execution_id="res-1") == ["r-first", "go", "r-second"]
    assert RAN == ["r-first", "r-second"]  # the first step was not run again
    assert [e.action for e in app.audit_log("res-1")] == ["resume"]
