"""Step timeouts, an execution deadline, and an ``on_failure`` fallback.

* ``@step(timeout=...)`` bounds each attempt of a step (retried per its policy);
  ``.with_timeout(...)`` changes it for one call. A timed-out step raises
  ``StepError`` (error type ``StepTimeoutError``) in the durable body.
* ``@durable(timeout=...)`` is a deadline for the whole execution, counted from its
  creation (so restarts do not extend it): a body stuck past it is interrupted and
  the execution fails with error type ``DeadlineExceeded``.
* ``@durable(on_failure=fn)``: ``fn(error: TaskError)`` runs when the execution
  fails; what it returns becomes the result and the execution completes.

    python examples/deadlines_and_fallbacks.py --id quotes-1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import zart
from zart import RetryPolicy, StepError, TaskError, durable, step


@step("call-pricing-api", timeout=0.1, retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
async def call_pricing_api(sku: str) -> int:
    print(f"calling the pricing api for {sku}", flush=True)
    await asyncio.sleep(10)  # the api hangs
    return 100


@step("cached-price")
async def cached_price(sku: str) -> int:
    return 90


@step("slow-report")
async def slow_report(sku: str) -> str:
    print(f"building the report for {sku}", flush=True)
    await asyncio.sleep(10)
    return "report"


@durable("quote")
async def quote(sku: str) -> str:
    try:
        price = await call_pricing_api(sku)
    except StepError:  # both attempts timed out (StepTimeoutError)
        price = await cached_price(sku).with_timeout(1.0)
    return f"{sku}: {price}"


def report_fallback(error: TaskError) -> str:
    return f"no report ({error.error_type})"


@durable("quote-report", timeout=0.3, on_failure=report_fallback)
async def quote_report(sku: str) -> str:
    return await slow_report(sku)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="deadlines-demo", help="execution id (reuse it to resume)")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    price = app.run(quote, "lamp", execution_id=f"{args.id}-quote")
    report = app.run(quote_report, "lamp", execution_id=f"{args.id}-report")
    print(f"result: {[price, report]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
