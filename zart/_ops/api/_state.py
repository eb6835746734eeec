"""What every API handler is given: the engine and the server's settings."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from zart import DurableFunction, ExecutionNotFoundError, Zart
from zart._ops._internals import ExecutionRecord, lookup, registered_names
from zart._ops.api._gate import DbGate

T = TypeVar("T")

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """How the server protects itself (see docs/operations.md, "Running it safely").

    ``allowed_hosts``: host names the ``Host`` header may carry besides IP addresses and
    ``localhost`` (DNS-rebinding protection); ``".example.com"`` also allows its
    subdomains, ``"*"`` allows any. ``allowed_origins``: origins (``https://ops.example``)
    allowed to send state-changing requests besides the server's own.
    ``max_body_bytes``: request bodies above it are answered 413. ``db_timeout``: each
    request's database work is answered within it (else 503). ``db_threads``: threads
    running database calls: each keeps a connection, so with the pings (2), an
    in-process worker (2) and the scheduler (1) they stay within SQLite's pool of 12.
    ``grace_seconds``: on SIGTERM, how long requests and running executions get.
    """

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    db_timeout: float = 2.0
    db_threads: int = 6
    grace_seconds: float = 10.0


class Lifecycle:
    """Set when the server starts shutting down: long polls answer at once."""

    def __init__(self) -> None:
        self.draining = False


@dataclass(frozen=True)
class ApiState:
    """The app state of one API server, stored on ``starlette_app.state.zart_api``.

    ``token``: the bearer token required outside ``OPEN_PATHS`` (None: no auth).
    ``metrics``: serve ``/metrics``. ``worker_concurrency`` > 0: run a worker in this
    process while the app runs. ``scheduler``: run the schedules loop too.
    ``lookup`` / ``durable_names``: the registry of durable functions (by default the
    ones imported in this process). ``worker_app``: the engine the worker and scheduler
    use (default ``app``; ``zart serve`` gives the API an engine with short database
    timeouts and the worker one that rides out outages).
    """

    app: Zart
    token: str | None = None
    metrics: bool = False
    worker_concurrency: int = 0
    scheduler: bool = False
    lookup: Callable[[str], DurableFunction[Any, Any]] = field(default=lookup)
    durable_names: Callable[[], list[str]] = field(default=registered_names)
    settings: ServerSettings = field(default_factory=ServerSettings)
    worker_app: Zart | None = None
    gate: DbGate = field(init=False, repr=False, compare=False)
    lifecycle: Lifecycle = field(default_factory=Lifecycle, repr=False, compare=False)

    def __post_init__(self) -> None:
        gate = DbGate(self.settings.db_timeout, self.settings.db_threads)
        object.__setattr__(self, "gate", gate)

    @property
    def identity(self) -> str | None:
        """Who a request authenticated with the token is, in the audit log."""
        if not self.token:
            return None
        return "token:" + hashlib.sha256(self.token.encode()).hexdigest()[:8]

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (synchronous) database call on the gate's threads, within its timeout."""
        return await self.gate.call(fn, *args, **kwargs)

    async def record(self, execution_id: str) -> ExecutionRecord:
        """The stored execution, input and result included; ExecutionNotFoundError if none."""
        rec = await self.db(self.app.ops_store.get_execution, execution_id)
        if rec is None:
            raise ExecutionNotFoundError(f"no execution with id {execution_id!r}")
        return rec


def api_state(conn: HTTPConnection) -> ApiState:
    """The state of the app serving this request."""
    state = conn.app.state.zart_api
    assert isinstance(state, ApiState)
    return state
