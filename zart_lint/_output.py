"""Render findings: full, concise, json, github, sarif, and --statistics.

Every renderer returns the complete text for its stream; the CLI decides
where it goes. Positions are 1-based, columns count code points and ends are
exclusive, in every format (SARIF says so with ``columnKind``).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import click

from zart_lint import __version__
from zart_lint._finding import Finding

FORMATS = ("full", "concise", "json", "github", "sarif")

INFORMATION_URI = "https://pypi.org/project/zart/"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "zartLint/v1"
TAB_WIDTH = 4


class RuleLike(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def explanation(self) -> str: ...
    @property
    def fixable(self) -> bool: ...


@dataclass(frozen=True)
class Located:
    """A finding with what the formats need to know about its file."""

    finding: Finding
    abs_path: str  # absolute path, or the display name for stdin
    repo_path: str | None  # POSIX path relative to the repository root, if inside it


# ------------------------------------------------------------------ text helpers


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _expand(text: str) -> str:
    return text.replace("\t", " " * TAB_WIDTH)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Styler:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text


# ------------------------------------------------------------------ concise / full


def render_concise(items: Sequence[Located]) -> str:
    return "".join(
        f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}\n" for f in (i.finding for i in items)
    )


def render_full(
    items: Sequence[Located],
    lines_of: Callable[[Located], Sequence[str]],
    *,
    show_source: bool = True,
    color: bool = False,
) -> str:
    s = Styler(color)
    out: list[str] = []
    for item in items:
        f = item.finding
        marker = s("[*] ", fg="cyan") if f.fix else ""
        out.append(
            f"{s(f.path, bold=True)}:{f.line}:{f.column}: "
            f"{s(f.code, fg='red', bold=True)} {marker}{f.message}\n"
        )
        if show_source:
            out.extend(_snippet(f, lines_of(item), s))
        if f.fix is not None:
            out.append(f"  = {s('help', fg='cyan', bold=True)}: {f.fix.message}\n")
        out.append("\n")
    return "".join(out)


def _snippet(f: Finding, lines: Sequence[str], s: Styler) -> list[str]:
    if not lines or f.line > len(lines):
        return []
    first = max(1, f.line - 1)
    end_line = min(max(f.end_line, f.line), len(lines))
    last = min(len(lines), end_line + 1)
    shown = list(range(first, last + 1))
    if end_line - f.line > 6:  # long span: its first and last lines are enough
        shown = [n for n in shown if n <= f.line + 2 or n >= end_line - 1]
    gutter = len(str(last))
    pad = " " * gutter
    out = [f"{pad} {s('|', fg='blue')}\n"]
    previous = None
    for n in shown:
        if previous is not None and n != previous + 1:
            out.append(f"{pad} {s(':', fg='blue')}\n")
        previous = n
        text = lines[n - 1].rstrip("\r\n")
        out.append(f"{s(str(n).rjust(gutter), fg='blue')} {s('|', fg='blue')} {_expand(text)}\n")
        marks = _underline(f, n, text, end_line)
        if marks:
            start, length = marks
            label = f" {f.code}" if n == end_line else ""
            carets = " " * start + "^" * length + label
            out.append(f"{pad} {s('|', fg='blue')} {s(carets, fg='red', bold=True)}\n")
    out.append(f"{pad} {s('|', fg='blue')}\n")
    return out


def _underline(f: Finding, n: int, text: str, end_line: int) -> tuple[int, int] | None:
    """(display offset, display length) of the carets under line ``n``."""
    if n < f.line or n > end_line:
        return None
    start_col = f.column if n == f.line else len(text) - len(text.lstrip()) + 1
    end_col = f.end_column if n == end_line and f.end_line == end_line else len(text) + 1
    start = _width(_expand(text[: start_col - 1]))
    length = _width(_expand(text[start_col - 1 : max(start_col - 1, end_col - 1)]))
    return start, max(1, length)


def summary_lines(total: int, fixable: int, fixed: int, *, fix_mode: bool) -> list[str]:
    if total == 0 and fixed == 0:
        return ["All checks passed!"]
    lines: list[str] = []
    if fix_mode:
        lines.append(f"Found {_plural(total + fixed, 'error')} ({fixed} fixed, {total} remaining).")
    else:
        lines.append(f"Found {_plural(total, 'error')}.")
    if fixable and not fix_mode:
        lines.append(f"[*] {fixable} fixable with the `--fix` option.")
    return lines


# ------------------------------------------------------------------ json


def _fix_json(f: Finding) -> dict[str, Any] | None:
    if f.fix is None:
        return None
    return {
        "message": f.fix.message,
        "edits": [
            {
                "content": e.content,
                "location": {"row": e.line, "column": e.column},
                "end_location": {"row": e.end_line, "column": e.end_column},
            }
            for e in f.fix.edits
        ],
    }


def render_json(items: Sequence[Located], rules: Mapping[str, RuleLike]) -> str:
    records = []
    for item in items:
        f = item.finding
        rule = rules.get(f.code)
        records.append(
            {
                "code": f.code,
                "name": rule.name if rule else None,
                "message": f.message,
                "filename": item.abs_path,
                "line": f.line,
                "column": f.column,
                "end_line": f.end_line,
                "end_column": f.end_column,
                "fix": _fix_json(f),
            }
        )
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ github


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(items: Sequence[Located]) -> str:
    out = []
    for item in items:
        f = item.finding
        # Annotations are matched by the path relative to the repository root.
        path = item.repo_path or f.path
        props = ",".join(
            [
                f"title={_gh_property(f'zart-lint ({f.code})')}",
                f"file={_gh_property(path)}",
                f"line={f.line}",
                f"col={f.column}",
                f"endLine={f.end_line}",
                f"endColumn={f.end_column}",
            ]
        )
        out.append(f"::error {props}::{_gh_data(f'{f.code} {f.message}')}\n")
    return "".join(out)


# ------------------------------------------------------------------ sarif


def fingerprints(
    items: Sequence[Located], lines_of: Callable[[Located], Sequence[str]]
) -> list[str]:
    """A stable id per finding: code, file, the line's text and its occurrence.

    The line *number* is left out on purpose, so that a finding keeps its
    identity (and its code-scanning alert) when code above it moves.
    """
    seen: Counter[tuple[str, str, str]] = Counter()
    result = []
    for item in items:
        f = item.finding
        lines = lines_of(item)
        text = lines[f.line - 1].strip() if 0 < f.line <= len(lines) else ""
        path = item.repo_path or f.path
        key = (f.code, path, text)
        occurrence = seen[key]
        seen[key] += 1
        blob = "\0".join([f.code, path, text, str(occurrence)])
        result.append(hashlib.sha256(blob.encode()).hexdigest()[:32])
    return result


def _sarif_rule(rule: RuleLike) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": rule.explanation, "markdown": rule.explanation},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["zart", "correctness"], "precision": "high"},
    }


def _sarif_location(item: Located) -> dict[str, Any]:
    f = item.finding
    if item.repo_path is not None:
        artifact = {"uri": quote(item.repo_path), "uriBaseId": "%SRCROOT%"}
    else:
        artifact = {"uri": Path(item.abs_path).absolute().as_uri()}
    return {
        "physicalLocation": {
            "artifactLocation": artifact,
            "region": {
                "startLine": f.line,
                "startColumn": f.column,
                "endLine": f.end_line,
                "endColumn": f.end_column,
            },
        }
    }


def _sarif_fix(item: Located) -> list[dict[str, Any]]:
    f = item.finding
    if f.fix is None:
        return []
    location = _sarif_location(item)["physicalLocation"]["artifactLocation"]
    replacements = [
        {
            "deletedRegion": {
                "startLine": e.line,
                "startColumn": e.column,
                "endLine": e.end_line,
                "endColumn": e.end_column,
            },
            "insertedContent": {"text": e.content},
        }
        for e in f.fix.edits
    ]
    return [
        {
            "description": {"text": f.fix.message},
            "artifactChanges": [{"artifactLocation": location, "replacements": replacements}],
        }
    ]


def render_sarif(
    items: Sequence[Located],
    rules: Sequence[RuleLike],
    lines_of: Callable[[Located], Sequence[str]],
    repo_root: Path,
) -> str:
    index = {rule.code: i for i, rule in enumerate(rules)}
    results = []
    for item, fp in zip(items, fingerprints(items, lines_of), strict=True):
        f = item.finding
        result: dict[str, Any] = {
            "ruleId": f.code,
            "level": "error",
            "message": {"text": f.message},
            "locations": [_sarif_location(item)],
            "partialFingerprints": {FINGERPRINT_KEY: fp},
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        fixes = _sarif_fix(item)
        if fixes:
            result["fixes"] = fixes
        results.append(result)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "zart-lint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_sarif_rule(r) for r in rules],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": repo_root.as_uri().rstrip("/") + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ statistics


def render_statistics(
    findings: Sequence[Finding], rules: Mapping[str, RuleLike], *, as_json: bool
) -> str:
    counts = Counter(f.code for f in findings)
    fixable = {f.code for f in findings if f.fix}
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if as_json:
        stats = [
            {
                "code": code,
                "name": rules[code].name if code in rules else None,
                "count": count,
                "fixable": code in fixable,
            }
            for code, count in ordered
        ]
        return json.dumps(stats, indent=2) + "\n"
    width = max((len(str(c)) for c in counts.values()), default=1)
    return "".join(
        f"{str(count).rjust(width)}\t{code}\t[{'*' if code in fixable else ' '}] "
        f"{rules[code].name if code in rules else ''}\n"
        for code, count in ordered
    )
