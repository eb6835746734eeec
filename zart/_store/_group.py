"""Group commit: the writes of executions running at once in one process share a
transaction.

Each write (a fenced checkpoint, a create-and-claim, a finish, a lease check) is one
SQL statement whose result is a row count. A caller adds its statement and awaits it;
the statements added while the event loop runs one round of ready tasks are written
by one transaction at the start of the next round, and every caller's await returns
only after that transaction has committed. So:

* Durability is what it was: nothing is acknowledged before its commit.
* A lone write waits for nothing: the batch starts on the loop's very next round (no
  timer), and a lone execution does not come here at all (see :meth:`batching`).
* Fencing holds per statement: each carries its own lease condition, so a stale writer
  gets 0 rows while its batch-mates are written.
* A batch is one transaction: it commits whole or not at all. A transient failure
  (locked, full, a dropped connection) retries the whole batch (every statement is an
  upsert or conditional update, safe to repeat; those whose first try may have
  committed check what it left, see ``verify``); a permanent one is retried statement
  by statement, so only the statement at fault fails.

Everything runs on the event loop's thread, on that thread's connection: a batch never
races the process's own other writes for SQLite's write lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zart._errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from zart._store._database import Database

# The most statements one transaction carries (a bound on how long a batch holds the
# write lock; the rest go in the next one, at once).
MAX_BATCH = 1000


class Write:
    """One statement waiting for its batch: ``verify`` answers, after a retried batch,
    whether a 0-row result is really 0 (the first try may have committed it)."""

    __slots__ = ("future", "params", "sql", "verify")

    def __init__(
        self,
        sql: str,
        params: dict[str, Any],
        future: asyncio.Future[tuple[int, float]],
        verify: Callable[[], bool] | None,
    ) -> None:
        self.sql = sql
        self.params = params
        self.future = future
        self.verify = verify


class GroupCommit:
    """The batches of one database, on one event loop at a time."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending: list[Write] = []
        # Executions running in this process now (the engine counts them): with one,
        # its writes go straight to the database, with no round of the loop to wait for.
        self.active = 0
        self.batches = 0  # transactions written so far (tests and benchmarks read these)
        self.statements = 0
        # Monotonic time the last batch started, and how many batches there were: a
        # step that starts in the round right after its checkpoint's batch, with no
        # batch since, relies on that batch's lease check (see ExecutionContext).
        self.last_started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False

    def batching(self) -> bool:
        """Should a write go through a batch (others run beside it) or straight out?"""
        return self.active > 1 or bool(self.pending)

    async def write(
        self, sql: str, params: dict[str, Any], verify: Callable[[], bool] | None = None
    ) -> tuple[int, float]:
        """Run ``sql`` in the next batch; (rows it affected or returned, monotonic time
        its batch started), once the batch has committed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self.pending or self._scheduled:
                # Another loop (thread) owns the batch in flight: write on our own.
                return self._alone(Write(sql, params, loop.create_future(), verify))
            self._loop = loop
        future: asyncio.Future[tuple[int, float]] = loop.create_future()
        self.pending.append(Write(sql, params, future, verify))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _alone(self, write: Write) -> tuple[int, float]:
        started = time.monotonic()
        (count,) = self._run([write])
        return count, started

    def _flush(self) -> None:
        """Write the pending statements in one transaction (the loop calls this)."""
        self._scheduled = False
        batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        if self.pending and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        if not batch:
            return
        started = self.last_started = time.monotonic()
        try:
            counts = self._run(batch)
        except DatabaseUnavailableError as exc:
            for write in batch:
                _settle(write, exc=exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc=exc)
            else:
                self._one_by_one(batch, started)
            return
        for write, count in zip(batch, counts, strict=True):
            _settle(write, result=(count, started))

    def _run(self, batch: list[Write]) -> list[int]:
        counts, retried = self.db.write_batch([(w.sql, w.params) for w in batch])
        self.batches += 1
        self.statements += len(batch)
        if retried:
            # An earlier try may have committed before the connection broke: a 0 may
            # be our own write, already in.
            counts = [
                1 if count == 0 and w.verify is not None and w.verify() else count
                for w, count in zip(batch, counts, strict=True)
            ]
        return counts

    def _one_by_one(self, batch: list[Write], started: float) -> None:
        """A batch failed for good: each statement in its own transaction, so only the
        one at fault hears of it (the others are not half-applied: the batch rolled
        back as a whole)."""
        for write in batch:
            try:
                (count,) = self._run([write])
            except Exception as exc:
                _settle(write, exc=exc)
            else:
                _settle(write, result=(count, started))


def _settle(
    write: Write, result: tuple[int, float] | None = None, exc: BaseException | None = None
) -> None:
    future = write.future
    if future.done():  # the caller was cancelled: the write stands, nobody waits for it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert result is not None
        future.set_result(result)
