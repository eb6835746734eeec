"""Helpers shared by ``long_execution.py`` and ``recovery_storm.py``: scratch
PostgreSQL databases, SQLite URLs, machine facts, and child processes that cannot
outlive the benchmark."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def libpq(url: str) -> str:
    """libpq form of a SQLAlchemy postgresql(+psycopg):// URL."""
    return "postgresql://" + url.split("://", 1)[1]


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """CREATE DATABASE <prefix>_<random>; yield its URL; end its sessions and DROP it."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_libpq = libpq(admin_url.partition("?")[0])
    with psycopg.connect(admin_libpq, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_libpq, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def pg_server_info(url: str) -> str:
    import psycopg

    with psycopg.connect(libpq(url.partition("?")[0])) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('server_version', 'fsync', 'synchronous_commit')"
            ).fetchall()
        )
    return (
        f"PostgreSQL {settings.get('server_version')}, fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}"
    )


def sqlite_url(path: Path, synchronous: str) -> str:
    return f"sqlite:///{path}?synchronous={synchronous}"


def sqlite_pragmas(engine: Any) -> str:
    """``journal_mode=… synchronous=…`` of a connection zart opened."""
    with engine.connect() as conn:
        journal = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower()
        sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
    return f"journal_mode={journal} synchronous={SYNCHRONOUS_NAMES.get(sync, sync)}"


def filesystem_of(path: Path) -> str:
    """Best effort: the file system type and mount point holding ``path`` (Linux)."""
    try:
        best = ("", "?")
        resolved = str(path.resolve())
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                mount, fstype = fields[1], fields[2]
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, fstype)
        return f"{best[1]} on {best[0]}" if best[0] else "?"
    except OSError:
        return "?"


def versions() -> str:
    """Versions, and how busy the machine is (other processes make timings noisy)."""
    import sqlalchemy

    import zart

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, zart {zart.__version__}; "
        f"{os.cpu_count()} CPUs, load average {load}"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGKILL this child when the benchmark process dies, however it dies, so
    no worker outlives a benchmark that was itself killed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> Any:
    """Start a child process logging to ``log_path``; it dies if this process dies.

    It runs in the checkout's root: in benchmarks/, ``python -m`` would put that
    directory first on sys.path, where concurrent.py shadows the standard library's."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            preexec_fn=_die_with_parent if platform.system() == "Linux" else None,
        )
