"""Push wake-ups: an idle worker starts new work without waiting for its poll.

Workers here poll every 60 s, so anything that runs within the tests' bounds was
woken by a push (LISTEN/NOTIFY across processes on PostgreSQL, the in-process hub
in the same process) or by the worker's own timer for the next due execution. The
bounds are generous functional limits, not performance numbers.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import _reset_pg, drain
from wakeup_app import echo, nap
from workerproc import WorkerProcess

import zart

from fault_worker_app import side_dsn

pytestmark = pytest.mark.timeout(120)

BOUND = 15.0  # seconds: "promptly", generously
LISTENERS_SQL = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND query = 'LISTEN zart_work'"
)


def Worker(url: str, log_dir: Path) -> WorkerProcess:
    """A `zart worker wakeup_app --poll-interval 60` process: only a push wakes it."""
    return WorkerProcess(
        url, log_dir / "worker.log", "wakeup_app",
        "--poll-interval", "60", "--lease-seconds", "5", "--grace-seconds", "2",
    )  # fmt: skip


@pytest.fixture
def pg_url(pg_database: str) -> str:
    _reset_pg(pg_database)
    return pg_database


@pytest.fixture
def worker_factory(tmp_path: Path) -> Any:
    started: list[Worker] = []

    def start(url: str) -> Worker:
        worker = Worker(url, tmp_path)
        started.append(worker)
        worker.wait_for("worker started")
        return worker

    yield start
    for worker in started:
        worker.stop()


def result_within(app: zart.Zart, execution_id: str, seconds: float = BOUND) -> Any:
    deadline = time.monotonic() + seconds
    while app.status(execution_id).status != "completed":
        assert time.monotonic() < deadline, f"not run within {seconds}s: {app.status(execution_id)}"
        time.sleep(0.02)
    return app.result(execution_id)


def listener_pids(url: str) -> set[int]:
    with psycopg.connect(side_dsn(url), autocommit=True) as conn:
        return {int(pid) for (pid,) in conn.execute(LISTENERS_SQL)}


def wait_for_listener(url: str, other_than: frozenset[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + BOUND
    while not (found := listener_pids(url) - other_than):
        assert time.monotonic() < deadline, "no listener connection appeared"
        time.sleep(0.05)
    return found


def test_a_submit_wakes_an_idle_worker_of_another_process(pg_url: str, worker_factory: Any):
    worker = worker_factory(pg_url)
    wait_for_listener(pg_url)
    time.sleep(0.2)  # idle now, for up to 60 s unless pushed
    with zart.Zart(pg_url) as app:
        handle = app.submit(echo, 7)
        assert result_within(app, handle.execution_id) == [7, worker.pid]


def test_an_idle_worker_runs_a_timer_when_it_is_due(db_url: str, worker_factory: Any):
    """No push announces a timer: the worker sleeps until the next due execution."""
    with zart.Zart(db_url) as app:
        eid = app.submit(nap, 4.0).execution_id
        drain(app)  # runs here until the sleep suspends it
        assert app.status(eid).status == "sleeping"
        worker = worker_factory(db_url)
        assert app.status(eid).status == "sleeping", "the worker started after the wake time"
        assert result_within(app, eid) == worker.pid


def test_a_submit_in_the_workers_own_process_starts_at_once(db_url: str):
    async def scenario(app: zart.Zart) -> Any:
        worker = app.worker(poll_interval=60.0, listen_poll_interval=60.0)
        running = asyncio.ensure_future(worker.run_async())
        try:
            await asyncio.sleep(0.3)  # idle, for up to 60 s unless woken
            eid = app.submit(echo, 3).execution_id
            deadline = time.monotonic() + BOUND
            while app.status(eid).status != "completed":
                assert time.monotonic() < deadline, f"not started: {app.status(eid)}"
                await asyncio.sleep(0.02)
            return app.result(eid)
        finally:
            worker.stop()
            await running

    with zart.Zart(db_url) as app:
        assert asyncio.run(scenario(app)) == [3, os.getpid()]


def test_the_listener_reconnects_and_still_delivers(pg_url: str, worker_factory: Any):
    worker = worker_factory(pg_url)
    first = wait_for_listener(pg_url)
    with psycopg.connect(side_dsn(pg_url), autocommit=True) as conn:
        for pid in first:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    worker.wait_for("wake-up listener lost its connection")
    wait_for_listener(pg_url, other_than=frozenset(first))
    time.sleep(0.2)
    with zart.Zart(pg_url) as app:
        handle = app.submit(echo, 11)
        assert result_within(app, handle.execution_id) == [11, worker.pid]
