"""Helpers for the analysis-core tests (imported like cli_helpers: tests/lint is on sys.path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from zart_lint import Finding
from zart_lint.engine._api import ProjectIndex, RuleOptions, lint_source


def lint(
    code: str,
    *,
    path: Path = Path("flows.py"),
    index: ProjectIndex | None = None,
    options: RuleOptions | None = None,
) -> list[Finding]:
    options = options or RuleOptions()
    return lint_source(textwrap.dedent(code), path, index or ProjectIndex.empty(options), options)


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Create ``files`` (relative path -> dedented source) under ``root``; returns root."""
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return root
