"""Every database call the API makes passes here: on threads of its own, answered in time.

* **Bounded.** Each call gets ``timeout`` seconds (queueing included); past that the
  request is answered ``503 database_unavailable`` with ``Retry-After``, whatever the
  database is doing (refusing connections, dropping packets, holding a lock). A call
  still queued when its time is up never runs.
* **Within the connection pool.** The storage layer keeps one connection per thread;
  ``threads`` is kept under the pool's size, so requests wait here (bounded) rather
  than for a pooled connection (30 s, then an error).
* **Shed when swamped.** Beyond ``MAX_OUTSTANDING`` calls waiting or running, a new one
  is refused at once rather than queued (each queued call ends within ``timeout``
  anyway: this only bounds memory under a flood).
* **Readiness apart.** ``ready()`` pings on two threads of its own, one ping at a time
  shared by concurrent probes, so ``/readyz`` answers within ``ready_timeout`` even
  when the API's threads are all stuck.
* **Logged once.** The first failure logs a warning (password masked); the recovery
  logs how long the outage lasted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from zart import DatabaseUnavailableError
from zart._ops.secrets import scrub

T = TypeVar("T")
log = logging.getLogger("zart.api")

READY_CACHE_SECONDS = 0.5  # a successful ping answers the probes of the next half second
STALE_PING_SECONDS = 3.0  # a ping older than this is not waited for: another starts
MAX_OUTSTANDING = 1000


class Overloaded(DatabaseUnavailableError):
    """Too many database calls outstanding: refused without queueing."""


class Health:
    """Whether the last database call worked; logs the transitions."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.problem = ""

    def failed(self, problem: str) -> None:
        self.problem = scrub(problem)
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("database unavailable: %s", self.problem)

    def ok(self) -> None:
        if self.down_since is not None:
            log.warning("database available again after %.1fs", time.monotonic() - self.down_since)
            self.down_since = None
            self.problem = ""


class DbGate:
    """Runs synchronous database calls for the API; see the module docstring."""

    def __init__(self, timeout: float = 2.0, threads: int = 6, ready_timeout: float = 1.5):
        self.timeout = timeout
        self.ready_timeout = ready_timeout
        self.max_outstanding = MAX_OUTSTANDING
        self.health = Health()
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, "zart-api-db")
        self._ping_executor = concurrent.futures.ThreadPoolExecutor(2, "zart-api-ready")
        self._lock = threading.Lock()
        self._outstanding = 0
        self._ping: asyncio.Future[Any] | None = None
        self._ping_started = 0.0
        self._ready_at = 0.0

    def _release(self) -> None:
        with self._lock:
            self._outstanding -= 1

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a database thread, within ``timeout`` seconds."""
        with self._lock:
            if self._outstanding >= self.max_outstanding:
                raise Overloaded(f"{self._outstanding} database calls already outstanding")
            self._outstanding += 1

        def run() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                self._release()

        future = self._executor.submit(run)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except asyncio.TimeoutError:
            if future.cancel():  # still queued: it will never run
                self._release()
            self.health.failed(f"no answer within {self.timeout:g}s")
            raise DatabaseUnavailableError(
                f"the database did not answer within {self.timeout:g}s"
            ) from None
        except DatabaseUnavailableError as exc:
            self.health.failed(str(exc))
            raise
        self.health.ok()
        return result

    async def ready(self, ping: Callable[[], object]) -> str | None:
        """None when ``ping()`` succeeds within ``ready_timeout``; else what went wrong."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if now - self._ready_at < READY_CACHE_SECONDS:
            return None
        shared = self._ping
        if shared is None or shared.done() or now - self._ping_started > STALE_PING_SECONDS:
            shared = loop.run_in_executor(self._ping_executor, ping)
            shared.add_done_callback(_retrieve)
            self._ping, self._ping_started = shared, now
        try:
            await asyncio.wait_for(asyncio.shield(shared), self.ready_timeout)
        except asyncio.TimeoutError:
            problem = f"no answer within {self.ready_timeout:g}s"
        except Exception as exc:
            problem = str(exc) or type(exc).__name__
        else:
            self._ready_at = time.monotonic()
            self.health.ok()
            return None
        self.health.failed(problem)
        return scrub(problem)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._ping_executor.shutdown(wait=False, cancel_futures=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared ping's exception as seen (its waiters may all have timed out)."""
    if not future.cancelled():
        future.exception()
