"""Parallel fan-out: ``asyncio.gather`` over steps with distinct names.

Each gathered call is an ordinary step with its own name (``fetch-price-0``,
``fetch-price-1``, ...), so each is checkpointed on its own: if the process dies
half-way through the fan-out, running it again runs only the calls that had not
finished. Two gathered calls under one name raise ``DuplicateStepError``.

    python examples/parallel_fanout.py --id prices-1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from decimal import Decimal

import zart
from zart import durable, step

PRICES = {"apple": Decimal("0.40"), "pear": Decimal("0.55"), "plum": Decimal("0.10")}


@step("fetch-price-{index}")
async def fetch_price(index: int, sku: str) -> Decimal:
    await asyncio.sleep(0.05)  # a slow remote call; the calls overlap
    print(f"fetched {sku}", flush=True)
    return PRICES[sku]


@step("sum-prices")
async def sum_prices(prices: list[Decimal]) -> Decimal:
    return sum(prices, Decimal(0))


@durable("price-fanout")
async def price_fanout(skus: list[str]) -> Decimal:
    prices = await asyncio.gather(*(fetch_price(i, sku) for i, sku in enumerate(skus)))
    return await sum_prices(list(prices))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="fanout-demo", help="execution id (reuse it to resume)")
    parser.add_argument("skus", nargs="*", default=["apple", "pear", "plum", "apple"])
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    result = app.run(price_fanout, args.skus, execution_id=args.id)
    print(f"result: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
