"""Pause rules, enforced by real worker processes (tests/pause_app.py) on SQLite and
PostgreSQL: a rule holds every matching execution before its next new step (its
current step finishes), within about a second, with no query per step; removing it
lets them continue where they stopped, each step body having run exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ROOT
from pause_app import orders, ticker
from starlette.testclient import TestClient

import zart
from zart._ops.api import create_app

pytestmark = pytest.mark.timeout(90)

BOUND = 15.0  # seconds: a functional limit, not a performance number


class Workers:
    """`zart worker pause_app` processes sharing the test's log and gate files."""

    def __init__(self, url: str, tmp: Path, count: int) -> None:
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["PAUSE_LOG"] = str(tmp / "steps.log")
        self.env["PAUSE_GATE"] = str(tmp / "gate")
        self.env.pop("ZART_DATABASE_URL", None)
        self.url, self.tmp = url, tmp
        cmd = [
            sys.executable, "-m", "zart", "--database-url", url, "worker", "pause_app",
            "--poll-interval", "0.1", "--lease-seconds", "5", "--grace-seconds", "2",
        ]  # fmt: skip
        self.procs = []
        for n in range(count):
            with open(tmp / f"worker{n}.log", "ab") as out:
                self.procs.append(
                    subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
                )

    def log(self) -> list[str]:
        path = Path(self.env["PAUSE_LOG"])
        return path.read_text().splitlines() if path.exists() else []

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp.glob("worker*.log"))

    def open_gate(self) -> None:
        Path(self.env["PAUSE_GATE"]).touch()

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = BOUND) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            for proc in self.procs:
                assert proc.poll() is None, f"a worker exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"never: {what}\n{self.output()}"
            time.sleep(0.02)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    app = zart.Zart(db_url, lease_seconds=5)
    yield app
    app.close()


def _zart(url: str, *args: str) -> Any:
    env = dict(os.environ, ZART_DATABASE_URL=url, ZART_USER="carol")
    out = subprocess.run(
        [sys.executable, "-m", "zart", *args, "--json"],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_a_step_rule_holds_running_executions_before_their_charge(
    db_url: str, engine: zart.Zart, tmp_path: Path
) -> None:
    """Six orders sit in their `hold` step in two workers when `charge:*` is paused: each
    finishes `hold` and stops before `charge` (its body never runs), shows as paused
    with the rule; removing the rule completes them all, every body having run once."""
    ids = [f"order-{n}" for n in range(1, 7)]
    workers = Workers(db_url, tmp_path, 2)
    try:
        for n, eid in enumerate(ids, start=1):
            engine.submit(orders, n, execution_id=eid)
        workers.wait_until("every order is in hold", lambda: _count(workers, "hold:") == 6)
        rule = engine.pause(step="charge:*", reason="card processor down", actor="alice")
        time.sleep(1.3)  # a new rule reaches every process within about a second
        workers.open_gate()
        workers.wait_until(
            "every order paused",
            lambda: all(engine.status(e).status == "paused" for e in ids),
        )
        assert all(engine.status(e).paused_by == rule.id for e in ids)
        assert _count(workers, "charge:") == 0  # no charge body ran
        if db_url.startswith("sqlite"):  # the CLI once (a process start costs a second)
            listed = _zart(db_url, "list", "--status", "paused")
            rules = [r.as_dict() for r in engine.pause_rules()]
        else:
            listed = [st.as_dict() for st in engine.list(status="paused")]
            rules = _zart(db_url, "pause", "--list")
        assert sorted(e["id"] for e in listed) == ids
        assert {e["paused_by"] for e in listed} == {rule.id}
        assert [(r["id"], r["step_pattern"], r["actor"]) for r in rules] == [
            (rule.id, "charge:*", "alice")
        ]

        done = engine.resume_rule(rule.id, actor="bob")
        assert sorted(done.execution_ids) == ids
        workers.wait_until(
            "every order completed",
            lambda: all(engine.status(e).status == "completed" for e in ids),
        )
        assert [engine.result(e) for e in ids] == [n * 10101 for n in range(1, 7)]
        ran = Counter(workers.log())
        for n in range(1, 7):
            for name in ("prep", "hold", "charge", "ship"):
                assert ran[f"{name}:{n}"] == 1, (name, n, ran)
        assert engine.pause_rules() == []
    finally:
        workers.stop()

    trail = {(a.execution_id, a.action, a.actor) for a in engine.audit_log(limit=100)}
    subject = f"pause-rule:{rule.id}"
    assert {(subject, "pause", "alice"), (subject, "resume", "bob")} <= trail
    for eid in ids:
        assert {(eid, "paused", subject), (eid, "resume", "bob")} <= trail


def _count(workers: Workers, prefix: str) -> int:
    return sum(1 for line in workers.log() if line.startswith(prefix))


def _ticks(workers: Workers, run: str) -> list[tuple[int, int]]:
    """(step index, refreshes of the pause-rule cache so far) of each tick of ``run``."""
    found = []
    for line in workers.log():
        parts = line.split(":")
        if parts[0] == "tick" and parts[1] == run:
            found.append((int(parts[2]), int(parts[3])))
    return found


def test_execution_and_durable_rules_take_effect_within_a_second(
    db_url: str, engine: zart.Zart, tmp_path: Path
) -> None:
    """Two tickers run quick steps in a worker. An execution rule stops one within about
    a second and lets the other run; a durable rule then stops the other. Resuming the
    first by id removes its rule, but the durable rule holds it again at the same step.
    The worker read the rules about once a second, not once a step."""
    n = 400
    workers = Workers(db_url, tmp_path, 1)
    try:
        engine.submit(ticker, "a", n, execution_id="tick-a")
        engine.submit(ticker, "b", n, execution_id="tick-b")
        workers.wait_until("both tick", lambda: min(len(_ticks(workers, r)) for r in "ab") > 5)

        started = time.monotonic()
        one = engine.pause(execution_id="tick-a")
        workers.wait_until("tick-a paused", lambda: engine.status("tick-a").status == "paused")
        assert time.monotonic() - started < 2.0
        assert engine.status("tick-a").paused_by == one.id
        before = len(_ticks(workers, "b"))
        workers.wait_until("tick-b goes on", lambda: len(_ticks(workers, "b")) > before + 20)
        assert engine.status("tick-b").status == "running"

        started = time.monotonic()
        every = engine.pause(durable=ticker)
        workers.wait_until("tick-b paused", lambda: engine.status("tick-b").status == "paused")
        assert time.monotonic() - started < 2.0
        assert engine.status("tick-b").paused_by == every.id

        a_ticks = len(_ticks(workers, "a"))
        resumed = engine.resume("tick-a", actor="dave")  # removes the execution rule
        assert resumed.status == "pending"
        assert [r.id for r in engine.pause_rules()] == [every.id]
        workers.wait_until(
            "tick-a held again by the durable rule",
            lambda: engine.status("tick-a").paused_by == every.id,
        )
        assert len(_ticks(workers, "a")) == a_ticks  # not one more step ran

        ticks = _ticks(workers, "a") + _ticks(workers, "b")
        elapsed = time.monotonic() - started + 3
        refreshes = max(r for _, r in ticks)
        assert len(ticks) > 10 * refreshes  # never a query per step
        assert refreshes <= elapsed * 2 + 10  # about once a second (plus the local resets)

        workers.open_gate()  # the remaining ticks run at full speed
        done = engine.resume_rule(durable="pause-ticker")
        assert sorted(done.execution_ids) == ["tick-a", "tick-b"]
        workers.wait_until(
            "both completed",
            lambda: all(engine.status(e).status == "completed" for e in ("tick-a", "tick-b")),
            timeout=30,
        )
        assert engine.result("tick-a") == engine.result("tick-b") == sum(range(n))
        for run in "ab":
            assert sorted(i for i, _ in _ticks(workers, run)) == list(range(n))
    finally:
        workers.stop()


def test_no_rule_costs_no_statement_per_step(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, with a rule that matches nothing: a 300-step run reads the rules
    table at most once a second; every other statement is the usual one per step."""
    monkeypatch.setenv("PAUSE_LOG", str(tmp_path / "steps.log"))
    monkeypatch.setenv("PAUSE_GATE", str(tmp_path))  # exists: no sleep in the steps
    app = zart.Zart(sqlite_url)
    app.ops_store.ensure_schema()
    app.pause(step="never-*")
    sent: list[str] = []

    @sa.event.listens_for(app.ops_store.db.engine, "connect")
    def trace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(sent.append)

    app.ops_store.db.engine.dispose()
    app.ops_store.db.drop_connection()
    try:
        started = time.monotonic()
        assert app.run(ticker, "solo", 300) == sum(range(300))
        elapsed = time.monotonic() - started
        reads = [s for s in sent if "zart_pause_rules" in s]
        assert 1 <= len(reads) <= elapsed + 2
        words = [" ".join(s.split()[:3]).lower() for s in sent]
        checkpoints = [w for w in words if w == "insert into zart_steps"]
        assert len(checkpoints) == 300
        # Besides: the create, the finish, the rules reads (begin, select, commit) and
        # lease checks of steps starting over 2 ms after the last write ("select 1").
        usual = {"insert into zart_executions", "update zart_executions set", "select 1 from"}
        usual |= {"insert into zart_steps", "begin", "commit"}
        assert {w for w in words if "zart_pause_rules" not in w} <= usual, words
    finally:
        app.close()


def _drain(app: zart.Zart) -> None:
    worker = app.worker(concurrency=1, poll_interval=0.02)
    asyncio.run(worker.run_async(until_idle=True))


def test_pause_rules_over_the_api(db_url: str, engine: zart.Zart) -> None:
    """Add, list and remove rules over HTTP; a paused execution resumes by id."""
    client = TestClient(create_app(engine), base_url="http://127.0.0.1")
    r = client.post("/api/pause-rules", json={"durable": "pause-orders", "actor": "erin"})
    assert r.status_code == 200, r.text
    rule = r.json()
    assert rule["durable_name"] == "pause-orders" and rule["actor"].startswith("erin")
    assert client.post("/api/pause-rules", json={}).status_code == 422
    assert [x["id"] for x in client.get("/api/pause-rules").json()["items"]] == [rule["id"]]

    engine.submit(orders, 7, execution_id="api-order")
    _drain(engine)
    body = client.get("/api/executions/api-order").json()
    assert (body["status"], body["paused_by"]) == ("paused", rule["id"])

    r = client.post("/api/pause-rules/resume", json={"rule_id": rule["id"], "actor": "erin"})
    assert r.status_code == 200, r.text
    assert r.json()["execution_ids"] == ["api-order"]
    assert client.post("/api/pause-rules/resume", json={"rule_id": rule["id"]}).status_code == 404
    assert client.get("/api/pause-rules").json()["items"] == []

    engine.pause(execution_id="api-order")  # paused again at its first step once claimed
    _drain(engine)
    assert engine.status("api-order").status == "paused"
    r = client.post("/api/executions/api-order/resume", json={"actor": "erin"})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert engine.pause_rules() == []
