"""ZRT011: a step's return annotation changed so that stored results no longer decode.

Only with ``zart-lint --against REF``. zart stores each step's result as JSON
and, when an execution is resumed, decodes the stored result with the step's
return annotation *in the new code*. If the annotation changed incompatibly
(``int`` became ``str``, ``Receipt`` became ``Invoice``, ``int | None`` became
``int``), every in-flight execution that recorded the step fails at resume
with ``SerializationError`` ("cannot read the stored result of step ...").

Compatible changes are not reported: widening to a union that includes the old
type (``int`` -> ``int | str``, ``Union[int, str]``), making it optional
(``Optional[int]``, ``int | None``), ``Any`` / ``object``, or removing the
annotation. The comparison is textual (``typing.`` prefixes and spacing
aside): a changed class body (a new required field) is not seen here;
``replay_check`` decodes every replayed result and finds that.

Make the change safe: add a new step under a new name behind a marker
(``if await zart.patched("id"): await charge_v2(o) else: await charge(o)``),
or keep the annotation compatible with what is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.rules._against import AgainstReport
from zart_lint.rules._registry import against_rule

if TYPE_CHECKING:
    from zart_lint.rules._against import AgainstContext

CODE = "ZRT011"
NAME = "step-return-type-changed"
SUMMARY = "A step's return annotation changed: stored results will not decode (--against)"
FIXABLE = False

_V1 = """
from zart import durable, step

@step("charge")
async def charge(order: str) -> int: ...

@durable("order")
async def order(o: str) -> None:
    await charge(o)
"""

VALID = [
    (_V1, _V1.replace("-> int:", "-> int | None:")),
    (_V1, _V1.replace("-> int:", "-> Optional[int]:")),
    (_V1, _V1.replace("-> int:", "-> typing.Union[str, int]:")),
    (_V1, _V1.replace("-> int:", "->  int :")),
]

INVALID = [
    (_V1, _V1.replace("-> int:", "-> str:")),
    (_V1, _V1.replace("-> int:", "-> list[int]:")),
    (_V1.replace("-> int:", "-> int | None:"), _V1),
    (_V1, _V1.replace("-> int:", "-> Optional[str]:")),
]

_ANYTHING = frozenset({"Any", "object"})
_PREFIX = re.compile(r"\b(?:typing|typing_extensions|t)\.")


@against_rule
def compare(ctx: AgainstContext) -> Iterator[AgainstReport]:
    for template, old in ctx.old_steps.items():
        new = ctx.new_steps.get(template)
        if new is None or old.shape.returns is None or new.shape.returns is None:
            continue
        if compatible(old.shape.returns, new.shape.returns):
            continue
        message = (
            f'step "{template}" returned `{old.shape.returns}` at {ctx.ref}, now '
            f"`{new.shape.returns}`: in-flight executions that recorded it fail at resume "
            f"(SerializationError: their stored result does not decode); widen the annotation "
            f"to include the old type (`{widened(old.shape.returns, new.shape.returns)}`), or "
            f"call a "
            f'new step under a new name behind `if await zart.patched("<id>"):`'
        )
        yield AgainstReport(CODE, message, new.path, new.shape.node)


def compatible(old: str, new: str) -> bool:
    """Can a value stored under annotation ``old`` be decoded with ``new``?"""
    before, after = members(old), members(new)
    return bool(after & _ANYTHING) or before <= after


def widened(old: str, new: str) -> str:
    """``new`` widened to also decode what ``old`` stored: ``int | str``."""
    extra = [m for m in sorted(members(old)) if m not in members(new)]
    return " | ".join([*_split(_normal(new), "|"), *sorted(extra, key=lambda m: m == "None")])


def _normal(annotation: str) -> str:
    return _PREFIX.sub("", re.sub(r"\s+", "", annotation)).strip("\"'")


def members(annotation: str) -> frozenset[str]:
    """The types of a union annotation, normalised: ``Optional[int]`` -> {int, None}."""
    text = _normal(annotation)
    found: set[str] = set()
    for part in _split(text, "|"):
        if part.startswith("Optional[") and part.endswith("]"):
            found |= members(part[len("Optional[") : -1]) | {"None"}
        elif part.startswith("Union[") and part.endswith("]"):
            for inner in _split(part[len("Union[") : -1], ","):
                found |= members(inner)
        else:
            found.add("None" if part in ("NoneType", "type(None)") else part)
    return frozenset(found)


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside brackets."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part for part in parts if part]
