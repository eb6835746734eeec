"""Recovery storm: every worker dies at once half-way through 10,000 executions; how
long the restarted pool takes to drain the rest, against a run without a crash.

    python benchmarks/recovery_storm.py [--executions 10000] [--workers 2]
                                        [--concurrency 32] [--lease-seconds 5]
                                        [--pg-url [URL]] [--skip-sqlite]

Per backend (an SQLite file in a temp dir, WAL, ``synchronous=NORMAL`` unless
``--synchronous FULL``; PostgreSQL too with ``--pg-url``, in databases the script
creates and drops), each phase on a fresh database:

* **no crash.** ``--executions`` executions of a durable of 3 quick steps are created
  with ``app.submit``; then a pool of ``--workers`` ``zart worker`` processes starts and
  the clock runs until the last one is completed (the completion time of every execution
  is read back, so the time to complete any count R is known).
* **storm.** The same, but once about half are completed every worker gets SIGKILL:
  the executions they were running stay ``running``, their leases held by dead
  processes. A new pool starts; the script times the drain of the R executions left
  and sets it against the no-crash run's time for its first R. Meanwhile it samples,
  every 100 ms, the running executions and whose they are (a dead or a live worker),
  and afterwards counts the executions taken over more than once (``recoveries > 1``:
  lease flapping), those taken over from a live worker, the steps whose attempt died
  with a worker, failures and wrong results.

On one host zart can take the executions of a dead process over at once (the owner-pid
check), without waiting for their lease; the worker logs say which way each takeover
went, and ``--lease-seconds`` (default 5) bounds the wait otherwise.

The script reports; it never fails on a missed target (exit status 0 unless something
errors). Every worker it started is killed at the end, on error too (and, on Linux, if
the script itself dies).
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
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import _storm_app
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

import zart

APP_FILE = HERE / "_storm_app.py"
# Why a worker took an execution over, as zart logs it ("taking over execution ... (why)").
TAKEOVER_REASONS = ("its process is gone", "its lease expired")
# Every worker process this script started, so that all of them die at the end.
STARTED: list[subprocess.Popen[bytes]] = []

# ---------------------------------------------------------------------------- workers


class Pool:
    """``--workers`` ``zart worker`` processes on one database."""

    def __init__(self, args: argparse.Namespace, url: str, log_dir: Path, tag: str) -> None:
        self.args, self.url, self.log_dir, self.tag = args, url, log_dir, tag
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> float:
        """Start the processes; the wall-clock time they were started at."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.pop("ZART_DATABASE_URL", None)
        started = time.time()
        for i in range(self.args.workers):
            cmd = [
                sys.executable, "-m", "zart", "--database-url", self.url, "worker", str(APP_FILE),
                "--concurrency", str(self.args.concurrency),
                "--lease-seconds", str(self.args.lease_seconds),
                "--poll-interval", str(self.args.poll_interval),
            ]  # fmt: skip
            proc = spawn(cmd, self.log_path(i), env)
            STARTED.append(proc)
            self.procs.append(proc)
        return started

    def log_path(self, i: int) -> Path:
        return self.log_dir / f"{self.tag}-worker-{i}.log"

    def kill(self) -> set[int]:
        """SIGKILL every process (the storm); their pids."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait()
        return {proc.pid for proc in self.procs}

    def stop(self) -> None:
        """SIGTERM (graceful: idle workers exit at once), SIGKILL after 30 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check_alive(self) -> None:
        """Raise, with a worker's log, if a worker exited on its own (it cannot import
        the app, cannot reach the database...): the phase would never end."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                tail = self.log_path(i).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {proc.pid} exited with {proc.returncode}:\n{tail}")

    def log_count(self, needle: str) -> int:
        return sum(
            self.log_path(i).read_text(errors="replace").count(needle)
            for i in range(len(self.procs))
        )


def kill_all() -> None:
    """Whatever happened: no worker this script started outlives it."""
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
    for proc in STARTED:
        with contextlib.suppress(Exception):
            proc.wait(10)


# ---------------------------------------------------------------------------- the database


class Probe:
    """Direct SQL on zart's tables (a plain driver connection, not zart): counts,
    running executions' owners, and the rows at the end."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            path = url.split("///", 1)[1].split("?")[0]
            self.conn: Any = sqlite3.connect(path, timeout=30, isolation_level=None)
        else:
            import psycopg

            self.conn = psycopg.connect(libpq(url.partition("?")[0]), autocommit=True)

    def query(self, sql: str) -> list[Any]:
        return list(self.conn.execute(sql).fetchall())

    def counts(self) -> dict[str, int]:
        rows = self.query("SELECT status, count(*) FROM zart_executions GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    def running_owners(self) -> list[str]:
        rows = self.query("SELECT lease_owner FROM zart_executions WHERE status = 'running'")
        return [str(owner) for (owner,) in rows]

    def close(self) -> None:
        self.conn.close()


def owner_pid(token: str) -> int:
    """The pid in a lease token ``host|pid|start|nonce`` (-1 if it is not one)."""
    parts = token.split("|")
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else -1


@dataclass
class Sample:
    at: float  # seconds since the pool started
    completed: int
    running: int
    running_dead: int  # held by a killed worker
    started: float  # wall-clock time the pool was started at


def watch(
    probe: Probe,
    pool: Pool,
    done: Callable[[dict[str, int]], bool],
    dead: set[int],
    args: argparse.Namespace,
) -> list[Sample]:
    """Start ``pool``; sample every ``--sample`` seconds until ``done(counts)``; the
    samples, timed from the pool's start (``samples[0].started``)."""
    since = pool.start()
    samples: list[Sample] = []
    while True:
        tick = time.monotonic()
        pool.check_alive()
        owners = probe.running_owners()
        counts = probe.counts()
        running_dead = sum(owner_pid(o) in dead for o in owners)
        at = time.time() - since
        samples.append(Sample(at, counts.get("completed", 0), len(owners), running_dead, since))
        if done(counts):
            return samples
        if at > args.timeout:
            raise RuntimeError(f"not done after {args.timeout:.0f} s: {counts}")
        time.sleep(max(0.0, args.sample - (time.monotonic() - tick)))


@dataclass
class Outcome:
    """What the database says once every execution has finished."""

    finished: list[float]  # finished_at of the completed executions, sorted
    finished_at: dict[str, float]  # the same, by execution id
    statuses: dict[str, int]
    wrong: int
    recoveries: dict[str, int]  # execution id -> recoveries, for those recovered
    interrupted_steps: int  # steps whose attempt died with a worker (attempts > 1)


def outcome(probe: Probe) -> Outcome:
    rows = probe.query("SELECT id, status, result, recoveries, finished_at FROM zart_executions")
    finished_at: dict[str, float] = {}
    statuses: dict[str, int] = {}
    recovered: dict[str, int] = {}
    wrong = 0
    for eid, status, result, recoveries, finished in rows:
        statuses[status] = statuses.get(status, 0) + 1
        if status == "completed":
            finished_at[str(eid)] = float(finished)
            job = int(str(eid).rsplit("-", 1)[1])  # ids are storm-<job>
            wrong += json.loads(result) != _storm_app.expected(job)
        if recoveries:
            recovered[str(eid)] = int(recoveries)
    (interrupted,) = probe.query("SELECT count(*) FROM zart_steps WHERE attempts > 1")[0]
    return Outcome(
        sorted(finished_at.values()), finished_at, statuses, wrong, recovered, int(interrupted)
    )


# ---------------------------------------------------------------------------- phases


def submit_all(url: str, executions: int) -> float:
    """Create every execution with ``app.submit`` (one transaction each); seconds taken."""
    started = time.perf_counter()
    with zart.Zart(url) as app:
        for job in range(executions):
            handle = app.submit(_storm_app.storm_job, job, execution_id=f"storm-{job:06d}")
            if not handle.created:
                raise RuntimeError(f"storm-{job:06d} existed already: not a fresh database")
    return time.perf_counter() - started


@dataclass
class NoCrash:
    submit_seconds: float
    samples: list[Sample]
    result: Outcome
    started: float  # wall-clock start of the pool

    def time_for(self, count: int) -> float:
        """Seconds from the pool's start until ``count`` executions were completed."""
        return self.result.finished[count - 1] - self.started


def no_crash(args: argparse.Namespace, url: str, log_dir: Path) -> NoCrash:
    submitted = submit_all(url, args.executions)
    probe = Probe(url)
    pool = Pool(args, url, log_dir, "no-crash")
    try:
        samples = watch(probe, pool, lambda c: _finished(c) >= args.executions, set(), args)
        return NoCrash(submitted, samples, outcome(probe), samples[0].started)
    finally:
        pool.stop()
        probe.close()


def _finished(counts: dict[str, int]) -> int:
    return sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled"))


@dataclass
class Storm:
    submit_seconds: float
    killed_at_completed: int
    at_kill: dict[str, int]  # statuses right after the kill
    orphans: set[str]  # running, held by a killed worker
    restarted: float  # wall-clock start of the second pool
    samples: list[Sample]  # during the drain, since the restart
    result: Outcome
    takeovers_logged: dict[str, int]
    errors_logged: int = 0
    dead: set[int] = field(default_factory=set)


def storm(args: argparse.Namespace, url: str, log_dir: Path) -> Storm:
    submitted = submit_all(url, args.executions)
    probe = Probe(url)
    first, second = Pool(args, url, log_dir, "storm-1"), Pool(args, url, log_dir, "storm-2")
    try:
        half = args.executions // 2
        watch(probe, first, lambda c: c.get("completed", 0) >= half, set(), args)
        dead = first.kill()
        at_kill = probe.counts()
        orphans = {
            str(eid)
            for (eid,) in probe.query("SELECT id FROM zart_executions WHERE status = 'running'")
        }
        samples = watch(probe, second, lambda c: _finished(c) >= args.executions, dead, args)
        second.stop()
        return Storm(
            submitted, at_kill.get("completed", 0), at_kill, orphans, samples[0].started, samples,
            outcome(probe), {why: second.log_count(f"({why})") for why in TAKEOVER_REASONS},
            second.log_count("Traceback") + first.log_count("Traceback"), dead,
        )  # fmt: skip
    finally:
        first.kill()
        second.stop()
        probe.close()


# ---------------------------------------------------------------------------- report


def report_no_crash(args: argparse.Namespace, base: NoCrash) -> None:
    n = args.executions
    seconds = base.time_for(len(base.result.finished))
    print(
        f"  submit: {n:,} app.submit calls in {base.submit_seconds:.1f} s "
        f"({n / base.submit_seconds:,.0f}/s)\n"
        f"  no crash: {len(base.result.finished):,} completed in {seconds:.2f} s after the pool "
        f"started ({len(base.result.finished) / seconds:,.0f}/s); max running "
        f"{max(s.running for s in base.samples)} (slots: {args.workers * args.concurrency}); "
        f"recovered {len(base.result.recoveries)}; {_problems(base.result)}"
    )


def _problems(result: Outcome) -> str:
    others = {k: v for k, v in result.statuses.items() if k != "completed"}
    return f"not completed: {others or 0}, wrong results: {result.wrong}"


def report_storm(args: argparse.Namespace, base: NoCrash, run: Storm) -> str:
    """Print the storm's figures; return the summary line."""
    n, slots = args.executions, args.workers * args.concurrency
    remaining = n - run.killed_at_completed
    drain = run.result.finished[-1] - run.restarted
    reference = base.time_for(remaining)
    recovered = run.result.recoveries
    once, flapping = (
        sum(r == 1 for r in recovered.values()),
        sum(r > 1 for r in recovered.values()),
    )
    from_live = sum(eid not in run.orphans for eid in recovered)
    orphans_gone = next((s.at for s in run.samples if s.running_dead == 0), float("nan"))
    done = run.result.finished_at
    orphans_done = sorted(done[e] - run.restarted for e in run.orphans if e in done) or [0.0]
    drained = sorted(t - run.restarted for t in run.result.finished if t > run.restarted)
    max_running = max(s.running for s in run.samples)
    max_live = max(s.running - s.running_dead for s in run.samples)
    logged = ", ".join(f"{count} as {why!r}" for why, count in run.takeovers_logged.items())
    at_kill = ", ".join(f"{v:,} {k}" for k, v in sorted(run.at_kill.items()))
    print(
        f"  storm: {args.workers} workers SIGKILLed at {run.killed_at_completed:,} completed "
        f"({at_kill}); {len(run.orphans)} left running by dead processes\n"
        f"  restart: the {remaining:,} left completed in {drain:.2f} s; the no-crash run's "
        f"first {remaining:,} took {reference:.2f} s: ratio {drain / reference:.2f}\n"
        f"  orphans: none left running by a dead worker {orphans_gone:.1f} s after the restart "
        f"(sampled every {args.sample * 1000:.0f} ms); takeovers logged: {logged}\n"
        f"  orphans completed {orphans_done[0]:.1f} to {orphans_done[-1]:.1f} s after the restart"
        f" (the oldest ones); all executions finished after the restart: median "
        f"{drained[len(drained) // 2]:.1f} s\n"
        f"  recoveries: {len(recovered)} executions taken over ({once} once, {flapping} more "
        f"than once = lease flapping; {from_live} from a live worker); "
        f"{run.result.interrupted_steps} steps whose attempt died with a worker\n"
        f"  running during the restart: max {max_running} (of which live {max_live}; slots "
        f"{slots}); {_problems(run.result)}; tracebacks in worker logs: {run.errors_logged}"
    )
    print_timeline(run.samples)
    return (
        f"drain after the storm / no crash ({remaining:,} executions) = {drain / reference:.2f}; "
        f"lease flapping (recoveries > 1): {flapping}; taken from live workers: {from_live}; "
        f"max running during the restart {max_running} (live {max_live}, slots {slots}); "
        f"{len(run.orphans)} orphans held by dead workers until +{orphans_gone:.1f} s "
        f"({run.takeovers_logged[TAKEOVER_REASONS[1]]} taken after their lease expired)"
    )


def print_timeline(samples: list[Sample], points: int = 24) -> None:
    """About ``points`` samples of the restart, evenly spaced in time."""
    end = samples[-1].at
    shown, next_at = [], 0.0
    for sample in samples:
        if sample.at >= next_at or sample is samples[-1]:
            shown.append(sample)
            next_at = sample.at + end / points
    print("  restart timeline (s: completed / running / of which held by dead workers):")
    cells = [f"{s.at:.1f}: {s.completed:,}/{s.running}/{s.running_dead}" for s in shown]
    for i in range(0, len(cells), 6):
        print("    " + "   ".join(cells[i : i + 6]))


def measure(args: argparse.Namespace, label: str, urls: Iterator[str], log_dir: Path) -> str:
    """Both phases on one backend, each on a fresh database (``urls`` yields them)."""
    base = no_crash(args, next(urls), log_dir)
    report_no_crash(args, base)
    run = storm(args, next(urls), log_dir)
    return f"{label}: " + report_storm(args, base, run)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--executions", type=int, default=10_000, help="executions (10000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    # 32 slots a worker: a crash then leaves dozens of executions held by dead processes.
    parser.add_argument("--concurrency", type=int, default=32, help="--concurrency per worker (32)")
    parser.add_argument(
        "--lease-seconds", type=float, default=5.0, help="the workers' --lease-seconds (5)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="the workers' --poll-interval (0.1)"
    )
    parser.add_argument(
        "--synchronous",
        type=str.upper,
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite's synchronous level (NORMAL, the quick default; FULL is zart's)",
    )
    parser.add_argument(
        "--pg-url",
        nargs="?",
        const=os.environ.get("ZART_BENCH_PG_URL", DEFAULT_PG_URL),
        default=None,
        help="also PostgreSQL, in fresh databases created on this server and dropped "
        f"(the flag alone: $ZART_BENCH_PG_URL, else {DEFAULT_PG_URL})",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--sample", type=float, default=0.1, help="sampling period, s (0.1)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase, s (900)")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, files)")
    args = parser.parse_args(argv)
    if args.executions < 2 or args.workers < 1 or args.concurrency < 1:
        parser.error("--executions must be at least 2, --workers and --concurrency at least 1")
    if args.skip_sqlite and not args.pg_url:
        parser.error("--skip-sqlite needs --pg-url")
    return args


def sqlite_urls(args: argparse.Namespace, directory: Path) -> Iterator[str]:
    for phase in ("no-crash", "storm"):
        url = sqlite_url(directory / f"{phase}.db", args.synchronous)
        with zart.Zart(url) as app:
            app.ops_store.ensure_schema()
            if phase == "no-crash":
                print(f"sqlite: {sqlite_pragmas(app.ops_store.db.engine)}, files in {directory} "
                      f"({filesystem_of(directory)})")  # fmt: skip
        yield url


def pg_urls(args: argparse.Namespace, stack: contextlib.ExitStack) -> Iterator[str]:
    for phase in ("nocrash", "storm"):
        url = stack.enter_context(scratch_database(args.pg_url, f"zart_storm_{phase}"))
        if phase == "nocrash":
            print(f"postgres: {pg_server_info(url)}; fresh databases, dropped afterwards")
        yield url


def run(args: argparse.Namespace, directory: Path) -> None:
    print(versions())
    print(
        f"{args.executions:,} executions of {_storm_app.storm_job.name} ({_storm_app.STEPS} "
        f"steps each); {args.workers} `zart worker` processes, --concurrency {args.concurrency}"
        f", --lease-seconds {args.lease_seconds:g}, --poll-interval {args.poll_interval:g}"
    )
    summary: list[str] = []
    if not args.skip_sqlite:
        print()
        summary.append(measure(args, "sqlite", sqlite_urls(args, directory), directory))
    if args.pg_url:
        print()
        with contextlib.ExitStack() as stack:
            summary.append(measure(args, "postgres", pg_urls(args, stack), directory))
    print()
    for line in summary:
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM too runs the clean-up below (workers, scratch databases, temp dir).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    base = args.dir if args.dir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="zart-storm-", dir=base)).resolve()
    try:
        run(args, directory)
    finally:
        kill_all()
        if args.keep:
            print(f"logs and databases kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
