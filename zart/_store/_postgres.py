"""PostgreSQL backend: many worker processes, on many hosts, share one database.

What this module adds to :class:`SqlStorage`:

* **Connections.** psycopg 3 through SQLAlchemy, ``pool_pre_ping`` so a pooled
  connection that died with a server restart is replaced before use, TCP
  keepalives so a silently dropped connection is noticed, ``application_name``
  ``zart`` so the connections are recognisable in ``pg_stat_activity``, and an
  ``idle_in_transaction_session_timeout`` so a worker frozen in the middle of a
  transaction (SIGSTOP, a hung VM) cannot hold row locks for ever.
* **The database clock.** Leases are computed from ``clock_timestamp()`` on the
  server, never from a worker's clock.
* **Fencing under READ COMMITTED.** The checkpoint upsert locks the execution
  row ``FOR SHARE`` while it checks the lease, so a claim that takes the lease
  over waits for (or skips) an in-flight checkpoint instead of racing it: a
  checkpoint commits either before the takeover (and the new owner replays it)
  or not at all.
* **Migrations** run under ``pg_advisory_xact_lock``, so workers starting
  together migrate once.
* **Wake-ups.** Writes that make an execution runnable send
  ``pg_notify('zart_work', <durable name>)`` (:meth:`PostgresDatabase.notify_work`);
  a worker's process listens on its own connection (:meth:`PostgresDatabase.listen`,
  the thread in ``_wakeups.py``), so idle workers wake at once instead of polling.
* **Transient errors** (connection closed or refused, server shut down or
  restarting, serialization failures, deadlocks) are retried with exponential
  backoff in :meth:`PostgresDatabase.run`, the boundary every store operation
  passes, on a fresh connection. Every operation is safe to repeat: writes are
  upserts or updates conditional on the lease token, and the few that are not
  naturally idempotent check, on a retry (``db.attempt > 0``), what the attempt
  that failed at commit time left behind.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Double, create_engine, literal_column, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from zart._errors import ZartError
from zart._store._database import Database, url_option
from zart._store._errors import OutcomeUnknownError
from zart._store._pg_batch import SetForm, set_forms
from zart._store._queries import LEASE_HELD_SQL
from zart._store._records import StepRecord
from zart._store._wakeups import CHANNEL, Listener

log = logging.getLogger("zart.storage")

T = TypeVar("T")

# Key of the advisory lock that serializes schema migrations ("zart" in ASCII).
MIGRATION_LOCK_KEY = 0x7A617274

_NOTIFY_WORK = text(f"SELECT pg_notify('{CHANNEL}', :name)")
_QUEUE_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_LISTEN_LOCK = threading.Lock()

# SQLSTATEs worth retrying: the statement did not take effect (or the session is gone)
# and running it again on a fresh connection may well succeed.
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown (pg_terminate_backend, smart/fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, recovery)
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout
    }
)

# libpq connection parameters zart sets unless the URL sets them.
DEFAULT_CONNECT_ARGS: dict[str, Any] = {
    "application_name": "zart",
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3.

    ``pool_size``/``max_overflow`` bound the connections of this process: one is
    held by every thread that uses the engine (the event-loop thread running the
    executions and the lease heartbeat thread; ``--concurrency`` does not add
    connections). ``retry_seconds`` is how long one operation keeps retrying
    transient database errors before it gives up with DatabaseUnavailableError.
    ``idle_in_transaction_timeout`` (seconds) ends a session that stalls inside
    a transaction, releasing its row locks.
    """

    # FOR SHARE on the execution row while the checkpoint checks the lease. READ
    # COMMITTED reads the lease from a snapshot; without the row lock a takeover could
    # commit between this statement's lease check and its commit, and the new owner
    # would not see (and would re-run) the step. With it, a claim waits for the
    # checkpoint's transaction (or skips the row), and a checkpoint issued after a
    # takeover re-checks the new row version and writes nothing.
    checkpoint_row_lock = "FOR SHARE"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        max_overflow: int = 16,
        retry_seconds: float = 60.0,
        idle_in_transaction_timeout: float = 30.0,
    ) -> None:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername != "postgresql+psycopg":
            raise ZartError(
                f"unsupported PostgreSQL driver {parsed.drivername!r} in "
                f"{parsed.render_as_string(hide_password=True)!r}; zart uses "
                "psycopg 3: postgresql+psycopg://user@host/dbname"
            )
        parsed, retry_seconds = url_option(parsed, "retry_seconds", retry_seconds)
        connect_args = {k: v for k, v in DEFAULT_CONNECT_ARGS.items() if k not in parsed.query}
        if "options" not in parsed.query:
            connect_args["options"] = (
                f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout * 1000)}"
            )
        engine = create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=30,
            connect_args=connect_args,
        )
        super().__init__(engine, parsed.render_as_string(hide_password=True))
        self.retry_seconds = retry_seconds
        self._ever_connected = False
        # The statements in psycopg's own placeholder style, for the raw path.
        self._raw_checkpoint_sql = _psycopg_style(self.checkpoint_sql)
        self._raw_lease_held_sql = _psycopg_style(LEASE_HELD_SQL)
        self._raw_statements: dict[str, str] = {}
        self._set_forms = set_forms(
            self.checkpoint_sql, self.create_claimed_sql, str(self.now_sql())
        )

    # ------------------------------------------------------------------ dialect hooks

    def now_sql(self) -> Any:
        return literal_column(
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)", type_=Double()
        )

    def lock_for_migration(self, conn: Connection) -> None:
        # Held until the migration transaction ends; PostgreSQL DDL is transactional,
        # so a second process waits here, then finds the schema current.
        conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))

    # ------------------------------------------------------------------ wake-ups (_wakeups)

    _listener: Listener | None = None

    def notify_work(self, conn: Connection, durable_name: str) -> None:
        # Delivered at commit (never on a rollback) to every LISTEN zart_work session:
        # the listeners of the worker processes.
        conn.execute(_NOTIFY_WORK, {"name": durable_name})

    def lock_queue(self, conn: Connection, queue: str) -> None:
        # Held until the claim's transaction ends: one claimer of a queue at a time, so
        # its counts (running, started in the rate window) cannot be raced.
        conn.execute(_QUEUE_LOCK, {"key": f"zart_queue:{queue}"})

    def announce_work(self) -> None:
        with self.tx() as conn:
            conn.execute(_NOTIFY_WORK, {"name": ""})  # "": every durable's workers

    def listen(self) -> None:
        with _LISTEN_LOCK:
            if self._listener is None:
                self._listener = Listener(self._listener_connection)
                self._listener.start()

    @property
    def listening(self) -> bool:
        listener = self._listener
        return listener is not None and listener.live

    def _listener_connection(self) -> Any:
        """A new connection with the pool's settings, detached: the listener's own."""
        fairy = self.engine.raw_connection()
        fairy.detach()
        return fairy.dbapi_connection

    def close(self) -> None:
        with _LISTEN_LOCK:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        super().close()

    def conn(self) -> Connection:
        conn = super().conn()
        self._ever_connected = True
        return conn

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Connection]:
        # Remember whether a failure happened at COMMIT: then the outcome is unknown
        # (the server may have committed before the connection broke).
        self._state.committing = False
        with super().tx(write) as conn:
            yield conn
            self._state.committing = True

    def outcome_unknown(self, exc: BaseException) -> bool:
        return bool(getattr(self._state, "committing", False)) and self.is_transient(exc)

    # ------------------------------------------------------------------ retries

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what caused it) is a database error worth retrying."""
        if isinstance(exc, OutcomeUnknownError):
            return False
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, DBAPIError):
                if current.connection_invalidated:
                    return True
                if isinstance(current.orig, BaseException):
                    current = current.orig
                    continue
            if isinstance(current, psycopg.Error):
                return self._transient_driver_error(current)
            current = current.__cause__ or current.__context__
        return False

    def _transient_driver_error(self, exc: psycopg.Error) -> bool:
        state = exc.sqlstate
        if state is not None:
            return state in TRANSIENT_SQLSTATES or state.startswith("08")
        # No SQLSTATE: the connection itself failed (refused, closed, reset). Before the
        # first successful connection that is most likely a wrong URL; afterwards it is
        # an outage worth riding out.
        return self._ever_connected and isinstance(
            exc, (psycopg.OperationalError, psycopg.InterfaceError)
        )

    # ------------------------------------------------------------------ the hot path

    def write_checkpoint(self, token: str, record: StepRecord) -> bool:
        """The checkpoint write, on every step's path: one statement, one round trip.

        Sent straight to this thread's psycopg connection in autocommit mode, so the
        statement is its own transaction: no BEGIN and COMMIT round trips, and none
        of the Core execution machinery. An upsert of the same row, so repeating it
        after a connection broke with the outcome unknown is harmless.
        """
        return self.run("save_step", lambda: self._write_checkpoint_once(token, record))

    def _write_checkpoint_once(self, token: str, record: StepRecord) -> bool:
        params = record.as_params(token)
        rowcount = self._autocommit(
            lambda raw: raw.execute(self._raw_checkpoint_sql, params).rowcount
        )
        if rowcount is None:  # pragma: no cover - defensive: inside a transaction
            return Database.write_checkpoint(self, token, record)
        return bool(rowcount > 0)

    def write_batch(self, statements: list[tuple[str, dict[str, Any]]]) -> tuple[list[int], bool]:
        """The batch in one transaction, sent as one pipeline: the statements of one
        kind as one set-based statement (``_pg_batch``), the rest one by one, and the
        COMMIT, all in one round trip (see :meth:`Database.write_batch`)."""
        tries = [0]

        def once() -> list[int]:
            tries[0] = self.attempt
            if not self._migrated:
                self.ensure_schema()
            raw: Any = self.conn().connection.dbapi_connection
            if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raw.rollback()
            raw.autocommit = False
            try:
                with raw.pipeline():
                    collect = self._send_batch(raw, statements)
                    raw.commit()
            except BaseException:
                with suppress(psycopg.Error):
                    raw.rollback()  # nothing of the batch is left half-applied
                raise
            return collect()

        return self.run("group commit", once), tries[0] > 0

    def _send_batch(
        self, raw: Any, statements: list[tuple[str, dict[str, Any]]]
    ) -> Callable[[], list[int]]:
        """Send the batch's statements; returns how to read their row counts once the
        pipeline has synced."""
        groups: dict[str, list[int]] = {}
        for index, (sql, _) in enumerate(statements):
            groups.setdefault(sql, []).append(index)
        readers: list[Callable[[list[int]], None]] = []
        for sql, indexes in groups.items():
            form = self._set_forms.get(sql)
            params = [statements[i][1] for i in indexes]
            if form is not None and len(indexes) > 1:
                cursor = form.run(raw, params)
                readers.append(_set_reader(form, cursor, params, indexes))
            else:
                cursors = [raw.execute(self._raw_sql(sql), p) for p in params]
                readers.append(_single_reader(cursors, indexes))

        def collect() -> list[int]:
            counts = [0] * len(statements)
            for read in readers:
                read(counts)
            return counts

        return collect

    def _raw_sql(self, sql: str) -> str:
        found = self._raw_statements.get(sql)
        if found is None:
            found = self._raw_statements[sql] = _psycopg_style(sql)
        return found

    def lease_held(self, execution_id: str, token: str) -> bool:
        """One indexed read, one round trip, on the raw connection in autocommit."""
        params = {"execution_id": execution_id, "token": token}

        def read() -> bool:
            found = self._autocommit(
                lambda raw: raw.execute(self._raw_lease_held_sql, params).fetchone()
            )
            return found is not None and found is not _NO_ROW

        return self.run("lease check", read)

    def _autocommit(self, statement: Callable[[Any], Any]) -> Any:
        """Run ``statement(raw_connection)`` as its own transaction on this thread's
        psycopg connection: no BEGIN/COMMIT round trips, none of Core's machinery.
        None if the connection is inside a transaction (then the caller uses Core)."""
        if not self._migrated:
            self.ensure_schema()
        conn = self.conn()
        raw: Any = conn.connection.dbapi_connection
        if raw is None or conn.in_transaction():  # pragma: no cover - defensive
            return None
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.rollback()  # e.g. the pool's pre-ping SELECT 1 left a transaction open
        raw.autocommit = True
        try:
            result = statement(raw)
            return _NO_ROW if result is None else result
        finally:
            with suppress(psycopg.Error):  # a broken connection: the caller drops it
                raw.autocommit = False


def _set_reader(
    form: SetForm, cursor: Any, params: list[dict[str, Any]], indexes: list[int]
) -> Callable[[list[int]], None]:
    def read(counts: list[int]) -> None:
        for index, count in zip(indexes, form.counts(cursor, params), strict=True):
            counts[index] = count

    return read


def _single_reader(cursors: list[Any], indexes: list[int]) -> Callable[[list[int]], None]:
    def read(counts: list[int]) -> None:
        for index, cursor in zip(indexes, cursors, strict=True):
            counts[index] = (
                cursor.rowcount if cursor.description is None else len(cursor.fetchall())
            )

    return read


# Marks "the statement ran and found no row" apart from "could not run it here" (None).
_NO_ROW: Any = object()


def _psycopg_style(sql: str) -> str:
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


__all__ = ["MIGRATION_LOCK_KEY", "PostgresDatabase"]
