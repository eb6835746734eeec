"""ZRT003: a computed step name that does not change per iteration of a loop.

A ``{field}`` template or an f-string passed to ``.named()`` only helps if what
it is built from changes between iterations. ``@step("process-{region}-{shard}")``
called as ``process_shard(region, 1)`` in ``for shard in range(4)`` formats
``"process-eu-1"`` four times: iterations 2..4 silently get the first one's
stored result.

With nested loops the name must change per iteration of *every* enclosing
loop: ``f"item-{j}"`` inside ``for i ...: for j in range(3):`` repeats
``item-0``..``item-2`` for each ``i`` (an ``enumerate`` index or ``range(n)``
restarts at 0), so ``f"item-{i}-{j}"`` is needed.

A value counts as changing per iteration when it is a loop target, is
reassigned in the loop from something that changes, is a counter (``n += 1``),
or is an attribute, item, call or f-string of such a value. When the linter
cannot tell, it assumes the value changes (no report): the runtime's
duplicate-name guard catches what is left.

Fix: bind a field to something that changes per iteration (the loop variable,
an item's id), or name the call after the loop indices:
``.named(f"process-{region}-{i}")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.core._templates import parse_template
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    import libcst as cst

    from zart_lint.analysis._analysis import Analysis, Invocation
    from zart_lint.rules._context import RuleContext

CODE = "ZRT003"
NAME = "step-name-invariant-in-loop"
SUMMARY = "Templated or computed step name does not change per iteration of a loop"
FIXABLE = False

VALID = [
    """
from zart import durable, step

@step("process-{region}-{shard}")
async def process_shard(region: str, shard: int) -> None: ...

@durable("reindex")
async def reindex(region: str) -> None:
    for shard in range(4):
        await process_shard(region, shard)
""",
    """
from zart import durable, step

@step("load-{page}")
async def load(page: int) -> list[str]: ...

@durable("crawl")
async def crawl() -> None:
    page = 0
    while True:
        rows = await load(page)
        if not rows:
            break
        page += 1
""",
    """
from zart import durable, step

@step("item-{group}-{index}")
async def handle(group: int, index: int, payload: str) -> None: ...

@durable("groups")
async def groups(batches: list[list[str]]) -> None:
    for g, batch in enumerate(batches):
        for i, payload in enumerate(batch):
            await handle(g, i, payload)
""",
    """
from zart import durable, step

@step("notify")
async def notify(user: str) -> None: ...

@durable("notify-users")
async def notify_users(users: list[dict[str, str]]) -> None:
    for user in users:
        await notify(user["id"]).named(f"notify-{user['id']}")
""",
    # rebound on one path only: the name still changes per iteration
    """
from zart import step

@step("charge-{order_id}")
async def charge(order_id: int) -> None: ...

async def settle(order_ids: list[int], reset: bool) -> None:
    for order_id in order_ids:
        if reset:
            order_id = 0
        await charge(order_id)
""",
]

INVALID = [
    """
from zart import durable, step

@step("process-{region}-{shard}")
async def process_shard(region: str, shard: int) -> None: ...

@durable("reindex")
async def reindex() -> None:
    region = "eu"
    for shard in range(4):
        await process_shard(region, 1)
""",
    """
from zart import durable, step

@step("item-{index}")
async def handle(index: int, payload: str) -> None: ...

@durable("groups")
async def groups(batches: list[list[str]]) -> None:
    for g, batch in enumerate(batches):
        for payload in batch:
            await handle(g, payload)
""",
    """
from zart import durable, step

@step("notify")
async def notify(user: str) -> None: ...

@durable("notify-users")
async def notify_users(run_id: str, users: list[str]) -> None:
    for user in users:
        await notify(user).named(f"notify-{run_id}")
""",
    """
from zart import durable, step

@step("cell-{row}-{col}")
async def cell(row: int, col: int) -> None: ...

@durable("grid")
async def grid(rows: int) -> None:
    for r in range(rows):
        for c in range(3):
            await cell(0, c)
""",
    # the loop variable is rebound to a constant before the call
    """
from zart import step

@step("charge-{order_id}")
async def charge(order_id: int) -> None: ...

async def settle(order_ids: list[int]) -> None:
    for order_id in order_ids:
        order_id = 0
        await charge(order_id)
""",
    # .format() of a value that does not change per iteration, as f"charge-{region}"
    """
from zart import step

@step("charge")
async def charge(order_id: str) -> None: ...

def log(message: str) -> None: ...

async def settle(order_ids: list[str], region: str) -> None:
    for order_id in order_ids:
        log(order_id)
        await charge(order_id).named("charge-{}".format(region))
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    analysis = ctx.analysis
    for verdict in ctx.loop_verdicts(CODE):
        invocation = verdict.invocation
        loop = analysis.describe_loop(verdict.loop)
        where = f"the {loop}" if verdict.loop is invocation.site.loop else f"the outer {loop}"
        innermost = invocation.site.loop or verdict.loop
        example = f'f"{_base(invocation)}{ctx.index_suffix(innermost)}"'
        if verdict.bound is not None:
            step = invocation.step
            template = (
                parse_template(step.template)
                if step is not None and step.template is not None
                else None
            )
            fields = template.fields if template is not None else ()
            unique = list(dict.fromkeys(fields))
            bindings = ", ".join(
                f"{{{field}}}={_bound_text(analysis, verdict.bound[field])}" for field in unique
            )
            verb = "changes" if len(unique) == 1 else "change"
            message = (
                f"{invocation.label} gets the same name in every iteration of {where} "
                f"({bindings} never {verb} per iteration): iterations after the first get the "
                "first one's stored result. Pass something that changes per iteration (e.g. the "
                f"loop variable), or name each call: .named({example})"
            )
        else:
            assert verdict.expression is not None
            message = (
                f"the name {analysis.short_code(verdict.expression)} of {invocation.label} "
                f"does not change per iteration of {where}: iterations after the first get the "
                "first one's stored result. Build it from something that does, e.g. the loop "
                f"indices: {example}{invocation.unnamed_hint()}"
            )
        yield Report(CODE, message, invocation.call, invocation.top)


def _bound_text(analysis: Analysis, argument: cst.BaseExpression | object) -> str:
    import libcst as cst

    if isinstance(argument, cst.BaseExpression):
        return analysis.short_code(argument)
    return "its default"


def _base(invocation: Invocation) -> str:
    """A readable stem for a suggested per-iteration name."""
    if invocation.step is not None:
        return invocation.step.function.replace("_", "-")
    return str(invocation.primitive).replace("_", "-")
