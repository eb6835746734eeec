"""PostgreSQL-specific behaviour: claims, leases, fencing, migrations, connection loss.

The behavioural suite runs on both backends through the ``db_url`` fixture; the tests
here exercise what only PostgreSQL has: many processes claiming with
``FOR UPDATE SKIP LOCKED``, the advisory-locked migration, fencing of a worker frozen
past its lease (SIGSTOP / SIGCONT), and riding out dropped connections and outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import ROOT, _reset_pg
from sqlalchemy.exc import OperationalError

import zart
from zart import DatabaseUnavailableError, ZartError, durable, step
from zart._store import STEP_COMPLETED, Database, JournalStore, OpsStore, StepRecord, _schema
from zart._store._postgres import MIGRATION_LOCK_KEY, PostgresDatabase

from fault_worker_app import SIDE_TABLES_SQL, WorkerProcess, fence_job, side_dsn


class PostgresStorage(JournalStore):
    """The engine's journal store on a PostgreSQL database, with the database (connections,
    schema, retries) and the operations queries reachable from one object, for tests."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(PostgresDatabase(url, **options))
        self.ops = OpsStore(self.db)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def list_executions(self, *args: Any, **kwargs: Any) -> Any:
        return self.ops.list_executions(*args, **kwargs)


pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A PostgreSQL database with no zart tables (and no side tables) in it."""
    _reset_pg(pg_database)
    with psycopg.connect(side_dsn(pg_database), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS fault_runs, fault_step_writes")
    return pg_database


@pytest.fixture
def storage(pg_url: str) -> Any:
    st = PostgresStorage(pg_url)
    st.ensure_schema()
    yield st
    st.close()


def admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(side_dsn(url), autocommit=True, application_name="zart-test-admin")


def terminate_zart_connections(url: str) -> int:
    with admin(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'zart'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def tokens(prefix: str) -> Any:
    counter = iter(range(1_000_000))
    return lambda: f"{prefix}-{next(counter)}"


def step_record(eid: str, name: str, output: str | None = "1", **kw: Any) -> StepRecord:
    fields: dict[str, Any] = dict(
        execution_id=eid,
        step_name=name,
        seq=1,
        kind="step",
        status=STEP_COMPLETED,
        fingerprint=None,
        output=output,
        error=None,
        attempts=1,
        started_at=None,
        finished_at=None,
    )
    fields.update(kw)
    return StepRecord(**fields)


# --------------------------------------------------------------------------- URL, clock, SQL


def test_url_forms(pg_url: str) -> None:
    plain = PostgresStorage(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    assert plain.engine.dialect.driver == "psycopg"
    plain.close()
    with pytest.raises(ZartError, match="psycopg"):
        PostgresStorage(pg_url.replace("postgresql+psycopg://", "postgresql+asyncpg://"))
    secret = PostgresStorage("postgresql+psycopg://me:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in secret.url
    secret.close()


def test_connections_are_named_and_time_limited_in_transactions(storage: PostgresStorage) -> None:
    with storage.db.tx(write=False) as conn:
        name = conn.exec_driver_sql("SHOW application_name").scalar_one()
        idle = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar_one()
    assert name == "zart"
    assert idle == "30s"


def test_leases_use_the_database_clock(storage: PostgresStorage) -> None:
    with storage.db.tx(write=False) as conn:
        db_now = storage.db.db_now(conn)
    assert isinstance(db_now, float)
    assert abs(db_now - time.time()) < 5  # same machine here; the point is where it is read
    storage.create_execution("e1", "d", "{}")
    claimed = storage.try_claim("e1", "tok", 7.5)
    assert claimed is not None and claimed.lease_expires_at is not None
    assert abs(claimed.lease_expires_at - (db_now + 7.5)) < 5


def test_checkpoint_write_with_nulls_and_doubles_is_fenced(storage: PostgresStorage) -> None:
    storage.create_execution("e1", "d", "{}")
    assert storage.try_claim("e1", "tok-1", 30) is not None
    full = step_record(
        "e1", "a", output='{"x": 1.5}', started_at=1_700_000_000.123456, finished_at=1.0e10 + 0.5
    )
    empty = step_record("e1", "b", output=None, fingerprint=None, error=None)
    assert storage.save_step("tok-1", full)
    assert storage.save_step("tok-1", empty)
    loaded = storage.load_steps("e1")
    assert loaded["a"] == full
    assert loaded["b"] == empty
    # Upsert: the same key again replaces the row.
    assert storage.save_step("tok-1", step_record("e1", "a", output="2", attempts=3))
    assert storage.load_steps("e1")["a"].attempts == 3
    # Not the lease holder, or not running: nothing is written.
    assert not storage.save_step("someone-else", step_record("e1", "c"))
    assert storage.finish_execution("e1", "tok-1", "completed", "1", None)
    assert not storage.save_step("tok-1", step_record("e1", "d"))
    assert set(storage.load_steps("e1")) == {"a", "b"}


def test_checkpoint_on_a_connection_left_in_a_transaction(storage: PostgresStorage) -> None:
    storage.create_execution("e1", "d", "{}")
    assert storage.try_claim("e1", "tok", 30) is not None
    raw = storage.db.conn().connection.dbapi_connection
    assert raw is not None
    raw.execute("SELECT 1")  # opens a transaction, as the pool's pre-ping leaves one
    assert storage.save_step("tok", step_record("e1", "s0"))
    assert "s0" in storage.load_steps("e1")


def test_takeover_fences_the_previous_owner(pg_url: str) -> None:
    first, second = PostgresStorage(pg_url), PostgresStorage(pg_url)
    try:
        first.create_execution("e1", "d", "{}")
        assert first.try_claim("e1", "old", 0.3) is not None
        assert first.save_step("old", step_record("e1", "s0", output='"old"'))
        assert second.claim_runnable(tokens("new"), ["d"], 5, 30) == []  # lease still live
        time.sleep(0.5)
        [(rec, new)] = second.claim_runnable(tokens("new"), ["d"], 5, 30)
        assert rec.id == "e1" and rec.lease_owner == new and rec.attempts == 2
        # The old owner's writes are refused from now on.
        assert not first.save_step("old", step_record("e1", "s1", output='"late"'))
        assert not first.finish_execution("e1", "old", "completed", '"old result"', None)
        assert first.renew_leases(["old"], 30) == {"old"}
        assert not first.release("e1", "old")
        assert not first.suspend_execution("e1", "old", "sleeping", time.time() + 60)
        # The new owner's are not.
        assert second.renew_leases([new], 30) == set()
        assert second.save_step(new, step_record("e1", "s1", output='"new"'))
        assert second.finish_execution("e1", new, "completed", '"new result"', None)
        final = first.get_execution("e1")
        assert final is not None
        assert (final.status, final.result, final.lease_owner) == (
            "completed",
            '"new result"',
            None,
        )
        assert first.load_steps("e1")["s1"].output == '"new"'
    finally:
        first.close()
        second.close()


def test_checkpoint_in_flight_holds_off_a_takeover(pg_url: str, storage: PostgresStorage) -> None:
    """A claim cannot slip in between the lease check of a checkpoint and its commit."""
    storage.create_execution("e1", "d", "{}")
    assert storage.try_claim("e1", "old", 0.2) is not None
    time.sleep(0.4)  # the lease has expired; nobody has taken it yet
    with admin(pg_url) as inflight:
        # The checkpoint statement of the old owner, its transaction still open.
        inflight.autocommit = False
        statement = storage.db._raw_checkpoint_sql
        cur = inflight.execute(statement, step_record("e1", "s0").as_params("old"))
        assert cur.rowcount == 1
        other = PostgresStorage(pg_url)
        try:
            assert other.claim_runnable(tokens("new"), ["d"], 5, 30) == []  # skipped, not stolen
            inflight.commit()
            [(_rec, new)] = other.claim_runnable(tokens("new"), ["d"], 5, 30)
            assert "s0" in other.load_steps("e1")  # the new owner replays it
            assert not storage.save_step("old", step_record("e1", "s1"))
            assert other.save_step(new, step_record("e1", "s1"))
        finally:
            other.close()


# --------------------------------------------------------------------------- claiming


def test_claim_skips_rows_locked_by_another_transaction(
    pg_url: str, storage: PostgresStorage
) -> None:
    for i in range(5):
        storage.create_execution(f"e{i}", "d", "{}")
    with admin(pg_url) as locker:
        locker.autocommit = False
        locker.execute("SELECT id FROM zart_executions WHERE id = 'e0' FOR UPDATE")
        started = time.monotonic()
        claimed = storage.claim_runnable(tokens("t"), ["d"], 10, 30)
        assert time.monotonic() - started < 2  # did not wait for the lock
        assert sorted(r.id for r, _ in claimed) == ["e1", "e2", "e3", "e4"]
        locker.rollback()
    [(rec, _)] = storage.claim_runnable(tokens("t"), ["d"], 10, 30)
    assert rec.id == "e0"


CLAIMER = r"""
import json, os, sys, time
sys.path.insert(0, os.environ["ZART_ROOT"])
from zart._store import JournalStore
from zart._store._postgres import PostgresDatabase
url, go, me = sys.argv[1], sys.argv[2], sys.argv[3]
st = JournalStore(PostgresDatabase(url))
st.db.ensure_schema()
print("READY", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
n = iter(range(10**6))
mine, empty = [], 0
while empty < 3:
    got = st.claim_runnable(lambda: f"{me}-{next(n)}", ["claim-me"], 3, 60)
    if not got:
        empty += 1
        time.sleep(0.02)
        continue
    empty = 0
    for rec, token in got:
        assert rec.lease_owner == token
        assert st.finish_execution(rec.id, token, "completed", json.dumps(me), None)
        mine.append(rec.id)
print("CLAIMED " + json.dumps(mine), flush=True)
st.db.close()
"""


def _spawn_all(code: str, args_list: list[list[str]], go: Path) -> list[str]:
    env = {**os.environ, "ZART_ROOT": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in args_list
    ]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "READY", line + p.communicate()[1]
    go.touch()
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outputs.append(out)
    return outputs


def test_concurrent_processes_claim_each_execution_exactly_once(
    pg_url: str, storage: PostgresStorage, tmp_path: Path
) -> None:
    ids = [f"c{i:03d}" for i in range(240)]
    for eid in ids:
        storage.create_execution(eid, "claim-me", "{}")
    outputs = _spawn_all(
        CLAIMER, [[pg_url, str(tmp_path / "go"), f"p{i}"] for i in range(4)], tmp_path / "go"
    )
    per_process = [json.loads(out.split("CLAIMED ", 1)[1]) for out in outputs]
    counts = Counter(eid for got in per_process for eid in got)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}, [e for e, n in counts.items() if n > 1]
    assert sum(1 for got in per_process if got) >= 2, "one process did all the work"
    for rec in storage.list_executions(limit=1000):
        assert rec.status == "completed" and rec.lease_owner is None
        assert rec.result == json.dumps(
            next(f"p{i}" for i, got in enumerate(per_process) if rec.id in got)
        )


# --------------------------------------------------------------------------- migrations


MIGRATOR = r"""
import os, sys, time
sys.path.insert(0, os.environ["ZART_ROOT"])
from zart._store._postgres import PostgresDatabase
url, go = sys.argv[1], sys.argv[2]
st = PostgresDatabase(url)
with st.engine.connect() as c:  # connect first, so they all reach ensure_schema together
    pass
print("READY", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
st.ensure_schema()
print("VERSION", st.schema_version(), flush=True)
st.close()
"""


def test_migration_when_many_processes_start_at_once(pg_url: str, tmp_path: Path) -> None:
    outputs = _spawn_all(
        MIGRATOR, [[pg_url, str(tmp_path / "go")] for _ in range(5)], tmp_path / "go"
    )
    assert all(f"VERSION {_schema.LATEST_VERSION}" in out for out in outputs), outputs
    with admin(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM zart_schema_version")]
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'zart%%'")
        }
    assert versions == [n for n, _ in _schema.MIGRATIONS]
    assert {"zart_executions", "zart_steps", "zart_events", "zart_schema_version"} <= tables


def test_migration_waits_for_the_advisory_lock(pg_url: str) -> None:
    st = PostgresStorage(pg_url)
    done = threading.Event()
    try:
        with admin(pg_url) as holder:
            holder.autocommit = False
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))

            def migrate() -> None:
                st.ensure_schema()
                done.set()

            thread = threading.Thread(target=migrate)
            thread.start()
            time.sleep(0.5)
            assert not done.is_set(), "migrated without the lock"
            holder.rollback()
            thread.join(10)
        assert done.is_set()
        assert st.schema_version() == _schema.LATEST_VERSION
    finally:
        st.close()


def test_db_upgrade_command(pg_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zart", "--database-url", pg_url, "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"schema at version {_schema.LATEST_VERSION}" in out.stdout


# --------------------------------------------------------------------------- fencing: SIGSTOP


def _steps(url: str, eid: str) -> dict[str, tuple[str, str, float]]:
    with admin(url) as conn:
        return {
            name: (status, output, finished)
            for name, status, output, finished in conn.execute(
                "SELECT step_name, status, output, finished_at FROM zart_steps"
                " WHERE execution_id = %s",
                (eid,),
            )
        }


def _execution(url: str, eid: str) -> tuple[str, str | None, str | None]:
    with admin(url) as conn:
        row = conn.execute(
            "SELECT status, result, lease_owner FROM zart_executions WHERE id = %s", (eid,)
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _prepare_fence(url: str, eid: str, steps: int, seconds: float) -> None:
    app = zart.Zart(url)
    try:
        app.submit(fence_job, steps, seconds, execution_id=eid)
    finally:
        app.close()


# Workers of these tests end a session stuck in a transaction after 3 s (instead of
# 30 s), in case a SIGSTOP lands inside one: the lease, not the lock, must decide.
def _worker_url(url: str) -> str:
    return url + "?options=-c%20idle_in_transaction_session_timeout%3D3000"


def test_worker_paused_past_its_lease_cannot_write(pg_url: str, tmp_path: Path) -> None:
    eid = "fence-1"
    steps = 12
    _prepare_fence(pg_url, eid, steps, 0.4)
    url = _worker_url(pg_url)
    a = WorkerProcess(url, tmp_path, "A", concurrency=1, lease_seconds=2.0)
    b: WorkerProcess | None = None
    try:
        # Freeze A just after a checkpoint, in the middle of its next step body.
        _wait(lambda: len(_steps(pg_url, eid)) >= 3, 30, "A's first checkpoints")
        seen = len(_steps(pg_url, eid))
        _wait(lambda: len(_steps(pg_url, eid)) > seen, 10, "A's next checkpoint")
        a.signal(signal.SIGSTOP)
        frozen = _steps(pg_url, eid)
        frozen_at = time.monotonic()
        assert len(frozen) < steps - 2

        b = WorkerProcess(url, tmp_path, "B", concurrency=1, lease_seconds=2.0)
        assert b.wait_for(f"taking over execution {eid}", 30), b.log()
        assert "its lease expired" in b.log()
        assert time.monotonic() - frozen_at >= 1.5  # B waited for the lease, not less
        _wait(lambda: _execution(pg_url, eid)[0] == "completed", 60, "B to finish")
        before = _steps(pg_url, eid)
        result_before = _execution(pg_url, eid)

        a.signal(signal.SIGCONT)  # A wakes up mid-step, still believing it owns the lease
        assert a.wait_for("is no longer held by this process", 15), a.log()
        assert a.wait_for(f"execution {eid} left this worker", 5), a.log()
        time.sleep(0.5)
        assert _steps(pg_url, eid) == before, "a refused write changed a checkpoint"
        assert _execution(pg_url, eid) == result_before
        status, result, owner = result_before
        assert status == "completed" and owner is None and result is not None
        pids = json.loads(result)
        assert pids[0] == b.pid, "the result is not the new owner's"
        step_pids = pids[1:]
        assert len(step_pids) == steps
        # Steps A checkpointed before it froze are A's; the one it was in and all later
        # ones were run and written by B.
        for i, pid in enumerate(step_pids):
            assert pid == (a.pid if f"fence-{i}" in frozen else b.pid), (i, pid, a.pid, b.pid)
            assert before[f"fence-{i}"][1] == str(pid)
        assert a.proc.poll() is None and "Traceback" not in a.log()
    finally:
        assert a.stop() == 0, a.log()
        if b is not None:
            assert b.stop() == 0, b.log()


# --------------------------------------------------------------------------- worker shutdown


def test_sigterm_hands_running_executions_back(pg_url: str, tmp_path: Path) -> None:
    eid = "slow-1"
    _prepare_fence(pg_url, eid, 30, 0.5)
    w = WorkerProcess(pg_url, tmp_path, "W", concurrency=2, lease_seconds=30, grace_seconds=0.5)
    _wait(lambda: len(_steps(pg_url, eid)) >= 2, 30, "two checkpoints")
    started = time.monotonic()
    assert w.stop(timeout=20) == 0
    assert time.monotonic() - started < 10
    status, _result, owner = _execution(pg_url, eid)
    assert (status, owner) == ("pending", None), "the lease was not released"
    log = w.log()
    assert "worker received SIGTERM" in log
    assert f"execution {eid} handed back" in log
    assert "worker stopped" in log


def test_sigterm_lets_short_executions_finish(pg_url: str, tmp_path: Path) -> None:
    eid = "short-1"
    _prepare_fence(pg_url, eid, 6, 0.3)
    w = WorkerProcess(pg_url, tmp_path, "W", concurrency=2, lease_seconds=30, grace_seconds=20)
    _wait(lambda: len(_steps(pg_url, eid)) >= 1, 30, "a checkpoint")
    assert w.stop(timeout=30) == 0
    assert _execution(pg_url, eid)[0] == "completed"
    assert f"execution {eid} finished: completed" in w.log()


# --------------------------------------------------------------------------- connection loss


RUNS: Counter[str] = Counter()
HOOKS: dict[str, Any] = {}


@step("conn-{index}")
async def conn_step(index: int, pause: float) -> int:
    hook = HOOKS.get(f"conn-{index}")
    if hook is not None:
        hook()
    await asyncio.sleep(pause)
    RUNS[f"conn-{index}"] += 1
    return index * index


@durable("pgtest-connection-loss")
async def connection_loss_flow(steps: int, pause: float) -> int:
    total = 0
    for i in range(steps):
        total += await conn_step(i, pause)
    return total


def test_execution_survives_its_connections_being_terminated(pg_url: str) -> None:
    RUNS.clear()
    HOOKS.clear()
    killed: list[int] = []
    for i in (2, 5, 6):
        HOOKS[f"conn-{i}"] = lambda: killed.append(terminate_zart_connections(pg_url))
    app = zart.Zart(pg_url, lease_seconds=2)
    try:
        assert app.run(connection_loss_flow, 10, 0.05, execution_id="cl-1") == sum(
            i * i for i in range(10)
        )
        assert sum(killed) >= 3
        assert all(RUNS[f"conn-{i}"] == 1 for i in range(10)), RUNS
        assert len(app.steps("cl-1")) == 10
        assert app.status("cl-1").lease_owner is None
    finally:
        HOOKS.clear()
        app.close()


class Proxy:
    """A TCP proxy in front of PostgreSQL that the test can cut, as a restart would."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.closed = False
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.up = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()

    def url(self, pg_url: str) -> str:
        rest = pg_url.split("@", 1)[1].split("/", 1)[1]
        user = pg_url.split("://", 1)[1].split("@", 1)[0]
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{rest}"


def test_execution_rides_out_a_database_outage(pg_url: str) -> None:
    RUNS.clear()
    HOOKS.clear()
    proxy = Proxy()
    outage: list[float] = []

    def cut_for_three_seconds() -> None:
        proxy.cut()
        outage.append(time.monotonic())
        threading.Timer(3.0, proxy.restore).start()

    HOOKS["conn-3"] = cut_for_three_seconds
    app = zart.Zart(proxy.url(pg_url), lease_seconds=2)
    try:
        started = time.monotonic()
        assert app.run(connection_loss_flow, 8, 0.05, execution_id="outage-1") == sum(
            i * i for i in range(8)
        )
        assert outage and time.monotonic() - outage[0] >= 3.0  # it waited the outage out
        assert time.monotonic() - started < 30
        assert all(RUNS[f"conn-{i}"] == 1 for i in range(8)), RUNS
        status = app.status("outage-1")
        assert status.status == "completed" and status.lease_owner is None
        assert status.attempts == 1  # never lost its lease: no other owner, no restart
    finally:
        HOOKS.clear()
        app.close()
        proxy.close()


def test_worker_starts_while_the_database_is_down(pg_url: str, tmp_path: Path) -> None:
    _prepare_fence(pg_url, "late-1", 2, 0.05)
    proxy = Proxy()
    proxy.up = False
    try:
        w = WorkerProcess(proxy.url(pg_url), tmp_path, "W", lease_seconds=5)
        assert w.wait_for("retrying in", 20), w.log()
        assert "worker started" not in w.log()
        proxy.restore()
        assert w.wait_for("worker started", 20), w.log()
        _wait(lambda: _execution(pg_url, "late-1")[0] == "completed", 30, "the execution")
        assert w.stop() == 0
    finally:
        proxy.close()


def test_unreachable_database_fails_fast() -> None:
    app = zart.Zart("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="cannot reach the database"):
        app.status("x")
    assert time.monotonic() - started < 5
    app.close()


def test_wrong_database_name_fails_fast(pg_url: str) -> None:
    app = zart.Zart(pg_url.rsplit("/", 1)[0] + "/zart_no_such_database")
    with pytest.raises(DatabaseUnavailableError, match="does not exist"):
        app.status("x")
    app.close()


# --------------------------------------------------------------------------- retries


def _lose_next_commit(monkeypatch: pytest.MonkeyPatch, *, checkpoints: bool = False) -> None:
    """The next write transaction (or checkpoint) commits, then its connection reports an
    error: the reply to COMMIT was lost, so the caller cannot know it went through."""
    armed = [True]
    if checkpoints:
        original_write = PostgresDatabase._write_checkpoint_once

        def write(self: PostgresDatabase, token: str, record: StepRecord) -> bool:
            done = original_write(self, token, record)
            if armed.pop() if armed else False:
                raise _connection_error()
            return done

        monkeypatch.setattr(PostgresDatabase, "_write_checkpoint_once", write)
        return
    original_tx = Database.tx

    @contextlib.contextmanager
    def tx(self: Database, write: bool = True) -> Any:
        with original_tx(self, write) as conn:
            yield conn
        if write and armed:
            armed.pop()
            raise _connection_error()  # after the commit: the outcome is unknown

    monkeypatch.setattr(Database, "tx", tx)


def _connection_error() -> Exception:
    orig = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    return OperationalError("COMMIT", {}, orig)


def test_retry_after_an_unknown_commit_outcome(
    storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.create_execution("e1", "d", "{}")
    storage.create_execution("e2", "d", "{}")

    # try_claim committed under our token: the retry finds it ours.
    _lose_next_commit(monkeypatch)
    rec = storage.try_claim("e1", "tok-1", 30)
    assert rec is not None and rec.lease_owner == "tok-1" and rec.attempts == 1

    # claim_runnable committed: the retry hands out those claims, not fresh ones.
    _lose_next_commit(monkeypatch)
    [(rec2, tok2)] = storage.claim_runnable(tokens("w"), ["d"], 5, 30)
    assert rec2.id == "e2" and rec2.lease_owner == tok2 and rec2.attempts == 1

    # save_step committed: repeating the upsert is harmless.
    _lose_next_commit(monkeypatch, checkpoints=True)
    assert storage.save_step("tok-1", step_record("e1", "s0", output='"v"'))
    assert storage.load_steps("e1")["s0"].output == '"v"'

    # finish_execution committed: the retry recognises its own outcome.
    _lose_next_commit(monkeypatch)
    assert storage.finish_execution("e1", "tok-1", "completed", '"done"', None)
    assert not storage.finish_execution("e2", "not-the-owner", "completed", '"x"', None)

    # consume_event_into_step committed: the retry returns the consumed payload.
    storage.create_execution("e3", "d", "{}")
    assert storage.try_claim("e3", "tok-3", 30) is not None
    storage.add_event("e3", "approved", '{"by": "ana"}')
    _lose_next_commit(monkeypatch)
    assert storage.consume_event_into_step("tok-3", "e3", "approved", 1) == '{"by": "ana"}'


def test_event_is_not_sent_twice_after_an_unknown_commit_outcome(
    storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.create_execution("e1", "d", "{}")
    _lose_next_commit(monkeypatch)
    with pytest.raises(DatabaseUnavailableError, match="may or may not have been stored"):
        storage.add_event("e1", "approved", None)
    monkeypatch.undo()
    with admin_for(storage) as conn:
        row = conn.execute("SELECT count(*) FROM zart_events").fetchone()
    assert row == (1,)


def admin_for(storage: PostgresStorage) -> psycopg.Connection[Any]:
    url = storage.engine.url.render_as_string(hide_password=False)
    return psycopg.connect(side_dsn(url), autocommit=True)


def test_transient_errors_are_classified(storage: PostgresStorage) -> None:
    transient = [
        psycopg.errors.AdminShutdown("x"),
        psycopg.errors.SerializationFailure("x"),
        psycopg.errors.DeadlockDetected("x"),
        psycopg.errors.CannotConnectNow("x"),
        psycopg.OperationalError("the connection is closed"),  # after a first connection
        _connection_error(),
    ]
    permanent = [
        psycopg.errors.UniqueViolation("x"),
        psycopg.errors.UndefinedTable("x"),
        ValueError("x"),
    ]
    storage.db._ever_connected = True
    assert all(storage.db.is_transient(e) for e in transient)
    assert not any(storage.db.is_transient(e) for e in permanent)
    storage.db._ever_connected = False  # before any connection: a wrong URL, not an outage
    assert not storage.db.is_transient(psycopg.OperationalError("connection refused"))


def test_side_tables_sql_is_valid(storage: PostgresStorage) -> None:
    """The fault tests' trigger records every checkpoint write (sanity check of the harness)."""
    with admin_for(storage) as conn:
        conn.execute(SIDE_TABLES_SQL)
    storage.create_execution("e1", "d", "{}")
    assert storage.try_claim("e1", "t", 30) is not None
    assert storage.save_step("t", step_record("e1", "s", output='"1"'))
    assert storage.save_step("t", step_record("e1", "s", output='"2"'))
    with admin_for(storage) as conn:
        rows = conn.execute(
            "SELECT old_status, old_output, new_output FROM fault_step_writes ORDER BY id"
        ).fetchall()
        conn.execute("DROP TABLE fault_runs, fault_step_writes")
        conn.execute("DROP TRIGGER fault_log_step_write ON zart_steps")
    assert rows == [(None, None, '"1"'), ("completed", '"1"', '"2"')]
