"""Shared fixtures: a fresh database per test, on every backend.

PostgreSQL tests run against the real server (ZART_TEST_PG_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres). The session creates its
own database and drops it at the end. An unreachable server is a test failure,
never a skip: scripts/test.sh starts it first.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "ZART_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgres"]


def _pg_available_backend() -> bool:
    try:
        import zart._store._postgres  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session's own; its URL."""
    import sqlalchemy as sa

    name = f"zart_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # a failure, not a skip: CI must notice a missing server
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}", pytrace=False)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


def _reset_pg(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # Everything goes: zart's tables at any schema version and the tests' own tables.
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL; the test runs once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'zart.db'}"
        return
    if not _pg_available_backend():
        pytest.fail("the PostgreSQL backend (zart._store._postgres) is missing", pytrace=False)
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zart.db'}"


@pytest.fixture
def app(db_url: str) -> Iterator[object]:
    import zart

    engine = zart.Zart(db_url, lease_seconds=5)
    yield engine
    engine.close()


@pytest.fixture
def child_env(db_url: str) -> dict[str, str]:
    """Environment for child processes: the test database and this checkout on the path."""
    env = dict(os.environ)
    env["ZART_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


PYTHON = sys.executable


def drain(app: Any, only_version: str | None = None) -> None:
    """Run every runnable execution in this process until none is left (sleeping and
    waiting ones stay parked): how tests park an execution mid-way."""
    import asyncio

    worker = app.worker(concurrency=4, poll_interval=0.02, only_version=only_version)
    asyncio.run(worker.run_async(until_idle=True))
