"""Retention: ``Zart.gc`` / ``zart gc`` and the worker's background rounds.

Deletes finished executions older than a given age, each with its steps, events,
child executions and audit rows, in bounded batches (``_store/_retention.py`` says
how a batch keeps every tree whole and never waits on a lock). Open executions
(pending, running, sleeping, waiting, paused, diverged, ...) are never deleted, nor
is a child while its tree has an open member.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from zart._errors import ZartError
from zart._store import TERMINAL_STATUSES, Database, RetentionStore

log = logging.getLogger("zart.retention")

DEFAULT_STATUSES = ("completed", "failed", "cancelled")
BATCH_SIZE = 500  # root executions per transaction
ROUND_BATCHES = 10  # batches per background round: at most ~5,000 trees
ROUND_INTERVAL = 60.0  # seconds between background rounds
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float | timedelta) -> float:
    """Seconds from ``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"``, a number of
    seconds or a timedelta; ZartError unless it is positive."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value.lower())
        if match is None:
            raise ZartError(f"{value!r} is not a duration such as 30d, 12h, 90m or 45s")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ZartError(f"expected a duration such as '30d', got {value!r}")
    if not seconds > 0:
        raise ZartError(f"the duration must be positive, got {value!r}")
    return seconds


def check_statuses(statuses: Iterable[str]) -> tuple[str, ...]:
    """The statuses to delete; only finished ones may be named."""
    chosen = tuple(dict.fromkeys(s.strip() for s in statuses if s.strip()))
    wrong = [s for s in chosen if s not in TERMINAL_STATUSES]
    if wrong or not chosen:
        raise ZartError(
            f"gc deletes only finished executions: statuses must be among "
            f"{', '.join(DEFAULT_STATUSES)}, got {', '.join(wrong) or 'none'}"
        )
    return chosen


@dataclasses.dataclass(frozen=True)
class GcReport:
    """What ``Zart.gc`` deleted (or, with ``dry_run``, would delete): rows per table.
    ``kept`` counts old finished trees left alone because a member is still open (or,
    on PostgreSQL, was being written at that moment)."""

    executions: int = 0
    steps: int = 0
    events: int = 0
    audit: int = 0
    kept: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def collect(
    db: Database,
    older_than: str | float | timedelta,
    statuses: Iterable[str] = DEFAULT_STATUSES,
    durable: str | None = None,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
) -> GcReport:
    """Delete (or count) the finished executions older than ``older_than``, batch after
    batch, oldest first, until none is left or ``max_batches`` ran."""
    cutoff = time.time() - parse_duration(older_than)
    chosen = check_statuses(statuses)
    store = RetentionStore(db)
    totals = dict.fromkeys(("executions", "steps", "events", "audit", "kept"), 0)
    batches = 0
    for status in chosen:
        cursor: tuple[float, str] | None = None
        while max_batches is None or batches < max_batches:
            batch = store.collect(
                cutoff=cutoff, status=status, durable_name=durable, after=cursor,
                limit=batch_size, dry_run=dry_run,
            )  # fmt: skip
            batches += 1
            for key in totals:
                totals[key] += getattr(batch, key)
            if batch.cursor is None:
                break
            cursor = batch.cursor
    return GcReport(**totals, dry_run=dry_run)


class RetentionThread:
    """A worker's background retention: every ``interval`` seconds, one bounded round
    (``ROUND_BATCHES`` batches) deleting finished executions older than ``older_than``."""

    def __init__(
        self,
        db: Database,
        older_than: str | float | timedelta,
        interval: float = ROUND_INTERVAL,
    ) -> None:
        self.db = db
        self.older_than = parse_duration(older_than)
        self.interval = interval
        self.rounds = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="zart-retention", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = collect(self.db, self.older_than, max_batches=ROUND_BATCHES)
            except Exception as exc:  # database briefly away: the next round tries again
                log.warning("retention round failed: %s", exc)
                continue
            self.rounds += 1
            if report.executions:
                log.info(
                    "retention: deleted %d executions (%d steps) finished over %.0fs ago",
                    report.executions, report.steps, self.older_than,
                )  # fmt: skip

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
