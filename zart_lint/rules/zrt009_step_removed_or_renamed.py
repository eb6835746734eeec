"""ZRT009: a recorded step removed or renamed (or its name template changed) without a guard.

Only with ``zart-lint --against REF``. zart journals each call of a durable
under its name and, when an execution is resumed, replays the journal by name.
When a durable that existed at REF no longer makes a call it made there -- the
step was removed, renamed, or its name template changed so that the rendered
names change -- an execution in flight that recorded the old call cannot be
continued: the first new call it makes while the old name is unvisited stops
it as ``diverged`` (nothing runs; it waits for a compatible deploy). A removed
last call is silent at resume time, but ``replay_check`` reports it.

Make the change safe by keeping the old calls for in-flight executions:

* a rename: keep the journal name, ``await renamed(x).named("old-name")``;
* any change: ``if await zart.patched("id"): <new calls> else: <old calls>``;
* a removal: ``if not await zart.patched("id"): await removed(x)``.

Later, once ``app.patches_in_use()`` shows no execution on the old branch,
drop it (``zart.deprecate_patch("id")``). Calls are compared in the order of
the durable's body (loops count once, both branches of an ``if`` count).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.rules._against import GUARD_HINT, AgainstReport, label
from zart_lint.rules._registry import against_rule

if TYPE_CHECKING:
    from zart_lint.analysis._durables import CallShape
    from zart_lint.rules._against import AgainstContext, DurableAt

CODE = "ZRT009"
NAME = "recorded-step-removed-or-renamed"
SUMMARY = "A step that in-flight executions recorded is removed or renamed (--against)"
FIXABLE = False

_V1 = """
from zart import durable, step

@step("charge-{order}")
async def charge(order: str) -> int: ...

@step("ship")
async def ship(order: str) -> None: ...

@durable("order")
async def order(o: str) -> None:
    await charge(o)
    await ship(o)
"""

VALID = [
    (
        _V1,
        _V1.replace("    await ship(o)\n", "    await ship(o)\n    await charge(o).named('x')\n"),
    ),
    (
        _V1,
        _V1.replace('@step("ship")\nasync def ship', '@step("ship")\nasync def send').replace(
            "await ship(o)", "await send(o)"
        ),
    ),
    (
        _V1,
        _V1.replace(
            "    await ship(o)\n",
            '    if await zart.patched("no-ship"):\n        pass\n'
            "    else:\n        await ship(o)\n",
        ).replace("from zart import", "import zart\nfrom zart import"),
    ),
    (
        _V1,
        _V1.replace('@step("ship")', '@step("ship-v2")').replace(
            "await ship(o)", 'await ship(o).named("ship")'
        ),
    ),
]

INVALID = [
    (_V1, _V1.replace('@step("ship")', '@step("send")')),
    (_V1, _V1.replace('@step("charge-{order}")', '@step("charge-{order}-v2")')),
    (_V1, _V1.replace("    await charge(o)\n", "")),
    (_V1, _V1.replace("    await ship(o)\n", '    await ship(o).named("deliver")\n')),
]


@against_rule
def compare(ctx: AgainstContext) -> Iterator[AgainstReport]:
    for old, new in ctx.pairs():
        for block in ctx.blocks(old, new):
            pairs, removed, _ = block.matched()
            for gone, came in pairs:
                yield AgainstReport(CODE, _renamed(ctx, new, gone, came), new.path, came.node)
            for gone in removed:
                yield AgainstReport(CODE, _removed(ctx, new, gone), new.path, new.shape.node)


def _renamed(ctx: AgainstContext, durable: DurableAt, gone: CallShape, came: CallShape) -> str:
    if gone.callee == came.callee:
        change = f"{label(came)} was {label(gone)} at {ctx.ref} (its name changed)"
        recipe = f'keep the journal name with `.named("{gone.name}")`, or {GUARD_HINT}'
    else:
        change = f"{label(came)} replaces {label(gone)} of {ctx.ref}"
        recipe = GUARD_HINT
    return (
        f'{change} in durable "{durable.shape.name}": an in-flight execution that recorded '
        f'"{gone.name}" stops as `diverged` when resumed, before running the new call; '
        f"{recipe}"
    )


def _removed(ctx: AgainstContext, durable: DurableAt, gone: CallShape) -> str:
    return (
        f'{label(gone)} of durable "{durable.shape.name}" at {ctx.ref} is removed: an in-flight '
        f"execution that recorded it stops as `diverged` at its next new call (a removed last "
        f"call goes unnoticed at resume, replay_check reports it); keep it for them: "
        f'`if not await zart.patched("<id>"): <the removed call>`'
    )
