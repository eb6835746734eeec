"""SQLite backend: the zero-set-up default.

WAL mode lets readers run beside the one writer; ``BEGIN IMMEDIATE`` takes the
write lock at the start of a write transaction, so two processes never both
read "unclaimed" and then both claim. ``synchronous=FULL`` keeps every
committed checkpoint across a power loss, not just a process crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, literal_column
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from zart._errors import DatabaseUnavailableError, ZartError
from zart._store._database import Database
from zart._store._records import StepRecord

BUSY_TIMEOUT_MS = 30_000
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SQLiteDatabase(Database):
    """SQLite: one file, WAL, a busy timeout; no retries (a local file has no outages)."""

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        parsed = make_url(url)
        # ?synchronous=NORMAL trades durability across a power loss (not across a
        # process crash) for speed: commits stop waiting for fsync.
        if "synchronous" in parsed.query:
            synchronous = str(parsed.query["synchronous"]).upper()
            parsed = parsed.difference_update_query(["synchronous"])
        if synchronous not in _SYNCHRONOUS:
            raise ZartError(
                f"synchronous={synchronous!r} in {url!r} is not one of {', '.join(_SYNCHRONOUS)}"
            )
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).expanduser().resolve().parent
            if not parent.is_dir():
                raise DatabaseUnavailableError(
                    f"cannot open SQLite database {database!r}: directory {str(parent)!r} "
                    "does not exist"
                )
        engine = create_engine(
            parsed,
            poolclass=QueuePool,
            pool_size=4,
            max_overflow=8,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below); the driver must not.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.info.get("zart_write", True)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        super().__init__(engine, url)

    def write_checkpoint(self, token: str, record: StepRecord) -> bool:
        """The checkpoint write, the one statement on every step's path.

        The fenced upsert, sent straight to the sqlite3
        connection SQLAlchemy's pool gave this thread: a single statement in
        autocommit mode is its own transaction (one fsync'd commit, no
        BEGIN/COMMIT round trips), and skipping the Core execution machinery
        saves ~60 us a step — a third of the step's total overhead.
        """
        if not self._migrated:
            self.ensure_schema()
        raw = self.conn().connection.dbapi_connection
        assert raw is not None
        cursor = raw.execute(self.checkpoint_sql, record.as_params(token))
        return bool(cursor.rowcount > 0)

    def now_sql(self) -> Any:
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)")
