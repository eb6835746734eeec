"""The rule registry: each rule is registered once, by the module that defines it.

A rule module (Fixit style) holds a docstring, the rule's explanation shown by
``--explain``; ``CODE``, ``NAME``, ``SUMMARY`` and ``FIXABLE``; ``VALID`` /
``INVALID`` examples, run by the test suite; and ``check(ctx)``, decorated
with :func:`rule`, which registers the module's rule. The rules package
imports every ``zrtNNN_*`` module, which fills :data:`REGISTRY`; the CLI
(``--list-rules``, ``--explain``, ``--select`` validation), the output formats
(names, SARIF rule metadata) and the engine (which checks to run) all read it
from there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zart_lint.core._rule_info import RuleInfo

if TYPE_CHECKING:  # the analysis (and libcst) is imported when a check first runs
    from zart_lint.analysis._report import Report
    from zart_lint.rules._against import AgainstContext, AgainstReport
    from zart_lint.rules._context import RuleContext

Check = Callable[["RuleContext"], Iterator["Report"]]
Compare = Callable[["AgainstContext"], Iterator["AgainstReport"]]
# An example: a source, or for the --against rules an (old source, new source) pair.
Example = str | tuple[str, str]


@dataclass(frozen=True)
class Rule(RuleInfo):
    # Examples the rule must report (INVALID) or leave alone (VALID).
    valid: tuple[Example, ...]
    invalid: tuple[Example, ...]
    # What runs on each file's analysis; None for ZRT000, which the engine
    # reports when a file does not parse, and for the --against rules.
    check: Check | None
    # What compares the project with a git revision (--against REF), else None.
    compare: Compare | None = None


REGISTRY: dict[str, Rule] = {}


def register_module(
    module_name: str, check: Check | None = None, compare: Compare | None = None
) -> Rule:
    """Register the rule that the module ``module_name`` defines (see above)."""
    module = sys.modules[module_name]
    try:
        rule = Rule(
            code=module.CODE,
            name=module.NAME,
            summary=module.SUMMARY,
            explanation=(module.__doc__ or "").strip(),
            fixable=module.FIXABLE,
            valid=tuple(module.VALID),
            invalid=tuple(module.INVALID),
            check=check,
            compare=compare,
        )
    except AttributeError as missing:
        raise RuntimeError(f"rule module {module_name} does not define {missing.name}") from None
    if rule.code in REGISTRY:
        raise RuntimeError(f"two rules are registered under {rule.code}")
    REGISTRY[rule.code] = rule
    return rule


def rule(check: Check) -> Check:
    """Decorate a rule module's ``check``: registers the module's rule with it."""
    register_module(check.__module__, check)
    return check


def against_rule(compare: Compare) -> Compare:
    """Decorate an --against rule module's ``compare``: registers the module's rule with it.

    Such a rule runs only with ``zart-lint --against REF``; its examples are
    (old source, new source) pairs."""
    register_module(compare.__module__, compare=compare)
    return compare
