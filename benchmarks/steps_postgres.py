"""Checkpoint and execution throughput of zart on PostgreSQL, against a bare psycopg loop.

    python benchmarks/steps_postgres.py [--steps 2000] [--repeat 3] [--executions 500]
                                        [--workers 1,2,4] [--admin-url URL]

Creates a database of its own on the server of ``--admin-url`` (default
``$ZART_BENCH_PG_URL``, else ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
and drops it at the end. Measures, in one run, on the same server:

* **steps/s, one worker.** A ``zart.Worker`` (concurrency 1) in this process runs one
  execution of a ``@durable`` body awaiting N ``@step`` calls (each returns an int),
  timed from the moment the execution is inserted until it is completed, the engine
  already up. Against it, a bare psycopg loop doing one ``INSERT`` + ``COMMIT`` per step
  of a comparable row (execution id, step name, small JSON text) into an ordinary table:
  the floor any durable runtime on PostgreSQL pays. Interleaved, ``--repeat`` runs each,
  after one warm-up run of each; medians and ratios of medians are printed, with the
  paired (same round) and best-run ratios, which are steadier on a noisy machine.
* **executions/s, 1, 2 and 4 worker processes.** ``zart worker`` subprocesses (default
  ``--concurrency 8`` each) are started and left idle; then ``--executions`` short
  executions (3 steps each) are inserted in one transaction, and the clock runs until
  the last one is completed.
* **DBOS**, when ``import dbos`` works: the same N-step loop as a DBOS workflow of
  ``@DBOS.step()`` calls, with its system database on the same server.

The script reports; it never fails on a missed target (exit status 0 unless something
errors). Target: zart at 50 % or more of the bare loop's steps/s.
"""

from __future__ import annotations

# isort: off
import _benchpath  # noqa: F401  (first: keeps concurrent.py from shadowing the stdlib)
# isort: on

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Benchmark the checkout this file lives in, installed or not.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy  # noqa: E402

import zart  # noqa: E402
from zart import durable, step  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BARE_RATIO_TARGET = 0.50
NOISY_SPREAD = 1.5
SHORT_STEPS = 3
BARE = "bare psycopg (INSERT+COMMIT)"
ZART = "zart (one worker)"
DBOS_ASYNC = "DBOS (async workflow)"
DBOS_SYNC = "DBOS (sync workflow)"


# ---------------------------------------------------------------------------- durables


@step("bench-step-{i}")
async def bench_step(i: int) -> int:
    return i


@durable("bench-pg-steps")
async def loop_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await bench_step(i)
    return total


@step("short-{i}")
async def short_step(i: int) -> int:
    return i * 2


@durable("bench-pg-short")
async def short_job(n: int) -> int:
    total = 0
    for i in range(n):
        total += await short_step(i)
    return total


def expected_total(n: int) -> int:
    return n * (n - 1) // 2


# ---------------------------------------------------------------------------- databases


def libpq(url: str) -> str:
    """libpq form of a SQLAlchemy postgresql(+psycopg):// URL."""
    return "postgresql://" + url.split("://", 1)[1]


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """CREATE DATABASE name; yield its URL; terminate its sessions and DROP it."""
    with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def server_info(url: str) -> str:
    with psycopg.connect(libpq(url)) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('server_version', 'fsync', 'synchronous_commit', 'max_connections')"
            ).fetchall()
        )
    return (
        f"PostgreSQL {settings.get('server_version')}, fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}, "
        f"max_connections={settings.get('max_connections')}"
    )


# ---------------------------------------------------------------------------- steps/s


class BareLoop:
    """One INSERT + COMMIT per step on an ordinary (WAL-logged) table."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(libpq(url))
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bare_steps (execution_id VARCHAR(255) NOT NULL, "
            "step_name VARCHAR(512) NOT NULL, output TEXT, PRIMARY KEY (execution_id, step_name))"
        )
        self.conn.commit()

    def run(self, n: int, execution_id: str) -> float:
        conn = self.conn
        execute = conn.execute
        started = time.perf_counter()
        for i in range(n):
            execute(
                "INSERT INTO bare_steps (execution_id, step_name, output) VALUES (%s, %s, %s)",
                (execution_id, f"bench-step-{i}", str(i)),
            )
            conn.commit()
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


class ZartLoop:
    """One execution of the N-step loop, run by a Worker (concurrency 1) in this process."""

    def __init__(self, url: str) -> None:
        self.app = zart.Zart(url)
        self.app.ops_store.ensure_schema()  # the engine is up: nothing below pays for it

    def run(self, n: int, execution_id: str) -> float:
        worker = self.app.worker(concurrency=1, durable_names=[loop_steps.name], poll_interval=0.01)
        started = time.perf_counter()
        self.app.submit(loop_steps, n, execution_id=execution_id)
        asyncio.run(worker.run_async(until_idle=True))
        elapsed = time.perf_counter() - started
        result = self.app.result(execution_id)
        if result != expected_total(n):
            raise RuntimeError(f"zart loop: got {result!r}, expected {expected_total(n)}")
        return elapsed

    def close(self) -> None:
        self.app.close()


class DbosLoop:
    """The same loop as DBOS workflows (async, like zart's body, and sync) on PostgreSQL."""

    def __init__(self, url: str) -> None:
        from dbos import DBOS, DBOSConfig, SetWorkflowID

        self.DBOS = DBOS
        self.SetWorkflowID = SetWorkflowID

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
            "system_database_url": libpq(url),
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()

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


def try_dbos(url: str) -> tuple[DbosLoop | None, str]:
    try:
        import dbos
    except ImportError:
        return None, "DBOS not installed (pip install dbos) — skipped"
    version = getattr(dbos, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("dbos")
    return DbosLoop(url), f"dbos {version}"


def fmt_rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def measure_steps(
    args: argparse.Namespace, measures: dict[str, Callable[[str], float]]
) -> dict[str, list[float]]:
    names = list(measures)
    for name, measure in measures.items():  # warm-up: connections, prepared statements
        measure(f"warmup-{names.index(name)}-{uuid.uuid4().hex[:6]}")
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(measures[name](f"run-{r}-{names.index(name)}"))
    return results


def print_steps(n: int, results: dict[str, list[float]]) -> None:
    bare_median = statistics.median(results[BARE])
    header = (
        f"{'loop':<30} {'steps/s':>9} {'us/step':>8} {'vs bare':>8} {'best':>8}  runs (steps/s)"
    )
    print(header)
    print("-" * len(header))
    for name, times in results.items():
        med = statistics.median(times)
        runs = " ".join(fmt_rate(n, t) for t in times)
        print(
            f"{name:<30} {fmt_rate(n, med):>9} {med / n * 1e6:>8.0f} {bare_median / med:>8.2f} "
            f"{fmt_rate(n, min(times)):>8}  {runs}"
        )
    print("medians of the runs; vs bare: steps/s relative to the bare loop; best: fastest run\n")


# ---------------------------------------------------------------------------- executions/s


def start_workers(url: str, count: int, concurrency: int, log_dir: Path) -> list[Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("ZART_DATABASE_URL", None)
    procs = []
    for i in range(count):
        log_path = log_dir / f"worker-{count}-{i}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "zart", "--database-url", url, "worker",
                    str(Path(__file__).resolve()), "--concurrency", str(concurrency),
                    "--poll-interval", "0.05", "--lease-seconds", "30",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(ROOT),
            )  # fmt: skip
        procs.append((proc, log_path))
    deadline = time.monotonic() + 60
    for proc, log_path in procs:
        while "worker started" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
    return procs


def stop_workers(procs: list[Any]) -> None:
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, log_path in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            print(f"warning: a worker exited with {proc.returncode}; see {log_path}")


def measure_executions(url: str, workers: int, executions: int, concurrency: int) -> float:
    """Seconds from inserting ``executions`` pending executions to the last one completed."""
    from zart._store import _schema

    app = zart.Zart(url)
    app.ops_store.ensure_schema()
    batch = uuid.uuid4().hex[:8]
    now = time.time()
    input_json = short_job.args_codec.dumps((SHORT_STEPS,), {})
    rows = [
        dict(
            id=f"short-{batch}-{i}",
            durable_name=short_job.name,
            status="pending",
            input=input_json,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        for i in range(executions)
    ]
    with tempfile.TemporaryDirectory(prefix="zart-bench-workers-") as log_dir:
        procs = start_workers(url, workers, concurrency, Path(log_dir))
        try:
            with psycopg.connect(libpq(url), autocommit=True) as watch:
                started = time.perf_counter()
                with app.ops_store.db.engine.begin() as conn:
                    conn.execute(sqlalchemy.insert(_schema.executions), rows)
                while True:
                    row = watch.execute(
                        "SELECT count(*) FROM zart_executions WHERE id LIKE %s "
                        "AND status = 'completed'",
                        (f"short-{batch}-%",),
                    ).fetchone()
                    if row is not None and row[0] >= executions:
                        break
                    if time.perf_counter() - started > 600:
                        raise RuntimeError(f"only {row} executions completed in 600 s")
                    time.sleep(0.01)
                elapsed = time.perf_counter() - started
        finally:
            stop_workers(procs)
    bad = [
        r.id
        for r in app.list(durable_name=short_job.name, limit=executions * 10)
        if r.id.startswith(f"short-{batch}-")
        and app.result(r.id) != SHORT_STEPS * (SHORT_STEPS - 1)
    ]
    app.close()
    if bad:
        raise RuntimeError(f"wrong results: {bad[:5]}")
    return elapsed


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=2000, help="steps per loop (2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each loop (3)")
    parser.add_argument("--executions", type=int, default=500, help="short executions (500)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts (1,2,4)")
    parser.add_argument("--concurrency", type=int, default=8, help="--concurrency per worker")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("ZART_BENCH_PG_URL", DEFAULT_ADMIN_URL),
        help="a database URL on the server to use; the benchmark creates its own database",
    )
    parser.add_argument("--no-dbos", action="store_true", help="skip DBOS even if installed")
    parser.add_argument("--skip-executions", action="store_true", help="steps/s only")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeat < 1 or args.executions < 1:
        parser.error("--steps, --repeat and --executions must be at least 1")
    args.worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = f"zart_bench_{uuid.uuid4().hex[:10]}"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_database(args.admin_url, name))
        dbos_loop: DbosLoop | None = None
        dbos_note = "DBOS skipped (--no-dbos)"
        if not args.no_dbos:
            dbos_url = stack.enter_context(scratch_database(args.admin_url, name + "_dbos"))
            dbos_loop, dbos_note = try_dbos(dbos_url)
            if dbos_loop is not None:
                stack.callback(dbos_loop.close)
        print(
            f"python {platform.python_version()}, psycopg {psycopg.__version__}, "
            f"SQLAlchemy {sqlalchemy.__version__}, zart {zart.__version__}; {dbos_note}"
        )
        print(f"{server_info(url)}; database {name} (dropped afterwards)\n")

        bare = BareLoop(url)
        stack.callback(bare.close)
        zloop = ZartLoop(url)
        stack.callback(zloop.close)
        n = args.steps
        measures: dict[str, Callable[[str], float]] = {
            BARE: lambda eid: bare.run(n, eid),
            ZART: lambda eid: zloop.run(n, eid),
        }
        if dbos_loop is not None:
            loop = dbos_loop
            measures[DBOS_ASYNC] = lambda eid: loop.run_async(n, eid)
            measures[DBOS_SYNC] = lambda eid: loop.run_sync(n, eid)
        print(f"steps/s: {n} steps per loop, {args.repeat} runs each, interleaved")
        results = measure_steps(args, measures)
        print_steps(n, results)

        rates: dict[int, float] = {}
        if not args.skip_executions:
            print(
                f"executions/s: {args.executions} executions of {SHORT_STEPS} steps, "
                f"`zart worker --concurrency {args.concurrency}` processes"
            )
            for count in args.worker_counts:
                seconds = measure_executions(url, count, args.executions, args.concurrency)
                rates[count] = args.executions / seconds
                print(
                    f"  {count} worker process{'es' if count > 1 else '  '}: "
                    f"{rates[count]:7,.0f} executions/s ({seconds:.2f} s, "
                    f"{rates[count] * (SHORT_STEPS + 1):,.0f} checkpoints+results/s)"
                )
            print()

        bare_times, zart_times = results[BARE], results[ZART]
        bare_median, zart_median = statistics.median(bare_times), statistics.median(zart_times)
        if max(bare_times) / min(bare_times) > NOISY_SPREAD:
            print(
                "warning: noisy machine, the bare loop's runs differ "
                f"{max(bare_times) / min(bare_times):.1f}x; prefer the paired and best ratios"
            )
        paired = statistics.median(b / z for b, z in zip(bare_times, zart_times, strict=True))
        best = min(bare_times) / min(zart_times)
        print(
            f"zart/bare = {bare_median / zart_median:.2f} (target >= {BARE_RATIO_TARGET:.2f}; "
            f"paired runs {paired:.2f}, best runs {best:.2f})"
        )
        if rates:
            base = rates[args.worker_counts[0]]
            scaling = ", ".join(
                f"{c} workers {r / base:.2f}x"
                for c, r in rates.items()
                if c != args.worker_counts[0]
            )
            print(f"executions/s scaling vs {args.worker_counts[0]} worker: {scaling or '-'}")
        if dbos_loop is not None:
            print(
                f"zart/DBOS = {statistics.median(results[DBOS_ASYNC]) / zart_median:.2f} "
                f"(async workflow), {statistics.median(results[DBOS_SYNC]) / zart_median:.2f} "
                "(sync workflow)"
            )
        else:
            print(dbos_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
