"""Everything a rule can ask about the file being linted."""

from __future__ import annotations

from collections.abc import Iterator

from zart_lint.analysis._analysis import Analysis
from zart_lint.analysis._model import Loop
from zart_lint.analysis._naming import LoopVerdict, Naming
from zart_lint.fix._planner import Fixer

_GENERIC_INDICES = ("i", "j", "k", "m", "n")


class RuleContext:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.naming = Naming(analysis)
        self.fixer = Fixer(analysis)

    def index_suffix(self, loop: Loop) -> str:
        """``-{i}-{j}``: the per-iteration part to add to a name used in ``loop``."""
        names = self.fixer.indices(loop)
        if names is None:
            depth = len(loop.chain())
            names = [_GENERIC_INDICES[n % len(_GENERIC_INDICES)] for n in range(depth)]
        return "".join(f"-{{{name}}}" for name in names)

    def loop_verdicts(self, code: str) -> Iterator[LoopVerdict]:
        """The step calls in loops that rule ``code`` reports (each call gets one verdict)."""
        for invocation in self.analysis.invocations():
            verdict = self.naming.loop_verdict(invocation)
            if verdict is not None and verdict.code == code:
                yield verdict
