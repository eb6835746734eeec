"""Handlers outside ``/api``: health probes, the OpenAPI document, Prometheus metrics
and the web view's static files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from zart._ops.api._http import RETRY_AFTER, authenticated
from zart._ops.api._state import ApiState
from zart._ops.metrics import render_metrics
from zart._ops.openapi import openapi_document

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "timeline.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


async def healthz(state: ApiState, request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(state: ApiState, request: Request) -> Response:
    """200 when the database answers within about 1.5 s; 503 otherwise, or while the
    server shuts down. What went wrong is told only to callers holding the token."""
    if state.lifecycle.draining:
        body = {"status": "unavailable", "error": "shutting_down", "message": "shutting down"}
        return JSONResponse(body, status_code=503, headers=RETRY_AFTER)
    problem = await state.gate.ready(state.app.ops_store.ping)
    if problem is None:
        return JSONResponse({"status": "ready"})
    body = {
        "status": "unavailable",
        "error": "database_unavailable",
        "message": "the database is unavailable",
    }
    if authenticated(state, request):
        body["detail"] = problem
    return JSONResponse(body, status_code=503, headers=RETRY_AFTER)


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
