"""Crash tests: real child processes, killed with a real SIGKILL, then resumed.

Each child runs ``crash_app`` (a durable loop of N steps whose bodies log their side
effects to a file). The child kills itself at a chosen point before, during or after a
step's checkpoint, or the test kills it at random moments; then a new process resumes
the execution. After it finishes we check that

* completed steps never ran again (each appears once in the side-effect log),
* the step the process died in ran at most once more,
* the result equals an uninterrupted run's (computed in a separate clean database),
* the database holds exactly N completed checkpoints, status completed, no lease,
* the resume started at once (same host, dead owner) although the lease is 30 s.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import zart
from zart._owner import current_owner

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

N = 5
SEED = 11
LEASE = "30"  # seconds: a resume that waited for the lease would blow every time limit here
RESUME_WITHIN = 1.0  # seconds from `run` being called to the first step running again

# (point, step index): where the child kills itself.
CASES = [
    ("claim", None),  # created, lease not taken yet
    ("before-effect", 2),  # in the body, before its side effect
    ("after-effect", 2),  # in the body, after its side effect, no checkpoint yet
    ("insert", 0),  # the checkpoint INSERT is about to be sent
    ("insert", 3),
    ("commit", 1),  # the INSERT wrote its row; its transaction has not committed
    ("commit", N - 1),
    ("after-commit", 2),  # the checkpoint committed, the body got the result back
    ("after-commit", N - 1),
    ("finish", None),  # every step committed, the result not yet stored
]


def crash_spec(point: str, index: int | None) -> str:
    return point if index is None else f"{point}:step-{index}"


def committed_before_kill(point: str, index: int | None, n: int) -> set[str]:
    """The checkpoints that are committed when the child dies at ``point``."""
    if point == "claim":
        return set()
    if point == "finish":
        return set(step_names(n))
    assert index is not None
    last = index + 1 if point == "after-commit" else index
    return set(step_names(last))


def expected_effects(point: str, index: int | None, n: int) -> dict[str, int]:
    """How often each step body ran in total: the crashed step twice if its side effect
    happened but its checkpoint did not commit, every other step exactly once."""
    runs = dict.fromkeys(step_names(n), 1)
    if point in ("after-effect", "insert", "commit"):
        runs[f"step-{index}"] = 2
    return runs


def effects(log: Path, execution_id: str) -> Counter[str]:
    return Counter(name for eid, name in read_log(log) if eid == execution_id)


def lease_pid(owner: str | None) -> int | None:
    return int(owner.split("|")[1]) if owner else None


def resume_latency(child: Child) -> float:
    """Seconds from `app.run` being called to the first step body running (or the result)."""
    ready = float(child.field("READY") or "nan")
    first = child.ran[0][1] if child.ran else float(child.field("FINISHED") or "nan")
    return first - ready


def crash_child(env: dict[str, str], tmp_path: Path, execution_id: str, spec: str) -> Child:
    return spawn(env, run_args(execution_id, N, seed=SEED), tmp_path, extra={"CRASH_AT": spec})


def assert_killed_at(child: Child, spec: str) -> None:
    point, _, target = spec.partition(":")
    assert child.returncode == -signal.SIGKILL, (
        f"{child} was to die at {spec} but exited with {child.returncode}\n{child.stderr()}"
    )
    assert child.field("CRASH") == f"{point} {target or '-'}"


@pytest.mark.parametrize(("point", "index"), CASES, ids=[crash_spec(p, i) for p, i in CASES])
def test_kill_then_run_resumes_at_once_and_never_reruns_completed_steps(
    point: str,
    index: int | None,
    db_url: str,
    child_env: dict[str, str],
    app: zart.Zart,
    tmp_path: Path,
) -> None:
    eid = f"crash-{crash_spec(point, index)}"
    log = tmp_path / "effects.log"
    env = {**child_env, "CRASH_LOG": str(log), "LEASE_SECONDS": LEASE}
    spec = crash_spec(point, index)

    crashed = crash_child(env, tmp_path, eid, spec)
    crashed.wait()
    assert_killed_at(crashed, spec)

    # What the kill left behind: exactly the checkpoints committed before it, and (once
    # claimed) a lease that is still valid for ~30 s but whose owner process is dead.
    committed = committed_before_kill(point, index, N)
    assert completed_steps(app, eid) == committed
    if point == "claim":
        # app.run creates the execution already claimed, in one statement: killed
        # before it, nothing was created (a run with the same id starts afresh).
        with pytest.raises(zart.ExecutionNotFoundError):
            app.status(eid)
    else:
        left = app.status(eid)
        assert left.status == "running"
        assert lease_pid(left.lease_owner) == crashed.pid
    ran_before = effects(log, eid)

    resumed = spawn(env, run_args(eid, N, seed=SEED), tmp_path)
    assert resumed.wait(timeout=15) == 0, resumed.stderr()

    # Resumed at once on this host, not after the 30 s lease.
    assert resume_latency(resumed) < RESUME_WITHIN, resumed.lines
    # It ran exactly the steps without a committed checkpoint, in order, once each.
    assert [name for name, _ in resumed.ran] == [s for s in step_names(N) if s not in committed]

    expected = reference_result(tmp_path, eid, N, seed=SEED)
    assert resumed.field("RESULT") == repr(expected)
    assert app.result(eid) == expected

    counts = effects(log, eid)
    assert counts == expected_effects(point, index, N)
    for name in committed:  # completed steps never ran again
        assert counts[name] == ran_before[name] == 1
    interrupted = None if point == "claim" else first_unsettled(committed, N)
    assert final_state(app, eid) == expected_final_state(N, interrupted)
    assert app.status(eid).attempts == (1 if point == "claim" else 2)
    assert app.status(eid).recoveries == (0 if point == "claim" else 1)


def test_killed_at_random_moments_until_done(
    db_url: str, child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    """The parent SIGKILLs the child 20-200 ms into each run until a run completes."""
    n, delay = 10, 0.03
    eid = "random-kills"
    rng = random.Random(20261125)
    log = tmp_path / "effects.log"
    # On a loaded machine several kills can land in one step before its body starts
    # (each counts as an attempt): this test is about what kills leave, not the limit.
    env = {**child_env, "CRASH_LOG": str(log), "LEASE_SECONDS": LEASE, "CRASH_MAX_ATTEMPTS": "50"}

    # One entry per run: (log lines before, completed before, log lines after,
    # completed after, killed?).
    rounds: list[tuple[int, set[str], int, set[str], bool]] = []
    for _ in range(40):
        lines_before, done_before = len(read_log(log)), completed_steps(app, eid)
        child = spawn(env, run_args(eid, n, seed=SEED, delay=delay), tmp_path)
        child.expect("READY")
        try:
            child.proc.wait(rng.uniform(0.02, 0.2))
        except subprocess.TimeoutExpired:
            child.kill()  # (unless it has just finished)
        rc = child.wait()
        assert rc in (0, -signal.SIGKILL), child.stderr()
        killed = rc != 0
        settle(db_url)
        rounds.append(
            (lines_before, done_before, len(read_log(log)), completed_steps(app, eid), killed)
        )
        if not killed:
            break
    else:  # never finished within 40 runs: finish it without killing
        lines_before, done_before = len(read_log(log)), completed_steps(app, eid)
        child = spawn(env, run_args(eid, n, seed=SEED, delay=delay), tmp_path)
        assert child.wait() == 0, child.stderr()
        rounds.append(
            (lines_before, done_before, len(read_log(log)), completed_steps(app, eid), False)
        )

    kills = sum(1 for r in rounds if r[4])
    assert kills >= 2, rounds
    log_lines = read_log(log)
    assert {eid} == {e for e, _ in log_lines}
    in_flight: Counter[str] = Counter()
    for lines_before, done_before, lines_after, done_after, killed in rounds:
        ran = [name for _, name in log_lines[lines_before:lines_after]]
        assert len(ran) == len(set(ran)), f"a run executed a step twice: {ran}"
        assert not set(ran) & done_before, f"completed steps ran again: {set(ran) & done_before}"
        assert done_before <= done_after
        assert done_after - done_before <= set(ran), (
            "a checkpoint appeared for a step that did not run"
        )
        unfinished = set(ran) - done_after
        if killed:
            assert len(unfinished) <= 1, f"more than one step in flight at the kill: {unfinished}"
            in_flight.update(unfinished)
        else:
            assert not unfinished and done_after == set(step_names(n))

    # Every step ran once, plus once more per kill that hit it between side effect and commit.
    counts = Counter(name for _, name in log_lines)
    assert counts == {name: 1 + in_flight[name] for name in step_names(n)}, rounds
    assert app.result(eid) == reference_result(tmp_path, eid, n, seed=SEED)
    # Attempts: 1, plus the takeovers that found the step where a killed run died in it.
    final = final_state(app, eid)
    expected = expected_final_state(n)
    assert {k: v for k, v in final.items() if k != "steps"} == {
        k: v for k, v in expected.items() if k != "steps"
    }
    assert [s[:3] for s in final["steps"]] == [s[:3] for s in expected["steps"]]
    assert all(1 <= s[3] <= 1 + kills for s in final["steps"]), final["steps"]


WORKER_CASES = {
    "w-claim": "claim",
    "w-before": "before-effect:step-1",
    "w-after": "after-effect:step-0",
    "w-insert": "insert:step-2",
    "w-commit": "commit:step-3",
    "w-committed": "after-commit:step-3",
    "w-finish": "finish",
}


def test_workers_until_idle_finish_everything_killed_processes_left(
    db_url: str, child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    """`zart worker MODULE --until-idle` and `app.worker().run(until_idle=True)`, started
    together, share out and finish every execution that killed processes left behind."""
    log = tmp_path / "effects.log"
    env = {**child_env, "CRASH_LOG": str(log), "LEASE_SECONDS": LEASE}
    # A fresh database, many processes at once: also exercises concurrent first use.
    # "claim": created and never claimed (app.run creates executions already claimed,
    # so a submit leaves what a kill before the claim used to).
    submit = [*run_args("w-claim", N, seed=SEED), "--submit-only"]
    children = {
        eid: spawn(env, submit, tmp_path)
        if spec == "claim"
        else crash_child(env, tmp_path, eid, spec)
        for eid, spec in WORKER_CASES.items()
    }
    for eid, child in children.items():
        child.wait()
        if WORKER_CASES[eid] == "claim":
            assert child.returncode == 0, child.stderr()
        else:
            assert_killed_at(child, WORKER_CASES[eid])
    assert {app.status(eid).status for eid in WORKER_CASES} == {"pending", "running"}

    started = time.monotonic()
    cli_args = ["worker", "crash_app", "--until-idle", "--poll-interval", "0.05"]
    workers = [spawn(env, cli_args, tmp_path, module="zart"), spawn(env, ["worker"], tmp_path)]
    for worker in workers:
        assert worker.wait(timeout=20) == 0, worker.stderr()
    # Every owner is dead on this host: no waiting for the 30 s leases.
    assert time.monotonic() - started < 10

    for eid, spec in WORKER_CASES.items():
        point, _, target = spec.partition(":")
        index = int(target.rsplit("-", 1)[1]) if target else None
        assert app.result(eid) == reference_result(tmp_path, eid, N, seed=SEED)
        assert effects(log, eid) == expected_effects(point, index, N), eid
        committed = committed_before_kill(point, index, N)
        interrupted = None if point == "claim" else first_unsettled(committed, N)
        assert final_state(app, eid) == expected_final_state(N, interrupted), eid
        assert app.status(eid).attempts == (1 if point == "claim" else 2)


def test_a_dead_owners_execution_is_claimed_before_a_pending_backlog(
    child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    """After a crash, the executions the dead process held are the oldest work: a worker
    with a backlog of pending executions takes them over at once (owner dead on this
    host) instead of leaving them until their lease expires behind the backlog."""
    env = {**child_env, "CRASH_LOG": str(tmp_path / "effects.log"), "LEASE_SECONDS": "600"}
    for i in range(5):  # the backlog, older than the orphan
        assert spawn(env, [*run_args(f"backlog-{i}", N), "--submit-only"], tmp_path).wait() == 0
    crashed = crash_child(env, tmp_path, "orphan", "after-commit:step-1")
    crashed.wait()
    assert_killed_at(crashed, "after-commit:step-1")
    journal = app._journal
    claimed = journal.claim_runnable(current_owner().new_token, ["crash-test-loop"], 1, 30.0)
    assert [rec.id for rec, _ in claimed] == ["orphan"]
    assert claimed[0][0].recoveries == 1
