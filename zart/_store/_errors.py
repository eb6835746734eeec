"""How storage tells its callers what happened, and the one place where database
errors become zart errors."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from zart._errors import DatabaseUnavailableError


class RaceLost(Exception):
    """Another process inserted the same execution id first; the caller re-reads."""


class NotFound(LookupError):
    """No execution with the given id."""


class LeaseGone(Exception):
    """The caller's lease is gone; it must stop (the engine turns this into LeaseLostError)."""


def first_line(exc: BaseException) -> str:
    """The driver's message in one line (SQLAlchemy wraps it in ``.orig``)."""
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()
    return detail[0] if detail else type(exc).__name__


def unavailable(exc: BaseException, url: str) -> DatabaseUnavailableError:
    """The error a caller sees when the database cannot be used right now."""
    return DatabaseUnavailableError(
        f"cannot reach the database at {url}: {first_line(exc)} "
        "(check the URL given to Zart(...) / --database-url / ZART_DATABASE_URL)"
    )


def is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class OutcomeUnknownError(DatabaseUnavailableError):
    """A write that must not be repeated lost its connection while committing."""
