"""What the --against rules (ZRT009-ZRT012) can ask: the durables and steps of the
project at the git revision and in the working tree, and how their call sequences align.

Durables are matched by their registered name, steps by their name template,
across files (moving a durable to another module changes nothing at run time).
Two call sequences are aligned with :class:`difflib.SequenceMatcher` on the
journal names: an ``equal`` block is calls that replay; ``replace`` is recorded
calls renamed (or their template changed); ``delete`` is recorded calls gone;
``insert`` is new calls, which are safe only after every recorded call (an
append).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import libcst as cst

    from zart_lint.analysis._durables import CallShape, DurableShape, FileShape, StepShape

Tag = Literal["replace", "delete", "insert", "equal"]

# How every message ends: the recipe that makes a change safe.
GUARD_HINT = (
    'keep the old calls for in-flight executions: `if await zart.patched("<id>"): <new> '
    "else: <old>` (see docs/safe-deploys.md)"
)


@dataclass(frozen=True)
class AgainstReport:
    """One --against finding, on ``node`` of the working-tree file ``path``
    (repository-relative), or on the first line of ``path`` when ``node`` is None."""

    code: str
    message: str
    path: str
    node: cst.CSTNode | None


@dataclass(frozen=True, eq=False)
class DurableAt:
    path: str
    shape: DurableShape


@dataclass(frozen=True, eq=False)
class StepAt:
    path: str
    shape: StepShape


@dataclass(frozen=True)
class Block:
    """One aligned stretch of two call sequences (``old[i1:i2]`` against ``new[j1:j2]``)."""

    tag: Tag
    old: list[CallShape]
    new: list[CallShape]
    before: CallShape | None  # the first recorded call after this stretch, if any

    def matched(self) -> tuple[list[tuple[CallShape, CallShape]], list[CallShape], list[CallShape]]:
        """For a replace or delete block: (recorded call, the new call standing in its place)
        pairs, the recorded calls gone, the new calls inserted. A recorded call pairs with a
        new call of the same step or primitive first (its template changed), then with the
        next unpaired new call (renamed)."""
        if self.tag in ("equal", "insert"):
            return [], [], list(self.new) if self.tag == "insert" else []
        free = list(self.new)
        pairs: list[tuple[CallShape, CallShape]] = []
        unpaired: list[CallShape] = []
        for gone in self.old:
            same = next((call for call in free if call.callee == gone.callee), None)
            if same is None:
                unpaired.append(gone)
            else:
                free.remove(same)
                pairs.append((gone, same))
        removed: list[CallShape] = []
        for gone in unpaired:
            if free:
                pairs.append((gone, free.pop(0)))
            else:
                removed.append(gone)
        return pairs, removed, free

    def inserted(self) -> list[tuple[CallShape, CallShape | None]]:
        """The new calls of this block that take no recorded call's place, each with the
        recorded call it now comes before (None: after every recorded call, an append)."""
        pairs, _, free = self.matched()
        partner = {id(came): gone for gone, came in pairs}
        found: list[tuple[CallShape, CallShape | None]] = []
        for index, call in enumerate(self.new):
            if call in free:
                later = (partner.get(id(c)) for c in self.new[index + 1 :])
                found.append((call, next((g for g in later if g is not None), self.before)))
        return found


class AgainstContext:
    def __init__(
        self, ref: str, old: Mapping[str, FileShape], new: Mapping[str, FileShape]
    ) -> None:
        self.ref = ref
        self.old_durables = _durables(old)
        self.new_durables = _durables(new)
        self.old_steps = _steps(old)
        self.new_steps = _steps(new)
        self._blocks: dict[str, list[Block]] = {}

    def pairs(self) -> Iterator[tuple[DurableAt, DurableAt]]:
        """Each durable present at the revision and in the working tree: (old, new)."""
        for name, old in self.old_durables.items():
            new = self.new_durables.get(name)
            if new is not None:
                yield old, new

    def blocks(self, old: DurableAt, new: DurableAt) -> list[Block]:
        """The alignment of the two versions' call sequences (memoised per durable)."""
        key = old.shape.name
        if key not in self._blocks:
            before, after = old.shape.sequence(), new.shape.sequence()
            matcher = difflib.SequenceMatcher(
                None, [c.name for c in before], [c.name for c in after], autojunk=False
            )
            self._blocks[key] = [
                Block(tag, before[i1:i2], after[j1:j2], before[i2] if i2 < len(before) else None)
                for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            ]
        return self._blocks[key]


def _durables(files: Mapping[str, FileShape]) -> dict[str, DurableAt]:
    found: dict[str, DurableAt] = {}
    for path, shape in sorted(files.items()):
        for durable in shape.durables:
            found.setdefault(durable.name, DurableAt(path, durable))
    return found


def _steps(files: Mapping[str, FileShape]) -> dict[str, StepAt]:
    found: dict[str, StepAt] = {}
    for path, shape in sorted(files.items()):
        for step in shape.steps:
            found.setdefault(step.template, StepAt(path, step))
    return found


def label(call: CallShape) -> str:
    """How messages name a call: ``step "charge-{order}"``, ``zart.sleep("settle")``."""
    if call.kind == "step":
        return f'step "{call.name}"'
    return f'zart.{call.kind}("{call.name}")'
