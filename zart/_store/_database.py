"""One database: connections, transactions, the schema, and the dialect hooks.

A backend subclass says how to connect, how the database tells the time, how it
serializes migrations and how its checkpoint statement locks the execution row;
it may also retry transient errors at :meth:`Database.run`, the one boundary every
store operation passes. Nothing here knows the engine: callers get records, bools
and zart errors.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from zart._errors import ZartError
from zart._store import _schema as s
from zart._store._errors import is_disconnect, unavailable
from zart._store._queries import CHECKPOINT_TEMPLATE
from zart._store._records import StepRecord

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Database:
    """Storage on one SQLAlchemy engine. Thread-safe: one connection per thread."""

    # Appended to the checkpoint's lease check (see CHECKPOINT_TEMPLATE).
    checkpoint_row_lock = ""

    def __init__(self, engine: Engine, url_for_messages: str) -> None:
        self.engine = engine
        self.url = url_for_messages  # password masked: safe to print
        self._local = threading.local()
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self.checkpoint_sql = CHECKPOINT_TEMPLATE.format(row_lock=self.checkpoint_row_lock)
        self.checkpoint_statement = text(self.checkpoint_sql)

    # ------------------------------------------------------------------ dialect hooks

    def now_sql(self) -> Any:
        """The database's clock in Unix seconds, as an SQL expression (leases use it)."""
        raise NotImplementedError

    def lock_for_migration(self, conn: Connection) -> None:
        """Serialize concurrent migrations from several processes (called in a write tx)."""

    def run(self, what: str, op: Callable[[], T], *, budget: float | None = None) -> T:
        """The boundary every store operation passes: ``op()`` once here; a backend may
        retry transient errors (``attempt`` then tells ``op`` which try it is)."""
        return op()

    @property
    def attempt(self) -> int:
        """0 on an operation's first try, then 1, 2... (see :meth:`run`)."""
        return 0

    def outcome_unknown(self, exc: BaseException) -> bool:
        """Did ``exc`` break the connection while committing (so the write may be in)?"""
        return False

    def write_checkpoint(self, token: str, record: StepRecord) -> bool:
        """The fenced checkpoint statement on its own (autocommit); False when refused."""
        with self.tx() as conn:
            return bool(conn.execute(self.checkpoint_statement, record.as_params(token)).rowcount)

    # ------------------------------------------------------------------ connections

    def conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            try:
                conn = self.engine.connect()
            except DBAPIError as exc:
                raise unavailable(exc, self.url) from None
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Connection]:
        """A transaction on this thread's connection; writes take the write lock up front."""
        self.ensure_schema()
        conn = self.conn()
        conn.info["zart_write"] = write
        try:
            with conn.begin():
                yield conn
        except OperationalError as exc:
            if is_disconnect(exc) or self.is_disconnect(exc):
                self.drop_connection()
                raise unavailable(exc, self.url) from exc
            raise

    def is_disconnect(self, exc: DBAPIError) -> bool:
        return False

    def drop_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                pass

    def db_now(self, conn: Connection) -> float:
        return float(conn.execute(select(self.now_sql())).scalar_one())

    def close(self) -> None:
        self.drop_connection()
        self.engine.dispose()

    # ------------------------------------------------------------------ schema

    def ensure_schema(self) -> None:
        if self._migrated:
            return
        with self._migrate_lock:
            if not self._migrated:
                self.run("schema migration", self._migrate)
                self._migrated = True

    def _migrate(self) -> None:
        conn = self.conn()
        conn.info["zart_write"] = True
        try:
            with conn.begin():
                self.lock_for_migration(conn)
                version = s.current_version(conn)
                if version > s.LATEST_VERSION:
                    raise ZartError(
                        f"the database at {self.url} has zart schema version {version}, "
                        f"newer than this zart understands ({s.LATEST_VERSION}); upgrade zart"
                    )
                for number, migrate in s.MIGRATIONS:
                    if number > version:
                        migrate(conn)
                        conn.execute(
                            insert(s.schema_version).values(version=number, applied_at=time.time())
                        )
        except DBAPIError as exc:
            if is_disconnect(exc) or isinstance(exc, OperationalError):
                self.drop_connection()
                raise unavailable(exc, self.url) from exc
            raise

    def schema_version(self) -> int:
        def read() -> int:
            with self.tx(write=False) as conn:
                return s.current_version(conn)

        return self.run("schema_version", read)

    def ping(self) -> None:
        """Raise DatabaseUnavailableError unless the database answers (and is migrated)."""
        try:
            with self.tx(write=False) as conn:
                conn.execute(select(1)).scalar_one()
        except DBAPIError as exc:
            self.drop_connection()
            raise unavailable(exc, self.url) from None


def boundary(method: F) -> F:
    """Send a store method through its database's :meth:`Database.run` (retries and
    error mapping live there, not at each call site)."""
    what = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self.db.run(what, lambda: method(self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]
