"""Every rule's own VALID / INVALID examples, plus the rule registry's shape."""

from __future__ import annotations

import re
import textwrap
from types import ModuleType

import libcst as cst
import pytest

from zart_lint._api import RULES
from zart_lint.rules import RULE_MODULES

from lint_helpers import codes, lint

EXAMPLES = [
    pytest.param(module, kind, example, id=f"{module.CODE}-{kind}-{number}")
    for module in RULE_MODULES
    for kind in ("VALID", "INVALID")
    for number, example in enumerate(getattr(module, kind))
]


@pytest.mark.parametrize(("module", "kind", "example"), EXAMPLES)
def test_example(module: ModuleType, kind: str, example: str) -> None:
    found = codes(lint(example))
    if kind == "INVALID":
        assert module.CODE in found
    else:
        assert module.CODE not in found


@pytest.mark.parametrize("module", RULE_MODULES, ids=lambda module: module.CODE)
def test_rule_module_shape(module: ModuleType) -> None:
    assert re.fullmatch(r"ZRT\d{3}", module.CODE)
    assert re.fullmatch(r"[a-z]+(-[a-z]+)+", module.NAME)
    assert module.SUMMARY and "\n" not in module.SUMMARY
    assert len(module.VALID) >= 3
    assert len(module.INVALID) >= 3
    assert module.__doc__ and module.__doc__.startswith(f"{module.CODE}:")


@pytest.mark.parametrize("module", RULE_MODULES, ids=lambda module: module.CODE)
def test_examples_other_than_zrt000_parse(module: ModuleType) -> None:
    """An INVALID example must fail for its own reason, not by being broken Python."""
    if module.CODE == "ZRT000":
        return
    for example in (*module.VALID, *module.INVALID):
        cst.parse_module(textwrap.dedent(example))
        compile(textwrap.dedent(example), "<example>", "exec")


def test_registry_lists_every_code() -> None:
    assert sorted(RULES) == [f"ZRT00{n}" for n in range(9)]
    for code, info in RULES.items():
        assert info.code == code
        assert info.explanation.startswith(code)
    assert {code for code, info in RULES.items() if info.fixable} == {"ZRT001", "ZRT002"}
