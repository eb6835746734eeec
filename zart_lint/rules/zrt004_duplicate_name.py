"""ZRT004: the same constant step name used twice in one durable body.

Within one run of a durable function every step name is a key: the second call
under a name the run already used does not run its step, it returns the first
call's stored result (the runtime raises ``DuplicateStepError`` when it sees
it happen; this rule reports it before it ships). Typical causes: calling the
same constant-named step twice (``await fetch_items()`` ... ``await
fetch_items()``), two ``.named("x")`` with the same literal, or two
``zart.sleep("wait", ...)``.

Only calls outside loops are compared here (ZRT001-ZRT003 cover loops), and
calls in mutually exclusive branches -- the ``if`` and the ``else`` of one
statement, two ``case`` blocks, or a branch that ends in ``return`` / ``raise``
and code after it -- are not duplicates.

Fix: give one of the calls another name, ``.named("fetch-items-again")``, or
template the step name on a parameter that differs between the calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import RELATED_LINE, Report
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.analysis._analysis import Invocation
    from zart_lint.analysis._model import Branch
    from zart_lint.rules._context import RuleContext

CODE = "ZRT004"
NAME = "duplicate-step-name"
SUMMARY = "The same constant step name is used twice in one durable body"
FIXABLE = False

VALID = [
    """
from zart import durable, step

@step("fetch-items")
async def fetch_items() -> list[str]: ...

@durable("batch")
async def batch() -> None:
    first = await fetch_items()
    again = await fetch_items().named("fetch-items-again")
""",
    """
from zart import durable, step

@step("charge")
async def charge(amount: int) -> None: ...

@durable("checkout")
async def checkout(express: bool) -> None:
    if express:
        await charge(10)
    else:
        await charge(5)
""",
    """
from zart import durable, step

@step("page-{number}")
async def page(number: int) -> list[str]: ...

@durable("two-pages")
async def two_pages() -> None:
    await page(1)
    await page(2)
""",
    """
import zart

@zart.durable("early-exit")
async def early_exit(skip: bool) -> None:
    if skip:
        await zart.sleep("pause", 1)
        return
    await zart.sleep("pause", 5)
""",
]

INVALID = [
    """
from zart import durable, step

@step("fetch-items")
async def fetch_items() -> list[str]: ...

@durable("batch")
async def batch() -> None:
    first = await fetch_items()
    second = await fetch_items()
""",
    """
import zart

@zart.durable("reminders")
async def reminders() -> None:
    await zart.sleep("wait", 60)
    await zart.sleep("wait", 3600)
""",
    """
from zart import durable, step

@step("page-{number}")
async def page(number: int) -> list[str]: ...

@durable("pages")
async def pages(retry: bool) -> None:
    await page(1)
    if retry:
        await page(1)
""",
    """
from zart import durable, step

@step("notify")
async def notify(user: str) -> None: ...

@durable("notify-twice")
async def notify_twice(a: str, b: str) -> None:
    await notify(a).named("notify-user")
    await notify(b).named("notify-user")
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    analysis = ctx.analysis
    seen: dict[tuple[int, str], list[Invocation]] = {}
    for invocation in analysis.invocations():
        scope = invocation.site.scope
        if invocation.site.loop is not None or analysis.scope_kind(scope) != "durable":
            continue
        if analysis.named_elsewhere(invocation):
            continue
        name = ctx.naming.constant_name(invocation)
        if name is None:
            continue
        earlier = seen.setdefault((id(scope), name), [])
        first = next(
            (
                other
                for other in earlier
                if not _exclusive(other.site.branches, invocation.site.branches)
            ),
            None,
        )
        earlier.append(invocation)
        if first is None:
            continue
        message = (
            f'the step name "{name}" is already used by the call on line {RELATED_LINE} of durable '
            f"{scope.name}(): this call returns that call's stored result instead of running. "
            f"Give one of them another name, e.g. {invocation.renamed(f'{name}-2')}"
            f"{invocation.unnamed_hint()}"
        )
        yield Report(CODE, message, invocation.call, invocation.top, related=first.call)


def _exclusive(first: tuple[Branch, ...], second: tuple[Branch, ...]) -> bool:
    """Can no single run reach both calls (``first`` comes earlier in the source)?"""
    second_branches = {node: index for node, index, _exits in second}
    for node, index, exits in first:
        other = second_branches.get(node)
        if other is not None and other != index:
            return True  # if / else, two match cases, the two sides of `a if c else b`
        if other is None and exits:
            return True  # the first call's branch returns or raises before reaching the second
    return False
