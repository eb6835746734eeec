"""Handlers of the admin operations (retry a step, restart, re-run from a step) and of
the audit log. Each operation records who asked: see ``actor_of``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zart import ExecutionStatus
from zart._ops._internals import check_execution_id, check_step_name
from zart._ops.api._http import actor_of, int_param, invalid, json_body, opt_str
from zart._ops.api._state import ApiState
from zart._ops.arguments import json_arguments


async def retry_step(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    body = await json_body(request)
    step, actor = opt_str(body, "step"), actor_of(state, request, body)
    if step is not None:
        check_step_name(step)
    st: ExecutionStatus = await state.db(state.app.retry_step, eid, step, actor=actor)
    return JSONResponse(st.as_dict())


async def restart(state: ApiState, request: Request) -> Response:
    """Same id (200), or a copy under ``new_id`` (201); ``input`` replaces the input."""
    eid = request.path_params["id"]
    body = await json_body(request)
    new_id = opt_str(body, "new_id")
    if new_id is not None:
        check_execution_id(new_id)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if "input" in body:
        rec = await state.record(eid)
        args, kwargs = json_arguments(state.lookup(rec.durable_name), body["input"])
    actor = actor_of(state, request, body)

    def call() -> ExecutionStatus:
        return state.app.restart(eid, *args, new_id=new_id, actor=actor, **kwargs)

    st = await state.db(call)
    return JSONResponse(st.as_dict(), status_code=201 if new_id else 200)


async def rerun_from(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    body = await json_body(request)
    step = opt_str(body, "step")
    if step is None:
        raise invalid("'step' (the step to re-run from) is required")
    check_step_name(step)
    actor = actor_of(state, request, body)
    st: ExecutionStatus = await state.db(state.app.rerun_from, eid, step, actor=actor)
    return JSONResponse(st.as_dict())


async def execution_audit(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    await state.record(eid)
    limit = int_param(request, "limit", 100, 1, 1000)
    entries = await state.db(state.app.audit_log, eid, limit)
    return JSONResponse({"items": [e.as_dict() for e in entries]})


async def audit(state: ApiState, request: Request) -> Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    entries = await state.db(state.app.audit_log, None, limit)
    return JSONResponse({"items": [e.as_dict() for e in entries]})
