"""Durable functions run by the `zart worker` processes of tests/runtime/test_pause_rules.py.

Every step body appends one line to ``$PAUSE_LOG`` (so the test can count how many
times each body ran, across processes); ``hold`` waits for the file ``$PAUSE_GATE``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from zart import durable, step
from zart._execution._context import current_execution


def _log(line: str) -> None:
    with open(os.environ["PAUSE_LOG"], "a") as out:  # one short append: atomic
        out.write(line + "\n")


@step("prep:{order}")
async def prep(order: int) -> int:
    _log(f"prep:{order}")
    return order


@step("hold:{order}")
async def hold(order: int) -> int:
    """The step running when the test adds its rule: it ends once the gate file exists."""
    _log(f"hold:{order}")
    gate = Path(os.environ["PAUSE_GATE"])
    deadline = time.monotonic() + 30
    while not gate.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return 0


@step("charge:{order}")
async def charge(order: int) -> int:
    _log(f"charge:{order}")
    return order * 100


@step("ship:{order}")
async def ship(order: int) -> int:
    _log(f"ship:{order}")
    return order * 10_000


@durable("pause-orders")
async def orders(order: int) -> int:
    """prep, hold (the test's gate), charge, ship: ``order * 10101``."""
    total = await prep(order)
    total += await hold(order)
    total += await charge(order)
    return total + await ship(order)


@step("tick-{run}-{i}")
async def tick(run: str, i: int) -> int:
    """Logs ``tick:<run>:<i>:<pause-rule cache refreshes of this process so far>``;
    takes 10 ms until the gate file exists."""
    ctx = current_execution.get()
    refreshes = ctx.pauses.refreshes if ctx is not None else -1
    _log(f"tick:{run}:{i}:{refreshes}")
    if not Path(os.environ["PAUSE_GATE"]).exists():  # slow until the test opens the gate
        await asyncio.sleep(0.01)
    return i


@durable("pause-ticker")
async def ticker(run: str, n: int) -> int:
    """``n`` quick steps: ``sum(range(n))``."""
    total = 0
    for i in range(n):
        total += await tick(run, i)
    return total


__all__ = ["orders", "ticker"]
