"""ZRT001: a step called in a loop under a constant name.

zart checkpoints each step's result under ``(execution_id, step_name)``. A step
whose name does not change between iterations -- a template without any
``{field}``, a primitive such as ``zart.sleep("wait", 5)`` with a literal name
-- is stored once, by the first iteration. On every later iteration, and on
every replay, the call finds that row and silently returns the *first*
iteration's result: item 2..n are never processed, and nothing fails.
(``zart.wait(aws)`` without ``name=`` is named by its order in the run, so it
never repeats a name; with a literal ``name=`` it is reported like the others.)

Steps are followed through aliases (``pay = billing.charge``, ``activity =
zart.step`` used as the decorator), ``functools.partial``, static, class and
instance methods (``Billing.charge(x)``, ``self.charge(x)``) and star
imports. A call after which every path leaves the loop (``break``,
``return``, ``raise``) runs at most once and is not reported; a name assigned
a constant earlier in the iteration (``x = 0``) does not change per iteration.

"In a loop" means run once per iteration: the body of ``for`` / ``async for`` /
``while``, a ``while`` condition, the element part of a comprehension or
generator expression (``asyncio.gather(*(step(x) for x in xs))``). Not a loop's
``else:`` clause, nor the iterable of a ``for``.

Fix: make the name depend on something that changes per iteration, either in
the definition, ``@step("send-notification-{user_id}")`` (each field names a
parameter), or at the call site, ``send_notification(user).named(f"send-{i}")``.
``--fix`` adds the ``.named(...)`` with the loop index (adding ``enumerate``
to the loop when it has no index).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.rules._context import RuleContext

CODE = "ZRT001"
NAME = "step-in-loop-constant-name"
SUMMARY = "Step or durable primitive called in a loop under a constant name"
FIXABLE = True

VALID = [
    """
from zart import durable, step

@step("process-item-{index}")
async def process_item(index: int, item: str) -> str:
    return item.upper()

@durable("batch")
async def batch(items: list[str]) -> None:
    for i, item in enumerate(items):
        await process_item(i, item)
""",
    """
from zart import durable, step

@step("send-notification")
async def send_notification(user_id: str) -> None: ...

@durable("notify-all")
async def notify_all(user_ids: list[str]) -> None:
    for i, user_id in enumerate(user_ids):
        await send_notification(user_id).named(f"send-notification-{i}")
""",
    """
import zart

@zart.step("fetch-items")
async def fetch_items() -> list[str]: ...

@zart.durable("once")
async def once() -> None:
    items = await fetch_items()
    for item in items:
        print(item)
    else:
        await zart.sleep("cool-down", 5)
""",
    """
import zart

@zart.durable("poll")
async def poll(jobs: list[str]) -> None:
    for n, job in enumerate(jobs):
        await zart.sleep(f"backoff-{n}", 2**n)
""",
    # zart.wait without name= is named by its order in the run
    """
import asyncio
import zart

@zart.step("ping-{host}")
async def ping(host: str) -> None: ...

@zart.durable("probe")
async def probe(hosts: list[str]) -> None:
    for host in hosts:
        await zart.wait([ping(host)], timeout=5)
        backup = ping(f"{host}-backup")
        await zart.wait([ping(host), backup], return_when=asyncio.FIRST_COMPLETED)
""",
    # an alias of a templated step: the name changes per iteration
    """
import zart

@zart.step("charge-{order_id}")
async def charge(order_id: str) -> None: ...

pay = charge

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await pay(order_id)
""",
    # a partial that leaves the templated parameter to the call
    """
from functools import partial
from zart import step

@step("charge-{region}-{order_id}")
async def charge(order_id: str, region: str) -> None: ...

charge_eu = partial(charge, region="eu")

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await charge_eu(order_id)
""",
    # a static method step with a templated name
    """
from zart import step

class Billing:
    @staticmethod
    @step("refund-{order_id}")
    async def refund(order_id: str) -> None: ...

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await Billing.refund(order_id)
""",
    # early exit: every path after the call leaves the loop
    """
from zart import step

@step("notify-first-failure")
async def notify(order_id: str) -> None: ...

async def settle(orders: list[dict]) -> None:
    for order in orders:
        if order["failed"]:
            await notify(order["id"])
            break
""",
]

INVALID = [
    """
from zart import durable, step

@step("send-notification")
async def send_notification(user_id: str) -> None: ...

@durable("notify-all")
async def notify_all(user_ids: list[str]) -> None:
    for user_id in user_ids:
        await send_notification(user_id)
""",
    """
import asyncio
from zart import durable, step as s

@s
async def resize(image: bytes) -> bytes: ...

@durable("thumbnails")
async def thumbnails(images: list[bytes]) -> list[bytes]:
    return await asyncio.gather(*(resize(image) for image in images))
""",
    """
import zart as z

@z.zart_step("check-status")
def check_status() -> bool: ...

@z.zart_durable("wait-for-ready")
async def wait_for_ready() -> None:
    while not await check_status():
        await z.sleep("poll-interval", 10)
""",
    # an assignment alias of a step
    """
import zart

@zart.step("charge")
async def charge(order_id: str) -> None: ...

pay = charge

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await pay(order_id)
""",
    # an alias of the step decorator
    """
import zart

activity = zart.step

@activity("send-receipt")
async def send_receipt(order_id: str) -> None: ...

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await send_receipt(order_id)
""",
    # functools.partial keeps the constant name
    """
import functools
from zart import step

@step("charge")
async def charge(order_id: str, region: str) -> None: ...

charge_eu = functools.partial(charge, region="eu")

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await charge_eu(order_id)
""",
    # a classmethod step called through the class, an instance method through self
    """
from zart import step

class Billing:
    @classmethod
    @step("refund")
    async def refund(cls, order_id: str) -> None: ...

    @step("audit")
    async def audit(self, order_id: str) -> None: ...

    async def settle(self, order_ids: list[str]) -> None:
        for order_id in order_ids:
            await Billing.refund(order_id)
            await self.audit(order_id)
""",
    # a break on one path only: the other path continues the loop
    """
from zart import step

@step("check")
async def check(order_id: str) -> bool: ...

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        if await check(order_id):
            break
""",
    # zart.wait with a constant name=, through an alias
    """
from zart import durable, step, wait as race

@step("ping-{host}")
async def ping(host: str) -> None: ...

@durable("probe")
async def probe(hosts: list[str]) -> None:
    for host in hosts:
        await race([ping(host)], timeout=5, name="ping-race")
""",
    # a constant primitive name built with .format()
    """
import zart

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await zart.sleep("cool-down-{}".format("eu"), 5)
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    for verdict in ctx.loop_verdicts(CODE):
        invocation = verdict.invocation
        if verdict.constant is None:
            continue
        loop = ctx.analysis.describe_loop(verdict.loop)
        suffix = ctx.index_suffix(verdict.loop)
        per_iteration = f'f"{verdict.constant}{suffix}"'
        if invocation.primitive is not None:
            message = (
                f"{invocation.label}() is called in the {loop} under the constant name "
                f'"{verdict.constant}": every iteration after the first reuses the first one\'s '
                "checkpoint. "
                f"Make the name change per iteration, e.g. {per_iteration}"
                f"{invocation.unnamed_hint()}"
            )
        else:
            parameter = ctx.naming.varying_parameter(invocation)
            template = (
                f'@step("{verdict.constant}-{{{parameter}}}"), or name each call: '
                if parameter is not None
                else ""
            )
            message = (
                f"{invocation.label} is called in the {loop} under a constant name: every "
                "iteration after the first gets the first iteration's stored result. "
                + (
                    f"Template the name on a parameter that changes per iteration, e.g. {template}"
                    if parameter is not None
                    else "Name each call after something that changes per iteration: "
                )
                + f".named({per_iteration})"
            )
        yield Report(CODE, message, invocation.call, invocation.top, fix=ctx.fixer.plan(verdict))
