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
* **Transient errors** (connection closed or refused, server shut down or
  restarting, serialization failures, deadlocks) are retried with exponential
  backoff around each storage operation, on a fresh connection. Every operation
  is safe to repeat: writes are upserts or updates conditional on the lease
  token, and the few that are not naturally idempotent check, on a retry, what
  the attempt that failed at commit time left behind.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Double, create_engine, literal_column, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from zart._errors import DatabaseUnavailableError, ZartError
from zart._storage import _schema as s
from zart._storage._base import SqlStorage
from zart._storage._records import (
    RUNNING,
    STEP_COMPLETED,
    ExecutionRecord,
    StepRecord,
)

log = logging.getLogger("zart.storage")

T = TypeVar("T")

# Key of the advisory lock that serializes schema migrations ("zart" in ASCII).
MIGRATION_LOCK_KEY = 0x7A617274

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


class PostgresStorage(SqlStorage):
    """Storage on PostgreSQL through psycopg 3.

    ``pool_size``/``max_overflow`` bound the connections of this process: one is
    held by every thread that uses the engine (the event-loop thread running the
    executions and the lease heartbeat thread; ``--concurrency`` does not add
    connections). ``retry_seconds`` is how long one operation keeps retrying
    transient database errors before it gives up with DatabaseUnavailableError.
    ``idle_in_transaction_timeout`` (seconds) ends a session that stalls inside
    a transaction, releasing its row locks.
    """

    dialect_name = "postgresql"

    # The fenced checkpoint write: as in SqlStorage, plus FOR SHARE on the execution
    # row. READ COMMITTED reads the lease from a snapshot; without the row lock a
    # takeover could commit between this statement's lease check and its commit,
    # and the new owner would not see (and would re-run) the step. With it, a claim
    # waits for the checkpoint's transaction (or skips the row), and a checkpoint
    # issued after a takeover re-checks the new row version and writes nothing.
    SAVE_STEP_SQL = SqlStorage.SAVE_STEP_TEMPLATE.format(row_lock="FOR SHARE")

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
                f"unsupported PostgreSQL driver {parsed.drivername!r} in {url!r}; zart uses "
                "psycopg 3: postgresql+psycopg://user@host/dbname"
            )
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
        self._state = threading.local()

    # ------------------------------------------------------------------ backend hooks

    def now_sql(self) -> Any:
        return literal_column(
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)", type_=Double()
        )

    def lock_for_migration(self, conn: Connection) -> None:
        # Held until the migration transaction ends; PostgreSQL DDL is transactional,
        # so a second process waits here, then finds the schema current.
        conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))

    def _conn(self) -> Connection:
        conn = super()._conn()
        self._ever_connected = True
        return conn

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        # Remember whether a failure happened at COMMIT: then the outcome is unknown
        # (the server may have committed before the connection broke).
        self._state.committing = False
        with super()._tx(write) as conn:
            yield conn
            self._state.committing = True

    # ------------------------------------------------------------------ retries

    def _is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what caused it) is a database error worth retrying."""
        if isinstance(exc, _OutcomeUnknownError):
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
                state = current.sqlstate
                if state is not None:
                    return state in TRANSIENT_SQLSTATES or state.startswith("08")
                # No SQLSTATE: the connection itself failed (refused, closed, reset).
                # Before the first successful connection that is most likely a wrong
                # URL; afterwards it is an outage worth riding out.
                return self._ever_connected and isinstance(
                    current, (psycopg.OperationalError, psycopg.InterfaceError)
                )
            current = current.__cause__ or current.__context__
        return False

    def _retrying(self, what: str, op: Callable[[int], T], *, budget: float | None = None) -> T:
        """Run ``op(attempt)``; on a transient error retry it with backoff on a new connection."""
        if getattr(self._state, "depth", 0):
            return op(0)  # nested in an operation that already retries
        self._state.depth = 1
        try:
            attempt = 0
            delay = 0.05
            deadline: float | None = None
            while True:
                try:
                    return op(attempt)
                except Exception as exc:
                    if not self._is_transient(exc):
                        raise
                    self._drop_connection()
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + (self.retry_seconds if budget is None else budget)
                    attempt += 1
                    pause = delay * random.uniform(0.5, 1.0)
                    if now + pause > deadline:
                        if isinstance(exc, DatabaseUnavailableError):
                            raise
                        raise self._unavailable(exc) from exc
                    log.warning(
                        "database error during %s (%s); retry %d in %.2fs",
                        what,
                        _describe(exc),
                        attempt,
                        pause,
                    )
                    time.sleep(pause)
                    delay = min(delay * 2, 2.0)
        finally:
            self._state.depth = 0

    def _ambiguous(self) -> bool:
        """Did the last failure happen while committing (outcome unknown)?"""
        return bool(getattr(self._state, "committing", False))

    # ------------------------------------------------------------------ operations

    def ensure_schema(self) -> None:
        if self._migrated:
            return
        self._retrying("schema migration", lambda _a: SqlStorage.ensure_schema(self))

    def schema_version(self) -> int:
        return self._retrying(
            "schema_version", lambda _a: super(PostgresStorage, self).schema_version()
        )

    def create_execution(
        self, execution_id: str, durable_name: str, input_json: str, parent_id: str | None = None
    ) -> tuple[ExecutionRecord, bool]:
        # Repeating it is safe: an attempt whose commit went through is found as "exists".
        base = super().create_execution
        return self._retrying(
            "create_execution", lambda _a: base(execution_id, durable_name, input_json, parent_id)
        )

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        base = super().get_execution
        return self._retrying("get_execution", lambda _a: base(execution_id))

    def list_executions(
        self,
        status: str | None = None,
        durable_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionRecord]:
        base = super().list_executions
        return self._retrying(
            "list_executions", lambda _a: base(status, durable_name, limit, offset)
        )

    def count_by_status(self) -> dict[str, int]:
        base = super().count_by_status
        return self._retrying("count_by_status", lambda _a: base())

    def try_claim(
        self, execution_id: str, token: str, lease_seconds: float, *, force_wake: bool = False
    ) -> ExecutionRecord | None:
        base = super().try_claim

        def op(attempt: int) -> ExecutionRecord | None:
            if attempt:
                # The failed attempt may have committed the claim under our token.
                rec = SqlStorage.get_execution(self, execution_id)
                if rec is not None and rec.status == RUNNING and rec.lease_owner == token:
                    return rec
            return base(execution_id, token, lease_seconds, force_wake=force_wake)

        return self._retrying("try_claim", op)

    def claim_runnable(
        self, token_factory: Any, durable_names: Sequence[str], limit: int, lease_seconds: float
    ) -> list[tuple[ExecutionRecord, str]]:
        base = super().claim_runnable
        minted: list[str] = []

        def factory() -> str:
            token = str(token_factory())
            minted.append(token)
            return token

        def op(attempt: int) -> list[tuple[ExecutionRecord, str]]:
            if attempt and minted:
                # Claims the failed attempt committed are ours: hand them out rather than
                # leaving them to expire.
                mine = self._held_by(minted)
                minted.clear()
                if mine:
                    return mine
            return base(factory, durable_names, limit, lease_seconds)

        return self._retrying("claim_runnable", op)

    def _held_by(self, tokens: list[str]) -> list[tuple[ExecutionRecord, str]]:
        e = s.executions
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(e).where(e.c.lease_owner.in_(tokens), e.c.status == RUNNING)
            ).all()
        recs = [ExecutionRecord.from_row(r) for r in rows]
        return [(r, str(r.lease_owner)) for r in recs]

    def renew_leases(self, tokens: Iterable[str], lease_seconds: float) -> set[str]:
        """Extend every lease in one statement; return the tokens no longer held."""
        tokens = list(tokens)
        if not tokens:
            return set()
        e = s.executions
        statement = (
            update(e)
            .where(e.c.lease_owner.in_(tokens), e.c.status == RUNNING)
            .values(lease_expires_at=self.now_sql() + lease_seconds)
            .returning(e.c.lease_owner)
        )

        def op(_attempt: int) -> set[str]:
            with self._tx() as conn:
                held = {str(owner) for owner in conn.execute(statement).scalars()}
            return set(tokens) - held

        # The heartbeat beats again soon: retry briefly (a reconnect), never for long.
        budget = min(self.retry_seconds, max(0.5, lease_seconds / 3))
        return self._retrying("renew_leases", op, budget=budget)

    def finish_execution(
        self, execution_id: str, token: str, status: str, result: str | None, error: str | None
    ) -> bool:
        base = super().finish_execution

        def op(attempt: int) -> bool:
            if base(execution_id, token, status, result, error):
                return True
            if not attempt:
                return False
            # Refused on a retry: did the attempt that failed at commit record it?
            rec = SqlStorage.get_execution(self, execution_id)
            return (
                rec is not None
                and rec.status == status
                and rec.lease_owner is None
                and rec.result == result
                and rec.error == error
            )

        return self._retrying("finish_execution", op)

    def suspend_execution(
        self, execution_id: str, token: str, status: str, wake_at: float | None
    ) -> bool:
        base = super().suspend_execution
        return self._retrying(
            "suspend_execution", lambda _a: base(execution_id, token, status, wake_at)
        )

    def release(self, execution_id: str, token: str) -> bool:
        base = super().release
        return self._retrying("release", lambda _a: base(execution_id, token))

    def cancel(self, execution_id: str) -> tuple[ExecutionRecord | None, bool]:
        base = super().cancel
        return self._retrying("cancel", lambda _a: base(execution_id))

    def load_steps(self, execution_id: str) -> dict[str, StepRecord]:
        base = super().load_steps
        return self._retrying("load_steps", lambda _a: base(execution_id))

    def save_step(self, token: str, record: StepRecord) -> bool:
        """The checkpoint write, on every step's path: one statement, one round trip.

        Sent straight to this thread's psycopg connection in autocommit mode, so the
        statement is its own transaction: no BEGIN and COMMIT round trips, and none
        of the Core execution machinery. An upsert of the same row, so repeating it
        after a connection broke with the outcome unknown is harmless.
        """
        return self._retrying("save_step", lambda _a: self._save_step_once(token, record))

    def _save_step_once(self, token: str, record: StepRecord) -> bool:
        if not self._migrated:
            self.ensure_schema()
        conn = self._conn()
        raw: Any = conn.connection.dbapi_connection
        if raw is None or conn.in_transaction():  # pragma: no cover - defensive
            return SqlStorage.save_step(self, token, record)
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.rollback()  # e.g. the pool's pre-ping SELECT 1 left a transaction open
        raw.autocommit = True
        try:
            cursor = raw.execute(_RAW_SAVE_STEP_SQL, record.as_params(token))
            return bool(cursor.rowcount > 0)
        finally:
            with suppress(psycopg.Error):  # a broken connection: the caller drops it
                raw.autocommit = False

    def add_event(self, execution_id: str, name: str, payload: str | None) -> ExecutionRecord:
        base = super().add_event

        def op(attempt: int) -> ExecutionRecord:
            try:
                return base(execution_id, name, payload)
            except Exception as exc:
                if self._ambiguous() and self._is_transient(exc):
                    # Sending again could deliver the event twice.
                    raise _OutcomeUnknownError(
                        f"the connection to {self.url} broke while committing event {name!r} "
                        f"for execution {execution_id!r}; it may or may not have been stored "
                        "(check the execution before sending it again)"
                    ) from exc
                raise

        return self._retrying("add_event", op)

    def consume_event_into_step(self, token: str, execution_id: str, name: str, seq: int) -> Any:
        base = super().consume_event_into_step

        def op(attempt: int) -> Any:
            if attempt:
                # The failed attempt may have consumed the event and checkpointed the wait.
                done = SqlStorage.load_steps(self, execution_id).get(name)
                if done is not None and done.status == STEP_COMPLETED:
                    return done.output
            return base(token, execution_id, name, seq)

        return self._retrying("consume_event_into_step", op)

    def active_count(self) -> int:
        base = super().active_count
        return self._retrying("active_count", lambda _a: base())


# The same statement in psycopg's own placeholder style, for the raw fast path.
_RAW_SAVE_STEP_SQL = re.sub(r"(?<!:):(\w+)", r"%(\1)s", PostgresStorage.SAVE_STEP_SQL)


class _OutcomeUnknownError(DatabaseUnavailableError):
    """A write that must not be repeated lost its connection while committing."""


def _describe(exc: BaseException) -> str:
    """The driver's error, in one line: ``AdminShutdown: terminating connection ...``."""
    found: BaseException = exc
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        if isinstance(current, psycopg.Error):
            found = current
            break
        current = current.__cause__ or current.__context__
    lines = str(found).strip().splitlines()
    return f"{type(found).__name__}: {lines[0]}" if lines else type(found).__name__


__all__ = ["MIGRATION_LOCK_KEY", "PostgresStorage"]
