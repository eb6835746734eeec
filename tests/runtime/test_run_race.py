"""Two processes racing to ``run`` the same execution id never both execute it.

Both children import zart, open the database and block; the test releases them with
one line on each stdin (microseconds apart), and both call ``app.run`` on the same id.
One runs the steps, the other waits and returns the same result; the side-effect log
shows every step exactly once. Raced on a fresh id (both try to create it), on a
pending one (created, never claimed) and on an orphaned one (its owner was SIGKILLed
mid-loop: both see the dead owner and try to take it over); three races at once each.
And when the process that won is killed mid-loop, the one waiting takes over at once.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

import zart

from crash_app import (
    Child,
    completed_steps,
    expected_final_state,
    final_state,
    first_unsettled,
    read_log,
    reference_result,
    run_args,
    settle,
    spawn,
    step_names,
)

N = 4
DELAY = 0.05  # per step: the loser polls while the winner works
REPEATS = 3

# How the execution looks before the race: CRASH_AT for a child that prepares it.
PREPARE = {
    "fresh": None,
    "pending": "submit",  # created by app.submit, never claimed
    "orphaned": "after-commit:step-1",
}
ALREADY_DONE = {"fresh": 0, "pending": 0, "orphaned": 2}  # steps committed before the race


def effects(log: Path, execution_id: str) -> Counter[str]:
    return Counter(name for eid, name in read_log(log) if eid == execution_id)


def ready_at(child: Child) -> float:
    return float(child.field("READY") or "nan")


@pytest.mark.parametrize("variant", list(PREPARE))
def test_two_processes_racing_run_on_one_id_execute_it_once(
    variant: str, db_url: str, child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    env = {**child_env, "CRASH_LOG": str(log), "LEASE_SECONDS": "30"}
    # REPEATS races, each on its own id, side by side (to keep the test fast).
    ids = [f"race-{variant}-{rep}" for rep in range(REPEATS)]
    spec = PREPARE[variant]
    if spec is not None:
        if spec == "submit":
            preparers = [
                spawn(env, [*run_args(eid, N, delay=DELAY), "--submit-only"], tmp_path)
                for eid in ids
            ]
        else:
            preparers = [
                spawn(env, run_args(eid, N, delay=DELAY), tmp_path, extra={"CRASH_AT": spec})
                for eid in ids
            ]
        for prep in preparers:
            assert prep.wait() == (0 if spec == "submit" else -signal.SIGKILL), prep.stderr()
        for eid in ids:
            assert app.status(eid).status == ("pending" if spec == "submit" else "running")
    done_before = ALREADY_DONE[variant]

    pairs = {
        eid: [
            spawn(env, [*run_args(eid, N, delay=DELAY), "--wait-go"], tmp_path, stdin=True)
            for _ in range(2)
        ]
        for eid in ids
    }
    racers = [racer for pair in pairs.values() for racer in pair]
    for racer in racers:
        racer.expect("WAITING")
    for racer in racers:
        racer.send("go\n")
    for racer in racers:
        assert racer.wait() == 0, racer.stderr()

    for eid, (first, second) in pairs.items():
        # They really raced: both called run within a few milliseconds of each other.
        assert abs(ready_at(first) - ready_at(second)) < 0.1

        # Exactly one of them executed the remaining steps; the other ran nothing ...
        runners = [r for r in (first, second) if r.ran]
        assert len(runners) == 1, (first.lines, second.lines)
        winner = runners[0]
        loser = second if winner is first else first
        assert [name for name, _ in winner.ran] == step_names(N)[done_before:]
        # ... but waited for the winner and returned the same (typed) result.
        assert float(loser.field("FINISHED") or 0) >= winner.ran[-1][1]
        expected = reference_result(tmp_path, eid, N)
        assert winner.field("RESULT") == loser.field("RESULT") == repr(expected)
        assert app.result(eid) == expected

        # Every step body ran exactly once in total.
        assert effects(log, eid) == dict.fromkeys(step_names(N), 1)
        interrupted = done_before if variant == "orphaned" else None
        assert final_state(app, eid) == expected_final_state(N, interrupted)
        # One claim by the racers (plus the killed preparer's, if it got that far).
        assert app.status(eid).attempts == (2 if variant == "orphaned" else 1)


def test_the_waiting_process_takes_over_at_once_when_the_runner_is_killed(
    db_url: str, child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    n, delay = 8, 0.1
    eid = "race-takeover"
    log = tmp_path / "effects.log"
    env = {**child_env, "CRASH_LOG": str(log), "LEASE_SECONDS": "30"}
    racers = [
        spawn(env, [*run_args(eid, n, delay=delay), "--wait-go"], tmp_path, stdin=True)
        for _ in range(2)
    ]
    for racer in racers:
        racer.expect("WAITING")
    for racer in racers:
        racer.send("go\n")

    # Kill whichever of them runs it right after step-2's side effect (most likely before
    # its checkpoint; the expectations below follow what the database says).
    deadline = time.monotonic() + 10
    while (eid, "step-2") not in read_log(log):
        assert time.monotonic() < deadline, "step-2 never ran"
        time.sleep(0.002)
    owner = app.status(eid).lease_owner
    assert owner is not None
    (runner,) = (r for r in racers if r.pid == int(owner.split("|")[1]))
    (waiter,) = (r for r in racers if r is not runner)
    runner.kill()
    killed_at = time.time()
    assert runner.wait() == -signal.SIGKILL
    settle(db_url)
    done_at_kill = completed_steps(app, eid)
    # Every body that ran so far ran in the runner (the waiter only runs after taking over).
    by_runner = {name for _, name in read_log(log)}
    assert "step-1" in done_at_kill

    assert waiter.wait() == 0, waiter.stderr()
    # The waiter noticed the dead owner and took over at once, not after the 30 s lease,
    # running exactly the steps without a checkpoint.
    assert waiter.ran[0][1] - killed_at < 1.0
    assert [name for name, _ in waiter.ran] == [s for s in step_names(n) if s not in done_at_kill]
    expected = reference_result(tmp_path, eid, n)
    assert waiter.field("RESULT") == repr(expected)
    assert app.result(eid) == expected

    # Each step ran once, plus once more if the runner died between its side effect and
    # its checkpoint (step-2 here).
    assert effects(log, eid) == {
        name: 1 + (name in by_runner and name not in done_at_kill) for name in step_names(n)
    }
    interrupted = first_unsettled(done_at_kill, n)
    assert final_state(app, eid) == expected_final_state(n, interrupted)
    assert app.status(eid).attempts == 2
    assert app.status(eid).recoveries == 1
