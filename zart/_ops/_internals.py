"""The names the operations layer (CLI, HTTP API, metrics, schedules) takes from zart's
private packages, in one place.

Everything else comes from the public ``zart`` package. The storage and execution
packages are being reorganised: when one of them moves, only these imports change.
"""

from __future__ import annotations

from zart._engine._admin import AuditEntry
from zart._errors import InvalidInputError
from zart._execution._durable import lookup, registered_names
from zart._store import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRYING,
    TERMINAL_STATUSES,
    ExecutionRecord,
    RaceLost,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ALL_STATUSES",
    "STEP_COMPLETED",
    "STEP_FAILED",
    "STEP_RETRYING",
    "TERMINAL_STATUSES",
    "AuditEntry",
    "ExecutionRecord",
    "InvalidInputError",
    "RaceLost",
    "lookup",
    "registered_names",
]
