"""Read-only views of executions and steps returned by ``Zart.status`` / ``Zart.steps``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from zart._execution._failures import decode_error, short_type
from zart._store import ExecutionRecord, StepRecord
from zart._store._records import PAUSED

PREVIEW_CHARS = 120


def _dt(ts: float | None) -> datetime | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        # A time no datetime can show (stored by an older zart, or by hand): listing
        # must not fail for every execution because of one row.
        return datetime.max.replace(tzinfo=timezone.utc) if ts > 0 else None


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _error_line(text: str | None) -> str | None:
    if text is None:
        return None
    data = decode_error(text)
    return f"{short_type(str(data.get('type', 'Error')))}: {data.get('message', '')}"


class _Timed:
    """``duration`` for a record view with ``started_at`` / ``finished_at``."""

    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; None until both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ExecutionStatus(_Timed):
    id: str
    durable_name: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wake_at: datetime | None
    error: str | None
    lease_owner: str | None
    parent_id: str | None
    # How many of its runs (``attempts``) took it over from a process that died or
    # lost its lease; wake-ups from sleeps and events, and hand-backs, are not counted.
    recoveries: int = 0
    # The code version that created it, and the versions that ran it (in order).
    version: str | None = None
    ran_versions: tuple[str, ...] = ()
    # The pause rule holding it (status paused; see Zart.pause).
    paused_by: int | None = None

    @classmethod
    def from_record(cls, r: ExecutionRecord) -> ExecutionStatus:
        return cls(
            id=r.id,
            durable_name=r.durable_name,
            status=r.status,
            attempts=r.attempts,
            created_at=_dt(r.created_at),  # type: ignore[arg-type]
            updated_at=_dt(r.updated_at),  # type: ignore[arg-type]
            started_at=_dt(r.started_at),
            finished_at=_dt(r.finished_at),
            wake_at=_dt(r.wake_at),
            error=_error_line(r.error),
            lease_owner=r.lease_owner,
            parent_id=r.parent_id,
            recoveries=r.recoveries,
            version=r.version,
            ran_versions=tuple(r.ran_versions.split(",")) if r.ran_versions else (),
            paused_by=r.paused_by if r.status == PAUSED else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "durable_name": self.durable_name,
            "status": self.status,
            "attempts": self.attempts,
            "recoveries": self.recoveries,
            "version": self.version,
            "ran_versions": list(self.ran_versions),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "wake_at": self.wake_at.isoformat() if self.wake_at else None,
            "duration": self.duration,
            "error": self.error,
            "lease_owner": self.lease_owner,
            "parent_id": self.parent_id,
            "paused_by": self.paused_by,
        }


@dataclass(frozen=True)
class StepInfo(_Timed):
    name: str
    seq: int
    kind: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    output_preview: str | None
    error: str | None

    @classmethod
    def from_record(cls, r: StepRecord) -> StepInfo:
        return cls(
            name=r.step_name,
            seq=r.seq,
            kind=r.kind,
            status=r.status,
            attempts=r.attempts,
            started_at=_dt(r.started_at),
            finished_at=_dt(r.finished_at),
            output_preview=_preview(r.output),
            error=_error_line(r.error),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seq": self.seq,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration": self.duration,
            "output_preview": self.output_preview,
            "error": self.error,
        }
