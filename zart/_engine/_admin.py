"""Admin operations: retry a failed step, restart an execution, re-run from a step.

Each one puts the execution back to ``pending`` (a worker, or ``Zart.run`` on the
same id, resumes it) and writes an audit row in the same transaction. Only
finished executions (completed / failed / cancelled) can be steered this way:
touching one that a worker is running would race with it.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from zart._engine._info import ExecutionStatus
from zart._errors import (
    ExecutionConflictError,
    ExecutionNotFoundError,
    InvalidInputError,
    SerializationError,
)
from zart._execution._durable import DurableFunction, lookup
from zart._store import (
    CANCELLED,
    FAILED,
    STEP_FAILED,
    TERMINAL_STATUSES,
    ExecutionRecord,
    JournalStore,
    NotFound,
    OpsStore,
    RaceLost,
    StepRecord,
)
from zart._store._records import DIVERGED

# The errors live with the others (the engine raises them too); these names stay for callers.
ConflictError = ExecutionConflictError


def default_actor() -> str:
    """The OS user running this process: the actor recorded when none is given."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _encode_input(
    durable: DurableFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    try:
        return durable.args_codec.dumps(args, kwargs)
    except (SerializationError, TypeError) as exc:
        raise InvalidInputError(f"cannot store the input of {durable.name!r}: {exc}") from None


def _not_found(ops: OpsStore, execution_id: str) -> ExecutionNotFoundError:
    return ExecutionNotFoundError(f"no execution with id {execution_id!r} in {ops.db.url}")


def _require_finished(rec: ExecutionRecord, action: str) -> None:
    if rec.status not in TERMINAL_STATUSES:
        raise ConflictError(
            f"cannot {action} execution {rec.id!r}: it is {rec.status}; "
            "only completed, failed or cancelled executions can be steered "
            "(cancel it first)"
        )


def _ordered(steps: list[StepRecord]) -> list[StepRecord]:
    return sorted(steps, key=lambda r: (r.seq, r.step_name))


def retry_step(
    ops: OpsStore, execution_id: str, step_name: str | None = None, *, actor: str | None = None
) -> ExecutionStatus:
    """Retry the failed step of a failed execution.

    The step's failed checkpoint is deleted and the execution goes back to
    ``pending``: its next run replays every other checkpoint and runs this step
    again (with a fresh attempt count). ``step_name`` defaults to the execution's
    failed step; it is required when several steps failed.
    """

    def plan(rec: ExecutionRecord, steps: list[StepRecord]) -> list[str]:
        if rec.status != FAILED:
            raise ConflictError(
                f"cannot retry a step of execution {rec.id!r}: it is {rec.status}, not failed"
            )
        failed = [r.step_name for r in _ordered(steps) if r.status == STEP_FAILED]
        if step_name is None:
            if not failed:
                raise ConflictError(
                    f"execution {rec.id!r} has no failed step (its body itself raised); "
                    "use restart or rerun-from instead"
                )
            if len(failed) > 1:
                raise ConflictError(
                    f"execution {rec.id!r} has several failed steps ({', '.join(failed)}); "
                    "name the one to retry"
                )
            return failed
        known = {r.step_name: r for r in steps}
        if step_name not in known:
            raise ExecutionNotFoundError(f"execution {rec.id!r} has no step named {step_name!r}")
        if known[step_name].status != STEP_FAILED:
            raise ConflictError(
                f"step {step_name!r} of execution {rec.id!r} is "
                f"{known[step_name].status}, not failed"
            )
        return [step_name]

    return _reset(
        ops,
        execution_id,
        plan,
        "retry-step",
        actor or default_actor(),
        {"step": step_name},
    )


def _reset(
    ops: OpsStore,
    execution_id: str,
    plan: Callable[[ExecutionRecord, list[StepRecord]], list[str]],
    action: str,
    actor: str | None,
    details: dict[str, Any],
    **options: Any,
) -> ExecutionStatus:
    """Put the execution back to pending per ``plan``, with its audit row (one transaction)."""
    try:
        rec = ops.reset_execution(
            execution_id,
            plan,
            audit_action=action,
            audit_actor=actor or default_actor(),
            audit_details=details,
            **options,
        )
    except NotFound:
        raise _not_found(ops, execution_id) from None
    return ExecutionStatus.from_record(rec)


_UNSET: Any = object()


def restart(
    ops: OpsStore,
    journal: JournalStore,
    execution_id: str,
    *,
    args: tuple[Any, ...] | None = None,
    kwargs: dict[str, Any] | None = None,
    new_id: str | None = None,
    actor: str | None = None,
) -> ExecutionStatus:
    """Run a finished execution again from the start, with its input or a new one.

    By default the **same id** is reused: every checkpoint is deleted, attempts
    and times reset, and the execution goes back to ``pending``. With ``new_id``
    a new execution is created instead (the original stays as it is); the audit
    row is written under the original id and names the new one. ``args`` /
    ``kwargs`` replace the input (the durable function must be imported).
    """
    actor = actor or default_actor()
    rec = ops.get_execution(execution_id)
    if rec is None:
        raise _not_found(ops, execution_id)
    input_json: str | None = None
    if args is not None or kwargs is not None:
        input_json = _encode_input(lookup(rec.durable_name), tuple(args or ()), dict(kwargs or {}))
    details: dict[str, Any] = {"new_input": input_json is not None}
    if new_id is not None:
        if new_id == execution_id:
            raise ConflictError("new_id is the execution's own id; leave it out to reuse the id")
        try:
            created, was_created = journal.create_execution(
                new_id, rec.durable_name, input_json or rec.input
            )
        except RaceLost:
            was_created = False
        if not was_created:
            raise ConflictError(f"execution id {new_id!r} already exists; choose another new id")
        ops.add_audit(
            execution_id, "restart", actor, dict(details, new_id=new_id, previous_status=rec.status)
        )
        return ExecutionStatus.from_record(created)

    def plan(current: ExecutionRecord, steps: list[StepRecord]) -> list[str]:
        _require_finished(current, "restart")
        return [r.step_name for r in steps]

    return _reset(
        ops,
        execution_id,
        plan,
        "restart",
        actor,
        details,
        fresh=True,
        input_json=input_json,
    )


def rerun_from(
    ops: OpsStore, execution_id: str, step_name: str, *, actor: str | None = None
) -> ExecutionStatus:
    """Re-run a finished execution from the step ``step_name`` on.

    Checkpoints recorded before it (lower ``seq``) are kept and replayed; it and
    every later checkpoint are deleted, so they run again.
    """

    def plan(rec: ExecutionRecord, steps: list[StepRecord]) -> list[str]:
        _require_finished(rec, "re-run")
        known = {r.step_name: r for r in steps}
        if step_name not in known:
            raise ExecutionNotFoundError(f"execution {rec.id!r} has no step named {step_name!r}")
        seq = known[step_name].seq
        return [r.step_name for r in _ordered(steps) if r.seq >= seq]

    return _reset(
        ops,
        execution_id,
        plan,
        "rerun-from",
        actor or default_actor(),
        {"step": step_name},
    )


def resume(ops: OpsStore, execution_id: str, *, actor: str | None = None) -> ExecutionStatus:
    """Continue a cancelled or diverged execution at its first unfinished step.

    Its checkpoints are kept (unlike ``restart``); it and the executions of its tree
    that the cancel reached go back to ``pending``, and a worker (or ``run``) resumes
    them where they stopped. A diverged execution is replayed again by the code now
    deployed: if that code still diverges, it stops as ``diverged`` again, having run
    nothing new.
    """

    def plan(rec: ExecutionRecord, steps: list[StepRecord]) -> list[str]:
        if rec.status not in (CANCELLED, DIVERGED):
            raise ConflictError(
                f"cannot resume execution {rec.id!r}: it is {rec.status}, "
                "not cancelled or diverged"
                + (
                    " (it is still running or waiting)"
                    if rec.status not in TERMINAL_STATUSES
                    else ""
                )
            )
        return []

    return _reset(
        ops,
        execution_id,
        plan,
        "resume",
        actor or default_actor(),
        {},
        with_cancelled_descendants=True,
    )


@dataclass(frozen=True)
class AuditEntry:
    id: int
    execution_id: str
    action: str
    actor: str
    created_at: datetime
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "execution_id": self.execution_id,
            "action": self.action,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
            "details": self.details,
        }


def audit_log(ops: OpsStore, execution_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """Audit entries, newest first; of one execution when ``execution_id`` is given."""
    return [
        AuditEntry(
            id=r["id"],
            execution_id=r["execution_id"],
            action=r["action"],
            actor=r["actor"],
            created_at=datetime.fromtimestamp(r["created_at"], tz=timezone.utc),
            details=r["details"],
        )
        for r in ops.list_audit(execution_id, limit)
    ]
