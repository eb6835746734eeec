"""ZRT012: a durable renamed or removed while executions of it may be in flight.

Only with ``zart-lint --against REF``. An execution records the registered
name of its durable; a worker resumes it by looking that name up. When a
durable that existed at REF is no longer registered under its name (removed,
or its ``@zart.durable("name")`` changed), its in-flight executions are
orphaned: no worker can run them any more.

Make the change safe: keep the old name (``@zart.durable("old-name")`` on the
renamed function), or keep the old durable registered until none of its
executions is open (``zart list`` / ``app.list(...)``), then remove it.
A durable moved to another module keeps its name: that is not reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.rules._against import AgainstReport
from zart_lint.rules._registry import against_rule

if TYPE_CHECKING:
    from zart_lint.rules._against import AgainstContext, DurableAt

CODE = "ZRT012"
NAME = "durable-removed-or-renamed"
SUMMARY = "A durable is renamed or removed: its in-flight executions are orphaned (--against)"
FIXABLE = False

_V1 = """
from zart import durable, step

@step("charge")
async def charge(order: str) -> int: ...

@durable("order")
async def order(o: str) -> None:
    await charge(o)

@durable("refund")
async def refund(o: str) -> None:
    await charge(o).named("refund-charge")
"""

VALID = [
    (_V1, _V1),
    (_V1, _V1.replace("async def order(o", "async def place_order(o")),
    (_V1, _V1 + '\n@durable("audit")\nasync def audit() -> None: ...\n'),
]

INVALID = [
    (_V1, _V1.replace('@durable("order")', '@durable("order-v2")')),
    (_V1, _V1.split('@durable("refund")')[0]),
    (_V1, _V1.replace('@durable("refund")\n', "")),
]


@against_rule
def compare(ctx: AgainstContext) -> Iterator[AgainstReport]:
    for name, old in ctx.old_durables.items():
        if name in ctx.new_durables:
            continue
        successor = _successor(ctx, old)
        if successor is not None:
            message = (
                f'durable "{successor.shape.name}" was registered as "{name}" at {ctx.ref}: '
                f'in-flight executions of "{name}" are orphaned, no worker can resume them; '
                f'keep the name `@zart.durable("{name}")`, or keep "{name}" registered until '
                f"none of its executions is open"
            )
            yield AgainstReport(CODE, message, successor.path, successor.shape.node)
            continue
        message = (
            f'durable "{name}" ({old.path}, function {old.shape.function}) at {ctx.ref} is '
            f"removed: its in-flight executions are orphaned, no worker can resume them; keep it "
            f"registered until none of its executions is open (`zart list`)"
        )
        yield AgainstReport(CODE, message, old.path, None)


def _successor(ctx: AgainstContext, old: DurableAt) -> DurableAt | None:
    """The durable that took over ``old``'s function: same function name, a new durable name."""
    candidates = [
        new
        for new in ctx.new_durables.values()
        if new.shape.function == old.shape.function and new.shape.name not in ctx.old_durables
    ]
    candidates.sort(key=lambda new: new.path != old.path)
    return candidates[0] if candidates else None
