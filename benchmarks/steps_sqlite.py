"""Checkpoint throughput of zart on a SQLite file, against a bare sqlite3 loop (and DBOS).

    python benchmarks/steps_sqlite.py [--steps 2000] [--repeat 3] [--dir PATH] [--profile]

Measures, in one run and on the same disk:

* zart: ``app.run`` of a ``@durable`` body awaiting N ``@step`` calls (each step returns
  an int; a second variant returns a small dataclass, to show the serializer's cost),
  timed after the engine is up (schema created, one warm-up run), so interpreter start,
  imports and schema creation are not counted;
* bare: a plain ``sqlite3`` loop doing one ``INSERT`` + ``COMMIT`` per step, in WAL mode
  with the same ``PRAGMA synchronous`` zart uses, writing a comparable row
  (execution id, step name, small JSON text): the floor any durable runtime pays;
* resume: a real incomplete execution (a child process runs the N-step loop and is
  killed with SIGKILL after the last checkpoint, before the execution finishes), then
  ``app.run`` on its id: every step replays from one query; reported in ms together with
  the number of SQL statements the engine sent (not one per step);
* DBOS, when ``import dbos`` works: the same loop as a DBOS workflow of N ``@DBOS.step()``
  calls on a SQLite system database in the same directory.

Each measurement runs ``--repeat`` times, interleaved (bare, zart, zart-dataclass, DBOS,
rotating the order every round); the table shows medians and ratios of medians. The
script reports; it never fails on a missed target (exit status 0 unless something errors).
"""

from __future__ import annotations

# isort: off
import _benchpath  # noqa: F401  (first: keeps concurrent.py from shadowing the stdlib)
# isort: on

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import platform
import pstats
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Benchmark the checkout this file lives in, installed or not.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import event  # noqa: E402

import zart  # noqa: E402
from zart import durable, step  # noqa: E402

SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
RESUME_TARGET_MS = 100.0
BARE_RATIO_TARGET = 0.50
# Warn when the bare loop's fastest and slowest runs differ more than this.
NOISY_SPREAD = 1.5
BARE = "bare sqlite3 (INSERT+COMMIT)"
ZART_INT = "zart (int steps)"
ZART_DATACLASS = "zart (dataclass steps)"

# ---------------------------------------------------------------------------- zart side

# Set in the child process of the resume measurement: the body then stops after its
# last step (checkpointed) and waits to be killed, so the execution never completes.
_HANG_AFTER_LOOP = False
_loop_done: asyncio.Event | None = None
# How many times a step body really ran in this process (a replay must not run any).
_step_runs = 0


@dataclass
class StepResult:
    index: int
    label: str
    ok: bool


@step("bench-step-{i}")
async def bench_step(i: int) -> int:
    global _step_runs
    _step_runs += 1
    return i


@step("bench-step-dc-{i}")
async def bench_step_dc(i: int) -> StepResult:
    global _step_runs
    _step_runs += 1
    return StepResult(index=i, label=f"item-{i}", ok=True)


@durable("bench-steps-int")
async def loop_int(n: int) -> int:
    total = 0
    for i in range(n):
        total += await bench_step(i)
    return total


@durable("bench-steps-dataclass")
async def loop_dataclass(n: int) -> int:
    total = 0
    for i in range(n):
        result = await bench_step_dc(i)
        total += result.index
    return total


@durable("bench-steps-resume")
async def loop_resume(n: int) -> int:
    total = 0
    for i in range(n):
        total += await bench_step(i)
    if _HANG_AFTER_LOOP:
        assert _loop_done is not None
        _loop_done.set()
        await asyncio.Event().wait()  # never set: SIGKILL arrives first
    return total


def expected_total(n: int) -> int:
    return n * (n - 1) // 2


def time_zart(app: zart.Zart, fn: Any, n: int, execution_id: str) -> float:
    started = time.perf_counter()
    result = app.run(fn, n, execution_id=execution_id)
    elapsed = time.perf_counter() - started
    if result != expected_total(n):
        raise RuntimeError(f"{fn.name}: got {result!r}, expected {expected_total(n)}")
    return elapsed


def zart_pragmas(app: zart.Zart) -> tuple[str, str]:
    """(journal_mode, synchronous) of a connection zart opened."""
    with app.ops_store.db.engine.connect() as conn:
        journal = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
        sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
    return journal.lower(), SYNCHRONOUS_NAMES.get(sync, str(sync))


# ---------------------------------------------------------------------------- bare side


class BareLoop:
    """One INSERT + COMMIT per step, WAL, the given synchronous level."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bare_steps (execution_id TEXT NOT NULL, "
            "step_name TEXT NOT NULL, output TEXT, PRIMARY KEY (execution_id, step_name))"
        )

    def pragmas(self) -> tuple[str, str]:
        journal = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = self.conn.execute("PRAGMA synchronous").fetchone()[0]
        return str(journal).lower(), SYNCHRONOUS_NAMES.get(sync, str(sync))

    def run(self, n: int, execution_id: str) -> float:
        execute = self.conn.execute
        started = time.perf_counter()
        for i in range(n):
            execute("BEGIN IMMEDIATE")
            execute(
                "INSERT INTO bare_steps (execution_id, step_name, output) VALUES (?, ?, ?)",
                (execution_id, f"bench-step-{i}", json.dumps(i)),
            )
            execute("COMMIT")
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------- DBOS side


class DbosLoop:
    """The same loop as DBOS workflows (async, like zart's body, and sync) on SQLite."""

    def __init__(self, directory: Path, journal: str) -> None:
        from dbos import DBOS, DBOSConfig, SetWorkflowID

        self.DBOS = DBOS
        self.SetWorkflowID = SetWorkflowID
        self.path = directory / "dbos.sqlite"
        if journal == "wal":
            # DBOS leaves SQLite's default rollback journal; WAL is a property of the
            # file, so setting it here makes DBOS run with zart's settings.
            with sqlite3.connect(self.path) as conn:
                conn.execute("PRAGMA journal_mode=WAL")

        @DBOS.step()
        async def dbos_step(i: int) -> int:
            return i

        @DBOS.workflow()
        async def dbos_loop_async(n: int) -> int:
            total = 0
            for i in range(n):
                total += await dbos_step(i)
            return total

        @DBOS.step()
        def dbos_step_sync(i: int) -> int:
            return i

        @DBOS.workflow()
        def dbos_loop_sync(n: int) -> int:
            total = 0
            for i in range(n):
                total += dbos_step_sync(i)
            return total

        self.loop_async = dbos_loop_async
        self.loop_sync = dbos_loop_sync
        config: DBOSConfig = {
            "name": "zart-bench",
            "system_database_url": f"sqlite:///{self.path}",
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()

    def pragmas(self) -> tuple[str, str]:
        # synchronous is per connection and DBOS does not set it: a fresh connection
        # shows the library default its connections get.
        with sqlite3.connect(self.path) as conn:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        return str(journal).lower(), SYNCHRONOUS_NAMES.get(sync, str(sync))

    def run_async(self, n: int, workflow_id: str) -> float:
        with self.SetWorkflowID(workflow_id):
            started = time.perf_counter()
            result = asyncio.run(self.loop_async(n))
            elapsed = time.perf_counter() - started
        if result != expected_total(n):
            raise RuntimeError(f"DBOS async workflow: got {result!r}")
        return elapsed

    def run_sync(self, n: int, workflow_id: str) -> float:
        with self.SetWorkflowID(workflow_id):
            started = time.perf_counter()
            result = self.loop_sync(n)
            elapsed = time.perf_counter() - started
        if result != expected_total(n):
            raise RuntimeError(f"DBOS sync workflow: got {result!r}")
        return elapsed

    def close(self) -> None:
        self.DBOS.destroy()


def try_dbos(directory: Path, journal: str) -> tuple[DbosLoop | None, str]:
    try:
        import dbos
    except ImportError:
        return None, "DBOS not installed (pip install dbos) — skipped"
    version = getattr(dbos, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("dbos")
    return DbosLoop(directory, journal), f"dbos {version}"


# ---------------------------------------------------------------------------- resume


def child_main(args: argparse.Namespace) -> int:
    """Child of the resume measurement: run each loop to its last step, then hang."""
    global _HANG_AFTER_LOOP, _loop_done
    _HANG_AFTER_LOOP = True
    app = zart.Zart(f"sqlite:///{args.dir / 'zart.db'}")

    async def main() -> None:
        global _loop_done
        handles = []  # keeps the executions' tasks referenced
        for execution_id in args.child_ids.split(","):
            _loop_done = asyncio.Event()
            handles.append(await app.start(loop_resume, args.steps, execution_id=execution_id))
            await _loop_done.wait()
        await asyncio.Event().wait()

    asyncio.run(main())
    return 0


def make_incomplete(directory: Path, n: int, ids: list[str], timeout: float = 600.0) -> None:
    """Run the loops in a child, SIGKILL it once every step of every loop is checkpointed."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--dir",
        str(directory),
        "--steps",
        str(n),
        "--child-ids",
        ",".join(ids),
    ]
    log_path = directory / "resume-child.log"
    placeholders = ",".join("?" * len(ids))
    query = (
        f"SELECT count(*) FROM zart_steps WHERE execution_id IN ({placeholders}) "
        "AND status = 'completed'"
    )
    with open(log_path, "wb") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        watcher = sqlite3.connect(directory / "zart.db", timeout=30)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if child.poll() is not None:
                    output = log_path.read_text(errors="replace")
                    raise RuntimeError(f"resume child exited ({child.returncode}):\n{output}")
                try:
                    done = watcher.execute(query, ids).fetchone()[0]
                except sqlite3.OperationalError:  # table not created yet
                    done = 0
                if done >= n * len(ids):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("resume child did not checkpoint its steps in time")
                time.sleep(0.02)
        finally:
            watcher.close()
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            child.wait()


class StatementCounter:
    """Every statement SQLAlchemy sends on an engine from this thread, while installed.

    Other threads are left out: the lease heartbeat may renew the lease meanwhile,
    which is not part of the resume's work.
    """

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine
        self.thread = threading.get_ident()
        self.statements: list[str] = []

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == self.thread:
            self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    def summary(self) -> str:
        kinds = Counter(s.split(None, 1)[0].upper() for s in self.statements if s.strip())
        on_steps = sum("zart_steps" in s for s in self.statements)
        parts = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
        return f"{parts}; {on_steps} on zart_steps"


@dataclass
class ResumeRun:
    ms: float
    statements: int
    summary: str
    steps_rerun: int


def time_resume(app: zart.Zart, n: int, execution_id: str) -> ResumeRun:
    runs_before = _step_runs
    with StatementCounter(app.ops_store.db.engine) as counter:
        elapsed = time_zart(app, loop_resume, n, execution_id)
    status = app.status(execution_id)
    if status.status != "completed":
        raise RuntimeError(f"resumed execution {execution_id} is {status.status}")
    return ResumeRun(
        elapsed * 1000, len(counter.statements), counter.summary(), _step_runs - runs_before
    )


# ---------------------------------------------------------------------------- report


def fmt_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def print_table(
    n: int, results: dict[str, list[float]], cpu: dict[str, list[float]], bare_median: float
) -> None:
    header = (
        f"{'loop':<28} {'steps/s':>9} {'us/step':>8} {'cpu us':>7} {'vs bare':>8} {'best':>7}"
        "  runs (steps/s)"
    )
    print(header)
    print("-" * len(header))
    for name, times in results.items():
        med = statistics.median(times)
        cpu_us = statistics.median(cpu[name]) / n * 1e6
        runs = " ".join(fmt_rate(n, t) for t in times)
        print(
            f"{name:<28} {fmt_rate(n, med):>9} {med / n * 1e6:>8.0f} {cpu_us:>7.0f} "
            f"{bare_median / med:>8.2f} {fmt_rate(n, min(times)):>7}  {runs}"
        )
    print("steps/s, us/step (wall), cpu us (process CPU per step): medians; best: the fastest run")


def profile_zart(app: zart.Zart, n: int, execution_id: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    elapsed = time_zart(app, loop_int, n, execution_id)
    profiler.disable()
    print(f"\nprofile of one zart loop ({n} int steps, {elapsed * 1000:.0f} ms under cProfile)")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)


def filesystem_of(path: Path) -> str:
    """Best effort: the mount point and type holding ``path`` (Linux)."""
    try:
        best = ("", "?")
        resolved = str(path.resolve())
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                mount, fstype = fields[1], fields[2]
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, fstype)
        return f"{best[1]} on {best[0]}" if best[0] else "?"
    except OSError:
        return "?"


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=2000, help="steps per loop (2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (3)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where the databases go (default: a temp dir under the current directory); "
        "a fresh sub-directory is created in it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--profile", action="store_true", help="cProfile one zart loop")
    parser.add_argument("--no-dbos", action="store_true", help="skip DBOS even if installed")
    parser.add_argument(
        "--dbos-journal",
        choices=("wal", "default"),
        default="wal",
        help="DBOS's journal mode: wal (zart's setting, default) or DBOS's own default",
    )
    parser.add_argument("--child-ids", help=argparse.SUPPRESS)  # internal: resume child
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    return args


def run(args: argparse.Namespace, directory: Path) -> None:
    with contextlib.ExitStack() as cleanup:
        app = zart.Zart(f"sqlite:///{directory / 'zart.db'}")
        cleanup.callback(app.close)
        app.ops_store.ensure_schema()  # the engine is up: nothing below pays for migrations
        _, synchronous = zart_pragmas(app)
        bare = BareLoop(directory / "bare.db", synchronous)
        cleanup.callback(bare.close)
        dbos_loop: DbosLoop | None = None
        dbos_note = "DBOS skipped (--no-dbos)"
        if not args.no_dbos:
            dbos_loop, dbos_note = try_dbos(directory, args.dbos_journal)
            if dbos_loop is not None:
                cleanup.callback(dbos_loop.close)
        measure_and_report(args, directory, app, bare, dbos_loop, dbos_note)


def measure_and_report(
    args: argparse.Namespace,
    directory: Path,
    app: zart.Zart,
    bare: BareLoop,
    dbos_loop: DbosLoop | None,
    dbos_note: str,
) -> None:
    n, repeat = args.steps, args.repeat
    journal, synchronous = zart_pragmas(app)
    bare_journal, bare_sync = bare.pragmas()

    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, zart {zart.__version__}; {dbos_note}"
    )
    print(f"databases in {directory} ({filesystem_of(directory)})")
    print(f"zart: journal_mode={journal} synchronous={synchronous}")
    print(f"bare: journal_mode={bare_journal} synchronous={bare_sync}")
    if dbos_loop is not None:
        dj, ds = dbos_loop.pragmas()
        print(f"DBOS: journal_mode={dj} synchronous={ds}")
    print(f"{n} steps per loop, {repeat} runs each, interleaved\n")

    measures: dict[str, Callable[[str], float]] = {
        BARE: lambda eid: bare.run(n, eid),
        ZART_INT: lambda eid: time_zart(app, loop_int, n, eid),
        ZART_DATACLASS: lambda eid: time_zart(app, loop_dataclass, n, eid),
    }
    if dbos_loop is not None:
        loop = dbos_loop
        measures["DBOS (async workflow)"] = lambda eid: loop.run_async(n, eid)
        measures["DBOS (sync workflow)"] = lambda eid: loop.run_sync(n, eid)
    names = list(measures)
    # Warm-up, one uncounted run of each: first connections, lazily built codecs, and
    # WAL files grown to their steady size (appending to a WAL costs more per fsync than
    # rewriting it after a checkpoint, which would penalize whichever loop runs first).
    for name, measure in measures.items():
        measure(f"warmup-{names.index(name)}")
    results: dict[str, list[float]] = {name: [] for name in measures}
    cpu: dict[str, list[float]] = {name: [] for name in measures}
    # zart and bare run back to back (the order rotating every round), DBOS after them:
    # adjacent runs see the same disk weather, which the paired ratios rely on.
    trio, others = names[:3], names[3:]
    for r in range(repeat):
        order = trio[r % 3 :] + trio[: r % 3]
        if others:
            order += others[r % len(others) :] + others[: r % len(others)]
        for name in order:
            cpu_started = time.process_time()
            results[name].append(measures[name](f"run-{r}-{names.index(name)}"))
            cpu[name].append(time.process_time() - cpu_started)

    # Resume: real incomplete executions left by a killed process, replayed here.
    resume_ids = [f"resume-{r}" for r in range(repeat)]
    make_incomplete(directory, n, resume_ids)
    resumes = [time_resume(app, n, eid) for eid in resume_ids]

    medians = {name: statistics.median(times) for name, times in results.items()}
    bare_median = medians[BARE]
    print_table(n, results, cpu, bare_median)
    resume_ms = statistics.median(r.ms for r in resumes)
    print(
        f"\nresume of {n} completed steps (child killed with SIGKILL after the last "
        f"checkpoint): {', '.join(f'{r.ms:.1f}' for r in resumes)} ms"
    )
    for res in resumes:
        print(f"  {res.statements} statements ({res.summary}); steps re-run: {res.steps_rerun}")

    if args.profile:
        profile_zart(app, n, "profile")

    print()
    zart_median = medians[ZART_INT]
    bare_times = results[BARE]
    spread = max(bare_times) / min(bare_times)
    if spread > NOISY_SPREAD:
        print(
            f"warning: noisy machine, the bare loop's runs differ {spread:.1f}x; the paired "
            "and best-run ratios below are steadier than the ratio of medians"
        )

    def ratios(name: str) -> str:
        # paired: median over rounds of bare/zart within the round (runs close in time);
        # best: fastest bare run over fastest run of ``name``.
        paired = statistics.median(b / t for b, t in zip(bare_times, results[name], strict=True))
        best = min(bare_times) / min(results[name])
        return f"paired runs {paired:.2f}, best runs {best:.2f}"

    print(
        f"zart/bare = {bare_median / zart_median:.2f} (target >= {BARE_RATIO_TARGET:.2f}; "
        f"{ratios(ZART_INT)})"
    )
    print(
        f"zart(dataclass)/bare = {bare_median / medians[ZART_DATACLASS]:.2f} "
        f"({ratios(ZART_DATACLASS)})"
    )
    statements = max(r.statements for r in resumes)
    print(
        f"resume {n} steps: {resume_ms:.0f} ms, {statements} statements "
        f"(target < {RESUME_TARGET_MS:.0f} ms)"
    )
    if dbos_loop is not None:
        print(
            f"zart/DBOS = {medians['DBOS (async workflow)'] / zart_median:.2f} "
            f"(async workflow), {medians['DBOS (sync workflow)'] / zart_median:.2f} "
            f"(sync workflow); journal_mode={dbos_loop.pragmas()[0]}"
        )
    else:
        print(dbos_note)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_ids:
        return child_main(args)
    base = args.dir if args.dir is not None else Path.cwd()
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="zart-bench-", dir=base)).resolve()
    try:
        run(args, directory)
    finally:
        if args.keep:
            print(f"databases kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
