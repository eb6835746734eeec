"""How storage tells its callers what happened, and the one place where database
errors become zart errors (the text users read: what failed, and what to do)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError

from zart._errors import DatabaseUnavailableError


class RaceLost(Exception):
    """Another process inserted the same execution id first; the caller re-reads."""


class NotFound(LookupError):
    """No execution with the given id."""


class LeaseGone(Exception):
    """The caller's lease is gone; it must stop (the engine turns this into LeaseLostError)."""


class OutcomeUnknownError(DatabaseUnavailableError):
    """A write that must not be repeated lost its connection while committing."""


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind ``exc`` (SQLAlchemy wraps it in ``.orig``;
    zart wraps it as the cause), or ``exc`` itself."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and isinstance(current.orig, BaseException):
            return current.orig
        if isinstance(current, sqlite3.Error) or type(current).__module__.startswith("psycopg"):
            return current
        current = current.__cause__ or current.__context__
    return exc


def is_database_error(exc: BaseException) -> bool:
    """Is ``exc`` itself an error raised by a database driver (not one of zart's own
    signals, such as RaceLost, that merely happened while handling one)?"""
    return isinstance(exc, (DBAPIError, sqlite3.Error)) or type(exc).__module__.startswith(
        "psycopg"
    )


def first_line(exc: BaseException) -> str:
    """The driver's message in one line."""
    detail = str(driver_error(exc)).strip().splitlines()
    return detail[0] if detail else type(exc).__name__


def describe(exc: BaseException) -> str:
    """``Type: first line`` of the driver's error: ``OperationalError: database is locked``."""
    found = driver_error(exc)
    return f"{type(found).__name__}: {first_line(found)}"


def advice(exc: BaseException) -> str:
    """What a user can do about a database error, from its message."""
    text = first_line(exc).lower()
    if "readonly" in text or "read-only" in text or "permission" in text:
        return "Make the database file and its directory writable for this process."
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        return "It is not a usable SQLite database: point zart at another file."
    if "full" in text:
        return "Free space on its disk, then run the execution again."
    if "no such table" in text or "no such column" in text or "does not exist" in text:
        return "Its zart tables are missing or old: run `zart db upgrade`, or use another database."
    return "Check the database, then run the execution again; nothing was lost."


def unavailable(
    exc: BaseException, url: str, retried: float | None = None
) -> DatabaseUnavailableError:
    """The error a caller sees when the database cannot be used right now."""
    after = f" (retried for {retried:g} s)" if retried else ""
    text = first_line(exc)
    if any(word in text.lower() for word in ("locked", "busy", "full", "readonly", "i/o")):
        return DatabaseUnavailableError(
            f"cannot write to the database at {url}{after}: {text}. {advice(exc)}"
        )
    return DatabaseUnavailableError(
        f"cannot reach the database at {url}{after}: {text} "
        "(check the URL given to Zart(...) / --database-url / ZART_DATABASE_URL)"
    )


def is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
