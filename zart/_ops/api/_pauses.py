"""Handlers of the pause rules (``/api/pause-rules``) and of resuming one execution
(``POST /api/executions/{id}/resume``). Each records who asked: see ``actor_of``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zart import ExecutionStatus, PauseRule, ResumeResult
from zart._ops.api._http import ApiError, actor_of, invalid, json_body, opt_str
from zart._ops.api._state import ApiState


async def list_rules(state: ApiState, request: Request) -> Response:
    rules: list[PauseRule] = await state.db(state.app.pause_rules)
    return JSONResponse({"items": [r.as_dict() for r in rules]})


def _scope(body: dict[str, Any]) -> dict[str, str | None]:
    return {
        "execution_id": opt_str(body, "execution_id"),
        "durable": opt_str(body, "durable"),
        "step": opt_str(body, "step"),
    }


async def add_rule(state: ApiState, request: Request) -> Response:
    """A rule with this scope (the one that exists already, or a new one)."""
    body = await json_body(request)
    scope, reason = _scope(body), opt_str(body, "reason")
    if not any(scope.values()):
        raise invalid("a pause rule needs a scope: 'execution_id', 'durable' and/or 'step'")
    actor = actor_of(state, request, body)

    def call() -> PauseRule:
        return state.app.pause(**scope, reason=reason, actor=actor)

    rule = await state.db(call)
    return JSONResponse(rule.as_dict())


async def resume_rules(state: ApiState, request: Request) -> Response:
    """Remove rules by ``rule_id``, by exact scope or ``all``; 404 when none matched."""
    body = await json_body(request)
    rule_id, everything = body.get("rule_id"), body.get("all", False)
    if rule_id is not None and (not isinstance(rule_id, int) or isinstance(rule_id, bool)):
        raise invalid("'rule_id' must be an integer")
    if not isinstance(everything, bool):
        raise invalid("'all' must be true or false")
    scope = _scope(body)
    actor = actor_of(state, request, body)

    def call() -> ResumeResult:
        return state.app.resume_rule(rule_id, **scope, everything=everything, actor=actor)

    done = await state.db(call)
    if not done.rules:
        raise ApiError(404, "not_found", "no pause rule matched")
    return JSONResponse(done.as_dict())


async def resume_execution(state: ApiState, request: Request) -> Response:
    """Continue a cancelled, diverged or paused execution where it stopped."""
    eid = request.path_params["id"]
    body = await json_body(request)
    actor = actor_of(state, request, body)
    st: ExecutionStatus = await state.db(state.app.resume, eid, actor=actor)
    return JSONResponse(st.as_dict())
