"""The output formats: full, concise, json, github, sarif.

Each renderer is registered (:func:`~zart_lint.output._registry.output_format`)
where it is defined, in the order ``--output-format`` lists them, and returns
the complete text for its stream; the CLI decides where it goes. Positions are
1-based, columns count code points and ends are exclusive, in every format
(SARIF says so with ``columnKind``).

The CLI imports this module for its ``--output-format`` choices, before it
knows whether anything will be printed (``--version``, ``--help``): ``json``,
``hashlib``, ``unicodedata`` and ``urllib`` are imported where they are used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from zart_lint.core._finding import Edit, Finding
from zart_lint.core._rule_info import RuleInfo
from zart_lint.core._version import __version__
from zart_lint.output._registry import Located, RenderInput, output_format

INFORMATION_URI = "https://pypi.org/project/zart/"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "zartLint/v1"
TAB_WIDTH = 4


# ------------------------------------------------------------------ full


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _expand(text: str) -> str:
    return text.replace("\t", " " * TAB_WIDTH)


class Styler:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text


@output_format("full", for_people=True, notes_in_report=True, color=True)
def render_full(request: RenderInput) -> str:
    """A header per finding, the source lines with carets under the span, the fix."""
    s = Styler(request.color)
    out: list[str] = []
    for item in request.items:
        f = item.finding
        marker = s("[*] ", fg="cyan") if f.fix else ""
        out.append(
            f"{s(f.path, bold=True)}:{f.line}:{f.column}: "
            f"{s(f.code, fg='red', bold=True)} {marker}{f.message}\n"
        )
        if request.show_source:
            out.extend(_snippet(f, request.lines_of(item), s))
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


# ------------------------------------------------------------------ concise


@output_format("concise", for_people=True)
def render_concise(request: RenderInput) -> str:
    """Exactly one line per finding: ``{path}:{line}:{col}: {code} {message}``."""
    return "".join(
        f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}\n"
        for f in (i.finding for i in request.items)
    )


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


@output_format("json", json_statistics=True)
def render_json(request: RenderInput) -> str:
    """One array of finding objects (ruff's field names where there are any)."""
    records = []
    for item in request.items:
        f = item.finding
        rule = request.rules.get(f.code)
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
    import json

    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ github


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


@output_format("github")
def render_github(request: RenderInput) -> str:
    """GitHub Actions workflow commands: one ``::error`` annotation per finding."""
    out = []
    for item in request.items:
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
    import hashlib

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


def _sarif_rule(rule: RuleInfo) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": rule.explanation, "markdown": rule.explanation},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["zart", "correctness"], "precision": "high"},
    }


def _region(line: int, column: int, end_line: int, end_column: int) -> dict[str, int]:
    return {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}


def _artifact(item: Located) -> dict[str, str]:
    from urllib.parse import quote

    if item.repo_path is not None:
        return {"uri": quote(item.repo_path), "uriBaseId": "%SRCROOT%"}
    return {"uri": Path(item.abs_path).absolute().as_uri()}


def _sarif_location(item: Located) -> dict[str, Any]:
    f = item.finding
    region = _region(f.line, f.column, f.end_line, f.end_column)
    return {"physicalLocation": {"artifactLocation": _artifact(item), "region": region}}


def _replacement(edit: Edit) -> dict[str, Any]:
    region = _region(edit.line, edit.column, edit.end_line, edit.end_column)
    return {"deletedRegion": region, "insertedContent": {"text": edit.content}}


def _sarif_fix(item: Located) -> list[dict[str, Any]]:
    f = item.finding
    if f.fix is None:
        return []
    replacements = [_replacement(e) for e in f.fix.edits]
    change = {"artifactLocation": _artifact(item), "replacements": replacements}
    return [{"description": {"text": f.fix.message}, "artifactChanges": [change]}]


def _sarif_result(item: Located, fingerprint: str, index: dict[str, int]) -> dict[str, Any]:
    f = item.finding
    result: dict[str, Any] = {
        "ruleId": f.code,
        "level": "error",
        "message": {"text": f.message},
        "locations": [_sarif_location(item)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
    }
    if f.code in index:
        result["ruleIndex"] = index[f.code]
    fixes = _sarif_fix(item)
    if fixes:
        result["fixes"] = fixes
    return result


@output_format("sarif")
def render_sarif(request: RenderInput) -> str:
    """SARIF 2.1.0, one run; ``tool.driver.rules`` lists every rule of the run, by code."""
    rules = [request.rules[code] for code in sorted(request.rules)]
    index = {rule.code: i for i, rule in enumerate(rules)}
    items = request.items
    prints = fingerprints(items, request.lines_of)
    driver = {
        "name": "zart-lint",
        "version": __version__,
        "semanticVersion": __version__,
        "informationUri": INFORMATION_URI,
        "rules": [_sarif_rule(r) for r in rules],
    }
    run = {
        "tool": {"driver": driver},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": request.repo_root.as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": [_sarif_result(item, fp, index) for item, fp in zip(items, prints, strict=True)],
    }
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    import json

    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
