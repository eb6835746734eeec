"""A small durable app for the crash-resume and race tests, run in real child processes.

Child side (``python -m crash_app ...``, environment from the ``child_env`` fixture)::

    python -m crash_app run --id ID --n N [--seed S] [--delay SECONDS] [--wait-go]
                            [--submit-only]
    python -m crash_app worker            # app.worker().run(until_idle=True)

``crash-test-loop`` is a durable loop of N steps ``step-0`` .. ``step-<N-1>``. Each step
body appends ``"<execution_id> <step-name>\\n"`` to the side-effect log ``$CRASH_LOG``
(O_APPEND + fsync, so the log shows exactly which bodies ran, even across SIGKILL) and
returns a typed ``Part``; the execution returns a typed ``Summary``.

``$CRASH_AT=<point>[:<step-name>]`` makes the child SIGKILL itself at a precise moment:

==================  =====================================================================
``claim``           the UPDATE taking the lease (or the INSERT creating the execution
                    already claimed, as ``app.run`` does) is about to run
``before-effect``   in the step body, before its side effect
``after-effect``    in the step body, after its side effect (no checkpoint written yet)
``insert``          the step's checkpoint INSERT is about to be sent to the database
``commit``          the checkpoint INSERT has run; its transaction is about to commit
``after-commit``    the durable body got the step's result back: checkpoint committed
``finish``          every step committed; the UPDATE storing the result is about to run
==================  =====================================================================

The database-level points hook the driver connections of ``app.ops_store.db.engine``, so
they see every statement whether zart sends it through SQLAlchemy or straight to the
driver. SQLite: the sqlite3 trace callback, and the sqlite3 commit hook (runs inside
the commit, after the transaction's writes and before they are committed). PostgreSQL:
a psycopg cursor factory, and for ``commit`` a row trigger on ``zart_steps`` that keeps
the checkpoint statement (row written, transaction open) waiting in the server while
the process is killed; the server then aborts it.

Before dying the child prints ``CRASH <point> <step>``. Other stdout lines:
``WAITING`` (``--wait-go``: ready, blocked until a line arrives on stdin),
``READY <unix time>`` (about to call ``app.run``), ``RAN <step> <unix time>`` (a step
body ran here), ``FINISHED <unix time>`` and ``RESULT <repr>`` (``app.run`` returned this).

The bottom of this file holds the parent-side helpers the tests use (``Child``,
``read_log``, ``reference_result``); nothing here is part of zart.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zart
from zart import durable, step

from childproc import ChildProcess

DURABLE_NAME = "crash-test-loop"
POINTS = ("claim", "before-effect", "after-effect", "insert", "commit", "after-commit", "finish")


@dataclass
class Job:
    tag: str  # the execution id: lets every step log which execution ran it
    n: int
    seed: int = 0
    delay: float = 0.0  # seconds per step: half before the side effect, half after


@dataclass
class Part:
    index: int
    value: int
    label: str


@dataclass
class Summary:
    tag: str
    count: int
    total: int
    parts: list[Part]


def part_value(tag: str, seed: int, index: int) -> int:
    return int(hashlib.sha256(f"{tag}:{seed}:{index}".encode()).hexdigest()[:8], 16)


# ---------------------------------------------------------------------------- kill points


class _CrashPlan:
    point: str | None = None
    target: str | None = None
    # The next checkpoint write (insert/commit) or result write (finish) is the kill point.
    armed = False
    # sqlite3 / DBAPI connections whose next commit is the kill point.
    commit_pending: set[int] = set()
    keep_alive: list[Any] = []  # ctypes callbacks must outlive the connections


_plan = _CrashPlan()


def die() -> None:
    print(f"CRASH {_plan.point} {_plan.target or '-'}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached


def maybe_die(point: str, name: str | None = None) -> None:
    if _plan.point == point and _plan.target == name:
        die()


def record_effect(tag: str, name: str) -> None:
    path = os.environ.get("CRASH_LOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{tag} {name}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def on_statement(sql: str, conn_key: int) -> None:
    """Every statement a hooked connection is about to run."""
    point = _plan.point
    words = " ".join(sql.split()).lower()
    if words.startswith("insert into zart_steps"):
        if _plan.armed and point == "insert":
            die()
        if _plan.armed and point == "commit":
            _plan.armed = False
            _plan.commit_pending.add(conn_key)
    elif words.startswith("insert into zart_executions"):
        if point == "claim" and "lease_owner" in words:
            die()  # run/start create the execution already claimed: this is the claim
    elif words.startswith("update zart_executions set"):
        assignments = words.split(" where ", 1)[0]
        if point == "claim" and "attempts" in assignments:
            die()
        if point == "finish" and _plan.armed and "finished_at" in assignments:
            die()


def on_commit(conn_key: int) -> None:
    if conn_key in _plan.commit_pending:
        die()


def _sqlite_handle(dbapi_conn: Any, expected_path: str) -> int:
    """The ``sqlite3 *`` behind a Python sqlite3 connection (first field after PyObject_HEAD)."""
    import _sqlite3

    lib = ctypes.CDLL(_sqlite3.__file__)  # resolves symbols of the libsqlite3 it uses
    lib.sqlite3_db_filename.restype = ctypes.c_char_p
    lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    handle = ctypes.c_void_p.from_address(id(dbapi_conn) + object.__basicsize__).value
    name = lib.sqlite3_db_filename(handle, b"main") if handle else None
    if not name or os.path.realpath(name.decode()) != os.path.realpath(expected_path):
        raise RuntimeError("crash_app: cannot find the sqlite3 handle to install a commit hook")
    return int(handle)  # type: ignore[arg-type]


def _hook_sqlite(engine: Any) -> None:
    import _sqlite3

    from sqlalchemy import event

    lib = ctypes.CDLL(_sqlite3.__file__)
    hook_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
    lib.sqlite3_commit_hook.restype = ctypes.c_void_p
    lib.sqlite3_commit_hook.argtypes = [ctypes.c_void_p, hook_type, ctypes.c_void_p]
    path = engine.url.database

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        key = id(dbapi_conn)
        dbapi_conn.set_trace_callback(lambda sql: on_statement(sql, key))

        def commit_hook(_data: Any) -> int:
            on_commit(key)
            return 0  # 0: let the commit proceed

        callback = hook_type(commit_hook)
        _plan.keep_alive.append(callback)
        lib.sqlite3_commit_hook(_sqlite_handle(dbapi_conn, path), callback, None)

    event.listen(engine, "connect", on_connect)


# PostgreSQL: a row trigger that, in a session that asked for it, keeps the checkpoint
# statement running (its row written, its transaction not committed) until the process
# is dead; it can never commit (it raises after the sleep).
_PG_HOLD_DDL = [
    "SELECT pg_advisory_xact_lock(72176)",
    """CREATE OR REPLACE FUNCTION crash_app_hold() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('crash_app.hold', true) = 'on' THEN
            PERFORM pg_sleep(30);
            RAISE EXCEPTION 'crash_app: the process holding this checkpoint should be dead';
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE TRIGGER crash_app_hold AFTER INSERT OR UPDATE ON zart_steps
    FOR EACH ROW EXECUTE FUNCTION crash_app_hold()""",
]


def _hook_postgres(app: zart.Zart, engine: Any) -> None:
    import psycopg
    from sqlalchemy import event

    def die_once_held(backend_pid: int) -> None:
        """Die as soon as the server is inside the trigger's sleep for that session."""
        deadline = time.monotonic() + 10
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                held = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %(pid)s AND wait_event = 'PgSleep'",
                    {"pid": backend_pid},
                ).first()
                conn.rollback()
                if held is not None:
                    die()
                time.sleep(0.005)
        print("crash_app: the checkpoint statement never reached the trigger", file=sys.stderr)
        os._exit(3)

    class CrashCursor(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            sql = query if isinstance(query, str) else str(query)
            key = id(self.connection)
            on_statement(sql, key)
            if key in _plan.commit_pending:
                # Written, not committed: the server holds the statement in the trigger
                # and notices within 20 ms that its client is gone, then aborts it.
                super().execute(
                    "SELECT set_config('crash_app.hold', 'on', false), "
                    "set_config('client_connection_check_interval', '20', false)"
                )
                pid = self.connection.info.backend_pid
                threading.Thread(target=die_once_held, args=(pid,), daemon=True).start()
            return super().execute(query, params, **kwargs)

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.cursor_factory = CrashCursor

    event.listen(engine, "connect", on_connect)
    if _plan.point == "commit":
        app.ops_store.ensure_schema()
        with engine.begin() as conn:
            for ddl in _PG_HOLD_DDL:
                conn.exec_driver_sql(ddl)


def install_crash_plan(app: zart.Zart, spec: str | None) -> None:
    if not spec:
        return
    point, _, target = spec.partition(":")
    if point not in POINTS:
        raise SystemExit(f"crash_app: unknown CRASH_AT point {point!r} (one of {POINTS})")
    _plan.point, _plan.target = point, target or None
    if point in ("claim", "insert", "commit", "finish"):
        engine = app.ops_store.db.engine  # created, not yet connected: hooks see every connection
        if engine.dialect.name == "sqlite":
            _hook_sqlite(engine)
        else:
            _hook_postgres(app, engine)


# ---------------------------------------------------------------------------- the app


# Every kill of a run counts as an attempt of the step it was in (or about to start):
# tests that kill runs at random moments raise the limit (CRASH_MAX_ATTEMPTS).
@step(
    "step-{index}",
    retry=zart.RetryPolicy(max_attempts=int(os.environ.get("CRASH_MAX_ATTEMPTS", "3"))),
)
async def part_step(tag: str, index: int, seed: int, delay: float) -> Part:
    name = f"step-{index}"
    maybe_die("before-effect", name)
    if delay:
        await asyncio.sleep(delay / 2)
    record_effect(tag, name)
    print(f"RAN {name} {time.time():.6f}", flush=True)
    maybe_die("after-effect", name)
    if _plan.point in ("insert", "commit") and _plan.target == name:
        _plan.armed = True  # the next checkpoint write is this step's
    if delay:
        await asyncio.sleep(delay / 2)
    value = part_value(tag, seed, index)
    return Part(index=index, value=value, label=f"{tag}/{index}/{value % 97}")


@durable(DURABLE_NAME)
async def crash_loop(job: Job) -> Summary:
    parts: list[Part] = []
    for i in range(job.n):
        part = await part_step(job.tag, i, job.seed, job.delay)
        if type(part) is not Part:  # replayed checkpoints must come back typed
            raise TypeError(f"step-{i} returned {type(part).__name__}, not Part")
        maybe_die("after-commit", f"step-{i}")
        parts.append(part)
    if _plan.point == "finish":
        _plan.armed = True
    return Summary(tag=job.tag, count=len(parts), total=sum(p.value for p in parts), parts=parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash_app")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--id", required=True)
    run.add_argument("--n", type=int, required=True)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--delay", type=float, default=0.0)
    run.add_argument("--wait-go", action="store_true")
    run.add_argument("--submit-only", action="store_true")  # create it pending, run nothing
    worker = sub.add_parser("worker")
    worker.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args(argv)

    app = zart.Zart(lease_seconds=float(os.environ.get("LEASE_SECONDS", "30")))
    install_crash_plan(app, os.environ.get("CRASH_AT"))
    try:
        if args.command == "worker":
            done = app.worker(poll_interval=args.poll_interval).run(until_idle=True)
            print(f"WORKER {done}", flush=True)
            return 0
        job = Job(tag=args.id, n=args.n, seed=args.seed, delay=args.delay)
        # Import the driver, connect, check the schema: READY marks the moment `run` is
        # called, with process start-up behind it.
        app.ops_store.ensure_schema()
        if args.submit_only:
            app.submit(crash_loop, job, execution_id=args.id)
            print("SUBMITTED", flush=True)
            return 0
        if args.wait_go:
            print("WAITING", flush=True)
            sys.stdin.readline()
        print(f"READY {time.time():.6f}", flush=True)
        result = app.run(crash_loop, job, execution_id=args.id)
        print(f"FINISHED {time.time():.6f}", flush=True)
        print(f"RESULT {result!r}", flush=True)
        return 0
    finally:
        app.close()


# ---------------------------------------------------------------------------- parent side


class Child(ChildProcess):
    """A ``python -m crash_app ...`` (or another module's) child process."""

    @property
    def ran(self) -> list[tuple[str, float]]:
        """(step, unix time) of every step body that ran in this child."""
        out = []
        for line in self.lines:
            if line.startswith("RAN "):
                _, name, when = line.split()
                out.append((name, float(when)))
        return out


def spawn(
    env: Mapping[str, str],
    args: Sequence[str],
    tmp_path: Path,
    *,
    extra: Mapping[str, str] | None = None,
    module: str = "crash_app",
    stdin: bool = False,
) -> Child:
    full_env = {**env, **(extra or {})}
    stderr_path = tmp_path / f"child-{time.monotonic_ns()}.stderr"
    return Child(full_env, args, stderr_path=stderr_path, module=module, stdin=stdin)


def run_args(execution_id: str, n: int, *, seed: int = 0, delay: float = 0.0) -> list[str]:
    return ["run", "--id", execution_id, "--n", str(n), "--seed", str(seed), "--delay", str(delay)]


def read_log(path: Path) -> list[tuple[str, str]]:
    """The side-effect log as (execution id, step name) pairs, in the order they ran."""
    if not path.exists():
        return []
    pairs = []
    for line in path.read_text().splitlines():
        eid, name = line.split(" ")
        pairs.append((eid, name))
    return pairs


def reference_result(tmp_path: Path, execution_id: str, n: int, *, seed: int = 0) -> Summary:
    """The result of an uninterrupted run, computed here in a separate, clean database."""
    url = f"sqlite:///{tmp_path / f'reference-{execution_id}.db'}"
    with zart.Zart(url) as ref:
        result: Summary = ref.run(
            crash_loop, Job(tag=execution_id, n=n, seed=seed), execution_id=execution_id
        )
    return result


def settle(url: str, timeout: float = 10.0) -> None:
    """Wait until the database runs no statement of a killed client any more.

    A PostgreSQL server finishes (and, in autocommit, may commit) a statement whose client
    died while it ran; count checkpoints only after that. Nothing to wait for with SQLite:
    there the process that dies is the one that writes.
    """
    if not url.startswith("postgresql"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    busy = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'"
    )
    try:
        deadline = time.monotonic() + timeout
        with engine.connect() as conn:
            while conn.execute(busy).scalar_one() and time.monotonic() < deadline:
                conn.rollback()
                time.sleep(0.005)
    finally:
        engine.dispose()


def completed_steps(app: zart.Zart, execution_id: str) -> set[str]:
    """The steps of an execution that have a completed checkpoint (none if it does not exist)."""
    try:
        return {s.name for s in app.steps(execution_id) if s.status == "completed"}
    except zart.ExecutionNotFoundError:
        return set()


def step_names(n: int) -> list[str]:
    return [f"step-{i}" for i in range(n)]


def final_state(app: zart.Zart, execution_id: str) -> dict[str, Any]:
    """What a finished execution looks like in the database, for one equality assertion."""
    st = app.status(execution_id)
    steps = app.steps(execution_id)
    return {
        "status": st.status,
        "lease_owner": st.lease_owner,
        "steps": [(s.name, s.seq, s.status, s.attempts) for s in steps],
    }


def expected_final_state(n: int, interrupted: int | None = None) -> dict[str, Any]:
    """``interrupted``: the step a takeover found unsettled first; the attempt that died
    with the killed process is counted, so it completes on attempt 2."""
    return {
        "status": "completed",
        "lease_owner": None,
        "steps": [
            (f"step-{i}", i + 1, "completed", 2 if i == interrupted else 1) for i in range(n)
        ],
    }


def first_unsettled(committed: set[str], n: int) -> int | None:
    """Index of the first step without a committed checkpoint (None: all committed)."""
    return next((i for i in range(n) if f"step-{i}" not in committed), None)


if __name__ == "__main__":
    sys.exit(main())
