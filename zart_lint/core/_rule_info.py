"""What ``--list-rules``, ``--explain`` and the output formats show of a rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleInfo:
    code: str
    name: str
    summary: str
    explanation: str
    fixable: bool


# The one code that no analysis rule reports: the suppression filter does, with
# --report-unused-suppressions. It takes part in rule selection (``ignore``,
# ``per-file-ignores``) but is not listed by --list-rules.
UNUSED_SUPPRESSION = RuleInfo(
    code="ZRT100",
    name="unused-suppression",
    summary="A zart-lint suppression comment that suppresses nothing",
    explanation=(
        "A `# noqa: ZRT...` or `# zart-lint: ignore[...]` comment names a zart-lint rule "
        "that reports nothing on that line. Stale suppressions hide future findings: "
        "remove the code (the fix does it). Reported with --report-unused-suppressions."
    ),
    fixable=True,
)
