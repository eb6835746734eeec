"""What checking one file means: read, decode, pre-filter, lint, filter, fix.

:meth:`FileChecker.check` is what a worker process does to each file it is
given; the same object runs in-process for small runs and for stdin. Filtering
is rule selection, per-file-ignores and suppression comments.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zart_lint.core._finding import Finding
from zart_lint.core._options import RuleOptions
from zart_lint.engine._api import analyse_source, might_involve_steps
from zart_lint.engine._cache import Entry, StatKey, digest, stat_key
from zart_lint.engine._suppression import (
    UNUSED_CODE,
    Suppression,
    apply_suppressions,
    might_have_suppressions,
    parse_suppressions,
)
from zart_lint.fix._apply import fix_until_stable, split_lines, unified_diff
from zart_lint.project._config import Settings
from zart_lint.project._discovery import PathMatcher
from zart_lint.project._index import ProjectIndex
from zart_lint.rules.zrt000_syntax_error import syntax_error

_BOM = "\ufeff"


@dataclass(frozen=True)
class Mode:
    fix: bool = False
    diff: bool = False
    report_unused: bool = False


@dataclass(frozen=True)
class FileTask:
    path: str  # absolute, normalised; also the cache key
    display: str  # what the user sees
    rel: str  # relative to the project root, for per-file-ignores
    root: str | None  # key of the ProjectIndex to use
    stdin: bytes | None = None  # the text of "-"
    # Named on the command line (not found by a directory walk): always syntax-checked.
    explicit: bool = False


@dataclass(frozen=True)
class Prepared:
    """A file read, decoded and found to need the analysis (see FileChecker.prepare)."""

    task: FileTask
    text: str
    had_bom: bool
    digest: str
    stat: StatKey | None


@dataclass
class FileOutcome:
    task: FileTask
    findings: list[Finding] = field(default_factory=list)  # what is reported
    entry: Entry | None = None  # what the cache should remember (None: nothing)
    source: str | None = None  # the text the findings refer to, when at hand
    parsed: bool = False
    skipped: bool = False  # could not involve steps: never parsed
    cached: bool = False
    suppressed: int = 0
    fixed: list[Finding] = field(default_factory=list)
    rejected: list[Finding] = field(default_factory=list)
    converged: bool = True
    diff: str | None = None
    fixed_source: str | None = None  # stdin with --fix: the text to print
    error: str | None = None
    error_detail: str | None = None
    notice: str | None = None  # why the file could not be analysed (not checked)


class _Unreadable(Exception):
    pass


def decode(data: bytes) -> tuple[str | None, bool, str | None]:
    """(text, had_bom, problem) for the raw bytes of a file."""
    had_bom = data.startswith(b"\xef\xbb\xbf")
    if had_bom:
        data = data[3:]
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        return None, had_bom, f"file is not valid UTF-8 (NUL byte on line {line}: binary file?)"
    try:
        return data.decode("utf-8"), had_bom, None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex()
        return None, had_bom, f"file is not valid UTF-8 (byte 0x{bad} on line {line}: {exc.reason})"


def _parses(source: str) -> bool:
    import libcst

    try:
        libcst.parse_module(source)
    except Exception:
        return False
    return True


class FileChecker:
    """Everything needed to check one file, shared by all files of a run."""

    def __init__(
        self,
        settings: Settings,
        indexes: dict[str | None, ProjectIndex],
        options: RuleOptions,
        known: frozenset[str],
        mode: Mode,
    ) -> None:
        self.settings = settings
        self.indexes = indexes
        self.options = options
        self.known = known
        self.mode = mode
        self._pfi = [
            (PathMatcher([pattern], settings.root), codes)
            for pattern, codes in settings.per_file_ignores
        ]
        self._enabled_cache: dict[str, frozenset[str]] = {}

    # ------------------------------------------------------------------ filtering

    def enabled_for(self, task: FileTask) -> frozenset[str]:
        cached = self._enabled_cache.get(task.rel)
        if cached is None:
            cached = self.settings.enabled | {UNUSED_CODE}
            path = Path(task.path)
            for matcher, codes in self._pfi:
                if matcher.matches_path_or_parent(path):
                    cached = cached - codes
            self._enabled_cache[task.rel] = cached
        return cached

    def report(
        self,
        task: FileTask,
        raw: Sequence[Finding],
        suppressions: Sequence[Suppression] | None,
        get_lines: Callable[[], Sequence[str]],
    ) -> tuple[list[Finding], int]:
        """Rule selection, per-file-ignores and suppression comments, applied."""
        enabled = self.enabled_for(task)
        kept = [f for f in raw if f.code in enabled]
        result = apply_suppressions(
            kept,
            suppressions or (),
            enabled=enabled,
            known=self.known,
            report_unused=self.mode.report_unused and UNUSED_CODE in enabled,
            path=task.display,
            get_lines=get_lines,
        )
        findings = [dataclasses.replace(f, path=task.display) for f in result.kept + result.unused]
        findings.sort(key=lambda f: f.sort_key)
        return findings, result.suppressed

    def needs_suppressions(self, raw: Sequence[Finding]) -> bool:
        return bool(raw) or self.mode.report_unused

    # ------------------------------------------------------------------ checking

    def _read(self, task: FileTask) -> tuple[bytes, StatKey | None]:
        if task.stdin is not None:
            return task.stdin, None
        try:
            with open(task.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                return fh.read(), stat_key(st)
        except OSError as exc:
            raise _Unreadable(exc.strerror or str(exc)) from None

    def _lint(self, task: FileTask, text: str) -> tuple[list[Finding], bool, str | None]:
        """(raw findings, whether the file was parsed, why it could not be analysed)."""
        index = self.indexes[task.root]
        path = Path(task.path)
        if not might_involve_steps(text, index, self.options, path):
            if task.explicit:  # named on the command line: its syntax is checked all the same
                error = syntax_error(text, Path(task.display))
                return ([error] if error is not None else []), False, None
            return [], False, None
        findings, notice = analyse_source(text, path, index, self.options)
        return findings, True, notice

    def _suppressions(self, raw: Sequence[Finding], text: str) -> list[Suppression] | None:
        if not might_have_suppressions(text):
            return []  # known to have none: cacheable
        if self.needs_suppressions(raw):
            return parse_suppressions(text)
        return None  # not needed now; computed later if ever

    def prepare(self, task: FileTask) -> Prepared | FileOutcome:
        """Read and decode a file; a FileOutcome when that is all it needs (it cannot be
        read or decoded, or it cannot involve steps), else what ``check`` goes on with."""
        outcome = FileOutcome(task=task)
        try:
            data, st = self._read(task)
        except _Unreadable as exc:
            outcome.findings = [_file_problem(task, f"cannot read file ({exc})")]
            return outcome
        text, had_bom, problem = decode(data)
        file_digest = digest(data)
        if text is None:
            raw = [_file_problem(task, problem or "file is not valid UTF-8")]
            outcome.entry = Entry(file_digest, _strip_paths(raw), [], st)
            outcome.findings, _ = self.report(task, raw, [], lambda: ())
            return outcome
        prepared = Prepared(task, text, had_bom, file_digest, st)
        index = self.indexes[task.root]
        if might_involve_steps(text, index, self.options, Path(task.path)):
            return prepared
        return self.check(task, prepared)

    def check(self, task: FileTask, prepared: Prepared | None = None) -> FileOutcome:
        if prepared is None:
            first = self.prepare(task)
            if isinstance(first, FileOutcome):
                return first
            prepared = first
        outcome = FileOutcome(task=task)
        text = prepared.text
        raw, outcome.parsed, outcome.notice = self._lint(task, text)
        outcome.skipped = not outcome.parsed
        suppressions = self._suppressions(raw, text)
        outcome.entry = Entry(
            prepared.digest,
            _strip_paths(raw),
            suppressions,
            prepared.stat,
            notice=outcome.notice,
            syntax_checked=outcome.parsed or task.explicit,
        )
        outcome.findings, outcome.suppressed = self.report(
            task, raw, suppressions, lambda: split_lines(text)
        )
        if outcome.findings:
            outcome.source = text
        if (self.mode.fix or self.mode.diff) and any(f.fix for f in outcome.findings):
            self._fix(task, outcome, text, prepared.had_bom)
        return outcome

    def _fix(self, task: FileTask, outcome: FileOutcome, text: str, had_bom: bool) -> None:
        # The raw findings of the latest source linted: what the cache keeps.
        last: list[tuple[list[Finding], list[Suppression]]] = []

        def lint(source: str) -> list[Finding]:
            raw, _, _ = self._lint(task, source)
            sup = parse_suppressions(source) if might_have_suppressions(source) else []
            last[:] = [(raw, sup)]
            findings, _ = self.report(task, raw, sup, lambda: split_lines(source))
            return findings

        result = fix_until_stable(text, lint, _parses, first=outcome.findings)
        outcome.rejected = result.rejected
        outcome.converged = result.converged
        if not result.applied:
            return
        outcome.fixed = result.applied
        if self.mode.diff:
            outcome.diff = unified_diff(text, result.source, task.display)
            return
        outcome.findings = result.remaining
        outcome.source = result.source
        if task.stdin is not None:
            outcome.fixed_source = (_BOM if had_bom else "") + result.source
            return
        data = ((_BOM if had_bom else "") + result.source).encode("utf-8")
        try:
            # Write in place (not temp + rename) to keep the file's inode,
            # permissions and ownership, as ruff does.
            with open(task.path, "wb") as fh:
                fh.write(data)
                st = stat_key(os.fstat(fh.fileno()))
        except OSError as exc:
            outcome.error = f"could not write fixes to {task.display}: {exc.strerror or exc}"
            outcome.fixed = []
            outcome.entry = None
            return
        raw, sup = last[0]  # fixes were applied, so the fixed source was linted
        outcome.entry = Entry(digest(data), _strip_paths(raw), sup, st)


def _file_problem(task: FileTask, message: str) -> Finding:
    return Finding("ZRT000", message, task.display, 1, 1, 1, 1)


def _strip_paths(findings: Iterable[Finding]) -> list[Finding]:
    return [dataclasses.replace(f, path="") for f in findings]


def safe_check(checker: FileChecker, task: FileTask | Prepared) -> FileOutcome:
    """Check one file; a crash in the analysis affects that file only."""
    if isinstance(task, Prepared):
        prepared: Prepared | None = task
        task = task.task
    else:
        prepared = None
    try:
        return checker.check(task, prepared)
    except Exception as exc:
        return FileOutcome(
            task=task,
            error=f"internal error while checking {task.display}: {type(exc).__name__}: {exc}",
            error_detail=traceback.format_exc(),
        )
