"""Concurrent executions, dispatch latency and idle load of zart, each against a baseline.

    python benchmarks/concurrent.py [--backends sqlite-full,sqlite-normal,postgres]
                                    [--sizes 1,50,500] [--repeat 3] [--pg-url URL]

Measures, in one run, on each backend (SQLite in WAL mode with synchronous=FULL, the
same with synchronous=NORMAL, PostgreSQL in a database of its own, created here and
dropped at the end):

* **bare commits/s**: one INSERT of a small row (id, name, small JSON text) per
  transaction, in a loop (sqlite3 with zart's pragmas; psycopg 3, INSERT + COMMIT):
  the floor any durable runtime on that database pays per checkpoint;
* **zart, N concurrent executions** of a ``@durable`` body awaiting 5 steps, all in this
  process on one event loop (``asyncio.gather`` of ``await app.start(...)`` then
  ``await handle.result()``), N = 1 (``--serial`` executions one after another), 50 and
  500: steps/s, executions/s and steps/s ÷ bare commits/s; every result is checked;
* **DBOS**, when ``import dbos`` works: the same shape as DBOS workflows of DBOS steps;
* **dispatch latency**: two ``zart worker`` processes on the database; this process
  submits executions one at a time, spaced, and each one's first step returns
  ``time.time()`` at its start: latency = that time - the time just before
  ``app.submit``; median and p90;
* **idle load** (PostgreSQL): the transactions/s four idle ``zart worker`` processes
  cause, from ``pg_stat_database``, next to the same window with no worker.

Rounds are interleaved (bare and zart back to back, their order rotating each round,
DBOS after them); tables show medians and ratios of medians. The script reports; it
never fails on a missed target (exit status 0 unless something errors).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory is sys.path[0], where this file's name shadows
# the standard library's `concurrent` package (asyncio imports concurrent.futures): take
# that directory off the path before anything imports asyncio. The checkout's root goes
# on instead, so that the zart benchmarked is this checkout's, installed or not.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import sqlalchemy  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import zart  # noqa: E402
from zart import durable, step  # noqa: E402

try:
    import psycopg
except ImportError:  # without the postgres extra, PostgreSQL is skipped
    psycopg = None  # type: ignore[assignment]

WORKER_FILE = HERE / "_concurrent_worker.py"


def load_worker_module() -> ModuleType:
    """The worker processes' module, loaded from its file under the name `zart worker`
    gives it (the file's stem), so both processes register `bench-dispatch` from the same
    source. Not through sys.path: this directory must stay off it (see above)."""
    name = WORKER_FILE.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, WORKER_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


worker_module = load_worker_module()

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite-full", "sqlite-normal", "postgres")
STEPS = 5
SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
# Warn when the bare loop's fastest and slowest runs differ more than this.
NOISY_SPREAD = 1.5
WORKER_START_TIMEOUT = 60.0
# `zart worker` gives running executions 10 s of grace on SIGTERM; idle ones exit at once.
WORKER_STOP_TIMEOUT = 20.0
WORKER_STOPPED = re.compile(r"worker stopped: (\d+) executions finished here")


# ---------------------------------------------------------------------------- durables


@step("s-{k}")
async def s(k: int, i: int) -> int:
    return i * 10 + k


@durable("bench-concurrent")
async def job(i: int) -> int:
    total = 0
    for k in range(STEPS):
        total += await s(k, i)
    return total


def check_results(who: str, results: list[int]) -> None:
    """Execution i must return the sum of its steps: a benchmark of failures is worthless."""
    for i, result in enumerate(results):
        want = STEPS * i * 10 + STEPS * (STEPS - 1) // 2
        if result != want:
            raise RuntimeError(f"{who}: execution {i} returned {result!r}, expected {want}")


# ---------------------------------------------------------------------------- backends


@dataclass
class Backend:
    key: str  # sqlite-full, sqlite-normal or postgres
    title: str
    zart_url: str
    directory: Path
    synchronous: str | None = None  # SQLite: FULL or NORMAL
    pg_url: str | None = None  # PostgreSQL: the benchmark's own database
    dbos_pg_url: str | None = None  # PostgreSQL: DBOS's system database

    @property
    def is_sqlite(self) -> bool:
        return self.synchronous is not None


def libpq(url: str) -> str:
    """libpq form of a SQLAlchemy postgresql(+psycopg):// URL."""
    return "postgresql://" + url.split("://", 1)[1]


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """CREATE DATABASE name; yield its URL; terminate its sessions and DROP it, always."""
    assert psycopg is not None
    with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq(admin_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def postgres_backend(
    args: argparse.Namespace, directory: Path, stack: contextlib.ExitStack
) -> Backend | None:
    """The PostgreSQL backend on fresh databases, or None (with a message) if unreachable."""
    if psycopg is None:
        print("psycopg not installed (pip install 'zart[postgres]') — PostgreSQL skipped")
        return None
    try:
        with psycopg.connect(libpq(args.pg_url), connect_timeout=5) as conn:
            settings: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('server_version', 'fsync', 'synchronous_commit')"
                ).fetchall()
            )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"PostgreSQL at {masked(args.pg_url)} unreachable ({reason}) — skipped")
        return None
    name = f"zart_bench_conc_{uuid.uuid4().hex[:10]}"
    url = stack.enter_context(scratch_database(args.pg_url, name))
    dbos_url = None
    if args.dbos_version is not None:
        dbos_url = stack.enter_context(scratch_database(args.pg_url, name + "_dbos"))
    print(
        f"PostgreSQL {settings.get('server_version')} (fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}); databases {name}"
        f"{', ' + name + '_dbos' if dbos_url else ''} (dropped afterwards)"
    )
    return Backend("postgres", "PostgreSQL", url, directory, pg_url=url, dbos_pg_url=dbos_url)


def make_backends(
    args: argparse.Namespace, directory: Path, stack: contextlib.ExitStack
) -> list[Backend]:
    backends = []
    for key in args.backends:
        if key == "postgres":
            backend = postgres_backend(args, directory, stack)
            if backend is not None:
                backends.append(backend)
            continue
        sync = "FULL" if key == "sqlite-full" else "NORMAL"
        path = directory / f"zart-{sync.lower()}.db"
        # FULL is zart's default: that URL carries no option, as a user's would not.
        url = f"sqlite:///{path}" + ("" if sync == "FULL" else "?synchronous=NORMAL")
        title = f"SQLite WAL synchronous={sync}"
        backends.append(Backend(key, title, url, directory, synchronous=sync))
    return backends


def read_pragmas(conn: Any) -> str:
    """journal_mode/synchronous of an open sqlite3 connection."""
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    return f"journal_mode={str(journal).lower()} synchronous={SYNCHRONOUS_NAMES.get(sync, sync)}"


def zart_settings(app: zart.Zart, backend: Backend) -> str:
    """What a connection zart opened reports (synchronous is per connection, so only one of
    zart's own shows it). Through ops_store, which may change: best effort."""
    if not backend.is_sqlite:
        return "the benchmark's database"
    try:
        with app.ops_store.db.engine.connect() as conn:
            return read_pragmas(conn.connection.dbapi_connection)
    except Exception as exc:  # the engine's internals moved: say so, measure anyway
        return f"? ({type(exc).__name__}: {exc})"


# ---------------------------------------------------------------------------- bare loops


class BareSqlite:
    """One INSERT per transaction (BEGIN IMMEDIATE, INSERT, COMMIT), WAL, zart's synchronous."""

    label = "bare sqlite3 (INSERT+COMMIT)"

    def __init__(self, path: Path, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bare_rows (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "data TEXT NOT NULL)"
        )

    def settings(self) -> str:
        return read_pragmas(self.conn)

    def run(self, count: int, tag: str) -> float:
        rows = bare_rows(count, tag)  # built before the clock starts: commits only
        execute = self.conn.execute
        started = time.perf_counter()
        for row in rows:
            execute("BEGIN IMMEDIATE")
            execute("INSERT INTO bare_rows (id, name, data) VALUES (?, ?, ?)", row)
            execute("COMMIT")
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


class BarePostgres:
    """One INSERT + COMMIT per row with psycopg 3, on an ordinary (WAL-logged) table."""

    label = "bare psycopg (INSERT+COMMIT)"

    def __init__(self, url: str) -> None:
        assert psycopg is not None
        self.conn = psycopg.connect(libpq(url))
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bare_rows (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "data TEXT NOT NULL)"
        )
        self.conn.commit()

    def settings(self) -> str:
        return "same server and database"

    def run(self, count: int, tag: str) -> float:
        rows = bare_rows(count, tag)
        conn = self.conn
        started = time.perf_counter()
        for row in rows:
            conn.execute("INSERT INTO bare_rows (id, name, data) VALUES (%s, %s, %s)", row)
            conn.commit()
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def bare_rows(count: int, tag: str) -> list[tuple[str, str, str]]:
    return [
        (f"{tag}-{i}", f"s-{i % STEPS}", json.dumps({"i": i, "result": i * 10}))
        for i in range(count)
    ]


def open_bare(backend: Backend) -> BareSqlite | BarePostgres:
    if backend.is_sqlite:
        assert backend.synchronous is not None
        path = backend.directory / f"bare-{backend.synchronous.lower()}.db"
        return BareSqlite(path, backend.synchronous)
    assert backend.pg_url is not None
    return BarePostgres(backend.pg_url)


# ---------------------------------------------------------------------------- zart


async def zart_one(app: zart.Zart, i: int, execution_id: str) -> int:
    handle = await app.start(job, i, execution_id=execution_id)
    return await handle.result()


def run_zart(app: zart.Zart, n: int, executions: int, tag: str) -> float:
    """Seconds for ``executions`` executions of ``job``: one at a time if n is 1, else all
    at once on one event loop."""

    async def main() -> float:
        ids = [f"{tag}-{i}" for i in range(executions)]
        started = time.perf_counter()
        if n == 1:
            results = [await zart_one(app, i, eid) for i, eid in enumerate(ids)]
        else:
            results = list(
                await asyncio.gather(*(zart_one(app, i, eid) for i, eid in enumerate(ids)))
            )
        elapsed = time.perf_counter() - started
        check_results(f"zart N={n}", results)
        return elapsed

    return asyncio.run(main())


# ---------------------------------------------------------------------------- DBOS

_dbos_job: Any = None


def dbos_version() -> str | None:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return None
    from importlib.metadata import version

    return version("dbos")


def dbos_job() -> Any:
    """DBOS's version of ``job``, registered once: DBOS keeps one registry per process,
    which outlives the DBOS instance launched (and destroyed) for each backend."""
    global _dbos_job
    if _dbos_job is None:
        from dbos import DBOS

        @DBOS.step()
        async def dbos_s(k: int, i: int) -> int:
            return i * 10 + k

        @DBOS.workflow()
        async def dbos_concurrent_job(i: int) -> int:
            total = 0
            for k in range(STEPS):
                total += await dbos_s(k, i)
            return total

        _dbos_job = dbos_concurrent_job
    return _dbos_job


class SqliteConnector:
    """Opens DBOS's SQLite connections with zart's settings. DBOS leaves SQLite's defaults
    (rollback journal, synchronous=FULL); passing this as the engine's ``creator`` makes
    it run in WAL with the backend's synchronous level, like zart and the bare loop."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.seen = "? (no connection yet)"

    def __call__(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self.seen = read_pragmas(conn)
        return conn


class DbosRunner:
    """DBOS launched on the backend's database; the same runs as ``run_zart``."""

    def __init__(self, backend: Backend) -> None:
        from dbos import DBOS

        self.DBOS = DBOS
        self.job = dbos_job()
        self.connector: SqliteConnector | None = None
        config: dict[str, Any] = {"name": "zart-bench", "log_level": "WARNING"}
        if backend.is_sqlite:
            assert backend.synchronous is not None
            path = backend.directory / f"dbos-{backend.synchronous.lower()}.sqlite"
            self.connector = SqliteConnector(path, backend.synchronous)
            config["system_database_url"] = f"sqlite:///{path}"
            config["db_engine_kwargs"] = {"creator": self.connector}
        else:
            assert backend.dbos_pg_url is not None
            config["system_database_url"] = libpq(backend.dbos_pg_url)
        DBOS(config=config)  # type: ignore[arg-type]
        DBOS.launch()

    def settings(self) -> str:
        if self.connector is not None:
            return self.connector.seen
        return "same server, a database of its own"

    def run(self, n: int, executions: int, tag: str) -> float:
        del tag  # DBOS generates its own workflow ids

        async def main() -> float:
            started = time.perf_counter()
            if n == 1:
                results = [await self.job(i) for i in range(executions)]
            else:
                results = list(await asyncio.gather(*(self.job(i) for i in range(executions))))
            elapsed = time.perf_counter() - started
            check_results(f"DBOS N={n}", results)
            return elapsed

        return asyncio.run(main())

    def close(self) -> None:
        self.DBOS.destroy()


# ---------------------------------------------------------------------------- throughput


@dataclass
class Measure:
    key: str  # bare, zart-50, dbos-500...
    label: str
    n: int  # executions at once; 0 for the bare loop
    executions: int  # per run; 0 for the bare loop
    units: int  # commits (bare) or steps per run
    run: Callable[[str], float]
    times: list[float] = field(default_factory=list)

    def rate(self, seconds: float | None = None) -> float:
        """Units per second of one run, by default of the median run."""
        return self.units / (statistics.median(self.times) if seconds is None else seconds)


@dataclass
class Throughput:
    backend: Backend
    bare: Measure
    zart: dict[int, Measure]
    dbos: dict[int, Measure]

    def paired(self, n: int) -> float:
        """Median over rounds of zart N steps/s / bare commits/s in the same round."""
        z = self.zart[n]
        return statistics.median(
            z.rate(t) / self.bare.rate(b) for t, b in zip(z.times, self.bare.times, strict=True)
        )


def build_measures(
    args: argparse.Namespace,
    backend: Backend,
    app: zart.Zart,
    bare: BareSqlite | BarePostgres,
    dbos: DbosRunner | None,
) -> Throughput:
    result = Throughput(
        backend,
        Measure("bare", bare.label, 0, 0, args.commits, functools.partial(bare.run, args.commits)),
        {},
        {},
    )
    for n in args.sizes:
        count = args.serial if n == 1 else n
        run = functools.partial(run_zart, app, n, count)
        result.zart[n] = Measure(f"zart-{n}", "zart", n, count, count * STEPS, run)
        if dbos is not None:
            count = args.dbos_serial if n == 1 else n
            run = functools.partial(dbos.run, n, count)
            result.dbos[n] = Measure(f"dbos-{n}", "DBOS", n, count, count * STEPS, run)
    return result


def run_rounds(args: argparse.Namespace, result: Throughput) -> None:
    """Bare and zart back to back in every round, their order rotating from round to
    round (adjacent runs see the same disk weather, which the paired ratio relies on);
    DBOS after them, in the first --dbos-repeat rounds."""
    group = [result.bare, *result.zart.values()]
    dbos = list(result.dbos.values())
    rounds = max(args.repeat, args.dbos_repeat if dbos else 0)
    for r in range(rounds):
        order = group[r % len(group) :] + group[: r % len(group)] if r < args.repeat else []
        if dbos and r < args.dbos_repeat:
            order += dbos[r % len(dbos) :] + dbos[: r % len(dbos)]
        for measure in order:
            measure.times.append(measure.run(f"{measure.key}-r{r}"))


def warm_up(app: zart.Zart, bare: BareSqlite | BarePostgres, dbos: DbosRunner | None) -> None:
    """Uncounted: first connections, prepared statements, lazily built codecs, WAL files
    grown to their steady size."""
    bare.run(200, "warm")
    run_zart(app, 1, 5, "warm-1")
    run_zart(app, 20, 20, "warm-20")
    if dbos is not None:
        dbos.run(1, 3, "warm-1")
        dbos.run(20, 20, "warm-20")


def measure_throughput(args: argparse.Namespace, backend: Backend) -> Throughput:
    print(f"\n== throughput: {backend.title}")
    with contextlib.ExitStack() as stack:
        app = zart.Zart(backend.zart_url)  # a fresh engine per backend
        stack.callback(app.close)
        app.ops_store.ensure_schema()  # the engine is up: no run pays for migrations
        bare = open_bare(backend)
        stack.callback(bare.close)
        dbos = None
        if args.dbos_version is not None:
            dbos = DbosRunner(backend)
            stack.callback(dbos.close)
        warm_up(app, bare, dbos)  # before the settings: DBOS has then opened connections
        print(f"zart: {zart_settings(app, backend)}")
        print(f"bare: {bare.settings()}")
        if dbos is not None:
            print(f"DBOS: {dbos.settings()}")
        result = build_measures(args, backend, app, bare, dbos)
        run_rounds(args, result)
    print_throughput(args, result)
    return result


def print_throughput(args: argparse.Namespace, result: Throughput) -> None:
    header = (
        f"{'run':<30} {'N':>4} {'execs':>6} {'steps/s':>9} {'execs/s':>8} {'÷ bare':>7}"
        f" {'best':>8}  runs (steps/s)"
    )
    print(header)
    print("-" * len(header))
    bare_rate = result.bare.rate()
    for m in [result.bare, *result.zart.values(), *result.dbos.values()]:
        runs = " ".join(f"{m.rate(t):,.0f}" for t in m.times)
        is_bare = m is result.bare
        n = "-" if is_bare else str(m.n)
        execs = "-" if is_bare else str(m.executions)
        execs_s = "-" if is_bare else f"{m.executions / statistics.median(m.times):,.0f}"
        print(
            f"{m.label:<30} {n:>4} {execs:>6} {m.rate():>9,.0f} {execs_s:>8} "
            f"{m.rate() / bare_rate:>7.2f} {m.rate(min(m.times)):>8,.0f}  {runs}"
        )
    dbos_runs = f" (DBOS: {args.dbos_repeat})" if result.dbos else ""
    print(
        f"medians of {args.repeat} interleaved runs{dbos_runs}; the bare row's steps/s are "
        "commits/s; ÷ bare: steps/s ÷ bare\ncommits/s; best: the fastest run; N=1: that many "
        "executions one after another, the others all at once"
    )
    spread = max(result.bare.times) / min(result.bare.times)
    if spread > NOISY_SPREAD:
        print(
            f"warning: noisy machine, the bare loop's runs differ {spread:.1f}x; the paired "
            "ratio in the summary is steadier than the ratio of medians"
        )


# ---------------------------------------------------------------------------- workers


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_worker(url: str, log: Path, poll_interval: float | None) -> WorkerProcess:
    """``zart worker _concurrent_worker.py``: serves ``bench-dispatch`` and nothing else."""
    cmd = [sys.executable, "-m", "zart", "--database-url", url, "worker"]
    cmd.append(str(WORKER_FILE))
    if poll_interval is not None:
        cmd += ["--poll-interval", str(poll_interval)]
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env.pop("ZART_DATABASE_URL", None)  # --database-url decides
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return WorkerProcess(proc, log)


def wait_started(workers: list[WorkerProcess]) -> None:
    # The worker logs this line once connected and migrated, just before its first claim.
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    for worker in workers:
        while "worker started" not in worker.output():
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"zart worker did not start (exit status {worker.proc.poll()}):\n"
                    f"{worker.output()}"
                )
            time.sleep(0.05)


def stop_workers(workers: list[WorkerProcess]) -> None:
    """SIGTERM every worker, then SIGKILL whichever has not exited in time."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + WORKER_STOP_TIMEOUT
    for worker in workers:
        try:
            worker.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
            print("warning: a worker ignored SIGTERM and was killed")
        # 0: a clean stop; -SIGTERM: stopped while still starting, before its handler
        # was installed; -SIGKILL: reported above.
        if worker.proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            tail = "\n  ".join(worker.output().splitlines()[-5:])
            print(f"warning: a worker exited with {worker.proc.returncode}:\n  {tail}")


@contextlib.contextmanager
def running_workers(
    url: str, count: int, log_dir: Path, tag: str, poll_interval: float | None
) -> Iterator[list[WorkerProcess]]:
    """``count`` started worker processes, stopped on the way out, even on error."""
    workers: list[WorkerProcess] = []
    try:
        for i in range(count):
            workers.append(spawn_worker(url, log_dir / f"{tag}-worker-{i}.log", poll_interval))
        wait_started(workers)
        yield workers
    finally:
        stop_workers(workers)


# ---------------------------------------------------------------------------- dispatch


@dataclass
class Dispatch:
    backend: Backend
    latencies: list[float]  # seconds, submit -> first step started
    per_worker: list[str]  # executions each worker ran (from its last log line)


def wait_completed(app: zart.Zart, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        status = app.status(pending[0]).status
        if status == "completed":
            pending.pop(0)
            continue
        if status in ("failed", "cancelled", "diverged"):
            raise RuntimeError(f"dispatch execution {pending[0]} is {status}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(pending)} dispatch executions not completed after {timeout:.0f} s "
                f"({pending[0]} is {status}): are the workers running?"
            )
        time.sleep(0.05)


def submit_spaced(app: zart.Zart, tag: str, count: int, interval: float) -> list[float]:
    """Submit ``count`` executions ``interval`` seconds apart; their dispatch latencies."""
    submitted = []
    for i in range(count):
        before = time.time()
        handle = app.submit(worker_module.dispatch_job, i, execution_id=f"{tag}-{i}")
        submitted.append((handle.execution_id, before))
        time.sleep(max(0.0, before + interval - time.time()))
    # Waited for afterwards, so that polling for results does not load the database
    # while executions are being dispatched.
    wait_completed(app, [eid for eid, _ in submitted], timeout=60.0)
    return [float(app.result(eid)) - before for eid, before in submitted]


def measure_dispatch(args: argparse.Namespace, backend: Backend, log_dir: Path) -> Dispatch:
    with contextlib.ExitStack() as stack:
        app = zart.Zart(backend.zart_url)
        stack.callback(app.close)
        app.ops_store.ensure_schema()
        workers = stack.enter_context(
            running_workers(
                backend.zart_url,
                args.dispatch_workers,
                log_dir,
                f"dispatch-{backend.key}",
                args.poll_interval,
            )
        )
        tag = uuid.uuid4().hex[:6]
        submit_spaced(app, f"warm-{tag}", 2, args.dispatch_interval)  # first claims: uncounted
        latencies = submit_spaced(app, f"d-{tag}", args.dispatch, args.dispatch_interval)
    # After the workers stopped: each logged how many executions it ran.
    per_worker = []
    for worker in workers:
        found = WORKER_STOPPED.findall(worker.output())
        per_worker.append(found[-1] if found else "?")
    return Dispatch(backend, latencies, per_worker)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def print_dispatch(args: argparse.Namespace, results: list[Dispatch]) -> None:
    poll = "zart's default" if args.poll_interval is None else f"{args.poll_interval} s"
    print(
        f"\n== dispatch latency: {args.dispatch_workers} `zart worker` processes (poll "
        f"interval {poll}); {args.dispatch} submits {args.dispatch_interval * 1000:.0f} ms "
        "apart from this process, after 2 uncounted"
    )
    header = (
        f"{'backend':<30} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'max ms':>8}"
        "  executions run per worker (incl. warm-up)"
    )
    print(header)
    print("-" * len(header))
    for d in results:
        ms = [x * 1000 for x in d.latencies]
        print(
            f"{d.backend.title:<30} {statistics.median(ms):>10.1f} {percentile(ms, 0.9):>8.1f} "
            f"{min(ms):>8.1f} {max(ms):>8.1f}  {' / '.join(d.per_worker)}"
        )
    print("latency: time.time() when the first step starts (in a worker) - just before submit")


# ---------------------------------------------------------------------------- idle load


@dataclass
class IdleLoad:
    workers: int
    seconds: float
    baseline: float  # transactions/s in the database with no worker
    loaded: float  # with the idle workers
    sessions: int


def transactions(meter: Any, dbname: str) -> int:
    # Statistics are read from a snapshot cached per transaction (stats_fetch_consistency):
    # drop it, so this read sees what the backends have flushed by now.
    meter.execute("SELECT pg_stat_clear_snapshot()")
    row = meter.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (dbname,)
    ).fetchone()
    return int(row[0])


def transaction_rate(meter: Any, dbname: str, seconds: float) -> float:
    first, started = transactions(meter, dbname), time.monotonic()
    time.sleep(seconds)
    last, ended = transactions(meter, dbname), time.monotonic()
    return (last - first) / (ended - started)


def measure_idle(args: argparse.Namespace, backend: Backend, log_dir: Path) -> IdleLoad:
    """Transactions/s in the benchmark database, without and then with idle workers.

    The meter connects to the admin database, not the benchmark's: its own transactions
    count there, so there are none to subtract. Each backend flushes its counters at
    most once a second, and an idle one after 10 s: the settle time before the window
    lets the workers' start-up transactions land before the window opens.
    """
    assert psycopg is not None and backend.pg_url is not None
    dbname = make_url(backend.pg_url).database
    assert dbname is not None
    with psycopg.connect(libpq(args.pg_url), autocommit=True) as meter:
        here = meter.execute("SELECT current_database()").fetchone()
        if here is None or here[0] == dbname:
            raise RuntimeError("the idle-load meter must not connect to the measured database")
        baseline = transaction_rate(meter, dbname, args.idle_seconds)
        with running_workers(
            backend.zart_url, args.idle_workers, log_dir, "idle", args.poll_interval
        ):
            time.sleep(args.idle_settle)
            row = meter.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)
            ).fetchone()
            loaded = transaction_rate(meter, dbname, args.idle_seconds)
    sessions = int(row[0]) if row is not None else -1
    return IdleLoad(args.idle_workers, args.idle_seconds, baseline, loaded, sessions)


def print_idle(args: argparse.Namespace, idle: IdleLoad) -> None:
    poll = "zart's default" if args.poll_interval is None else f"{args.poll_interval} s"
    print(
        f"\n== idle load (PostgreSQL): {idle.workers} idle `zart worker` processes (poll "
        f"interval {poll}), {idle.seconds:.0f} s windows of pg_stat_database "
        f"xact_commit + xact_rollback, {args.idle_settle:.0f} s after the workers started"
    )
    header = f"{'window':<36} {'tx/s':>8} {'per worker':>11} {'sessions':>9}"
    print(header)
    print("-" * len(header))
    print(f"{'no worker (baseline)':<36} {idle.baseline:>8.1f} {'-':>11} {'-':>9}")
    per_worker = (idle.loaded - idle.baseline) / idle.workers
    label = f"{idle.workers} idle workers"
    print(f"{label:<36} {idle.loaded:>8.1f} {per_worker:>11.2f} {idle.sessions:>9}")
    print(
        "per worker: (workers - baseline) / workers; sessions: connections open to the "
        "database;\nbackends flush their counters about once a second: expect about 1 s "
        "worth of noise per window"
    )


# ---------------------------------------------------------------------------- summary


def summary_rows(
    throughputs: list[Throughput], dispatches: list[Dispatch], idle: IdleLoad | None
) -> list[tuple[str, dict[str, str]]]:
    """(row label, {backend key: cell}) for the summary table."""
    rows: list[tuple[str, dict[str, str]]] = []
    if throughputs:
        big = max(throughputs[0].zart)
        rows.append((f"{big}x{STEPS} steps/s ÷ bare commits/s", {}))
        rows.append(("  (paired rounds)", {}))
        for t in throughputs:
            rows[-2][1][t.backend.key] = f"{t.zart[big].rate() / t.bare.rate():.2f}"
            rows[-1][1][t.backend.key] = f"{t.paired(big):.2f}"
        for n in throughputs[0].zart:
            cells = {
                t.backend.key: f"{t.zart[n].rate() / t.dbos[n].rate():.2f}"
                for t in throughputs
                if n in t.dbos
            }
            if cells:
                rows.append((f"zart ÷ DBOS (steps/s), N={n}", cells))
    if dispatches:
        rows.append(("dispatch latency median (ms)", {}))
        rows.append(("dispatch latency p90 (ms)", {}))
        for d in dispatches:
            ms = [x * 1000 for x in d.latencies]
            rows[-2][1][d.backend.key] = f"{statistics.median(ms):.1f}"
            rows[-1][1][d.backend.key] = f"{percentile(ms, 0.9):.1f}"
    if idle is not None:
        label = f"idle tx/s, {idle.workers} workers (baseline)"
        rows.append((label, {"postgres": f"{idle.loaded:.1f} ({idle.baseline:.1f})"}))
    return rows


def print_summary(
    throughputs: list[Throughput], dispatches: list[Dispatch], idle: IdleLoad | None
) -> None:
    rows = summary_rows(throughputs, dispatches, idle)
    keys = [key for key in BACKENDS if any(key in cells for _, cells in rows)]
    print(f"\n== summary ({os.cpu_count()} cores)")
    header = f"{'':<40}" + "".join(f" {key:>16}" for key in keys)
    print(header)
    print("-" * len(header))
    for label, cells in rows:
        print(f"{label:<40}" + "".join(f" {cells.get(key, '-'):>16}" for key in keys))
    if not any(t.dbos for t in throughputs):
        print("no zart ÷ DBOS rows: DBOS not installed (pip install dbos), or --no-dbos")


# ---------------------------------------------------------------------------- queues

# A queue with no limits (zart.Queue): claimed like executions without one (--queues).
UNLIMITED = zart.Queue("bench-unlimited")


def work_off(app: zart.Zart, n: int, tag: str, queue: zart.Queue | None) -> float:
    """Seconds from the first submit until a worker (this process, 50 slots) has
    finished ``n`` executions of ``job`` submitted plainly or through ``queue``."""
    started = time.perf_counter()
    for i in range(n):
        if queue is None:
            app.submit(job, i, execution_id=f"{tag}-{i}")
        else:
            app.submit(job, i, execution_id=f"{tag}-{i}", queue=queue)
    worker = app.worker(concurrency=50, poll_interval=0.01)
    done = asyncio.run(worker.run_async(until_idle=True))
    elapsed = time.perf_counter() - started
    if done != n:
        raise RuntimeError(f"{tag}: {done} of {n} executions finished")
    return elapsed


def measure_queues(args: argparse.Namespace, backend: Backend) -> None:
    """Submit-to-finish throughput through a queue without limits vs plain submit."""
    n = args.queues
    print(f"\n== queue overhead: {backend.title} ({n} executions, worker with 50 slots)")
    with contextlib.ExitStack() as stack:
        app = zart.Zart(backend.zart_url)
        stack.callback(app.close)
        app.ops_store.ensure_schema()
        work_off(app, 20, f"q-warm-{uuid.uuid4().hex[:6]}", UNLIMITED)
        plain: list[float] = []
        queued: list[float] = []
        for r in range(args.repeat):  # interleaved, order rotating
            tag = uuid.uuid4().hex[:6]
            runs = [(plain, None), (queued, UNLIMITED)]
            for times, queue in runs if r % 2 == 0 else runs[::-1]:
                times.append(work_off(app, n, f"q-{tag}-{queue is not None}", queue))
    p, q = statistics.median(plain), statistics.median(queued)
    print(f"plain submit: {n / p:9.1f} executions/s (median of {args.repeat})")
    print(f"queue=:       {n / q:9.1f} executions/s")
    print(f"queue ÷ plain: {p / q:.3f} (goal: at least 0.90)")


# ---------------------------------------------------------------------------- main


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers, e.g. 1,50,500")
    return values


def backend_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in BACKENDS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(BACKENDS)}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--backends", type=backend_list, default=list(BACKENDS), help=",".join(BACKENDS))
    add("--sizes", type=int_list, default=[1, 50, 500], help="concurrent executions (1,50,500)")
    add("--repeat", type=int, default=3, help="interleaved runs of bare and zart (3)")
    add("--serial", type=int, default=200, help="N=1: zart executions one after another (200)")
    add("--commits", type=int, default=2000, help="commits per bare run (2000)")
    add("--no-dbos", action="store_true", help="skip DBOS even if installed")
    add("--dbos-repeat", type=int, default=1, help="runs of each DBOS size (1: DBOS is slow)")
    add("--dbos-serial", type=int, default=50, help="N=1: DBOS executions one after another")
    add(
        "--pg-url",
        default=os.environ.get("ZART_BENCH_PG_URL", DEFAULT_PG_URL),
        help="a database URL on the PostgreSQL server to use; the benchmark creates (and "
        "drops) databases of its own there (default $ZART_BENCH_PG_URL, else "
        f"{DEFAULT_PG_URL})",
    )
    add("--dispatch", type=int, default=30, help="measured submits per backend (30; 0: skip)")
    add("--dispatch-interval", type=float, default=0.1, help="seconds between submits (0.1)")
    add("--dispatch-workers", type=int, default=2, help="worker processes for dispatch (2)")
    add("--idle-workers", type=int, default=4, help="idle worker processes (4; 0: skip)")
    add("--idle-seconds", type=float, default=10.0, help="idle-load window (10 s)")
    add(
        "--idle-settle",
        type=float,
        default=11.0,
        help="wait after the idle workers started (11 s: PostgreSQL flushes an idle "
        "backend's counters after 10 s)",
    )
    add(
        "--poll-interval",
        type=float,
        default=None,
        help="workers' --poll-interval (default: zart's)",
    )
    add(
        "--queues",
        type=int,
        default=0,
        help="also compare N executions through a zart.Queue without limits with plain "
        "submits, submit to finish (0: skip; e.g. 500)",
    )
    add("--dir", type=Path, default=None, help="where the SQLite files go (default: cwd)")
    add("--keep", action="store_true", help="keep the SQLite files and worker logs")
    args = parser.parse_args(argv)
    counts = (args.repeat, args.serial, args.commits, args.dbos_repeat, args.dbos_serial)
    if min(counts) < 1 or args.dispatch_workers < 1 or args.idle_seconds <= 0:
        parser.error("counts must be at least 1 and --idle-seconds positive")
    args.dbos_version = None if args.no_dbos else dbos_version()
    return args


def print_header(args: argparse.Namespace, directory: Path) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()} (os.cpu_count()); load average {load}")
    dbos_note = (
        "DBOS skipped (--no-dbos)"
        if args.no_dbos
        else f"dbos {args.dbos_version}"
        if args.dbos_version
        else "DBOS not installed (pip install dbos) — skipped"
    )
    pg_note = f"psycopg {psycopg.__version__}" if psycopg is not None else "no psycopg"
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, {pg_note}, zart {zart.__version__}; {dbos_note}"
    )
    print(f"SQLite files in {directory}")
    print(
        f"{STEPS} steps per execution; sizes {', '.join(map(str, args.sizes))} (N=1: "
        f"{args.serial} executions one after another, DBOS {args.dbos_serial}); "
        f"bare: {args.commits} commits per run"
    )


def run_all(args: argparse.Namespace, directory: Path) -> None:
    log_dir = directory / "logs"
    log_dir.mkdir()
    with contextlib.ExitStack() as stack:  # the PostgreSQL databases, dropped on the way out
        backends = make_backends(args, directory, stack)
        if not backends:
            print("no backend left to measure")
            return
        throughputs = [measure_throughput(args, b) for b in backends]
        for backend in backends if args.queues > 0 else []:
            measure_queues(args, backend)
        dispatches: list[Dispatch] = []
        if args.dispatch > 0:
            dispatches = [measure_dispatch(args, b, log_dir) for b in backends]
            print_dispatch(args, dispatches)
        idle = None
        postgres = [b for b in backends if b.key == "postgres"]
        if postgres and args.idle_workers > 0:
            idle = measure_idle(args, postgres[0], log_dir)
            print_idle(args, idle)
        print_summary(throughputs, dispatches, idle)


def exit_on_sigterm(signum: int, frame: Any) -> None:
    # SIGTERM's default kills this process on the spot: raising instead runs the cleanup
    # (worker processes stopped, databases dropped, files removed), as Ctrl-C does.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    base = args.dir if args.dir is not None else Path.cwd()
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="zart-bench-concurrent-", dir=base)).resolve()
    print_header(args, directory)
    try:
        run_all(args, directory)
    finally:
        if args.keep:
            print(f"SQLite files and worker logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
