"""Workers: claim runnable executions and run them to the end, many at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from zart._errors import DatabaseUnavailableError
from zart._execution._durable import lookup, registered_names
from zart._execution._queue import registered_queues
from zart._store import _wakeups

if TYPE_CHECKING:
    from zart._engine._runner import Runner

log = logging.getLogger("zart.worker")


class Worker:
    """Runs executions of the durable functions registered in this process.

    ``concurrency`` executions run at once on one event loop. On SIGTERM/SIGINT
    the worker stops claiming, gives running executions ``grace_seconds`` to
    finish, then hands the rest back (their lease is released, so another worker
    resumes them at once rather than after the lease expires); a second signal
    hands them back at once. If the database cannot be reached at start, the
    worker retries for ``startup_timeout`` seconds; once running, it rides out
    outages (claims are retried with backoff, indefinitely).

    An idle worker sleeps until work is pushed to it (a submit, a hand-back, an
    event or an admin reset, in this process or, on PostgreSQL, in any process:
    LISTEN/NOTIFY, see ``_store/_wakeups.py``), until the next execution is due by
    the clock (a timer, a lease expiry), or until its fallback poll: every
    ``poll_interval`` seconds without a live push channel (SQLite across processes,
    PostgreSQL while the listener reconnects), every ``listen_poll_interval``
    seconds (or ``poll_interval`` if longer) with one.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        concurrency: int = 8,
        durable_names: list[str] | None = None,
        poll_interval: float = 0.5,
        listen_poll_interval: float = 10.0,
        grace_seconds: float = 10.0,
        startup_timeout: float = 60.0,
        only_version: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runner = runner
        self.journal = runner.journal
        self.concurrency = concurrency
        self.durable_names = durable_names
        self.poll_interval = poll_interval
        self.listen_poll_interval = listen_poll_interval
        self.grace_seconds = grace_seconds
        self.startup_timeout = startup_timeout
        self.only_version = only_version
        self._stop: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._overdue = False  # the last idle wait found an execution due and unclaimed
        # Background threads (start() / stop()) run while the worker runs: retention,
        # the scheduler (see Zart.worker).
        self.services: list[Any] = []
        self.completed = 0
        self.failed = 0

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def run(self, *, until_idle: bool = False) -> int:
        """Run until stopped by a signal (or, with ``until_idle``, until nothing is runnable)."""
        return asyncio.run(self.run_async(until_idle=until_idle, install_signals=True))

    async def run_async(self, *, until_idle: bool = False, install_signals: bool = False) -> int:
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._on_signal, sig)
        names = self.durable_names or registered_names()
        for name in names:
            lookup(name)  # fail early on an unknown name
        if not await self._connect():
            return self.completed
        for queue in registered_queues():  # zart.Queue: the limits its claims apply
            self.journal.define_queue(queue.limits, replace=True)
        if not until_idle:
            self.journal.db.listen()  # PostgreSQL: other processes' pushes reach us
        running: set[asyncio.Task[Any]] = set()
        log.info(
            "worker started: %d slots, lease %.1fs, durables: %s",
            self.concurrency,
            self.runner.lease_seconds,
            ", ".join(names) or "none",
        )
        for service in self.services:
            service.start()
        try:
            await self._claim_loop(names, running, until_idle)
        finally:
            await self._shut_down(running)
            for service in self.services:
                service.stop()
        return self.completed

    async def _claim_loop(
        self, names: list[str], running: set[asyncio.Task[Any]], until_idle: bool
    ) -> None:
        """Claim what fits in the free slots, start it, wait for work; until stopped."""
        assert self._stop is not None
        waiter = _wakeups.register(names)
        backoff = self.poll_interval
        try:
            while not self._stop.is_set():
                waiter.clear()  # a push from now on (even during the claim) ends the wait
                free = self.concurrency - len(running)
                try:
                    claimed = self._claim(names, free)
                except Exception as exc:
                    backoff = min(5.0, backoff * 2)
                    log.warning("could not claim work (%s); retrying in %.1fs", exc, backoff)
                    await self._pause(backoff * random.uniform(0.5, 1.0))
                    continue
                backoff = self.poll_interval
                # Counted now, so the first of them batches its writes with the rest.
                self.runner.hold(len(claimed))
                for rec, token in claimed:
                    task = asyncio.ensure_future(self._run_one(rec, token))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if claimed:
                    # Let what was just claimed start before claiming more: its first
                    # step should not wait behind further claim transactions.
                    await asyncio.sleep(0)
                    continue
                if until_idle and not running:
                    break
                await self._pause(self._idle_seconds(names, free > 0), running, waiter.event)
        finally:
            waiter.close()

    def _claim(self, names: list[str], free: int) -> list[tuple[Any, str]]:
        if free <= 0:
            return []
        return self.journal.claim_runnable(
            self.runner.new_token, names, free, self.runner.lease_seconds, self.only_version
        )

    def _idle_seconds(self, names: list[str], can_claim: bool) -> float:
        """How long to wait, when nothing was claimed, unless a push or a finished
        execution ends the wait sooner: until the next execution is due by the clock,
        at most the fallback poll.

        With a live push channel the fallback poll is long: it only catches what
        nothing announces, chiefly executions of a process that died on this host
        (taken over at once: their owner is gone, see ``_orphans``; their lease has not
        expired, so ``next_due`` does not see them) and timers set elsewhere since
        the last look."""
        if self.journal.db.listening:
            fallback = max(self.poll_interval, self.listen_poll_interval)
        else:
            fallback = self.poll_interval
        if not can_claim:
            return fallback  # a slot frees when a running execution ends: that ends the wait
        try:
            due = self.journal.next_due(names, self.only_version)
        except Exception:
            return fallback  # the next claim reports the outage
        overdue, self._overdue = self._overdue, due is not None and due <= 0
        if due is None:
            return fallback
        if due <= 0:
            # Due, yet not claimed: it became due just after the claim (look again now),
            # or another worker is taking it (then do not spin: poll).
            return self.poll_interval if overdue else 0.0
        return min(fallback, due + 0.005)

    async def _shut_down(self, running: set[asyncio.Task[Any]]) -> None:
        """Give running executions the grace period, then hand the rest back."""
        assert self._force is not None
        if running:
            log.info(
                "worker stopping: waiting up to %.0fs for %d executions to finish",
                self.grace_seconds,
                len(running),
            )
            force = asyncio.ensure_future(self._force.wait())
            await self._drain(running, force)
            force.cancel()
            pending = [t for t in running if not t.done()]
            if pending:
                log.info("worker stopping: handing %d executions back", len(pending))
                with self._short_database_retries():
                    for task in pending:
                        task.cancel()  # execute() releases the lease on cancellation
                    await asyncio.wait(pending)
        log.info(
            "worker stopped: %d executions finished here (%d failed)", self.completed, self.failed
        )

    async def _drain(self, running: set[asyncio.Task[Any]], force: asyncio.Future[Any]) -> None:
        """Wait for the running executions, up to the grace period or a second signal."""
        deadline = time.monotonic() + self.grace_seconds
        while running and not force.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.wait(
                [*running, force], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )

    async def _connect(self) -> bool:
        """Reach the database and migrate it; retry with backoff while it is down."""
        assert self._stop is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.5
        while True:
            try:
                self.journal.db.ensure_schema()
                return True
            except DatabaseUnavailableError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; retrying in %.1fs", exc, delay)
                await self._pause(delay)
                if self._stop.is_set():
                    return False
                delay = min(delay * 2, 5.0)

    @contextlib.contextmanager
    def _short_database_retries(self, seconds: float = 5.0) -> Iterator[None]:
        """While handing executions back, do not wait out a long database outage."""
        db = self.journal.db
        saved = db.retry_seconds
        db.retry_seconds = min(saved, seconds)
        try:
            yield
        finally:
            db.retry_seconds = saved

    def _hand_back(self, execution_id: str, token: str) -> None:
        """Make sure a cancelled execution's lease is released, and say so either way."""
        try:
            # execute() released it already, unless the database refused; a second
            # release is a no-op when the first one worked.
            self.journal.release(execution_id, token)
        except Exception as exc:
            log.warning(
                "execution %s could not be handed back (%s); its lease expires within %.0fs "
                "and another worker resumes it then",
                execution_id,
                exc,
                self.runner.lease_seconds,
            )
            return
        log.info("execution %s handed back (worker shutting down)", execution_id)

    def _slot_freed(self, queue: str) -> None:
        """An execution of ``queue`` stopped running here: wake the workers that its
        limits held back (the claim is what checks them)."""
        try:
            self.journal.queue_slot_freed(queue)
        except Exception as exc:  # they find the slot at their next poll
            log.warning("could not announce a free slot of queue %s (%s)", queue, exc)

    def _on_signal(self, sig: int) -> None:
        assert self._stop is not None and self._force is not None
        if self._stop.is_set():
            log.info(
                "worker received %s again; handing running executions back now",
                signal.Signals(sig).name,
            )
            self._force.set()
            return
        log.info("worker received %s; shutting down", signal.Signals(sig).name)
        self.stop()

    async def _pause(
        self,
        seconds: float,
        running: set[asyncio.Task[Any]] | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Sleep ``seconds``, less if stopped, a running execution ends or ``wake`` is set."""
        assert self._stop is not None
        waiters: list[Any] = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        if running:
            waiters.append(
                asyncio.ensure_future(
                    asyncio.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
                )
            )
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _run_one(self, rec: Any, token: str) -> None:
        started = time.monotonic()
        try:
            try:
                durable = lookup(rec.durable_name)
            except BaseException:
                self.runner.hold(-1)  # never ran: end the count hold() made
                raise
            outcome = await self.runner.execute(durable, rec, token, held=True)
            if rec.queue is not None:
                self._slot_freed(rec.queue)
        except asyncio.CancelledError:
            self._hand_back(rec.id, token)
            raise
        except DatabaseUnavailableError as exc:
            # The engine handed it back if the database let it; otherwise its lease is no
            # longer renewed and expires. Either way it is resumed from its last checkpoint.
            log.warning("execution %s interrupted: %s; it will be resumed", rec.id, exc)
            return
        except Exception:
            log.exception("execution %s crashed the worker task; it will be resumed", rec.id)
            return
        elapsed = time.monotonic() - started
        if outcome.finished:
            self.completed += 1
            if outcome.error is not None:
                self.failed += 1
                log.info(
                    "execution %s finished: failed in %.2fs (%s)", rec.id, elapsed, outcome.error
                )
            else:
                log.info("execution %s finished: completed in %.2fs", rec.id, elapsed)
        else:
            log.info(
                "execution %s left this worker after %.2fs (suspended or taken over)",
                rec.id,
                elapsed,
            )
