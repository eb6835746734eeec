"""Long executions stay flat: one execution of 100,000 steps, the time per step at its
start and at its end, and what resuming it costs in time and memory.

    python benchmarks/long_execution.py [--steps 100000] [--output-bytes 200]
                                        [--synchronous NORMAL|FULL] [--pg-url [URL]]
                                        [--profile]

Per backend (an SQLite file in a temp dir, WAL, ``synchronous=NORMAL`` unless
``--synchronous FULL``; PostgreSQL too with ``--pg-url``, in databases the script
creates and drops):

* **first run.** A child process runs, after an uncounted warm-up execution of one
  window, one execution of N steps, each returning a ``dict[str, str]`` of about
  ``--output-bytes`` bytes of JSON. The body notes
  ``time.perf_counter()`` after each step of the first and the last ``--window`` steps
  (measurement only, not journaled). After its last step the execution parks
  (``zart.wait_for_event``: waiting, lease given up) and the same process runs a fresh
  execution of one window, right away. Printed: the time per step of steps 1-1,000, of
  the last 1,000, and of the fresh execution's 1,000; late/early (target <= 1.2) and
  late/fresh (the same moment and database size: the growth due to the execution's own
  length, with the machine's drift taken out). The same for a bare loop (the same fenced
  upsert per step on a plain driver connection, no zart code, warmed up alike), run
  just before.
* **resume.** Fresh processes take the execution over (its event sent) and replay its
  N recorded steps: one under ``tracemalloc`` (peak Python heap, and the largest live
  allocations when the replay leaves the loop, where it SIGKILLs itself: the execution
  stays ``running`` under a dead owner, as after a crash), then one that runs it to
  completion (wall time, split into claim + journal load / replay / finish, and peak RSS
  growth from ``getrusage``). Both set against the total size of the stored outputs
  (``sum(length(output))``), at N/10 and N steps: does resuming hold every result in
  memory at once?
* ``--profile``: cProfile of the first and the last window of one more first run, and
  of one more resume, each in its own process (the timed runs are not slowed).

The script reports; it never fails on a missed target (exit status 0 unless something
errors).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory is first on sys.path, where a benchmark named
# like a standard-library module (benchmarks/concurrent.py) would shadow that module:
# move the directory to the end (the helper modules here stay importable). Every import
# below comes after this on purpose.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
# Benchmark the checkout this file lives in, installed or not.
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ruff: noqa: E402
import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import itertools
import json
import os
import pstats
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from _bench_db import (
    DEFAULT_PG_URL,
    filesystem_of,
    libpq,
    pg_server_info,
    scratch_database,
    spawn,
    sqlite_pragmas,
    sqlite_url,
    versions,
)
from sqlalchemy import text

import zart
from zart import durable, step
from zart._store._queries import CHECKPOINT_TEMPLATE

FLAT_TARGET = 1.2
# Warn when the bare loop's windows differ more than this (the machine is busy).
NOISY_SPREAD = 1.5
CHILD_TIMEOUT = 3600.0
# The JSON of a step's result without its payload: {"index":"…","status":"done",…}.
RESULT_OVERHEAD = 62

# ---------------------------------------------------------------------------- the durable

# Measurement state of this process, never journaled: perf_counter / process_time at
# the marks (step counts) the plan asks for, and named moments of the run.
_STAMPS: dict[int, float] = {}
_CPU: dict[int, float] = {}
_WANTED: frozenset[int] = frozenset()
_MARKS: dict[str, float] = {}
_ON_MARK: Callable[[int], None] | None = None
# Awaited after the loop, before the body returns: the children that are to die with
# a running execution hang (or SIGKILL themselves) here.
_ON_LOOP_END: Callable[[], Awaitable[None]] | None = None
_STEP_RUNS = 0


def marks(n: int, window: int) -> frozenset[int]:
    """The step counts to stamp: the first and last ``window`` steps and every tenth of
    the run (a stamp per step would itself be a list that grows with N, in the heap)."""
    window = min(window, n // 2)
    tenths = {n * k // 10 for k in range(11)}
    return frozenset(range(window + 1)) | frozenset(range(n - window, n + 1)) | tenths


def plan(n: int, window: int) -> None:
    global _WANTED
    _WANTED = marks(n, window)
    _STAMPS.clear()
    _CPU.clear()
    _MARKS.clear()


def _mark(k: int) -> None:
    _STAMPS[k] = time.perf_counter()
    _CPU[k] = time.process_time()
    if _ON_MARK is not None:
        _ON_MARK(k)


def make_result(i: int, size: int) -> dict[str, str]:
    """A step result of about ``size`` bytes of JSON."""
    index = str(i)
    payload = "x" * max(0, size - RESULT_OVERHEAD - len(index))
    return {"index": index, "status": "done", "owner": "long-execution", "payload": payload}


@step("long-step-{i}")
async def long_step(i: int, size: int) -> dict[str, str]:
    global _STEP_RUNS
    _STEP_RUNS += 1
    return make_result(i, size)


@durable("long-execution")
async def long_execution(n: int, size: int, park: bool) -> int:
    _MARKS["body"] = time.perf_counter()
    wanted = _WANTED
    _mark(0)
    total = 0
    for i in range(n):
        result = await long_step(i, size)
        total += int(result["index"])
        if i + 1 in wanted:
            _mark(i + 1)
    _MARKS["loop_end"] = time.perf_counter()
    if _ON_LOOP_END is not None:
        await _ON_LOOP_END()
    if park:
        # The first run parks here (waiting, its lease given up, no longer running in
        # its process) so that a fresh execution can be timed right after it; a resume
        # finds the event sent meanwhile.
        await zart.wait_for_event("finish")
    return total


def expected_total(n: int) -> int:
    return n * (n - 1) // 2


# ---------------------------------------------------------------------------- the floor

# zart's own fenced checkpoint statement (the text only: the floor sends it straight
# to the driver and runs no zart code), with the row lock each backend adds to it.
BARE_UPSERT = CHECKPOINT_TEMPLATE.format(row_lock="")
BARE_UPSERT_PG = CHECKPOINT_TEMPLATE.format(row_lock="FOR SHARE")
BARE_EXECUTION = """
    INSERT INTO zart_executions (id, durable_name, status, input, attempts, recoveries,
                                 lease_owner, created_at, updated_at)
    VALUES (:execution_id, 'bare', 'running', '[]', 1, 0, :token, :now, :now)
"""
BARE_TOKEN = "bare|0|0|0"


class BareLoop:
    """The floor: per step, build the same result, encode it with ``json.dumps``, hash
    the arguments and send the same fenced upsert on a plain driver connection in
    autocommit (one statement, one commit). Same tables (zart's schema), its own database."""

    def __init__(self, url: str, synchronous: str) -> None:
        with zart.Zart(url) as app:
            app.ops_store.ensure_schema()  # zart's own tables and indexes
        if url.startswith("sqlite"):
            self.conn: Any = sqlite3.connect(url.split("///", 1)[1].split("?")[0])
            self.conn.isolation_level = None  # autocommit, as zart's write path
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self.sql = {"upsert": BARE_UPSERT, "execution": BARE_EXECUTION}
        else:
            import psycopg

            self.conn = psycopg.connect(libpq(url.partition("?")[0]), autocommit=True)
            # psycopg's placeholder style
            self.sql = {
                "upsert": re.sub(r"(?<!:):(\w+)", r"%(\1)s", BARE_UPSERT_PG),
                "execution": re.sub(r"(?<!:):(\w+)", r"%(\1)s", BARE_EXECUTION),
            }

    def run(self, eid: str, n: int, size: int, window: int) -> dict[str, Any]:
        execute, upsert = self.conn.execute, self.sql["upsert"]
        execute(self.sql["execution"], {"execution_id": eid, "token": BARE_TOKEN, "now": 0.0})
        wanted, stamps, cpu = marks(n, window), {0: time.perf_counter()}, {0: time.process_time()}
        for i in range(n):
            output = json.dumps(make_result(i, size), separators=(",", ":"))
            now = time.time()
            params = {
                "execution_id": eid, "step_name": f"long-step-{i}", "seq": i + 1,
                "kind": "step", "status": "completed", "output": output, "error": None,
                "fingerprint": hashlib.sha256(str(i).encode()).hexdigest(), "attempts": 1,
                "started_at": now, "finished_at": now, "token": BARE_TOKEN,
            }  # fmt: skip
            if execute(upsert, params).rowcount != 1:
                raise RuntimeError("the bare upsert wrote nothing")
            if i + 1 in wanted:
                stamps[i + 1], cpu[i + 1] = time.perf_counter(), time.process_time()
        return {"n": n, "stamps": stamps, "cpu": cpu, "wall": stamps[n] - stamps[0]}

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------- children


def _die() -> None:
    """End this process the way a crash does: no lease released, nothing flushed."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _write_report(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(path)  # the parent never reads half a report


def _run_record(n: int) -> dict[str, Any]:
    return {"n": n, "stamps": dict(_STAMPS), "cpu": dict(_CPU), "marks": dict(_MARKS)}


async def _start_until_loop_end(app: zart.Zart, eid: str, n: int, size: int) -> Any:
    """Start (or take over) ``eid`` and return once its body has left the loop; the
    body then hangs until this process dies. Returns the handle (keep it referenced)."""
    global _ON_LOOP_END
    reached = asyncio.Event()

    async def hang() -> None:
        reached.set()
        await asyncio.Event().wait()  # never set: the process dies first

    _ON_LOOP_END = hang
    handle = await app.start(long_execution, n, size, True, execution_id=eid)
    await reached.wait()
    return handle


def child_first(app: zart.Zart, args: argparse.Namespace, eid: str, n: int) -> None:
    """Run the execution until it parks after its last step, then a fresh execution of
    one window (the same moment, the same database); report both runs' stamps.

    One execution running at a time per process: with two at once, zart groups their
    checkpoints into shared transactions, another write path."""

    async def main() -> None:
        global _ON_LOOP_END
        _ON_LOOP_END = None
        window = min(args.window, n // 2)
        # Warm-up, uncounted: first connections, codecs built on first use, and the WAL
        # grown to its steady size (appending to a new WAL costs more than rewriting
        # it), all of which would otherwise land in the first window only.
        plan(window, window)
        warmup = await app.start(
            long_execution, window, args.output_bytes, False, execution_id=f"{eid}-warmup"
        )
        await warmup.result()
        plan(n, args.window)
        started = time.perf_counter()
        _handle = await app.start(long_execution, n, args.output_bytes, True, execution_id=eid)
        await _parked(app, eid)
        report = {"long": {**_run_record(n), "wall": _MARKS["loop_end"] - started}}
        plan(window, window)
        fresh = await app.start(long_execution, window, args.output_bytes, False,
                                execution_id=f"{eid}-fresh")  # fmt: skip
        await fresh.result()
        report["fresh"] = _run_record(window)
        _write_report(args.report, report)

    asyncio.run(main())


async def _parked(app: zart.Zart, eid: str) -> None:
    """Until the execution waits for its event (its run in this process has ended)."""
    while True:
        status = app.status(eid)
        if status.status == "waiting":
            return
        if status.status not in ("pending", "running"):
            raise RuntimeError(f"{eid} is {status.status}: {status.error}")
        await asyncio.sleep(0.01)


def child_profile_first(app: zart.Zart, args: argparse.Namespace, eid: str, n: int) -> None:
    """A fresh execution with cProfile on during its first and last window only."""
    global _ON_MARK
    window = args.window
    profilers = {"early": cProfile.Profile(), "late": cProfile.Profile()}
    switches = {0: ("early", True), window: ("early", False), n - window: ("late", True)}
    switches[n] = ("late", False)

    def on_mark(k: int) -> None:
        if k in switches:
            name, on = switches[k]
            if on:
                profilers[name].enable()
            else:
                profilers[name].disable()
                profilers[name].dump_stats(str(args.report.with_suffix(f".{name}.prof")))

    plan(n, window)
    _ON_MARK = on_mark
    app.run(long_execution, n, args.output_bytes, False, execution_id=eid)
    _write_report(args.report, _run_record(n))


def child_resume_traced(app: zart.Zart, args: argparse.Namespace, eid: str, n: int) -> None:
    """Take ``eid`` over under tracemalloc; at the end of the replayed loop record the
    peak heap and the largest live allocations; die there (the execution stays open)."""
    plan(n, args.window)
    app.status(eid)  # connections and schema check are not part of the resume
    tracemalloc.start()
    started = time.perf_counter()

    async def main() -> None:
        _handle = await _start_until_loop_end(app, eid, n, args.output_bytes)
        current, peak = tracemalloc.get_traced_memory()
        # Not shown: tracemalloc's own blocks and this file's stamps (a fixed ~0.3 MB).
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
        )
        top = [
            {"size": stat.size, "count": stat.count, "where": _short(str(stat.traceback[0]))}
            for stat in snapshot.statistics("lineno")[: args.top]
        ]
        elapsed = _MARKS["loop_end"] - started
        report = {"current": current, "peak": peak, "top": top, "wall": elapsed}
        _write_report(args.report, report)
        _die()

    asyncio.run(main())


def child_resume_profiled(app: zart.Zart, args: argparse.Namespace, eid: str, n: int) -> None:
    """Take ``eid`` over under cProfile, up to the end of the replayed loop; die there."""
    plan(n, args.window)
    app.status(eid)
    profiler = cProfile.Profile()

    async def main() -> None:
        profiler.enable()
        _handle = await _start_until_loop_end(app, eid, n, args.output_bytes)
        profiler.disable()
        profiler.dump_stats(str(args.report.with_suffix(".prof")))
        _write_report(args.report, {})
        _die()

    asyncio.run(main())


def child_resume_final(app: zart.Zart, args: argparse.Namespace, eid: str, n: int) -> None:
    """Take ``eid`` over and run it to completion: wall time and peak RSS growth."""
    plan(n, args.window)
    app.status(eid)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs_before = _STEP_RUNS
    started = time.perf_counter()
    result = app.run(long_execution, n, args.output_bytes, True, execution_id=eid)
    ended = time.perf_counter()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {
        **_run_record(n),
        "started": started,
        "ended": ended,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "steps_rerun": _STEP_RUNS - runs_before,
        "result_ok": result == expected_total(n),
        "status": app.status(eid).status,
    }
    _write_report(args.report, report)


def _short(where: str) -> str:
    """A path relative to the checkout (or to site-packages) for reading."""
    for base in (str(ROOT) + os.sep, "site-packages" + os.sep):
        if base in where:
            return where.split(base, 1)[1]
    return where


CHILDREN = {
    "first": child_first,
    "profile-first": child_profile_first,
    "resume-traced": child_resume_traced,
    "resume-profiled": child_resume_profiled,
    "resume-final": child_resume_final,
}


def child_main(args: argparse.Namespace) -> int:
    eid, n = args.job.rsplit(":", 1)
    app = zart.Zart(args.url)
    app.ops_store.ensure_schema()
    CHILDREN[args.child](app, args, eid, int(n))
    app.close()
    return 0


# ---------------------------------------------------------------------------- parent


def run_child(
    args: argparse.Namespace, url: str, mode: str, job: tuple[str, int], directory: Path
) -> dict[str, Any]:
    """Run this script as a child in ``mode`` on one execution (id, steps); its JSON
    report (the child may end by SIGKILL)."""
    tag = f"{mode}-{job[0]}"
    report = directory / f"{tag}.json"
    log_path = directory / f"{tag}.log"
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", mode, "--url", url,
        "--job", f"{job[0]}:{job[1]}", "--report", str(report),
        "--output-bytes", str(args.output_bytes), "--window", str(args.window),
        "--top", str(args.top),
    ]  # fmt: skip
    proc = spawn(cmd, log_path)
    try:
        proc.wait(CHILD_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if not report.exists():
        tail = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{mode} child exited with {proc.returncode}, no report:\n{tail}")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def _ints(mapping: dict[str, float]) -> dict[int, float]:
    return {int(k): v for k, v in mapping.items()}


def window_us(record: dict[str, Any], lo: int, hi: int) -> tuple[float, float, float]:
    """(mean wall, median wall, mean CPU) microseconds per step of steps lo+1..hi."""
    stamps, cpu = _ints(record["stamps"]), _ints(record["cpu"])
    per_step = [stamps[k + 1] - stamps[k] for k in range(lo, hi)]
    span = hi - lo
    return (
        (stamps[hi] - stamps[lo]) / span * 1e6,
        statistics.median(per_step) * 1e6,
        (cpu[hi] - cpu[lo]) / span * 1e6,
    )


def tenths_us(record: dict[str, Any]) -> list[float]:
    stamps, n = _ints(record["stamps"]), record["n"]
    bounds = [n * k // 10 for k in range(11)]
    return [(stamps[b] - stamps[a]) / (b - a) * 1e6 for a, b in itertools.pairwise(bounds) if b > a]


def print_flatness(
    runs: dict[str, tuple[dict[str, Any], dict[str, Any] | None]], window: int
) -> dict[str, dict[str, float]]:
    """Per run (its record, and a fresh execution's timed right after it, if any): the
    first window, the last one, the fresh execution's first; side by side. Returns, per
    run, late/early, late/fresh and last/first tenth of the mean time per step."""
    n = next(iter(runs.values()))[0]["n"]
    w = min(window, n // 2)
    windows: dict[str, list[tuple[float, float, float]]] = {}
    for name, (record, fresh) in runs.items():
        windows[name] = [window_us(record, 0, w), window_us(record, n - w, n)]
        if fresh is not None:
            windows[name].append(window_us(fresh, 0, fresh["n"]))
    rows = len(next(iter(windows.values())))
    labels = [f"steps 1-{w:,}", f"steps {n - w + 1:,}-{n:,}", f"fresh execution, 1-{w:,}"]
    cells = "".join(f" {f'{name} us':>12} {'median':>7} {'cpu us':>7}" for name in runs)
    print(f"  {'':<26}{cells}")
    for row, label in enumerate(labels[:rows]):
        cells = "".join(f" {w[row][0]:>12.1f} {w[row][1]:>7.1f} {w[row][2]:>7.1f}"
                        for w in windows.values())  # fmt: skip
        print(f"  {label:<26}{cells}")
    ratios: dict[str, dict[str, float]] = {name: {} for name in runs}
    for row, label in ((0, "late/early"), (2, "late/fresh"))[: rows - 1]:
        per_run = {name: [b / a if a else float("nan") for a, b in zip(w[row], w[1], strict=True)]
                   for name, w in windows.items()}  # fmt: skip
        cells = "".join(f" {r[0]:>12.2f} {r[1]:>7.2f} {r[2]:>7.2f}" for r in per_run.values())
        print(f"  {label:<26}{cells}")
        for name, r in per_run.items():
            ratios[name][label] = r[0]
    for name, (record, _) in runs.items():
        tenths = tenths_us(record)
        # 10 % of the run each: steadier than 1,000-step windows on a busy machine.
        ratios[name]["tenths"] = tenths[-1] / tenths[0]
        print(
            f"  {name}: us/step in each tenth of the run: {' '.join(f'{v:.1f}' for v in tenths)}"
            f" (last/first {ratios[name]['tenths']:.2f})"
        )
    return ratios


def stored_outputs(app: zart.Zart, eid: str) -> tuple[int, int]:
    """(rows, sum of output lengths) of one execution's checkpoints."""
    query = text(
        "SELECT count(*), coalesce(sum(length(output)), 0) FROM zart_steps "
        "WHERE execution_id = :eid"
    )
    with app.ops_store.db.engine.connect() as conn:
        rows, size = conn.execute(query, {"eid": eid}).one()
    return int(rows), int(size)


def mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def function_name(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":  # a built-in
        return name
    return f"{_short(filename)}:{line}({name})"


def print_top_functions(stats: pstats.Stats, top: int, steps: int) -> None:
    """The ``top`` functions by own time, in microseconds per step."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    print(f"    {'own us/step':>11} {'cum us/step':>11} {'calls':>9}  function")
    for key, (_, calls, own, cum, _) in rows:
        print(
            f"    {own / steps * 1e6:>11.2f} {cum / steps * 1e6:>11.2f} {calls:>9,}  "
            f"{function_name(key)}"
        )


def print_window_profiles(base: Path, window: int, top: int) -> None:
    """cProfile of the first and the last window, and the functions that grew most."""
    early = pstats.Stats(str(base.with_suffix(".early.prof")))
    late = pstats.Stats(str(base.with_suffix(".late.prof")))
    for name, stats in (("first", early), ("last", late)):
        print(f"\n  cProfile, the {name} {window:,} steps (own time, top {top}):")
        print_top_functions(stats, top, window)
    early_raw: dict[Any, Any] = early.stats  # type: ignore[attr-defined]
    late_raw: dict[Any, Any] = late.stats  # type: ignore[attr-defined]
    grown = sorted(
        ((late_raw[k][2] - early_raw.get(k, (0, 0, 0.0))[2], k) for k in late_raw),
        reverse=True,
    )[: max(5, top // 2)]
    print("\n  own time that grew most from the first to the last window (us/step):")
    for delta, key in grown:
        before = early_raw.get(key, (0, 0, 0.0))[2] / window * 1e6
        after = late_raw[key][2] / window * 1e6
        print(f"    {before:>8.2f} -> {after:>8.2f} ({delta / window * 1e6:+.2f})  "
              f"{function_name(key)}")  # fmt: skip


def print_resumes(resumes: dict[int, dict[str, Any]]) -> None:
    header = (
        f"  {'steps':>9} {'outputs':>9} {'B/step':>7} {'resume s':>9} {'claim+load':>10} "
        f"{'replay':>8} {'finish':>8} {'us/step':>8} {'RSS +':>9} {'heap peak':>9} "
        f"{'peak/out':>8} {'re-run':>6}"
    )
    print(header)
    for n, r in sorted(resumes.items()):
        final, traced = r["final"], r["traced"]
        marks = final["marks"]
        wall = final["ended"] - final["started"]
        load = marks["body"] - final["started"]
        replay = marks["loop_end"] - marks["body"]
        finish = final["ended"] - marks["loop_end"]
        rss = (final["rss_after_kb"] - final["rss_before_kb"]) * 1024
        print(
            f"  {n:>9,} {mb(r['bytes']):>9} {r['bytes'] / max(r['rows'], 1):>7.0f} "
            f"{wall:>9.2f} {load:>10.2f} {replay:>8.2f} {finish:>8.3f} "
            f"{wall / n * 1e6:>8.1f} {mb(rss):>9} {mb(traced['peak']):>9} "
            f"{traced['peak'] / max(r['bytes'], 1):>8.2f} {final['steps_rerun']:>6}"
        )
    print(
        "  outputs: sum(length(output)) of the stored steps; claim+load: from app.run to the "
        "body's first line\n  (claim, one query for every checkpoint); RSS +: growth of "
        "peak RSS (getrusage); heap peak: tracemalloc\n  peak during a separate resume"
    )


def memory_verdict(resumes: dict[int, dict[str, Any]]) -> str:
    """Does resume memory grow with the number of steps, and by how much per step? The
    slope between the two sizes (fixed costs cancel out) against the stored bytes per step."""
    small, big = sorted(resumes)[0], sorted(resumes)[-1]
    peak = {n: resumes[n]["traced"]["peak"] for n in (small, big)}
    ratio = peak[big] / max(resumes[big]["bytes"], 1)
    stored = resumes[big]["bytes"] / big
    slope = (peak[big] - peak[small]) / (big - small) if big > small else peak[big] / big
    what = (
        f"peak heap {mb(peak[big])} = {ratio:.1f}x the stored outputs ({mb(resumes[big]['bytes'])})"
        f"; {slope:,.0f} B of heap per added step ({small:,} -> {big:,} steps) for "
        f"{stored:,.0f} B of stored output"
    )
    if slope > 0.5 * stored:
        return what + ": resume holds every step's record in memory at once"
    return what + ": bounded"


def print_allocations(top: list[dict[str, Any]], n: int) -> None:
    print(
        f"\n  largest live allocations when the replay of {n:,} steps left the loop (tracemalloc;"
        " this script's\n  own stamps, about 0.3 MB, left out):"
    )
    for row in top:
        print(f"    {mb(row['size']):>9} {row['count']:>9,} blocks  {row['where']}")


def measure_first(
    args: argparse.Namespace, label: str, url: str, bare_url: str, directory: Path
) -> list[str]:
    """The first run of every job in a child, the bare loop before it; summary lines."""
    n, w = args.steps, min(args.window, args.steps // 2)
    bare = BareLoop(bare_url, args.synchronous)
    try:
        bare.run("warmup", w, args.output_bytes, w)  # uncounted, as zart's (see child_first)
        bare_runs = (
            bare.run("bare", n, args.output_bytes, w),
            bare.run("fresh", w, args.output_bytes, w),
        )
    finally:
        bare.close()
    # N/10 steps too, only for the resume's memory at two sizes.
    first = [run_child(args, url, "first", job, directory) for job in jobs_of(n)][-1]
    long = first["long"]
    print(f"\n[{label}] first run, one process; the execution then parks (waits for an event)")
    print(
        f"  zart: {n:,} steps in {long['wall']:.2f} s ({n / long['wall']:,.0f} steps/s); "
        f"bare: {bare_runs[0]['wall']:.2f} s ({n / bare_runs[0]['wall']:,.0f} steps/s)"
    )
    ratios = print_flatness({"zart": (long, first["fresh"]), "bare": bare_runs}, w)
    print(
        "  fresh execution: a new execution of one window, run right after the last window "
        "(same moment,\n  same database size): late/fresh is the growth of the execution "
        "itself, with the machine's drift\n  and the database's size taken out\n"
        "  bare: the same fenced upsert, result JSON and argument hash per step, no zart code, "
        "its own database"
    )
    zart_r, bare_r = ratios["zart"], ratios["bare"]
    spread = max(max(bare_r.values()), 1 / min(bare_r.values()))
    if spread > NOISY_SPREAD:
        print(
            f"  warning: noisy machine: the bare loop's windows differ up to {spread:.1f}x; "
            "the tenths are steadier, or rerun when the machine is quiet"
        )
    return [
        f"{label}: late/early = {zart_r['late/early']:.2f} (target <= {FLAT_TARGET:.2f}), "
        f"late/fresh = {zart_r['late/fresh']:.2f}, last/first tenth = {zart_r['tenths']:.2f}; "
        f"the bare loop: {bare_r['late/early']:.2f}, {bare_r['late/fresh']:.2f}, "
        f"{bare_r['tenths']:.2f}"
    ]


def jobs_of(n: int) -> list[tuple[str, int]]:
    """The executions of a backend: N steps, and N/10 for a second point of memory."""
    return [(f"long-{m}", m) for m in sorted({max(n // 10, 2), n})]


def measure_resumes(
    args: argparse.Namespace, label: str, url: str, app: zart.Zart, directory: Path
) -> list[str]:
    """Resume each execution the first run left (N/10 and N steps); summary lines."""
    n = args.steps
    resumes: dict[int, dict[str, Any]] = {}
    for eid, m in jobs_of(n):
        rows, size = stored_outputs(app, eid)
        app.send_event(eid, "finish")  # wakes it: the next process to run it claims it
        traced = run_child(args, url, "resume-traced", (eid, m), directory)
        if args.profile and m == n:
            run_child(args, url, "resume-profiled", (eid, m), directory)
        final = run_child(args, url, "resume-final", (eid, m), directory)
        if not final["result_ok"] or final["status"] != "completed":
            raise RuntimeError(
                f"resumed {eid} ended {final['status']}, result ok: {final['result_ok']}"
            )
        resumes[m] = {"rows": rows, "bytes": size, "traced": traced, "final": final}
    print(f"\n[{label}] resume: a fresh process takes the execution over and replays every step")
    print_resumes(resumes)
    print(f"\n[{label}] replay of the recorded steps (the resume that completed it)")
    replayed = print_flatness({"replay": (resumes[n]["final"], None)}, args.window)
    replay_ratio = replayed["replay"]["late/early"]
    print_allocations(resumes[n]["traced"]["top"], n)
    final = resumes[n]["final"]
    return [
        f"{label}: resume of {n:,} steps {final['ended'] - final['started']:.2f} s (replay "
        f"late/early {replay_ratio:.2f}); " + memory_verdict(resumes)
    ]


def measure(
    args: argparse.Namespace, label: str, urls: tuple[str, str], app: zart.Zart, directory: Path
) -> list[str]:
    """Both measurements on one backend (zart's database, the bare loop's); summary lines."""
    summary = measure_first(args, label, urls[0], urls[1], directory)
    summary += measure_resumes(args, label, urls[0], app, directory)
    if args.profile:
        print_profiles(args, urls[0], label, directory)
    return summary


def print_profiles(args: argparse.Namespace, url: str, label: str, directory: Path) -> None:
    n, window = args.steps, min(args.window, args.steps // 2)
    eid = f"long-profile-{n}"
    run_child(args, url, "profile-first", (eid, n), directory)
    print(f"\n[{label}] --profile: one more first run of {n:,} steps, cProfile on for two windows")
    print_window_profiles(directory / f"profile-first-{eid}.json", window, args.top)
    resumed = directory / f"resume-profiled-long-{n}.prof"
    print(f"\n[{label}] --profile: a resume of {n:,} steps under cProfile (to the loop's end)")
    print_top_functions(pstats.Stats(str(resumed)), args.top, n)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=100_000, help="steps (100000)")
    parser.add_argument(
        "--output-bytes", type=int, default=200, help="JSON size of each step's result (200)"
    )
    parser.add_argument(
        "--synchronous",
        type=str.upper,
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite's synchronous level (NORMAL: no fsync per commit, the quick default)",
    )
    parser.add_argument(
        "--pg-url",
        nargs="?",
        const=os.environ.get("ZART_BENCH_PG_URL", DEFAULT_PG_URL),
        default=None,
        help="also PostgreSQL, in a fresh database created on this server and dropped "
        f"(the flag alone: $ZART_BENCH_PG_URL, else {DEFAULT_PG_URL})",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--window", type=int, default=1000, help="steps per window (1000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the windows and a resume")
    parser.add_argument("--top", type=int, default=15, help="rows of profiles/allocations (15)")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite file goes")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    for internal in ("--child", "--url", "--job"):
        parser.add_argument(internal, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 20 or args.window < 1 or args.output_bytes < 0:
        parser.error("--steps must be at least 20, --window at least 1")
    if args.skip_sqlite and not args.pg_url:
        parser.error("--skip-sqlite needs --pg-url")
    return args


def run(args: argparse.Namespace, directory: Path) -> None:
    print(versions())
    print(
        f"one execution of {args.steps:,} steps, each returning a dict[str, str] of "
        f"~{args.output_bytes} bytes of JSON; windows of {min(args.window, args.steps // 2):,} "
        "steps"
    )
    summary: list[str] = []
    if not args.skip_sqlite:
        url = sqlite_url(directory / "long.db", args.synchronous)
        with zart.Zart(url) as app:
            app.ops_store.ensure_schema()
            print(
                f"sqlite: {sqlite_pragmas(app.ops_store.db.engine)}, files in {directory} "
                f"({filesystem_of(directory)})"
            )
            bare_url = sqlite_url(directory / "bare.db", args.synchronous)
            summary += measure(args, "sqlite", (url, bare_url), app, directory)
    if args.pg_url:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(scratch_database(args.pg_url, "zart_long"))
            bare_url = stack.enter_context(scratch_database(args.pg_url, "zart_long_bare"))
            app = stack.enter_context(zart.Zart(url))
            app.ops_store.ensure_schema()
            print(f"\npostgres: {pg_server_info(url)}; fresh databases, dropped afterwards")
            summary += measure(args, "postgres", (url, bare_url), app, directory)
    print()
    for line in summary:
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    # SIGTERM too runs the clean-up below (children, scratch databases, temp dir).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    base = args.dir if args.dir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="zart-long-", dir=base)).resolve()
    try:
        run(args, directory)
    finally:
        if args.keep:
            print(f"logs and database kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
