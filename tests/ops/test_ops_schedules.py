"""Schedules: the cron parser, registration from several processes, occurrences once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

import zart
from zart import ZartError
from zart._ops.cron import Cron, CronError
from zart._ops.schedules import list_schedules, occurrence_id, register_schedule, tick
from zart.cli import main

import ops_app
from ops_app import reset_ops_tables

UTC = timezone.utc


def at(text: str, tz: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


# ---------------------------------------------------------------------- cron


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2026-01-01T10:07", "2026-01-01T10:15"),
        ("*/15 * * * *", "2026-01-01T10:45", "2026-01-01T11:00"),
        ("0 9 * * MON-FRI", "2026-11-27T09:00", "2026-11-30T09:00"),  # Fri -> Mon
        ("30 8 1,15 * *", "2026-02-02T00:00", "2026-02-15T08:30"),
        ("0 0 1 jan,Jul *", "2026-02-01T00:00", "2026-07-01T00:00"),
        ("5-10/5 3 * * *", "2026-01-01T03:05", "2026-01-01T03:10"),
        ("0 12 13 * FRI", "2026-03-01T00:00", "2026-03-06T12:00"),  # dom OR dow: Fri 6th
        ("0 0 29 2 *", "2026-03-01T00:00", "2028-02-29T00:00"),
        ("0 0 * * 7", "2026-11-25T00:00", "2026-11-29T00:00"),  # 7 is Sunday too
        ("@daily", "2026-05-05T13:00", "2026-05-06T00:00"),
        ("@hourly", "2026-05-05T13:00", "2026-05-05T14:00"),
        # Six fields, seconds first (as the Rust original accepts them):
        ("*/20 * * * * *", "2026-01-01T10:07:05", "2026-01-01T10:07:20"),
        ("30 0 12 * * *", "2026-01-01T00:00", "2026-01-01T12:00:30"),
        ("0 */5 * * * *", "2026-01-01T10:07:59", "2026-01-01T10:10"),
    ],
)
def test_cron_next_after_utc(expr: str, after: str, expected: str) -> None:
    assert Cron.parse(expr).next_after(at(after)) == at(expected)


def test_cron_with_seconds_needs_a_valid_seconds_field() -> None:
    with pytest.raises(CronError, match="second value 60 is out of range"):
        Cron.parse("60 * * * * *")
    with pytest.raises(CronError, match="or 6 with seconds first"):
        Cron.parse("0 0 * * * * *")


def test_cron_timezones_and_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    got = Cron.parse("0 9 * * *").next_after(at("2026-07-01T06:00"), paris)
    assert got == at("2026-07-01T07:00")  # 09:00 CEST is 07:00 UTC
    ny = ZoneInfo("America/New_York")
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 -> 03:00): skipped.
    got = Cron.parse("30 2 * * *").next_after(at("2026-03-08T00:00", "America/New_York"), ny)
    assert got.astimezone(ny).replace(tzinfo=None) == datetime(2026, 3, 9, 2, 30)
    # 2026-11-01 01:30 happens twice: it runs once, at the first (EDT, 05:30 UTC).
    cron = Cron.parse("30 1 * * *")
    first = cron.next_after(at("2026-11-01T00:00", "America/New_York"), ny)
    assert first == at("2026-11-01T05:30")
    assert cron.next_after(first, ny).astimezone(ny).day == 2


@pytest.mark.parametrize(
    "expr",
    ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * FOO *",
     "*/0 * * * *", "10-5 * * * *", "1,,2 * * * *", "a * * * *", "* * 31 2 *"],
)  # fmt: skip
def test_cron_rejects_bad_expressions(expr: str) -> None:
    with pytest.raises(CronError):
        Cron.parse(expr).next_after(at("2026-01-01T00:00"))


# ---------------------------------------------------------------------- schedules


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[zart.Zart, zart.Zart]]:
    """Two engines on one database: two processes (or hosts) running the scheduler."""
    reset_ops_tables(db_url)
    a, b = zart.Zart(db_url, lease_seconds=5), zart.Zart(db_url, lease_seconds=5)
    yield a, b
    a.close()
    b.close()


def test_same_schedule_from_several_processes_is_one(engines: tuple[zart.Zart, zart.Zart]) -> None:
    a, b = engines
    s1, o1 = register_schedule(a, "hourly-greet", ops_app.greet, "bot", cron="0 * * * *")
    s2, o2 = register_schedule(b, "hourly-greet", ops_app.greet, "bot", cron="0 * * * *")
    assert (o1, o2) == ("created", "unchanged")
    assert s1.next_run_at == s2.next_run_at and s1.next_run_at.minute == 0
    assert len(list_schedules(a)) == 1
    _, o3 = register_schedule(a, "hourly-greet", ops_app.greet, "bot", cron="30 * * * *")
    assert o3 == "updated" and list_schedules(b)[0].cron == "30 * * * *"


def test_each_occurrence_runs_once(engines: tuple[zart.Zart, zart.Zart]) -> None:
    a, b = engines
    sched, _ = register_schedule(a, "every-min", ops_app.greet, "tick", every=60, overlap="always")
    due = sched.next_run_at.timestamp()
    # Both processes tick at the same moment: one occurrence, started once.
    started = tick(a, now=due + 1) + tick(b, now=due + 1)
    expected = occurrence_id("every-min", due)
    assert started == [expected]
    assert expected == "every-min@" + sched.next_run_at.isoformat().replace("+00:00", "Z")
    assert [e.id for e in a.list(durable_name="ops-greet")] == [expected]
    assert a.run(ops_app.greet, execution_id=expected) == "hello TICK"  # as a worker would
    # Missed occurrences collapse into one (the first missed), then the next is after now.
    later = tick(b, now=due + 600.5)
    assert later == [occurrence_id("every-min", due + 60)]
    assert tick(a, now=due + 600.5) == []
    (row,) = list_schedules(a)
    assert row.next_run_at.timestamp() == due + 660 and row.last_execution_id == later[0]


def test_overlap_skip_waits_for_the_previous_occurrence(
    engines: tuple[zart.Zart, zart.Zart],
) -> None:
    a, _ = engines
    sched, _ = register_schedule(a, "approvals", ops_app.approval, "po", every=10)
    due = sched.next_run_at.timestamp()
    first = tick(a, now=due)
    assert len(first) == 1
    assert tick(a, now=due + 10) == []  # the first is still pending: skipped
    a.cancel(first[0])
    assert tick(a, now=due + 20) == [occurrence_id("approvals", due + 20)]


def test_schedule_validation(engines: tuple[zart.Zart, zart.Zart]) -> None:
    a, _ = engines
    with pytest.raises(ZartError, match="exactly one"):
        register_schedule(a, "x", ops_app.greet, "n")
    with pytest.raises(ZartError, match="exactly one"):
        register_schedule(a, "x", ops_app.greet, "n", cron="* * * * *", every=5)
    with pytest.raises(ZartError, match="unknown timezone"):
        register_schedule(a, "x", ops_app.greet, "n", cron="* * * * *", tz="Mars/Olympus")
    with pytest.raises(CronError):
        register_schedule(a, "x", ops_app.greet, "n", cron="* * *")
    with pytest.raises(ZartError, match="overlap"):
        register_schedule(a, "x", ops_app.greet, "n", every=5, overlap="maybe")
    with pytest.raises(ZartError, match="'@'"):
        register_schedule(a, "x@y", ops_app.greet, "n", every=5)


def test_schedule_cli(sqlite_url: str) -> None:
    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--database-url", sqlite_url, *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    out = json.loads(
        cli(
            "schedule", "add", "nightly", "ops_app:greet", "--cron", "0 3 * * *",
            "--tz", "Europe/Paris", "--input", '"night"', "--json",
        )
    )  # fmt: skip
    assert out["outcome"] == "created" and out["timezone"] == "Europe/Paris"
    assert "nightly" in cli("schedule", "list")
    assert json.loads(cli("schedule", "list", "--json"))[0]["cron"] == "0 3 * * *"
    assert cli("schedule", "tick") == ""  # not due yet
    assert "removed" in cli("schedule", "remove", "nightly")
    result = CliRunner().invoke(
        main, ["--database-url", sqlite_url, "schedule", "remove", "nightly"]
    )
    assert result.exit_code == 2 and result.stderr.startswith("zart: error: no schedule")
    result = CliRunner().invoke(
        main,
        [
            "--database-url",
            sqlite_url,
            "schedule",
            "add",
            "s",
            "ops_app:greet",
            "--cron",
            "x",
            "--input",
            '"n"',
        ],
    )
    assert result.exit_code == 2 and "5 fields" in result.stderr


def test_serve_runs_the_scheduler_and_its_worker_runs_occurrences(
    engines: tuple[zart.Zart, zart.Zart],
) -> None:
    import time

    import httpx

    from ops_app import running_server

    a, _ = engines
    register_schedule(a, "fast", ops_app.greet, "sched", every=0.5, overlap="always")
    with running_server(a, scheduler=True, worker_concurrency=2) as url:
        deadline = time.monotonic() + 15
        while True:
            page = httpx.get(url + "/api/executions", params={"status": "completed"}).json()
            done = [e["id"] for e in page["items"] if e["id"].startswith("fast@")]
            if len(done) >= 2:
                break
            assert time.monotonic() < deadline, page
            time.sleep(0.1)
    assert all(a.result(eid) == "hello SCHED" for eid in done)
