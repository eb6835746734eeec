"""zart's tables and their versioned migrations.

Tables carry a ``zart_`` prefix so they can live in the user's own database
next to the user's tables (transactional steps rely on that). Times are stored
as Unix seconds in double precision: comparable in SQL on every backend, and
free of timezone surprises.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

metadata = MetaData()

executions = Table(
    "zart_executions",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("durable_name", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input", Text, nullable=False),
    Column("result", Text),
    Column("error", Text),
    # How many times a process started (or resumed) this execution.
    # Claims (runs) of the execution; recoveries: the claims that took it over from a
    # lost owner (crash, expired lease), as opposed to wake-ups and hand-backs.
    Column("attempts", Integer, nullable=False, default=0),
    Column("recoveries", Integer, nullable=False, default=0, server_default="0"),
    # The code version that created it, and every version that ran it since, in order
    # ("v1,v2"): see docs/safe-deploys.md.
    Column("version", String(64)),
    Column("ran_versions", Text),
    # "host|pid|process-start|nonce" of the process holding the lease; unique per claim,
    # so it doubles as the fencing token every write is conditional on.
    Column("lease_owner", String(255)),
    Column("lease_expires_at", Double),
    Column("wake_at", Double),
    Column("parent_id", String(255)),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    # Version 6 (flow control, zart.Queue): the queue, the priority within it (higher
    # first) and the partition key its limits apply to.
    Column("queue", String(255)),
    Column("priority", Integer),
    Column("partition_key", String(255)),
    # Version 7: the pause rule (zart_pause_rules.id) holding a paused execution.
    Column("paused_by", Integer),
    Index("zart_executions_status_idx", "status", "wake_at"),
    Index("zart_executions_name_idx", "durable_name", "status"),
)

steps = Table(
    "zart_steps",
    metadata,
    Column("execution_id", String(255), primary_key=True),
    Column("step_name", String(512), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False, default="step"),
    # completed | failed | retrying
    Column("status", String(16), nullable=False),
    Column("fingerprint", String(64)),
    Column("output", Text),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=1),
    Column("started_at", Double),
    Column("finished_at", Double),
)

events = Table(
    "zart_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(255), nullable=False),
    Column("name", String(512), nullable=False),
    Column("payload", Text),
    Column("created_at", Double, nullable=False),
    # Set when a wait_for_event consumed it; each event reaches exactly one wait.
    Column("consumed_by", String(512)),
    Index("zart_events_lookup_idx", "execution_id", "name"),
)

schema_version = Table(
    "zart_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Double, nullable=False),
)


def _v1(conn: Connection) -> None:
    for table in (executions, steps, events):
        table.create(conn, checkfirst=True)


# Version 2: operations (zart._ops). Who retried / restarted / re-ran what, and when.
audit = Table(
    "zart_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(255), nullable=False),
    # retry-step | restart | rerun-from
    Column("action", String(32), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("created_at", Double, nullable=False),
    # JSON object: the step, the new id, whether the input changed, the status before...
    Column("details", Text),
    Index("zart_audit_execution_idx", "execution_id", "created_at"),
)


# Version 2 also: recurring executions (zart._ops.schedules). One row per schedule name.
schedules = Table(
    "zart_schedules",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("durable_name", String(255), nullable=False),
    Column("cron", String(255)),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("every_seconds", Double),
    Column("input", Text, nullable=False),
    # skip: no new occurrence while the previous one is still active | always
    Column("overlap", String(16), nullable=False, default="skip"),
    Column("next_run_at", Double, nullable=False),
    # Version 8: how many missed occurrences to create one by one after the scheduler
    # was down (0: they collapse into one late run).
    Column("backfill", Integer, nullable=False, default=0, server_default="0"),
    Column("last_run_at", Double),
    Column("last_execution_id", String(255)),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("zart_schedules_due_idx", "next_run_at"),
)


def _v2(conn: Connection) -> None:
    audit.create(conn, checkfirst=True)
    schedules.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    # executions.recoveries (new databases get it from v1's CREATE TABLE already).
    columns = {c["name"] for c in inspect(conn).get_columns("zart_executions")}
    if "recoveries" not in columns:
        conn.execute(
            text("ALTER TABLE zart_executions ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0")
        )


# Version 4: listing newest first, by status or not, stays an index scan at 100,000s
# of executions (the web view's list pages on the server).
_LISTING_INDEXES = (
    Index("zart_executions_created_idx", executions.c.created_at),
    Index("zart_executions_status_created_idx", executions.c.status, executions.c.created_at),
)


def _v4(conn: Connection) -> None:
    for index in _LISTING_INDEXES:
        index.create(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    # executions.version and .ran_versions (new databases get them from v1 already).
    columns = {c["name"] for c in inspect(conn).get_columns("zart_executions")}
    for name, kind in (("version", "VARCHAR(64)"), ("ran_versions", "TEXT")):
        if name not in columns:
            conn.execute(text(f"ALTER TABLE zart_executions ADD COLUMN {name} {kind}"))


# Version 6: queues with concurrency and rate limits (zart.Queue, _store/_queues.py).
# The limits of each queue, written by the processes that define it.
queues = Table(
    "zart_queues",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("concurrency", Integer),
    Column("worker_concurrency", Integer),
    Column("rate_count", Integer),
    Column("rate_per", Double),
    Column("priority", Integer, nullable=False, default=0),
    Column("partitioned", Integer, nullable=False, default=0),
    Column("updated_at", Double, nullable=False),
)

# Version 6 also: dedup and debounce keys. One row per (kind, durable, key): the primary
# key makes two concurrent submits with one key create one execution.
dedup = Table(
    "zart_dedup",
    metadata,
    Column("kind", String(16), primary_key=True),  # dedup | debounce
    Column("scope", String(255), primary_key=True),  # the durable function's name
    Column("key", String(512), primary_key=True),
    Column("execution_id", String(255), nullable=False),
    # dedup: seconds the key stays reserved after its execution finished
    Column("ttl", Double),
    Column("created_at", Double, nullable=False),
)

QUEUE_INDEXES = (
    Index("zart_executions_queue_idx", executions.c.queue, executions.c.status),
    Index("zart_executions_queue_started_idx", executions.c.queue, executions.c.started_at),
)


def _v6(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("zart_executions")}
    added = (("queue", "VARCHAR(255)"), ("priority", "INTEGER"), ("partition_key", "VARCHAR(255)"))
    for name, kind in added:
        if name not in columns:
            conn.execute(text(f"ALTER TABLE zart_executions ADD COLUMN {name} {kind}"))
    for table in (queues, dedup):
        table.create(conn, checkfirst=True)
    for index in QUEUE_INDEXES:
        index.create(conn, checkfirst=True)


# Version 8: retention (zart gc) walks execution trees by parent: a partial index holds
# only child executions, so it costs top-level ones nothing. And schedules.backfill.
PARENT_INDEX = Index(
    "zart_executions_parent_idx",
    executions.c.parent_id,
    postgresql_where=executions.c.parent_id.is_not(None),
    sqlite_where=executions.c.parent_id.is_not(None),
)


def _v8(conn: Connection) -> None:
    PARENT_INDEX.create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns("zart_schedules")}
    if "backfill" not in columns:
        conn.execute(
            text("ALTER TABLE zart_schedules ADD COLUMN backfill INTEGER NOT NULL DEFAULT 0")
        )


# Version 7: pause rules (zart pause / resume). A rule holds every execution it
# matches (all of its set scopes: one execution, a durable, a step-name glob) before
# its next new step; the engine caches them per process (zart._store._pauses).
pause_rules = Table(
    "zart_pause_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(255)),
    Column("durable_name", String(255)),
    Column("step_pattern", String(512)),
    Column("reason", Text),
    Column("actor", String(255), nullable=False),
    Column("created_at", Double, nullable=False),
    sqlite_autoincrement=True,  # a removed rule's id is never reused
)


def _v7(conn: Connection) -> None:
    pause_rules.create(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns("zart_executions")}
    if "paused_by" not in columns:
        conn.execute(text("ALTER TABLE zart_executions ADD COLUMN paused_by INTEGER"))


# Append-only: a released version's migration is never edited, a new one is added.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (4, _v4),
    (5, _v5),
    (6, _v6),
    (7, _v7),
    (8, _v8),
]
LATEST_VERSION = max(number for number, _ in MIGRATIONS)


def current_version(conn: Connection) -> int:
    """The version of zart's schema in this database; 0 for a database without it."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    found = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc()))
    row = found.first()
    return int(row[0]) if row else 0


def applied_versions(conn: Connection) -> set[int]:
    """The numbers of the migrations applied to this database (empty without a schema)."""
    if not inspect(conn).has_table(schema_version.name):
        return set()
    return {int(v) for v in conn.execute(select(schema_version.c.version)).scalars()}


def foreign_tables(conn: Connection) -> list[str]:
    """zart-named tables in a database that has no zart schema version: zart did not
    create them (another tool, or a damaged database), so it must not write to them."""
    names = inspect(conn).get_table_names()
    if schema_version.name in names:
        return []
    return sorted(n for n in names if n.startswith("zart_"))


def missing_columns(conn: Connection) -> dict[str, list[str]]:
    """Columns zart needs that its tables lack (a schema changed by hand, or foreign)."""
    found = inspect(conn)
    missing: dict[str, list[str]] = {}
    for table in metadata.sorted_tables:
        if not found.has_table(table.name):
            missing[table.name] = ["(the whole table)"]
            continue
        have = {c["name"] for c in found.get_columns(table.name)}
        lacking = [c.name for c in table.columns if c.name not in have]
        if lacking:
            missing[table.name] = lacking
    return missing
