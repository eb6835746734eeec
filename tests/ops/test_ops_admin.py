"""Admin operations: retry a failed step, restart, re-run from a step; the audit log.

Through the Python API (``Zart.retry_step`` ...) and the CLI, on both backends.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import zart
from zart import ExecutionNotFoundError, TaskError
from zart._engine._admin import ConflictError, InvalidInputError
from zart.cli import main

import ops_app
from ops_app import reset_ops_tables


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    reset_ops_tables(db_url)
    ops_app.FAILING.clear()
    ops_app.CALLS.clear()
    app = zart.Zart(db_url, lease_seconds=5)
    yield app
    app.close()
    ops_app.FAILING.clear()


def failed_pipeline(app: zart.Zart, eid: str, failing: str = "ops-charge-1") -> None:
    ops_app.FAILING.add(failing)
    with pytest.raises(TaskError):
        app.run(ops_app.pipeline, 3, execution_id=eid)
    ops_app.FAILING.discard(failing)
    ops_app.CALLS.clear()


def resume(app: zart.Zart, eid: str) -> object:
    """What a worker does: pick the pending execution up and finish it."""
    st = app.status(eid)
    assert st.status == "pending"
    return app.run(st.durable_name, execution_id=eid)


def test_retry_step_resumes_at_the_failed_step(engine: zart.Zart) -> None:
    failed_pipeline(engine, "r1")
    steps = {s.name: s.status for s in engine.steps("r1")}
    assert steps == {"ops-load": "completed", "ops-charge-0": "completed", "ops-charge-1": "failed"}

    st = engine.retry_step("r1", actor="ana")
    assert st.status == "pending" and st.error is None and st.finished_at is None
    assert "ops-charge-1" not in {s.name for s in engine.steps("r1")}
    assert resume(engine, "r1") == "total=60"
    # Only the failed step and the ones after it ran: the rest were replayed.
    assert ops_app.CALLS == ["charge-1", "charge-2", "report"]

    (entry,) = engine.audit_log("r1")
    assert (entry.action, entry.actor, entry.execution_id) == ("retry-step", "ana", "r1")
    assert entry.details["deleted_steps"] == ["ops-charge-1"]
    assert entry.details["previous_status"] == "failed"
    assert abs(entry.created_at.timestamp() - time.time()) < 60


def test_retry_step_refusals(engine: zart.Zart) -> None:
    engine.run(ops_app.greet, "x", execution_id="ok")
    with pytest.raises(ConflictError, match="not failed"):
        engine.retry_step("ok")
    with pytest.raises(ExecutionNotFoundError):
        engine.retry_step("missing")
    failed_pipeline(engine, "r2")
    with pytest.raises(ConflictError, match="completed, not failed"):
        engine.retry_step("r2", "ops-charge-0")
    with pytest.raises(ExecutionNotFoundError, match="no step named"):
        engine.retry_step("r2", "nope")
    engine.retry_step("r2", "ops-charge-1")  # naming it explicitly works too
    assert engine.audit_log("ok") == []


def test_restart_same_id_clears_checkpoints_and_may_change_input(engine: zart.Zart) -> None:
    assert engine.run(ops_app.pipeline, 2, execution_id="s1") == "total=30"
    ops_app.CALLS.clear()
    st = engine.restart("s1", 3)
    assert st.status == "pending" and st.attempts == 0 and st.started_at is None
    assert engine.steps("s1") == []
    assert resume(engine, "s1") == "total=60"
    assert ops_app.CALLS == ["load", "charge-0", "charge-1", "charge-2", "report"]
    # Without arguments the stored input is kept.
    engine.restart("s1")
    assert resume(engine, "s1") == "total=60"
    entries = engine.audit_log("s1")
    assert [e.action for e in entries] == ["restart", "restart"]
    assert [e.details["new_input"] for e in entries] == [False, True]  # newest first
    assert entries[0].actor == getpass.getuser()  # the OS user by default


def test_restart_new_id_keeps_the_original(engine: zart.Zart) -> None:
    failed_pipeline(engine, "n1")
    st = engine.restart("n1", new_id="n1-again")
    assert st.id == "n1-again" and st.status == "pending"
    assert engine.status("n1").status == "failed"
    assert resume(engine, "n1-again") == "total=60"
    (entry,) = engine.audit_log("n1")
    assert entry.details["new_id"] == "n1-again"
    with pytest.raises(ConflictError, match="already exists"):
        engine.restart("n1", new_id="n1-again")
    with pytest.raises(InvalidInputError):
        engine.restart("n1", "not-an-int", "extra")


def test_restart_and_rerun_refuse_active_executions(engine: zart.Zart) -> None:
    engine.submit(ops_app.approval, "po", execution_id="w1")  # pending: a worker would run it
    with pytest.raises(ConflictError, match="it is pending"):
        engine.restart("w1")
    with pytest.raises(ConflictError, match="it is pending"):
        engine.rerun_from("w1", "anything")


def test_rerun_from_keeps_checkpoints_before_the_step(engine: zart.Zart) -> None:
    assert engine.run(ops_app.pipeline, 3, execution_id="f1") == "total=60"
    ops_app.CALLS.clear()
    before = {s.name: s.finished_at for s in engine.steps("f1")}
    st = engine.rerun_from("f1", "ops-charge-1", actor="ops-bot")
    assert st.status == "pending"
    kept = {s.name: s.finished_at for s in engine.steps("f1")}
    assert kept == {k: before[k] for k in ("ops-load", "ops-charge-0")}
    assert resume(engine, "f1") == "total=60"
    assert ops_app.CALLS == ["charge-1", "charge-2", "report"]
    (entry,) = engine.audit_log("f1")
    assert entry.action == "rerun-from" and entry.actor == "ops-bot"
    assert entry.details["deleted_steps"] == ["ops-charge-1", "ops-charge-2", "ops-report"]
    with pytest.raises(ExecutionNotFoundError, match="no step named"):
        engine.rerun_from("f1", "nope")


def test_worker_picks_up_a_retried_execution(engine: zart.Zart) -> None:
    import asyncio

    failed_pipeline(engine, "wk")
    engine.retry_step("wk")
    worker = engine.worker(concurrency=2, durable_names=["ops-pipeline"], poll_interval=0.05)
    asyncio.run(worker.run_async(until_idle=True))
    assert engine.status("wk").status == "completed"
    assert engine.result("wk") == "total=60"


def test_cli_admin_commands(engine: zart.Zart, db_url: str) -> None:
    failed_pipeline(engine, "c1")
    engine.close()

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--database-url", db_url, *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    out = json.loads(cli("retry-step", "c1", "--actor", "bob", "--json"))
    assert out["status"] == "pending"
    assert resume(engine, "c1") == "total=60"
    assert "c1 is pending" in cli("rerun-from", "c1", "ops-report")
    assert resume(engine, "c1") == "total=60"
    out = json.loads(cli("restart", "c1", "--input", "[1]", "--module", "ops_app", "--json"))
    assert out["status"] == "pending"
    assert resume(engine, "c1") == "total=10"
    cli("restart", "c1", "--new-id", "c1-copy")
    assert engine.status("c1-copy").status == "pending"
    rows = json.loads(cli("audit", "c1", "--json"))
    assert [r["action"] for r in rows] == ["restart", "restart", "rerun-from", "retry-step"]
    assert rows[-1]["actor"] == "bob"
    table = cli("audit")
    assert "retry-step" in table and "bob" in table

    def usage_error(*args: str) -> str:
        result = CliRunner().invoke(main, ["--database-url", db_url, *args])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("zart: error: ")
        return line

    assert "no execution" in usage_error("retry-step", "missing")
    assert "not failed" in usage_error("retry-step", "c1")
    assert "no step named" in usage_error("rerun-from", "c1", "nope")
    assert "not valid JSON" in usage_error("restart", "c1", "--input", "{bad")
    assert "no execution" in usage_error("audit", "missing")
