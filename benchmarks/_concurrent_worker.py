"""The durable function the worker processes of ``benchmarks/concurrent.py`` run.

Worker processes import this file (``zart worker benchmarks/_concurrent_worker.py``)
and so serve only ``bench-dispatch``; the benchmark's main process imports it too, to
submit executions under the same name. Kept apart from ``concurrent.py`` so that a
worker imports zart and nothing else (no DBOS, no benchmark machinery).
"""

from __future__ import annotations

import time

from zart import durable, step


@step("dispatch-started")
async def dispatch_started(i: int) -> float:
    # Wall clock, not perf_counter: the submitting process subtracts its own
    # time.time() taken just before submit, and both read the same system clock.
    return time.time()


@durable("bench-dispatch")
async def dispatch_job(i: int) -> float:
    """Returns when its first (and only) step started, as seen by the worker."""
    return await dispatch_started(i)
