"""Storage backends, chosen by database URL."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from zart._errors import DatabaseUnavailableError, ZartError
from zart._storage._base import SqlStorage
from zart._storage._records import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    TERMINAL_STATUSES,
    EventRecord,
    ExecutionRecord,
    StepRecord,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "TERMINAL_STATUSES",
    "EventRecord",
    "ExecutionRecord",
    "SqlStorage",
    "StepRecord",
    "open_storage",
]


def open_storage(url: str) -> SqlStorage:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ZartError(
            f"invalid database URL {url!r}; expected e.g. sqlite:///zart.db or "
            "postgresql+psycopg://user@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        from zart._storage._sqlite import SQLiteStorage

        return SQLiteStorage(url)
    if backend == "postgresql":
        try:
            from zart._storage._postgres import PostgresStorage
        except ImportError as exc:
            raise DatabaseUnavailableError(
                f"PostgreSQL support needs psycopg: pip install 'zart[postgres]' ({exc})"
            ) from None
        return PostgresStorage(url)
    raise ZartError(
        f"unsupported database {backend!r} in URL {url!r}; zart supports sqlite and postgresql"
    )
