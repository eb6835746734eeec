"""One database: connections, transactions, the schema, and the dialect hooks.

A backend subclass says how to connect, how the database tells the time, how it
serializes migrations and how its checkpoint statement locks the execution row;
it may also retry transient errors at :meth:`Database.run`, the one boundary every
store operation passes. Nothing here knows the engine: callers get records, bools
and zart errors.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from zart._errors import DatabaseUnavailableError, StorageError, ZartError
from zart._store import _schema as s
from zart._store._errors import advice, describe, is_database_error, is_disconnect, unavailable
from zart._store._queries import CHECKPOINT_TEMPLATE, CREATE_CLAIMED_TEMPLATE, LEASE_HELD_SQL
from zart._store._records import StepRecord

log = logging.getLogger("zart.storage")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Database:
    """Storage on one SQLAlchemy engine. Thread-safe: one connection per thread."""

    # Appended to the checkpoint's lease check (see CHECKPOINT_TEMPLATE).
    checkpoint_row_lock = ""
    # How long one operation retries transient errors (see run()); a backend sets it.
    retry_seconds = 0.0

    def __init__(self, engine: Engine, url_for_messages: str) -> None:
        self.engine = engine
        self.url = url_for_messages  # password masked: safe to print
        self._local = threading.local()
        self._state = threading.local()
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self.checkpoint_sql = CHECKPOINT_TEMPLATE.format(row_lock=self.checkpoint_row_lock)
        self.checkpoint_statement = text(self.checkpoint_sql)
        self.create_claimed_sql = CREATE_CLAIMED_TEMPLATE.format(now=self.now_sql())

    # ------------------------------------------------------------------ dialect hooks

    def now_sql(self) -> Any:
        """The database's clock in Unix seconds, as an SQL expression (leases use it)."""
        raise NotImplementedError

    def lock_for_migration(self, conn: Connection) -> None:
        """Serialize concurrent migrations from several processes (called in a write tx)."""

    def notify_work(self, conn: Connection, durable_name: str) -> None:
        """In the write transaction that makes an execution of ``durable_name`` runnable
        now: tell other processes' workers, at commit (PostgreSQL: NOTIFY; SQLite has no
        way). The store then wakes this process's own (``_wakeups.notify``)."""

    def lock_queue(self, conn: Connection, queue: str) -> None:
        """Serialize the claims of one queue (``zart.Queue``) until the end of the write
        transaction ``conn`` is in. SQLite: its write lock (BEGIN IMMEDIATE) already does."""

    def announce_work(self) -> None:
        """Tell every worker of every other process that work may be ready (a queue slot
        freed), in a transaction of its own (PostgreSQL: NOTIFY; SQLite has no way)."""

    def listen(self) -> None:
        """Start hearing other processes' :meth:`notify_work` (once; PostgreSQL)."""

    @property
    def listening(self) -> bool:
        """Is the push channel from other processes live now? If not, workers poll."""
        return False

    def run(self, what: str, op: Callable[[], T], *, budget: float | None = None) -> T:
        """The boundary every store operation passes: run ``op()``; retry it with backoff,
        on a fresh connection, while it fails with an error :meth:`is_transient` accepts,
        for at most ``budget`` seconds (default ``retry_seconds``); then raise
        DatabaseUnavailableError. Any other database error becomes a StorageError that
        names the database. ``attempt`` tells ``op`` which try it is (0 first)."""
        state = self._state
        if getattr(state, "depth", 0):
            return op()  # nested in an operation that already retries
        state.depth = 1
        try:
            return op()  # the common case: no bookkeeping beyond the nesting flag
        except Exception as exc:
            return self._recover(what, op, self.retry_seconds if budget is None else budget, exc)
        finally:
            state.depth = 0

    def _recover(self, what: str, op: Callable[[], T], budget: float, exc: Exception) -> T:
        """Retry ``op`` after its first try failed with ``exc`` (see :meth:`run`)."""
        state = self._state
        delay = 0.05
        deadline = time.monotonic() + budget
        state.attempt = 0
        try:
            while True:
                if not self.is_transient(exc):
                    raise self._permanent(what, exc) from exc
                self.drop_connection()
                state.attempt += 1
                pause = delay * random.uniform(0.5, 1.0)
                if time.monotonic() + pause > deadline:
                    if isinstance(exc, DatabaseUnavailableError):
                        raise exc
                    raise unavailable(exc, self.url, budget) from exc
                log.warning(
                    "database error during %s (%s); retry %d in %.2fs",
                    what, describe(exc), state.attempt, pause,
                )  # fmt: skip
                time.sleep(pause)
                delay = min(delay * 2, 2.0)
                try:
                    return op()
                except Exception as again:
                    exc = again
        finally:
            state.attempt = 0

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what caused it) is a database error worth retrying."""
        return False

    def _permanent(self, what: str, exc: Exception) -> Exception:
        """A database error that retrying will not fix, as a StorageError naming the
        database; zart's own errors and the caller's pass through unchanged."""
        if isinstance(exc, ZartError) or not is_database_error(exc):
            return exc
        return StorageError(
            f"the database at {self.url} refused {what}: {describe(exc)}. {advice(exc)}"
        )

    @property
    def attempt(self) -> int:
        """0 on an operation's first try, then 1, 2... (see :meth:`run`)."""
        return int(getattr(self._state, "attempt", 0))

    def outcome_unknown(self, exc: BaseException) -> bool:
        """Did ``exc`` break the connection while committing (so the write may be in)?"""
        return False

    def write_checkpoint(self, token: str, record: StepRecord) -> bool:
        """The fenced checkpoint statement on its own (autocommit); False when refused."""
        with self.tx() as conn:
            return bool(conn.execute(self.checkpoint_statement, record.as_params(token)).rowcount)

    def write_batch(self, statements: list[tuple[str, dict[str, Any]]]) -> tuple[list[int], bool]:
        """Run ``statements`` in one transaction (see :mod:`zart._store._group`): the rows
        each affected (or returned, for a SELECT), and whether the batch had to be
        retried (then a write of the failed try may have committed already)."""
        tries = [0]

        def once() -> list[int]:
            tries[0] = self.attempt
            with self.tx() as conn:
                counts = []
                for sql, params in statements:
                    result = conn.execute(text(sql), params)
                    counts.append(len(result.all()) if result.returns_rows else result.rowcount)
                return counts

        return self.run("group commit", once), tries[0] > 0

    def lease_held(self, execution_id: str, token: str) -> bool:
        """Does ``token`` still hold the running execution (not cancelled, not taken)?"""
        params = {"execution_id": execution_id, "token": token}
        with self.tx(write=False) as conn:
            return conn.execute(text(LEASE_HELD_SQL), params).first() is not None

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
                self._check_recognised(conn)
                version = s.current_version(conn)
                if version < s.LATEST_VERSION:
                    s.schema_version.create(conn, checkfirst=True)
                # Every migration not applied yet, in number order: one numbered below the
                # latest applied (merged later than a higher one) still runs.
                applied = s.applied_versions(conn)
                todo = [(n, migrate) for n, migrate in s.MIGRATIONS if n not in applied]
                for number, migrate in todo:
                    migrate(conn)
                    conn.execute(
                        insert(s.schema_version).values(version=number, applied_at=time.time())
                    )
                if todo:
                    self._check_columns(conn)  # once, after migrating: not on every start
        except DBAPIError as exc:
            if is_disconnect(exc) or isinstance(exc, OperationalError):
                self.drop_connection()
                if not self.is_transient(exc) and not is_disconnect(exc):
                    raise self._permanent("its schema check", exc) from exc
                raise unavailable(exc, self.url) from exc
            raise

    def _check_recognised(self, conn: Connection) -> None:
        """Nothing is written to a database whose zart tables zart did not create, nor to
        one a newer zart migrated."""
        foreign = s.foreign_tables(conn)
        if foreign:
            raise StorageError(
                f"the database at {self.url} has tables named like zart's ({', '.join(foreign)}) "
                "but no zart schema version, so zart did not create them and will not write "
                "to them: use another database, or drop those tables"
            )
        version = s.current_version(conn)
        if version > s.LATEST_VERSION:
            raise StorageError(
                f"the database at {self.url} has zart schema version {version}, "
                f"newer than this zart understands ({s.LATEST_VERSION}); upgrade zart"
            )

    def _check_columns(self, conn: Connection) -> None:
        missing = s.missing_columns(conn)
        if missing:
            listed = "; ".join(f"{t}: {', '.join(cols)}" for t, cols in sorted(missing.items()))
            raise StorageError(
                f"the zart tables in the database at {self.url} lack what this zart needs "
                f"({listed}); they were changed outside zart. Run `zart db upgrade`, or use "
                "another database"
            )

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


def url_option(url: URL, name: str, default: float) -> tuple[URL, float]:
    """A zart option given in the database URL's query (``?retry_seconds=5``), removed
    from the URL so the driver never sees it."""
    if name not in url.query:
        return url, default
    raw = url.query[name]
    try:
        value = float(raw if isinstance(raw, str) else raw[-1])
    except ValueError:
        raise ZartError(f"{name}={raw!r} in the database URL is not a number") from None
    if value < 0:
        raise ZartError(f"{name} in the database URL must not be negative, got {value:g}")
    return url.difference_update_query([name]), value


def boundary(method: F) -> F:
    """Send a store method through its database's :meth:`Database.run` (retries and
    error mapping live there, not at each call site)."""
    what = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self.db.run(what, lambda: method(self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]
