"""What every API handler is given: the engine and the server's settings."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from zart import DurableFunction, ExecutionNotFoundError, Zart
from zart._ops._internals import ExecutionRecord, lookup, registered_names

T = TypeVar("T")


@dataclass(frozen=True)
class ApiState:
    """The app state of one API server, stored on ``starlette_app.state.zart_api``.

    ``token``: the bearer token required outside ``OPEN_PATHS`` (None: no auth).
    ``metrics``: serve ``/metrics``. ``worker_concurrency`` > 0: run a worker in this
    process while the app runs. ``scheduler``: run the schedules loop too.
    ``lookup`` / ``durable_names``: the registry of durable functions (by default the
    ones imported in this process).
    """

    app: Zart
    token: str | None = None
    metrics: bool = False
    worker_concurrency: int = 0
    scheduler: bool = False
    lookup: Callable[[str], DurableFunction[Any, Any]] = field(default=lookup)
    durable_names: Callable[[], list[str]] = field(default=registered_names)

    @property
    def identity(self) -> str | None:
        """Who a request authenticated with the token is, in the audit log."""
        if not self.token:
            return None
        return "token:" + hashlib.sha256(self.token.encode()).hexdigest()[:8]

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (synchronous) database call in Starlette's thread pool."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def record(self, execution_id: str) -> ExecutionRecord:
        """The stored execution, input and result included; ExecutionNotFoundError if none."""
        rec = await self.db(self.app.ops_store.get_execution, execution_id)
        if rec is None:
            raise ExecutionNotFoundError(
                f"no execution with id {execution_id!r} in {self.app.database_url}"
            )
        return rec


def api_state(conn: HTTPConnection) -> ApiState:
    """The state of the app serving this request."""
    state = conn.app.state.zart_api
    assert isinstance(state, ApiState)
    return state
