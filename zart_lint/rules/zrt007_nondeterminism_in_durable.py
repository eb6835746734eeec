"""ZRT007: a non-deterministic call directly in a durable body.

A durable function is *replayed* after a crash: its body runs again from the
top, completed steps return their stored results, and execution continues
where it stopped. Code between steps must therefore compute the same thing on
every replay. ``time.time()``, ``datetime.now()``, ``random.random()``,
``uuid.uuid4()``, ``os.urandom()``, ``secrets.token_hex()`` ... return something
new each time: a replay takes other branches or passes other arguments to the
following steps (zart logs a replay-drift warning, or raises in strict mode).

Races are not deterministic either. ``asyncio.wait(..., return_when=FIRST_COMPLETED)``
and ``asyncio.as_completed(...)`` report whichever awaitable finished first, and
on a replay the completed steps return at once, so another split (another
order) comes back. ``asyncio.wait_for(step(), 5)`` depends on timing the same
way: a replay, where completed steps return at once, need not time out where
the first run did (nor the other way round).
``asyncio.gather`` waits for everything and keeps the order: it is fine.

Only calls made by the durable body itself are reported; code inside a step,
or in a function handed to ``zart.capture`` (``lambda: time.time()``), runs
once and is checkpointed.

Fix: read the clock with ``await zart.now("name")``, wrap other values with
``await zart.capture("name", uuid.uuid4)``, or move the code into a step.
Replace ``asyncio.wait`` / ``asyncio.as_completed`` with ``await zart.wait(aws,
return_when=...)``, which journals which awaitables finished; replace
``asyncio.wait_for`` with a step timeout (``@step(..., timeout=10)``) or
``zart.wait([aw], timeout=...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.core._recognize import NondeterministicKind
    from zart_lint.rules._context import RuleContext

CODE = "ZRT007"
NAME = "nondeterminism-in-durable"
SUMMARY = "Non-deterministic call (clock, random, uuid, asyncio.wait) directly in a durable body"
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
    # zart.wait journals the race; a step may race freely; gather is deterministic
    """
import asyncio
import zart

async def fetch_price(vendor: str) -> float: ...

@zart.step("quote-{vendor}")
async def quote(vendor: str) -> float:
    return await asyncio.wait_for(fetch_price(vendor), timeout=5)

@zart.step("fastest-price")
async def fastest_price() -> float:
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(fetch_price("a")), asyncio.ensure_future(fetch_price("b"))],
        return_when=asyncio.FIRST_COMPLETED,
    )
    return done.pop().result()

@zart.durable("quotes")
async def quotes() -> None:
    done, pending = await zart.wait([quote("a"), quote("b")], return_when=asyncio.FIRST_COMPLETED)
    both = await asyncio.gather(quote("c"), quote("d"))
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
    """
import asyncio
from zart import durable, step

@step("quote-{vendor}")
async def quote(vendor: str) -> float: ...

@durable("quotes")
async def quotes() -> float:
    done, pending = await asyncio.wait(
        [quote("a"), quote("b")], return_when=asyncio.FIRST_COMPLETED
    )
    return done.pop().result()
""",
    """
import asyncio as aio
from asyncio import as_completed
from zart import durable, step

@step("fetch-{url}")
async def fetch(url: str) -> bytes: ...

@durable("crawl")
async def crawl(urls: list[str]) -> None:
    for each in as_completed([fetch(url) for url in urls]):
        await each
    await aio.wait_for(fetch("index"), timeout=5)
""",
    """
from asyncio import wait as race
from zart import durable, step

@step("ping-{host}")
async def ping(host: str) -> None: ...

@durable("probe")
async def probe() -> None:
    await race([ping("a"), ping("b")], timeout=1)
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
        shown = f"{written}()" if written == qualified else f"{written}() ({qualified})"
        where = f"{shown} in durable {site.scope.name}() is not deterministic"
        yield Report(CODE, f"{where}: {_advice(kind, written)}", site.call)


def _advice(kind: NondeterministicKind, written: str) -> str:
    """Why a replay differs, and what to use instead."""
    if kind == "wait":
        return (
            "which awaitables finish first can differ on a replay, where completed steps "
            "return at once. Use await zart.wait(aws, return_when=...), which journals "
            "the finished ones, or move it into a step"
        )
    if kind == "timeout":
        return (
            "whether the timeout fires depends on timing, and a replay (where completed "
            "steps return at once) need not agree with the first run. Give the step a "
            "timeout (@step(..., timeout=...)) or use await zart.wait([aw], timeout=...)"
        )
    instead = (
        'await zart.now("<name>")' if kind == "now" else f'await zart.capture("<name>", {written})'
    )
    return (
        f"a replay gets a different value than the first run. Use {instead}, or move it into a step"
    )
