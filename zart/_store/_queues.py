"""Queues with concurrency and rate limits (``zart.Queue``), enforced by the database.

* **Limits** live in ``zart_queues`` (written by every process that defines the queue)
  and are applied by the claim itself, in its write transaction: the claims of one
  queue are serialized (PostgreSQL: an advisory lock keyed by the queue, held until
  the claim commits; SQLite: its write lock), then the queue's counts are read and
  only what fits is taken. So the limits hold across any number of workers and
  machines. ``worker_concurrency`` counts the running executions whose lease token
  belongs to this process.
* **Rate limits** count executions *started* (first claim: ``started_at``) in the
  trailing period; :func:`rate_due` tells an idle worker when the next slot opens.
* **Dedup and debounce keys** (``zart_dedup``, one row per key and durable): the
  primary key makes two concurrent submits with one key create one execution.
* **Delay** is a pending execution with a ``wake_at``: not runnable before then.

Queues without any limit, priority or partition ("unmanaged") are claimed like
executions without a queue: they cost the claim nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from zart._owner import current_owner
from zart._store import _schema as s
from zart._store._queries import E, by_id, runnable
from zart._store._records import PENDING, RUNNING, TERMINAL_STATUSES, ExecutionRecord

Q = s.queues
D = s.dedup

Take = Callable[[ExecutionRecord], tuple[ExecutionRecord, str]]


@dataclass(frozen=True)
class QueueLimits:
    """One queue's definition, as stored."""

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_count: int | None = None
    rate_per: float | None = None
    priority: bool = False
    partitioned: bool = False

    @property
    def managed(self) -> bool:
        """Does claiming from it need more than the plain claim?"""
        return self.priority or self.partitioned or self.limited

    @property
    def limited(self) -> bool:
        return (
            self.concurrency is not None
            or self.worker_concurrency is not None
            or self.rate_count is not None
        )

    @classmethod
    def from_row(cls, row: Any) -> QueueLimits:
        return cls(
            name=str(row.name), concurrency=row.concurrency,
            worker_concurrency=row.worker_concurrency, rate_count=row.rate_count,
            rate_per=None if row.rate_per is None else float(row.rate_per),
            priority=bool(row.priority), partitioned=bool(row.partitioned),
        )  # fmt: skip


@dataclass(frozen=True)
class SubmitOptions:
    """What a submit asks beyond creating the execution (all optional)."""

    queue: str | None = None
    priority: int | None = None
    partition_key: str | None = None
    delay: float | None = None  # seconds: not runnable before
    dedup_key: str | None = None
    dedup_ttl: float | None = None  # seconds the key stays reserved after the finish
    debounce_key: str | None = None
    debounce_window: float | None = None


# ------------------------------------------------------------------ definitions


_DEFINE_SQL = text(
    """
    INSERT INTO zart_queues (name, concurrency, worker_concurrency, rate_count, rate_per,
                             priority, partitioned, updated_at)
    VALUES (:name, :concurrency, :worker_concurrency, :rate_count, :rate_per,
            :priority, :partitioned, :updated_at)
    ON CONFLICT (name) DO UPDATE SET
        concurrency = excluded.concurrency, worker_concurrency = excluded.worker_concurrency,
        rate_count = excluded.rate_count, rate_per = excluded.rate_per,
        priority = excluded.priority, partitioned = excluded.partitioned,
        updated_at = excluded.updated_at
    """
)


def define(conn: Connection, queue: QueueLimits) -> None:
    """Create or update the stored definition of ``queue`` (one upsert)."""
    values = dict(
        name=queue.name, concurrency=queue.concurrency,
        worker_concurrency=queue.worker_concurrency, rate_count=queue.rate_count,
        rate_per=queue.rate_per, priority=int(queue.priority),
        partitioned=int(queue.partitioned), updated_at=time.time(),
    )  # fmt: skip
    conn.execute(_DEFINE_SQL, values)


def exists(name: str) -> Any:
    """SQL: the stored definition of queue ``name``, if any."""
    return select(Q.c.name).where(Q.c.name == name)


def load_managed(conn: Connection) -> dict[str, QueueLimits]:
    """The queues whose claims need limits, priorities or partitions, by name."""
    found = (QueueLimits.from_row(r) for r in conn.execute(select(Q)))
    return {q.name: q for q in found if q.managed}


# ------------------------------------------------------------------ claiming


def unmanaged(managed: Iterable[str]) -> Any:
    """SQL: executions the plain claim may take (no queue, or a queue without limits)."""
    return or_(E.c.queue.is_(None), E.c.queue.not_in(list(managed)))


def claim_queued(
    db: Any,
    conn: Connection,
    managed: dict[str, QueueLimits],
    names: list[str],
    limit: int,
    now: float,
    only_version: str | None,
    take: Take,
) -> list[tuple[ExecutionRecord, str]]:
    """Claim up to ``limit`` runnable executions of ``names`` from managed queues, each
    queue within its limits; queues are locked one by one in name order."""
    if not managed or limit <= 0:
        return []
    base = [E.c.durable_name.in_(names), runnable(now)]
    if only_version is not None:
        base.append(E.c.version == only_version)
    with_work = conn.execute(
        select(E.c.queue).where(E.c.queue.in_(list(managed)), *base).distinct()
    ).scalars()
    taken: list[tuple[ExecutionRecord, str]] = []
    for name in sorted(str(n) for n in with_work):
        if len(taken) >= limit:
            break
        db.lock_queue(conn, name)
        taken += _claim_queue(conn, managed[name], base, limit - len(taken), now, take)
    return taken


# An execution's partition ("" without a key).
_KEY = func.coalesce(E.c.partition_key, "")


def _tally(conn: Connection, queue: QueueLimits, condition: Any) -> dict[str, int]:
    """Executions of ``queue`` matching ``condition``, by partition ("" unpartitioned)."""
    where = and_(E.c.queue == queue.name, condition)
    if not queue.partitioned:
        return {"": int(conn.execute(select(func.count()).where(where)).scalar_one())}
    rows = conn.execute(select(_KEY, func.count()).where(where).group_by(_KEY))
    return {str(k): int(n) for k, n in rows}


def _live(now: float) -> Any:
    return and_(E.c.status == RUNNING, E.c.lease_expires_at >= now)


def _mine(conn: Connection, queue: QueueLimits, now: float) -> int:
    """Running executions of ``queue`` held by this process (its lease tokens)."""
    owner = current_owner()
    prefix = f"{owner.host}|{owner.pid}|{owner.start}|"
    mine = func.substr(E.c.lease_owner, 1, len(prefix)) == prefix
    query = select(func.count()).where(E.c.queue == queue.name, _live(now), mine)
    return int(conn.execute(query).scalar_one())


def _claim_queue(
    conn: Connection,
    queue: QueueLimits,
    base: list[Any],
    want: int,
    now: float,
    take: Take,
) -> list[tuple[ExecutionRecord, str]]:
    """Take what fits in one (locked) queue: highest priority, then oldest, first."""
    if queue.worker_concurrency is not None:
        want = min(want, queue.worker_concurrency - _mine(conn, queue, now))
    running = _tally(conn, queue, _live(now)) if queue.concurrency is not None else {}
    started: dict[str, int] = {}
    if queue.rate_count is not None and queue.rate_per is not None:
        started = _tally(conn, queue, E.c.started_at > now - queue.rate_per)
    conc = queue.concurrency if queue.concurrency is not None else want + sum(running.values())
    rate = queue.rate_count if queue.rate_count is not None else want + sum(started.values())
    taken: list[tuple[ExecutionRecord, str]] = []
    while want > 0:
        full = sorted(k for k, n in running.items() if n >= conc)
        spent = sorted(k for k, n in started.items() if n >= rate)
        if not queue.partitioned and full:
            break
        query = select(E).where(E.c.queue == queue.name, *base)
        if full:
            query = query.where(_KEY.not_in(full))
        if spent:  # a resumed execution was started before: only new ones count
            query = query.where(or_(_KEY.not_in(spent), E.c.started_at.is_not(None)))
        order = (func.coalesce(E.c.priority, 0).desc(), E.c.created_at)
        query = query.order_by(*order).limit(want).with_for_update(skip_locked=True)
        progressed = False
        for rec in map(ExecutionRecord.from_row, conn.execute(query).all()):
            part = (rec.partition_key or "") if queue.partitioned else ""
            fresh = rec.started_at is None
            if running.get(part, 0) >= conc or (fresh and started.get(part, 0) >= rate):
                continue  # its partition filled up in this loop: the next query skips it
            taken.append(take(rec))
            progressed, want = True, want - 1
            running[part] = running.get(part, 0) + 1
            if fresh:
                started[part] = started.get(part, 0) + 1
            if want <= 0:
                break
        if not progressed:
            break
    return taken


def rate_due(
    conn: Connection, managed: dict[str, QueueLimits], names: list[str], now: float
) -> float | None:
    """The earliest database time at which a rate-limited queue holding new pending work
    of ``names`` gets a free slot: when its oldest start in the window leaves it, or
    ``now`` when the window has room already (it made room since the claim looked).
    Partitions held by their concurrency are left out: a finish there wakes workers."""
    due: list[float] = []
    for queue in managed.values():
        if queue.rate_count is None or queue.rate_per is None:
            continue
        fresh = and_(
            E.c.queue == queue.name, E.c.durable_name.in_(names), E.c.status == PENDING,
            E.c.started_at.is_(None), or_(E.c.wake_at.is_(None), E.c.wake_at <= now),
        )  # fmt: skip
        waiting = {str(k) for k in conn.execute(select(_KEY).where(fresh).distinct()).scalars()}
        if not waiting:
            continue
        limit = queue.worker_concurrency
        if limit is not None and _mine(conn, queue, now) >= limit:
            continue
        running = _tally(conn, queue, _live(now)) if queue.concurrency is not None else {}
        window = _tally_window(conn, queue, now - queue.rate_per)
        for part in waiting if queue.partitioned else {""}:
            if queue.concurrency is not None and running.get(part, 0) >= queue.concurrency:
                continue
            count, oldest = window.get(part, (0, None))
            if count < queue.rate_count or oldest is None:
                due.append(now)
            else:
                due.append(oldest + queue.rate_per)
    return min(due) if due else None


def _tally_window(
    conn: Connection, queue: QueueLimits, since: float
) -> dict[str, tuple[int, float | None]]:
    """(starts, oldest start) after ``since``, by partition ("" unpartitioned)."""
    window = and_(E.c.queue == queue.name, E.c.started_at > since)
    columns = (func.count(), func.min(E.c.started_at))
    rows: list[Any]
    if queue.partitioned:
        rows = list(conn.execute(select(_KEY, *columns).where(window).group_by(_KEY)))
    else:
        rows = [("", *conn.execute(select(*columns).where(window)).one())]
    return {str(k): (int(n), None if t is None else float(t)) for k, n, t in rows}


# ------------------------------------------------------------------ submitting


def create(
    conn: Connection,
    execution_id: str,
    durable_name: str,
    input_json: str,
    options: SubmitOptions,
    version: str | None,
) -> tuple[ExecutionRecord, bool]:
    """Create a pending execution with ``options`` in the caller's write transaction;
    (record, created). A live dedup key returns its execution; a debounce key whose
    execution has not started gets the new input and a later start instead.
    Raises IntegrityError when a concurrent submit won a key (the caller retries)."""
    existing = conn.execute(by_id(execution_id)).first()
    if existing is not None:
        return ExecutionRecord.from_row(existing), False
    now = time.time()
    if options.dedup_key is not None:
        held = _dedup_holder(conn, durable_name, options.dedup_key, now)
        if held is not None:
            return held, False
    if options.debounce_key is not None:
        replaced = _debounce(conn, durable_name, input_json, options, now)
        if replaced is not None:
            return replaced, False
    wake_at = None
    if options.delay is not None or options.debounce_window is not None:
        wake_at = now + max(options.delay or 0.0, options.debounce_window or 0.0)
    values = dict(
        id=execution_id, durable_name=durable_name, status=PENDING, input=input_json,
        attempts=0, created_at=now, updated_at=now, version=version, wake_at=wake_at,
        queue=options.queue, priority=options.priority, partition_key=options.partition_key,
    )  # fmt: skip
    conn.execute(insert(E).values(**values))
    for kind, key, ttl in (
        ("dedup", options.dedup_key, options.dedup_ttl),
        ("debounce", options.debounce_key, None),
    ):
        if key is not None:
            _hold_key(conn, kind, durable_name, key, execution_id, ttl, now)
    return ExecutionRecord.from_row(conn.execute(by_id(execution_id)).one()), True


def _key_row(conn: Connection, kind: str, scope: str, key: str) -> Any:
    where = and_(D.c.kind == kind, D.c.scope == scope, D.c.key == key)
    return conn.execute(select(D).where(where).with_for_update()).first()


def _hold_key(
    conn: Connection,
    kind: str,
    scope: str,
    key: str,
    execution_id: str,
    ttl: float | None,
    now: float,
) -> None:
    """Point the key at ``execution_id``; a new key is an INSERT, which fails with
    IntegrityError when another submit inserted it first."""
    values = dict(execution_id=execution_id, ttl=ttl, created_at=now)
    row = _key_row(conn, kind, scope, key)
    if row is None:
        conn.execute(insert(D).values(kind=kind, scope=scope, key=key, **values))
        return
    if _still_held(conn, kind, scope, key, row, now):
        # A concurrent submit took the key after this one looked (PostgreSQL, READ
        # COMMITTED): taking it over would run both. Roll back; the retry finds it.
        raise IntegrityError("zart_dedup", None, Exception(f"{kind} key {key!r} taken"))
    where = and_(D.c.kind == kind, D.c.scope == scope, D.c.key == key)
    conn.execute(update(D).where(where).values(**values))


def _still_held(conn: Connection, kind: str, scope: str, key: str, row: Any, now: float) -> bool:
    """Does the key's row (locked) still point at an execution that owns it: a live
    dedup holder, or a debounced execution that has not started?"""
    if kind == "dedup":
        return _dedup_holder(conn, scope, key, now) is not None
    found = conn.execute(by_id(row.execution_id)).first()
    return found is not None and found.status == PENDING and found.started_at is None


def _dedup_holder(
    conn: Connection, durable_name: str, key: str, now: float
) -> ExecutionRecord | None:
    """The execution holding dedup ``key``: open, or finished less than its TTL ago."""
    row = _key_row(conn, "dedup", durable_name, key)
    if row is None:
        return None
    found = conn.execute(by_id(row.execution_id)).first()
    if found is None:
        return None
    rec = ExecutionRecord.from_row(found)
    if rec.status not in TERMINAL_STATUSES:
        return rec
    ttl = float(row.ttl or 0.0)
    finished = rec.finished_at if rec.finished_at is not None else rec.updated_at
    return rec if ttl > 0 and finished + ttl > now else None


def _debounce(
    conn: Connection, durable_name: str, input_json: str, options: SubmitOptions, now: float
) -> ExecutionRecord | None:
    """Replace the input of the execution holding the debounce key, if it has not
    started, and push its start to the end of the window; None when there is none."""
    assert options.debounce_key is not None
    row = _key_row(conn, "debounce", durable_name, options.debounce_key)
    if row is None:
        return None
    values = dict(input=input_json, updated_at=now, wake_at=now + (options.debounce_window or 0))
    if options.priority is not None:
        values["priority"] = options.priority
    replaced = conn.execute(
        update(E)
        .where(E.c.id == row.execution_id, E.c.status == PENDING, E.c.started_at.is_(None))
        .values(**values)
    ).rowcount
    if not replaced:
        return None  # started (or gone): the new submit creates a new execution
    return ExecutionRecord.from_row(conn.execute(by_id(row.execution_id)).one())


# ------------------------------------------------------------------ operations


def queue_stats(conn: Connection) -> list[dict[str, Any]]:
    """Per queue (defined, or named by an execution): pending, running and its limits."""
    defined = {str(r.name): QueueLimits.from_row(r) for r in conn.execute(select(Q))}
    counts: dict[str, dict[str, int]] = {}
    query = (
        select(E.c.queue, E.c.status, func.count())
        .where(E.c.queue.is_not(None), E.c.status.in_((PENDING, RUNNING)))
        .group_by(E.c.queue, E.c.status)
    )
    for name, status, n in conn.execute(query):
        counts.setdefault(str(name), {})[str(status)] = int(n)
    stats = []
    for name in sorted(set(defined) | set(counts)):
        q = defined.get(name, QueueLimits(name))
        stats.append(
            {
                "name": name,
                "pending": counts.get(name, {}).get(PENDING, 0),
                "running": counts.get(name, {}).get(RUNNING, 0),
                "concurrency": q.concurrency,
                "worker_concurrency": q.worker_concurrency,
                "rate_limit": None
                if q.rate_count is None
                else {"count": q.rate_count, "per": q.rate_per},
                "priority": q.priority,
                "partition_key": q.partitioned,
                "defined": name in defined,
            }
        )
    return stats
