"""The engine's narrow interface to storage: create, claim, load the journal,
checkpoint, finish, leases, wake-ups and events. Nothing else is on this path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from zart._owner import current_owner, owner_is_dead
from zart._store import _queues
from zart._store._database import Database, boundary
from zart._store._errors import LeaseGone, OutcomeUnknownError, RaceLost
from zart._store._group import GroupCommit
from zart._store._queries import (
    FINISH_SQL,
    LEASE_HELD_SQL,
    STEP_COLUMNS,
    E,
    S,
    V,
    by_id,
    held,
    is_claimable,
    lock_execution,
    runnable,
    update_descendants,
)
from zart._store._records import (
    CANCELLED,
    NO_EVENT,
    PENDING,
    RUNNING,
    SLEEPING,
    STEP_COMPLETED,
    TERMINAL_STATUSES,
    WAITING,
    ExecutionRecord,
    StepRecord,
)
from zart._store._wakeups import notify

log = logging.getLogger("zart")


class JournalStore:
    """What the engine needs from a database, on top of one :class:`Database`."""

    def __init__(self, db: Database, version: str | Callable[[], str] | None = None) -> None:
        self.db = db
        # The code version of this process (or how to compute it when needed): stored on
        # what it creates, appended to the versions of what it runs (in the claim's own
        # UPDATE: no extra statement).
        self._version = version
        # Writes of executions running at once here share transactions (see _group.py).
        self.group = GroupCommit(db)
        # Queues (zart.Queue) this process stored the definition of; those with limits as
        # of the last claim (a finish there wakes other workers).
        self._queues: dict[str, _queues.QueueLimits] = {}
        self._limited: frozenset[str] = frozenset()

    @property
    def version(self) -> str | None:
        version = self._version
        return version() if callable(version) else version

    # ------------------------------------------------------------------ executions

    @boundary
    def create_execution(
        self,
        execution_id: str,
        durable_name: str,
        input_json: str,
        parent_id: str | None = None,
        options: _queues.SubmitOptions | None = None,
    ) -> tuple[ExecutionRecord, bool]:
        """Insert a pending execution unless one with this id exists; return it and created?
        ``options``: queue, priority, delay, dedup and debounce keys (``_queues``).

        Safe to repeat: an attempt whose commit went through is found as "exists".
        """
        if options is not None:
            return self._create_queued(execution_id, durable_name, input_json, options)
        now = time.time()
        with self.db.tx() as conn:
            existing = conn.execute(by_id(execution_id)).first()
            if existing is not None:
                return ExecutionRecord.from_row(existing), False
            values = dict(
                id=execution_id, durable_name=durable_name, status=PENDING, input=input_json,
                attempts=0, parent_id=parent_id, created_at=now, updated_at=now,
                version=self.version,
            )  # fmt: skip
            try:
                conn.execute(insert(E).values(**values))
            except IntegrityError:
                conn.rollback()
                raise RaceLost() from None
            if parent_id is None:  # a child is run by its parent's process, at once
                self.db.notify_work(conn, durable_name)
            rec = ExecutionRecord.from_row(conn.execute(by_id(execution_id)).one())
        if parent_id is None:
            notify(durable_name)  # this process's workers (after the commit)
        return rec, True

    def _create_queued(
        self, execution_id: str, durable_name: str, input_json: str, options: _queues.SubmitOptions
    ) -> tuple[ExecutionRecord, bool]:
        for attempt in range(5):
            try:
                with self.db.tx() as conn:
                    rec, created = _queues.create(
                        conn, execution_id, durable_name, input_json, options, self.version
                    )
                    if created:  # a delayed one too: workers learn when it is due
                        self.db.notify_work(conn, durable_name)
            except IntegrityError:
                if attempt == 4:
                    raise
                continue  # a concurrent submit took the id or the key: look again
            if created:
                notify(durable_name)
            return rec, created
        raise AssertionError("unreachable")

    def define_queue(self, queue: _queues.QueueLimits, *, replace: bool = False) -> None:
        """Store a queue's definition (once per process and definition); ``replace``:
        this process defines it (a worker, a submit), not just names it."""
        known = self._queues.get(queue.name)
        if known == queue or (known is not None and not replace):
            return
        with self.db.tx() as conn:
            if replace or conn.execute(_queues.exists(queue.name)).first() is None:
                _queues.define(conn, queue)
        self._queues[queue.name] = queue

    def queue_slot_freed(self, queue: str) -> None:
        """An execution of ``queue`` stopped running: if the queue has limits, wake the
        workers of every process (one may claim what the limit held back)."""
        if queue in self._limited:
            self.db.announce_work()
            notify(None)

    @boundary
    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        with self.db.tx(write=False) as conn:
            row = conn.execute(by_id(execution_id)).first()
        return ExecutionRecord.from_row(row) if row is not None else None

    @boundary
    def try_claim(
        self, execution_id: str, token: str, lease_seconds: float, *, force_wake: bool = False
    ) -> ExecutionRecord | None:
        """Take the lease of one execution if it is runnable now; None when it is not.

        ``force_wake`` also claims a sleeping/waiting execution before its wake time
        (used by ``run`` so the body can re-check its timers and events).
        """
        if self.db.attempt:
            # The failed attempt may have committed the claim under our token.
            rec = self.get_execution(execution_id)
            if rec is not None and rec.status == RUNNING and rec.lease_owner == token:
                return rec
        with self.db.tx() as conn:
            row = conn.execute(by_id(execution_id).with_for_update()).first()
            if row is None:
                return None
            rec = ExecutionRecord.from_row(row)
            now = self.db.db_now(conn)
            claimable = is_claimable(rec, now) or (force_wake and rec.status in (SLEEPING, WAITING))
            if not claimable:
                return None
            return self._take(conn, rec, token, now, lease_seconds)

    def _take(
        self, conn: Connection, rec: ExecutionRecord, token: str, now: float, lease_seconds: float
    ) -> ExecutionRecord:
        values: dict[str, Any] = dict(
            status=RUNNING, lease_owner=token, lease_expires_at=now + lease_seconds,
            attempts=rec.attempts + 1, updated_at=time.time(), wake_at=None,
        )  # fmt: skip
        if rec.status == RUNNING:
            # A takeover from a lost owner (crash, expired lease): a recovery. Wake-ups
            # and hand-backs (pending) are not.
            expired = rec.lease_expires_at is None or rec.lease_expires_at < now
            why = "its lease expired" if expired else "its process is gone"
            log.info("taking over execution %s from %s (%s)", rec.id, rec.lease_owner, why)
            values["recoveries"] = rec.recoveries + 1
            rec.recovered = True
        if rec.started_at is None:
            values["started_at"] = values["updated_at"]
        ran = rec.ran_versions.split(",") if rec.ran_versions else []
        if self.version is not None and (not ran or ran[-1] != self.version):
            values["ran_versions"] = ",".join([*ran, self.version])
        conn.execute(update(E).where(E.c.id == rec.id).values(**values))
        for key, value in values.items():
            setattr(rec, key, value)
        return rec

    def claim_runnable(
        self,
        token_factory: Callable[[], str],
        durable_names: Sequence[str],
        limit: int,
        lease_seconds: float,
        only_version: str | None = None,
    ) -> list[tuple[ExecutionRecord, str]]:
        """Claim up to ``limit`` runnable executions of the given durable functions (only
        those created by code version ``only_version``, if given)."""
        if limit <= 0 or not durable_names:
            return []
        minted: list[str] = []

        def mint() -> str:
            token = token_factory()
            minted.append(token)
            return token

        def op() -> list[tuple[ExecutionRecord, str]]:
            if self.db.attempt and minted:
                # Claims the failed attempt committed are ours: hand them out rather
                # than leaving them to expire.
                mine = self._held_by(minted)
                minted.clear()
                if mine:
                    return mine
            return self._claim_runnable(
                mint, list(durable_names), limit, lease_seconds, only_version
            )

        return self.db.run("claim_runnable", op)

    def _claim_runnable(
        self,
        mint: Callable[[], str],
        names: list[str],
        limit: int,
        lease_seconds: float,
        only_version: str | None,
    ) -> list[tuple[ExecutionRecord, str]]:
        with self.db.tx() as conn:
            now = self.db.db_now(conn)

            def take(rec: ExecutionRecord) -> tuple[ExecutionRecord, str]:
                return self._take(conn, rec, (t := mint()), now, lease_seconds), t

            # Queues with limits first (each within them), then the rest.
            managed = _queues.load_managed(conn)
            self._limited = frozenset(n for n, q in managed.items() if q.limited)
            queued = _queues.claim_queued(
                self.db, conn, managed, names, limit, now, only_version, take
            )
            limit -= len(queued)
            query = (
                select(E)
                .where(E.c.durable_name.in_(names), runnable(now))
                .order_by(E.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if managed:
                query = query.where(_queues.unmanaged(managed))
            if only_version is not None:
                query = query.where(E.c.version == only_version)
            # Executions whose owner died on this host first: they are the oldest work,
            # and behind a backlog of pending ones they would otherwise wait for their
            # lease to expire (a recovery storm resumes them at once this way).
            unmanaged = _queues.unmanaged(managed) if managed else None
            orphans = self._orphans(conn, names, now, limit, unmanaged) if limit else []
            rows = [o for o in orphans if only_version in (None, o.version)]
            limit -= len(rows)
            if limit > 0:
                rows += [ExecutionRecord.from_row(r) for r in conn.execute(query.limit(limit))]
            return queued + [take(rec) for rec in rows]

    @staticmethod
    def _orphans(
        conn: Connection, names: list[str], now: float, limit: int, where: Any = None
    ) -> list[ExecutionRecord]:
        """Running executions whose owner died on this very host: no need to wait for
        their lease to expire. Read without locking (live owners' rows must not be
        locked by every poll of every worker), then lock only the orphans, re-checking
        that their owner did not change in between."""
        me = current_owner()
        host, mine = f"{me.host}|", f"{me.host}|{me.pid}|{me.start}|"
        candidates = (
            select(E.c.id, E.c.lease_owner)
            .where(E.c.durable_name.in_(names), E.c.status == RUNNING, E.c.lease_expires_at >= now)
            # Only owners on this host can be checked, and this process is alive.
            .where(func.substr(E.c.lease_owner, 1, len(host)) == host)
            .where(func.substr(E.c.lease_owner, 1, len(mine)) != mine)
            .order_by(E.c.created_at)
            .limit(200)
        )
        if where is not None:
            candidates = candidates.where(where)
        found: list[ExecutionRecord] = []
        for orphan_id, owner in conn.execute(candidates).all():
            if len(found) >= limit:
                break
            if not owner_is_dead(owner):
                continue
            row = conn.execute(
                select(E)
                .where(E.c.id == orphan_id, E.c.lease_owner == owner, E.c.status == RUNNING)
                .with_for_update(skip_locked=True)
            ).first()
            if row is not None:
                found.append(ExecutionRecord.from_row(row))
        return found

    def _held_by(self, tokens: list[str]) -> list[tuple[ExecutionRecord, str]]:
        with self.db.tx(write=False) as conn:
            rows = conn.execute(
                select(E).where(E.c.lease_owner.in_(tokens), E.c.status == RUNNING)
            ).all()
        return [(rec, str(rec.lease_owner)) for rec in map(ExecutionRecord.from_row, rows)]

    @boundary
    def next_due(
        self, durable_names: Sequence[str], only_version: str | None = None
    ) -> float | None:
        """Seconds (database clock) until an execution of ``durable_names`` becomes
        runnable by the clock alone: the earliest wake time of a sleeping or waiting one,
        the earliest lease expiry of a running one. None when there is none; 0 or less
        when it is due already. One query: an idle worker sleeps until then."""
        if not durable_names:
            return None
        parked = or_(
            E.c.status.in_((SLEEPING, WAITING)),
            # Delayed (or debounced) submits; one due this last second too (it may have
            # become due since the claim), not older ones: those are held by a queue's
            # limit, and a slot freeing wakes the workers.
            and_(E.c.status == PENDING, E.c.wake_at > self.db.now_sql() - 1.0),
        )
        query = select(
            func.min(case((parked, E.c.wake_at))),
            func.min(case((E.c.status == RUNNING, E.c.lease_expires_at))),
            self.db.now_sql(),
        ).where(E.c.durable_name.in_(list(durable_names)), or_(parked, E.c.status == RUNNING))
        if only_version is not None:
            query = query.where(E.c.version == only_version)
        with self.db.tx(write=False) as conn:
            wake_at, expires, now = conn.execute(query).one()
            # Rate-limited queues: when the next slot opens (the limit ends the claim).
            rated = _queues.rate_due(conn, _queues.load_managed(conn), list(durable_names), now)
        times = [float(t) for t in (wake_at, expires, rated) if t is not None]
        return min(times) - float(now) if times else None

    def renew_leases(self, tokens: Iterable[str], lease_seconds: float) -> set[str]:
        """Extend the leases of the given tokens; return the tokens no longer held."""
        tokens = list(tokens)
        if not tokens:
            return set()

        def op() -> set[str]:
            expires = self.db.now_sql() + lease_seconds
            with self.db.tx() as conn:
                if conn.dialect.update_returning:
                    renew = (
                        update(E)
                        .where(E.c.lease_owner.in_(tokens), E.c.status == RUNNING)
                        .values(lease_expires_at=expires)
                        .returning(E.c.lease_owner)
                    )
                    return set(tokens) - {str(t) for t in conn.execute(renew).scalars()}
                lost = set()  # an SQLite older than 3.35: one statement per lease
                for token in tokens:
                    statement = (
                        update(E)
                        .where(E.c.lease_owner == token, E.c.status == RUNNING)
                        .values(lease_expires_at=expires)
                    )
                    if not conn.execute(statement).rowcount:
                        lost.add(token)
                return lost

        # The heartbeat beats again soon: retry briefly (a reconnect), never for long.
        return self.db.run("renew_leases", op, budget=max(0.5, lease_seconds / 3))

    @boundary
    def finish_execution(
        self, execution_id: str, token: str, status: str, result: str | None, error: str | None
    ) -> bool:
        """Record the outcome, conditional on still holding the lease."""
        now = time.time()
        with self.db.tx() as conn:
            values = dict(
                status=status, result=result, error=error, lease_owner=None,
                lease_expires_at=None, finished_at=now, updated_at=now,
            )  # fmt: skip
            if conn.execute(held(execution_id, token).values(**values)).rowcount:
                return True
        if not self.db.attempt:
            return False
        # Refused on a retry: did the attempt that failed at commit record it?
        return self._finished_as(execution_id, status, result, error)

    def _finished_as(
        self, execution_id: str, status: str, result: str | None, error: str | None
    ) -> bool:
        """Is the execution recorded as finished with exactly this outcome?"""
        rec = self.get_execution(execution_id)
        return (
            rec is not None
            and rec.status == status
            and rec.lease_owner is None
            and (rec.result, rec.error) == (result, error)
        )

    @boundary
    def suspend_execution(
        self, execution_id: str, token: str, status: str, wake_at: float | None
    ) -> bool:
        """Give up the lease while sleeping or waiting; a worker wakes it at ``wake_at``.

        An event for a pending wait may have arrived after the wait looked for it and
        before this update (``add_event`` only wakes executions already ``waiting``):
        then the execution is due at once, or that event would be missed until the
        wait's timeout (or for ever).
        """
        with self.db.tx() as conn:
            now = time.time()
            values = dict(
                status=status, wake_at=wake_at, lease_owner=None, lease_expires_at=None,
                updated_at=now,
            )  # fmt: skip
            if not conn.execute(held(execution_id, token).values(**values)).rowcount:
                return False
            # Checked after the update took the row lock: an add_event either committed
            # before (seen here) or waits for this commit (and sees status waiting).
            pending = conn.execute(
                select(V.c.id)
                .join(S, and_(S.c.execution_id == V.c.execution_id, S.c.step_name == V.c.name))
                .where(
                    V.c.execution_id == execution_id,
                    V.c.consumed_by.is_(None),
                    S.c.kind == "event",
                    S.c.status == WAITING,
                )
                .limit(1)
            ).first()
            if pending is None:
                return True
            conn.execute(update(E).where(E.c.id == execution_id).values(wake_at=now))
            name = self._announce(conn, execution_id)
        notify(name)
        return True

    @boundary
    def release(self, execution_id: str, token: str) -> bool:
        """Hand a running execution back (graceful shutdown): another worker resumes it at once."""
        with self.db.tx() as conn:
            values = dict(
                status=PENDING, lease_owner=None, lease_expires_at=None, updated_at=time.time()
            )
            if not conn.execute(held(execution_id, token).values(**values)).rowcount:
                return False
            name = self._announce(conn, execution_id)
        notify(name)
        return True

    def _announce(self, conn: Connection, execution_id: str) -> str:
        """Tell other processes' workers that this execution is runnable (at commit);
        its durable name, for the caller to wake this process's after the commit."""
        name = str(conn.execute(select(E.c.durable_name).where(E.c.id == execution_id)).scalar())
        self.db.notify_work(conn, name)
        return name

    @boundary
    def cancel(self, execution_id: str) -> tuple[ExecutionRecord | None, bool]:
        """Cancel an active execution and every open descendant (children, their
        children...), in one transaction. Returns (record after, whether this call
        cancelled it)."""
        now = time.time()
        values = dict(
            status=CANCELLED, lease_owner=None, lease_expires_at=None, wake_at=None,
            finished_at=now, updated_at=now,
        )  # fmt: skip
        with self.db.tx() as conn:
            row = conn.execute(by_id(execution_id).with_for_update()).first()
            if row is None:
                return None, False
            rec = ExecutionRecord.from_row(row)
            if rec.status in TERMINAL_STATUSES:
                return rec, False
            conn.execute(update(E).where(E.c.id == execution_id).values(**values))
            # Every open descendant too; a finished child's open children are reached
            # (a tree must not keep a live leaf).
            open_only = E.c.status.not_in(TERMINAL_STATUSES)
            update_descendants(conn, execution_id, values, change=open_only)
            rec.status, rec.lease_owner, rec.finished_at = CANCELLED, None, now
            return rec, True

    # ------------------------------------------------------------------ steps

    @boundary
    def load_steps(self, execution_id: str) -> dict[str, StepRecord]:
        """Every checkpoint of one execution, in one query."""
        with self.db.tx(write=False) as conn:
            rows = conn.execute(select(*STEP_COLUMNS).where(S.c.execution_id == execution_id))
            return {r[1]: StepRecord(*r) for r in rows.all()}

    @boundary
    def load_journal(self, execution_id: str) -> dict[str, StepRecord]:
        """:meth:`load_steps` for a run, without the outputs of completed steps (``None``):
        a long execution's resume holds its journal's names and statuses, not every
        result at once; the run fetches outputs a page at a time (:meth:`load_outputs`)
        as its replay reaches them. Rows are streamed, never all fetched at once."""
        lazy = and_(S.c.kind == "step", S.c.status == STEP_COMPLETED)
        columns = [
            case((lazy, None), else_=c).label("output") if c.name == "output" else c
            for c in STEP_COLUMNS
        ]
        query = select(*columns).where(S.c.execution_id == execution_id)
        with self.db.tx(write=False) as conn:
            rows = conn.execute(query.execution_options(yield_per=2000))
            return {r[1]: StepRecord(*r) for r in rows}

    @boundary
    def load_outputs(self, execution_id: str, names: list[str]) -> dict[str, str | None]:
        """The stored outputs of some steps of one execution (a page of a replay)."""
        query = select(S.c.step_name, S.c.output).where(
            S.c.execution_id == execution_id, S.c.step_name.in_(names)
        )
        with self.db.tx(write=False) as conn:
            return {str(name): output for name, output in conn.execute(query)}

    def save_step(self, token: str, record: StepRecord) -> bool:
        """Write a checkpoint if ``token`` still holds the lease; False when it does not.

        The hot path: the database sends one fenced statement (and retries it itself,
        an upsert being safe to repeat)."""
        return self.db.write_checkpoint(token, record)

    def lease_held(self, execution_id: str, token: str) -> bool:
        """Is the execution still running under ``token`` (not cancelled, not taken over)?
        One indexed read; a step checks it before it starts (see ExecutionContext)."""
        return self.db.lease_held(execution_id, token)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction for a transactional step: the step's own writes and its
        checkpoint (``save_step_on``) commit together or not at all."""
        with self.db.tx(write=True) as conn:
            yield conn

    def save_step_on(self, conn: Connection, token: str, record: StepRecord) -> bool:
        """``save_step`` inside the caller's transaction (see ``transaction``)."""
        return bool(conn.execute(self.db.checkpoint_statement, record.as_params(token)).rowcount)

    # ------------------------------------------------------------------ events

    @boundary
    def add_event(self, execution_id: str, name: str, payload: str | None) -> ExecutionRecord:
        """Store an event; wake the execution if it is waiting. Kept until a wait consumes it.

        An execution that has finished gets nothing stored; the record returned says so.
        """
        try:
            return self._add_event(execution_id, name, payload)
        except Exception as exc:
            if self.db.outcome_unknown(exc):
                # Sending again could deliver the event twice: not retried.
                raise OutcomeUnknownError(
                    f"the connection to {self.db.url} broke while committing event {name!r} "
                    f"for execution {execution_id!r}; it may or may not have been stored "
                    "(check the execution before sending it again)"
                ) from exc
            raise

    def _add_event(self, execution_id: str, name: str, payload: str | None) -> ExecutionRecord:
        now = time.time()
        with self.db.tx() as conn:
            rec = lock_execution(conn, execution_id)
            if rec.status in TERMINAL_STATUSES:
                return rec  # nothing will ever wait for it: not stored
            conn.execute(
                insert(V).values(
                    execution_id=execution_id, name=name, payload=payload, created_at=now
                )
            )
            if rec.status != WAITING:
                return rec
            conn.execute(
                update(E).where(E.c.id == execution_id).values(wake_at=now, updated_at=now)
            )
            self.db.notify_work(conn, rec.durable_name)
        notify(rec.durable_name)
        return rec

    @boundary
    def consume_event_into_step(
        self, token: str, execution_id: str, name: str, seq: int, sent_by: float | None = None
    ) -> Any:
        """Hand the oldest unconsumed event ``name`` to the wait of the same name.

        Marks the event consumed and writes the wait's checkpoint in one
        transaction, so a crash cannot lose the event nor deliver it twice.
        With ``sent_by`` (the wait's deadline) only an event stored by then counts.
        Returns the payload (str or None), or NO_EVENT when none is waiting.
        """
        if self.db.attempt:
            # The failed attempt may have consumed the event and checkpointed the wait.
            done = self.load_steps(execution_id).get(name)
            if done is not None and done.status == STEP_COMPLETED:
                return done.output
        now = time.time()
        with self.db.tx() as conn:
            # FOR SHARE (a no-op on SQLite): a takeover cannot commit while this runs.
            lease = (
                select(E.c.id)
                .where(E.c.id == execution_id, E.c.lease_owner == token, E.c.status == RUNNING)
                .with_for_update(read=True)
            )
            if conn.execute(lease).first() is None:
                raise LeaseGone()
            query = (
                select(V)
                .where(V.c.execution_id == execution_id, V.c.name == name)
                .where(V.c.consumed_by.is_(None))
                .order_by(V.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if sent_by is not None:
                query = query.where(V.c.created_at <= sent_by)
            row = conn.execute(query).first()
            if row is None:
                return NO_EVENT
            conn.execute(update(V).where(V.c.id == row.id).values(consumed_by=name))
            output = row.payload if row.payload is not None else "null"
            record = StepRecord(
                execution_id, name, seq, "event", STEP_COMPLETED, None, output, None, 1, now, now
            )
            conn.execute(self.db.checkpoint_statement, record.as_params(token))
            return row.payload

    # ------------------------------------------------------------------ group commit

    async def create_claimed(
        self,
        execution_id: str,
        durable_name: str,
        input_json: str,
        token: str,
        lease_seconds: float,
    ) -> ExecutionRecord | None:
        """Create a top-level execution already claimed under ``token`` (its creator
        runs it at once): one statement, batched with other writes. None when the id
        exists (the caller attaches to it instead)."""
        now = time.time()
        version = self.version
        params = dict(
            id=execution_id, durable_name=durable_name, input=input_json, token=token,
            lease=lease_seconds, now=now, version=version, ran_versions=version,
        )  # fmt: skip

        def ours() -> bool:
            rec = self.get_execution(execution_id)
            return rec is not None and rec.lease_owner == token

        count, _ = await self.group.write(self.db.create_claimed_sql, params, ours)
        if not count:
            return None
        return ExecutionRecord(
            id=execution_id, durable_name=durable_name, status=RUNNING, input=input_json,
            result=None, error=None, attempts=1, recoveries=0, lease_owner=token,
            lease_expires_at=now + lease_seconds, wake_at=None, parent_id=None,
            created_at=now, updated_at=now, started_at=now, finished_at=None,
            version=version, ran_versions=version,
        )  # fmt: skip

    async def checkpoint(self, token: str, record: StepRecord) -> tuple[bool, float]:
        """``save_step`` in a group commit: (written?, monotonic time its batch started,
        when the lease was last seen held)."""

        def stored() -> bool:
            found = self.load_steps(record.execution_id).get(record.step_name)
            return found is not None and (found.status, found.output, found.error) == (
                record.status, record.output, record.error,
            )  # fmt: skip

        count, started = await self.group.write(
            self.db.checkpoint_sql, record.as_params(token), stored
        )
        return count > 0, started

    async def check_lease(self, execution_id: str, token: str) -> tuple[bool, float]:
        """``lease_held`` in a group commit: (held?, monotonic time of the check)."""
        params = {"execution_id": execution_id, "token": token}
        count, started = await self.group.write(LEASE_HELD_SQL, params)
        return count > 0, started

    async def finish_batched(
        self, execution_id: str, token: str, status: str, result: str | None, error: str | None
    ) -> bool:
        """``finish_execution`` in a group commit (with other executions' checkpoints)."""
        params = dict(
            id=execution_id, token=token, status=status, result=result, error=error,
            now=time.time(),
        )  # fmt: skip

        def stored() -> bool:
            return self._finished_as(execution_id, status, result, error)

        count, _ = await self.group.write(FINISH_SQL, params, stored)
        return count > 0
