"""ZRT002: ``.named(...)`` in a loop with a constant argument.

``.named(name)`` overrides a step's name at the call site -- precisely so that
each iteration of a loop can get its own. Passing it a constant (a string
literal, or a variable that nothing in the loop rebinds) defeats that: every
iteration is checkpointed under the same ``(execution_id, step_name)`` key, and
iterations 2..n silently receive the first iteration's stored result.

The same holds for the name argument of the durable primitives
(``zart.sleep(name, ...)``, ``zart.wait_for_event(name)``, ``zart.run_child(...,
name=...)``, ``zart.wait(aws, name=...)``, ...) when it is a variable that never
changes in the loop.

Fix: build the name from something that changes per iteration, usually the loop
index: ``.named(f"send-notification-{i}")``. ``--fix`` does that for ``for``
loops (adding ``enumerate`` when the loop has no index).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.rules._context import RuleContext

CODE = "ZRT002"
NAME = "named-in-loop-constant-argument"
SUMMARY = "`.named()` (or a primitive's name) in a loop is given a constant"
FIXABLE = True

VALID = [
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
from zart import durable, step

@step("charge")
async def charge(order_id: str) -> None: ...

@durable("charge-orders")
async def charge_orders(order_ids: list[str]) -> None:
    for order_id in order_ids:
        label = f"charge-{order_id}"
        await charge(order_id).named(label)
""",
    """
from zart import durable, step

@step("ping")
async def ping() -> None: ...

@durable("pinger")
async def pinger(hosts: list[str]) -> None:
    await ping().named("ping-first")
    for host in hosts:
        await ping().named(host)
""",
    # .format() of something that changes per iteration
    """
from zart import step

@step("charge")
async def charge(order_id: str) -> None: ...

def log(message: str) -> None: ...

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        log(order_id)
        await charge(order_id).named("charge-{}".format(order_id))
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
        await send_notification(user_id).named("send")
""",
    """
from zart import durable, step

@step("charge")
async def charge(order_id: str) -> None: ...

LABEL = "charge-order"

@durable("charge-orders")
async def charge_orders(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await charge(order_id).named(LABEL)
""",
    """
import zart

@zart.durable("approvals")
async def approvals(requests: list[str]) -> None:
    event = "approved"
    for request in requests:
        await zart.wait_for_event(event, timeout=3600)
""",
    # .format() and % of constants give a constant name, like an f-string of them
    """
from zart import step

@step("charge")
async def charge(order_id: str) -> None: ...

async def settle(order_ids: list[str]) -> None:
    for order_id in order_ids:
        await charge(order_id).named("charge-{}".format("eu"))
        await charge(order_id).named("refund-%s" % "eu")
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    import libcst as cst

    for verdict in ctx.loop_verdicts(CODE):
        invocation = verdict.invocation
        if verdict.expression is None:
            continue
        loop = ctx.analysis.describe_loop(verdict.loop)
        suffix = ctx.index_suffix(verdict.loop)
        expression = verdict.expression
        if verdict.constant is not None:
            given = f'"{verdict.constant}"'
            example = f'f"{verdict.constant}{suffix}"'
            why = "a constant"
        else:
            assert isinstance(expression, cst.Name)
            given = expression.value
            example = f'f"{{{expression.value}}}{suffix}"'
            why = f"`{given}`, which nothing in the loop changes"
        if invocation.named_call is not None:
            message = (
                f".named({given}) gives {invocation.label} the same name in every iteration of the "
                f"{loop} ({why}): iterations after the first get the first one's stored result. "
                f"Use a name that changes per iteration, e.g. .named({example})"
            )
        else:
            message = (
                f"{invocation.label}() gets the same name in every iteration of the {loop} "
                f"({why}): iterations after the first reuse the first one's checkpoint. "
                f"Use a name that changes per iteration, e.g. {example}"
                f"{invocation.unnamed_hint()}"
            )
        yield Report(CODE, message, invocation.call, invocation.top, fix=ctx.fixer.plan(verdict))
