"""A run: project indexes, cache look-up, checking what the cache cannot answer.

The parent process gets the files from the CLI, builds one
:class:`ProjectIndex` per project root (reading and parsing the project's
files in worker processes when there are many, see ``_workers``) and consults
the cache. Only files the cache cannot answer are checked (``_checker``), in
worker processes when there are many.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zart_lint.core._options import RuleOptions
from zart_lint.core._version import __version__
from zart_lint.engine._cache import Cache, IndexCache, code_version, digest, stat_key
from zart_lint.engine._checker import (
    FileChecker,
    FileOutcome,
    FileTask,
    Mode,
    Prepared,
    decode,
    safe_check,
)
from zart_lint.engine._suppression import might_have_suppressions, parse_suppressions
from zart_lint.engine._workers import IndexScanner, Work, check_many
from zart_lint.fix._apply import split_lines
from zart_lint.project._config import Settings
from zart_lint.project._index import ProjectIndex, python_files


@dataclass
class RunStats:
    files: int = 0
    parsed: int = 0
    skipped: int = 0
    cached: int = 0
    index_seconds: float = 0.0
    index_cached: int = 0
    lint_seconds: float = 0.0
    roots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for --verbose


@dataclass
class RunResult:
    outcomes: list[FileOutcome]
    stats: RunStats


class RootFinder:
    """ProjectIndex.find_root, memoised per directory (many files share one)."""

    def __init__(self) -> None:
        self._by_dir: dict[Path, Path | None] = {}

    def __call__(self, path: Path) -> Path | None:
        directory = path.parent
        if directory not in self._by_dir:
            self._by_dir[directory] = ProjectIndex.find_root(path)
        return self._by_dir[directory]


def rule_options(settings: Settings) -> RuleOptions:
    return RuleOptions(
        extra_step_decorators=settings.step_decorators,
        extra_durable_decorators=settings.durable_decorators,
    )


def run(
    tasks: list[FileTask],
    settings: Settings,
    known: frozenset[str],
    mode: Mode,
    *,
    use_cache: bool,
    jobs: int,
) -> RunResult:
    stats = RunStats(files=len(tasks))
    options = rule_options(settings)

    started = time.perf_counter()
    code = code_version() if use_cache else ""
    handles = _index_handles(tasks, options, settings, code if use_cache else None, stats, jobs)
    stats.index_seconds = time.perf_counter() - started

    # The indexes themselves are filled in below, for the files the cache cannot answer.
    indexes: dict[str | None, ProjectIndex] = {}
    checker = FileChecker(settings, indexes, options, known, mode)
    caches: dict[str | None, Cache] = {}
    if use_cache and any(t.stdin is None for t in tasks):  # stdin text is never cached
        caches = _load_caches(handles, settings, options, code)

    outcomes: list[FileOutcome] = []
    todo: list[FileTask] = []
    started = time.perf_counter()
    for task in tasks:
        task_cache = caches.get(task.root) if task.stdin is None else None
        outcome = _from_cache(checker, task_cache, task, mode) if task_cache else None
        if outcome is None:
            todo.append(task)
        else:
            outcomes.append(outcome)
    for root in dict.fromkeys(t.root for t in todo):
        indexes[root] = handles[root].get()
    # Read and pre-filter here: only the files that need the analysis go on, to worker
    # processes if there are enough of them to pay for starting those (and libcst).
    work: list[Work] = []
    for task in todo:
        first = safe_prepare(checker, task)
        (outcomes if isinstance(first, FileOutcome) else work).append(first)  # type: ignore[arg-type]
    outcomes.extend(check_many(checker, work, jobs))
    stats.lint_seconds = time.perf_counter() - started

    _remember(outcomes, caches, stats)
    for handle in handles.values():
        problem = handle.save()
        if problem:
            stats.notes.append(problem)
        stats.notes.extend(handle.notes)
    outcomes.sort(key=lambda o: o.task.display)
    return RunResult(outcomes, stats)


def _index_handles(
    tasks: list[FileTask],
    options: RuleOptions,
    settings: Settings,
    code: str | None,
    stats: RunStats,
    jobs: int,
) -> dict[str | None, _IndexHandle]:
    """The index of each project root of the run (built, or found in the cache)."""
    handles: dict[str | None, _IndexHandle] = {}
    scanner = IndexScanner(jobs)
    per_root: dict[str | None, int] = {}
    for task in tasks:
        per_root[task.root] = per_root.get(task.root, 0) + 1
    try:
        for root, count in per_root.items():
            handle = _IndexHandle(root, options, settings, code, scanner)
            handle.open(count)
            handles[root] = handle
            stats.roots.append(f"{root or '(no project root)'} {handle.how}")
            stats.index_cached += handle.how == "loaded from the cache"
    except BaseException:
        scanner.close(cancel=True)
        raise
    scanner.close()
    return handles


def _load_caches(
    handles: dict[str | None, _IndexHandle], settings: Settings, options: RuleOptions, code: str
) -> dict[str | None, Cache]:
    """The results cache of each root whose index has a fingerprint, keyed by what the
    results depend on. (An index read on demand has none: its root's results are not
    cached in that run.)"""
    caches: dict[str | None, Cache] = {}
    for root, handle in handles.items():
        fingerprint = handle.fingerprint()
        if fingerprint is None:
            continue
        key = Cache.make_key(
            version=__version__,
            code=code,
            options=dataclasses.asdict(options),
            index=fingerprint,
        )
        cache = Cache(settings.cache_dir, Path(root) if root else None, key)
        cache.load()
        caches[root] = cache
    return caches


def _remember(
    outcomes: list[FileOutcome], caches: dict[str | None, Cache], stats: RunStats
) -> None:
    """Count the outcomes, and store the new ones in their root's cache."""
    for outcome in outcomes:
        stats.parsed += outcome.parsed
        stats.skipped += outcome.skipped
        stats.cached += outcome.cached
        target = caches.get(outcome.task.root)
        if target is not None and outcome.entry is not None and outcome.task.stdin is None:
            target.put(outcome.task.path, outcome.entry)
    for cache in caches.values():
        problem = cache.save()
        if problem:
            stats.notes.append(problem)


class _IndexHandle:
    """A root's project index: built now (every file read, per-file cache entries
    reused), read on demand, or -- when no file changed -- only its fingerprint, taken
    from the cache (unpickling a big index costs more than the rest of such a run)."""

    def __init__(
        self,
        root: str | None,
        options: RuleOptions,
        settings: Settings,
        code: str | None,
        scanner: IndexScanner,
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.options = options
        self.settings = settings
        self.code = code
        self.scanner = scanner
        self.how = "built"
        self.notes: list[str] = []
        self._index: ProjectIndex | None = None
        self._fingerprint: str | None = None
        self._cache: IndexCache | None = None
        self._entries: Callable[[], dict[str, Any]] = dict
        self._files: list[Path] = []
        self._signature: tuple[str, bool] | None = None

    def open(self, tasks: int) -> None:
        """Decide how to get the index, given how many of the root's files are linted."""
        if self.root is None:
            self._index = ProjectIndex.empty(self.options)
            self._fingerprint = self._index.fingerprint() if self.code is not None else None
            return
        skipped: list[Path] = []
        self._files = sorted(python_files(self.root, skipped))
        if skipped:
            shown = ", ".join(f"{rel.as_posix()}/" for rel in skipped)
            self.notes.append(f"project index: skipped build output {shown}")
        if self.code is None:  # --no-cache: read what the linted files reach
            self._lazy()
            return
        key = Cache.make_key(
            version=__version__,
            code=self.code,
            options=dataclasses.asdict(self.options),
            python=sys.version,
        )
        self._cache = IndexCache(self.settings.cache_dir, self.root, key)
        self._signature = self._cache.signature(self._files)
        stored = self._cache.load()
        if stored is not None:
            signature, fingerprint, self._entries = stored
            if self._signature is not None and signature == self._signature[0] and fingerprint:
                self.how = "loaded from the cache"
                self._fingerprint = fingerprint
                return
        self._build(eager=tasks * 2 >= len(self._files))

    def _lazy(self) -> None:
        assert self.root is not None
        self._index = ProjectIndex.build(self.root, self.options, files=self._files)
        self.how = "built on demand"

    def _build(self, *, eager: bool) -> None:
        assert self.root is not None and self._cache is not None
        entries = self._entries()
        covered = all(str(rel) in entries for rel in self._files)
        index = ProjectIndex.build(self.root, self.options, files=self._files, cached=entries)
        self._index = index
        if not (eager or covered):
            self.how = "built on demand"
            return
        index.load_all(self.scanner)
        self._fingerprint = index.fingerprint()
        self.how = f"built ({index.files_read} of {len(self._files)} files read)"
        self.save()

    def fingerprint(self) -> str | None:
        return self._fingerprint

    def get(self) -> ProjectIndex:
        if self._index is None:
            assert self.root is not None
            self._index = ProjectIndex.build(
                self.root, self.options, files=self._files, cached=self._entries()
            )
        return self._index

    def save(self) -> str | None:
        """Store what the index read (nothing new: nothing to do)."""
        index = self._index
        if self._cache is None or index is None or not index.files_read:
            return None
        signature = None
        if self._fingerprint is not None and self._signature and self._signature[1]:
            signature = self._signature[0]  # files too fresh to trust: no signature
        problem = self._cache.save(index.scanned(), signature, self._fingerprint)
        index.mark_saved()
        return problem


def safe_prepare(checker: FileChecker, task: FileTask) -> FileOutcome | Prepared:
    """``checker.prepare``; a crash affects that file only."""
    try:
        return checker.prepare(task)
    except Exception:
        return safe_check(checker, task)


def _from_cache(
    checker: FileChecker, cache: Cache, task: FileTask, mode: Mode
) -> FileOutcome | None:
    try:
        st = stat_key(os.stat(task.path))
    except OSError:
        return None  # let the checker report it
    entry = cache.get(task.path, st)
    changed = False  # whether the cache should store the entry again
    if entry is None and cache.has(task.path):
        # Timestamps differ (touched, checked out again): the hash decides.
        try:
            with open(task.path, "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        entry = cache.get(task.path, None, digest(data))
        if entry is not None:
            entry.stat = st
            changed = True
    if entry is None or (task.explicit and not entry.syntax_checked):
        return None  # named explicitly now, skipped unparsed before: check its syntax
    text_cache: list[str] = []

    def get_text() -> str:
        if not text_cache:
            try:
                with open(task.path, "rb") as fh:
                    text_cache.append(decode(fh.read())[0] or "")
            except OSError:
                text_cache.append("")
        return text_cache[0]

    if entry.suppressions is None and checker.needs_suppressions(entry.findings):
        text = get_text()
        entry.suppressions = parse_suppressions(text) if might_have_suppressions(text) else []
        changed = True
    findings, suppressed = checker.report(
        task, entry.findings, entry.suppressions, lambda: split_lines(get_text())
    )
    if (mode.fix or mode.diff) and any(f.fix for f in findings):
        return None  # needs the source and a re-lint after fixing: a worker's job
    return FileOutcome(
        task=task,
        findings=findings,
        # An entry found as it was stored is not written again: a run that
        # changes nothing leaves the cache file alone.
        entry=entry if changed else None,
        source=text_cache[0] if text_cache else None,
        cached=True,
        suppressed=suppressed,
        notice=entry.notice,
    )
