"""The lease heartbeat: renews the leases of the executions this process runs."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from zart._errors import LeaseLostError

if TYPE_CHECKING:
    from zart._execution._journal import ExecutionContext
    from zart._store import JournalStore

log = logging.getLogger("zart")


class Heartbeat:
    """Renews the lease of every tracked execution each ``lease_seconds / 3``.

    A thread, not an asyncio task: a step that blocks the event loop must not let the
    lease lapse and invite a second worker to run the same execution. A lease found
    lost (taken over, cancelled) stops its execution at the next step boundary.
    """

    def __init__(self, journal: JournalStore, lease_seconds: float) -> None:
        self.journal = journal
        self.lease_seconds = lease_seconds
        self.active: dict[str, ExecutionContext] = {}
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def track(self, token: str, ctx: ExecutionContext) -> None:
        self.active[token] = ctx
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="zart-lease-heartbeat", daemon=True
            )
            self._thread.start()

    def untrack(self, token: str) -> None:
        self.active.pop(token, None)

    def stop_execution(self, execution_id: str, reason: BaseException) -> None:
        """Stop this process's runs of ``execution_id`` at their next step boundary (a
        cancel made here needs no database round trip to be noticed)."""
        for ctx in list(self.active.values()):
            if ctx.execution_id == execution_id and ctx.stop is None:
                ctx.stop = reason

    def stop(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._closing.clear()

    def _loop(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while not self._closing.wait(interval):
            tokens = list(self.active)
            if tokens:
                self.beat(tokens)

    def beat(self, tokens: list[str]) -> None:
        try:
            lost = self.journal.renew_leases(tokens, self.lease_seconds)
        except Exception as exc:  # database briefly unreachable: try again next beat
            log.warning("could not renew leases: %s", exc)
            return
        for token in lost:
            ctx = self.active.get(token)
            if ctx is not None and ctx.stop is None:
                try:
                    ctx.lost()
                except Exception:
                    ctx.stop = LeaseLostError(f"lease on {ctx.execution_id!r} lost")
