"""``# noqa`` and ``# zart-lint: ignore[...]`` comments.

Comments are found with :mod:`tokenize`, not a regex over the raw text, so
``"# noqa"`` inside a string literal suppresses nothing. Tokenizing costs time,
so callers only do it for files that have findings (or when unused
suppressions are reported).

A directive applies to a finding whose start line, or (for a finding spanning
several lines) end line, carries it.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from zart_lint.core._finding import Edit, Finding, Fix
from zart_lint.core._rule_info import UNUSED_SUPPRESSION

UNUSED_CODE = UNUSED_SUPPRESSION.code
_OWN_CODE = re.compile(r"ZRT\d+\Z")

# flake8's grammar: the word noqa, optionally followed by ":" and codes separated
# by commas or spaces ("A1,B2 C3"); noqa is case-insensitive. The code list ends
# at the first word that is not a code.
_NOQA = re.compile(
    r"#\s*noqa(?::\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_ZART = re.compile(r"#\s*zart-lint:\s*ignore(?:\[(?P<codes>[^\]\n]*)\])?", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class Suppression:
    """One directive in one comment. Columns are 1-based, the end exclusive."""

    line: int
    column: int
    end_column: int
    kind: str  # "noqa" or "zart-lint"
    codes: tuple[str, ...] | None  # None: suppresses every code
    codes_column: int = 0  # where the code list starts (0: no list)
    codes_end_column: int = 0
    comment_end_column: int = 0  # end of this directive's comment segment

    def covers(self, code: str) -> bool:
        return self.codes is None or code in self.codes


def might_have_suppressions(source: str) -> bool:
    """Cheap pre-check before tokenizing."""
    lowered = source.lower()
    return "noqa" in lowered or "zart-lint" in lowered


def parse_suppressions(source: str) -> list[Suppression]:
    """All directives in the comments of ``source``; partial on tokenize errors."""
    found: list[Suppression] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found.extend(_parse_comment(tok.string, tok.start[0], tok.start[1]))
    except (tokenize.TokenError, SyntaxError):
        pass  # a file that does not tokenize keeps the directives seen so far
    return found


def _parse_comment(text: str, line: int, offset: int) -> Iterable[Suppression]:
    # One comment may hold several "#"-separated directives (noqa, then type: ignore).
    hashes = [m.start() for m in re.finditer("#", text)] + [len(text)]
    for regex, kind in ((_NOQA, "noqa"), (_ZART, "zart-lint")):
        for m in regex.finditer(text):
            raw = m.group("codes")
            codes: tuple[str, ...] | None = None
            cstart = cend = 0
            if raw is not None and raw.strip():
                codes = tuple(c.upper() for c in _SPLIT.split(raw.strip()) if c)
                cstart, cend = m.start("codes") + offset + 1, m.end("codes") + offset + 1
            segment_end = next(h for h in hashes if h > m.start())
            yield Suppression(
                line=line,
                column=m.start() + offset + 1,
                end_column=m.end() + offset + 1,
                kind=kind,
                codes=codes,
                codes_column=cstart,
                codes_end_column=cend,
                comment_end_column=segment_end + offset + 1,
            )


@dataclass
class SuppressionResult:
    kept: list[Finding]
    suppressed: int
    unused: list[Finding]


def apply_suppressions(
    findings: Sequence[Finding],
    suppressions: Sequence[Suppression],
    *,
    enabled: frozenset[str] = frozenset(),
    known: frozenset[str] = frozenset(),
    report_unused: bool = False,
    path: str = "",
    get_lines: Callable[[], Sequence[str]] | None = None,
) -> SuppressionResult:
    """Drop suppressed findings; optionally report directives that did nothing.

    ``enabled`` is the set of rules enabled for the file: a directive naming a
    known rule that is switched off is not reported as unused (it may matter
    under another configuration); an unknown ZRT code (a typo) always is.
    ``get_lines`` (the file's lines, fetched only when needed) lets a ZRT100
    finding carry a fix.
    """
    by_line: dict[int, list[Suppression]] = {}
    for s in suppressions:
        by_line.setdefault(s.line, []).append(s)
    used: dict[Suppression, set[str]] = {}
    kept: list[Finding] = []
    suppressed = 0
    for f in findings:
        # ZRT000 (unparsable file) is not suppressible: the comments may be garbage.
        hit = None
        if f.code != "ZRT000":
            candidates = by_line.get(f.line, []) + (
                by_line.get(f.end_line, []) if f.end_line != f.line else []
            )
            hit = next((s for s in candidates if s.covers(f.code)), None)
        if hit is None:
            kept.append(f)
        else:
            suppressed += 1
            used.setdefault(hit, set()).add(f.code)
    unused: list[Finding] = []
    if report_unused:
        lines: Sequence[str] | None = None
        for s in suppressions:
            if _unused_codes(s, used.get(s, set()), enabled, known) is None:
                continue
            if lines is None:
                lines = get_lines() if get_lines is not None else ()
            finding = _unused_finding(s, used.get(s, set()), enabled, known, path, lines)
            if finding is not None:
                unused.append(finding)
    return SuppressionResult(kept=kept, suppressed=suppressed, unused=unused)


def _unused_codes(
    s: Suppression, used: set[str], enabled: frozenset[str], known: frozenset[str]
) -> list[str] | None:
    """The codes of ``s`` that suppressed nothing ([] for a blanket one), or None."""
    if s.codes is None:
        # A bare noqa comment may be meant for another tool; a bare
        # zart-lint ignore comment is ours, so it is reported when unused.
        return None if s.kind == "noqa" or used else []
    unused = [
        c
        for c in s.codes
        if _OWN_CODE.match(c) and c not in used and (c in enabled or c not in known)
    ]
    return unused or None


def _unused_finding(
    s: Suppression,
    used: set[str],
    enabled: frozenset[str],
    known: frozenset[str],
    path: str,
    lines: Sequence[str],
) -> Finding | None:
    unused = _unused_codes(s, used, enabled, known)
    if unused is None:
        return None
    if s.codes is None:
        message = "unused suppression `# zart-lint: ignore` (nothing to suppress on this line)"
        fix = _removal_fix(s, [], lines, "the unused suppression")
    else:
        keep = [c for c in s.codes if c not in unused]
        shown = ", ".join(s.codes)
        label = f"# noqa: {shown}" if s.kind == "noqa" else f"# zart-lint: ignore[{shown}]"
        message = f"unused suppression `{label}` (unused: {', '.join(unused)})"
        fix = _removal_fix(s, keep, lines, f"unused {', '.join(unused)}")
    return Finding(UNUSED_CODE, message, path, s.line, s.column, s.line, s.end_column, fix)


def _removal_fix(s: Suppression, keep: list[str], lines: Sequence[str], what: str) -> Fix | None:
    if not lines or s.line > len(lines):
        return None
    if keep and s.codes_column:
        sep = ", " if s.kind == "zart-lint" else ","
        edit = Edit(s.line, s.codes_column, s.line, s.codes_end_column, sep.join(keep))
        return Fix(f"Remove {what} from the suppression", (edit,))
    # Remove the whole directive up to the next "#" of the same comment, and the
    # whitespace before it when nothing of the comment remains.
    text = lines[s.line - 1].rstrip("\r\n")
    start = s.column
    end = s.comment_end_column
    rest = text[end - 1 :]
    if rest:
        end_col = end
    else:
        end_col = len(text) + 1
        while start > 1 and text[start - 2] in " \t":
            start -= 1
    return Fix(f"Remove {what}", (Edit(s.line, start, s.line, end_col, ""),))
