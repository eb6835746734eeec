"""``GET /api/queues``: every queue (zart.Queue) with its depth, running count and limits."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zart._ops.api._state import ApiState


async def queues(state: ApiState, request: Request) -> Response:
    found = await state.db(state.app.ops_store.queue_stats)
    return JSONResponse({"items": found})
