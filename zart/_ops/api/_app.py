"""The route table, the lifespan (in-process worker and scheduler) and ``create_app``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from zart import Zart
from zart._ops.api import _admin, _executions, _pauses, _queues, _system
from zart._ops.api._guard import Guard
from zart._ops.api._http import ApiError, Handler, endpoint, http_error
from zart._ops.api._routing import Target, parse_target, raw_rest
from zart._ops.api._state import ApiState, ServerSettings
from zart._ops.schedules import SchedulerThread

# Open without a token: liveness/readiness probes and the page shell (it holds no
# data; the page asks for the token and sends it with every API call).
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/", "/static/app.js", "/static/timeline.js", "/static/style.css"}
)

# (path, method, handler), matched in this order; ``/api/executions/...`` is routed by
# ``EXECUTION_ROUTES`` on the raw path (see ``_routing``).
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("/healthz", "GET", _system.healthz),
    ("/readyz", "GET", _system.readyz),
    ("/openapi.json", "GET", _system.openapi),
    ("/api/durables", "GET", _executions.durables),
    ("/api/counts", "GET", _executions.counts),
    ("/api/queues", "GET", _queues.queues),
    ("/api/audit", "GET", _admin.audit),
    ("/api/pause-rules", "GET", _pauses.list_rules),
    ("/api/pause-rules", "POST", _pauses.add_rule),
    ("/api/pause-rules/resume", "POST", _pauses.resume_rules),
    ("/api/executions", "GET", _executions.list_executions),
    ("/api/executions", "POST", _executions.start_execution),
    ("/", "GET", _system.StaticFile("index.html")),
    ("/static/app.js", "GET", _system.StaticFile("app.js")),
    ("/static/timeline.js", "GET", _system.StaticFile("timeline.js")),
    ("/static/style.css", "GET", _system.StaticFile("style.css")),
)
# (method, action) → handler for /api/executions/{id}[/{action}]; "step" is
# /api/executions/{id}/steps/{step}.
EXECUTION_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", ""): _executions.get_execution,
    ("GET", "overview"): _executions.get_overview,
    ("GET", "input"): _executions.get_input,
    ("GET", "result"): _executions.get_result,
    ("GET", "steps"): _executions.get_steps,
    ("GET", "step"): _executions.get_step,
    ("GET", "timeline"): _executions.get_timeline,
    ("GET", "wait"): _executions.wait_execution,
    ("GET", "audit"): _admin.execution_audit,
    ("POST", "cancel"): _executions.cancel_execution,
    ("POST", "events"): _executions.send_event,
    ("POST", "retry-step"): _admin.retry_step,
    ("POST", "restart"): _admin.restart,
    ("POST", "rerun-from"): _admin.rerun_from,
    ("POST", "resume"): _pauses.resume_execution,
}
METRICS_ROUTE: tuple[str, str, Handler] = ("/metrics", "GET", _system.metrics)


def documented_paths() -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route served (``/metrics`` included)."""
    paths = {(p, m) for p, m, _ in (*ROUTES, METRICS_ROUTE) if p != "/" and "/static/" not in p}
    for method, action in EXECUTION_ROUTES:
        suffix = {"": "", "step": "/steps/{step}"}.get(action, "/" + action)
        paths.add(("/api/executions/{id}" + suffix, method))
    return paths


async def execution_route(state: ApiState, request: Request) -> Response:
    """``/api/executions/{id}[/{action}]``: parse the raw path, then call the handler."""
    target: Target = parse_target(raw_rest(request.url.path, request.scope.get("raw_path")))
    action = "step" if target.step is not None else target.action
    handler = EXECUTION_ROUTES.get((request.method, action))
    if handler is None:
        allowed = sorted(m for m, a in EXECUTION_ROUTES if a == action)
        raise ApiError(
            405, "method_not_allowed", "Method Not Allowed", Allow=", ".join(allowed) or "GET"
        )
    request.scope["path_params"] = {"id": target.execution_id, "step": target.step}
    return await handler(state, request)


def routes(*, metrics: bool) -> list[Route]:
    """Starlette routes for ``ROUTES`` (and ``/metrics``); ``OPEN_PATHS`` need no token."""
    table = ROUTES + ((METRICS_ROUTE,) if metrics else ())
    found = [
        Route(path, endpoint(handler, open_=path in OPEN_PATHS), methods=[method])
        for path, method, handler in table
    ]
    found.append(
        Route("/api/executions/{rest:path}", endpoint(execution_route), methods=["GET", "POST"])
    )
    return found


class _WorkerThread:
    """An in-process worker on its own thread and event loop (``zart serve`` runs one)."""

    def __init__(self, app: Zart, concurrency: int, grace_seconds: float) -> None:
        self.worker = app.worker(
            concurrency=concurrency, poll_interval=0.2, grace_seconds=grace_seconds
        )
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


@contextlib.asynccontextmanager
async def lifespan(starlette_app: Starlette) -> AsyncIterator[None]:
    """Run the state's worker and scheduler (if asked) while the app runs."""
    state: ApiState = starlette_app.state.zart_api
    engine = state.worker_app or state.app
    worker = None
    if state.worker_concurrency > 0:
        worker = _WorkerThread(engine, state.worker_concurrency, state.settings.grace_seconds)
        worker.start()
    ticker = None
    if state.scheduler:
        ticker = SchedulerThread(engine)
        ticker.start()
    try:
        yield
    finally:
        state.lifecycle.draining = True
        if ticker is not None:
            await run_in_threadpool(ticker.stop)
        if worker is not None:
            await run_in_threadpool(worker.stop)
        state.gate.close()


def create_app(
    app: Zart,
    *,
    token: str | None = None,
    metrics: bool = False,
    worker_concurrency: int = 0,
    scheduler: bool = False,
    settings: ServerSettings | None = None,
    worker_app: Zart | None = None,
) -> Starlette:
    """The ASGI app. ``token``: require ``Authorization: Bearer <token>`` (except on
    ``OPEN_PATHS``). ``metrics``: serve ``/metrics``. ``worker_concurrency`` > 0: run a
    worker for the registered durables in this process while the app runs.
    ``scheduler``: run the schedules loop (``zart._ops.schedules``) too. ``settings``:
    hosts, origins, limits and timeouts (:class:`ServerSettings`). ``worker_app``: the
    engine of the worker and scheduler, when it is not ``app``."""
    state = ApiState(
        app,
        token=token,
        metrics=metrics,
        worker_concurrency=worker_concurrency,
        scheduler=scheduler,
        settings=settings or ServerSettings(),
        worker_app=worker_app,
    )
    return app_for(state)


def app_for(state: ApiState) -> Starlette:
    """The ASGI app serving ``state`` (``create_app`` builds the state from its options)."""
    asgi = Starlette(
        routes=routes(metrics=state.metrics),
        middleware=[Middleware(Guard, settings=state.settings)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    asgi.state.zart_api = state
    return asgi
