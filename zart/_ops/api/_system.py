"""Handlers outside ``/api``: health probes, the OpenAPI document, Prometheus metrics
and the web view's static files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from zart._ops.api._http import error_response
from zart._ops.api._state import ApiState
from zart._ops.metrics import render_metrics
from zart._ops.openapi import openapi_document

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


async def healthz(state: ApiState, request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(state: ApiState, request: Request) -> Response:
    try:
        await state.db(state.app.ops_store.ping)
    except Exception as exc:
        return error_response(503, "database_unavailable", str(exc))
    return JSONResponse({"status": "ready"})


async def openapi(state: ApiState, request: Request) -> Response:
    return JSONResponse(openapi_document(metrics=state.metrics, token=state.token is not None))


async def metrics(state: ApiState, request: Request) -> Response:
    text = await state.db(render_metrics, state.app)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


@dataclass(frozen=True)
class StaticFile:
    """A handler serving one file of the web view (read at each request: no cache)."""

    filename: str

    async def __call__(self, state: ApiState, request: Request) -> Response:
        content = (WEB_DIR / self.filename).read_bytes()
        return Response(
            content,
            media_type=STATIC_TYPES[self.filename],
            headers={"Cache-Control": "no-cache"},
        )
