"""Pause rules: stored in ``zart_pause_rules``, cached per process for the step path.

A rule sets one or more scopes (an execution id, a durable name, a glob on step names
or templates); it holds every execution matching all of them before that execution's
next new step. Three parts:

* :class:`PauseCache`: this process's copy of one database's rules. The step path
  reads one attribute, :attr:`PauseCache.watch`, which is False while there are no
  rules and the copy is fresh. A ticker thread marks every cache stale once a
  second (``REFRESH_SECONDS``; no query), and the first step that finds it stale
  reads the rules again: one query a second at most per process, and none at all in a
  process that runs no step. A rule added or removed by this process marks its caches
  stale at once (:func:`invalidate`).
* :class:`PauseStore`: add, list and remove rules (each audited), hold an execution
  (fenced on its lease, and only while its rule still exists), and release what the
  removed rules held: back to ``pending``, with a wake-up for the workers.
* :class:`PauseRule`: one rule and :meth:`PauseRule.matches`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from zart._store import _schema as s
from zart._store._database import Database, boundary
from zart._store._queries import E, held, lock_execution
from zart._store._records import PAUSED, PENDING, ExecutionRecord
from zart._store._wakeups import notify

log = logging.getLogger("zart")

P = s.pause_rules
A = s.audit

# How old this process's copy of the rules may get (seconds): a new rule holds the
# executions it matches within about this long.
REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class PauseRule:
    id: int
    execution_id: str | None
    durable_name: str | None
    step_pattern: str | None
    reason: str | None
    actor: str
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> PauseRule:
        m = row._mapping
        return cls(
            id=int(m["id"]), execution_id=m["execution_id"], durable_name=m["durable_name"],
            step_pattern=m["step_pattern"], reason=m["reason"], actor=m["actor"],
            created_at=float(m["created_at"]),
        )  # fmt: skip

    def matches(self, execution_id: str, durable_name: str, step: str, template: str) -> bool:
        """Does this rule hold execution ``execution_id`` of ``durable_name`` before the
        step named ``step`` (rendered from ``template``)? Every scope set must match;
        the step pattern is a glob on the rendered name or on the template."""
        if self.execution_id is not None and self.execution_id != execution_id:
            return False
        if self.durable_name is not None and self.durable_name != durable_name:
            return False
        pattern = self.step_pattern
        return pattern is None or fnmatchcase(step, pattern) or fnmatchcase(template, pattern)

    @property
    def subject(self) -> str:
        """The rule's name in the audit log (its ``execution_id`` column)."""
        return f"pause-rule:{self.id}"

    def scope(self) -> dict[str, str]:
        found = {
            "execution_id": self.execution_id,
            "durable_name": self.durable_name,
            "step_pattern": self.step_pattern,
        }
        return {k: v for k, v in found.items() if v is not None}


class PauseCache:
    """This process's copy of the pause rules of one database (see the module doc).

    ``watch`` is what the step path reads: True when the copy is stale or holds rules.
    ``refreshes`` counts the reads of the rules table (tests assert on it)."""

    def __init__(self, db: Database | None) -> None:
        self.db = db
        self.rules: tuple[PauseRule, ...] = ()
        self.stale = db is not None
        self.watch = self.stale
        self.refreshes = 0
        self._ticking = False  # registered with the ticker (at the first read)

    def expire(self) -> None:
        """Read the rules again at the next step (from any thread)."""
        if self.db is not None:
            self.stale = True
            self.watch = True

    def current(self) -> tuple[PauseRule, ...]:
        """The rules, read again first if the copy is stale."""
        if self.stale and self.db is not None:
            if not self._ticking:
                self._ticking = True
                _TICKER.add(self)
            self.stale = False  # before the read: an expire() during it is kept
            try:
                self.rules = self._load(self.db)
            except Exception as exc:  # the step's own writes will meet the outage
                log.warning("could not read the pause rules (%s); keeping the last ones", exc)
            self.refreshes += 1
            self.watch = bool(self.rules) or self.stale
        return self.rules

    @staticmethod
    def _load(db: Database) -> tuple[PauseRule, ...]:
        with db.tx(write=False) as conn:
            rows = conn.execute(select(P).order_by(P.c.id)).all()
        return tuple(PauseRule.from_row(r) for r in rows)


class _Ticker:
    """One daemon thread per process marking every live cache stale each
    ``REFRESH_SECONDS`` (a flag, no query)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.caches: weakref.WeakSet[PauseCache] = weakref.WeakSet()
        self.thread: threading.Thread | None = None

    def add(self, cache: PauseCache) -> None:
        with self.lock:
            self.caches.add(cache)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="zart-pauses", daemon=True)
                self.thread.start()

    def expire(self, url: str | None) -> None:
        with self.lock:
            caches = list(self.caches)
        for cache in caches:
            if url is None or (cache.db is not None and cache.db.url == url):
                cache.expire()

    def _run(self) -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            self.expire(None)


_TICKER = _Ticker()


def invalidate(url: str) -> None:
    """The rules of the database at ``url`` changed: this process's copies are stale."""
    _TICKER.expire(url)


class PauseStore:
    """Pause rules and paused executions, on top of one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = PauseCache(db)

    # ------------------------------------------------------------------ rules

    @boundary
    def list_rules(self) -> list[PauseRule]:
        return list(PauseCache._load(self.db))

    @boundary
    def add_rule(
        self,
        *,
        execution_id: str | None,
        durable_name: str | None,
        step_pattern: str | None,
        reason: str | None,
        actor: str,
    ) -> tuple[PauseRule, bool]:
        """Store a rule (audited) unless one with the same scope exists; returns the rule
        and whether this call created it."""
        now = time.time()
        scope = dict(
            execution_id=execution_id, durable_name=durable_name, step_pattern=step_pattern
        )
        with self.db.tx() as conn:
            same = conn.execute(select(P).where(*_same_scope(scope)).order_by(P.c.id)).first()
            if same is not None:
                return PauseRule.from_row(same), False
            values = dict(scope, reason=reason, actor=actor, created_at=now)
            inserted = conn.execute(insert(P).values(**values)).inserted_primary_key
            assert inserted is not None
            new_id = inserted[0]
            rule = PauseRule(
                int(new_id), execution_id, durable_name, step_pattern, reason, actor, now
            )
            details = {**rule.scope(), "reason": reason}
            _audit(conn, [rule.subject], "pause", actor, details, now)
        invalidate(self.db.url)
        return rule, True

    def remove_rules(
        self, ids: list[int] | None, scope: dict[str, str | None] | None, actor: str
    ) -> tuple[list[PauseRule], list[ExecutionRecord]]:
        """Remove the rules with these ids (or exactly this scope), audited; the
        executions they held go back to pending (workers are woken). Returns the rules
        removed and the executions released."""
        now = time.time()
        with self.db.tx() as conn:
            query = select(P).with_for_update()
            query = query.where(P.c.id.in_(ids)) if ids is not None else query
            query = query.where(*_same_scope(scope)) if scope is not None else query
            rules = [PauseRule.from_row(r) for r in conn.execute(query.order_by(P.c.id))]
            if not rules:
                return [], []
            removed = [r.id for r in rules]
            conn.execute(delete(P).where(P.c.id.in_(removed)))
            released = self._release(conn, E.c.paused_by.in_(removed), now)
            for rule in rules:
                held_ids = [r.id for r in released if r.paused_by == rule.id]
                details = {**rule.scope(), "released": held_ids[:1000], "count": len(held_ids)}
                _audit(conn, [rule.subject], "resume", actor, details, now)
            for rule in rules:  # and in each released execution's own log
                mine = [r.id for r in released if r.paused_by == rule.id]
                _audit(conn, mine, "resume", actor, {"rule": rule.id}, now)
        self._after_release(released)
        return rules, released

    def resume_execution(self, execution_id: str, actor: str) -> ExecutionRecord | None:
        """Resume one paused execution: the rules naming only it are removed, it goes back
        to pending (a wider rule still matching holds it again at the same step). None
        when it is not paused (nothing changed)."""
        now = time.time()
        with self.db.tx() as conn:
            rec = lock_execution(conn, execution_id)
            if rec.status != PAUSED:
                return None
            mine = select(P.c.id).where(
                P.c.execution_id == execution_id,
                P.c.durable_name.is_(None),
                P.c.step_pattern.is_(None),
            )
            removed = [int(i) for i in conn.execute(mine).scalars()]
            if removed:
                conn.execute(delete(P).where(P.c.id.in_(removed)))
            released = self._release(conn, E.c.id == execution_id, now)
            details = {"rule": rec.paused_by, "removed_rules": removed}
            _audit(conn, [execution_id], "resume", actor, details, now)
        if removed:
            invalidate(self.db.url)
        self._after_release(released)
        return released[0] if released else None

    def _release(self, conn: Connection, which: Any, now: float) -> list[ExecutionRecord]:
        """Paused executions matching ``which`` back to pending (in ``conn``)."""
        found = conn.execute(select(E).where(which, E.c.status == PAUSED).with_for_update())
        records = [ExecutionRecord.from_row(r) for r in found]
        if records:
            ids = [r.id for r in records]
            values = dict(status=PENDING, paused_by=None, updated_at=now)
            conn.execute(update(E).where(E.c.id.in_(ids)).values(**values))
            for rec in records:  # paused_by kept on the records returned: who held them
                rec.status, rec.updated_at = PENDING, now
            for name in sorted({r.durable_name for r in records}):
                self.db.notify_work(conn, name)
        return records

    def _after_release(self, released: list[ExecutionRecord]) -> None:
        invalidate(self.db.url)
        for name in sorted({r.durable_name for r in released}):
            notify(name)

    # ------------------------------------------------------------------ the engine

    @boundary
    def hold(self, execution_id: str, token: str, rule_id: int, step: str) -> str | None:
        """Pause the execution ``token`` runs, before step ``step``, under rule ``rule_id``:
        ``paused``; ``pending`` (and workers woken) if the rule was removed meanwhile;
        None if the lease is lost. The rule row is locked (``FOR SHARE``) so a resume
        removing it either sees this execution paused or makes this hold find it gone."""
        now = time.time()
        with self.db.tx() as conn:
            rule = conn.execute(
                select(P.c.id).where(P.c.id == rule_id).with_for_update(read=True)
            ).first()
            status = PAUSED if rule is not None else PENDING
            values: dict[str, Any] = dict(
                status=status, lease_owner=None, lease_expires_at=None, wake_at=None,
                updated_at=now, paused_by=rule_id if rule is not None else None,
            )  # fmt: skip
            if not conn.execute(held(execution_id, token).values(**values)).rowcount:
                return None
            name = str(
                conn.execute(select(E.c.durable_name).where(E.c.id == execution_id)).scalar()
            )
            if rule is None:
                self.cache.expire()  # it held a removed rule: read them again
                self.db.notify_work(conn, name)
            else:
                details = {"rule": rule_id, "step": step}
                _audit(conn, [execution_id], "paused", f"pause-rule:{rule_id}", details, now)
        if rule is None:
            notify(name)
        return status


def _same_scope(scope: dict[str, str | None]) -> list[Any]:
    """WHERE clauses: a rule with exactly this scope (unset parts unset)."""
    return [
        P.c[key].is_(None) if value is None else P.c[key] == value for key, value in scope.items()
    ]


def _audit(
    conn: Connection,
    subjects: list[str],
    action: str,
    actor: str,
    details: dict[str, Any],
    now: float,
) -> None:
    """Audit rows (one per subject: an execution id, or ``pause-rule:<id>``)."""
    if not subjects:
        return
    text = json.dumps(details, default=str)
    rows = [
        dict(execution_id=subject, action=action, actor=actor, created_at=now, details=text)
        for subject in subjects
    ]
    conn.execute(insert(A), rows)
