"""Every rule's own VALID / INVALID examples, plus the rule registry's shape."""

from __future__ import annotations

import re
import textwrap

import libcst as cst
import pytest

from zart_lint.engine._against import compare_sources
from zart_lint.rules import CHECKS, COMPARISONS, RULES, Rule

from lint_helpers import codes, lint

EXAMPLES = [
    pytest.param(rule, kind, example, id=f"{rule.code}-{kind}-{number}")
    for rule in RULES.values()
    for kind, examples in (("VALID", rule.valid), ("INVALID", rule.invalid))
    for number, example in enumerate(examples)
]


@pytest.mark.parametrize(("rule", "kind", "example"), EXAMPLES)
def test_example(rule: Rule, kind: str, example: str | tuple[str, str]) -> None:
    if isinstance(example, tuple):  # an --against rule: (source at REF, source now)
        old, new = (textwrap.dedent(source) for source in example)
        found = codes(compare_sources({"flows.py": old}, {"flows.py": new}))
    else:
        assert rule.compare is None, "the examples of an --against rule are (old, new) pairs"
        found = codes(lint(example))
    if kind == "INVALID":
        assert rule.code in found
    else:
        assert rule.code not in found


@pytest.mark.parametrize("rule", RULES.values(), ids=lambda rule: rule.code)
def test_rule_shape(rule: Rule) -> None:
    assert re.fullmatch(r"ZRT\d{3}", rule.code)
    assert re.fullmatch(r"[a-z]+(-[a-z]+)+", rule.name)
    assert rule.summary and "\n" not in rule.summary
    assert len(rule.valid) >= 3
    assert len(rule.invalid) >= 3
    assert rule.explanation.startswith(f"{rule.code}:")
    # The module is named after the rule: zrtNNN_<name>.py.
    if rule.check is not None:
        module = rule.check.__module__.rpartition(".")[2]
        assert module.startswith(f"{rule.code.lower()}_"), module


@pytest.mark.parametrize("rule", RULES.values(), ids=lambda rule: rule.code)
def test_examples_other_than_zrt000_parse(rule: Rule) -> None:
    """An INVALID example must fail for its own reason, not by being broken Python."""
    if rule.code == "ZRT000":
        return
    for example in (*rule.valid, *rule.invalid):
        for source in example if isinstance(example, tuple) else (example,):
            cst.parse_module(textwrap.dedent(source))
            compile(textwrap.dedent(source), "<example>", "exec")


def test_registry_lists_every_code() -> None:
    assert sorted(RULES) == [f"ZRT{n:03}" for n in range(13)]
    assert list(RULES) == sorted(RULES)
    for code, info in RULES.items():
        assert info.code == code
        assert info.explanation.startswith(code)
    assert {code for code, info in RULES.items() if info.fixable} == {"ZRT001", "ZRT002"}
    # Every rule but ZRT000 (reported when a file does not parse) and the --against
    # rules (ZRT009-ZRT012, which compare two versions) runs on each file.
    against = {"ZRT009", "ZRT010", "ZRT011", "ZRT012"}
    per_file = [rule.check for code, rule in RULES.items() if code not in {"ZRT000", *against}]
    assert tuple(per_file) == CHECKS
    assert tuple(RULES[code].compare for code in sorted(against)) == COMPARISONS
    assert all(RULES[code].check is None for code in against)


def test_registering_a_code_twice_fails() -> None:
    from zart_lint.rules._registry import register_module

    with pytest.raises(RuntimeError, match="ZRT001"):
        register_module("zart_lint.rules.zrt001_constant_name_in_loop")
