"""ZRT008: a step or durable primitive called inside a step body.

Only a durable function's own body is journaled: each step it awaits is
checkpointed and replayed. A step body is just code that runs once per
attempt; a step (or ``zart.sleep``, ``zart.now``, ...) called from inside it
runs outside the journal -- not checkpointed, re-run on every retry of the
outer step, its name meaningless.

Fix: call both steps from the durable function, one after the other, or turn
the inner step into a plain function called by the outer one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.rules._context import RuleContext

CODE = "ZRT008"
NAME = "step-in-step"
SUMMARY = "Step or durable primitive called inside a step body"
FIXABLE = False

VALID = [
    """
from zart import durable, step

@step("fetch")
async def fetch() -> list[str]: ...

@step("store-{key}")
async def store(key: str, rows: list[str]) -> None: ...

@durable("pipeline")
async def pipeline() -> None:
    rows = await fetch()
    await store("main", rows)
""",
    """
from zart import step

def normalize(row: str) -> str:
    return row.strip()

@step("clean")
async def clean(rows: list[str]) -> list[str]:
    return [normalize(row) for row in rows]
""",
    """
import asyncio
from zart import step

@step("slow")
async def slow() -> None:
    await asyncio.sleep(1)
""",
]

INVALID = [
    """
from zart import step

@step("fetch")
async def fetch() -> list[str]: ...

@step("fetch-and-count")
async def fetch_and_count() -> int:
    return len(await fetch())
""",
    """
import zart

@zart.step("retrying-call")
async def retrying_call() -> None:
    await zart.sleep("backoff", 5)
""",
    """
from zart import step

@step("audit-{event}")
def audit(event: str) -> None: ...

@step("charge")
async def charge(amount: int) -> None:
    async def log() -> None:
        await audit("charged")
    await log()
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    analysis = ctx.analysis
    for invocation in analysis.invocations():
        outer = analysis.in_step_body(invocation.site.scope)
        if outer is None:
            continue
        message = (
            f"{invocation.label} is called inside step {outer.name}(): it runs outside the durable "
            "journal (not checkpointed, re-run on every retry of the outer step). Call it from the "
            "durable function instead, or make it a plain function"
        )
        yield Report(CODE, message, invocation.call, invocation.top)
