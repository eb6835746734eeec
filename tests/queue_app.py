"""Durable functions and queues run by the `zart worker` processes of
tests/runtime/test_queues.py. Every job runs one step ("work"), whose start and finish
times in zart_steps are what the tests measure."""

from __future__ import annotations

import asyncio

import zart
from zart import durable, step

conc = zart.Queue("t-conc", concurrency=3)
rate = zart.Queue("t-rate", rate_limit=(10, 1.0))
prio = zart.Queue("t-prio", concurrency=1, priority=True)
part = zart.Queue("t-part", concurrency=1, partition_key=True)
per_worker = zart.Queue("t-wc", worker_concurrency=2)
plain = zart.Queue("t-plain")


@step("work")
async def work(value: str, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return value


@durable("q-job")
async def job(value: str, seconds: float = 0.0) -> str:
    return await work(value, seconds)


__all__ = ["conc", "job", "part", "per_worker", "plain", "prio", "rate"]
