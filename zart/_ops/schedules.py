"""Recurring durable executions: a cron expression (with timezone) or a fixed delay.

Each occurrence is an ordinary execution with a deterministic id,
``"<schedule>@<ISO time, UTC>"``. Starting it is idempotent (the id is the primary
key), so any number of processes may run the scheduler loop against one database:
each occurrence is created once, and a compare-and-set on ``next_run_at`` moves
the schedule on once. Occurrences missed while no scheduler ran collapse into one
(started late, under the id of the first missed time), rather than a burst of
catch-up runs; the next one is the first due after now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zart import DurableFunction, SerializationError, ZartError
from zart._ops._internals import ACTIVE_STATUSES, RaceLost
from zart._ops.cron import Cron

if TYPE_CHECKING:
    from zart import Zart

log = logging.getLogger("zart.schedules")
OVERLAP_POLICIES = ("skip", "always")


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None


def occurrence_id(name: str, when: float) -> str:
    """The execution id of the occurrence of schedule ``name`` due at ``when``."""
    stamp = datetime.fromtimestamp(when, tz=timezone.utc).isoformat(timespec="seconds")
    return f"{name}@{stamp.replace('+00:00', 'Z')}"


@dataclasses.dataclass(frozen=True)
class Schedule:
    name: str
    durable_name: str
    cron: str | None
    timezone: str
    every_seconds: float | None
    overlap: str
    next_run_at: datetime
    last_run_at: datetime | None
    last_execution_id: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Schedule:
        next_run = _dt(row["next_run_at"])
        assert next_run is not None
        return cls(
            name=row["name"],
            durable_name=row["durable_name"],
            cron=row["cron"],
            timezone=row["timezone"],
            every_seconds=row["every_seconds"],
            overlap=row["overlap"],
            next_run_at=next_run,
            last_run_at=_dt(row["last_run_at"]),
            last_execution_id=row["last_execution_id"],
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields, in order, with times as ISO 8601 strings."""
        data = dataclasses.asdict(self)
        data["next_run_at"] = self.next_run_at.isoformat()
        data["last_run_at"] = self.last_run_at.isoformat() if self.last_run_at else None
        return data


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ZartError(f"unknown timezone {name!r} (use an IANA name like Europe/Paris)") from None


def _next_run(
    cron: str | None, tz: str, every: float | None, after: float, anchor: float | None = None
) -> float:
    """The first occurrence strictly after ``after``. Fixed delays keep their phase
    (``anchor`` + k * every) so that every process computes the same times."""
    if cron is not None:
        when = Cron.parse(cron).next_after(
            datetime.fromtimestamp(after, tz=timezone.utc), _zone(tz)
        )
        return when.timestamp()
    assert every is not None
    if anchor is None:
        return float(math.floor(after) + every)
    k = math.floor((after - anchor) / every) + 1
    return anchor + max(k, 1) * every


def register_schedule(
    app: Zart,
    name: str,
    durable: DurableFunction[Any, Any],
    *args: Any,
    cron: str | None = None,
    every: float | None = None,
    tz: str = "UTC",
    overlap: str = "skip",
    **kwargs: Any,
) -> tuple[Schedule, str]:
    """Create (or update) schedule ``name`` running ``durable(*args, **kwargs)``.

    Exactly one of ``cron`` (5-field expression, evaluated in ``tz``) and ``every``
    (seconds) is given. ``overlap="skip"`` does not start an occurrence while the
    previous one is still active; ``"always"`` starts it anyway. Registering the
    same definition again (from any process) changes nothing. Returns the schedule
    and "created" / "updated" / "unchanged".
    """
    if not name or "@" in name:
        raise ZartError(f"schedule name must be non-empty and without '@', got {name!r}")
    if (cron is None) == (every is None):
        raise ZartError("give exactly one of cron= (an expression) and every= (seconds)")
    if every is not None and not every > 0:
        raise ZartError(f"every must be a positive number of seconds, got {every!r}")
    if overlap not in OVERLAP_POLICIES:
        raise ZartError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {overlap!r}")
    _zone(tz)
    if cron is not None:
        Cron.parse(cron)
    try:
        input_json = durable.args_codec.dumps(args, kwargs)
    except SerializationError as exc:
        raise SerializationError(f"cannot store the input of schedule {name!r}: {exc}") from None
    values = {
        "name": name,
        "durable_name": durable.name,
        "cron": cron,
        "timezone": tz,
        "every_seconds": float(every) if every is not None else None,
        "input": input_json,
        "overlap": overlap,
        "next_run_at": _next_run(cron, tz, every, time.time()),
    }
    row, outcome = app.ops_store.upsert_schedule(values)
    return Schedule.from_row({"last_run_at": None, "last_execution_id": None, **row}), outcome


def list_schedules(app: Zart) -> list[Schedule]:
    return [Schedule.from_row(r) for r in app.ops_store.list_schedules()]


def remove_schedule(app: Zart, name: str) -> bool:
    """Delete a schedule (its past executions stay). False if there was none."""
    return app.ops_store.delete_schedule(name)


def _create_occurrence(app: Zart, execution_id: str, durable_name: str, input_json: str) -> None:
    """Create the occurrence from the schedule's stored input, unless it exists.

    Not ``Zart.submit``: that needs the durable function imported to encode its input,
    and ``zart schedule tick`` imports nothing; the operations store creates it from
    the stored JSON input.
    """
    # Idempotent: another scheduler may have created this very occurrence.
    with contextlib.suppress(RaceLost):
        app.ops_store.create_execution(execution_id, durable_name, input_json)


def tick(app: Zart, now: float | None = None) -> list[str]:
    """Start every due occurrence once; return the ids this call started."""
    store = app.ops_store
    now = time.time() if now is None else now
    started: list[str] = []
    for row in store.due_schedules(now):
        due = float(row["next_run_at"])
        eid = occurrence_id(row["name"], due)
        skip = False
        if row["overlap"] == "skip" and row["last_execution_id"]:
            previous = store.get_execution(row["last_execution_id"])
            skip = previous is not None and previous.status in ACTIVE_STATUSES
        if not skip:
            _create_occurrence(app, eid, row["durable_name"], row["input"])
        anchor = due if row["every_seconds"] is not None else None
        following = _next_run(
            row["cron"], row["timezone"], row["every_seconds"], max(now, due), anchor
        )
        if store.advance_schedule(row["name"], due, following, None if skip else eid):
            if skip:
                log.info("schedule %s: skipped %s (previous still active)", row["name"], eid)
            else:
                log.info("schedule %s: started %s", row["name"], eid)
                started.append(eid)
    return started


class SchedulerThread:
    """Runs ``tick`` every ``interval`` seconds on a daemon thread until ``stop()``."""

    def __init__(self, app: Zart, interval: float = 1.0) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="zart-scheduler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tick(self.app)
            except Exception as exc:  # database briefly away: try again next tick
                log.warning("scheduler tick failed: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
