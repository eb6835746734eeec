"""The rules, one module each (Fixit style).

Every module holds a docstring (the explanation shown by ``--explain`` style
help), ``CODE``, ``NAME``, ``SUMMARY``, ``FIXABLE``, ``VALID`` / ``INVALID``
examples (run by the test suite) and, except ZRT000, ``check(ctx)`` yielding
:class:`~zart_lint._report.Report` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING

from zart_lint.rules import (
    zrt000_syntax_error,
    zrt001_constant_name_in_loop,
    zrt002_constant_named_in_loop,
    zrt003_name_invariant_in_loop,
    zrt004_duplicate_name,
    zrt005_bad_template,
    zrt006_step_not_awaited,
    zrt007_nondeterminism_in_durable,
    zrt008_step_in_step,
)

RULE_MODULES: tuple[ModuleType, ...] = (
    zrt000_syntax_error,
    zrt001_constant_name_in_loop,
    zrt002_constant_named_in_loop,
    zrt003_name_invariant_in_loop,
    zrt004_duplicate_name,
    zrt005_bad_template,
    zrt006_step_not_awaited,
    zrt007_nondeterminism_in_durable,
    zrt008_step_in_step,
)

if TYPE_CHECKING:  # the analysis (and libcst) is imported when a check first runs
    from zart_lint._context import RuleContext
    from zart_lint._report import Report

Check = Callable[["RuleContext"], Iterator["Report"]]

CHECKS: tuple[Check, ...] = (
    zrt001_constant_name_in_loop.check,
    zrt002_constant_named_in_loop.check,
    zrt003_name_invariant_in_loop.check,
    zrt004_duplicate_name.check,
    zrt005_bad_template.check,
    zrt006_step_not_awaited.check,
    zrt007_nondeterminism_in_durable.check,
    zrt008_step_in_step.check,
)
