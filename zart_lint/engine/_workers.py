"""Worker processes: linting many files, and reading many for the project index.

Only files the cache cannot answer go to the workers, in chunks; each worker
receives the :class:`FileChecker` (with the project indexes) once, through the
pool initializer, instead of once per task. On Linux the workers are forked,
so they inherit the indexes and the imported modules (libcst) without pickling
or importing anything; the garbage collector is kept away from what they
inherit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import importlib
import math
import multiprocessing
import multiprocessing.context
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from zart_lint.engine._checker import FileChecker, FileOutcome, FileTask, Prepared, safe_check
from zart_lint.project._module_scan import ModuleInfo

Work = FileTask | Prepared

# Below this many files to lint, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 8

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


def _check_chunk(tasks: list[Work]) -> list[FileOutcome]:
    assert _WORKER is not None, "worker not initialised"
    return [safe_check(_WORKER, task) for task in tasks]


def _chunks(tasks: list[Work], workers: int) -> list[list[Work]]:
    # Chunks shrink as the work runs out ("guided" scheduling): large ones keep
    # the per-task overhead (pickling, queueing) negligible, small ones at the
    # end keep the workers finishing together.
    chunks: list[list[Work]] = []
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
        self, scan: Callable[[Path], ModuleInfo | None], files: list[Path]
    ) -> Iterable[ModuleInfo | None]:
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
    importlib.import_module("zart_lint.engine._lint")


def check_many(checker: FileChecker, tasks: list[Work], jobs: int) -> list[FileOutcome]:
    """Check the files (read and pre-filtered already when Prepared): in this process,
    or in worker processes when there are enough to pay for starting them."""
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
