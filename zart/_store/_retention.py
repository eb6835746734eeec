"""Retention: delete finished executions, a whole tree at a time, in bounded batches.

One batch is one short transaction: up to ``limit`` candidate roots (finished, old
enough, top-level or orphaned) in ``(created_at, id)`` order after a cursor, their
descendants found level by level (the partial index on ``parent_id``), and, for every
tree whose members are all finished, its executions with their steps, events and audit
rows deleted together. A tree with an open member (a child still running, say) is
kept whole: a child is never deleted apart from its tree, nor left without its parent.

PostgreSQL: the rows are locked ``FOR UPDATE SKIP LOCKED``; a tree with a member
another transaction holds (an admin reset, a finishing child) is kept for a later
round, so a batch never waits on a lock. SQLite: the write transaction
(``BEGIN IMMEDIATE``) serialises it with every other writer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    String,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)

from zart._store import _schema as s
from zart._store._database import Database, boundary
from zart._store._queries import E, S, V
from zart._store._records import TERMINAL_STATUSES

A = s.audit
CHUNK = 500  # ids per IN list: far below every backend's bound on parameters


@dataclass
class Batch:
    """What one batch deleted (or, in a dry run, would delete)."""

    executions: int = 0
    steps: int = 0
    events: int = 0
    audit: int = 0
    kept: int = 0  # trees left alone: an open (or, on PostgreSQL, busy) member
    # (created_at, id) of the last candidate looked at; None: there were none left.
    cursor: tuple[float, str] | None = None


class RetentionStore:
    """The deleting side of ``zart gc``, on top of one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @boundary
    def collect(
        self,
        *,
        cutoff: float,
        status: str,
        durable_name: str | None,
        after: tuple[float, str] | None,
        limit: int,
        dry_run: bool,
    ) -> Batch:
        """One batch: the candidate roots in ``status`` after ``after``, whole finished
        trees deleted (or counted, with ``dry_run``) in one transaction."""
        with self.db.tx(write=not dry_run) as conn:
            roots = _roots(conn, cutoff, status, durable_name, after, limit, lock=not dry_run)
            if not roots:
                return Batch()
            batch = Batch(cursor=roots[-1])
            trees = _trees(conn, [r[1] for r in roots])
            members = [m for t in trees.values() for m in t]
            # SQLite: the write transaction already excludes every other writer.
            locking = not dry_run and conn.dialect.name == "postgresql"
            busy = _busy(conn, members) if locking else set()
            ids: list[str] = []
            for members in trees.values():
                if members and not busy.intersection(members):
                    ids.extend(members)
                else:
                    batch.kept += 1
            _count(conn, ids, batch) if dry_run else _delete(conn, ids, batch)
            return batch


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def _among(conn: Connection, column: Any, ids: Sequence[str]) -> Any:
    """``column IN ids`` with one parameter, not hundreds (whose rendering and parsing
    cost more than the statement): PostgreSQL ``= ANY(array)``, SQLite ``json_each``."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(String)))
    values = func.json_each(bindparam(None, json.dumps(list(ids)), type_=String))
    return column.in_(select(literal_column("value")).select_from(values))


def _roots(
    conn: Connection,
    cutoff: float,
    status: str,
    durable_name: str | None,
    after: tuple[float, str] | None,
    limit: int,
    *,
    lock: bool,
) -> list[tuple[float, str]]:
    """(created_at, id) of the next candidate roots: finished in ``status`` before
    ``cutoff``, top-level (or their parent is gone), oldest first. One status at a time:
    the (status, created_at) index then yields them in order, so a batch reads about
    ``limit`` rows however many wait behind them."""
    parent = E.alias("parent")
    orphan = ~exists(select(parent.c.id).where(parent.c.id == E.c.parent_id))
    query = (
        select(E.c.created_at, E.c.id)
        .where(
            E.c.status == status,
            # finished_at >= created_at: the first bound lets the (status, created_at)
            # index narrow the scan, the second is the rule.
            E.c.created_at < cutoff,
            E.c.finished_at < cutoff,
            or_(E.c.parent_id.is_(None), orphan),
        )
        .order_by(E.c.created_at, E.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            E.c.created_at >= after[0], tuple_(E.c.created_at, E.c.id) > tuple_(*after)
        )
    if durable_name is not None:
        query = query.where(E.c.durable_name == durable_name)
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [(float(c), str(i)) for c, i in conn.execute(query)]


def _trees(conn: Connection, root_ids: list[str]) -> dict[str, list[str]]:
    """Each root's tree (itself first, then its descendants level by level); an empty
    list for a tree with an open member, which must stay whole."""
    root_of = {r: r for r in root_ids}
    trees: dict[str, list[str]] = {r: [r] for r in root_ids}
    open_roots: set[str] = set()
    level = root_ids
    while level:
        found: list[str] = []
        for chunk in _chunks(level):
            query = select(E.c.id, E.c.parent_id, E.c.status).where(
                _among(conn, E.c.parent_id, chunk)
            )
            for child, parent, status in conn.execute(query):
                if child in root_of:
                    continue  # a cycle in damaged data: do not walk it twice
                root = root_of[child] = root_of[parent]
                trees[root].append(child)
                found.append(child)
                if status not in TERMINAL_STATUSES:
                    open_roots.add(root)
        level = found
    return {r: ([] if r in open_roots else members) for r, members in trees.items()}


def _busy(conn: Connection, ids: list[str]) -> set[str]:
    """The members to leave alone: no longer finished, or (PostgreSQL) locked by another
    transaction. The rest are locked by this one until it ends."""
    locked: set[str] = set()
    for chunk in _chunks(ids):
        query = (
            select(E.c.id)
            .where(_among(conn, E.c.id, chunk), E.c.status.in_(TERMINAL_STATUSES))
            .with_for_update(skip_locked=True)
        )
        locked.update(str(i) for i in conn.execute(query).scalars())
    return set(ids) - locked


def _delete(conn: Connection, ids: list[str], batch: Batch) -> None:
    def gone(table: Any, column: Any, chunk: Sequence[str]) -> int:
        return int(conn.execute(delete(table).where(_among(conn, column, chunk))).rowcount)

    for chunk in _chunks(ids):
        batch.steps += gone(S, S.c.execution_id, chunk)
        batch.events += gone(V, V.c.execution_id, chunk)
        batch.audit += gone(A, A.c.execution_id, chunk)
        batch.executions += gone(E, E.c.id, chunk)


def _count(conn: Connection, ids: list[str], batch: Batch) -> None:
    def count(table: Any, column: Any, chunk: Sequence[str]) -> int:
        query = select(func.count()).select_from(table).where(_among(conn, column, chunk))
        return int(conn.execute(query).scalar_one())

    for chunk in _chunks(ids):
        batch.steps += count(S, S.c.execution_id, chunk)
        batch.events += count(V, V.c.execution_id, chunk)
        batch.audit += count(A, A.c.execution_id, chunk)
        batch.executions += count(E, E.c.id, chunk)
