"""The HTTP API served by ``zart serve``: a Starlette app over one ``Zart`` engine.

JSON everywhere, errors included (``{"error": code, "message": text}``). Every
database call runs on the gate's threads, within a timeout: the storage layer is
synchronous.

Layout: every handler is a module-level ``async def handler(state, request)``, given
the server's :class:`ApiState` (the engine, the token, the registry...) explicitly.

* ``_state``: :class:`ApiState` (on ``starlette_app.state.zart_api``), :class:`ServerSettings`.
* ``_gate``: database calls on their own threads, bounded in time; readiness pings.
* ``_guard``: the middleware: allowed hosts, same-origin JSON writes, body limit, headers.
* ``_http``: JSON errors, request parsing, the token check (``endpoint``).
* ``_routing``: ``/api/executions/{id}/...`` routed on the raw (percent-encoded) path.
* ``_executions``: start, list, inspect, timeline, wait, cancel, events, counts, durables.
* ``_admin``: retry-step, restart, rerun-from, audit log.
* ``_system``: health probes, OpenAPI document, metrics, web view files.
* ``_app``: the route table, lifespan (worker, scheduler), ``create_app``.
* ``_server``: ``serve``, the uvicorn server that drains on shutdown, the API's engine.
"""

from zart._ops.api._app import OPEN_PATHS, app_for, create_app, documented_paths
from zart._ops.api._server import api_engine, make_server, serve
from zart._ops.api._state import ApiState, ServerSettings

__all__ = [
    "OPEN_PATHS",
    "ApiState",
    "ServerSettings",
    "api_engine",
    "app_for",
    "create_app",
    "documented_paths",
    "make_server",
    "serve",
]
