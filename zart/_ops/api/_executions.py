"""Handlers of ``/api/executions`` and the read-only lists: start, inspect, wait, cancel,
events, counts, durables. Each is ``async def handler(state, request) -> Response``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zart import ExecutionStatus, StepInfo
from zart._ops._internals import ALL_STATUSES, TERMINAL_STATUSES, ExecutionRecord
from zart._ops.api._http import int_param, invalid, json_body, opt_str, required_name
from zart._ops.api._state import ApiState
from zart._ops.arguments import json_arguments

MAX_WAIT_SECONDS = 60.0
MAX_LIMIT = 1000


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def detail(rec: ExecutionRecord) -> dict[str, Any]:
    """An execution's JSON, with its stored input and result."""
    data = ExecutionStatus.from_record(rec).as_dict()
    data["input"] = _loads(rec.input)
    data["result"] = _loads(rec.result)
    return data


async def list_executions(state: ApiState, request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in ALL_STATUSES:
        raise invalid(f"status must be one of {', '.join(ALL_STATUSES)}")
    name = request.query_params.get("name") or None
    limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0, 10**9)
    items: list[ExecutionStatus] = await state.db(state.app.list, status, name, limit + 1, offset)
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
    durable = state.lookup(required_name(body, "durable", "a durable function name"))
    execution_id = opt_str(body, "id")
    args, kwargs = json_arguments(durable, body.get("input"))
    handle = await state.db(state.app.submit, durable, *args, execution_id=execution_id, **kwargs)
    rec = await state.record(handle.execution_id)
    return JSONResponse(detail(rec), status_code=201 if handle.created else 200)


async def get_execution(state: ApiState, request: Request) -> Response:
    return JSONResponse(detail(await state.record(request.path_params["id"])))


async def get_steps(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    steps: list[StepInfo] = await state.db(state.app.steps, eid)
    return JSONResponse({"execution_id": eid, "items": [s.as_dict() for s in steps]})


def _timeout_param(request: Request) -> float:
    raw = request.query_params.get("timeout", "30")
    try:
        timeout = float(raw)
    except ValueError:
        raise invalid(f"timeout must be a number, got {raw!r}") from None
    if not 0 <= timeout <= MAX_WAIT_SECONDS:
        raise invalid(f"timeout must be between 0 and {MAX_WAIT_SECONDS:g} seconds")
    return timeout


async def wait_execution(state: ApiState, request: Request) -> Response:
    """The execution once finished, or as it is when ``timeout`` seconds have passed."""
    eid = request.path_params["id"]
    deadline = time.monotonic() + _timeout_param(request)
    delay = 0.05
    while True:
        rec = await state.record(eid)
        left = deadline - time.monotonic()
        if rec.status in TERMINAL_STATUSES or left <= 0:
            return JSONResponse(detail(rec))
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.5)


async def cancel_execution(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    changed = await state.db(state.app.cancel, eid)
    st: ExecutionStatus = await state.db(state.app.status, eid)
    return JSONResponse({"id": eid, "cancelled": changed, "status": st.status})


async def send_event(state: ApiState, request: Request) -> Response:
    eid = request.path_params["id"]
    body = await json_body(request)
    name = required_name(body, "name", "the event name")
    await state.db(state.app.send_event, eid, name, body.get("payload"))
    return JSONResponse({"id": eid, "name": name, "delivered": True}, status_code=202)


async def counts(state: ApiState, request: Request) -> Response:
    found = await state.db(state.app.ops_store.count_by_status)
    by_status = {st: int(found.get(st, 0)) for st in ALL_STATUSES}
    return JSONResponse({"counts": by_status, "total": sum(by_status.values())})


async def durables(state: ApiState, request: Request) -> Response:
    return JSONResponse({"items": state.durable_names()})
