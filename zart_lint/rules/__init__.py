"""The rules, one module each (Fixit style), collected into one registry.

Every ``zrtNNN_<name>.py`` module in this package holds a docstring (the
explanation shown by ``--explain``), ``CODE``, ``NAME``, ``SUMMARY``,
``FIXABLE``, ``VALID`` / ``INVALID`` examples (run by the test suite) and
``check(ctx)``, which yields :class:`~zart_lint.analysis._report.Report`
objects and is decorated with :func:`~zart_lint.rules._registry.rule`: that
registers the module's rule. Adding a rule is adding such a module (and its
tests): nothing else lists the rules.

Importing this package imports the rule modules, which do not import libcst
(their checks do, when they first run).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from zart_lint.rules._registry import REGISTRY, Check, Compare, Rule

__all__ = ["CHECKS", "COMPARISONS", "RULES", "Check", "Compare", "Rule"]

_RULE_MODULE = re.compile(r"zrt\d{3}_\w+\Z")

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if _RULE_MODULE.match(_module):
        importlib.import_module(f"{__name__}.{_module}")

# Every rule by code, in code order.
RULES: dict[str, Rule] = dict(sorted(REGISTRY.items()))
# The checks to run on each file, in code order.
CHECKS: tuple[Check, ...] = tuple(rule.check for rule in RULES.values() if rule.check is not None)
# The comparisons that --against REF runs, in code order.
COMPARISONS: tuple[Compare, ...] = tuple(
    rule.compare for rule in RULES.values() if rule.compare is not None
)
