"""Everything a rule can ask about the file being linted."""

from __future__ import annotations

from zart_lint._analysis import Analysis
from zart_lint._fixes import Fixer
from zart_lint._model import Loop
from zart_lint._naming import Naming

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
