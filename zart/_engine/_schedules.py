"""Recurring durable executions: a cron expression (with timezone) or a fixed delay.

``Zart.schedule`` / ``zart schedule add`` define them; the scheduler loop
(``Zart.worker(scheduler=True)``, ``zart worker --scheduler``, ``zart serve``) starts
their occurrences.

Each occurrence is an ordinary execution with a deterministic id,
``"<schedule>@<ISO time, UTC>"``. Starting it is idempotent (the id is the primary
key), so any number of processes may run the scheduler loop against one database:
each occurrence is created once, and a compare-and-set on ``next_run_at`` moves
the schedule on once.

Occurrences missed while no scheduler ran collapse into one, started late under the
id of the first missed time (the next one is the first due after now), unless the
schedule asks for a **backfill**: ``backfill=N`` creates each missed occurrence as its
own execution, oldest first, at most N of them; later missed ones are dropped, and
the schedule moves on to the first time after now.

**Overlap** (the previous occurrence is still active when the next one is due):
``skip`` drops the due occurrence; ``allow`` starts it anyway; ``buffer_one`` keeps
it (one at most: later ones collapse into it) and starts it once the previous one
has ended. ``always`` is the old name of ``allow``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zart._engine._cron import Cron
from zart._errors import SerializationError, ZartError
from zart._execution._durable import DurableFunction
from zart._store import ACTIVE_STATUSES, OpsStore, RaceLost

log = logging.getLogger("zart.schedules")
OVERLAP_POLICIES = ("skip", "allow", "buffer_one")
OVERLAP_ALIASES = {"always": "allow"}  # the CLI's first name for "allow"
MAX_BACKFILL = 1000
PREVIEW_RUNS = 5


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None


def occurrence_id(name: str, when: float) -> str:
    """The execution id of the occurrence of schedule ``name`` due at ``when``."""
    stamp = datetime.fromtimestamp(when, tz=timezone.utc).isoformat(timespec="seconds")
    return f"{name}@{stamp.replace('+00:00', 'Z')}"


def overlap_policy(name: str) -> str:
    """The canonical overlap policy for ``name`` (aliases accepted); ZartError if unknown."""
    policy = OVERLAP_ALIASES.get(name, name)
    if policy not in OVERLAP_POLICIES:
        raise ZartError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {name!r}")
    return policy


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A schedule as stored, with a preview of its next runs (``next_runs``)."""

    name: str
    durable_name: str
    cron: str | None
    timezone: str
    every_seconds: float | None
    overlap: str
    next_run_at: datetime
    last_run_at: datetime | None
    last_execution_id: str | None
    backfill: int = 0
    next_runs: tuple[datetime, ...] = ()

    @classmethod
    def from_row(cls, row: dict[str, Any], now: float | None = None) -> Schedule:
        next_run = _dt(row["next_run_at"])
        assert next_run is not None
        runs = upcoming(row, PREVIEW_RUNS, time.time() if now is None else now)
        return cls(
            name=row["name"],
            durable_name=row["durable_name"],
            cron=row["cron"],
            timezone=row["timezone"],
            every_seconds=row["every_seconds"],
            overlap=OVERLAP_ALIASES.get(row["overlap"], row["overlap"]),
            next_run_at=next_run,
            last_run_at=_dt(row["last_run_at"]),
            last_execution_id=row["last_execution_id"],
            backfill=int(row.get("backfill") or 0),
            next_runs=tuple(datetime.fromtimestamp(t, tz=timezone.utc) for t in runs),
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields, in order, with times as ISO 8601 strings."""
        data = dataclasses.asdict(self)
        data["next_run_at"] = self.next_run_at.isoformat()
        data["last_run_at"] = self.last_run_at.isoformat() if self.last_run_at else None
        data["next_runs"] = [t.isoformat() for t in self.next_runs]
        return data


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ZartError(f"unknown timezone {name!r} (use an IANA name like Europe/Paris)") from None


def next_run(
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


def _following(row: dict[str, Any], due: float, after: float) -> float:
    anchor = due if row["every_seconds"] is not None else None
    return next_run(row["cron"], row["timezone"], row["every_seconds"], after, anchor)


def upcoming(row: dict[str, Any], count: int, now: float) -> list[float]:
    """The next ``count`` run times of a stored schedule, as the scheduler will start
    them: its ``next_run_at`` (at once, if already due), then the next after now."""
    runs = [float(row["next_run_at"])]
    while len(runs) < count:
        runs.append(_following(row, runs[0], max(now, runs[-1])))
    return runs


def _validate(
    name: str, cron: str | None, every: float | None, tz: str, overlap: str, backfill: int
) -> str:
    if not name or "@" in name:
        raise ZartError(f"schedule name must be non-empty and without '@', got {name!r}")
    if (cron is None) == (every is None):
        raise ZartError("give exactly one of cron= (an expression) and every= (seconds)")
    if every is not None and not every > 0:
        raise ZartError(f"every must be a positive number of seconds, got {every!r}")
    if isinstance(backfill, bool) or not isinstance(backfill, int):
        raise ZartError(f"backfill must be a whole number, got {backfill!r}")
    if not 0 <= backfill <= MAX_BACKFILL:
        raise ZartError(f"backfill must be from 0 to {MAX_BACKFILL}, got {backfill}")
    policy = overlap_policy(overlap)
    _zone(tz)
    if cron is not None:
        Cron.parse(cron)
    return policy


def define_schedule(
    store: OpsStore,
    name: str,
    durable: DurableFunction[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    cron: str | None = None,
    every: float | timedelta | None = None,
    tz: str = "UTC",
    overlap: str = "skip",
    backfill: int = 0,
) -> tuple[Schedule, str]:
    """Create (or update) schedule ``name`` running ``durable(*args, **kwargs)``.

    Registering the same definition again (from any process) changes nothing.
    Returns the schedule and "created" / "updated" / "unchanged".
    """
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    policy = _validate(name, cron, seconds, tz, overlap, backfill)
    try:
        input_json = durable.args_codec.dumps(args, kwargs)
    except SerializationError as exc:
        raise SerializationError(f"cannot store the input of schedule {name!r}: {exc}") from None
    values = {
        "name": name,
        "durable_name": durable.name,
        "cron": cron,
        "timezone": tz,
        "every_seconds": float(seconds) if seconds is not None else None,
        "input": input_json,
        "overlap": policy,
        "backfill": backfill,
        "next_run_at": next_run(cron, tz, seconds, time.time()),
    }
    row, outcome = store.upsert_schedule(values)
    return Schedule.from_row({"last_run_at": None, "last_execution_id": None, **row}), outcome


def list_schedules(store: OpsStore) -> list[Schedule]:
    now = time.time()
    return [Schedule.from_row(r, now) for r in store.list_schedules()]


def remove_schedule(store: OpsStore, name: str) -> bool:
    """Delete a schedule (its past executions stay). False if there was none."""
    return store.delete_schedule(name)


def _due_times(row: dict[str, Any], due: float, now: float) -> list[float]:
    """The occurrences to create now: the first due one, then (with a backfill) each
    further missed one, oldest first, ``backfill`` in all at most."""
    times = [due]
    while len(times) < int(row.get("backfill") or 0):
        later = _following(row, due, times[-1])
        if later > now:
            break
        times.append(later)
    return times


def _previous_active(store: OpsStore, row: dict[str, Any]) -> bool:
    if not row["last_execution_id"]:
        return False
    previous = store.get_execution(row["last_execution_id"])
    return previous is not None and previous.status in ACTIVE_STATUSES


def _tick_one(store: OpsStore, row: dict[str, Any], now: float) -> list[str]:
    """Start the due occurrences of one schedule; the ids started by this call."""
    due = float(row["next_run_at"])
    policy = OVERLAP_ALIASES.get(row["overlap"], row["overlap"])
    busy = policy in ("skip", "buffer_one") and _previous_active(store, row)
    if busy and policy == "buffer_one":
        return []  # stays due: started by the first tick after the previous one ends
    ids = [] if busy else [occurrence_id(row["name"], t) for t in _due_times(row, due, now)]
    for eid in ids:
        # Idempotent: another scheduler may have created this very occurrence.
        # From the stored input: ``zart schedule tick`` imports no durable function.
        with contextlib.suppress(RaceLost):
            store.create_execution(eid, row["durable_name"], row["input"])
    following = _following(row, due, max(now, due))
    if not store.advance_schedule(row["name"], due, following, ids[-1] if ids else None):
        return []  # another scheduler moved it on first
    if busy:
        skipped = occurrence_id(row["name"], due)
        log.info("schedule %s: skipped %s (previous still active)", row["name"], skipped)
    for eid in ids:
        log.info("schedule %s: started %s", row["name"], eid)
    return ids


def tick(store: OpsStore, now: float | None = None) -> list[str]:
    """Start every due occurrence once; return the ids this call started."""
    now = time.time() if now is None else now
    started: list[str] = []
    for row in store.due_schedules(now):
        started.extend(_tick_one(store, row, now))
    return started


class SchedulerThread:
    """Runs ``tick`` every ``interval`` seconds on a daemon thread until ``stop()``."""

    def __init__(self, store: OpsStore, interval: float = 1.0) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="zart-scheduler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tick(self.store)
            except Exception as exc:  # database briefly away: try again next tick
                log.warning("scheduler tick failed: %s", exc)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
