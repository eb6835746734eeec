"""The HTTP API served by ``zart serve``: a Starlette app over one ``Zart`` engine.

JSON everywhere, errors included (``{"error": code, "message": text}``). Every
database call runs in Starlette's thread pool: the storage layer is synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from zart._durable import lookup, registered_names
from zart._errors import (
    DatabaseUnavailableError,
    ExecutionNotFoundError,
    SerializationError,
    UnknownDurableError,
    ZartError,
)
from zart._info import ExecutionStatus, StepInfo
from zart._ops import admin
from zart._ops.openapi import openapi_document
from zart._storage import ALL_STATUSES, TERMINAL_STATUSES, ExecutionRecord

if TYPE_CHECKING:
    from zart._engine import Zart
    from zart._worker import Worker

log = logging.getLogger("zart.api")
T = TypeVar("T")
WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_WAIT_SECONDS = 60.0
MAX_LIMIT = 1000
# Open without a token: liveness/readiness probes and the page shell (it holds no
# data; the page asks for the token and sends it with every API call).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/static/app.js", "/static/style.css"})
STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _map_exception(exc: BaseException) -> JSONResponse:
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.code, exc.message)
    if isinstance(exc, ExecutionNotFoundError):
        return _error(404, "not_found", str(exc))
    if isinstance(exc, admin.ConflictError):
        return _error(409, "conflict", str(exc))
    if isinstance(exc, (admin.InvalidInputError, SerializationError, UnknownDurableError)):
        return _error(422, "invalid_input", str(exc))
    if isinstance(exc, DatabaseUnavailableError):
        return _error(503, "database_unavailable", str(exc))
    if isinstance(exc, ZartError):
        return _error(409, "conflict", str(exc))
    log.exception("unexpected error in the API", exc_info=exc)
    return _error(500, "internal", f"{type(exc).__name__}: {exc}")


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _detail(rec: ExecutionRecord) -> dict[str, Any]:
    data = ExecutionStatus.from_record(rec).as_dict()
    data["input"] = _loads(rec.input)
    data["result"] = _loads(rec.result)
    return data


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_input", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(422, "invalid_input", f"{name} must be between {low} and {high}")
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid_input", f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", "the request body must be a JSON object")
    return data


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(422, "invalid_input", f"{key!r} must be a non-empty string")
    return value


class _WorkerThread:
    """An in-process worker on its own thread and event loop (``zart serve`` runs one)."""

    def __init__(self, app: Zart, concurrency: int) -> None:
        from zart._worker import Worker

        self.worker: Worker = Worker(app, concurrency=concurrency, poll_interval=0.2)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="zart-serve-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.worker.run_async())
        finally:
            self.loop.close()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.worker.stop)
            self.thread.join(timeout=self.worker.grace_seconds + 5)


def create_app(
    app: Zart,
    *,
    token: str | None = None,
    metrics: bool = False,
    worker_concurrency: int = 0,
    scheduler: bool = False,
) -> Starlette:
    """The ASGI app. ``token``: require ``Authorization: Bearer <token>`` (except on
    ``OPEN_PATHS``). ``metrics``: serve ``/metrics``. ``worker_concurrency`` > 0: run a
    worker for the registered durables in this process while the app runs.
    ``scheduler``: run the schedules loop (``zart._ops.schedules``) too."""
    identity = "token:" + hashlib.sha256(token.encode()).hexdigest()[:8] if token else None

    def actor_of(request: Request, body: dict[str, Any]) -> str:
        given = _opt_str(body, "actor")
        who = identity or f"api@{request.client.host if request.client else 'unknown'}"
        return f"{given} ({who})" if given else who

    def endpoint(
        fn: Callable[[Request], Awaitable[Response]], *, open_: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            if token is not None and not open_:
                header = request.headers.get("authorization", "")
                scheme, _, given = header.partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), token.encode()
                ):
                    return _error(
                        401,
                        "unauthorized",
                        "missing or wrong bearer token (Authorization: Bearer <ZART_API_TOKEN>)",
                        **{"WWW-Authenticate": 'Bearer realm="zart"'},
                    )
            try:
                return await fn(request)
            except Exception as exc:
                return _map_exception(exc)

        return wrapped

    async def db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def get_record(execution_id: str) -> ExecutionRecord:
        rec = await db(app.storage.get_execution, execution_id)
        if rec is None:
            raise ExecutionNotFoundError(
                f"no execution with id {execution_id!r} in {app.database_url}"
            )
        return rec

    # -------------------------------------------------------------- health

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await db(app.storage.ping)
        except Exception as exc:
            return _error(503, "database_unavailable", str(exc))
        return JSONResponse({"status": "ready"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(metrics=metrics, token=token is not None))

    # -------------------------------------------------------------- executions

    async def list_executions(request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in ALL_STATUSES:
            raise ApiError(422, "invalid_input", f"status must be one of {', '.join(ALL_STATUSES)}")
        name = request.query_params.get("name") or None
        limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        records = await db(app.storage.list_executions, status, name, limit + 1, offset)
        more = len(records) > limit
        return JSONResponse(
            {
                "items": [ExecutionStatus.from_record(r).as_dict() for r in records[:limit]],
                "limit": limit,
                "offset": offset,
                "next_offset": offset + limit if more else None,
            }
        )

    async def start_execution(request: Request) -> Response:
        body = await _body(request)
        name = body.get("durable")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "invalid_input", "'durable' (a durable function name) is required")
        execution_id = _opt_str(body, "id")
        durable = lookup(name)
        args, kwargs = admin.json_arguments(durable, body.get("input"))

        def create() -> tuple[ExecutionRecord, bool]:
            if execution_id is not None:
                existing = app.storage.get_execution(execution_id)
                if existing is not None:
                    if existing.durable_name != durable.name:
                        raise admin.ConflictError(
                            f"execution id {execution_id!r} already belongs to durable "
                            f"{existing.durable_name!r}, not {durable.name!r}; use another id"
                        )
                    return existing, False
            eid = app._create(durable, args, kwargs, execution_id)
            rec = app.storage.get_execution(eid)
            assert rec is not None
            return rec, True

        rec, created = await db(create)
        return JSONResponse(_detail(rec), status_code=201 if created else 200)

    async def get_execution(request: Request) -> Response:
        return JSONResponse(_detail(await get_record(request.path_params["id"])))

    async def get_steps(request: Request) -> Response:
        eid = request.path_params["id"]
        steps: list[StepInfo] = await db(app.steps, eid)
        return JSONResponse({"execution_id": eid, "items": [s.as_dict() for s in steps]})

    async def wait_execution(request: Request) -> Response:
        eid = request.path_params["id"]
        raw = request.query_params.get("timeout", "30")
        try:
            timeout = float(raw)
        except ValueError:
            raise ApiError(422, "invalid_input", f"timeout must be a number, got {raw!r}") from None
        if not 0 <= timeout <= MAX_WAIT_SECONDS:
            raise ApiError(
                422, "invalid_input", f"timeout must be between 0 and {MAX_WAIT_SECONDS:g} seconds"
            )
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            rec = await get_record(eid)
            left = deadline - time.monotonic()
            if rec.status in TERMINAL_STATUSES or left <= 0:
                return JSONResponse(_detail(rec))
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.5)

    async def cancel_execution(request: Request) -> Response:
        eid = request.path_params["id"]
        changed = await db(app.cancel, eid)
        rec = await get_record(eid)
        return JSONResponse({"id": eid, "cancelled": changed, "status": rec.status})

    async def send_event(request: Request) -> Response:
        eid = request.path_params["id"]
        body = await _body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "invalid_input", "'name' (the event name) is required")
        await db(app.send_event, eid, name, body.get("payload"))
        return JSONResponse({"id": eid, "name": name, "delivered": True}, status_code=202)

    async def counts(request: Request) -> Response:
        found = await db(app.storage.count_by_status)
        by_status = {st: int(found.get(st, 0)) for st in ALL_STATUSES}
        return JSONResponse({"counts": by_status, "total": sum(by_status.values())})

    async def durables(request: Request) -> Response:
        return JSONResponse({"items": registered_names()})

    # -------------------------------------------------------------- admin

    async def retry_step(request: Request) -> Response:
        eid = request.path_params["id"]
        body = await _body(request)
        st = await db(
            admin.retry_step, app, eid, _opt_str(body, "step"), actor=actor_of(request, body)
        )
        return JSONResponse(st.as_dict())

    async def restart(request: Request) -> Response:
        eid = request.path_params["id"]
        body = await _body(request)
        new_id = _opt_str(body, "new_id")
        args: tuple[Any, ...] | None = None
        kwargs: dict[str, Any] | None = None
        if "input" in body:
            rec = await get_record(eid)
            args, kwargs = admin.json_arguments(lookup(rec.durable_name), body["input"])
        st = await db(
            admin.restart,
            app,
            eid,
            args=args,
            kwargs=kwargs,
            new_id=new_id,
            actor=actor_of(request, body),
        )
        return JSONResponse(st.as_dict(), status_code=201 if new_id else 200)

    async def rerun_from(request: Request) -> Response:
        eid = request.path_params["id"]
        body = await _body(request)
        step = _opt_str(body, "step")
        if step is None:
            raise ApiError(422, "invalid_input", "'step' (the step to re-run from) is required")
        st = await db(admin.rerun_from, app, eid, step, actor=actor_of(request, body))
        return JSONResponse(st.as_dict())

    async def execution_audit(request: Request) -> Response:
        eid = request.path_params["id"]
        await get_record(eid)
        entries = await db(admin.audit_log, app, eid, _int_param(request, "limit", 100, 1, 1000))
        return JSONResponse({"items": [e.as_dict() for e in entries]})

    async def audit(request: Request) -> Response:
        entries = await db(admin.audit_log, app, None, _int_param(request, "limit", 100, 1, 1000))
        return JSONResponse({"items": [e.as_dict() for e in entries]})

    # -------------------------------------------------------------- metrics, web

    async def metrics_endpoint(request: Request) -> Response:
        from zart._ops.metrics import render_metrics

        text = await db(render_metrics, app)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    def static(filename: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve_file(request: Request) -> Response:
            content = (WEB_DIR / filename).read_bytes()
            return Response(
                content,
                media_type=STATIC_TYPES[filename],
                headers={"Cache-Control": "no-cache"},
            )

        return serve_file

    x = "/api/executions/{id:path}"
    routes = [
        Route("/healthz", endpoint(healthz, open_=True), methods=["GET"]),
        Route("/readyz", endpoint(readyz, open_=True), methods=["GET"]),
        Route("/openapi.json", endpoint(openapi), methods=["GET"]),
        Route("/api/durables", endpoint(durables), methods=["GET"]),
        Route("/api/counts", endpoint(counts), methods=["GET"]),
        Route("/api/audit", endpoint(audit), methods=["GET"]),
        Route("/api/executions", endpoint(list_executions), methods=["GET"]),
        Route("/api/executions", endpoint(start_execution), methods=["POST"]),
        # Suffix routes first: ids may contain "/" (child executions: "<parent>/<name>").
        Route(x + "/steps", endpoint(get_steps), methods=["GET"]),
        Route(x + "/wait", endpoint(wait_execution), methods=["GET"]),
        Route(x + "/audit", endpoint(execution_audit), methods=["GET"]),
        Route(x + "/cancel", endpoint(cancel_execution), methods=["POST"]),
        Route(x + "/events", endpoint(send_event), methods=["POST"]),
        Route(x + "/retry-step", endpoint(retry_step), methods=["POST"]),
        Route(x + "/restart", endpoint(restart), methods=["POST"]),
        Route(x + "/rerun-from", endpoint(rerun_from), methods=["POST"]),
        Route(x, endpoint(get_execution), methods=["GET"]),
        Route("/", endpoint(static("index.html"), open_=True), methods=["GET"]),
        Route("/static/app.js", endpoint(static("app.js"), open_=True), methods=["GET"]),
        Route("/static/style.css", endpoint(static("style.css"), open_=True), methods=["GET"]),
    ]
    if metrics:
        routes.append(Route("/metrics", endpoint(metrics_endpoint), methods=["GET"]))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        worker = _WorkerThread(app, worker_concurrency) if worker_concurrency > 0 else None
        if worker is not None:
            worker.start()
        ticker = None
        if scheduler:
            from zart._ops.schedules import SchedulerThread

            ticker = SchedulerThread(app)
            ticker.start()
        try:
            yield
        finally:
            if ticker is not None:
                await run_in_threadpool(ticker.stop)
            if worker is not None:
                await run_in_threadpool(worker.stop)

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


def serve(
    app: Zart,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    metrics: bool = False,
    worker_concurrency: int = 0,
    scheduler: bool = False,
) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    asgi = create_app(
        app,
        token=token,
        metrics=metrics,
        worker_concurrency=worker_concurrency,
        scheduler=scheduler,
    )
    uvicorn.run(asgi, host=host, port=port, log_level="info", lifespan="on")


__all__ = ["OPEN_PATHS", "create_app", "serve"]
