"""Retention (``zart gc``, ``Zart.gc``, ``zart worker --retention``), on both backends.

Finished executions are bulk-inserted with SQL (realistic rows: input, result, five
steps each, some events and audit rows), then deleted by a `zart gc` process while a
`zart worker` process keeps running new executions. SQLite gets 100,000 of them,
PostgreSQL 20,000 (its per-batch round trips make 100,000 take ~15 s on the shared
test machine; the batches are the same).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import ROOT
from wakeup_app import echo

import zart
from zart.cli import main

pytestmark = pytest.mark.timeout(120)

DAY = 86400.0
STEPS = 5


def _numbers(count_param: str) -> str:
    """A CTE of the numbers 0 .. :count_param - 1 (SQLite and PostgreSQL alike)."""
    step = "SELECT i + 1 FROM n WHERE i + 1 < :" + count_param
    return f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL {step})"


def bulk_finished(app: zart.Zart, count: int, prefix: str, age: float = 40 * DAY) -> None:
    """``count`` finished executions "<prefix>-<i>" (80% completed, 10% failed, 10%
    cancelled) that finished ``age`` ago, five steps each, an event every 50th and an
    audit row every 100th: one INSERT ... SELECT per table."""
    t0 = time.time() - age
    num = "CAST(i AS VARCHAR(20))"
    with app.ops_store.db.engine.begin() as conn:
        conn.execute(
            sa.text(f"""{_numbers("count")}
            INSERT INTO zart_executions (id, durable_name, status, input, result, attempts,
                recoveries, version, ran_versions, created_at, updated_at, started_at,
                finished_at)
            SELECT '{prefix}-' || {num}, 'report',
                CASE WHEN i % 10 = 0 THEN 'failed' WHEN i % 10 = 1 THEN 'cancelled'
                     ELSE 'completed' END,
                '{{"args": [' || {num} || '], "kwargs": {{}}}}', '"done"', 1, 0, 'v1', 'v1',
                :t0 + i * 0.001, :t0 + i * 0.001 + 2, :t0 + i * 0.001, :t0 + i * 0.001 + 2
            FROM n"""),
            {"count": count, "t0": t0},
        )
        conn.execute(
            sa.text(f"""{_numbers("count")}
            INSERT INTO zart_steps (execution_id, step_name, seq, kind, status, fingerprint,
                output, attempts, started_at, finished_at)
            SELECT '{prefix}-' || CAST(i / {STEPS} AS VARCHAR(20)),
                'step-' || CAST(i % {STEPS} AS VARCHAR(20)), i % {STEPS}, 'step', 'completed',
                '0f1e2d3c4b5a6978', '{{"rows": 1234, "file": "s3://reports/' || {num} || '.csv"}}',
                1, :t0, :t0 + 1
            FROM n"""),
            {"count": count * STEPS, "t0": t0},
        )
        conn.execute(
            sa.text(f"""{_numbers("count")}
            INSERT INTO zart_events (execution_id, name, payload, created_at, consumed_by)
            SELECT '{prefix}-' || CAST(i * 50 AS VARCHAR(20)), 'approved', '{{"by": "ana"}}',
                :t0, 'wait-approved'
            FROM n"""),
            {"count": count // 50, "t0": t0},
        )
        conn.execute(
            sa.text(f"""{_numbers("count")}
            INSERT INTO zart_audit (execution_id, action, actor, created_at, details)
            SELECT '{prefix}-' || CAST(i * 100 AS VARCHAR(20)), 'retry-step', 'ops', :t0, '{{}}'
            FROM n"""),
            {"count": count // 100, "t0": t0},
        )
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does after a bulk load


def add_execution(
    app: zart.Zart, eid: str, status: str, parent: str | None = None, age: float = 40 * DAY
) -> None:
    """One execution (with one step) in ``status``, created and (if finished) finished
    ``age`` ago."""
    t = time.time() - age
    done = status in ("completed", "failed", "cancelled")
    with app.ops_store.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO zart_executions (id, durable_name, status, input, attempts,"
                " recoveries, parent_id, wake_at, created_at, updated_at, finished_at)"
                " VALUES (:id, 'report', :status, '{\"args\": [], \"kwargs\": {}}', 1, 0,"
                " :parent, :wake, :t, :t, :fin)"
            ),
            {"id": eid, "status": status, "parent": parent, "t": t,
             "wake": time.time() + 10 * DAY, "fin": t + 1 if done else None},
        )  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO zart_steps (execution_id, step_name, seq, kind, status, attempts)"
                " VALUES (:id, 'first', 0, 'step', 'completed', 1)"
            ),
            {"id": eid},
        )


def count(app: zart.Zart, table: str, where: str = "1 = 1") -> int:
    with app.ops_store.db.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar())


def env_for(db_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env["PYTHONUNBUFFERED"] = "1"
    env["ZART_DATABASE_URL"] = db_url
    return env


def zart_gc(db_url: str, *args: str) -> dict[str, int]:
    """A `zart gc ... --json` process; its report."""
    proc = subprocess.run(
        [sys.executable, "-m", "zart", "gc", "--older-than", "30d", "--json", *args],
        env=env_for(db_url), capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report: dict[str, int] = json.loads(proc.stdout)
    return report


def cli_gc(db_url: str, *args: str) -> dict[str, int]:
    """`zart gc ... --json` through click's runner; its report."""
    result = CliRunner().invoke(
        main, ["--database-url", db_url, "gc", "--older-than", "30d", "--json", *args]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    report: dict[str, int] = json.loads(result.stdout)
    return report


@pytest.fixture
def worker_process(db_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `zart worker wakeup_app` process running executions beside the gc."""
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "zart", "worker", "wakeup_app", "--poll-interval", "0.2",
         "--grace-seconds", "2"],
        env=env_for(db_url), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield proc
    proc.terminate()
    proc.wait(15)
    log.close()


class Submitter(threading.Thread):
    """Submits an execution every 50 ms until stopped; the ids it submitted."""

    def __init__(self, app: zart.Zart) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.ids: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            self.ids.append(self.app.submit(echo, i, execution_id=f"live-{i}").execution_id)
            i += 1
            self.halt.wait(0.05)


def test_gc_deletes_old_finished_trees_while_a_worker_runs(
    db_url: str, worker_process: subprocess.Popen[bytes]
) -> None:
    n = 100_000 if db_url.startswith("sqlite") else 20_000
    app = zart.Zart(db_url)
    app.ops_store.ensure_schema()
    bulk_finished(app, n, "old")
    for eid, status, parent in [
        ("open-sleeping", "sleeping", None), ("open-diverged", "diverged", None),
        ("open-waiting", "waiting", None), ("open-waiting/done-child", "completed", "open-waiting"),
        ("tree", "completed", None), ("tree/child", "failed", "tree"),
        ("tree/child/grandchild", "cancelled", "tree/child"),
        ("half-open", "completed", None), ("half-open/child", "sleeping", "half-open"),
    ]:  # fmt: skip
        add_execution(app, eid, status, parent)
    add_execution(app, "recent", "completed", age=DAY)
    ours = {  # what the test made (not what the worker runs meanwhile)
        "zart_executions": "id NOT LIKE 'live-%'",
        "zart_steps": "execution_id NOT LIKE 'live-%'",
        "zart_events": "1 = 1",
    }
    before = {t: count(app, t, where) for t, where in ours.items()}
    expected = {
        "executions": n + 3, "steps": n * STEPS + 3, "events": n // 50, "audit": n // 100,
        "kept": 1,  # half-open: an old finished root whose child still sleeps
    }  # fmt: skip

    submitter = Submitter(app)
    submitter.start()
    try:
        dry = cli_gc(db_url, "--dry-run")  # in this process: no interpreter start-up
        assert dry == dict(expected, dry_run=True)
        assert {t: count(app, t, where) for t, where in ours.items()} == before
        report = zart_gc(db_url)
        assert report == dict(expected, dry_run=False)
    finally:
        submitter.halt.set()
        submitter.join()

    assert count(app, "zart_executions", "id LIKE 'old-%'") == 0
    assert count(app, "zart_steps", "execution_id LIKE 'old-%'") == 0
    assert count(app, "zart_events") == count(app, "zart_audit") == 0
    left = {e.id for e in app.list(limit=1000) if not e.id.startswith("live-")}
    assert left == {
        "open-sleeping", "open-diverged", "open-waiting", "open-waiting/done-child",
        "half-open", "half-open/child", "recent",
    }  # fmt: skip
    assert len(app.steps("open-waiting/done-child")) == 1
    # What the worker ran during the gc finished, and nothing of it was deleted.
    assert len(submitter.ids) > 10
    deadline = time.monotonic() + 30
    while count(app, "zart_executions", "id LIKE 'live-%' AND status = 'completed'") < len(
        submitter.ids
    ):
        assert worker_process.poll() is None
        assert time.monotonic() < deadline, "the worker stopped finishing executions"
        time.sleep(0.2)
    assert app.result(submitter.ids[-1])[0] == len(submitter.ids) - 1
    # A second run finds nothing more to delete.
    assert cli_gc(db_url)["executions"] == 0
    app.close()


def _size(app: zart.Zart, db_url: str) -> int:
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    engine = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    tables = ("zart_executions", "zart_steps", "zart_events", "zart_audit")
    with engine.connect() as conn:
        # What autovacuum does within a minute of a large delete, done now: dead rows'
        # space becomes reusable (plain VACUUM: no lock against readers or writers).
        conn.exec_driver_sql(f"VACUUM {', '.join(tables)}")
        size = sum(
            int(conn.exec_driver_sql(f"SELECT pg_total_relation_size('{t}')").scalar())
            for t in tables
        )
    engine.dispose()
    return size


def test_the_database_stops_growing_across_insert_and_gc_cycles(db_url: str) -> None:
    app = zart.Zart(db_url)
    app.ops_store.ensure_schema()
    sizes = []
    for cycle in range(4):
        bulk_finished(app, 3000, f"c{cycle}")
        assert app.gc("30d").executions == 3000
        sizes.append(_size(app, db_url))
    # The first cycles grow the file to its working size; after that, freed pages hold
    # the new rows.
    assert sizes[-1] <= sizes[1] * 1.10, sizes
    assert count(app, "zart_executions") == 0
    app.close()


def test_gc_arguments_filters_and_the_workers_background_retention(db_url: str) -> None:
    app = zart.Zart(db_url)
    app.ops_store.ensure_schema()
    with pytest.raises(zart.ZartError, match="not a duration"):
        app.gc("soon")
    with pytest.raises(zart.ZartError, match="only finished executions"):
        app.gc("30d", statuses=["running"])
    result = CliRunner().invoke(
        main, ["--database-url", db_url, "gc", "--older-than", "30d", "--status", "pending"]
    )
    assert result.exit_code == 2 and "only finished executions" in result.stderr
    bulk_finished(app, 1000, "bg")
    add_execution(app, "other", "completed")
    with app.ops_store.db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE zart_executions SET durable_name = 'other' WHERE id = 'other'")
    # --durable and --status narrow it; timedelta and seconds work as ages.
    assert app.gc(30 * DAY, statuses=["failed"], durable="other").executions == 0
    from datetime import timedelta

    assert app.gc(timedelta(days=30), statuses=["failed"], durable="report").executions == 100
    assert count(app, "zart_executions") == 901

    worker = app.worker(retention="30d", retention_interval=0.1, poll_interval=0.05)

    async def until_collected() -> None:
        run = asyncio.ensure_future(worker.run_async())
        deadline = time.monotonic() + 20
        while count(app, "zart_executions") > 0:
            assert time.monotonic() < deadline, "background retention did not delete"
            await asyncio.sleep(0.1)
        worker.stop()
        await run

    asyncio.run(until_collected())
    app.close()
