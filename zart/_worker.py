"""Workers: claim runnable executions and run them to the end, many at a time."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

from zart._durable import lookup, registered_names

if TYPE_CHECKING:
    from zart._engine import Zart

log = logging.getLogger("zart.worker")


class Worker:
    """Runs executions of the durable functions registered in this process.

    ``concurrency`` executions run at once on one event loop. On SIGTERM/SIGINT
    the worker stops claiming, gives running executions ``grace_seconds`` to
    finish, then hands the rest back (their lease is released, so another worker
    resumes them at once rather than after the lease expires).
    """

    def __init__(
        self,
        app: Zart,
        *,
        concurrency: int = 8,
        durable_names: list[str] | None = None,
        poll_interval: float = 0.5,
        grace_seconds: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.concurrency = concurrency
        self.durable_names = durable_names
        self.poll_interval = poll_interval
        self.grace_seconds = grace_seconds
        self._stop: asyncio.Event | None = None
        self.completed = 0

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def run(self, *, until_idle: bool = False) -> int:
        """Run until stopped by a signal (or, with ``until_idle``, until nothing is runnable)."""
        return asyncio.run(self.run_async(until_idle=until_idle, install_signals=True))

    async def run_async(self, *, until_idle: bool = False, install_signals: bool = False) -> int:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                except (NotImplementedError, RuntimeError):
                    pass
        names = self.durable_names or registered_names()
        for name in names:
            lookup(name)  # fail early on an unknown name
        storage = self.app.storage
        storage.ensure_schema()
        running: set[asyncio.Task[Any]] = set()
        log.info("worker started: %d slots, durables: %s", self.concurrency, ", ".join(names) or "none")
        try:
            while not self._stop.is_set():
                free = self.concurrency - len(running)
                claimed = []
                if free > 0:
                    try:
                        claimed = storage.claim_runnable(
                            self.app._new_token_for_worker, names, free, self.app.lease_seconds
                        )
                    except Exception as exc:
                        log.warning("could not claim work (%s); retrying", exc)
                        await self._pause(min(5.0, self.poll_interval * 4))
                        continue
                for rec, token in claimed:
                    task = asyncio.ensure_future(self._run_one(rec, token))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if claimed:
                    continue
                if until_idle and not running:
                    break
                await self._pause(self.poll_interval, running)
        finally:
            if running:
                log.info("worker stopping: waiting up to %.0fs for %d executions", self.grace_seconds, len(running))
                done, pending = await asyncio.wait(running, timeout=self.grace_seconds)
                for task in pending:
                    task.cancel()  # _execute releases the lease on cancellation
                if pending:
                    await asyncio.wait(pending)
            log.info("worker stopped after %d executions", self.completed)
        return self.completed

    def _on_signal(self, sig: int) -> None:
        log.info("worker received %s; shutting down", signal.Signals(sig).name)
        self.stop()

    async def _pause(self, seconds: float, running: set[asyncio.Task[Any]] | None = None) -> None:
        assert self._stop is not None
        waiters: list[Any] = [asyncio.ensure_future(self._stop.wait())]
        if running:
            waiters.append(asyncio.ensure_future(asyncio.wait(list(running), return_when=asyncio.FIRST_COMPLETED)))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _run_one(self, rec: Any, token: str) -> None:
        try:
            durable = lookup(rec.durable_name)
            outcome = await self.app._execute(durable, rec, token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("execution %s crashed the worker task", rec.id)
            return
        if outcome.finished:
            self.completed += 1
            state = "failed" if outcome.error is not None else "completed"
            log.info("execution %s %s", rec.id, state)
