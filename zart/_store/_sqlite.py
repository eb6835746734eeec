"""SQLite backend: the zero-set-up default.

WAL mode lets readers run beside the one writer; ``BEGIN IMMEDIATE`` takes the
write lock at the start of a write transaction, so two processes never both
read "unclaimed" and then both claim. ``synchronous=FULL`` keeps every
committed checkpoint across a power loss, not just a process crash.

A locked database (another process holding the write lock past ``busy_timeout``),
a full disk or an I/O error is transient: :meth:`Database.run` retries it for
``retry_seconds`` before the caller gets DatabaseUnavailableError. Both can be set
in the URL: ``sqlite:///app.db?busy_timeout=5000&retry_seconds=10`` (milliseconds,
seconds).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, literal_column
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from zart._errors import DatabaseUnavailableError, StorageError, ZartError
from zart._store._database import Database, url_option
from zart._store._errors import driver_error
from zart._store._queries import LEASE_HELD_SQL
from zart._store._records import StepRecord

BUSY_TIMEOUT_MS = 30_000
RETRY_SECONDS = 10.0
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_HEADER = b"SQLite format 3\x00"
# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL (primary result codes).
_TRANSIENT_CODES = frozenset({5, 6, 10, 13})
_TRANSIENT_WORDS = ("database is locked", "database table is locked", "disk is full", "i/o error")


class SQLiteDatabase(Database):
    """SQLite: one file, WAL, a busy timeout, bounded retries of locked/full/IO errors."""

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
        parsed, busy_ms = url_option(parsed, "busy_timeout", BUSY_TIMEOUT_MS)
        parsed, self.retry_seconds = url_option(parsed, "retry_seconds", RETRY_SECONDS)
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _check_file(Path(database).expanduser().resolve())
        engine = create_engine(
            parsed,
            poolclass=QueuePool,
            pool_size=4,
            max_overflow=8,
            connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below); the driver must not.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if cur.execute("PRAGMA page_count").fetchone()[0] == 0:
                # A new file: pages freed by `zart gc` can be handed back to the file
                # system with `PRAGMA incremental_vacuum` (settable only before any
                # table exists). See docs/operations.md, "Retention".
                cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.info.get("zart_write", True)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        super().__init__(engine, url)

    def write_checkpoint(self, token: str, record: StepRecord) -> bool:
        """The checkpoint write, the one statement on every step's path.

        The fenced upsert, sent straight to the sqlite3 connection SQLAlchemy's pool
        gave this thread: a single statement in autocommit mode is its own
        transaction (one fsync'd commit, no BEGIN/COMMIT round trips), and skipping
        the Core execution machinery saves ~60 us a step — a third of the step's
        total overhead. Through :meth:`run`, so a locked or full database is retried
        (an upsert is safe to repeat) and never reaches the step as its own failure.
        """
        # Database.run's fast path, inline (no closure on every step's path).
        state = self._state
        if getattr(state, "depth", 0):
            return self._write_checkpoint_once(token, record)
        state.depth = 1
        try:
            return self._write_checkpoint_once(token, record)
        except Exception as exc:
            retry = lambda: self._write_checkpoint_once(token, record)  # noqa: E731
            return self._recover("save_step", retry, self.retry_seconds, exc)
        finally:
            state.depth = 0

    def _write_checkpoint_once(self, token: str, record: StepRecord) -> bool:
        if not self._migrated:
            self.ensure_schema()
        raw = self.conn().connection.dbapi_connection  # inlined _raw(): every step's path
        assert raw is not None
        cursor = raw.execute(self.checkpoint_sql, record.as_params(token))
        return bool(cursor.rowcount > 0)

    def write_batch(self, statements: list[tuple[str, dict[str, Any]]]) -> tuple[list[int], bool]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the raw connection: one fsync for the
        whole batch (see :meth:`Database.write_batch`)."""
        tries = [0]

        def once() -> list[int]:
            tries[0] = self.attempt
            raw = self._raw()
            if len(statements) == 1:
                # Alone: autocommit, the statement is its own transaction (as a lone
                # checkpoint is, see write_checkpoint).
                sql, params = statements[0]
                cursor = raw.execute(sql, params)
                return [cursor.rowcount if cursor.description is None else len(cursor.fetchall())]
            raw.execute("BEGIN IMMEDIATE")
            try:
                counts = []
                for sql, params in statements:
                    cursor = raw.execute(sql, params)
                    rows = cursor.rowcount if cursor.description is None else len(cursor.fetchall())
                    counts.append(rows)
                raw.execute("COMMIT")
                return counts
            except BaseException:
                if raw.in_transaction:
                    raw.rollback()  # nothing of the batch is left half-applied
                raise

        return self.run("group commit", once), tries[0] > 0

    def lease_held(self, execution_id: str, token: str) -> bool:
        """One indexed read on the raw connection (a few microseconds)."""
        params = {"execution_id": execution_id, "token": token}
        return self.run(
            "lease check",
            lambda: self._raw().execute(LEASE_HELD_SQL, params).fetchone() is not None,
        )

    def _raw(self) -> Any:
        """This thread's sqlite3 connection, for the statements on every step's path."""
        if not self._migrated:
            self.ensure_schema()
        raw = self.conn().connection.dbapi_connection
        assert raw is not None
        return raw

    def is_transient(self, exc: BaseException) -> bool:
        found = driver_error(exc)
        if not isinstance(found, sqlite3.OperationalError):
            return False
        code = getattr(found, "sqlite_errorcode", None)
        if code is not None:
            return (code & 0xFF) in _TRANSIENT_CODES
        text = str(found).lower()
        return any(word in text for word in _TRANSIENT_WORDS)

    def now_sql(self) -> Any:
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)")


def _check_file(path: Path) -> None:
    """Refuse, before anything is written, a file zart could not use: in a missing
    directory, not an SQLite database, or not writable by this process."""
    parent = path.parent
    if not parent.is_dir():
        raise DatabaseUnavailableError(
            f"cannot open SQLite database {str(path)!r}: directory {str(parent)!r} does not exist"
        )
    if path.exists():
        try:
            with open(path, "rb") as handle:
                header = handle.read(len(_HEADER))
        except OSError as exc:
            raise StorageError(
                f"cannot read the SQLite database {str(path)!r}: {exc.strerror}; make it "
                "readable and writable for this process"
            ) from None
        if header and header != _HEADER:
            raise StorageError(
                f"{str(path)!r} is not an SQLite database (it starts with {header[:8]!r}); "
                "zart will not write to it: point the database URL at another file"
            )
        if header:
            _check_tables(path)
    target = path if path.exists() else parent
    if not _writable(target, is_dir=not path.exists()):
        raise StorageError(
            f"the SQLite database {str(path)!r} is read-only for this process: zart must "
            f"write checkpoints to it and its journal files beside it in {str(parent)!r}; "
            "make both writable, or use another database"
        )


def _check_tables(path: Path) -> None:
    """Refuse zart-named tables that zart did not create, read-only and before the first
    connection switches the file to WAL (itself a write)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.Error:
        return  # locked or unreadable now: the check at first use still applies
    foreign = sorted(n for n in names if n.startswith("zart_") and n != "zart_schema_version")
    if foreign and "zart_schema_version" not in names:
        raise StorageError(
            f"the database at {str(path)!r} has tables named like zart's ({', '.join(foreign)}) "
            "but no zart schema version, so zart did not create them and will not write "
            "to them: use another database, or drop those tables"
        )


def _writable(target: Path, *, is_dir: bool) -> bool:
    """Can this process write ``target`` (a file, or files in a directory)? Checked by
    opening, not with os.access: it is the real permission check, for root too."""
    if is_dir:
        return os.access(target, os.W_OK | os.X_OK)
    try:
        with open(target, "ab"):
            pass
    except OSError:
        return False
    return os.access(target.parent, os.W_OK | os.X_OK)
