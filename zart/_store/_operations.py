"""Operations queries, off the engine's path: listing, counts, health, admin resets with
their audit rows, metrics and schedules (used by zart's CLI, HTTP API and web view)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from zart._errors import ZartError
from zart._store import _schema as s
from zart._store._database import Database, boundary
from zart._store._journal import JournalStore
from zart._store._queries import E, S, by_id, lock_execution, runnable, update_descendants
from zart._store._queues import queue_stats
from zart._store._records import (
    ACTIVE_STATUSES,
    CANCELLED,
    PENDING,
    ExecutionRecord,
    StepRecord,
)
from zart._store._wakeups import notify

A = s.audit
SC = s.schedules


class OpsStore:
    """Reads and admin writes for operators, on top of one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._journal = JournalStore(db)  # one execution read and create, shared

    # ------------------------------------------------------------------ schema, health

    def ensure_schema(self) -> None:
        self.db.ensure_schema()

    def schema_version(self) -> int:
        return self.db.schema_version()

    def ping(self) -> None:
        """Raise DatabaseUnavailableError unless the database answers (and is migrated)."""
        self.db.ping()

    # ------------------------------------------------------------------ executions

    def create_execution(
        self, execution_id: str, durable_name: str, input_json: str
    ) -> tuple[ExecutionRecord, bool]:
        """Create a pending execution from already-encoded input unless the id exists
        (schedulers create executions of durables they have not imported)."""
        return self._journal.create_execution(execution_id, durable_name, input_json)

    @boundary
    def active_count(self) -> int:
        with self.db.tx(write=False) as conn:
            query = select(func.count()).select_from(E).where(E.c.status.in_(ACTIVE_STATUSES))
            return int(conn.execute(query).scalar_one())

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return self._journal.get_execution(execution_id)

    @boundary
    def list_executions(
        self,
        status: str | None = None,
        durable_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionRecord]:
        query = select(E).order_by(E.c.created_at.desc(), E.c.id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(E.c.status == status)
        if durable_name is not None:
            query = query.where(E.c.durable_name == durable_name)
        with self.db.tx(write=False) as conn:
            return [ExecutionRecord.from_row(r) for r in conn.execute(query)]

    @boundary
    def count_by_status(self) -> dict[str, int]:
        with self.db.tx(write=False) as conn:
            return _counts(conn)

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
        with_cancelled_descendants: bool = False,
    ) -> ExecutionRecord:
        """Put an execution back to ``pending`` for a worker or ``run`` to resume.

        In one transaction, with the execution row locked: ``plan(record, steps)``
        (which may raise to refuse) names the checkpoints to delete; they are
        deleted, the outcome and lease are cleared and an audit row is written.
        ``fresh`` also resets attempts and times (a restart); ``input_json``
        replaces the stored input; ``with_cancelled_descendants`` puts the cancelled
        executions of its tree back to pending too (a resume after a cancel).
        """
        now = time.time()
        with self.db.tx() as conn:
            rec = lock_execution(conn, execution_id)
            steps = conn.execute(select(S).where(S.c.execution_id == execution_id))
            doomed = plan(rec, [StepRecord.from_row(r) for r in steps])
            if doomed:
                conn.execute(
                    delete(S).where(S.c.execution_id == execution_id, S.c.step_name.in_(doomed))
                )
            values: dict[str, Any] = dict(
                status=PENDING, result=None, error=None, lease_owner=None,
                lease_expires_at=None, wake_at=None, finished_at=None, updated_at=now,
            )  # fmt: skip
            if fresh:
                values.update(attempts=0, started_at=None, created_at=now)
            if input_json is not None:
                values["input"] = input_json
            conn.execute(update(E).where(E.c.id == execution_id).values(**values))
            if with_cancelled_descendants:
                resumed = dict(status=PENDING, finished_at=None, updated_at=now, wake_at=None)
                cancelled = E.c.status == CANCELLED  # the tree the cancel reached
                update_descendants(conn, execution_id, resumed, follow=cancelled)
            details = dict(audit_details, previous_status=rec.status, deleted_steps=doomed)
            _audit(conn, execution_id, audit_action, audit_actor, details, now)
            # Runnable now: wake workers (its resumed children are run by its process).
            self.db.notify_work(conn, rec.durable_name)
            reset = ExecutionRecord.from_row(conn.execute(by_id(execution_id)).one())
        notify(rec.durable_name)
        return reset

    # ------------------------------------------------------------------ audit

    def add_audit(
        self, execution_id: str, action: str, actor: str, details: dict[str, Any]
    ) -> None:
        with self.db.tx() as conn:
            _audit(conn, execution_id, action, actor, details, time.time())

    @boundary
    def list_audit(self, execution_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit rows, newest first (optionally of one execution)."""
        query = select(A).order_by(A.c.created_at.desc(), A.c.id.desc()).limit(limit)
        if execution_id is not None:
            query = query.where(A.c.execution_id == execution_id)
        with self.db.tx(write=False) as conn:
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

    # ------------------------------------------------------------------ metrics

    @boundary
    def queue_stats(self) -> list[dict[str, Any]]:
        """Per queue (zart.Queue): pending, running and its limits (``_queues``)."""
        with self.db.tx(write=False) as conn:
            return queue_stats(conn)

    @boundary
    def metrics_snapshot(self, buckets: Sequence[float]) -> dict[str, Any]:
        """Aggregates for the Prometheus endpoint, each one query, computed in the database."""
        with self.db.tx(write=False) as conn:
            now = self.db.db_now(conn)
            steps = {
                (str(kind), str(st)): int(n)
                for kind, st, n in conn.execute(
                    select(S.c.kind, S.c.status, func.count()).group_by(S.c.kind, S.c.status)
                )
            }
            queue = int(conn.execute(select(func.count()).where(runnable(now))).scalar_one())
            resumed, extra = conn.execute(
                select(func.count(), func.coalesce(func.sum(E.c.attempts - 1), 0)).where(
                    E.c.attempts > 1
                )
            ).one()
            return {
                "executions": _counts(conn),
                "steps": steps,
                "histogram": _step_histogram(conn, buckets),
                "queue_depth": queue,
                "resumed": int(resumed),
                "extra_claims": int(extra),
            }

    # ------------------------------------------------------------------ schedules

    def upsert_schedule(self, values: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Create a schedule, or update its definition if it changed.

        Returns (row, "created" | "updated" | "unchanged"). Registering the same
        definition from many processes leaves one row and its next run time as is.
        """
        now = time.time()
        keys = ("durable_name", "cron", "timezone", "every_seconds", "input", "overlap", "backfill")
        for _ in range(3):
            with self.db.tx() as conn:
                row = conn.execute(
                    select(SC).where(SC.c.name == values["name"]).with_for_update()
                ).first()
                if row is None:
                    try:
                        conn.execute(insert(SC).values(**values, created_at=now, updated_at=now))
                    except IntegrityError:
                        conn.rollback()
                        continue  # another process created it first: compare with theirs
                    return dict(values, created_at=now, updated_at=now), "created"
                current = dict(row._mapping)
                if all(current[k] == values[k] for k in keys):
                    return current, "unchanged"
                changed = {k: values[k] for k in (*keys, "next_run_at")}
                conn.execute(
                    update(SC).where(SC.c.name == values["name"]).values(**changed, updated_at=now)
                )
                return dict(current, **changed, updated_at=now), "updated"
        raise ZartError(f"could not register schedule {values['name']!r}")

    @boundary
    def list_schedules(self) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(select(SC).order_by(SC.c.name))]

    def delete_schedule(self, name: str) -> bool:
        with self.db.tx() as conn:
            return bool(conn.execute(delete(SC).where(SC.c.name == name)).rowcount)

    @boundary
    def due_schedules(self, now: float) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as conn:
            query = select(SC).where(SC.c.next_run_at <= now).order_by(SC.c.next_run_at)
            return [dict(r._mapping) for r in conn.execute(query)]

    def advance_schedule(
        self, name: str, expected_next: float, next_run_at: float, started: str | None
    ) -> bool:
        """Move a schedule on, if nobody did since we read it (compare-and-set)."""
        values: dict[str, Any] = dict(next_run_at=next_run_at, updated_at=time.time())
        if started is not None:
            values.update(last_execution_id=started, last_run_at=expected_next)
        with self.db.tx() as conn:
            res = conn.execute(
                update(SC)
                .where(SC.c.name == name, SC.c.next_run_at == expected_next)
                .values(**values)
            )
            return bool(res.rowcount)


def _counts(conn: Connection) -> dict[str, int]:
    query = select(E.c.status, func.count()).group_by(E.c.status)
    return {str(st): int(n) for st, n in conn.execute(query)}


def _step_histogram(
    conn: Connection, buckets: Sequence[float]
) -> dict[str, tuple[int, float, list[int]]]:
    """Per step kind: count, total seconds and cumulative bucket counts of durations."""
    duration = S.c.finished_at - S.c.started_at
    timed = and_(S.c.started_at.is_not(None), S.c.finished_at.is_not(None))
    cols = [func.count(), func.coalesce(func.sum(duration), 0.0)]
    cols += [func.sum(case((duration <= b, 1), else_=0)) for b in buckets]
    histogram: dict[str, tuple[int, float, list[int]]] = {}
    for row in conn.execute(select(S.c.kind, *cols).where(timed).group_by(S.c.kind)):
        kind, count, total, *cum = row
        histogram[str(kind)] = (int(count), float(total), [int(c or 0) for c in cum])
    return histogram


def _audit(
    conn: Connection,
    execution_id: str,
    action: str,
    actor: str,
    details: dict[str, Any],
    now: float,
) -> None:
    conn.execute(
        insert(A).values(
            execution_id=execution_id,
            action=action,
            actor=actor,
            created_at=now,
            details=json.dumps(details, default=str),
        )
    )
