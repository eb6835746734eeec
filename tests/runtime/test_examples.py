"""Every script in examples/ runs, prints its result, and replays it without re-running steps.

Each example runs as a subprocess against its own temporary SQLite database, twice
with the same execution id. The first run must exit 0 and print the expected
``result: ...`` line; the second must print the same result and nothing else (no
step's side-effect line), and leave every checkpoint untouched (same rows, same
timings, same attempt counts): nothing ran again.

The examples run in parallel (one per CPU): first runs, then second runs.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if not p.stem.startswith("_"))

# The result line each example prints. A new example must be added here (the test
# for it fails until it is). ``re:`` marks a regular expression (values that differ
# between fresh databases, like captured random values).
EXPECTED: dict[str, str] = {
    "batch_processor": "result: BatchResult(processed=10, total_checksum=5285)",
    "chunked_processor": "result: 1050",
    "data_pipeline": "result: 3.30",
    "notifications": "result: ['sent:ana', 'sent:ben', 'sent:carla']",
    "reports": (
        "result: [Summary(report_id='r-1', flagged=False), Summary(report_id='r-2', flagged=True), "
        "Summary(report_id='r-3', flagged=True)]"
    ),
    "timers": "result: ['reminder-0:ana', 'reminder-1:ana', 'reminder-2:ana']",
    "approval_events": (
        "result: [Decision(approver='ana', approved=True), Decision(approver='ben', "
        "approved=True), Decision(approver='carla', approved=None)]"
    ),
    "child_executions": (
        "result: [Shipment(sku='mug', tracking='TRK-BOX-MUG-400'), "
        "Shipment(sku='lamp', tracking='TRK-BOX-LAMP-1250')]"
    ),
    "parallel_fanout": "result: 1.45",
    "captured_values": (
        r"re:result: Coupon\(code='[0-9a-f]{8}', batch=UUID\('[0-9a-f-]{36}'\), "
        r"issued_at=datetime\.datetime\(.*tzinfo=datetime\.timezone\.utc\)\)"
    ),
    "transactional_step": "result: 11550 cents in 3 rows",
    "deadlines_and_fallbacks": "result: ['lamp: 90', 'no report (DeadlineExceeded)']",
    "flow_control_pause": (
        "result: ['a-1: R-a-1, 1250 cents', 'a-2: R-a-2, 990 cents', 'a-3: R-a-3, 4100 cents']"
    ),
    "flow_control_retention": "result: size=10 would=0 deleted=0",
    "flow_control_queues": (
        "result: first=reset:ana, doc-7 v3, sent 'reminder' to cy@example.com, reports=2"
    ),
    "flow_control_schedule": "result: ops-digest 0 8 * * MON-FRI 5 runs ahead, tickets=2",
}

# Side-effect lines the first run must print (its steps really ran).
FIRST_RUN_EFFECTS: dict[str, list[str]] = {
    "batch_processor": ["ran process-item-0", "ran process-item-9", "notified ana"],
    "data_pipeline": ["wrote apple: 1.20"],
    "notifications": ["notified ana", "notified carla"],
    "reports": ["told ben about r-2", "told carla about r-3"],
    "timers": ["reminded ana (#0)", "reminded ana (#2)"],
    "approval_events": ["submitted exp-42 for 120", "recorded carla: None"],
    "child_executions": ["packed mug", "labelled box-lamp", "told the customer about 2 shipments"],
    "parallel_fanout": ["fetched pear", "fetched plum"],
    "captured_values": ["emailed "],
    "transactional_step": ["stored invoice 0 for ana", "stored invoice 2 for carla"],
    "deadlines_and_fallbacks": [
        "calling the pricing api for lamp",
        "building the report for lamp",
    ],
    "flow_control_pause": ["reserved a-1", "charged a-3"],
    "flow_control_retention": ["rendered the report of 2026-11-25"],
    "flow_control_schedule": ["collected the open tickets of ops"],
}

RUN_TIMEOUT = 60.0
# Each example takes well under 3 s on an idle machine (tiny sleeps); this bound only
# catches one that waits for real (a long sleep or timeout) on a busy CI machine.
MAX_SECONDS = 10.0


@dataclass
class Run:
    returncode: int
    stdout: list[str]
    stderr: str
    seconds: float


@dataclass
class ExampleRuns:
    name: str
    db: Path
    runs: list[Run] = field(default_factory=list)
    checkpoints: list[list[tuple[object, ...]]] = field(default_factory=list)


def _env(db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ZART_DATABASE_URL"] = f"sqlite:///{db}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _checkpoints(db: Path) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        steps = conn.execute(
            "SELECT execution_id, step_name, status, attempts, output, started_at, finished_at "
            "FROM zart_steps ORDER BY execution_id, step_name"
        ).fetchall()
        executions = conn.execute(
            "SELECT id, status, attempts, result, finished_at FROM zart_executions ORDER BY id"
        ).fetchall()
    return [*executions, *steps]


def _run_one(ex: ExampleRuns, cwd: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / f"{ex.name}.py")],
        cwd=cwd,
        env=_env(ex.db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    ex.runs.append(Run(proc.returncode, out.splitlines(), err, time.monotonic() - started))
    ex.checkpoints.append(_checkpoints(ex.db))


def _run_all(examples: dict[str, ExampleRuns], cwd: Path) -> None:
    """One run of every example, as many at a time as there are CPUs."""
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(_run_one, ex, cwd) for ex in examples.values()]:
            future.result()


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExampleRuns]:
    base = tmp_path_factory.mktemp("examples")
    examples = {name: ExampleRuns(name, base / f"{name}.db") for name in EXAMPLES}
    _run_all(examples, base)  # first run
    _run_all(examples, base)  # same ids again: everything comes from the checkpoints
    return examples


def _result_line(run: Run) -> str:
    lines = [line for line in run.stdout if line.startswith("result: ")]
    assert len(lines) == 1, f"expected one 'result: ...' line, got {run.stdout}"
    return lines[0]


def _matches(expected: str, line: str) -> bool:
    if expected.startswith("re:"):
        return re.fullmatch(expected[3:], line) is not None
    return line == expected


def test_every_example_is_listed() -> None:
    assert set(EXAMPLES) == set(EXPECTED), "add the new example's result line to EXPECTED"
    assert {
        "timers",
        "approval_events",
        "child_executions",
        "parallel_fanout",
        "captured_values",
        "transactional_step",
        "deadlines_and_fallbacks",
    } <= set(EXAMPLES)


@pytest.mark.xdist_group("examples")  # one worker runs them all (module-scoped fixture)
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_replays_without_rerunning_steps(
    name: str, example_runs: dict[str, ExampleRuns]
) -> None:
    ex = example_runs[name]
    first, second = ex.runs
    assert first.returncode == 0, f"{name} failed:\n{first.stderr}"
    result = _result_line(first)
    assert name in EXPECTED, f"no expected result for examples/{name}.py"
    assert _matches(EXPECTED[name], result), f"{name} printed {result!r}"
    for effect in FIRST_RUN_EFFECTS.get(name, []):
        assert any(line.startswith(effect) for line in first.stdout), (name, effect, first.stdout)
    assert first.seconds < MAX_SECONDS, f"{name} took {first.seconds:.1f}s"
    assert ex.checkpoints[0], f"{name} wrote no checkpoints"

    assert second.returncode == 0, f"{name} failed on its second run:\n{second.stderr}"
    # The same result, and nothing else: no step body ran again.
    assert second.stdout == [result], f"{name} re-ran something: {second.stdout}"
    assert ex.checkpoints[1] == ex.checkpoints[0], f"{name} changed its checkpoints on replay"
