"""Pause rules, as ``Zart.pause`` / ``Zart.pause_rules`` / ``Zart.resume_rule`` offer them.

A rule holds every execution it matches before that execution's next new step (the
step path checks a per-process cache: ``zart._store._pauses``); removing it puts the
executions it held back to ``pending``, and they continue where they stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from zart._engine._admin import default_actor
from zart._engine._info import ExecutionStatus
from zart._errors import ExecutionNotFoundError, InvalidInputError
from zart._execution._identifiers import check_durable_name, check_execution_id
from zart._store import NotFound
from zart._store._pauses import PauseRule as _Rule
from zart._store._pauses import PauseStore

MAX_PATTERN_LENGTH = 512


@dataclass(frozen=True)
class PauseRule:
    """A stored pause rule: its scope (every part that is set must match), why, who
    added it and when."""

    id: int
    execution_id: str | None
    durable_name: str | None
    step_pattern: str | None
    reason: str | None
    actor: str
    created_at: datetime

    @classmethod
    def from_rule(cls, r: _Rule) -> PauseRule:
        created = datetime.fromtimestamp(r.created_at, tz=timezone.utc)
        return cls(r.id, r.execution_id, r.durable_name, r.step_pattern, r.reason, r.actor, created)

    @property
    def scope(self) -> str:
        """The scope in words: ``durable=orders step=charge:*``."""
        parts = [
            f"{key}={value}"
            for key, value in (
                ("execution", self.execution_id),
                ("durable", self.durable_name),
                ("step", self.step_pattern),
            )
            if value is not None
        ]
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "execution_id": self.execution_id,
            "durable_name": self.durable_name,
            "step_pattern": self.step_pattern,
            "reason": self.reason,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class ResumeResult:
    """What a resume did: the rules it removed and the executions it made runnable."""

    rules: list[PauseRule]
    execution_ids: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules": [r.as_dict() for r in self.rules],
            "execution_ids": self.execution_ids,
        }


def _scope(
    execution_id: str | None, durable_name: str | None, step: str | None
) -> dict[str, str | None]:
    if execution_id is not None:
        check_execution_id(execution_id)
    if durable_name is not None:
        check_durable_name(durable_name)
    if step is not None and (not step or len(step) > MAX_PATTERN_LENGTH or not step.isprintable()):
        raise InvalidInputError(
            f"a step pattern is 1 to {MAX_PATTERN_LENGTH} printable characters, got {step!r}"
        )
    return {"execution_id": execution_id, "durable_name": durable_name, "step_pattern": step}


def pause(
    store: PauseStore,
    *,
    execution_id: str | None,
    durable_name: str | None,
    step: str | None,
    reason: str | None,
    actor: str | None,
) -> tuple[PauseRule, bool]:
    """Add a rule (or find the one with this very scope); (rule, created by this call)."""
    scope = _scope(execution_id, durable_name, step)
    if all(v is None for v in scope.values()):
        raise InvalidInputError(
            "a pause rule needs a scope: an execution id, a durable name and/or a step pattern"
        )
    rule, created = store.add_rule(
        execution_id=execution_id,
        durable_name=durable_name,
        step_pattern=step,
        reason=reason,
        actor=actor or default_actor(),
    )
    return PauseRule.from_rule(rule), created


def rules(store: PauseStore) -> list[PauseRule]:
    return [PauseRule.from_rule(r) for r in store.list_rules()]


def resume_rules(
    store: PauseStore,
    rule_ids: list[int] | None,
    *,
    execution_id: str | None = None,
    durable_name: str | None = None,
    step: str | None = None,
    everything: bool = False,
    actor: str | None = None,
) -> ResumeResult:
    """Remove rules by id, by exact scope, or all of them (``everything``); the
    executions they held go back to pending."""
    scope = _scope(execution_id, durable_name, step)
    by_scope = any(v is not None for v in scope.values())
    if sum((rule_ids is not None, by_scope, everything)) != 1:
        raise InvalidInputError(
            "resume by rule id(s), by a scope (execution, durable, step pattern), or all; "
            "exactly one of them"
        )
    removed, released = store.remove_rules(
        rule_ids, scope if by_scope else None, actor or default_actor()
    )
    return ResumeResult([PauseRule.from_rule(r) for r in removed], [r.id for r in released])


def resume_paused(
    store: PauseStore, execution_id: str, actor: str | None
) -> ExecutionStatus | None:
    """``Zart.resume`` of a paused execution: the rules naming only it are removed and it
    goes back to pending (a wider rule still matching holds it again at that step). None
    when it is not paused."""
    try:
        rec = store.resume_execution(check_execution_id(execution_id), actor or default_actor())
    except NotFound:
        raise ExecutionNotFoundError(
            f"no execution with id {execution_id!r} in {store.db.url}"
        ) from None
    return None if rec is None else ExecutionStatus.from_record(rec)
