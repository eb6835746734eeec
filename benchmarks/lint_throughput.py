"""zart-lint throughput: cold, warm (cached) and bare libcst parsing, on two corpora.

    python benchmarks/lint_throughput.py [--files 2000] [--skip-stdlib] [--jobs N] [--repeat 3]

Corpora:
  (a) the Python standard library (test directories left out unless
      --stdlib-tests): almost no file can involve steps, so zart-lint should
      not parse them at all and beat bare parsing by a wide margin;
  (b) a generated project of --files modules that all define steps and call
      them in loops (correct and buggy), in a temporary directory.

Runs, each timed wall-clock as a user sees it (process start-up included):
  zart-lint cold   --no-cache, default parallelism
  zart-lint warm   the same, the cache populated by a previous run
  bare parse       libcst.parse_module over the same files in this one process
                   (files libcst cannot parse are left out of its count)
  fixit            (corpus b, if fixit is importable) Fixit 2 running a minimal
                   "call inside a for loop" rule, for comparison

  ruff             (corpus b) `ruff check --no-cache` on the same tree, the speed
                   reference users know
  single file      the pre-commit case: one file named, --no-cache, in a 3-module
                   tree and in the same tree plus the --files generated modules
  star chain       one file importing from a 15-layer `from .a import *` chain

Targets on (b): cold <= bare parse; warm < 10% of cold; single file in the big
tree within 1.5x of the small tree.

The cold run and the bare parse are measured --repeat times, alternately, and
the fastest of each is reported: on a machine shared with other jobs, a single
measurement of either says more about the load at that moment than about the
code (compare the CPU seconds too). zart-lint runs with its modules compiled
beforehand, as installed (bytecode in the temporary directory), and without the
corpus on sys.path.
"""

from __future__ import annotations

# isort: off
import _benchpath  # noqa: F401  (first: keeps concurrent.py from shadowing the stdlib)
# isort: on

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STDLIB_TEST_DIRS = {"test", "tests", "idle_test"}


@dataclass
class Timing:
    corpus: str
    run: str
    seconds: float  # wall clock
    cpu: float  # user + system CPU seconds of every process involved
    files: int
    lines: int

    def row(self) -> str:
        fps = self.files / self.seconds if self.seconds else float("inf")
        lps = self.lines / self.seconds if self.seconds else float("inf")
        return (
            f"{self.corpus:<10} {self.run:<22} {self.files:>6} {self.lines:>8} "
            f"{self.seconds:>8.2f} {self.cpu:>8.2f} {fps:>9,.0f} {lps:>11,.0f}"
        )


HEADER = (
    f"{'corpus':<10} {'run':<22} {'files':>6} {'lines':>8} {'wall s':>8} {'cpu s':>8} "
    f"{'files/s':>9} {'lines/s':>11}"
)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU time of a block that runs child processes (or this one)."""

    stderr = ""

    def __enter__(self) -> Clock:
        self.wall = time.perf_counter()
        self.cpu = children_cpu() + time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = children_cpu() + time.process_time() - self.cpu


# --------------------------------------------------------------------------- corpora


def stdlib_files(include_tests: bool) -> list[Path]:
    """The stdlib's modules, minus what zart-lint excludes by default (e.g. the venv package)."""
    sys.path.insert(0, str(REPO_ROOT))
    from zart_lint.project._config import DEFAULT_EXCLUDES

    skipped = {*DEFAULT_EXCLUDES, "__pycache__"}
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if d not in skipped and (include_tests or d not in STDLIB_TEST_DIRS)
        ]
        files.extend(Path(directory) / f for f in filenames if f.endswith(".py"))
    return sorted(files)


def copy_stdlib(dest: Path, include_tests: bool) -> list[Path]:
    source = Path(sysconfig.get_paths()["stdlib"])
    copied = []
    for path in stdlib_files(include_tests):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    (dest / "pyproject.toml").write_text('[project]\nname = "stdlib-copy"\n', encoding="utf-8")
    return copied


_STEP_KINDS = [
    # (decorator template, parameters, body) -- constant and templated names
    (
        '@step("fetch-{name}")',
        "customer: str",
        "return [{'id': n, 'qty': n % 3} for n in range(8)]",
    ),
    ('@step("charge-{name}-{{order_id}}")', "order_id: int, amount: int", "return amount * 2"),
    ('@step("notify-{name}")', "user: str", "print('notify', user)"),
    ('@zart.step("audit-{name}")', "entry: str", "return entry.upper()"),
    ("@step", "region: str, shard: int", "return f'{region}/{shard}'"),
    ('@s("ship-{name}-{{region}}-{{shard}}")', "region: str, shard: int", "return shard"),
]

_LOOPS_OK = [
    "    for order in orders:\n        total += await {charge}(order['id'], order['qty'])\n",
    "    for n, user in enumerate(users):\n        await {notify}(user).named(f'{notify}-{{n}}')\n",
    "    for i, r in enumerate(regions):\n        await {ship}(r, i)\n",
    "    results = [await {charge}(o['id'], 1) for o in orders]\n    total += len(results)\n",
]
_LOOPS_BUGGY = [
    "    for user in users:\n        await {notify}(user)\n",
    "    k = 0\n    while k < 3:\n        await {audit}(f'tick {{k}}')\n        k += 1\n",
    "    for r in regions:\n        await {notify}(r).named('same-every-time')\n",
    "    async for user in stream(users):\n        await {audit}(user)\n",
]
_FILLER = [
    "def helper_{i}_{j}(values: list[int]) -> int:\n"
    '    """Plain code between the durable parts."""\n'
    "    total = 0\n    for v in values:\n        if v % 2:\n            total += v\n"
    "        else:\n            total -= 1\n    return total\n",
    "class Record{i}_{j}:\n    def __init__(self, key: str, value: int) -> None:\n"
    "        self.key = key\n        self.value = value\n\n"
    "    def __repr__(self) -> str:\n        return f'Record({{self.key!r}}, {{self.value}})'\n",
    "CONSTANTS_{i}_{j} = {{\n    'retries': 3,\n    'timeout': 30.0,\n"
    "    'regions': ['eu-west-1', 'us-east-1'],\n}}\n",
]


def generated_module(i: int, rng: random.Random) -> str:
    name = f"w{i}"
    header = textwrap.dedent(
        f'''\
        """Generated durable workflows, module {i}."""

        from __future__ import annotations

        from collections.abc import AsyncIterator

        import zart
        from zart import durable, step
        from zart import step as s


        async def stream(items: list[str]) -> AsyncIterator[str]:
            for item in items:
                yield item


        '''
    )
    parts = [header]
    fnames = {}
    for kind, (decorator, params, body) in zip(
        ("fetch", "charge", "notify", "audit", "region", "ship"), _STEP_KINDS, strict=True
    ):
        fn = f"{kind}_{name}"
        fnames[kind] = fn
        parts.append(f"{decorator.format(name=name)}\nasync def {fn}({params}):\n    {body}\n\n\n")
    for j in range(rng.randint(0, 2)):
        parts.append(rng.choice(_FILLER).format(i=i, j=j) + "\n\n")
    loops = rng.sample(_LOOPS_OK, k=rng.randint(1, 3))
    if rng.random() < 0.6:
        loops += rng.sample(_LOOPS_BUGGY, k=rng.randint(1, 2))
    rng.shuffle(loops)
    body = "".join(
        loop.format(
            charge=fnames["charge"],
            notify=fnames["notify"],
            audit=fnames["audit"],
            ship=fnames["ship"],
        )
        for loop in loops
    )
    parts.append(
        f'@durable("checkout-{name}")\n'
        f"async def checkout_{name}(customer: str, users: list[str], regions: list[str]) -> int:\n"
        f"    orders = await {fnames['fetch']}(customer)\n"
        "    total = 0\n"
        f"{body}"
        "    return total\n"
    )
    return "".join(parts)


def generate_corpus(directory: Path, count: int) -> list[Path]:
    rng = random.Random(20261125)
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0"\n\n[tool.zart-lint]\n', encoding="utf-8"
    )
    files = []
    per_package = 100
    for i in range(count):
        package = directory / "app" / f"pkg{i // per_package:03d}"
        package.mkdir(parents=True, exist_ok=True)
        path = package / f"flows_{i:05d}.py"
        path.write_text(generated_module(i, rng), encoding="utf-8")
        files.append(path)
    return files


def count_lines(files: list[Path]) -> int:
    total = 0
    for path in files:
        with open(path, "rb") as fh:
            total += fh.read().count(b"\n")
    return total


# --------------------------------------------------------------------------- runs


# Where the zart-lint runs keep their bytecode (set by main: in the temporary
# directory, not next to the sources). An installed package comes compiled; a
# run that compiled zart_lint's modules first (PYTHONDONTWRITEBYTECODE is set in
# some CI and sandbox setups) would be measuring the compiler.
PYCACHE: Path | None = None


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.pop("ZART_LINT_OUTPUT_FORMAT", None)
    # The corpus is the working directory: keep it off sys.path, or the copy of
    # the stdlib shadows the interpreter's own modules (Python 3.11+).
    env["PYTHONSAFEPATH"] = "1"
    if PYCACHE is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def warm_up() -> None:
    """Compile what a zart-lint run imports, once, before anything is measured."""
    code = (
        "import importlib, pkgutil, concurrent.futures.process, zart_lint\n"
        "for module in pkgutil.walk_packages(zart_lint.__path__, 'zart_lint.'):\n"
        "    importlib.import_module(module.name)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=cli_env(), check=True)


def zart_lint(args: list[str], cwd: Path) -> Clock:
    """Run the CLI; the Clock also carries its stderr."""
    with Clock() as clock:
        proc = subprocess.run(
            [sys.executable, "-m", "zart_lint", "--output-format", "concise", "--exit-zero", *args],
            cwd=cwd,
            env=cli_env(),
            capture_output=True,
            check=False,
        )
    if proc.returncode != 0:
        sys.exit(f"zart-lint failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    clock.stderr = proc.stderr.decode("utf-8", "replace")
    return clock


def bare_parse(files: list[Path]) -> tuple[Clock, int, int]:
    import libcst

    ok_files = ok_lines = 0
    with Clock() as clock:
        for path in files:
            data = path.read_bytes()
            try:
                libcst.parse_module(data)
            except Exception:
                continue
            ok_files += 1
            ok_lines += data.count(b"\n")
    return clock, ok_files, ok_lines


FIXIT_RULE = '''
import libcst as cst
from fixit import LintRule


class CallInForLoop(LintRule):
    """Flags every call inside the body of a for loop (what ZRT001 looks at first)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def visit_For(self, node: cst.For) -> None:
        self.depth += 1

    def leave_For(self, original_node: cst.For) -> None:
        self.depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        if self.depth:
            self.report(node, "call inside a for loop")
'''


def fixit_run(python: str, directory: Path) -> Clock | None:
    probe = subprocess.run([python, "-c", "import fixit"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    rules_dir = directory.parent / "fixit_rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "bench_fixit_rule.py").write_text(FIXIT_RULE, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(rules_dir))
    with Clock() as clock:
        proc = subprocess.run(
            [python, "-m", "fixit", "--rules", "bench_fixit_rule", "lint", str(directory / "app")],
            cwd=directory,
            env=env,
            capture_output=True,
            check=False,
        )
    if b"call inside a for loop" not in proc.stdout + proc.stderr:
        print(f"warning: fixit reported nothing (exit {proc.returncode}):", file=sys.stderr)
        print((proc.stdout + proc.stderr).decode()[-1500:], file=sys.stderr)
    return clock


def measure(
    corpus: str,
    root: Path,
    paths: list[str],
    files: list[Path],
    jobs: list[str],
    cache: Path,
    repeat: int,
) -> list[Timing]:
    lines = count_lines(files)
    shutil.rmtree(cache, ignore_errors=True)
    # Files modified in the last seconds are (rightly) not trusted by the cache.
    time.sleep(max(0.0, 2.5 - (time.time() - max(p.stat().st_mtime for p in files))))
    colds: list[Clock] = []
    bares: list[tuple[Clock, int, int]] = []
    for _ in range(max(1, repeat)):  # alternately, so that both see the same load
        colds.append(zart_lint(["--no-cache", *jobs, *paths], root))
        bares.append(bare_parse(files))
    cold = min(colds, key=lambda clock: clock.wall)
    bare, ok_files, ok_lines = min(bares, key=lambda run: run[0].wall)
    cached = ["--cache-dir", str(cache), *jobs, *paths]
    for _ in range(3):
        zart_lint(cached, root)  # populate
        warm = zart_lint(cached, root)
        # Editing zart-lint itself voids its cache: during development a file
        # saved between the two runs would turn "warm" into a second cold run.
        probe = zart_lint(["--verbose", *cached], root).stderr
        if f"(cached: {len(files)}," in probe:
            break
        print("note: the cache was invalidated between runs; measuring again", file=sys.stderr)
    return [
        Timing(corpus, "zart-lint cold", cold.wall, cold.cpu, len(files), lines),
        Timing(corpus, "zart-lint warm", warm.wall, warm.cpu, len(files), lines),
        Timing(corpus, "bare libcst parse", bare.wall, bare.cpu, ok_files, ok_lines),
    ]


SMALL_TREE = {
    "shop/__init__.py": "",
    "shop/steps.py": (
        "from zart import step\n\n\n@step('charge')\nasync def charge(order: str) -> int:\n"
        "    return len(order)\n"
    ),
    "shop/flows.py": (
        "from zart import durable\n\nfrom shop.steps import charge\n\n\n@durable('pay')\n"
        "async def pay(orders: list[str]) -> None:\n    for order in orders:\n"
        "        await charge(order)\n"
    ),
}


def write_small_tree(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text('[project]\nname = "shop"\n', encoding="utf-8")
    for relative, text in SMALL_TREE.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text, encoding="utf-8")


def write_star_chain(directory: Path, depth: int = 15) -> None:
    chain = directory / "shop" / "chain"
    chain.mkdir(parents=True, exist_ok=True)
    (chain / "__init__.py").write_text("", encoding="utf-8")
    for n in range(depth):
        (chain / f"l{n}.py").write_text(f"from .l{n + 1} import *\n", encoding="utf-8")
    (chain / f"l{depth}.py").write_text(SMALL_TREE["shop/steps.py"], encoding="utf-8")
    flows = SMALL_TREE["shop/flows.py"].replace("shop.steps", "shop.chain.l0")
    (directory / "shop" / "chain_flows.py").write_text(flows, encoding="utf-8")


def fastest(args: list[str], cwd: Path, repeat: int) -> Clock:
    return min((zart_lint(args, cwd) for _ in range(max(3, repeat))), key=lambda c: c.wall)


def single_file_runs(tmpdir: Path, count: int, repeat: int) -> tuple[list[Timing], list[str]]:
    """The pre-commit case: one file named, no cache, in a small and in a big tree."""
    small = tmpdir / "small"
    write_small_tree(small)
    write_star_chain(small)
    big = tmpdir / "big"
    write_small_tree(big)
    generate_corpus(big, count)
    args = ["--no-cache", "shop/flows.py"]
    time.sleep(2.5)  # files modified in the last seconds are (rightly) not trusted
    small_run, big_run = fastest(args, small, repeat), fastest(args, big, repeat)
    chain_run = fastest(["--no-cache", "shop/chain_flows.py"], small, repeat)
    flows = [small / "shop" / "flows.py"]
    lines = count_lines(flows)
    timings = [
        Timing("1 file", "in a 3-module tree", small_run.wall, small_run.cpu, 1, lines),
        Timing("1 file", f"in a {count + 3}-module tree", big_run.wall, big_run.cpu, 1, lines),
        Timing("1 file", "15-layer star chain", chain_run.wall, chain_run.cpu, 1, lines),
    ]
    ratios = [
        f"single file: big tree / small tree = {big_run.wall / small_run.wall:.2f}x "
        f"(target <= 1.5; {big_run.wall:.2f}s against {small_run.wall:.2f}s); "
        f"15-layer star chain / small tree = {chain_run.wall / small_run.wall:.2f}x"
    ]
    return timings, ratios


def ruff_run(directory: Path, repeat: int) -> Clock | None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        return None
    runs = []
    for _ in range(max(1, repeat)):
        with Clock() as clock:
            subprocess.run(
                [ruff, "check", "--no-cache", "--exit-zero", "--quiet", "--isolated", "app"],
                cwd=directory,
                capture_output=True,
                check=False,
            )
        runs.append(clock)
    return min(runs, key=lambda clock: clock.wall)


def main() -> None:
    global PYCACHE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="generated modules (corpus b)")
    parser.add_argument("--skip-stdlib", action="store_true", help="skip corpus a")
    parser.add_argument("--stdlib-tests", action="store_true", help="include stdlib test dirs")
    parser.add_argument("--jobs", type=int, help="zart-lint --jobs (default: its own default)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="cold runs and bare parses to measure (alternately); the fastest of each counts",
    )
    parser.add_argument(
        "--fixit-python", default=sys.executable, help="interpreter with fixit installed"
    )
    args = parser.parse_args()
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"cold and bare: fastest of {max(1, args.repeat)} alternate runs"
    )
    timings: list[Timing] = []
    ratios: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zart-lint-bench-") as tmp:
        tmpdir = Path(tmp)
        PYCACHE = tmpdir / "pycache"
        warm_up()
        if not args.skip_stdlib:
            # A copy with its own pyproject.toml, so that it is the project root
            # indexed for steps (the installed stdlib may sit inside some other
            # project or git checkout, e.g. pyenv's).
            copy = tmpdir / "stdlib"
            files = copy_stdlib(copy, args.stdlib_tests)
            t = measure("stdlib", copy, ["."], files, jobs, tmpdir / "c-a", args.repeat)
            timings += t
            ratios.append(
                f"stdlib:    cold/bare = {t[0].seconds / t[2].seconds:.2f}x   "
                f"warm/cold = {t[1].seconds / t[0].seconds:.1%}   "
                f"(cpu: cold/bare = {t[0].cpu / t[2].cpu:.2f}x)"
            )

        corpus = tmpdir / "generated"
        corpus.mkdir()
        files = generate_corpus(corpus, args.files)
        t = measure("generated", corpus, ["app"], files, jobs, tmpdir / "c-b", args.repeat)
        timings += t
        line = (
            f"generated: cold/bare = {t[0].seconds / t[2].seconds:.2f}x (target <= 1)   "
            f"warm/cold = {t[1].seconds / t[0].seconds:.1%} (target < 10%)   "
            f"(cpu: cold/bare = {t[0].cpu / t[2].cpu:.2f}x, "
            f"i.e. {t[0].cpu / t[2].cpu / (os.cpu_count() or 1):.2f}x of bare per CPU)"
        )
        ruff = ruff_run(corpus, args.repeat)
        if ruff is None:
            ratios.append("ruff: skipped, not installed")
        else:
            timings.append(
                Timing("generated", "ruff check", ruff.wall, ruff.cpu, len(files), t[0].lines)
            )
            ratios.append(
                f"ruff:      zart-lint cold / ruff = {t[0].seconds / ruff.wall:.2f}x   "
                f"zart-lint warm / ruff = {t[1].seconds / ruff.wall:.2f}x (wall)"
            )
        single, single_ratios = single_file_runs(tmpdir, args.files, args.repeat)
        timings += single
        ratios += single_ratios
        fixit = fixit_run(args.fixit_python, corpus)
        if fixit is None:
            fixit_note = "fixit: skipped, not installed (pip install fixit, or --fixit-python)"
        else:
            timings.append(
                Timing(
                    "generated",
                    "fixit (1 simple rule)",
                    fixit.wall,
                    fixit.cpu,
                    len(files),
                    t[0].lines,
                )
            )
            fixit_note = f"fixit: zart-lint cold / fixit = {t[0].seconds / fixit.wall:.2f}x (wall)"
        ratios += [line, fixit_note]

    print()
    print(HEADER)
    for timing in timings:
        print(timing.row())
    print()
    for ratio in ratios:
        print(ratio)


if __name__ == "__main__":
    main()
