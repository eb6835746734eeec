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

from zart_lint.core._options import RuleOptions
from zart_lint.core._version import __version__
from zart_lint.engine._cache import Cache, IndexCache, code_version, digest, stat_key
from zart_lint.engine._checker import FileChecker, FileOutcome, FileTask, Mode, decode
from zart_lint.engine._suppression import might_have_suppressions, parse_suppressions
from zart_lint.engine._workers import IndexScanner, check_many
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
    outcomes.extend(check_many(checker, todo, jobs))
    stats.lint_seconds = time.perf_counter() - started

    _remember(outcomes, caches, stats)
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
    try:
        for root in dict.fromkeys(t.root for t in tasks):
            handles[root] = _project_index(root, options, settings, code, stats, scanner)
            stats.roots.append(root or "(no project root)")
    except BaseException:
        scanner.close(cancel=True)
        raise
    scanner.close()
    return handles


def _load_caches(
    handles: dict[str | None, _IndexHandle], settings: Settings, options: RuleOptions, code: str
) -> dict[str | None, Cache]:
    """The results cache of each root, keyed by what the results depend on."""
    caches: dict[str | None, Cache] = {}
    for root, handle in handles.items():
        key = Cache.make_key(
            version=__version__,
            code=code,
            options=dataclasses.asdict(options),
            index=handle.fingerprint(),
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
    """A root's index, or how to get it: a run that the cache answers entirely only
    needs the index's fingerprint (unpickling a big index costs more than the
    rest of such a run)."""

    def __init__(
        self,
        index: ProjectIndex | None,
        fingerprint: str | None = None,
        load: Callable[[], object] | None = None,
        build: Callable[[], ProjectIndex] | None = None,
    ) -> None:
        self._index = index
        self._fingerprint = fingerprint
        self._load = load
        self._build = build

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.get().fingerprint()
        return self._fingerprint

    def get(self) -> ProjectIndex:
        if self._index is None:
            loaded = self._load() if self._load is not None else None
            if isinstance(loaded, ProjectIndex):
                self._index = loaded
            else:  # damaged after all: build it again (from the same files)
                assert self._build is not None
                self._index = self._build()
        return self._index


def _project_index(
    root: str | None,
    options: RuleOptions,
    settings: Settings,
    code: str | None,
    stats: RunStats,
    scanner: IndexScanner | None = None,
) -> _IndexHandle:
    """Build the root's index, or reuse the cached one if no Python file under it changed."""
    if root is None:
        return _IndexHandle(ProjectIndex.build(None, options))
    if code is None:
        return _IndexHandle(ProjectIndex.build(Path(root), options, scanner))
    key = Cache.make_key(
        version=__version__, code=code, options=dataclasses.asdict(options), python=sys.version
    )
    cache = IndexCache(settings.cache_dir, Path(root), key)
    # The files the index builder reads: the cache is only valid while none of them changed.
    files = sorted(python_files(Path(root)))
    signature = cache.signature(files)

    def build(scanner: IndexScanner | None = None) -> ProjectIndex:
        index = ProjectIndex.build(Path(root), options, scanner, files=files)
        if signature is not None and signature[1]:  # files too fresh to trust: not saved
            problem = cache.save(signature[0], index, index.fingerprint())
            if problem:
                stats.notes.append(problem)
        return index

    if signature is not None:
        found = cache.load_lazily(signature[0])
        if found is not None:
            stats.index_cached += 1
            fingerprint, load = found
            return _IndexHandle(None, fingerprint, load, build)
    return _IndexHandle(build(scanner))


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
    if entry is None:
        return None
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
    )
