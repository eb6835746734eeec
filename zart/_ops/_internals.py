"""The names the operations layer (CLI, HTTP API, metrics, schedules) takes from zart's
private packages, in one place.

Everything else comes from the public ``zart`` package. The storage and execution
packages are being reorganised: when one of them moves, only these imports change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zart._engine._admin import AuditEntry
from zart._engine._cron import Cron, CronError
from zart._engine._schedules import (
    OVERLAP_POLICIES,
    Schedule,
    SchedulerThread,
    define_schedule,
    list_schedules,
    occurrence_id,
    overlap_policy,
    remove_schedule,
)
from zart._engine._schedules import tick as schedules_due
from zart._errors import InvalidInputError
from zart._execution._durable import code_version, lookup, registered_names
from zart._execution._identifiers import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    check_durable_name,
    check_event_name,
    check_execution_id,
    check_step_name,
)
from zart._store import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRYING,
    TERMINAL_STATUSES,
    ExecutionRecord,
    JournalStore,
    RaceLost,
    StepRecord,
    stored_json,
)

if TYPE_CHECKING:
    from zart import Zart


def step_records(app: Zart, execution_id: str) -> dict[str, StepRecord]:
    """Every checkpoint of one execution with its output and error in full (the public
    ``Zart.steps`` gives previews): the web view's step detail, on demand."""
    return JournalStore(app.ops_store.db).load_steps(execution_id)


__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "OVERLAP_POLICIES",
    "STEP_COMPLETED",
    "STEP_FAILED",
    "STEP_RETRYING",
    "TERMINAL_STATUSES",
    "AuditEntry",
    "Cron",
    "CronError",
    "ExecutionRecord",
    "InvalidInputError",
    "RaceLost",
    "Schedule",
    "SchedulerThread",
    "StepRecord",
    "check_durable_name",
    "check_event_name",
    "check_execution_id",
    "check_step_name",
    "code_version",
    "define_schedule",
    "list_schedules",
    "lookup",
    "occurrence_id",
    "overlap_policy",
    "registered_names",
    "remove_schedule",
    "schedules_due",
    "step_records",
    "stored_json",
]
