"""Apply the :class:`~zart_lint.Fix` es of findings to a source text.

Like ruff, one pass applies every fix that does not collide with a fix already
accepted in that pass; the caller lints the result again and repeats, so a fix
skipped because of a collision gets its turn in a later pass. Several fixes of
one loop may carry the very same edit (e.g. wrapping the iterable in
``enumerate``): identical edits are applied once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from zart_lint.core._finding import Edit, Finding

_NEWLINE = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

MAX_PASSES = 10


class _Offsets:
    """Map 1-based (line, column) positions to string offsets.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (as for libcst and the tokenizer);
    ``str.splitlines`` would also split at form feeds and other separators.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(source)]

    def offset(self, line: int, column: int) -> int:
        if line > len(self.starts):
            return len(self.source)
        start = self.starts[max(line, 1) - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.source)
        return min(start + max(column, 1) - 1, end)


def split_lines(source: str) -> list[str]:
    """Lines with their endings, numbered as libcst and tokenize number them."""
    return _LINE.findall(source)


@dataclass(frozen=True, order=True)
class _Span:
    start: int
    end: int
    content: str

    def collides(self, other: _Span) -> bool:
        if self == other:
            return False  # the same edit from two fixes: applied once
        if self.start == other.start:
            return True  # two changes at one point: order would be arbitrary
        return self.start < other.end and other.start < self.end


def apply_fixes(source: str, findings: Sequence[Finding]) -> tuple[str, list[Finding]]:
    """One pass: the new source and the findings whose fix was applied."""
    offsets = _Offsets(source)
    accepted: set[_Span] = set()
    applied: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.line, f.column, f.code)):
        if finding.fix is None or not finding.fix.edits:
            continue
        spans = {_to_span(offsets, e) for e in finding.fix.edits}
        if any(s.collides(a) for s in spans for a in accepted):
            continue
        if any(s.collides(t) for s in spans for t in spans if s is not t):
            continue  # a malformed fix; never apply half of it
        accepted |= spans
        applied.append(finding)
    out = source
    for span in sorted(accepted, reverse=True):
        out = out[: span.start] + span.content + out[span.end :]
    return out, applied


def _to_span(offsets: _Offsets, edit: Edit) -> _Span:
    start = offsets.offset(edit.line, edit.column)
    end = max(start, offsets.offset(edit.end_line, edit.end_column))
    return _Span(start, end, edit.content)


@dataclass
class FixOutcome:
    source: str
    applied: list[Finding] = field(default_factory=list)
    remaining: list[Finding] = field(default_factory=list)
    rejected: list[Finding] = field(default_factory=list)  # fixes that broke the code
    passes: int = 0
    converged: bool = True  # False: still fixing after max_passes (a rule bug)


def fix_until_stable(
    source: str,
    lint: Callable[[str], list[Finding]],
    parses: Callable[[str], bool],
    *,
    first: list[Finding] | None = None,
    max_passes: int = MAX_PASSES,
) -> FixOutcome:
    """Lint, fix and re-lint until nothing more can be fixed.

    ``lint`` returns the findings that are reported (already filtered by rule
    selection and suppressions). A pass whose result does not parse is thrown
    away, and fixing stops at the last good source: a file is never left
    unparsable by ``--fix``.
    """
    findings = lint(source) if first is None else first
    outcome = FixOutcome(source=source, remaining=findings)
    current = source
    for attempt in range(max_passes + 1):
        if not any(f.fix for f in findings):
            break
        if attempt == max_passes:
            outcome.converged = False
            break
        candidate, applied = apply_fixes(current, findings)
        if not applied or candidate == current:
            break
        if not parses(candidate):
            outcome.rejected = applied
            break
        outcome.passes += 1
        outcome.applied.extend(applied)
        current = candidate
        findings = lint(current)
    outcome.source = current
    outcome.remaining = findings
    return outcome


def unified_diff(before: str, after: str, name: str) -> str:
    a = before.splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    lines = []
    for line in difflib.unified_diff(a, b, fromfile=name, tofile=name):
        if not line.endswith(("\n", "\r")):
            line += "\n\\ No newline at end of file\n"
        lines.append(line)
    return "".join(lines)
