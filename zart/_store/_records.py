"""Plain records passed between the engine and a storage backend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Execution statuses. "Active" ones may still make progress.
PENDING = "pending"
RUNNING = "running"
SLEEPING = "sleeping"
WAITING = "waiting"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
# The code asked for a call its journal does not hold while recorded calls remained
# unvisited: stopped before running it. Neither active nor terminal: no worker claims
# it; ``Zart.resume`` puts it back to pending once compatible code is deployed.
DIVERGED = "diverged"
# Held by a pause rule before its next step (``paused_by``): not claimable until the
# rule is removed (``zart resume``), which puts it back to pending.
PAUSED = "paused"

ACTIVE_STATUSES = frozenset({PENDING, RUNNING, SLEEPING, WAITING, PAUSED})
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED})
ALL_STATUSES = (
    PENDING, RUNNING, SLEEPING, WAITING, COMPLETED, FAILED, CANCELLED, DIVERGED, PAUSED,
)  # fmt: skip

# Step statuses.
STEP_COMPLETED = "completed"
STEP_FAILED = "failed"
STEP_RETRYING = "retrying"


@dataclass(slots=True)
class ExecutionRecord:
    id: str
    durable_name: str
    status: str
    input: str
    result: str | None
    error: str | None
    attempts: int
    recoveries: int
    lease_owner: str | None
    lease_expires_at: float | None
    wake_at: float | None
    parent_id: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    version: str | None
    ran_versions: str | None
    paused_by: int | None = None  # the pause rule holding it (status paused)
    # zart.Queue (flow control): its queue, priority (higher first) and partition key.
    queue: str | None = None
    priority: int | None = None
    partition_key: str | None = None
    # Not a column: set by a claim that took the execution over from a lost owner.
    recovered: bool = False

    @classmethod
    def from_row(cls, row: Any) -> ExecutionRecord:
        m = row._mapping
        return cls(**{name: m[name] for name in _EXECUTION_COLUMNS})


_EXECUTION_COLUMNS = tuple(n for n in ExecutionRecord.__slots__ if n != "recovered")


@dataclass(slots=True)
class StepRecord:
    execution_id: str
    step_name: str
    seq: int
    kind: str
    status: str
    fingerprint: str | None
    output: str | None
    error: str | None
    attempts: int
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> StepRecord:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__slots__})

    def as_params(self, token: str) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "step_name": self.step_name,
            "seq": self.seq,
            "kind": self.kind,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "token": token,
        }


@dataclass(slots=True)
class EventRecord:
    id: int
    execution_id: str
    name: str
    payload: str | None
    created_at: float
    consumed_by: str | None


class _NoEvent:
    def __repr__(self) -> str:
        return "NO_EVENT"


# What ``JournalStore.consume_event_into_step`` returns when no event is waiting
# (an event's payload may itself be None, so None cannot say "nothing").
NO_EVENT: Any = _NoEvent()


def stored_json(text: str | None) -> Any:
    """A stored JSON column decoded for display or export; text that is not JSON (stored
    by hand, or by an older zart) is returned as it is, None as None."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
