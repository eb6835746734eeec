"""Durable functions run by the `zart worker` subprocesses of the PostgreSQL fault tests.

Every step body records its run in the side table ``fault_runs`` of the test database
(its own autocommit connection, ``application_name`` ``fault-side-effects``) with a
fresh nonce, and returns ``"<value>:<nonce>"``. After a run the tests compare the
nonce in each committed checkpoint with the recorded runs: the committed run must be
the step's last one (nothing ran the body again after its checkpoint committed).

Environment: ``FAULT_SIDE_DSN`` (libpq DSN of the test database), ``FAULT_STEP_SLEEP``
(seconds each step body sleeps, default 0.05).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from typing import Any

import zart
from zart import durable, step

SIDE_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS fault_runs (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fault_step_writes (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    old_status TEXT,
    old_output TEXT,
    new_status TEXT NOT NULL,
    new_output TEXT
);
CREATE OR REPLACE FUNCTION fault_log_step_write() RETURNS trigger AS $$
BEGIN
    INSERT INTO fault_step_writes (execution_id, step_name, old_status, old_output,
                                   new_status, new_output)
    VALUES (NEW.execution_id, NEW.step_name,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.output END,
            NEW.status, NEW.output);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS fault_log_step_write ON zart_steps;
CREATE TRIGGER fault_log_step_write AFTER INSERT OR UPDATE ON zart_steps
    FOR EACH ROW EXECUTE FUNCTION fault_log_step_write();
"""

_local = threading.local()


def _side_connection() -> Any:
    import psycopg

    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(
            os.environ["FAULT_SIDE_DSN"], autocommit=True, application_name="fault-side-effects"
        )
        _local.conn = conn
    return conn


def record_run(execution_id: str, step_name: str, nonce: str) -> None:
    """The step's side effect: one row in fault_runs, committed before the step returns."""
    for attempt in range(5):
        try:
            _side_connection().execute(
                "INSERT INTO fault_runs (execution_id, step_name, nonce, pid)"
                " VALUES (%s, %s, %s, %s)",
                (execution_id, step_name, nonce, os.getpid()),
            )
            return
        except Exception:
            _local.conn = None
            if attempt == 4:
                raise


def step_value(job: str, index: int) -> int:
    return (sum(map(ord, job)) * 31 + index * 7) % 1000


def expected_total(job: str, steps: int) -> int:
    return sum(step_value(job, i) for i in range(steps))


@step("step-{index}")
async def fault_step(job: str, index: int) -> str:
    delay = float(os.environ.get("FAULT_STEP_SLEEP", "0.05"))
    if delay:
        await asyncio.sleep(delay)
    nonce = uuid.uuid4().hex
    record_run(job, f"step-{index}", nonce)
    return f"{step_value(job, index)}:{nonce}"


@durable("fault-job")
async def fault_job(job: str, steps: int) -> int:
    total = 0
    for i in range(steps):
        out = await fault_step(job, i)
        total += int(out.split(":", 1)[0])
    return total


# ----------------------------------------------------------------------------- fencing


@step("fence-{index}")
async def fence_step(index: int, seconds: float) -> int:
    """Sleeps, then reports which process ran it."""
    await asyncio.sleep(seconds)
    return os.getpid()


@durable("fence-job")
async def fence_job(steps: int, seconds: float) -> list[int]:
    """Returns [pid of the process that finished it, pid that ran step 0, step 1, ...]."""
    pids = [await fence_step(i, seconds) for i in range(steps)]
    return [os.getpid(), *pids]


__all__ = ["expected_total", "fault_job", "fence_job", "zart"]


# ----------------------------------------------------------------------------- test harness


class WorkerProcess:
    """One `zart worker fault_worker_app` subprocess, its output in a log file."""

    def __init__(
        self,
        url: str,
        log_dir: Any,
        name: str,
        *,
        concurrency: int = 8,
        lease_seconds: float = 2.0,
        poll_interval: float = 0.1,
        grace_seconds: float = 5.0,
        env: dict[str, str] | None = None,
    ) -> None:
        import subprocess
        import sys
        from pathlib import Path

        root = Path(__file__).resolve().parents[1]
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(root), str(root / "tests"), full_env.get("PYTHONPATH", "")]
        )
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.setdefault("FAULT_SIDE_DSN", side_dsn(url))
        full_env.pop("ZART_DATABASE_URL", None)
        cmd = [
            sys.executable, "-m", "zart", "--database-url", url, "worker", "fault_worker_app",
            "--concurrency", str(concurrency), "--lease-seconds", str(lease_seconds),
            "--poll-interval", str(poll_interval), "--grace-seconds", str(grace_seconds),
        ]  # fmt: skip
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=str(root)
            )
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            time.sleep(0.05)
        return False

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time.

        A worker started moments ago may not have installed its signal handlers yet
        (a SIGTERM then ends it with -15 before it did anything): graceful shutdown
        is what is tested, so wait until it says it started.
        """
        import signal
        import subprocess

        self.signal(signal.SIGCONT)
        self.wait_for("worker started", timeout)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker {self.name} ignored SIGTERM for {timeout}s") from None

    def __repr__(self) -> str:
        return f"<worker {self.name} pid {self.pid}>"


def side_dsn(url: str) -> str:
    """libpq form of a SQLAlchemy postgresql+psycopg:// URL."""
    return "postgresql://" + url.split("://", 1)[1]
