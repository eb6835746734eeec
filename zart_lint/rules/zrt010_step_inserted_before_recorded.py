"""ZRT010: a step inserted before recorded steps without a guard.

Only with ``zart-lint --against REF``. zart resumes an execution by replaying
its journal by name. A call that a durable makes *before* calls it already made
at REF is, for an execution in flight, a call missing from its journal while
recorded calls remain unvisited: the execution stops as ``diverged`` before the
new call runs (no side effect; it waits for a compatible deploy). Appending
calls after every recorded one is safe: it is not reported.

Make the change safe with a marker, so that in-flight executions skip the new
call and new executions make it::

    if await zart.patched("fraud-check"):
        await fraud_check(o)

or append the call after the existing ones if its place does not matter.
Calls are compared in the order of the durable's body (loops count once, both
branches of an ``if`` count).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.rules._against import AgainstReport, label
from zart_lint.rules._registry import against_rule

if TYPE_CHECKING:
    from zart_lint.analysis._durables import CallShape
    from zart_lint.rules._against import AgainstContext, DurableAt

CODE = "ZRT010"
NAME = "step-inserted-before-recorded"
SUMMARY = "A step is inserted before steps that in-flight executions recorded (--against)"
FIXABLE = False

_V1 = """
import zart
from zart import durable, step

@step("charge")
async def charge(order: str) -> int: ...

@step("ship")
async def ship(order: str) -> None: ...

@step("audit")
async def audit(order: str) -> None: ...

@durable("order")
async def order(o: str) -> None:
    await charge(o)
    await zart.sleep("settle", 60)
    await ship(o)
"""

VALID = [
    (_V1, _V1.replace("    await ship(o)\n", "    await ship(o)\n    await audit(o)\n")),
    (
        _V1,
        _V1.replace(
            "    await charge(o)\n",
            '    if await zart.patched("audit-first"):\n'
            "        await audit(o)\n    await charge(o)\n",
        ),
    ),
    (
        _V1,
        _V1.replace(
            "    await ship(o)\n",
            '    if not await zart.patched("audit"):\n        pass\n    else:\n'
            "        await audit(o)\n    await ship(o)\n",
        ),
    ),
]

INVALID = [
    (_V1, _V1.replace("    await charge(o)\n", "    await audit(o)\n    await charge(o)\n")),
    (_V1, _V1.replace("    await ship(o)\n", "    await audit(o)\n    await ship(o)\n")),
    (
        _V1,
        _V1.replace(
            "    await ship(o)\n", '    await zart.sleep("cool-down", 5)\n    await ship(o)\n'
        ),
    ),
]


@against_rule
def compare(ctx: AgainstContext) -> Iterator[AgainstReport]:
    for old, new in ctx.pairs():
        for block in ctx.blocks(old, new):
            for call, before in block.inserted():
                if before is not None:  # else after every recorded call: an append
                    yield AgainstReport(CODE, _message(ctx, new, call, before), new.path, call.node)


def _message(ctx: AgainstContext, durable: DurableAt, call: CallShape, before: CallShape) -> str:
    return (
        f'{label(call)} is inserted in durable "{durable.shape.name}" before {label(before)}, '
        f'recorded at {ctx.ref}: an in-flight execution that recorded "{before.name}" stops as '
        f"`diverged` "
        f"when resumed, before running the new call; guard it so that only new executions "
        f'make it: `if await zart.patched("<id>"): <the new call>`, or append it after the '
        f"existing calls"
    )
