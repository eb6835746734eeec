"""Group commit: executions running at once in one process share transactions, with
exactly the guarantees of one commit per write (see docs/architecture.md, "The commit
path"). On SQLite and PostgreSQL, with real databases and, for the kill test, real
processes."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import group_app  # noqa: F401  (registers the durable the kill test's child runs)
import sqlalchemy as sa

import zart
from zart._store._group import GroupCommit

from crash_app import spawn

# --------------------------------------------------------------------------- the app

_gate: asyncio.Event | None = None
_entered: list[str] = []
_after: list[str] = []


@zart.step("held-{tag}")
async def held(tag: str) -> str:
    """Returns once the test opens the gate (so steps finish in one round, one batch)."""
    _entered.append(tag)
    assert _gate is not None
    await _gate.wait()
    return tag.upper()


@zart.durable("group-held")
async def held_job(tag: str) -> str:
    first = await held(tag)
    _after.append(tag)  # only once the first step's checkpoint committed
    return first + "!"


@zart.step("quick-{k}")
async def quick(k: int) -> int:
    return k * 10


@zart.durable("group-quick")
async def quick_job(i: int, steps: int) -> int:
    total = i
    for k in range(steps):
        total += await quick(k)
    return total


async def _open_gate_when(count: int) -> None:
    while len(_entered) < count:
        await asyncio.sleep(0.005)


def _reset(gate: asyncio.Event | None) -> None:
    global _gate
    _gate = gate
    _entered.clear()
    _after.clear()


@contextmanager
def batches_seen(app: zart.Zart) -> Iterator[list[list[str]]]:
    """Every batch the app's group commit writes, as the list of its statements' first
    words (a spy around the real method: the writes still go to the database)."""
    group: GroupCommit = app._journal.group
    seen: list[list[str]] = []
    original = group.db.write_batch

    def spy(statements: list[tuple[str, dict[str, Any]]]) -> tuple[list[int], bool]:
        seen.append([" ".join(sql.split()[:3]).lower() for sql, _ in statements])
        return original(statements)

    group.db.write_batch = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del group.db.write_batch


# --------------------------------------------------------------------------- tests


def test_executions_at_once_share_commits_and_get_their_own_results(app: zart.Zart) -> None:
    async def one(i: int) -> tuple[str, int]:
        handle = await app.start(quick_job, i, 5)
        return handle.execution_id, await handle.result()

    async def scenario() -> list[tuple[str, int]]:
        return await asyncio.gather(*(one(i) for i in range(60)))

    group = app._journal.group
    before = (group.batches, group.statements)
    done = asyncio.run(scenario())
    assert [result for _, result in done] == [i + 100 for i in range(60)]
    batches, statements = group.batches - before[0], group.statements - before[1]
    # 60 creates, 300 checkpoints, 60 finishes: in far fewer transactions.
    assert statements == 420
    assert batches <= statements / 10, (batches, statements)
    for eid, _ in done:
        assert [s.name for s in app.steps(eid)] == [f"quick-{k}" for k in range(5)]


def test_a_lone_execution_sends_one_statement_per_step_plus_two(sqlite_url: str) -> None:
    """Create-and-claim, one checkpoint per step, the finish: nothing else (no claim, no
    read-back, no journal load for a new execution, no BEGIN/COMMIT around them)."""
    app = zart.Zart(sqlite_url)
    app.ops_store.ensure_schema()
    sent: list[str] = []

    @sa.event.listens_for(app.ops_store.db.engine, "connect")
    def trace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(sent.append)

    app.ops_store.db.engine.dispose()  # new connections, traced
    app.ops_store.db.drop_connection()
    try:
        app.run(quick_job, 0, 7)  # warm-up: the first call compiles the step's codecs
        sent.clear()
        assert app.run(quick_job, 1, 7) == 211
        # Not counted: a read of the pause rules (zart._store._pauses) in its own read
        # transaction, at most once a second per process, made by the first step after
        # a tick of its clock.
        words = [" ".join(s.split()[:3]).lower() for s in _without_pause_reads(sent)]
        assert words == [
            "insert into zart_executions",
            *["insert into zart_steps"] * 7,
            "update zart_executions set",
        ], sent
    finally:
        app.close()


def _without_pause_reads(sent: list[str]) -> list[str]:
    """``sent`` without the pause-rule reads and the BEGIN / COMMIT around each."""
    dropped: set[int] = set()
    for i, sql in enumerate(sent):
        if "zart_pause_rules" in sql:
            dropped.add(i)
            if i > 0 and sent[i - 1].strip().upper().startswith("BEGIN"):
                dropped.add(i - 1)
            if i + 1 < len(sent) and sent[i + 1].strip().upper() == "COMMIT":
                dropped.add(i + 1)
    return [sql for i, sql in enumerate(sent) if i not in dropped]


def test_a_stale_writer_in_a_batch_is_rejected_alone(db_url: str, app: zart.Zart) -> None:
    """Two executions' checkpoints in one batch; one lost its lease while its step ran:
    its checkpoint is refused, the other's is written (and its execution completes)."""
    other = sa.create_engine(db_url)

    async def scenario() -> None:
        _reset(asyncio.Event())
        stale = await app.start(held_job, "a", execution_id="stale-a")
        fine = await app.start(held_job, "b", execution_id="fine-b")
        await _open_gate_when(2)
        with other.begin() as conn:  # another worker took "stale-a" over meanwhile
            conn.execute(
                sa.text(
                    "UPDATE zart_executions SET lease_owner = 'thief', "
                    "lease_expires_at = lease_expires_at + 600 WHERE id = 'stale-a'"
                )
            )
        with batches_seen(app) as seen:
            assert _gate is not None
            _gate.set()
            assert await fine.result(timeout=10) == "B!"
        assert ["insert into zart_steps"] * 2 in seen  # both checkpoints: one batch
        assert stale._task is not None
        stale._task.cancel()  # it waits for the thief to finish it

    try:
        asyncio.run(scenario())
    finally:
        other.dispose()
    assert _after == ["b"]
    assert [s.name for s in app.steps("fine-b")] == ["held-b"]
    assert app.steps("stale-a") == []
    assert app.status("stale-a").lease_owner == "thief"


@contextmanager
def database_locked(db_url: str) -> Iterator[None]:
    """Another connection holds the lock every checkpoint needs, until the block ends."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(sa.make_url(db_url).database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        tx = conn.begin()
        conn.execute(sa.text("LOCK TABLE zart_steps IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            tx.rollback()
    engine.dispose()


def _short_retries(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        return f"{db_url}?busy_timeout=50&retry_seconds=0.3"
    return f"{db_url}?retry_seconds=0.5&options=-c%20lock_timeout%3D100"


def test_a_step_whose_batch_fails_does_not_return_success(db_url: str) -> None:
    """The batch cannot commit (the database stays locked past the retry window): no
    step's await returns, every execution is left resumable, and a later run completes
    each one with the right result."""
    app = zart.Zart(_short_retries(db_url), lease_seconds=5)
    tags = [f"t{i}" for i in range(6)]

    async def scenario() -> list[BaseException | str]:
        _reset(asyncio.Event())
        handles = [await app.start(held_job, tag, execution_id=f"fail-{tag}") for tag in tags]
        await _open_gate_when(len(tags))
        with database_locked(db_url):
            assert _gate is not None
            _gate.set()
            return await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
        assert all(isinstance(o, zart.DatabaseUnavailableError) for o in outcomes), outcomes
        assert _after == []  # no step returned success
        for tag in tags:
            assert app.steps(f"fail-{tag}") == []
            assert app.status(f"fail-{tag}").status in ("pending", "running")
        _reset(asyncio.Event())
        assert _gate is not None
        _gate.set()
        assert [app.run(held_job, execution_id=f"fail-{t}") for t in tags] == [
            f"{t.upper()}!" for t in tags
        ]
    finally:
        app.close()


def _poison(db_url: str) -> None:
    """A trigger that refuses the checkpoint of one step, for good (not transient)."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        if db_url.startswith("sqlite"):
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON zart_steps "
                "WHEN NEW.step_name = 'held-poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.step_name = 'held-poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON zart_steps "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )
    engine.dispose()


def test_a_statement_that_fails_for_good_fails_alone(db_url: str, app: zart.Zart) -> None:
    """One checkpoint of a batch is refused by the database for good: its step fails with
    a StorageError (the execution is left resumable, not failed); its batch-mates are
    written and complete."""
    app.ops_store.ensure_schema()
    _poison(db_url)
    tags = ["one", "poison", "two", "three"]

    async def scenario() -> list[BaseException | str]:
        _reset(asyncio.Event())
        handles = [await app.start(held_job, tag, execution_id=f"p-{tag}") for tag in tags]
        await _open_gate_when(len(tags))
        assert _gate is not None
        _gate.set()
        return await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes[0] == "ONE!" and outcomes[2:] == ["TWO!", "THREE!"]
    assert isinstance(outcomes[1], zart.StorageError), outcomes[1]
    assert "poisoned" in str(outcomes[1])
    assert sorted(_after) == ["one", "three", "two"]
    assert app.status("p-poison").status in ("pending", "running")
    assert app.steps("p-poison") == []


def test_sigkill_during_group_commits_loses_no_acknowledged_step(
    db_url: str, child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    """30 executions at once in a child process, SIGKILLed three times at random moments
    while their checkpoints are being group-committed, then run to the end: no step
    whose await had returned ran again, none is missing, every result is right."""
    executions, steps = 40, 12
    log = tmp_path / "group.log"
    env = {**child_env, "GROUP_LOG": str(log)}
    args = ["--executions", str(executions), "--steps", str(steps)]
    rng = random.Random(20261207)
    kills = 0
    for _ in range(3):
        lines = len(log.read_text().splitlines()) if log.exists() else 0
        child = spawn(env, args, tmp_path, module="group_app")
        # Killed 20-150 ms after this run's first step body: mid-stream of group commits.
        while child.proc.poll() is None and (
            not log.exists() or len(log.read_text().splitlines()) <= lines
        ):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.02, 0.15))
        child.kill()
        if child.wait() == -signal.SIGKILL:
            kills += 1
    final = spawn(env, args, tmp_path, module="group_app")
    assert final.wait(timeout=60) == 0, final.stderr()
    assert "DONE" in final.lines
    assert kills >= 2  # the kills really hit work in flight

    acked: set[tuple[str, str]] = set()
    for line in log.read_text().splitlines():
        what, eid, name = line.split()
        if what == "ACK":
            acked.add((eid, name))
        else:
            assert (eid, name) not in acked, f"{eid} {name} ran again after its ack"
    assert len(acked) == executions * steps
    expected = sum(k * k for k in range(steps))
    for i in range(executions):
        assert app.result(f"g-{i}") == expected
        assert [s.name for s in app.steps(f"g-{i}")] == [f"part-{k}" for k in range(steps)]
