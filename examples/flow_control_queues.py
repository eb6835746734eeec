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
    app = zart.Zart()  # $ZART_DATABASE_URL, else sqlite:///zart.db
    try:
        done = app.status("reset:ana").status == "completed"
    except zart.ExecutionNotFoundError:
        done = False
    if not done:  # a second run of this script finds it all done: nothing runs again
        submit_and_work_off(app)
    news = [app.status(f"news:{i}") for i in range(10)]
    first = min([app.status("reset:ana"), *news], key=lambda s: s.started_at or s.created_at)
    (render,) = app.list(durable_name="render-doc")  # debounce: one execution ran
    print(
        f"result: first={first.id}, {app.result(render.id)}, "
        f"{app.result('reminder:cy')}, reports={len(app.list(durable_name='monthly-report'))}"
    )
    app.close()


def submit_and_work_off(app: zart.Zart) -> None:
    # Concurrency + rate limit + priority: the password reset goes first.
    newsletters = [app.submit(send_email, f"user{i}@example.com", "news", queue=emails,
                              execution_id=f"news:{i}") for i in range(10)]  # fmt: skip
    urgent = app.submit(send_email, "ana@example.com", "reset", queue=emails, priority=10,
                        execution_id="reset:ana")  # fmt: skip

    # Partitions: the limits apply per customer.
    for customer in ("acme", "globex"):
        app.submit(monthly_report, customer, "2026-11", queue=reports, partition=customer)

    # Dedup: while the first is open (and an hour after it finished), the same key
    # returns it.
    first = app.submit(send_email, "ben@example.com", "receipt", dedup_key="order-42",
                       dedup_ttl=3600)  # fmt: skip
    again = app.submit(send_email, "ben@example.com", "receipt", dedup_key="order-42")
    assert again.execution_id == first.execution_id and not again.created

    # Debounce: three edits within the window make one render, of the last version.
    for version in (1, 2, 3):
        edit = app.submit(render_doc, "doc-7", version, queue=renders, debounce=("doc-7", 0.5))

    # Delay: not started before 1 s from now.
    later = app.submit(send_email, "cy@example.com", "reminder", delay=1.0,
                       execution_id="reminder:cy")  # fmt: skip

    started = time.monotonic()
    asyncio.run(work_off(app, [urgent, *newsletters, first, edit, later]))
    print(f"all done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    url = str(app.ops_store.db.url)
    os.system(f"{sys.executable} -m zart --database-url {url} queues 1>&2")


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
