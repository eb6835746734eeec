"""The times of an execution's current run, as the CLI, the API and the web view show them.

``retry-step`` and ``rerun-from`` put a finished execution back to pending but keep
its ``started_at`` (the storage layer sets it at the first claim only), so the engine's
``duration`` of the re-run spans from the first run's start, across the pause, to the
re-run's end: hours for a step re-run in a second. Until the storage layer records the
start of each run, the operations views start the current run at the admin reset that
began it (its audit entry). ``restart`` clears ``started_at`` itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zart import ExecutionStatus

if TYPE_CHECKING:
    from zart import Zart

# Admin operations that resume an execution without clearing its start time.
RESUMING_ACTIONS = frozenset({"retry-step", "rerun-from"})


def current_run(app: Zart, status: ExecutionStatus) -> ExecutionStatus:
    """``status`` with ``started_at`` (and so ``duration``) of its current run."""
    if status.attempts <= 1 or status.started_at is None:
        return status  # never resumed by an admin operation
    entries = app.audit_log(status.id, 1)
    if not entries or entries[0].action not in RESUMING_ACTIONS:
        return status
    reset = entries[0].created_at
    if reset <= status.started_at:
        return status
    return dataclasses.replace(status, started_at=reset)


def current_runs(app: Zart, statuses: Sequence[ExecutionStatus]) -> list[ExecutionStatus]:
    """:func:`current_run` of each (one audit query per execution resumed more than once)."""
    return [current_run(app, st) for st in statuses]
