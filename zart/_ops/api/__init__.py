"""The HTTP API served by ``zart serve``: a Starlette app over one ``Zart`` engine.

JSON everywhere, errors included (``{"error": code, "message": text}``). Every
database call runs in Starlette's thread pool: the storage layer is synchronous.

Layout: every handler is a module-level ``async def handler(state, request)``, given
the server's :class:`ApiState` (the engine, the token, the registry...) explicitly.

* ``_state``: :class:`ApiState`, stored on ``starlette_app.state.zart_api``.
* ``_http``: JSON errors, request parsing, the token check (``endpoint``).
* ``_executions``: start, list, inspect, wait, cancel, events, counts, durables.
* ``_admin``: retry-step, restart, rerun-from, audit log.
* ``_system``: health probes, OpenAPI document, metrics, web view files.
* ``_app``: the route table, lifespan (worker, scheduler), ``create_app``, ``serve``.
"""

from zart._ops.api._app import OPEN_PATHS, app_for, create_app, serve
from zart._ops.api._state import ApiState

__all__ = ["OPEN_PATHS", "ApiState", "app_for", "create_app", "serve"]
