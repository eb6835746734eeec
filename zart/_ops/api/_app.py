"""The route table, the lifespan (in-process worker and scheduler), ``create_app`` and
``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Route

from zart import Zart
from zart._ops.api import _admin, _executions, _system
from zart._ops.api._http import Handler, endpoint, http_error
from zart._ops.api._state import ApiState
from zart._ops.schedules import SchedulerThread

# Open without a token: liveness/readiness probes and the page shell (it holds no
# data; the page asks for the token and sends it with every API call).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/static/app.js", "/static/style.css"})

_X = "/api/executions/{id:path}"
# (path, method, handler), matched in this order.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("/healthz", "GET", _system.healthz),
    ("/readyz", "GET", _system.readyz),
    ("/openapi.json", "GET", _system.openapi),
    ("/api/durables", "GET", _executions.durables),
    ("/api/counts", "GET", _executions.counts),
    ("/api/audit", "GET", _admin.audit),
    ("/api/executions", "GET", _executions.list_executions),
    ("/api/executions", "POST", _executions.start_execution),
    # Suffix routes first: ids may contain "/" (child executions: "<parent>/<name>").
    (_X + "/steps", "GET", _executions.get_steps),
    (_X + "/wait", "GET", _executions.wait_execution),
    (_X + "/audit", "GET", _admin.execution_audit),
    (_X + "/cancel", "POST", _executions.cancel_execution),
    (_X + "/events", "POST", _executions.send_event),
    (_X + "/retry-step", "POST", _admin.retry_step),
    (_X + "/restart", "POST", _admin.restart),
    (_X + "/rerun-from", "POST", _admin.rerun_from),
    (_X, "GET", _executions.get_execution),
    ("/", "GET", _system.StaticFile("index.html")),
    ("/static/app.js", "GET", _system.StaticFile("app.js")),
    ("/static/style.css", "GET", _system.StaticFile("style.css")),
)
METRICS_ROUTE: tuple[str, str, Handler] = ("/metrics", "GET", _system.metrics)


def routes(*, metrics: bool) -> list[Route]:
    """Starlette routes for ``ROUTES`` (and ``/metrics``); ``OPEN_PATHS`` need no token."""
    table = ROUTES + ((METRICS_ROUTE,) if metrics else ())
    return [
        Route(path, endpoint(handler, open_=path in OPEN_PATHS), methods=[method])
        for path, method, handler in table
    ]


class _WorkerThread:
    """An in-process worker on its own thread and event loop (``zart serve`` runs one)."""

    def __init__(self, app: Zart, concurrency: int) -> None:
        self.worker = app.worker(concurrency=concurrency, poll_interval=0.2)
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
    worker = None
    if state.worker_concurrency > 0:
        worker = _WorkerThread(state.app, state.worker_concurrency)
        worker.start()
    ticker = None
    if state.scheduler:
        ticker = SchedulerThread(state.app)
        ticker.start()
    try:
        yield
    finally:
        if ticker is not None:
            await run_in_threadpool(ticker.stop)
        if worker is not None:
            await run_in_threadpool(worker.stop)


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
    state = ApiState(
        app,
        token=token,
        metrics=metrics,
        worker_concurrency=worker_concurrency,
        scheduler=scheduler,
    )
    return app_for(state)


def app_for(state: ApiState) -> Starlette:
    """The ASGI app serving ``state`` (``create_app`` builds the state from its options)."""
    asgi = Starlette(
        routes=routes(metrics=state.metrics),
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    asgi.state.zart_api = state
    return asgi


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
