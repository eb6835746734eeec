"""Push wake-ups: "work may be ready", told to the workers that wait for it.

Two parts:

* The **hub** of this process. Anything here may :func:`notify` (after a commit that
  made an execution runnable); every :class:`Waiter` registered for that durable
  name (any asyncio loop, any thread) has its event set. A waiter that was told
  once is not told again until its loop has run the first wake-up, so a burst of
  notifications costs each loop one callback.
* On PostgreSQL, a :class:`Listener` per process: a thread that holds one
  dedicated connection in ``LISTEN zart_work`` and forwards every notification
  (``pg_notify('zart_work', <durable name>)``, sent by the writing transaction and
  delivered at its commit) to the hub. It reconnects with backoff when its
  connection drops; while it is down, :attr:`Listener.live` is False and workers
  poll as often as they would without it. Each (re)connection wakes every waiter,
  for what was committed while nobody listened.

SQLite has no way to reach another process: there the hub wakes this process's
workers and other processes poll.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

log = logging.getLogger("zart.storage")

CHANNEL = "zart_work"


class Waiter:
    """One waiting event loop (a worker): :attr:`event` is set when work may be ready
    for one of ``names`` (any name when None)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, names: frozenset[str] | None) -> None:
        self.loop = loop
        self.names = names
        self.event = asyncio.Event()
        self.scheduled = False  # a wake-up is on its way to the loop (guarded by the hub)

    def wants(self, name: str | None) -> bool:
        return name is None or self.names is None or name in self.names

    def clear(self) -> None:
        """Forget earlier wake-ups: from now on only a new one sets the event (call it
        before looking for work, so one sent while looking is not lost)."""
        self.event.clear()

    def close(self) -> None:
        _HUB.unregister(self)

    def _fire(self) -> None:  # on the waiter's loop
        with _HUB.lock:
            self.scheduled = False
        self.event.set()


class _Hub:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiters: set[Waiter] = set()

    def register(self, names: Iterable[str] | None) -> Waiter:
        waiter = Waiter(asyncio.get_running_loop(), None if names is None else frozenset(names))
        with self.lock:
            self.waiters.add(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        with self.lock:
            self.waiters.discard(waiter)

    def notify(self, name: str | None) -> None:
        with self.lock:
            told = [w for w in self.waiters if not w.scheduled and w.wants(name)]
            for waiter in told:
                waiter.scheduled = True
        for waiter in told:
            try:
                waiter.loop.call_soon_threadsafe(waiter._fire)
            except RuntimeError:  # its loop is closed: it waits no more
                self.unregister(waiter)


_HUB = _Hub()


def register(names: Iterable[str] | None = None) -> Waiter:
    """A waiter on the running loop for executions of ``names`` (all when None);
    ``close()`` it when done."""
    return _HUB.register(names)


def notify(name: str | None = None) -> None:
    """Work may be ready for ``name`` (for anyone when None): wake the waiters of this
    process. Thread-safe; cheap when nobody waits."""
    if _HUB.waiters:
        _HUB.notify(name)


class Listener:
    """A thread in ``LISTEN zart_work`` on its own connection, forwarding to the hub.

    ``connect()`` returns a new psycopg connection (not in autocommit: set here). The
    thread checks for :meth:`stop` every ``tick`` seconds.
    """

    def __init__(self, connect: Callable[[], Any], *, tick: float = 0.25) -> None:
        self._connect = connect
        self._tick = tick
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.live = False  # connected and listening (read by workers from any thread)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zart-listener", daemon=True)
            self._thread.start()

    def stop(self, wait: float = 1.0) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def _run(self) -> None:
        delay, outage_logged = 0.1, False
        while not self._stopping.is_set():
            try:
                conn = self._open()
            except Exception as exc:
                if not outage_logged:
                    log.warning("wake-up listener cannot connect (%s); workers poll", exc)
                    outage_logged = True
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            if outage_logged:
                log.info("wake-up listener connected again")
            outage_logged = self._listen(conn)

    def _open(self) -> Any:
        conn = self._connect()
        try:
            from psycopg.pq import TransactionStatus

            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.rollback()  # e.g. the pool's pre-ping left a transaction open
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            with suppress(Exception):
                conn.close()
            raise
        return conn

    def _listen(self, conn: Any) -> bool:
        """Forward notifications until stopped (False) or the connection fails (True)."""
        self.live = True
        notify(None)  # what was committed while nobody listened
        try:
            while not self._stopping.is_set():
                for message in conn.notifies(timeout=self._tick):
                    notify(message.payload or None)
            return False
        except Exception as exc:
            if self._stopping.is_set():
                return False
            log.warning(
                "wake-up listener lost its connection (%s); workers poll until it is back", exc
            )
            return True
        finally:
            self.live = False
            notify(None)  # waiters re-plan: no push now, so they poll
            with suppress(Exception):
                conn.close()


__all__ = ["CHANNEL", "Listener", "Waiter", "notify", "register"]
