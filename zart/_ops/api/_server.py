"""Serving the API: ``serve`` (what ``zart serve`` runs), the uvicorn server that drains
long polls when it shuts down, and the API's own engine with bounded database timeouts."""

from __future__ import annotations

import copy
import math
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import uvicorn
from starlette.applications import Starlette

from zart import Zart
from zart._ops.api._app import create_app
from zart._ops.api._state import ApiState, ServerSettings

# Sessions of the API's engine end a transaction left idle this long (as zart's default).
IDLE_IN_TRANSACTION_MS = 30_000


def api_database_url(url: str, timeout: float) -> str:
    """``url`` with PostgreSQL connect and statement timeouts of about ``timeout`` seconds,
    unless the URL sets them itself (libpq's ``connect_timeout`` is at least 2 s)."""
    if not url.startswith(("postgresql", "postgres")):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = {key for key, _ in query}
    if "connect_timeout" not in keys:
        query.append(("connect_timeout", str(max(2, math.ceil(timeout)))))
    if "options" not in keys:
        options = (
            f"-c statement_timeout={int(timeout * 1000)} "
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
        )
        query.append(("options", options))
    return urlunsplit(parts._replace(query=urlencode(query)))


def api_engine(app: Zart, timeout: float) -> Zart:
    """An engine on ``app``'s database for the API's own calls: connections and statements
    bounded by ``timeout``, and transient errors retried for at most half of it (a worker
    rides out an outage; an HTTP request must not)."""
    api = Zart(api_database_url(app.database_url, timeout), lease_seconds=app.lease_seconds)
    db: Any = api.ops_store.db
    if hasattr(db, "retry_seconds"):
        db.retry_seconds = min(float(db.retry_seconds), timeout / 2)
    return api


class ZartServer(uvicorn.Server):
    """uvicorn's server; on shutdown it first tells the app, so that long polls
    (``/wait``) answer 503 ``shutting_down`` at once instead of holding the exit."""

    def __init__(self, config: uvicorn.Config, state: ApiState) -> None:
        super().__init__(config)
        self.zart_state = state

    async def shutdown(self, sockets: Any = None) -> None:
        self.zart_state.lifecycle.draining = True
        await super().shutdown(sockets)


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with passwords masked in every record."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["scrub"] = {"()": "zart._ops.secrets.ScrubFilter"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("scrub")
    return config


def make_server(
    asgi: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> ZartServer:
    """A :class:`ZartServer` for ``asgi`` (an app from ``create_app``); its grace period
    on SIGTERM is the app's ``settings.grace_seconds``."""
    state: ApiState = asgi.state.zart_api
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=max(1, math.ceil(state.settings.grace_seconds)),
        log_config=log_config(),
    )
    return ZartServer(config, state)


def serve(
    app: Zart,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    metrics: bool = False,
    worker_concurrency: int = 0,
    scheduler: bool = False,
    settings: ServerSettings | None = None,
) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM. The API answers from its own engine
    (bounded timeouts, ``api_engine``); the worker and scheduler run on ``app``."""
    settings = settings or ServerSettings()
    api = api_engine(app, settings.db_timeout)
    asgi = create_app(
        api,
        token=token,
        metrics=metrics,
        worker_concurrency=worker_concurrency,
        scheduler=scheduler,
        settings=settings,
        worker_app=app,
    )
    try:
        make_server(asgi, host=host, port=port).run()
    finally:
        api.close()
