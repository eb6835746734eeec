"""The public schedule API: ``Zart.schedule`` / ``Zart.unschedule``, overlap policies
(skip, allow, buffer_one), backfill, and the "next 5 runs" preview, on both backends.
A real `zart worker --scheduler` process ticks a schedule defined from Python."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import ROOT
from wakeup_app import echo

import zart
from zart import ZartError
from zart._ops.schedules import list_schedules, occurrence_id, tick
from zart.cli import main

import ops_app
from ops_app import reset_ops_tables

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app(db_url: str) -> Iterator[zart.Zart]:
    reset_ops_tables(db_url)
    engine = zart.Zart(db_url, lease_seconds=5)
    yield engine
    engine.close()


def test_schedule_and_unschedule_from_python(app: zart.Zart) -> None:
    sched = app.schedule("nightly", ops_app.greet, "ana", cron="0 3 * * *", timezone="Europe/Paris")
    assert isinstance(sched, zart.Schedule)
    assert (sched.durable_name, sched.overlap, sched.backfill) == ("ops-greet", "skip", 0)
    runs = sched.next_runs
    assert len(runs) == 5 and runs[0] == sched.next_run_at
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(runs))
    assert all(t.astimezone(ZoneInfo("Europe/Paris")).hour == 3 for t in runs)
    # The same definition again changes nothing; a new one replaces it.
    assert app.schedule("nightly", ops_app.greet, "ana", cron="0 3 * * *",
                        timezone="Europe/Paris").next_run_at == sched.next_run_at  # fmt: skip
    again = app.schedule("nightly", "ops-greet", "ben", every=timedelta(minutes=5))
    assert again.every_seconds == 300 and again.cron is None
    assert [s.name for s in list_schedules(app)] == ["nightly"]
    assert app.unschedule("nightly") is True
    assert app.unschedule("nightly") is False


def test_schedule_validation(app: zart.Zart) -> None:
    with pytest.raises(ZartError, match="exactly one"):
        app.schedule("x", ops_app.greet, "n")
    with pytest.raises(ZartError, match="overlap must be one of skip, allow, buffer_one"):
        app.schedule("x", ops_app.greet, "n", every=5, overlap="maybe")
    with pytest.raises(ZartError, match="backfill must be from 0"):
        app.schedule("x", ops_app.greet, "n", every=5, backfill=-1)
    with pytest.raises(ZartError, match="unknown timezone"):
        app.schedule("x", ops_app.greet, "n", cron="* * * * *", timezone="Mars/Olympus")
    # The CLI's old name for "allow" still works, and is stored under the new name.
    assert app.schedule("x", ops_app.greet, "n", every=5, overlap="always").overlap == "allow"


def test_overlap_allow_skip_and_buffer_one(app: zart.Zart) -> None:
    h = 3600.0  # hourly: the three schedules share their times
    for policy in ("allow", "skip", "buffer_one"):
        sched = app.schedule(policy, ops_app.approval, "po", cron="0 * * * *", overlap=policy)
    t = sched.next_run_at.timestamp()
    policies = ("allow", "skip", "buffer_one")
    assert sorted(tick(app, now=t)) == sorted(occurrence_id(p, t) for p in policies)
    # An hour later every first occurrence still waits for its event.
    assert tick(app, now=t + h) == [occurrence_id("allow", t + h)]
    assert tick(app, now=t + 2.5 * h) == [occurrence_id("allow", t + 2 * h)]
    # buffer_one kept its due occurrence (one: t + h and t + 2h became one) and starts
    # it once the running one ends; skip dropped them.
    (buffered,) = [s for s in list_schedules(app) if s.name == "buffer_one"]
    assert buffered.next_run_at.timestamp() == t + h
    for policy in ("skip", "buffer_one"):
        app.cancel(occurrence_id(policy, t))
    assert tick(app, now=t + 2.6 * h) == [occurrence_id("buffer_one", t + h)]
    expected = [occurrence_id("allow", t + 3 * h), occurrence_id("skip", t + 3 * h)]
    assert sorted(tick(app, now=t + 3 * h)) == expected  # buffer_one: its t + h still runs


def test_backfill_creates_missed_occurrences_oldest_first_up_to_its_maximum(
    app: zart.Zart,
) -> None:
    minute = "* * * * *"  # aligned: both schedules share their times
    plain = app.schedule("plain", ops_app.greet, "p", cron=minute, overlap="allow")
    filled = app.schedule("filled", ops_app.greet, "f", cron=minute, overlap="allow", backfill=3)
    t = plain.next_run_at.timestamp()
    assert filled.next_run_at.timestamp() == t
    tick(app, now=t)
    # The scheduler was down for ten minutes: 10 occurrences were missed.
    started = tick(app, now=t + 600.5)
    assert [e for e in started if e.startswith("plain@")] == [occurrence_id("plain", t + 60)]
    assert [e for e in started if e.startswith("filled@")] == [
        occurrence_id("filled", t + 60 * k) for k in (1, 2, 3)
    ]
    rows = {s.name: s for s in list_schedules(app)}
    assert (
        rows["filled"].next_run_at.timestamp() == t + 660 == rows["plain"].next_run_at.timestamp()
    )
    assert rows["filled"].last_execution_id == occurrence_id("filled", t + 180)


def test_cli_overlap_names_backfill_and_next_runs(db_url: str) -> None:
    reset_ops_tables(db_url)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--database-url", db_url, "schedule", *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    added = json.loads(cli("add", "old-style", "ops_app:greet", "--every", "60", "--overlap",
                           "always", "--input", '"a"', "--json"))  # fmt: skip
    assert added["overlap"] == "allow" and len(added["next_runs"]) == 5
    cli("add", "buffered", "ops_app:greet", "--cron", "*/5 * * * *", "--overlap", "buffer_one",
        "--backfill", "2", "--input", '"b"')  # fmt: skip
    listed = {s["name"]: s for s in json.loads(cli("list", "--json"))}
    assert listed["buffered"]["overlap"] == "buffer_one" and listed["buffered"]["backfill"] == 2
    runs = listed["buffered"]["next_runs"]
    assert len(runs) == 5 and runs == sorted(runs) and runs[0] == listed["buffered"]["next_run_at"]
    table = cli("list")
    assert "NEXT 5 RUNS" in table and "buffer_one, backfill 2" in table


def test_a_worker_process_runs_a_schedule_defined_in_python(
    app: zart.Zart, db_url: str, tmp_path: Path
) -> None:
    app.schedule("fast", echo, 5, every=0.5, overlap="allow")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env["ZART_DATABASE_URL"] = db_url
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "zart", "worker", "wakeup_app", "--scheduler",
         "--poll-interval", "0.1", "--grace-seconds", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            done = [e for e in app.list(status="completed") if e.id.startswith("fast@")]
            if len(done) >= 2:
                break
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
        assert all(app.result(e.id)[0] == 5 for e in done)
        assert app.unschedule("fast")
        time.sleep(0.5)  # a tick already under way may still start one
        count = len([e for e in app.list(limit=1000) if e.id.startswith("fast@")])
        time.sleep(1.5)
        assert len([e for e in app.list(limit=1000) if e.id.startswith("fast@")]) == count
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
