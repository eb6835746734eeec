"""SQL shared by the stores: table aliases, the fenced checkpoint statement, and the
"runnable" and "held" predicates, each written once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from zart._owner import owner_is_dead
from zart._store import _schema as s
from zart._store._errors import NotFound
from zart._store._records import PENDING, RUNNING, SLEEPING, WAITING, ExecutionRecord, StepRecord

E = s.executions
S = s.steps
V = s.events
# Columns in StepRecord's field order, so each row maps positionally (a resume reads
# thousands of rows: this is most of its Python cost).
STEP_COLUMNS = [S.c[name] for name in StepRecord.__slots__]

# The fenced checkpoint write: one statement, one round trip. It only writes while the
# caller still holds the execution's lease and the execution is running, so a paused
# worker whose lease was taken over, or a cancelled execution, cannot record results.
# {row_lock} lets a backend lock the execution row it checks (PostgreSQL: FOR SHARE).
CHECKPOINT_TEMPLATE = """
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


def runnable(now: Any) -> Any:
    """SQL: executions a worker may claim at database time ``now`` (not counting
    running ones whose owner died on this host: see :func:`is_claimable`)."""
    return or_(
        # A pending execution's wake_at: a submit's delay or debounce (zart.Queue).
        and_(E.c.status == PENDING, or_(E.c.wake_at.is_(None), E.c.wake_at <= now)),
        and_(E.c.status.in_((SLEEPING, WAITING)), E.c.wake_at <= now),
        and_(E.c.status == RUNNING, E.c.lease_expires_at < now),
    )


def is_claimable(rec: ExecutionRecord, now: float) -> bool:
    """:func:`runnable` for one record already read, plus a running execution whose
    owner process is gone from this host (no need to wait for its lease to expire)."""
    if rec.status == PENDING:
        return rec.wake_at is None or rec.wake_at <= now
    if rec.status in (SLEEPING, WAITING):
        return rec.wake_at is not None and rec.wake_at <= now
    if rec.status == RUNNING:
        if rec.lease_expires_at is None or rec.lease_expires_at < now:
            return True
        return owner_is_dead(rec.lease_owner)
    return False


def held(execution_id: str, token: str) -> Any:
    """UPDATE of one execution, applied only while ``token`` holds its lease (fencing)."""
    return update(E).where(E.c.id == execution_id, E.c.lease_owner == token, E.c.status == RUNNING)


def by_id(execution_id: str) -> Any:
    return select(E).where(E.c.id == execution_id)


def update_descendants(
    conn: Connection,
    root_id: str,
    values: dict[str, Any],
    *,
    follow: Any = None,
    change: Any = None,
) -> None:
    """Level by level below ``root_id`` (child executions, theirs...): children matching
    ``follow`` (all when None) are visited, and those also matching ``change`` (all when
    None) get ``values``. One query and one update per level, in the caller's
    transaction."""
    seen, parents = {root_id}, [root_id]
    while parents:
        query = select(E.c.id).where(E.c.parent_id.in_(parents))
        if follow is not None:
            query = query.where(follow)
        children = [str(c) for c in conn.execute(query).scalars() if c not in seen]
        seen.update(children)
        if children:
            statement = update(E).where(E.c.id.in_(children))
            if change is not None:
                statement = statement.where(change)
            conn.execute(statement.values(**values))
        parents = children


def lock_execution(conn: Connection, execution_id: str) -> ExecutionRecord:
    """Read one execution with its row locked for this transaction; NotFound if absent."""
    row = conn.execute(by_id(execution_id).with_for_update()).first()
    if row is None:
        raise NotFound(execution_id)
    return ExecutionRecord.from_row(row)


# Is the lease still held, and the execution still running (not cancelled)? Read at a
# step's start when the last fenced write is not fresh (see ExecutionContext).
LEASE_HELD_SQL = (
    "SELECT 1 FROM zart_executions WHERE id = :execution_id AND lease_owner = :token"
    " AND status = 'running'"
)

# Create an execution already claimed by its creator (who runs it at once): one
# statement instead of an insert, a claim and their read-backs. {now} is the database
# clock (leases are database time). 0 rows: the id exists (the caller attaches instead).
CREATE_CLAIMED_TEMPLATE = """
    INSERT INTO zart_executions (id, durable_name, status, input, attempts, recoveries,
                                 lease_owner, lease_expires_at, created_at, updated_at,
                                 started_at, version, ran_versions)
    VALUES (:id, :durable_name, 'running', :input, 1, 0, :token, {now} + :lease,
            :now, :now, :now, :version, :ran_versions)
    ON CONFLICT (id) DO NOTHING
"""

# The outcome of a run, written only while ``token`` holds the lease (see held()).
FINISH_SQL = """
    UPDATE zart_executions SET status = :status, result = :result, error = :error,
        lease_owner = NULL, lease_expires_at = NULL, finished_at = :now, updated_at = :now
    WHERE id = :id AND lease_owner = :token AND status = 'running'
"""
