"""The one narrow interface between the engine and a database.

``SqlStorage`` implements it with SQLAlchemy Core; a backend subclass only
says how to connect, how to start a write transaction and how the database
tells the time. The engine never builds SQL itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from zart._errors import DatabaseUnavailableError, ZartError
from zart._owner import owner_is_dead
from zart._storage import _schema as s
from zart._storage._records import (
    ACTIVE_STATUSES,
    CANCELLED,
    PENDING,
    RUNNING,
    SLEEPING,
    STEP_COMPLETED,
    TERMINAL_STATUSES,
    WAITING,
    ExecutionRecord,
    StepRecord,
)

log = logging.getLogger("zart")

_E = s.executions
_S = s.steps
_V = s.events
_STEP_COLUMNS = [_S.c[name] for name in StepRecord.__slots__]


class SqlStorage:
    """Storage on one SQLAlchemy engine. Thread-safe: one connection per thread."""

    dialect_name = "sql"

    def __init__(self, engine: Engine, url_for_messages: str) -> None:
        self.engine = engine
        self.url = url_for_messages
        self._local = threading.local()
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._save_step_sql = text(self.SAVE_STEP_SQL)

    # ------------------------------------------------------------------ plumbing

    # The fenced checkpoint write: one statement, one round trip. It only writes
    # while the caller still holds the execution's lease and the execution is
    # running, so a paused worker whose lease was taken over, or a cancelled
    # execution, cannot record results.
    # {row_lock} lets a backend lock the execution row it checks (PostgreSQL: FOR SHARE).
    SAVE_STEP_TEMPLATE = """
        INSERT INTO zart_steps (execution_id, step_name, seq, kind, status, fingerprint,
                                output, error, attempts, started_at, finished_at)
        SELECT CAST(:execution_id AS VARCHAR(255)), CAST(:step_name AS VARCHAR(512)),
               CAST(:seq AS INTEGER), CAST(:kind AS VARCHAR(16)), CAST(:status AS VARCHAR(16)),
               CAST(:fingerprint AS VARCHAR(64)), CAST(:output AS TEXT), CAST(:error AS TEXT),
               CAST(:attempts AS INTEGER), CAST(:started_at AS DOUBLE PRECISION),
               CAST(:finished_at AS DOUBLE PRECISION)
        WHERE EXISTS (SELECT 1 FROM zart_executions
                      WHERE id = CAST(:execution_id AS VARCHAR(255))
                        AND lease_owner = CAST(:token AS VARCHAR(255))
                        AND status = 'running'
                      {row_lock})
        ON CONFLICT (execution_id, step_name) DO UPDATE SET
            seq = excluded.seq, kind = excluded.kind, status = excluded.status,
            fingerprint = excluded.fingerprint, output = excluded.output,
            error = excluded.error, attempts = excluded.attempts,
            started_at = excluded.started_at, finished_at = excluded.finished_at
    """
    SAVE_STEP_SQL = SAVE_STEP_TEMPLATE.format(row_lock="")

    def _conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            try:
                conn = self.engine.connect()
            except DBAPIError as exc:
                raise self._unavailable(exc) from None
            self._local.conn = conn
        return conn

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()
        first = detail[0] if detail else type(exc).__name__
        return DatabaseUnavailableError(
            f"cannot reach the database at {self.url}: {first} "
            "(check the URL given to Zart(...) / --database-url / ZART_DATABASE_URL)"
        )

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        """A transaction on this thread's connection; writes take the write lock up front."""
        self.ensure_schema()
        conn = self._conn()
        conn.info["zart_write"] = write
        try:
            with conn.begin():
                yield conn
        except OperationalError as exc:
            if exc.connection_invalidated or self._is_disconnect(exc):
                self._drop_connection()
                raise self._unavailable(exc) from exc
            raise

    def _is_disconnect(self, exc: DBAPIError) -> bool:
        return bool(getattr(exc, "connection_invalidated", False))

    def _drop_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                pass

    def now_sql(self) -> Any:
        """The database's clock in Unix seconds, as an SQL expression (leases use it)."""
        raise NotImplementedError

    def lock_for_migration(self, conn: Connection) -> None:
        """Serialize concurrent migrations from several processes (called in a write tx)."""

    def ensure_schema(self) -> None:
        if self._migrated:
            return
        with self._migrate_lock:
            if self._migrated:
                return
            conn = self._conn()
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
                                insert(s.schema_version).values(
                                    version=number, applied_at=time.time()
                                )
                            )
            except DBAPIError as exc:
                if self._is_disconnect(exc) or isinstance(exc, OperationalError):
                    self._drop_connection()
                    raise self._unavailable(exc) from None
                raise
            self._migrated = True

    def schema_version(self) -> int:
        with self._tx(write=False) as conn:
            return s.current_version(conn)

    def close(self) -> None:
        self._drop_connection()
        self.engine.dispose()

    # ------------------------------------------------------------------ executions

    def create_execution(
        self, execution_id: str, durable_name: str, input_json: str, parent_id: str | None = None
    ) -> tuple[ExecutionRecord, bool]:
        """Insert a pending execution unless one with this id exists; return it and created?"""
        now = time.time()
        with self._tx() as conn:
            existing = conn.execute(select(_E).where(_E.c.id == execution_id)).first()
            if existing is not None:
                return ExecutionRecord.from_row(existing), False
            values = dict(
                id=execution_id,
                durable_name=durable_name,
                status=PENDING,
                input=input_json,
                attempts=0,
                parent_id=parent_id,
                created_at=now,
                updated_at=now,
            )
            try:
                conn.execute(insert(_E).values(**values))
            except IntegrityError:
                conn.rollback()
                raise _RaceLost() from None
            row = conn.execute(select(_E).where(_E.c.id == execution_id)).one()
            return ExecutionRecord.from_row(row), True

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        with self._tx(write=False) as conn:
            row = conn.execute(select(_E).where(_E.c.id == execution_id)).first()
        return ExecutionRecord.from_row(row) if row is not None else None

    def list_executions(
        self,
        status: str | None = None,
        durable_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionRecord]:
        query = select(_E).order_by(_E.c.created_at.desc(), _E.c.id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(_E.c.status == status)
        if durable_name is not None:
            query = query.where(_E.c.durable_name == durable_name)
        with self._tx(write=False) as conn:
            return [ExecutionRecord.from_row(r) for r in conn.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        query = select(_E.c.status, func.count()).group_by(_E.c.status)
        with self._tx(write=False) as conn:
            return {str(st): int(n) for st, n in conn.execute(query)}

    def _claimable(self, row: ExecutionRecord, now: float) -> bool:
        if row.status == PENDING:
            return True
        if row.status in (SLEEPING, WAITING):
            return row.wake_at is not None and row.wake_at <= now
        if row.status == RUNNING:
            if row.lease_expires_at is None or row.lease_expires_at < now:
                return True
            return owner_is_dead(row.lease_owner)
        return False

    def _db_now(self, conn: Connection) -> float:
        return float(conn.execute(select(self.now_sql())).scalar_one())

    def try_claim(
        self, execution_id: str, token: str, lease_seconds: float, *, force_wake: bool = False
    ) -> ExecutionRecord | None:
        """Take the lease of one execution if it is runnable now; None when it is not.

        ``force_wake`` also claims a sleeping/waiting execution before its wake time
        (used by ``run`` so the body can re-check its timers and events).
        """
        with self._tx() as conn:
            row = conn.execute(select(_E).where(_E.c.id == execution_id).with_for_update()).first()
            if row is None:
                return None
            rec = ExecutionRecord.from_row(row)
            now = self._db_now(conn)
            claimable = self._claimable(rec, now) or (
                force_wake and rec.status in (SLEEPING, WAITING)
            )
            if not claimable:
                return None
            return self._take(conn, rec, token, now, lease_seconds)

    def _take(
        self, conn: Connection, rec: ExecutionRecord, token: str, now: float, lease_seconds: float
    ) -> ExecutionRecord:
        if rec.status == RUNNING:
            expired = rec.lease_expires_at is None or rec.lease_expires_at < now
            log.info(
                "taking over execution %s from %s (%s)",
                rec.id,
                rec.lease_owner,
                "its lease expired" if expired else "its process is gone",
            )
        values: dict[str, Any] = dict(
            status=RUNNING,
            lease_owner=token,
            lease_expires_at=now + lease_seconds,
            attempts=rec.attempts + 1,
            updated_at=time.time(),
            wake_at=None,
        )
        if rec.started_at is None:
            values["started_at"] = values["updated_at"]
        conn.execute(update(_E).where(_E.c.id == rec.id).values(**values))
        for key, value in values.items():
            setattr(rec, key, value)
        return rec

    def claim_runnable(
        self, token_factory: Any, durable_names: Sequence[str], limit: int, lease_seconds: float
    ) -> list[tuple[ExecutionRecord, str]]:
        """Claim up to ``limit`` runnable executions of the given durable functions."""
        if limit <= 0 or not durable_names:
            return []
        with self._tx() as conn:
            now = self._db_now(conn)
            runnable = or_(
                _E.c.status == PENDING,
                and_(_E.c.status.in_((SLEEPING, WAITING)), _E.c.wake_at <= now),
                and_(_E.c.status == RUNNING, _E.c.lease_expires_at < now),
            )
            query = (
                select(_E)
                .where(_E.c.durable_name.in_(list(durable_names)), runnable)
                .order_by(_E.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = [ExecutionRecord.from_row(r) for r in conn.execute(query)]
            if len(rows) < limit:
                # Running executions whose owner died on this very host: no need to
                # wait for their lease to expire.
                seen = {r.id for r in rows}
                # Read without locking (live owners' rows must not be locked by every
                # poll of every worker), then lock only the orphans, re-checking that
                # their owner did not change in between.
                orphan_query = (
                    select(_E.c.id, _E.c.lease_owner)
                    .where(
                        _E.c.durable_name.in_(list(durable_names)),
                        _E.c.status == RUNNING,
                        _E.c.lease_expires_at >= now,
                    )
                    .order_by(_E.c.created_at)
                    .limit(200)
                )
                for orphan_id, owner in conn.execute(orphan_query).all():
                    if orphan_id in seen or not owner_is_dead(owner):
                        continue
                    r = conn.execute(
                        select(_E)
                        .where(
                            _E.c.id == orphan_id, _E.c.lease_owner == owner, _E.c.status == RUNNING
                        )
                        .with_for_update(skip_locked=True)
                    ).first()
                    if r is not None:
                        rows.append(ExecutionRecord.from_row(r))
                        if len(rows) >= limit:
                            break
            claimed = []
            for rec in rows:
                token = token_factory()
                claimed.append((self._take(conn, rec, token, now, lease_seconds), token))
            return claimed

    def renew_leases(self, tokens: Iterable[str], lease_seconds: float) -> set[str]:
        """Extend the leases of the given tokens; return the tokens no longer held."""
        tokens = list(tokens)
        if not tokens:
            return set()
        lost: set[str] = set()
        with self._tx() as conn:
            expires = self.now_sql() + lease_seconds
            for token in tokens:
                result = conn.execute(
                    update(_E)
                    .where(_E.c.lease_owner == token, _E.c.status == RUNNING)
                    .values(lease_expires_at=expires)
                )
                if result.rowcount == 0:
                    lost.add(token)
        return lost

    def finish_execution(
        self, execution_id: str, token: str, status: str, result: str | None, error: str | None
    ) -> bool:
        """Record the outcome, conditional on still holding the lease."""
        now = time.time()
        with self._tx() as conn:
            res = conn.execute(
                _held(execution_id, token).values(
                    status=status,
                    result=result,
                    error=error,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
            return bool(res.rowcount)

    def suspend_execution(
        self, execution_id: str, token: str, status: str, wake_at: float | None
    ) -> bool:
        """Give up the lease while sleeping or waiting; a worker wakes it at ``wake_at``.

        An event for a pending wait may have arrived after the wait looked for it and
        before this update (``add_event`` only wakes executions already ``waiting``):
        then the execution is due at once, or that event would be missed until the
        wait's timeout (or for ever).
        """
        with self._tx() as conn:
            now = time.time()
            res = conn.execute(
                _held(execution_id, token).values(
                    status=status,
                    wake_at=wake_at,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            if not res.rowcount:
                return False
            # Checked after the update took the row lock: an add_event either committed
            # before (seen here) or waits for this commit (and sees status waiting).
            pending = conn.execute(
                select(_V.c.id)
                .join(_S, and_(_S.c.execution_id == _V.c.execution_id, _S.c.step_name == _V.c.name))
                .where(
                    _V.c.execution_id == execution_id,
                    _V.c.consumed_by.is_(None),
                    _S.c.kind == "event",
                    _S.c.status == WAITING,
                )
                .limit(1)
            ).first()
            if pending is not None:
                conn.execute(update(_E).where(_E.c.id == execution_id).values(wake_at=now))
            return True

    def release(self, execution_id: str, token: str) -> bool:
        """Hand a running execution back (graceful shutdown): another worker resumes it at once."""
        with self._tx() as conn:
            res = conn.execute(
                _held(execution_id, token).values(
                    status=PENDING, lease_owner=None, lease_expires_at=None, updated_at=time.time()
                )
            )
            return bool(res.rowcount)

    def cancel(self, execution_id: str) -> tuple[ExecutionRecord | None, bool]:
        """Cancel an active execution. Returns (record after, whether this call cancelled it)."""
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(select(_E).where(_E.c.id == execution_id).with_for_update()).first()
            if row is None:
                return None, False
            rec = ExecutionRecord.from_row(row)
            if rec.status in TERMINAL_STATUSES:
                return rec, False
            conn.execute(
                update(_E)
                .where(_E.c.id == execution_id)
                .values(
                    status=CANCELLED,
                    lease_owner=None,
                    lease_expires_at=None,
                    wake_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
            rec.status, rec.lease_owner, rec.finished_at = CANCELLED, None, now
            return rec, True

    # ------------------------------------------------------------------ steps

    def load_steps(self, execution_id: str) -> dict[str, StepRecord]:
        """Every checkpoint of one execution, in one query."""
        with self._tx(write=False) as conn:
            # Columns in StepRecord's field order, so each row maps positionally (a
            # resume reads thousands of rows: this is most of its Python cost).
            rows = conn.execute(
                select(*_STEP_COLUMNS).where(_S.c.execution_id == execution_id)
            ).all()
        return {r[1]: StepRecord(*r) for r in rows}

    def save_step(self, token: str, record: StepRecord) -> bool:
        """Write a checkpoint if ``token`` still holds the lease; False when it does not."""
        with self._tx() as conn:
            return bool(conn.execute(self._save_step_sql, record.as_params(token)).rowcount)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction for a transactional step: the step's own writes and its
        checkpoint (``save_step_on``) commit together or not at all."""
        with self._tx(write=True) as conn:
            yield conn

    def save_step_on(self, conn: Connection, token: str, record: StepRecord) -> bool:
        """``save_step`` inside the caller's transaction (see ``transaction``)."""
        return bool(conn.execute(self._save_step_sql, record.as_params(token)).rowcount)

    # ------------------------------------------------------------------ events

    def add_event(self, execution_id: str, name: str, payload: str | None) -> ExecutionRecord:
        """Store an event; wake the execution if it is waiting. Kept until a wait consumes it."""
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(select(_E).where(_E.c.id == execution_id).with_for_update()).first()
            if row is None:
                raise _NotFound(execution_id)
            rec = ExecutionRecord.from_row(row)
            conn.execute(
                insert(_V).values(
                    execution_id=execution_id, name=name, payload=payload, created_at=now
                )
            )
            if rec.status == WAITING:
                conn.execute(
                    update(_E).where(_E.c.id == execution_id).values(wake_at=now, updated_at=now)
                )
            return rec

    def consume_event_into_step(self, token: str, execution_id: str, name: str, seq: int) -> Any:
        """Hand the oldest unconsumed event ``name`` to the wait of the same name.

        Marks the event consumed and writes the wait's checkpoint in one
        transaction, so a crash cannot lose the event nor deliver it twice.
        Returns the payload (str or None), or NO_EVENT when none is waiting.
        """
        from zart._primitives import _NO_EVENT

        now = time.time()
        with self._tx() as conn:
            # FOR SHARE (a no-op on SQLite): a takeover cannot commit while this runs.
            held = conn.execute(
                select(_E.c.id)
                .where(_E.c.id == execution_id, _E.c.lease_owner == token, _E.c.status == RUNNING)
                .with_for_update(read=True)
            ).first()
            if held is None:
                raise _LeaseGone()
            row = conn.execute(
                select(_V)
                .where(
                    _V.c.execution_id == execution_id, _V.c.name == name, _V.c.consumed_by.is_(None)
                )
                .order_by(_V.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return _NO_EVENT
            conn.execute(update(_V).where(_V.c.id == row.id).values(consumed_by=name))
            record = StepRecord(
                execution_id,
                name,
                seq,
                "event",
                STEP_COMPLETED,
                None,
                row.payload if row.payload is not None else "null",
                None,
                1,
                now,
                now,
            )
            conn.execute(self._save_step_sql, record.as_params(token))
            return row.payload

    def active_count(self) -> int:
        with self._tx(write=False) as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(_E)
                    .where(_E.c.status.in_(list(ACTIVE_STATUSES)))
                ).scalar_one()
            )

    # ------------------------------------------------------------------ operations (zart._ops)

    def reset_execution(
        self,
        execution_id: str,
        plan: Callable[[ExecutionRecord, list[StepRecord]], list[str]],
        *,
        audit_action: str,
        audit_actor: str,
        audit_details: dict[str, Any],
        fresh: bool = False,
        input_json: str | None = None,
    ) -> ExecutionRecord:
        """Put an execution back to ``pending`` for a worker or ``run`` to resume.

        In one transaction, with the execution row locked: ``plan(record, steps)``
        (which may raise to refuse) names the checkpoints to delete; they are
        deleted, the outcome and lease are cleared and an audit row is written.
        ``fresh`` also resets attempts and times (a restart); ``input_json``
        replaces the stored input.
        """
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(select(_E).where(_E.c.id == execution_id).with_for_update()).first()
            if row is None:
                raise _NotFound(execution_id)
            rec = ExecutionRecord.from_row(row)
            steps = [
                StepRecord.from_row(r)
                for r in conn.execute(select(_S).where(_S.c.execution_id == execution_id))
            ]
            doomed = plan(rec, steps)
            if doomed:
                conn.execute(
                    delete(_S).where(_S.c.execution_id == execution_id, _S.c.step_name.in_(doomed))
                )
            values: dict[str, Any] = dict(
                status=PENDING,
                result=None,
                error=None,
                lease_owner=None,
                lease_expires_at=None,
                wake_at=None,
                finished_at=None,
                updated_at=now,
            )
            if fresh:
                values.update(attempts=0, started_at=None, created_at=now)
            if input_json is not None:
                values["input"] = input_json
            conn.execute(update(_E).where(_E.c.id == execution_id).values(**values))
            details = dict(audit_details, previous_status=rec.status, deleted_steps=doomed)
            self._audit_on(conn, execution_id, audit_action, audit_actor, details, now)
            row = conn.execute(select(_E).where(_E.c.id == execution_id)).one()
            return ExecutionRecord.from_row(row)

    def _audit_on(
        self,
        conn: Connection,
        execution_id: str,
        action: str,
        actor: str,
        details: dict[str, Any],
        now: float,
    ) -> None:
        conn.execute(
            insert(s.audit).values(
                execution_id=execution_id,
                action=action,
                actor=actor,
                created_at=now,
                details=json.dumps(details, default=str),
            )
        )

    def add_audit(
        self, execution_id: str, action: str, actor: str, details: dict[str, Any]
    ) -> None:
        with self._tx() as conn:
            self._audit_on(conn, execution_id, action, actor, details, time.time())

    def list_audit(self, execution_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit rows, newest first (optionally of one execution)."""
        a = s.audit
        query = select(a).order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit)
        if execution_id is not None:
            query = query.where(a.c.execution_id == execution_id)
        with self._tx(write=False) as conn:
            return [
                {
                    "id": int(r.id),
                    "execution_id": r.execution_id,
                    "action": r.action,
                    "actor": r.actor,
                    "created_at": float(r.created_at),
                    "details": json.loads(r.details) if r.details else {},
                }
                for r in conn.execute(query)
            ]

    def ping(self) -> None:
        """Raise DatabaseUnavailableError unless the database answers (and is migrated)."""
        try:
            with self._tx(write=False) as conn:
                conn.execute(select(1)).scalar_one()
        except DBAPIError as exc:
            self._drop_connection()
            raise self._unavailable(exc) from None

    def metrics_snapshot(self, buckets: Sequence[float]) -> dict[str, Any]:
        """Aggregates for the Prometheus endpoint, each one query, computed in the database."""
        duration = _S.c.finished_at - _S.c.started_at
        timed = and_(_S.c.started_at.is_not(None), _S.c.finished_at.is_not(None))
        with self._tx(write=False) as conn:
            now = self._db_now(conn)
            executions = {
                str(st): int(n)
                for st, n in conn.execute(select(_E.c.status, func.count()).group_by(_E.c.status))
            }
            steps = {
                (str(kind), str(st)): int(n)
                for kind, st, n in conn.execute(
                    select(_S.c.kind, _S.c.status, func.count()).group_by(_S.c.kind, _S.c.status)
                )
            }
            cols = [func.count(), func.coalesce(func.sum(duration), 0.0)]
            cols += [func.sum(case((duration <= b, 1), else_=0)) for b in buckets]
            histogram: dict[str, tuple[int, float, list[int]]] = {}
            for row in conn.execute(select(_S.c.kind, *cols).where(timed).group_by(_S.c.kind)):
                kind, count, total, *cum = row
                histogram[str(kind)] = (int(count), float(total), [int(c or 0) for c in cum])
            runnable = or_(
                _E.c.status == PENDING,
                and_(_E.c.status.in_((SLEEPING, WAITING)), _E.c.wake_at <= now),
                and_(_E.c.status == RUNNING, _E.c.lease_expires_at < now),
            )
            queue = int(conn.execute(select(func.count()).where(runnable)).scalar_one())
            resumed, extra = conn.execute(
                select(func.count(), func.coalesce(func.sum(_E.c.attempts - 1), 0)).where(
                    _E.c.attempts > 1
                )
            ).one()
        return {
            "executions": executions,
            "steps": steps,
            "histogram": histogram,
            "queue_depth": queue,
            "resumed": int(resumed),
            "extra_claims": int(extra),
        }

    # ------------------------------------------------------------------ schedules (zart._ops)

    def upsert_schedule(self, values: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Create a schedule, or update its definition if it changed.

        Returns (row, "created" | "updated" | "unchanged"). Registering the same
        definition from many processes leaves one row and its next run time as is.
        """
        sc = s.schedules
        now = time.time()
        keys = ("durable_name", "cron", "timezone", "every_seconds", "input", "overlap")
        for _ in range(3):
            with self._tx() as conn:
                row = conn.execute(
                    select(sc).where(sc.c.name == values["name"]).with_for_update()
                ).first()
                if row is None:
                    try:
                        conn.execute(insert(sc).values(**values, created_at=now, updated_at=now))
                    except IntegrityError:
                        conn.rollback()
                        continue  # another process created it first: compare with theirs
                    return dict(values, created_at=now, updated_at=now), "created"
                current = dict(row._mapping)
                if all(current[k] == values[k] for k in keys):
                    return current, "unchanged"
                changed = {k: values[k] for k in (*keys, "next_run_at")}
                conn.execute(
                    update(sc).where(sc.c.name == values["name"]).values(**changed, updated_at=now)
                )
                return dict(current, **changed, updated_at=now), "updated"
        raise ZartError(f"could not register schedule {values['name']!r}")

    def list_schedules(self) -> list[dict[str, Any]]:
        sc = s.schedules
        with self._tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(select(sc).order_by(sc.c.name))]

    def delete_schedule(self, name: str) -> bool:
        sc = s.schedules
        with self._tx() as conn:
            return bool(conn.execute(delete(sc).where(sc.c.name == name)).rowcount)

    def due_schedules(self, now: float) -> list[dict[str, Any]]:
        sc = s.schedules
        with self._tx(write=False) as conn:
            query = select(sc).where(sc.c.next_run_at <= now).order_by(sc.c.next_run_at)
            return [dict(r._mapping) for r in conn.execute(query)]

    def advance_schedule(
        self, name: str, expected_next: float, next_run_at: float, started: str | None
    ) -> bool:
        """Move a schedule on, if nobody did since we read it (compare-and-set)."""
        sc = s.schedules
        values: dict[str, Any] = dict(next_run_at=next_run_at, updated_at=time.time())
        if started is not None:
            values.update(last_execution_id=started, last_run_at=expected_next)
        with self._tx() as conn:
            res = conn.execute(
                update(sc)
                .where(sc.c.name == name, sc.c.next_run_at == expected_next)
                .values(**values)
            )
            return bool(res.rowcount)


def _held(execution_id: str, token: str) -> Any:
    """UPDATE of one execution, applied only while ``token`` holds its lease (fencing)."""
    return update(_E).where(
        _E.c.id == execution_id, _E.c.lease_owner == token, _E.c.status == RUNNING
    )


class _RaceLost(Exception):
    """Another process inserted the same execution id first; the caller re-reads."""


class _NotFound(LookupError):
    pass


class _LeaseGone(Exception):
    """The caller's lease is gone; it must stop (the engine turns this into LeaseLostError)."""
