"""The storage layer: records, SQL and its own errors, nothing of the engine.

* :class:`Database` (``_database.py``) — connections, transactions, schema, and the
  dialect hooks; :class:`SQLiteDatabase` and :class:`PostgresDatabase` implement them.
* :class:`JournalStore` (``_journal.py``) — the engine's narrow interface: create,
  claim, load the journal, checkpoint, finish, leases, wake-ups, events.
* :class:`OpsStore` (``_operations.py``) — listing, counts, health, admin resets,
  audit, metrics and schedules for the operations tools.
* :class:`RetentionStore` (``_retention.py``) — deleting finished executions (``zart gc``).
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from zart._errors import DatabaseUnavailableError, ZartError
from zart._store._database import Database
from zart._store._errors import LeaseGone, NotFound, RaceLost
from zart._store._journal import JournalStore
from zart._store._operations import OpsStore
from zart._store._records import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    NO_EVENT,
    PENDING,
    RUNNING,
    SLEEPING,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRYING,
    TERMINAL_STATUSES,
    WAITING,
    EventRecord,
    ExecutionRecord,
    StepRecord,
    stored_json,
)
from zart._store._retention import RetentionStore

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "NO_EVENT",
    "PENDING",
    "RUNNING",
    "SLEEPING",
    "STEP_COMPLETED",
    "STEP_FAILED",
    "STEP_RETRYING",
    "TERMINAL_STATUSES",
    "WAITING",
    "Database",
    "EventRecord",
    "ExecutionRecord",
    "JournalStore",
    "LeaseGone",
    "NotFound",
    "OpsStore",
    "RaceLost",
    "RetentionStore",
    "StepRecord",
    "open_database",
    "stored_json",
]


def open_database(url: str) -> Database:
    """The backend for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not parsed, so not masked by SQLAlchemy: hide anything between "://user:" and
        # the last "@" (a password may itself contain "@").
        shown = re.sub(r"(://[^/:@]*:)[^/]*@", r"\1***@", url)
        raise ZartError(
            f"invalid database URL {shown!r}; expected e.g. sqlite:///zart.db or "
            "postgresql+psycopg://user@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        from zart._store._sqlite import SQLiteDatabase

        return SQLiteDatabase(url)
    if backend == "postgresql":
        try:
            from zart._store._postgres import PostgresDatabase
        except ImportError as exc:
            raise DatabaseUnavailableError(
                f"PostgreSQL support needs psycopg: pip install 'zart[postgres]' ({exc})"
            ) from None
        return PostgresDatabase(url)
    shown = parsed.render_as_string(hide_password=True)
    raise ZartError(
        f"unsupported database {backend!r} in URL {shown!r}; zart supports sqlite and postgresql"
    )
