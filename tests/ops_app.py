"""Durable functions and helpers for the operations tests (API, admin, metrics, web).

``zart serve ops_app`` imports this module; the in-process tests start uvicorn on
a free port in a thread (``running_server``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

import zart
from zart import RetryPolicy, StepError, durable, step

# Steps named here fail while their name is in FAILING (tests toggle it).
FAILING: set[str] = set()
CALLS: list[str] = []


@step("ops-shout-{name}")
async def shout(name: str) -> str:
    CALLS.append(f"shout-{name}")
    return name.upper()


@durable("ops-greet")
async def greet(name: str) -> str:
    return f"hello {await shout(name)}"


@step("ops-load", retry=RetryPolicy(max_attempts=1))
async def load(n: int) -> list[int]:
    CALLS.append("load")
    if "ops-load" in FAILING:
        raise StepError("load failed on purpose", retryable=False)
    return list(range(n))


@step("ops-charge-{index}", retry=RetryPolicy(max_attempts=1))
async def charge(index: int, amount: int) -> int:
    CALLS.append(f"charge-{index}")
    if f"ops-charge-{index}" in FAILING:
        raise StepError(f"card declined for item {index}", retryable=False)
    time.sleep(0.02)
    return amount * 10


@step("ops-report", retry=RetryPolicy(max_attempts=1))
async def report(total: int) -> str:
    CALLS.append("report")
    return f"total={total}"


@durable("ops-pipeline")
async def pipeline(n: int) -> str:
    items = await load(n)
    total = 0
    for i in items:
        total += await charge(i, i + 1)
    return await report(total)


@durable("ops-approval")
async def approval(request: str) -> str:
    decision: dict[str, Any] = await zart.wait_for_event("ops-decision")
    return f"{request}: {decision['verdict']}"


@step("ops-nap")
async def nap(seconds: float) -> float:
    import asyncio

    await asyncio.sleep(seconds)
    return seconds


@durable("ops-slow")
async def slow(seconds: float) -> float:
    return await nap(seconds)


# A large execution for the web view: 10,000 steps with templated names.
BULK_FAIL_AT = 3137  # this charge fails (after 2 attempts); the body goes on


@step("ops-bulk-load")
async def bulk_load(n: int) -> int:
    return n


@step("charge:{i}", retry=RetryPolicy(max_attempts=2, initial_delay=0.001, jitter=False))
async def bulk_charge(i: int) -> int:
    if i == BULK_FAIL_AT:
        raise ValueError(f"card declined for order {i}")
    if i % 1250 == 7:
        time.sleep(0.015)  # a few slow ones, for "slowest steps"
    return i


@step("ship-{i}")
async def bulk_ship(i: int) -> int:
    return i


@step("ops-bulk-report")
async def bulk_report(charged: int) -> str:
    return f"charged {charged}"


@durable("ops-bulk")
async def bulk(n: int) -> str:
    """``n`` steps: a load, n/2 charges, n/2 - 2 shipments, a report; one charge fails."""
    await bulk_load(n)
    failed = 0
    for i in range(n // 2):
        try:
            await bulk_charge(i)
        except StepError:
            failed += 1
    for i in range(n // 2 - 2):
        await bulk_ship(i)
    await bulk_report(n // 2 - failed)
    if failed:
        raise RuntimeError(f"{failed} charge(s) failed")
    return "ok"


# ---------------------------------------------------------------------- helpers


def reset_ops_tables(db_url: str) -> None:
    """conftest's PostgreSQL reset predates zart_audit: drop it too, for a clean slate."""
    if not db_url.startswith("postgresql"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS zart_audit, zart_schedules CASCADE")
    engine.dispose()


def fresh_postgres(db_url: str) -> None:
    """Empty the test session's PostgreSQL database (for tests that take it directly)."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@contextlib.contextmanager
def ops_engine(db_url: str) -> Iterator[zart.Zart]:
    """A fresh engine for one operations test: ops tables reset, no step set to fail."""
    reset_ops_tables(db_url)
    FAILING.clear()
    app = zart.Zart(db_url, lease_seconds=5)
    try:
        yield app
    finally:
        app.close()
        FAILING.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(
    app: zart.Zart,
    *,
    token: str | None = None,
    metrics: bool = False,
    worker_concurrency: int = 0,
    scheduler: bool = False,
    settings: Any = None,
) -> Iterator[str]:
    """Serve ``create_app(app, ...)`` with zart's uvicorn server on 127.0.0.1:<free port>
    in a thread; yield its URL."""
    from zart._ops.api import create_app, make_server

    asgi = create_app(
        app,
        token=token,
        metrics=metrics,
        worker_concurrency=worker_concurrency,
        scheduler=scheduler,
        settings=settings,
    )
    for _ in range(5):
        port = free_port()
        server = make_server(asgi, host="127.0.0.1", port=port, log_level="warning")
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started:
            break
        server.should_exit = True
        thread.join(5)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


ROOT = Path(__file__).resolve().parents[1]


def child_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``zart`` child process: this checkout and tests/ importable."""
    env = dict(os.environ)
    env.pop("ZART_API_TOKEN", None)
    env["ZART_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextlib.contextmanager
def serve_process(
    env: dict[str, str], *args: str, log: Path, ready: str = "/healthz"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m zart serve ARGS --port <free>`` with its output in ``log``; yields the
    process and its URL once ``ready`` answers. Terminated (SIGTERM) on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "zart", "serve", *args, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + ready, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "zart serve did not come up: " + log.read_text()
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
