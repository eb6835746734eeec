"""Durable primitives across real process deaths: SIGKILL, then a new process resumes.

The flows live in ``primitives_app`` and run in child processes (``python -m
primitives_app run FLOW`` / ``worker``); their step bodies log every side effect to a
file that survives SIGKILL, so each test can count exactly which bodies ran.
Where durability is not the point (misuse errors, fallbacks, step timeouts) the
flows run in this process.
"""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import zart
from zart import (
    DuplicateStepError,
    EventTimeoutError,
    RetryPolicy,
    StepError,
    TaskError,
    durable,
    step,
)

from primitives_app import (
    ORDERS_TABLE,
    approvals_flow,
    captured_flow,
    deadline_flow,
    effects,
    fanout_flow,
    orders_flow,
    parent_flow,
    part,
    quick_flow,
    run_flow,
    spawn,
    ticks_flow,
)


@pytest.fixture
def app(db_url: str) -> Iterator[zart.Zart]:
    engine = zart.Zart(db_url, lease_seconds=2)
    yield engine
    engine.close()


def wait_for(app: zart.Zart, execution_id: str, *statuses: str, timeout: float = 15.0) -> Any:
    """Poll until the execution has one of ``statuses``; return its ExecutionStatus."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = app.status(execution_id)
        except zart.ExecutionNotFoundError:
            last = None
        if last is not None and last.status in statuses:
            return last
        time.sleep(0.02)
    raise AssertionError(f"{execution_id} never reached {statuses}; last: {last}")


def ts(moment: Any) -> float:
    return float(moment.timestamp())


def step_rows(app: zart.Zart, execution_id: str) -> dict[str, str]:
    return {s.name: s.status for s in app.steps(execution_id)}


def create(app: zart.Zart, fn: Any, execution_id: str, *args: Any) -> None:
    """Create an execution (pending) without running it."""
    app.submit(fn, *args, execution_id=execution_id)


# --------------------------------------------------------------------------- timers


def test_sleep_gives_up_its_slot_and_wakes_on_time_after_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    first = run_flow(child_env, tmp_path, "timer", "nap-1", "nap-1", 2.5)
    first.expect("RAN before-nap")
    st = wait_for(app, "nap-1", "sleeping")
    # Asleep: no lease, no process needed; the wake time is stored.
    assert st.lease_owner is None
    wake_at = ts(st.wake_at)
    assert abs(wake_at - (first.ran_at("before-nap") + 2.5)) < 0.3
    first.kill()

    # A worker with ONE slot runs another execution while nap-1 sleeps.
    create(app, quick_flow, "quick-1", "quick-1", 3)
    time.sleep(max(0.0, wake_at - 2.0 - time.time()))
    worker = spawn(child_env, tmp_path, "worker", "--concurrency", "1").finish(timeout=20)

    quick = app.status("quick-1")
    assert quick.status == "completed"
    assert ts(quick.finished_at) < wake_at  # ran in the slot the sleeper gave up

    nap = app.status("nap-1")
    assert nap.status == "completed"
    result = app.result("nap-1")
    # Woke at the original wake time (or at once, if the restart came later), not 2.5 s
    # after the restart.
    assert wake_at - 0.01 <= result["woke"] < max(wake_at, worker.ready) + 0.4
    assert effects(tmp_path, "nap-1") == {"before-nap": 1, "after-nap": 1}
    assert worker.ran == ["quick-0", "quick-1", "quick-2", "after-nap"]
    assert step_rows(app, "nap-1") == {
        "before-nap": "completed",
        "nap": "completed",
        "woke": "completed",
        "after-nap": "completed",
    }
    assert [s.kind for s in app.steps("nap-1")] == ["step", "sleep", "now", "step"]


def test_elapsed_sleep_returns_at_once_on_replay(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    # nap-2 is killed while asleep and resumed after its wake time; nap-3 is killed
    # right after its (short, in-process) sleep completed and was checkpointed.
    first = run_flow(child_env, tmp_path, "timer", "nap-2", "nap-2", 1.2)
    second = run_flow(
        child_env, tmp_path, "timer", "nap-3", "nap-3", 0.3, kill_at="before:after-nap"
    )
    first.expect("RAN before-nap")
    wake_at = ts(wait_for(app, "nap-2", "sleeping").wake_at)
    first.kill()
    nap_2_wake = app.steps("nap-2")[1].output_preview
    second.expect("KILLED")
    assert second.wait() == -9
    assert step_rows(app, "nap-3")["nap"] == "completed"
    woke_3 = app.steps("nap-3")[2]
    time.sleep(max(0.0, wake_at + 0.1 - time.time()))

    children = {
        eid: run_flow(child_env, tmp_path, "timer", eid, eid, 1.2) for eid in ("nap-2", "nap-3")
    }
    for eid, child in children.items():
        child.expect("RESULT")
        assert child.ran == ["after-nap"]
        assert child.ran_at("after-nap") - child.ready < 1.0, f"{eid} slept again"
        child.finish()
        assert effects(tmp_path, eid) == {"before-nap": 1, "after-nap": 1}
        # One claim per process: a second sleep would have suspended and woken again.
        assert app.status(eid).attempts == 2
    assert app.steps("nap-3")[2] == woke_3  # zart.now("woke") was not taken again
    assert app.steps("nap-2")[1].output_preview == nap_2_wake  # the wake time stayed


def test_sleep_until_keeps_its_moment_across_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    first = run_flow(child_env, tmp_path, "alarm", "alarm-1", "alarm-1", 1.5)
    when = ts(wait_for(app, "alarm-1", "sleeping").wake_at)
    first.kill()
    time.sleep(0.3)
    second = run_flow(child_env, tmp_path, "alarm", "alarm-1", "alarm-1", 1.5).finish()
    rang = second.result()
    assert when <= rang < max(when, second.ready) + 0.5
    assert [s.name for s in app.steps("alarm-1")] == ["set-at", "alarm", "rang"]


# --------------------------------------------------------------------------- events


def test_events_before_and_during_waits_survive_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    create(app, approvals_flow, "ev-1", "ev-1", 3, None)
    # Sent before the execution even started: kept until its wait takes it.
    app.send_event("ev-1", "approval-1", {"by": "ben"})

    first = run_flow(child_env, tmp_path, "approvals", "ev-1", "ev-1", 3, None)
    st = wait_for(app, "ev-1", "waiting")
    assert st.lease_owner is None and st.wake_at is None  # no timeout: waits for the event
    first.kill()
    assert effects(tmp_path, "ev-1") == {}

    # Sent while nobody runs it.
    app.send_event("ev-1", "approval-0", {"by": "ana"})
    second = run_flow(child_env, tmp_path, "approvals", "ev-1", "ev-1", 3, None)
    second.expect("RAN record-1")
    wait_for(app, "ev-1", "waiting")
    # Sent to a waiting execution whose `run` process is polling.
    app.send_event("ev-1", "approval-2", {"by": "cy"})
    second.finish()
    assert second.result() == [{"by": "ana"}, {"by": "ben"}, {"by": "cy"}]
    assert effects(tmp_path, "ev-1") == {"record-0": 1, "record-1": 1, "record-2": 1}
    assert consumed(app, "ev-1") == [
        ("approval-1", "approval-1"),
        ("approval-0", "approval-0"),
        ("approval-2", "approval-2"),
    ]
    # Replay: the same payloads, nothing consumed twice.
    assert app.run(approvals_flow, "ev-1", 3, None, execution_id="ev-1") == second.result()


def consumed(app: zart.Zart, execution_id: str) -> list[tuple[str, str | None]]:
    with app.ops_store.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT name, consumed_by FROM zart_events WHERE execution_id = :e ORDER BY id"
            ),
            {"e": execution_id},
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_same_event_name_twice_goes_to_one_wait_oldest_first(app: zart.Zart) -> None:
    """Decision: a wait takes the OLDEST unconsumed event of its name, exactly once.

    Wait names are step names, so one execution has one wait per name; a second
    event of a name already consumed stays stored, unconsumed, and reaches no wait.
    Loops give each wait its own name (``approval-{i}``) and send one event per name.
    """
    create(app, approvals_flow, "ev-2", "ev-2", 2, 5.0)
    app.send_event("ev-2", "approval-0", "first")
    app.send_event("ev-2", "approval-0", "second")
    app.send_event("ev-2", "approval-1", "other")
    assert app.run(approvals_flow, "ev-2", 2, 5.0, execution_id="ev-2") == ["first", "other"]
    assert consumed(app, "ev-2") == [
        ("approval-0", "approval-0"),
        ("approval-0", None),
        ("approval-1", "approval-1"),
    ]

    @durable("prim-same-wait-twice")
    async def twice() -> list[Any]:
        return [await zart.wait_for_event("dup"), await zart.wait_for_event("dup")]

    create(app, twice, "ev-3")
    app.send_event("ev-3", "dup", 1)
    app.send_event("ev-3", "dup", 2)
    with pytest.raises(TaskError) as info:
        app.run(twice, execution_id="ev-3")
    assert info.value.error_type == "DuplicateStepError"


def test_event_timeout_deadline_is_stored_across_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    first = run_flow(child_env, tmp_path, "approvals", "ev-4", "ev-4", 1, 1.5)
    st = wait_for(app, "ev-4", "waiting")
    deadline = ts(st.wake_at)
    first.kill()
    time.sleep(0.3)
    second = run_flow(child_env, tmp_path, "approvals", "ev-4", "ev-4", 1, 1.5).finish()
    assert second.result() == ["timed-out"]  # EventTimeoutError, caught by the body
    # Timed out at the stored deadline, not 1.5 s after the restart.
    assert deadline <= second.ran_at("record-0") < max(deadline, second.ready) + 0.7
    assert step_rows(app, "ev-4") == {"approval-0": "failed", "record-0": "completed"}
    # A finished execution refuses a late event (nothing could ever take it); the
    # result stays the same on replay.
    with pytest.raises(zart.ExecutionConflictError, match="already completed"):
        app.send_event("ev-4", "approval-0", "too late")
    assert app.run(approvals_flow, "ev-4", 1, 1.5, execution_id="ev-4") == ["timed-out"]


def test_event_sent_between_the_check_and_the_suspend_is_not_lost(app: zart.Zart) -> None:
    """The wait found no event, and the event arrives before the execution is marked
    waiting: the execution must still wake for it (not sleep until its timeout)."""
    storage = app._journal
    real = storage.suspend_execution
    sent: list[str] = []

    def suspend(execution_id: str, token: str, status: str, wake_at: float | None) -> bool:
        if status == "waiting" and not sent:
            sent.append(execution_id)
            # As another process would: outside this execution's context.
            contextvars.Context().run(app.send_event, execution_id, "approval-0", "in the gap")
        return real(execution_id, token, status, wake_at)

    storage.suspend_execution = suspend  # type: ignore[method-assign]
    started = time.monotonic()
    assert app.run(approvals_flow, "ev-5", 1, 10.0, execution_id="ev-5") == ["in the gap"]
    assert sent == ["ev-5"]
    assert time.monotonic() - started < 3


# --------------------------------------------------------------------------- cancel


def test_cancel_running_execution_stops_at_next_step_boundary(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    app.ops_store.ensure_schema()  # connected: cancel() below is one quick write
    child = run_flow(child_env, tmp_path, "ticks", "tick-1", "tick-1", 50, 0.15)
    child.expect("RAN tick-1")
    assert app.cancel("tick-1") is True
    cancelled_at = time.time()
    child.expect("CANCELLED", timeout=5)
    child.finish()
    # The step in flight may finish its body (its checkpoint is refused); no later
    # step starts.
    late = [name for name in child.ran if child.ran_at(name) > cancelled_at]
    assert len(late) <= 1, late
    st = app.status("tick-1")
    assert st.status == "cancelled" and st.lease_owner is None
    done = [s.name for s in app.steps("tick-1")]
    assert all(s.status == "completed" for s in app.steps("tick-1"))
    assert set(done) <= set(child.ran) and len(child.ran) - len(done) <= 1
    assert len(child.ran) < 50
    assert app.cancel("tick-1") is False
    with pytest.raises(zart.ExecutionCancelledError):
        app.run(ticks_flow, "tick-1", 50, 0.15, execution_id="tick-1")


def test_cancel_is_immediate_while_sleeping_or_waiting(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    sleeper = run_flow(child_env, tmp_path, "timer", "c-sleep", "c-sleep", 60)
    waiter = run_flow(child_env, tmp_path, "approvals", "c-wait", "c-wait", 1, None)
    wait_for(app, "c-sleep", "sleeping")
    wait_for(app, "c-wait", "waiting")
    for eid, child in (("c-sleep", sleeper), ("c-wait", waiter)):
        cancelled = time.monotonic()
        assert app.cancel(eid) is True
        child.expect("CANCELLED", timeout=5)
        assert time.monotonic() - cancelled < 3.0
        child.finish()
        assert app.status(eid).status == "cancelled"
    with pytest.raises(zart.ExecutionConflictError, match="already cancelled"):
        app.send_event("c-wait", "approval-0", "after cancel")  # refused, nothing stored
    assert app.status("c-wait").status == "cancelled"
    assert effects(tmp_path, "c-wait") == {}
    assert effects(tmp_path, "c-sleep") == {"before-nap": 1}


def test_cancel_finished_execution_is_a_noop(
    app: zart.Zart, db_url: str, child_env: dict[str, str]
) -> None:
    assert app.run(quick_flow, "done-1", 2, execution_id="done-1") == 1
    assert app.cancel("done-1") is False
    assert app.status("done-1").status == "completed"
    assert app.result("done-1") == 1
    out = subprocess.run(
        [sys.executable, "-m", "zart", "--database-url", db_url, "cancel", "done-1"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "already completed; nothing to cancel" in out.stdout
    with pytest.raises(zart.ExecutionNotFoundError):
        app.cancel("no-such-execution")


# --------------------------------------------------------------------------- children


def test_child_resumes_after_kill_mid_child(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    first = run_flow(child_env, tmp_path, "parent", "par-1", "par-1", 4, kill_at="before:c-2")
    first.expect("KILLED")
    assert first.wait() == -9
    kid = app.status("par-1/kid")  # deterministic child id "<parent id>/<name>"
    assert kid.parent_id == "par-1" and kid.durable_name == "prim-child"
    assert step_rows(app, "par-1/kid") == {"c-0": "completed", "c-1": "completed"}

    # A worker resumes both (they may run in separate tasks: the parent waits for the child).
    worker = spawn(child_env, tmp_path, "worker", "--concurrency", "2").finish()
    assert sorted(worker.ran) == ["c-2", "c-3", "p-after"]
    assert app.result("par-1") == {"kid": [0, 10, 20, 30], "total": 60}
    assert effects(tmp_path, "par-1") == {"p-before": 1, "p-after": 1}
    assert effects(tmp_path, "par-1/kid") == {"c-0": 1, "c-1": 1, "c-2": 1, "c-3": 1}
    assert app.steps("par-1")[1].kind == "child"


def test_parent_gets_finished_childs_result_after_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_flow(child_env, tmp_path, "parent", "par-2", "par-2", 2, kill_at="after-commit:kid")
    first.expect("KILLED")
    assert first.wait() == -9
    assert app.status("par-2/kid").status == "completed"
    # Make it the worse crash: the child finished, the parent's checkpoint of it never
    # committed. The parent must find the same child (by id) and take its stored result.
    with app.ops_store.db.engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM zart_steps WHERE execution_id = 'par-2' AND step_name = 'kid'")
        )
    # Resumed here, in this process.
    monkeypatch.setenv("PRIM_LOG", str(tmp_path / "effects.log"))
    assert app.run(parent_flow, "par-2", 2, execution_id="par-2") == {"kid": [0, 10], "total": 10}
    assert effects(tmp_path, "par-2") == {"p-before": 1, "p-after": 1}
    assert effects(tmp_path, "par-2/kid") == {"c-0": 1, "c-1": 1}
    assert app.list(durable_name="prim-child")[0].id == "par-2/kid"
    assert len(app.list(durable_name="prim-child")) == 1


def test_cancelled_child_fails_the_parent_cleanly(app: zart.Zart) -> None:
    @durable("prim-sleepy-child")
    async def sleepy() -> int:
        await zart.sleep("zz", 30)
        return 1

    @durable("prim-parent-of-sleepy")
    async def parent() -> str:
        try:
            await zart.run_child(sleepy, name="kid")
        except TaskError as exc:
            return f"child ended: {exc.error_type}"
        return "child finished"

    async def main() -> Any:
        handle = await app.start(parent, execution_id="par-3")
        while True:
            await asyncio.sleep(0.02)
            try:
                if app.status("par-3/kid").status == "sleeping":
                    break
            except zart.ExecutionNotFoundError:
                pass
        assert app.cancel("par-3/kid") is True
        return await handle.result(timeout=10)

    assert asyncio.run(main()) == "child ended: ExecutionCancelledError"
    assert app.status("par-3").status == "completed"
    assert app.status("par-3").lease_owner is None


# --------------------------------------------------------------------------- parallel steps


def test_gathered_steps_resume_only_the_missing_ones_after_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = [i * i for i in range(6)]
    first = run_flow(child_env, tmp_path, "fanout", "fan-1", "fan-1", 6, kill_at="before:part-3")
    first.expect("KILLED")
    assert first.wait() == -9
    assert sorted(first.ran) == ["part-0", "part-1", "part-2"]
    # Some checkpoints committed, the others not.
    assert step_rows(app, "fan-1") == dict.fromkeys(["part-0", "part-1", "part-2"], "completed")

    # Resumed here, in this process: only the missing calls run.
    monkeypatch.setenv("PRIM_LOG", str(tmp_path / "effects.log"))
    assert app.run(fanout_flow, "fan-1", 6, execution_id="fan-1") == expected
    assert effects(tmp_path, "fan-1") == {f"part-{i}": 1 for i in range(6)}
    assert step_rows(app, "fan-1") == {f"part-{i}": "completed" for i in range(6)}
    # Replay of the finished fan-out runs nothing.
    assert app.run(fanout_flow, "fan-1", 6, execution_id="fan-1") == expected
    assert effects(tmp_path, "fan-1") == {f"part-{i}": 1 for i in range(6)}
    # First run, uninterrupted, in this process: the same result.
    assert app.run(fanout_flow, "fan-2", 6, execution_id="fan-2") == expected


def test_duplicate_name_among_gathered_steps(app: zart.Zart) -> None:
    @durable("prim-fanout-dup")
    async def dup(eid: str) -> list[int]:
        return list(await asyncio.gather(part(eid, 0), part(eid, 1), part(eid, 0)))

    with pytest.raises(TaskError) as info:
        app.run(dup, "fan-dup", execution_id="fan-dup")
    assert info.value.error_type == "DuplicateStepError"
    assert isinstance(info.value.cause, DuplicateStepError)
    assert "part-0" in str(info.value)


@pytest.mark.parametrize("how", ["gather", "taskgroup"])
def test_parallel_waits_and_sleeps_suspend_and_resume(how: str, app: zart.Zart) -> None:
    if how == "taskgroup" and sys.version_info < (3, 11):
        pytest.skip("asyncio.TaskGroup needs Python 3.11")

    @durable(f"prim-parallel-waits-{how}")
    async def flow() -> list[Any]:
        waits = [
            zart.wait_for_event("yes-a", timeout=10),
            zart.wait_for_event("yes-b", timeout=10),
            zart.sleep("pause", 1.05),
        ]
        if how == "gather":
            return list(await asyncio.gather(*waits))
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(w) for w in waits]
        return [t.result() for t in tasks]

    eid = f"par-waits-{how}"

    async def main() -> Any:
        handle = await app.start(flow, execution_id=eid)
        app.send_event(eid, "yes-b", "B")
        while app.status(eid).status not in ("waiting", "sleeping"):
            await asyncio.sleep(0.02)
        app.send_event(eid, "yes-a", "A")
        return await handle.result(timeout=10)

    started = time.monotonic()
    assert asyncio.run(main()) == ["A", "B", None]
    assert time.monotonic() - started < 5
    assert step_rows(app, eid) == dict.fromkeys(["yes-a", "yes-b", "pause"], "completed")


# --------------------------------------------------------------------------- captured values


def test_captured_values_are_the_same_after_kill(
    app: zart.Zart,
    child_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = run_flow(child_env, tmp_path, "captured", "cap-1", "cap-1", kill_at="before:use-values")
    first.expect("KILLED")
    assert first.wait() == -9
    captured = first.field("CAPTURED")
    assert captured is not None

    # Resumed here, in this process.
    monkeypatch.setenv("PRIM_LOG", str(tmp_path / "effects.log"))
    capsys.readouterr()
    result = app.run(captured_flow, "cap-1", execution_id="cap-1")
    assert f"CAPTURED {captured}" in capsys.readouterr().out.splitlines()
    when, value, ident = captured.split(" ")
    assert result["when"] == when and repr(result["value"]) == value and result["ident"] == ident
    assert result["used"] == f"{when}|{value}|{ident}"
    assert effects(tmp_path, "cap-1") == {"use-values": 1}
    assert [(s.name, s.kind) for s in app.steps("cap-1")] == [
        ("t0", "now"),
        ("draw", "capture"),
        ("ident", "capture"),
        ("use-values", "step"),
    ]


# --------------------------------------------------------------------------- transactional steps


def order_rows(app: zart.Zart, execution_id: str) -> list[int]:
    with app.ops_store.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT idx FROM {ORDERS_TABLE} WHERE execution_id = :e ORDER BY idx"),
            {"e": execution_id},
        ).all()
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("kill_at", "rows_after_kill", "body_runs"),
    [
        ("after-insert:order-1", [0], {"order-0": 1, "order-1": 2, "order-2": 1}),
        ("after-commit:order-1", [0, 1], {"order-0": 1, "order-1": 1, "order-2": 1}),
    ],
    ids=["kill-between-insert-and-commit", "kill-after-commit"],
)
def test_transactional_step_writes_each_row_exactly_once(
    kill_at: str,
    rows_after_kill: list[int],
    body_runs: dict[str, int],
    app: zart.Zart,
    child_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eid = "ord-" + kill_at.replace(":", "-")  # the user table is not reset between tests
    first = run_flow(child_env, tmp_path, "orders", eid, eid, 3, kill_at=kill_at)
    first.expect("KILLED")
    assert first.wait() == -9
    # The row and the checkpoint committed together, or neither did.
    assert order_rows(app, eid) == rows_after_kill
    done = [f"order-{i}" for i in rows_after_kill]
    assert step_rows(app, eid) == dict.fromkeys(done, "completed")

    # Resumed here, in this process.
    monkeypatch.setenv("PRIM_LOG", str(tmp_path / "effects.log"))
    assert app.run(orders_flow, eid, 3, execution_id=eid) == 3
    assert order_rows(app, eid) == [0, 1, 2]  # each row exactly once
    assert effects(tmp_path, eid) == body_runs


def test_transactional_step_failure_rolls_back_its_rows(app: zart.Zart) -> None:
    from primitives_app import create_orders_table

    create_orders_table(app.database_url)
    attempts: list[int] = []

    @step("prim-tx-flaky", transactional=True, retry=RetryPolicy(3, initial_delay=0.01))
    async def flaky(eid: str) -> int:
        conn = zart.transaction()
        conn.execute(
            sa.text(f"INSERT INTO {ORDERS_TABLE} (execution_id, idx) VALUES (:e, :i)"),
            {"e": eid, "i": len(attempts)},
        )
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("flaky")
        return len(attempts)

    @durable("prim-tx-flaky-flow")
    async def flow(eid: str) -> int:
        return await flaky(eid)

    assert app.run(flow, "ord-2", execution_id="ord-2") == 3
    assert order_rows(app, "ord-2") == [2]  # the two failed attempts were rolled back


def test_transactional_step_body_must_not_suspend(app: zart.Zart) -> None:
    """Its transaction is open on the connection all executions in this process share:
    if the body let other executions run, their checkpoints would land in it."""
    from primitives_app import create_orders_table

    create_orders_table(app.database_url)

    @step("prim-tx-awaits", transactional=True)
    async def awaits(eid: str) -> int:
        zart.transaction().execute(
            sa.text(f"INSERT INTO {ORDERS_TABLE} (execution_id, idx) VALUES (:e, 0)"), {"e": eid}
        )
        await asyncio.sleep(0.1)  # other executions would run now
        return 1

    @durable("prim-tx-awaits-flow")
    async def tx_flow(eid: str) -> str:
        try:
            await awaits(eid)
        except StepError as exc:
            return str(exc)
        return "committed"

    async def main() -> list[Any]:
        handles = [
            await app.start(tx_flow, "ord-3", execution_id="ord-3"),
            await app.start(quick_flow, "ord-3-neighbour", 4, execution_id="ord-3-neighbour"),
        ]
        return await asyncio.gather(*(h.result(timeout=10) for h in handles))

    message, total = asyncio.run(main())
    assert "must not wait" in message and "prim-tx-awaits" in message
    assert total == 6  # the execution running beside it was not disturbed
    assert order_rows(app, "ord-3") == []  # rolled back
    assert step_rows(app, "ord-3-neighbour") == {f"quick-{i}": "completed" for i in range(4)}


# --------------------------------------------------------------------------- deadlines, timeouts


def test_execution_deadline_counts_from_creation_across_kill(
    app: zart.Zart, child_env: dict[str, str], tmp_path: Path
) -> None:
    early = run_flow(child_env, tmp_path, "deadline", "dl-1", "dl-1")
    late = run_flow(child_env, tmp_path, "deadline", "dl-2", "dl-2")
    early.expect("RAN slow")
    late.expect("RAN slow")
    early.kill()
    late.kill()

    # Resumed before the deadline: the stuck step runs again and is interrupted at
    # creation + 2 s, not 2 s after the restart.
    resumed = run_flow(child_env, tmp_path, "deadline", "dl-1", "dl-1")
    resumed.expect("FAILED", timeout=10)
    resumed.finish()
    assert resumed.field("FAILED").startswith("DeadlineExceeded")  # type: ignore[union-attr]
    st = app.status("dl-1")
    assert st.status == "failed" and st.error.startswith("DeadlineExceeded")
    created = ts(st.created_at)
    assert created + 2.0 <= ts(st.finished_at) < max(created + 2.0, resumed.ready) + 0.6
    if resumed.ready < created + 1.5:  # (a heavily loaded machine may restart it later)
        assert resumed.ran == ["slow"]

    # Resumed after the deadline: fails at once, without running the step again.
    created = ts(app.status("dl-2").created_at)
    time.sleep(max(0.0, created + 2.05 - time.time()))
    again = run_flow(child_env, tmp_path, "deadline", "dl-2", "dl-2").finish()
    assert again.field("FAILED").startswith("DeadlineExceeded")  # type: ignore[union-attr]
    assert again.ran == []
    assert effects(tmp_path, "dl-2") == {"slow": 1}
    with pytest.raises(TaskError) as info:
        app.run(deadline_flow, "dl-2", execution_id="dl-2")
    assert info.value.error_type == "DeadlineExceeded"


def test_deadline_also_ends_a_sleep_or_a_wait(app: zart.Zart) -> None:
    @durable("prim-deadline-sleep", timeout=1.2)
    async def sleeper() -> str:
        await zart.sleep("long-nap", 60)
        return "woke"

    @durable("prim-deadline-wait", timeout=1.2)
    async def waiter() -> Any:
        return await zart.wait_for_event("never-sent")

    async def main() -> list[Any]:
        handles = [
            await app.start(sleeper, execution_id="dl-3"),
            await app.start(waiter, execution_id="dl-4"),
        ]
        return await asyncio.gather(
            *(h.result(timeout=10) for h in handles), return_exceptions=True
        )

    for outcome, eid in zip(asyncio.run(main()), ("dl-3", "dl-4"), strict=True):
        assert isinstance(outcome, TaskError), outcome
        assert outcome.error_type == "DeadlineExceeded", outcome
        st = app.status(eid)
        assert st.status == "failed"
        assert 1.2 <= ts(st.finished_at) - ts(st.created_at) < 2.0


def test_on_failure_hook_gives_a_fallback_result(app: zart.Zart) -> None:
    seen: list[TaskError] = []

    async def fallback(error: TaskError) -> str:
        seen.append(error)
        return f"fallback after {error.error_type}"

    def plain_fallback(error: TaskError) -> str:
        return f"plain fallback: {error.message}"

    @step("prim-hang")
    async def hang() -> None:
        await asyncio.sleep(60)

    @step("prim-boom")
    def boom() -> None:
        raise StepError("no stock", retryable=False)

    @durable("prim-fallback-deadline", timeout=0.5, on_failure=fallback)
    async def stuck() -> str:
        await hang()
        return "done"

    @durable("prim-fallback-step", on_failure=plain_fallback)
    async def failing() -> str:
        await boom()
        return "done"

    assert app.run(stuck, execution_id="fb-1") == "fallback after DeadlineExceeded"
    assert seen[0].execution_id == "fb-1"
    assert app.status("fb-1").status == "completed"
    assert app.result("fb-1") == "fallback after DeadlineExceeded"
    result = app.run(failing, execution_id="fb-2")
    assert result.startswith("plain fallback:") and "no stock" in result
    assert app.status("fb-2").status == "completed"


def test_step_timeouts_per_step_and_per_call(app: zart.Zart) -> None:
    tries: list[str] = []

    @step("prim-slow-{tag}", timeout=0.2, retry=RetryPolicy(2, initial_delay=0.01))
    async def slow_step(tag: str, seconds: float) -> str:
        tries.append(tag)
        await asyncio.sleep(seconds)
        return tag

    @step("prim-unbounded")
    async def unbounded(seconds: float) -> str:
        tries.append("unbounded")
        await asyncio.sleep(seconds)
        return "unbounded"

    @durable("prim-step-timeouts")
    async def flow() -> list[str]:
        out = [await slow_step("fast", 0.0)]
        out.append(await slow_step("lifted", 0.4).with_timeout(2))
        try:
            await unbounded(5).with_timeout(0.2).with_retry(RetryPolicy(1))
        except StepError as exc:
            out.append(f"call: {exc.error_type}")
        try:
            await slow_step("stuck", 5)
        except StepError as exc:
            out.append(f"step: {exc.error_type}")
        return out

    started = time.monotonic()
    result = app.run(flow, execution_id="to-1")
    assert result == ["fast", "lifted", "call: StepTimeoutError", "step: StepTimeoutError"]
    assert time.monotonic() - started < 3
    assert tries.count("stuck") == 2  # the step's retry policy applies to timeouts
    infos = {s.name: s for s in app.steps("to-1")}
    assert infos["prim-slow-stuck"].status == "failed"
    assert infos["prim-slow-stuck"].attempts == 2
    assert infos["prim-unbounded"].error.startswith("StepTimeoutError")  # type: ignore[union-attr]
    # Replay: timeouts are stored outcomes, nothing runs again.
    tries.clear()
    assert app.run(flow, execution_id="to-1") == result
    assert tries == []
    assert issubclass(EventTimeoutError, TimeoutError)


def test_cancelling_the_parent_cancels_its_waiting_child(app: zart.Zart) -> None:
    @durable("prim-sleepy-child-2")
    async def sleepy() -> int:
        await zart.sleep("zz", 30)
        return 1

    @durable("prim-parent-of-sleepy-2")
    async def parent() -> int:
        return await zart.run_child(sleepy, name="kid")

    async def main() -> Any:
        handle = await app.start(parent, execution_id="par-4")
        while True:
            await asyncio.sleep(0.02)
            try:
                if app.status("par-4/kid").status == "sleeping":
                    break
            except zart.ExecutionNotFoundError:
                pass
        assert app.cancel("par-4") is True
        started = time.monotonic()
        with pytest.raises(zart.ExecutionCancelledError):
            await handle.result(timeout=10)
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.5
    assert app.status("par-4").status == "cancelled"
    assert app.status("par-4/kid").status == "cancelled"
