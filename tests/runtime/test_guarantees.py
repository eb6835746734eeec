"""Guarantees at the edges (docs/guarantees.md): storage faults never end an execution,
a step's record belongs to exactly one call, absurd inputs are refused before anything
is written, crashed attempts count, and misuse fails loudly. Real files, real
connections and real SIGKILLed processes; no mocks."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

import zart
from zart import (
    DatabaseUnavailableError,
    ExecutionConflictError,
    IdentifierError,
    ReplayMismatchError,
    StepError,
    StepNameError,
    StorageError,
    TaskError,
    durable,
    step,
)
from zart._store import NotFound  # noqa: F401 - the storage layer's own signal, not public

from childproc import ChildProcess

# --------------------------------------------------------------------------- storage faults

CALLS: list[str] = []
FALLBACKS: list[str] = []


@step("g-write-{i}")
async def write_block(i: int) -> str:
    CALLS.append(f"write-{i}")
    return "x" * 3000  # each checkpoint takes about a page


def _fallback(error: TaskError) -> list[str]:
    FALLBACKS.append(str(error))
    return ["fallback"]


@durable("g-disk-full", on_failure=_fallback)
async def fill_disk(n: int) -> list[str]:
    return [(await write_block(i))[:1] for i in range(n)]


def _limit_pages(app: zart.Zart, pages: int) -> None:
    """Every connection zart opens on this SQLite file may grow it to ``pages`` pages."""
    engine = app.ops_store.db.engine

    @sa.event.listens_for(engine, "connect")
    def _limit(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")


def test_disk_full_at_a_checkpoint_leaves_the_execution_resumable(tmp_path: Path) -> None:
    CALLS.clear()
    FALLBACKS.clear()
    url = f"sqlite:///{tmp_path / 'full.db'}?retry_seconds=0.5"
    app = zart.Zart(url)
    app.ops_store.ensure_schema()
    pages = sqlite3.connect(tmp_path / "full.db").execute("PRAGMA page_count").fetchone()[0]
    app.close()

    app = zart.Zart(url)
    _limit_pages(app, pages + 4)  # room for a few checkpoints, not for forty
    with pytest.raises(DatabaseUnavailableError, match="full"):
        app.run(fill_disk, 40, execution_id="full-1")
    status = app.status("full-1")
    assert status.status in ("running", "pending")  # not failed, not completed
    assert FALLBACKS == []  # on_failure did not run: nothing failed
    done = [s for s in app.steps("full-1") if s.status == "completed"]
    assert 0 < len(done) < 40
    assert all(s.attempts == 1 for s in app.steps("full-1"))  # no attempt was counted
    app.close()

    # Space is back (a new process without the limit): the same call completes.
    app = zart.Zart(url)
    assert app.run(fill_disk, 40, execution_id="full-1") == ["x"] * 40
    assert FALLBACKS == []
    assert app.status("full-1").status == "completed"
    # Steps that were checkpointed before the disk filled up did not run again.
    assert CALLS.count("write-0") == 1
    app.close()


@step("g-locked")
async def locked_step() -> int:
    return 7


@durable("g-locked-flow")
async def locked_flow() -> int:
    return await locked_step()


def test_a_database_locked_past_the_timeout_is_retried_then_reported(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}?busy_timeout=100&retry_seconds=0.6"
    app = zart.Zart(url)
    app.ops_store.ensure_schema()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="locked"):
            app.run(locked_flow, execution_id="locked-1")
        assert time.monotonic() - started < 10  # bounded: retried, then reported
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Nothing was written while the lock was held, nothing failed; now it just runs.
    assert app.run(locked_flow, execution_id="locked-1") == 7
    assert app.status("locked-1").status == "completed"
    app.close()


def test_a_lock_released_within_the_retry_window_is_invisible(tmp_path: Path) -> None:
    path = tmp_path / "brief.db"
    app = zart.Zart(f"sqlite:///{path}?busy_timeout=50&retry_seconds=5")
    app.ops_store.ensure_schema()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    import threading

    release = threading.Timer(0.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        assert app.run(locked_flow, execution_id="brief-1") == 7
    finally:
        release.join()
        holder.close()
    app.close()


# --------------------------------------------------------------------------- unusable databases


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n")
    with pytest.raises(StorageError, match="not an SQLite database") as info:
        zart.Zart(f"sqlite:///{path}").status("x")
    assert str(path) in str(info.value)
    assert path.read_bytes() == b"these are my notes, not a database\n"


def test_foreign_zart_tables_are_refused_and_not_written(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE zart_executions (id TEXT PRIMARY KEY, blob BLOB)")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="did not create them"):
        zart.Zart(f"sqlite:///{path}")  # at construction, before any connection
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"zart_executions"}  # no schema version table, nothing added
    assert path.read_bytes() == before


def test_a_read_only_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """SQLite itself refuses the write (opened read-only, as on a read-only mount): a
    zart error naming the database and the fix, not a raw SQLAlchemy traceback."""
    path = tmp_path / "ro.db"
    app = zart.Zart(f"sqlite:///{path}")
    assert app.run(locked_flow, execution_id="ro-1") == 7
    app.close()
    before = path.read_bytes()
    app = zart.Zart(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert app.status("ro-1").status == "completed"  # reading works
    with pytest.raises(StorageError, match="readonly") as info:
        app.run(locked_flow, execution_id="ro-2")
    assert "writable" in str(info.value) and "Traceback" not in str(info.value)
    app.close()
    assert path.read_bytes() == before


def test_a_file_this_process_may_not_write_is_refused_up_front(tmp_path: Path) -> None:
    """Checked by opening the file, as the database would (not by its mode bits, which
    root ignores): a directory that does not exist, and a file zart cannot open."""
    with pytest.raises(DatabaseUnavailableError, match="does not exist"):
        zart.Zart(f"sqlite:///{tmp_path / 'missing' / 'x.db'}").status("x")
    blocked = tmp_path / "dir.db"
    blocked.mkdir()  # a directory where the file should be: no process can write it
    with pytest.raises(StorageError, match=r"dir\.db"):
        zart.Zart(f"sqlite:///{blocked}").status("x")


# --------------------------------------------------------------------------- identity


@step("g-value")
async def value_of(x: int) -> int:
    return x


@durable("g-child")
async def child(x: int) -> int:
    return await value_of(x)


@durable("g-parent")
async def parent(name: str, x: int) -> int:
    return await zart.run_child(child, x, name=name)


def test_child_ids_of_different_calls_never_collide(app: zart.Zart) -> None:
    # Parent "A" runs child "b/c"; parent "A/b" runs child "c": once the same id.
    assert app.run(parent, "b/c", 100, execution_id="A") == 100
    assert app.run(parent, "c", 2, execution_id="A/b") == 2
    assert app.result("A") == 100
    children = {s.id for s in app.list(durable_name="g-child")}
    assert len(children) == 2


def test_a_user_id_equal_to_a_child_id_is_a_loud_conflict(app: zart.Zart) -> None:
    assert app.run(child, 14, execution_id="P/kid") == 14  # a user picks this id
    with pytest.raises(TaskError, match="cannot be attached to here"):
        app.run(parent, "kid", 2000, execution_id="P")
    # And the other way round: a child's id is not a user's to start.
    assert app.run(parent, "kid2", 5, execution_id="Q") == 5
    with pytest.raises(ExecutionConflictError, match="child execution of 'Q'"):
        app.run(child, 1, execution_id="Q/kid2")


@pytest.mark.parametrize(
    "bad_id",
    ["x" * 256, "a\x00b", "tab\tinside", "", "\ud800"],
    ids=["256-chars", "nul", "tab", "empty", "surrogate"],
)
def test_execution_ids_are_validated_the_same_on_both_backends(app: zart.Zart, bad_id: str) -> None:
    with pytest.raises(IdentifierError, match="execution id"):
        app.run(child, 1, execution_id=bad_id)
    with pytest.raises(IdentifierError):
        app.status(bad_id)
    assert app.list() == []  # nothing was written


def test_the_longest_ids_and_names_work_and_long_child_ids_are_shortened(
    app: zart.Zart,
) -> None:
    long_id = "p" * 255
    assert app.run(parent, "k" * 300, 3, execution_id=long_id) == 3
    (kid,) = [s for s in app.list() if s.durable_name == "g-child"]
    assert len(kid.id) == 255 and kid.parent_id == long_id
    # Replayed, the parent finds the same child (the shortened id is stable).
    assert app.run(parent, "k" * 300, 3, execution_id=long_id) == 3
    assert len(app.list(durable_name="g-child")) == 1


@step("g-named-{label}")
async def labelled(label: str) -> str:
    return label


@durable("g-bad-name")
async def bad_name(label: str) -> str:
    return await labelled(label)


def test_a_rendered_step_name_outside_the_limits_fails_before_anything_is_written(
    app: zart.Zart,
) -> None:
    with pytest.raises(TaskError, match="control character"):
        app.run(bad_name, "a\x00b", execution_id="bn-1")
    assert app.steps("bn-1") == []
    with pytest.raises(TaskError, match="512"):
        app.run(bad_name, "y" * 600, execution_id="bn-2")
    assert app.steps("bn-2") == []


def test_event_names_are_validated(app: zart.Zart) -> None:
    app.submit(child, 1, execution_id="ev-id")
    with pytest.raises(IdentifierError, match="event name"):
        app.send_event("ev-id", "e\x00", None)


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    "duration",
    [1e12, float("inf"), float("nan"), -1, timedelta.max],
    ids=["1e12", "inf", "nan", "negative", "timedelta.max"],
)
def test_absurd_sleeps_are_refused_when_called(app: zart.Zart, duration: object) -> None:
    @durable(f"g-sleep-{id(duration)}")
    async def sleeper() -> None:
        await zart.sleep("nap", duration)  # type: ignore[arg-type]

    with pytest.raises(TaskError, match="sleep duration must be between 0 and"):
        app.run(sleeper, execution_id=f"sl-{id(duration)}")
    assert app.steps(f"sl-{id(duration)}") == []


def test_absurd_event_timeouts_and_sleep_until_are_refused(app: zart.Zart) -> None:
    @durable("g-wait-nan")
    async def waiter() -> None:
        await zart.wait_for_event("ev", timeout=float("nan"))

    with pytest.raises(TaskError, match="timeout must be between 0 and"):
        app.run(waiter, execution_id="w-nan")

    @durable("g-until-far")
    async def until_far() -> None:
        await zart.sleep_until("later", datetime(9000, 1, 1, tzinfo=timezone.utc))

    with pytest.raises(TaskError, match="more than 100 years away"):
        app.run(until_far, execution_id="u-far")


def test_listing_tolerates_any_stored_wake_time(app: zart.Zart) -> None:
    app.submit(child, 1, execution_id="odd-1")
    app.submit(child, 2, execution_id="odd-2")
    with app.ops_store.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE zart_executions SET wake_at = 1e20, status = 'sleeping' WHERE id = :i"),
            {"i": "odd-1"},
        )
    listed = {s.id: s for s in app.list()}
    assert set(listed) == {"odd-1", "odd-2"}
    assert listed["odd-1"].wake_at is not None
    assert app.status("odd-1").as_dict()["wake_at"].startswith("9999")


# --------------------------------------------------------------------------- attempts


def test_an_attempt_that_kills_its_process_counts(
    child_env: dict[str, str], app: zart.Zart, tmp_path: Path
) -> None:
    """max_attempts=3 and every attempt SIGKILLs its process: the step runs 3 times,
    then fails saying it was interrupted (before: it ran on and on)."""
    env = {**child_env, "GUARANTEES_LOG": str(tmp_path / "log")}
    outcomes = []
    for _ in range(6):
        kid = ChildProcess(
            env, ["crash-loop", "cl-1"], stderr_path=tmp_path / "err", module="guarantees_app"
        )
        code = kid.wait()
        outcomes.append(code)
        if code == 0:
            break
    assert outcomes[-1] == 0, outcomes
    assert "FAILED" in kid.lines[-1] and "interrupted" in kid.lines[-1], kid.lines
    runs = (tmp_path / "log").read_text().splitlines()
    assert runs.count("crash-always") == 3
    assert runs.count("before") == 1
    (crashed,) = [s for s in app.steps("cl-1") if s.name == "crash-always"]
    assert (crashed.status, crashed.attempts) == ("failed", 3)
    assert "interrupted" in (crashed.error or "")


# --------------------------------------------------------------------------- misuse

INNER_RUNS: list[str] = []


@step("g-inner")
async def inner() -> int:
    INNER_RUNS.append("inner")
    return 1


@step("g-outer")
async def outer() -> int:
    INNER_RUNS.append("outer")
    return await inner()


@step("g-outer-sync")
def outer_sync() -> int:
    INNER_RUNS.append("outer-sync")
    inner()  # creating the call is enough to be refused
    return 0


@durable("g-nested")
async def nested(sync: bool) -> int:
    return await (outer_sync() if sync else outer())


@pytest.mark.parametrize("sync", [False, True], ids=["async-body", "plain-def-body"])
def test_a_step_inside_a_step_fails_at_once_and_is_not_retried(app: zart.Zart, sync: bool) -> None:
    INNER_RUNS.clear()
    with pytest.raises(TaskError, match="was called inside the body of step") as info:
        app.run(nested, sync, execution_id=f"nest-{sync}")
    assert isinstance(info.value.__cause__, StepError)
    assert (["outer-sync"] if sync else ["outer"]) == INNER_RUNS  # one attempt, no retry
    (only,) = app.steps(f"nest-{sync}")
    assert (only.status, only.attempts) == ("failed", 1)


@durable("g-callee")
async def callee() -> int:
    return await value_of(5)


@durable("g-caller")
async def caller() -> int:
    return await callee()


def test_awaiting_a_durable_inside_a_durable_says_to_use_run_child(app: zart.Zart) -> None:
    with pytest.raises(TaskError, match=r"zart\.run_child\(callee"):
        app.run(caller, execution_id="dd-1")


KIND = {"now": "step"}


@durable("g-kind")
async def kind_flow() -> int:
    if KIND["now"] == "step":
        return await value_of(1)
    await zart.sleep("g-value", 0)  # a deploy reused the step's name for a sleep
    return 2


def test_a_name_reused_by_another_kind_of_call_on_replay_names_both(app: zart.Zart) -> None:
    KIND["now"] = "step"
    assert app.run(kind_flow, execution_id="kind-1") == 1
    app.ops_store.reset_execution(  # run it again, keeping its checkpoints
        "kind-1", lambda rec, steps: [], audit_action="t", audit_actor="t", audit_details={}
    )
    KIND["now"] = "sleep"
    try:
        with pytest.raises(TaskError) as info:
            app.run(kind_flow, execution_id="kind-1")
    finally:
        KIND["now"] = "step"
    assert isinstance(info.value.__cause__, ReplayMismatchError)
    assert "recorded by a step" in str(info.value) and "zart.sleep" in str(info.value)


def test_step_names_via_named_are_checked_at_the_call(app: zart.Zart) -> None:
    with pytest.raises(StepNameError, match="control character"):
        value_of(1).named("bad\nname")
