"""Fault tests: several `zart worker` processes on PostgreSQL, under fire.

200 executions of 20 steps each are shared by 3 worker processes while the test

* SIGKILLs a random worker every few seconds and starts a new one, or
* terminates every zart connection to the database (``pg_terminate_backend``)
  every fraction of a second, as a database restart or a network cut would.

Afterwards every execution must be completed with its 20 checkpoints and the right
result, no lease may be left held, and no step body may have run again after its
checkpoint committed. Step bodies record each run, with a nonce, in a side table;
each checkpoint holds its run's nonce; a trigger on ``zart_steps`` records every
checkpoint write. The committed run must be the step's last recorded run, and no
completed checkpoint may ever have been overwritten with a different result.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import _reset_pg

import zart

from fault_worker_app import SIDE_TABLES_SQL, WorkerProcess, expected_total, fault_job, side_dsn

pytestmark = [pytest.mark.xdist_group("faults"), pytest.mark.timeout(300)]

EXECUTIONS = 200
STEPS = 20
WORKERS = 3
CONCURRENCY = 4
LEASE = 2.0
STEP_SLEEP = "0.05"
DEADLINE = 180.0  # seconds for the whole workload; it takes ~20-40 s


@pytest.fixture
def pg_url(pg_database: str) -> str:
    _reset_pg(pg_database)
    with psycopg.connect(side_dsn(pg_database), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS fault_runs, fault_step_writes")
    return pg_database


def prepare(url: str) -> list[str]:
    """Schema, side tables and trigger, and the pending executions; their ids."""
    app = zart.Zart(url)
    try:
        app.ops_store.ensure_schema()
        with psycopg.connect(side_dsn(url), autocommit=True) as conn:
            conn.execute(SIDE_TABLES_SQL)
        ids = [f"job-{i:03d}" for i in range(EXECUTIONS)]
        for eid in ids:
            app.submit(fault_job, eid, STEPS, execution_id=eid)
    finally:
        app.close()
    return ids


def completed_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM zart_executions WHERE status = 'completed'").fetchone()
    assert row is not None
    return int(row[0])


def start_workers(url: str, tmp_path: Path, generation: int = 0) -> list[WorkerProcess]:
    workers = [
        WorkerProcess(
            url,
            tmp_path,
            f"w{i}-{generation}",
            concurrency=CONCURRENCY,
            lease_seconds=LEASE,
            env={"FAULT_STEP_SLEEP": STEP_SLEEP},
        )
        for i in range(WORKERS)
    ]
    for w in workers:
        assert w.wait_for("worker started", 30), f"{w} did not start:\n{w.log()}"
    return workers


def logs(workers: list[WorkerProcess], tmp_path: Path) -> str:
    return "\n".join(
        f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted(tmp_path.glob("w*.log"))
    )


def check_outcome(url: str, ids: list[str]) -> dict[str, int]:
    """Every assertion about the final state; returns a few counts for the record."""
    with psycopg.connect(side_dsn(url)) as conn:
        executions = {
            eid: (status, result, owner, expires)
            for eid, status, result, owner, expires in conn.execute(
                "SELECT id, status, result, lease_owner, lease_expires_at FROM zart_executions"
            )
        }
        steps: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        for eid, name, status, output in conn.execute(
            "SELECT execution_id, step_name, status, output FROM zart_steps"
        ):
            steps[eid][name] = (status, output)
        runs: dict[tuple[str, str], list[str]] = defaultdict(list)
        for eid, name, nonce in conn.execute(
            "SELECT execution_id, step_name, nonce FROM fault_runs ORDER BY id"
        ):
            runs[(eid, name)].append(nonce)
        overwrites = conn.execute(
            "SELECT execution_id, step_name, old_output, new_status, new_output"
            " FROM fault_step_writes WHERE old_status = 'completed'"
            " AND (new_status <> 'completed' OR new_output IS DISTINCT FROM old_output)"
        ).fetchall()

    assert sorted(executions) == ids
    not_done = {eid: v[0] for eid, v in executions.items() if v[0] != "completed"}
    assert not not_done, f"executions not completed: {not_done}"
    held = {eid: v[2] for eid, v in executions.items() if v[2] is not None or v[3] is not None}
    assert not held, f"leases left held: {held}"
    wrong = {
        eid: v[1] for eid, v in executions.items() if json.loads(v[1]) != expected_total(eid, STEPS)
    }
    assert not wrong, f"wrong results: {wrong}"

    names = {f"step-{i}" for i in range(STEPS)}
    reruns_after_commit = []
    for eid in ids:
        assert set(steps[eid]) == names, f"{eid} has step rows {sorted(steps[eid])}"
        for name, (status, output) in steps[eid].items():
            assert status == "completed", (eid, name, status)
            nonce = json.loads(output).split(":", 1)[1]
            recorded = runs[(eid, name)]
            assert nonce in recorded, f"{eid}/{name}: checkpoint of a run never recorded"
            if recorded[-1] != nonce:
                reruns_after_commit.append((eid, name, recorded))
    assert not reruns_after_commit, (
        f"step bodies ran again after their checkpoint committed: {reruns_after_commit[:10]}"
    )
    assert not overwrites, f"completed checkpoints overwritten: {overwrites[:10]}"
    total_runs = sum(len(r) for r in runs.values())
    return {"runs": total_runs, "reruns": total_runs - EXECUTIONS * STEPS}


def test_sigkill_random_workers(pg_url: str, tmp_path: Path) -> None:
    ids = prepare(pg_url)
    rng = random.Random(20261125)
    started = time.monotonic()
    workers = start_workers(pg_url, tmp_path)
    kills = 0
    try:
        with psycopg.connect(
            side_dsn(pg_url), autocommit=True, application_name="fault-test"
        ) as mon:
            next_kill = time.monotonic() + rng.uniform(1.0, 2.5)
            while completed_count(mon) < EXECUTIONS:
                assert time.monotonic() - started < DEADLINE, (
                    f"only {completed_count(mon)}/{EXECUTIONS} completed after {DEADLINE}s "
                    f"({kills} kills)\n{logs(workers, tmp_path)}"
                )
                if time.monotonic() >= next_kill:
                    i = rng.randrange(WORKERS)
                    workers[i].signal(signal.SIGKILL)
                    workers[i].proc.wait()
                    kills += 1
                    workers[i] = WorkerProcess(
                        pg_url,
                        tmp_path,
                        f"w{i}-{kills}",
                        concurrency=CONCURRENCY,
                        lease_seconds=LEASE,
                        env={"FAULT_STEP_SLEEP": STEP_SLEEP},
                    )
                    next_kill = time.monotonic() + rng.uniform(1.5, 3.0)
                time.sleep(0.05)
    finally:
        codes = [w.stop() for w in workers]
    elapsed = time.monotonic() - started
    assert codes == [0] * WORKERS, f"workers exited with {codes}\n{logs(workers, tmp_path)}"
    assert kills >= 3, f"the workload finished after {kills} kills; too fast to prove anything"
    counts = check_outcome(pg_url, ids)
    takeovers = sum(p.read_text().count("taking over execution") for p in tmp_path.glob("w*.log"))
    assert takeovers >= 1, "no execution of a killed worker was taken over"
    print(f"\nSIGKILL test: {kills} kills, {takeovers} takeovers, {counts}, {elapsed:.1f}s")


def test_connections_terminated_repeatedly(pg_url: str, tmp_path: Path) -> None:
    ids = prepare(pg_url)
    rng = random.Random(4242)
    started = time.monotonic()
    workers = start_workers(pg_url, tmp_path)
    terminated = 0
    rounds = 0
    try:
        with psycopg.connect(
            side_dsn(pg_url), autocommit=True, application_name="fault-test"
        ) as mon:
            while completed_count(mon) < EXECUTIONS:
                assert time.monotonic() - started < DEADLINE, (
                    f"only {completed_count(mon)}/{EXECUTIONS} completed after {DEADLINE}s\n"
                    f"{logs(workers, tmp_path)}"
                )
                time.sleep(rng.uniform(0.2, 0.8))
                row = mon.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = 'zart'"
                    " AND pid <> pg_backend_pid()"
                ).fetchone()
                assert row is not None
                terminated += int(row[0])
                rounds += 1
                for w in workers:
                    assert w.proc.poll() is None, f"{w} died:\n{w.log()[-5000:]}"
    finally:
        codes = [w.stop() for w in workers]
    elapsed = time.monotonic() - started
    assert codes == [0] * WORKERS, f"workers exited with {codes}\n{logs(workers, tmp_path)}"
    assert rounds >= 10 and terminated >= 10, (rounds, terminated)
    counts = check_outcome(pg_url, ids)
    retried = sum(p.read_text().count("database error during") for p in tmp_path.glob("w*.log"))
    assert retried >= 1, "no worker logged a retried database error"
    print(
        f"\npg_terminate_backend test: {terminated} connections terminated in {rounds} rounds, "
        f"{retried} retries logged, {counts}, {elapsed:.1f}s"
    )
