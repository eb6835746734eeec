"""Handlers of ``/api/executions`` and the read-only lists: start, inspect, wait, cancel,
events, counts, durables. Each is ``async def handler(state, request) -> Response``.

Ids come validated from the router (``_routing``): ``request.path_params["id"]`` (and
``["step"]`` for one step).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zart import ExecutionStatus, StepInfo, Zart
from zart._ops import views
from zart._ops._internals import (
    ALL_STATUSES,
    TERMINAL_STATUSES,
    ExecutionRecord,
    check_durable_name,
    check_event_name,
    check_execution_id,
    step_records,
)
from zart._ops.api._http import (
    RETRY_AFTER,
    ApiError,
    int_param,
    invalid,
    json_body,
    opt_str,
    required_name,
)
from zart._ops.api._state import ApiState
from zart._ops.arguments import json_arguments
from zart._ops.runs import current_run, current_runs

MAX_WAIT_SECONDS = 60.0
MAX_LIMIT = 1000


async def status_of(state: ApiState, rec: ExecutionRecord) -> ExecutionStatus:
    """The execution's status, with the times of its current run (see ``zart._ops.runs``)."""
    st = ExecutionStatus.from_record(rec)
    if st.attempts > 1:
        st = await state.db(current_run, state.app, st)
    return st


def _list_page(
    app: Zart, status: str | None, name: str | None, limit: int, offset: int
) -> list[ExecutionStatus]:
    return current_runs(app, app.list(status, name, limit, offset))


async def list_executions(state: ApiState, request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in ALL_STATUSES:
        raise invalid(f"status must be one of {', '.join(ALL_STATUSES)}")
    name = request.query_params.get("name") or None
    if name is not None:
        check_durable_name(name)
    limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0, 10**9)
    items = await state.db(_list_page, state.app, status, name, limit + 1, offset)
    more = len(items) > limit
    return JSONResponse(
        {
            "items": [i.as_dict() for i in items[:limit]],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        }
    )


async def start_execution(state: ApiState, request: Request) -> Response:
    """Create an execution (201), or return the one with this id (200); a worker runs it.
    An id of another durable function is a 409 (``Zart.submit`` checks it)."""
    body = await json_body(request)
    name = required_name(body, "durable", "a durable function name")
    durable = state.lookup(check_durable_name(name))
    execution_id = opt_str(body, "id")
    if execution_id is not None:
        check_execution_id(execution_id)
    args, kwargs = json_arguments(durable, body.get("input"))
    handle = await state.db(state.app.submit, durable, *args, execution_id=execution_id, **kwargs)
    rec = await state.record(handle.execution_id)
    data = views.detail(await status_of(state, rec), rec)
    return JSONResponse(data, status_code=201 if handle.created else 200)


async def get_execution(state: ApiState, request: Request) -> Response:
    rec = await state.record(request.path_params["id"])
    return JSONResponse(views.detail(await status_of(state, rec), rec))


async def get_overview(state: ApiState, request: Request) -> Response:
    rec = await state.record(request.path_params["id"])
    return JSONResponse(views.overview(await status_of(state, rec), rec))


async def get_input(state: ApiState, request: Request) -> Response:
    rec = await state.record(request.path_params["id"])
    return JSONResponse({"execution_id": rec.id, "input": views.loads_or_text(rec.input)})


async def get_result(state: ApiState, request: Request) -> Response:
    rec = await state.record(request.path_params["id"])
    return JSONResponse(
        {"execution_id": rec.id, "status": rec.status, "result": views.loads_or_text(rec.result)}
    )


async def get_steps(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    steps: list[StepInfo] = await state.db(state.app.steps, eid)
    return JSONResponse({"execution_id": eid, "items": [s.as_dict() for s in steps]})


async def get_timeline(state: ApiState, request: Request) -> Response:
    """Every step, column-wise (``zart._ops.views.timeline``), for the web view."""
    rec = await state.record(request.path_params["id"])
    steps: list[StepInfo] = await state.db(state.app.steps, rec.id)
    return JSONResponse(views.timeline(await status_of(state, rec), steps))


def _one_step(app: Zart, eid: str, name: str) -> dict[str, Any] | None:
    record = step_records(app, eid).get(name)
    if record is None:
        return None
    return views.step_detail(StepInfo.from_record(record), record)


async def get_step(state: ApiState, request: Request) -> Response:
    """One step in full (output, error and traceback): the web view's side panel."""
    eid, name = request.path_params["id"], request.path_params["step"]
    await state.record(eid)
    found = await state.db(_one_step, state.app, eid, name)
    if found is None:
        raise ApiError(404, "not_found", f"execution {eid!r} has no step named {name!r}")
    return JSONResponse(found)


def _timeout_param(request: Request) -> float:
    raw = request.query_params.get("timeout", "30")
    try:
        timeout = float(raw)
    except ValueError:
        raise invalid(f"timeout must be a number, got {raw!r}") from None
    if not 0 <= timeout <= MAX_WAIT_SECONDS:
        raise invalid(f"timeout must be between 0 and {MAX_WAIT_SECONDS:g} seconds")
    return timeout


def _shutting_down() -> ApiError:
    return ApiError(
        503,
        "shutting_down",
        "the server is shutting down; repeat the wait (on another server, or once it is back)",
        **RETRY_AFTER,
    )


async def wait_execution(state: ApiState, request: Request) -> Response:
    """The execution once finished, or as it is when ``timeout`` seconds have passed.
    A server that starts shutting down answers 503 ``shutting_down`` at once."""
    eid = request.path_params["id"]
    deadline = time.monotonic() + _timeout_param(request)
    delay = 0.05
    while True:
        if state.lifecycle.draining:
            raise _shutting_down()
        rec = await state.record(eid)
        left = deadline - time.monotonic()
        if rec.status in TERMINAL_STATUSES or left <= 0:
            return JSONResponse(views.detail(await status_of(state, rec), rec))
        if await request.is_disconnected():
            return Response(status_code=204)  # nobody is waiting any more
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.5)


async def cancel_execution(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    await json_body(request)
    changed = await state.db(state.app.cancel, eid)
    st: ExecutionStatus = await state.db(state.app.status, eid)
    return JSONResponse({"id": eid, "cancelled": changed, "status": st.status})


async def send_event(state: ApiState, request: Request) -> Response:
    """Deliver an event (202); 409 when the execution has finished: nothing can take it."""
    eid = request.path_params["id"]
    body = await json_body(request)
    name = check_event_name(required_name(body, "name", "the event name"))
    await state.db(state.app.send_event, eid, name, body.get("payload"))
    return JSONResponse({"id": eid, "name": name, "delivered": True}, status_code=202)


async def counts(state: ApiState, request: Request) -> Response:
    found = await state.db(state.app.ops_store.count_by_status)
    by_status = {st: int(found.get(st, 0)) for st in ALL_STATUSES}
    return JSONResponse({"counts": by_status, "total": sum(by_status.values())})


async def durables(state: ApiState, request: Request) -> Response:
    return JSONResponse({"items": state.durable_names()})
