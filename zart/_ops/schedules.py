"""Recurring durable executions for the operations tools (CLI, HTTP API, ``zart serve``).

The schedules themselves live in the engine (``zart._engine._schedules``: the rules,
overlap policies and backfill are described there), so ``Zart.schedule`` and these
functions are one implementation; here they take the ``Zart`` the tools hold.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from zart import DurableFunction
from zart._ops._internals import (
    OVERLAP_POLICIES,
    Schedule,
    define_schedule,
    occurrence_id,
    overlap_policy,
    schedules_due,
)
from zart._ops._internals import SchedulerThread as _EngineSchedulerThread
from zart._ops._internals import list_schedules as _list
from zart._ops._internals import remove_schedule as _remove

if TYPE_CHECKING:
    from zart import Zart

__all__ = [
    "OVERLAP_POLICIES",
    "Schedule",
    "SchedulerThread",
    "list_schedules",
    "occurrence_id",
    "overlap_policy",
    "register_schedule",
    "remove_schedule",
    "tick",
]


def register_schedule(
    app: Zart,
    name: str,
    durable: DurableFunction[Any, Any],
    *args: Any,
    cron: str | None = None,
    every: float | timedelta | None = None,
    tz: str = "UTC",
    overlap: str = "skip",
    backfill: int = 0,
    **kwargs: Any,
) -> tuple[Schedule, str]:
    """Create (or update) schedule ``name`` running ``durable(*args, **kwargs)``; the
    schedule and "created" / "updated" / "unchanged" (see ``Zart.schedule``)."""
    return define_schedule(
        app.ops_store, name, durable, args, kwargs,
        cron=cron, every=every, tz=tz, overlap=overlap, backfill=backfill,
    )  # fmt: skip


def list_schedules(app: Zart) -> list[Schedule]:
    return _list(app.ops_store)


def remove_schedule(app: Zart, name: str) -> bool:
    """Delete a schedule (its past executions stay). False if there was none."""
    return _remove(app.ops_store, name)


def tick(app: Zart, now: float | None = None) -> list[str]:
    """Start every due occurrence once; return the ids this call started."""
    return schedules_due(app.ops_store, now)


class SchedulerThread(_EngineSchedulerThread):
    """Runs ``tick`` every ``interval`` seconds on a daemon thread until ``stop()``."""

    def __init__(self, app: Zart, interval: float = 1.0) -> None:
        super().__init__(app.ops_store, interval)
        self.app = app
