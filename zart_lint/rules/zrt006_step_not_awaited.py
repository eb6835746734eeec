"""ZRT006: a step call whose result is never awaited.

Calling a step returns a ``StepCall``; the step only runs (and is only
checkpointed) when that is awaited. A bare statement ``send_notification(user)``
or ``send_notification(user).named("x")`` inside an ``async def`` builds the
call and drops it: the step silently never runs (Python may warn about a
never-awaited coroutine, long after the fact).

Passing the call on -- ``asyncio.gather(...)``, ``asyncio.create_task(...)``,
assigning it to a variable awaited later -- is fine and not reported.

Fix: ``await send_notification(user)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.rules._context import RuleContext

CODE = "ZRT006"
NAME = "step-call-not-awaited"
SUMMARY = "Step called in an async function but its StepCall is never awaited"
FIXABLE = False

VALID = [
    """
from zart import durable, step

@step("send-{user}")
async def send(user: str) -> None: ...

@durable("notify")
async def notify(users: list[str]) -> None:
    for user in users:
        await send(user)
""",
    """
import asyncio
from zart import durable, step

@step("send-{user}")
async def send(user: str) -> None: ...

@durable("notify")
async def notify(users: list[str]) -> None:
    await asyncio.gather(*(send(user) for user in users))
    task = asyncio.create_task(send("admin"))
    await task
""",
    """
from zart import step

@step("send-{user}")
async def send(user: str) -> None: ...

def schedule(user: str) -> object:
    return send(user)
""",
]

INVALID = [
    """
from zart import durable, step

@step("send-{user}")
async def send(user: str) -> None: ...

@durable("notify")
async def notify(user: str) -> None:
    send(user)
""",
    """
from zart import durable, step

@step("audit")
async def audit(event: str) -> None: ...

@durable("checkout")
async def checkout(order: str) -> None:
    audit(order).named(f"audit-{order}")
""",
    """
import zart

@zart.durable("slow")
async def slow() -> None:
    zart.sleep("pause", 30)
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    bare = ctx.analysis.model.bare_statements
    for invocation in ctx.analysis.invocations():
        scope = invocation.site.scope
        if id(invocation.top) not in bare or scope.kind != "function" or not scope.is_async:
            continue
        callee = ".".join(invocation.site.parts)
        message = (
            f"{invocation.label} is called but its StepCall is never awaited: it does not run "
            f"and is not checkpointed. Await it: await {callee}(...)"
        )
        yield Report(CODE, message, invocation.call, invocation.top)
