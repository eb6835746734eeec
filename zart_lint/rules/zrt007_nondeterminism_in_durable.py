"""ZRT007: a non-deterministic call directly in a durable body.

A durable function is *replayed* after a crash: its body runs again from the
top, completed steps return their stored results, and execution continues
where it stopped. Code between steps must therefore compute the same thing on
every replay. ``time.time()``, ``datetime.now()``, ``random.random()``,
``uuid.uuid4()``, ``os.urandom()``, ``secrets.token_hex()`` ... return something
new each time: a replay takes other branches or passes other arguments to the
following steps (zart logs a replay-drift warning, or raises in strict mode).

Only calls made by the durable body itself are reported; code inside a step,
or in a function handed to ``zart.capture`` (``lambda: time.time()``), runs
once and is checkpointed.

Fix: read the clock with ``await zart.now("name")``, wrap other values with
``await zart.capture("name", uuid.uuid4)``, or move the code into a step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.rules._context import RuleContext

CODE = "ZRT007"
NAME = "nondeterminism-in-durable"
SUMMARY = "Non-deterministic call (clock, random, uuid) directly in a durable body"
FIXABLE = False

VALID = [
    """
import time
import zart

@zart.step("stamp")
async def stamp() -> float:
    return time.time()

@zart.durable("report")
async def report() -> None:
    started = await zart.now("started")
    stamped = await stamp()
""",
    """
import uuid
import zart

@zart.durable("order")
async def order() -> None:
    order_id = await zart.capture("order-id", lambda: str(uuid.uuid4()))
""",
    """
import random

def jitter() -> float:
    return random.random()

async def not_durable() -> float:
    return random.random()
""",
]

INVALID = [
    """
import time
from zart import durable

@durable("report")
async def report() -> float:
    return time.time()
""",
    """
from datetime import datetime
from zart import durable, step

@step("save-{stamp}")
async def save(stamp: str) -> None: ...

@durable("snapshot")
async def snapshot() -> None:
    await save(datetime.now().isoformat())
""",
    """
import random
import uuid as u
import zart

@zart.durable("lottery")
async def lottery() -> None:
    ticket = u.uuid4()
    if random.random() < 0.5:
        await zart.sleep("suspense", 1)
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    analysis = ctx.analysis
    for site in analysis.model.calls:
        if analysis.scope_kind(site.scope) != "durable":
            continue
        found = analysis.nondeterministic(site)
        if found is None:
            continue
        qualified, kind = found
        written = ".".join(site.parts)
        if kind == "now":
            instead = 'await zart.now("<name>")'
        else:
            instead = f'await zart.capture("<name>", {written})'
        shown = f"{written}()" if written == qualified else f"{written}() ({qualified})"
        message = (
            f"{shown} in durable {site.scope.name}() is not deterministic: a replay "
            f"gets a different value than the first run. Use {instead}, or move it into a step"
        )
        yield Report(CODE, message, site.call)
