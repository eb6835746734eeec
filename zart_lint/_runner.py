"""Check files: cache look-up, (parallel) linting, filtering and fixing.

The parent process discovers files, builds one :class:`ProjectIndex` per
project root (reading and parsing the project's files in worker processes when
there are many) and consults the cache. Only files the cache cannot answer go
to the workers, in chunks; each worker receives the indexes once, through the
pool initializer, instead of once per task. On Linux the workers are forked, so
they inherit the indexes and the imported modules (libcst) without pickling or
importing anything; the garbage collector is kept away from what they inherit.

What a worker does to a file (read, decode, pre-filter, lint, filter, fix) is
:meth:`FileChecker.check`; the same object runs in-process for small runs and
for stdin.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import importlib
import math
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zart_lint import __version__, _index
from zart_lint._api import ProjectIndex, RuleOptions, lint_source, might_involve_steps
from zart_lint._apply_fix import fix_until_stable, split_lines, unified_diff
from zart_lint._cache import Cache, Entry, IndexCache, StatKey, code_version, digest, stat_key
from zart_lint._config import Settings
from zart_lint._discovery import PathMatcher
from zart_lint._finding import Finding
from zart_lint._suppression import (
    UNUSED_CODE,
    Suppression,
    apply_suppressions,
    might_have_suppressions,
    parse_suppressions,
)

# Below this many files to lint, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 8

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

    def _lint(self, task: FileTask, text: str) -> tuple[list[Finding], bool]:
        index = self.indexes[task.root]
        if not might_involve_steps(text, index, self.options):
            return [], False
        return lint_source(text, Path(task.path), index, self.options), True

    def _suppressions(self, raw: Sequence[Finding], text: str) -> list[Suppression] | None:
        if not might_have_suppressions(text):
            return []  # known to have none: cacheable
        if self.needs_suppressions(raw):
            return parse_suppressions(text)
        return None  # not needed now; computed later if ever

    def check(self, task: FileTask) -> FileOutcome:
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

        raw, outcome.parsed = self._lint(task, text)
        outcome.skipped = not outcome.parsed
        suppressions = self._suppressions(raw, text)
        outcome.entry = Entry(file_digest, _strip_paths(raw), suppressions, st)
        outcome.findings, outcome.suppressed = self.report(
            task, raw, suppressions, lambda: _lines(text)
        )
        if outcome.findings:
            outcome.source = text
        if (self.mode.fix or self.mode.diff) and any(f.fix for f in outcome.findings):
            self._fix(task, outcome, text, had_bom)
        return outcome

    def _fix(self, task: FileTask, outcome: FileOutcome, text: str, had_bom: bool) -> None:
        # The raw findings of the latest source linted: what the cache keeps.
        last: list[tuple[list[Finding], list[Suppression]]] = []

        def lint(source: str) -> list[Finding]:
            raw, _ = self._lint(task, source)
            sup = parse_suppressions(source) if might_have_suppressions(source) else []
            last[:] = [(raw, sup)]
            findings, _ = self.report(task, raw, sup, lambda: _lines(source))
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


def _lines(text: str) -> list[str]:
    return split_lines(text)


def _file_problem(task: FileTask, message: str) -> Finding:
    return Finding("ZRT000", message, task.display, 1, 1, 1, 1)


def _strip_paths(findings: Iterable[Finding]) -> list[Finding]:
    return [dataclasses.replace(f, path="") for f in findings]


# --------------------------------------------------------------------------- workers

_WORKER: FileChecker | None = None


# Collect the youngest generation every this many allocations (Python's default:
# 700). Parsing a file allocates thousands of nodes that all stay alive until the
# file is done, so the default runs collections that find nothing, several per
# file; the analysis leaves no reference cycles behind.
_GC_THRESHOLD = 10_000


@contextlib.contextmanager
def _collector_aside() -> Iterator[None]:
    """Keep the garbage collector out of the way while linting in this process."""
    threshold = gc.get_threshold()
    gc.freeze()  # what exists now (modules, indexes) is never garbage: never traverse it
    gc.set_threshold(_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _init_worker(checker: FileChecker | None) -> None:
    global _WORKER
    _WORKER = checker
    gc.set_threshold(_GC_THRESHOLD, *gc.get_threshold()[1:])
    # Ctrl-C is the parent's to handle: it stops handing out work and exits;
    # workers dying mid-chunk would only add tracebacks to the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_chunk(tasks: list[FileTask]) -> list[FileOutcome]:
    assert _WORKER is not None, "worker not initialised"
    return [safe_check(_WORKER, task) for task in tasks]


def safe_check(checker: FileChecker, task: FileTask) -> FileOutcome:
    """Check one file; a crash in the analysis affects that file only."""
    try:
        return checker.check(task)
    except Exception as exc:
        return FileOutcome(
            task=task,
            error=f"internal error while checking {task.display}: {type(exc).__name__}: {exc}",
            error_detail=traceback.format_exc(),
        )


def _chunks(tasks: list[FileTask], workers: int) -> list[list[FileTask]]:
    # Chunks shrink as the work runs out ("guided" scheduling): large ones keep
    # the per-task overhead (pickling, queueing) negligible, small ones at the
    # end keep the workers finishing together.
    chunks: list[list[FileTask]] = []
    start = 0
    while start < len(tasks):
        size = max(4, min(64, math.ceil((len(tasks) - start) / (workers * 4))))
        chunks.append(tasks[start : start + size])
        start += size
    return chunks


def _pool_context() -> multiprocessing.context.BaseContext | None:
    """``fork`` where it is safe and cheap (Linux): workers inherit the indexes
    and the imported modules instead of unpickling and importing them again.
    Elsewhere (macOS, Windows) the platform's default start method."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


class _ProcessPool:
    """A process pool started on first use; objects that exist by then are frozen for
    the garbage collector, so that forked workers do not copy every inherited page
    the first time they collect."""

    def __init__(self, workers: int, checker: FileChecker | None = None) -> None:
        self._workers = workers
        self._checker = checker
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def get(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=_pool_context(),
                initializer=_init_worker,
                initargs=(self._checker,),
            )
            gc.freeze()  # before the first task forks the workers
        return self._pool

    def close(self, *, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None
            gc.unfreeze()


# Below this many project files, the index is built in-process.
PARALLEL_INDEX_THRESHOLD = 200


class IndexScanner:
    """``map`` for ProjectIndex.build: in worker processes when there are many files.

    Meanwhile this process, which would only wait, imports the linter (libcst):
    the processes that lint are forked from it afterwards and inherit it.
    """

    def __init__(self, jobs: int) -> None:
        self._jobs = jobs
        self._pool = _ProcessPool(jobs)

    def __call__(
        self, scan: Callable[[Path], _index.Scanned], files: list[Path]
    ) -> Iterable[_index.Scanned]:
        if self._jobs <= 1 or len(files) < PARALLEL_INDEX_THRESHOLD:
            return map(scan, files)
        chunksize = max(1, math.ceil(len(files) / (self._jobs * 8)))
        results = self._pool.get().map(scan, files, chunksize=chunksize)
        _import_linter()
        return list(results)

    def close(self, *, cancel: bool = False) -> None:
        self._pool.close(cancel=cancel)


def _import_linter() -> None:
    """Import what linting needs (libcst, the analysis) now, not in every worker."""
    importlib.import_module("zart_lint._lint")


def check_many(checker: FileChecker, tasks: list[FileTask], jobs: int) -> list[FileOutcome]:
    workers = min(jobs, max(1, len(tasks) // 2))
    if len(tasks) <= PARALLEL_THRESHOLD or workers <= 1:
        with _collector_aside():
            return [safe_check(checker, t) for t in tasks]
    if _pool_context() is not None:  # forked workers inherit it
        _import_linter()
    results: list[FileOutcome] = []
    pool = _ProcessPool(workers, checker)
    try:
        for chunk_result in pool.get().map(_check_chunk, _chunks(tasks, workers)):
            results.extend(chunk_result)
    except BaseException:
        pool.close(cancel=True)
        raise
    pool.close()
    return results


# --------------------------------------------------------------------------- a run


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
    handles: dict[str | None, _IndexHandle] = {}
    scanner = IndexScanner(jobs)
    try:
        for root in dict.fromkeys(t.root for t in tasks):
            handles[root] = _project_index(
                root, options, settings, code if use_cache else None, stats, scanner
            )
            stats.roots.append(root or "(no project root)")
    except BaseException:
        scanner.close(cancel=True)
        raise
    scanner.close()
    stats.index_seconds = time.perf_counter() - started

    # The indexes themselves are filled in below, for the files the cache cannot answer.
    indexes: dict[str | None, ProjectIndex] = {}
    checker = FileChecker(settings, indexes, options, known, mode)
    caches: dict[str | None, Cache] = {}
    if use_cache and any(t.stdin is None for t in tasks):  # stdin text is never cached
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
    outcomes.sort(key=lambda o: o.task.display)
    return RunResult(outcomes, stats)


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
    # The files the index builder reads: the cache is only valid while none of
    # them changed. Without that function (another core) the index is rebuilt.
    python_files = getattr(_index, "_python_files", None)
    if code is None or python_files is None:
        return _IndexHandle(ProjectIndex.build(Path(root), options, scanner))
    key = Cache.make_key(
        version=__version__, code=code, options=dataclasses.asdict(options), python=sys.version
    )
    cache = IndexCache(settings.cache_dir, Path(root), key)
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
        task, entry.findings, entry.suppressions, lambda: _lines(get_text())
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
