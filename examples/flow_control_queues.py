"""Queues: concurrency and rate limits, priorities, partitions, dedup, debounce, delay.

An e-mail service calls a provider that allows 3 connections and 20 sends a second,
and no customer may hog it. Every limit below is enforced by the database in the
claim of every worker, so it holds however many ``zart worker`` processes run.

    python examples/flow_control_queues.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import zart
from zart import durable, step

# At most 3 sends at once across all workers, 20 started per second; submits may
# carry a priority (higher first).
emails = zart.Queue("emails", concurrency=3, rate_limit=(20, 1.0), priority=True)
# Per customer (the partition): one report at a time, 2 started per 10 s.
reports = zart.Queue("reports", concurrency=1, rate_limit=zart.RateLimit(2, per=10.0),
                     partition_key=True)  # fmt: skip
# At most 2 per worker process (e.g. a memory-hungry job).
renders = zart.Queue("renders", worker_concurrency=2)


@step("send:{to}")
async def send(to: str, subject: str) -> str:
    await asyncio.sleep(0.05)  # the provider's latency
    return f"sent {subject!r} to {to}"


@durable("send-email")
async def send_email(to: str, subject: str) -> str:
    return await send(to, subject)


@step("build:{customer}")
async def build(customer: str, month: str) -> str:
    return f"report {month} for {customer}"


@durable("monthly-report")
async def monthly_report(customer: str, month: str) -> str:
    return await build(customer, month)


@step("render:{doc}")
async def render(doc: str, version: int) -> str:
    return f"{doc} v{version}"


@durable("render-doc")
async def render_doc(doc: str, version: int) -> str:
    return await render(doc, version)


def main() -> None:
    db = "queues_example.db"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    app = zart.Zart(f"sqlite:///{db}")

    # Concurrency + rate limit + priority: the password reset goes first.
    newsletters = [app.submit(send_email, f"user{i}@example.com", "news", queue=emails)
                   for i in range(10)]  # fmt: skip
    urgent = app.submit(send_email, "ana@example.com", "reset", queue=emails, priority=10)

    # Partitions: the limits apply per customer.
    for customer in ("acme", "globex"):
        app.submit(monthly_report, customer, "2026-11", queue=reports, partition=customer)

    # Dedup: while the first is open (and 60 s after it finished), the same key returns it.
    first = app.submit(send_email, "ben@example.com", "receipt", dedup_key="order-42",
                       dedup_ttl=60)  # fmt: skip
    again = app.submit(send_email, "ben@example.com", "receipt", dedup_key="order-42")
    assert again.execution_id == first.execution_id and not again.created

    # Debounce: three edits within the window make one render, of the last version.
    for version in (1, 2, 3):
        edit = app.submit(render_doc, "doc-7", version, queue=renders, debounce=("doc-7", 0.5))

    # Delay: not started before 1 s from now.
    later = app.submit(send_email, "cy@example.com", "reminder", delay=1.0)

    started = time.monotonic()
    asyncio.run(work_off(app, [urgent, *newsletters, first, edit, later]))
    print(f"all done in {time.monotonic() - started:.1f}s")
    order = sorted([urgent, *newsletters], key=lambda h: h.status().started_at or 0)
    print("started first:", order[0].status().id == urgent.execution_id)  # priority 10
    print(app.result(edit.execution_id))  # doc-7 v3: only the last input ran
    print(app.result(later.execution_id))
    os.system(f"{sys.executable} -m zart --database-url sqlite:///{db} queues")
    app.close()


async def work_off(app: zart.Zart, handles: list[zart.ExecutionHandle[str]]) -> None:
    """A worker in this process until the handles' executions are done (in production:
    ``zart worker examples.flow_control_queues``, as many as you like)."""
    worker = app.worker(concurrency=8)
    running = asyncio.ensure_future(worker.run_async())
    for handle in handles:
        await handle.result(timeout=30)
    worker.stop()
    await running


if __name__ == "__main__":
    main()
