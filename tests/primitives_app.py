"""Durable flows for tests/runtime/test_primitives_durable.py, run in real child processes.

Child side (environment from the ``child_env`` fixture)::

    python -m primitives_app run FLOW --id ID [--args JSON]   # app.run(FLOW, *args)
    python -m primitives_app worker [--concurrency N]         # until no execution is active

``FLOW`` is a key of ``FLOWS``. Step bodies append ``"<execution id> <step name>"`` to the
side-effect log ``$PRIM_LOG`` (O_APPEND + fsync, so it survives SIGKILL) and print
``RAN <step name> <unix time>``. ``run`` prints ``READY <unix time>`` before calling
``app.run`` and then ``RESULT <json>`` (the result, typed-JSON encoded), ``CANCELLED``,
or ``FAILED <error type> <message>``. ``worker`` prints ``WORKER-DONE <n>`` at the end.

``$KILL_AT=<point>:<step name>`` makes the child SIGKILL itself (after printing
``KILLED <point> <step name>``) at one of these points:

================  ========================================================================
``before``        in a step body, before its side effect (after its delay, if any)
``after-insert``  in a transactional step body, after its INSERT (transaction not committed)
``after-commit``  in the durable body, right after the step returned (checkpoint committed)
================  ========================================================================

The bottom of this file holds the parent-side helpers (``Child``, ``spawn``, ``effects``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import zart
from zart import EventTimeoutError, durable, step

from childproc import ChildProcess

ORDERS_TABLE = "prim_orders"

# --------------------------------------------------------------------------- kill points


def maybe_die(point: str, name: str) -> None:
    if os.environ.get("KILL_AT") == f"{point}:{name}":
        print(f"KILLED {point} {name}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # never reached


def effect(eid: str, name: str) -> None:
    """Record that a step body ran (its side effect), durably, then say so on stdout."""
    path = os.environ.get("PRIM_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{eid} {name}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    print(f"RAN {name} {time.time():.6f}", flush=True)


async def work(eid: str, name: str, delay: float = 0.0) -> None:
    if delay:
        await asyncio.sleep(delay)
    maybe_die("before", name)
    effect(eid, name)


# --------------------------------------------------------------------------- timers


@step("before-nap")
async def before_nap(eid: str) -> float:
    await work(eid, "before-nap")
    return time.time()


@step("after-nap")
async def after_nap(eid: str) -> float:
    await work(eid, "after-nap")
    return time.time()


@durable("prim-timer")
async def timer_flow(eid: str, seconds: float) -> dict[str, float]:
    start = await before_nap(eid)
    await zart.sleep("nap", seconds)
    woke = await zart.now("woke")
    end = await after_nap(eid)
    return {"start": start, "woke": woke.timestamp(), "end": end}


@durable("prim-alarm")
async def alarm_flow(eid: str, delay: float) -> float:
    set_at = await zart.now("set-at")  # recorded: the alarm time is the same on replay
    await zart.sleep_until("alarm", set_at + timedelta(seconds=delay))
    return (await zart.now("rang")).timestamp()


@step("quick-{index}")
async def quick_step(eid: str, index: int) -> int:
    await work(eid, f"quick-{index}")
    return index


@durable("prim-quick")
async def quick_flow(eid: str, n: int) -> int:
    total = 0
    for i in range(n):
        total += await quick_step(eid, i)
    return total


# --------------------------------------------------------------------------- events


@step("record-{index}")
async def record_approval(eid: str, index: int, payload: Any) -> None:
    await work(eid, f"record-{index}")


@durable("prim-approvals")
async def approvals_flow(eid: str, n: int, timeout: float | None) -> list[Any]:
    got: list[Any] = []
    for i in range(n):
        try:
            payload = await zart.wait_for_event(f"approval-{i}", timeout=timeout)
        except EventTimeoutError:
            payload = "timed-out"
        await record_approval(eid, i, payload)
        got.append(payload)
    return got


# --------------------------------------------------------------------------- cancel


@step("tick-{index}")
async def tick(eid: str, index: int, delay: float) -> int:
    await work(eid, f"tick-{index}", delay)
    return index


@durable("prim-ticks")
async def ticks_flow(eid: str, n: int, delay: float) -> int:
    for i in range(n):
        await tick(eid, i, delay)
    return n


# --------------------------------------------------------------------------- children


@step("c-{index}")
async def child_part(tag: str, index: int) -> int:
    await work(tag, f"c-{index}", 0.05)
    return index * 10


@durable("prim-child")
async def child_flow(tag: str, n: int) -> list[int]:
    return [await child_part(tag, i) for i in range(n)]


@step("p-before")
async def parent_before(eid: str) -> int:
    await work(eid, "p-before")
    return 1


@step("p-after")
async def parent_after(eid: str, kid: list[int]) -> int:
    await work(eid, "p-after")
    return sum(kid)


@durable("prim-parent")
async def parent_flow(eid: str, n: int) -> dict[str, Any]:
    await parent_before(eid)
    kid = await zart.run_child(child_flow, f"{eid}/kid", n, name="kid")
    maybe_die("after-commit", "kid")
    total = await parent_after(eid, kid)
    return {"kid": kid, "total": total}


# --------------------------------------------------------------------------- fan-out


@step("part-{index}")
async def part(eid: str, index: int) -> int:
    await work(eid, f"part-{index}", 0.1 * index)
    return index * index


@durable("prim-fanout")
async def fanout_flow(eid: str, n: int) -> list[int]:
    return list(await asyncio.gather(*(part(eid, i) for i in range(n))))


# --------------------------------------------------------------------------- captured values


def draw() -> float:
    return random.random()


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@step("use-values")
async def use_values(eid: str, when: datetime, value: float, ident: uuid.UUID) -> str:
    await work(eid, "use-values")
    return f"{when.isoformat()}|{value}|{ident}"


@durable("prim-captured")
async def captured_flow(eid: str) -> dict[str, Any]:
    when = await zart.now("t0")
    value = await zart.capture("draw", draw)
    ident = await zart.capture("ident", new_id)
    print(f"CAPTURED {when.isoformat()} {value!r} {ident}", flush=True)
    used = await use_values(eid, when, value, ident)
    return {"when": when.isoformat(), "value": value, "ident": str(ident), "used": used}


# --------------------------------------------------------------------------- transactional steps


def create_orders_table(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} "
                "(execution_id VARCHAR(255) NOT NULL, idx INTEGER NOT NULL)"
            )
    finally:
        engine.dispose()


@step("order-{index}", transactional=True)
def insert_order(eid: str, index: int) -> int:
    name = f"order-{index}"
    conn = zart.transaction()
    conn.execute(
        sa.text(f"INSERT INTO {ORDERS_TABLE} (execution_id, idx) VALUES (:eid, :idx)"),
        {"eid": eid, "idx": index},
    )
    effect(eid, name)
    maybe_die("after-insert", name)  # the row is written, the transaction not committed
    return index


@durable("prim-orders")
async def orders_flow(eid: str, n: int) -> int:
    for i in range(n):
        await insert_order(eid, i)
        maybe_die("after-commit", f"order-{i}")
    return n


# --------------------------------------------------------------------------- deadlines


@step("slow")
async def slow(eid: str) -> None:
    effect(eid, "slow")
    await asyncio.sleep(60)


@durable("prim-deadline", timeout=2.0)
async def deadline_flow(eid: str) -> str:
    await slow(eid)
    return "unreachable"


FLOWS: dict[str, Any] = {
    "timer": timer_flow,
    "alarm": alarm_flow,
    "quick": quick_flow,
    "approvals": approvals_flow,
    "ticks": ticks_flow,
    "parent": parent_flow,
    "fanout": fanout_flow,
    "captured": captured_flow,
    "orders": orders_flow,
    "deadline": deadline_flow,
}


async def _work_until_done(app: zart.Zart, concurrency: int) -> int:
    worker = app.worker(concurrency=concurrency, poll_interval=0.05)
    task = asyncio.ensure_future(worker.run_async())
    while not task.done():
        await asyncio.sleep(0.05)
        if app.ops_store.active_count() == 0:
            worker.stop()
    return await task


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="primitives_app")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("flow", choices=sorted(FLOWS))
    run.add_argument("--id", required=True)
    run.add_argument("--args", default="[]", help="JSON list of positional arguments")
    worker = sub.add_parser("worker")
    worker.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)

    app = zart.Zart(lease_seconds=float(os.environ.get("LEASE_SECONDS", "2")))
    try:
        if args.command == "worker":
            app.ops_store.ensure_schema()
            print(f"READY {time.time():.6f}", flush=True)
            done = asyncio.run(_work_until_done(app, args.concurrency))
            print(f"WORKER-DONE {done}", flush=True)
            return 0
        flow = FLOWS[args.flow]
        if args.flow == "orders":
            create_orders_table(app.database_url)
        print(f"READY {time.time():.6f}", flush=True)
        try:
            result = app.run(flow, *json.loads(args.args), execution_id=args.id)
        except zart.ExecutionCancelledError:
            print("CANCELLED", flush=True)
            return 0
        except zart.TaskError as exc:
            print(f"FAILED {exc.error_type} {exc.message}", flush=True)
            return 0
        print(f"RESULT {flow.result_codec.dumps(result)}", flush=True)
        return 0
    finally:
        app.close()


# --------------------------------------------------------------------------- parent side


class Child(ChildProcess):
    """A running ``python -m primitives_app ...``; its stdout lines are collected as they come."""

    def __init__(self, env: Mapping[str, str], args: Sequence[str], stderr_path: Path) -> None:
        super().__init__(env, args, stderr_path=stderr_path, module="primitives_app")

    def finish(self, timeout: float = 30.0) -> Child:
        """Wait for a normal exit (asserting it) and return self."""
        rc = self.wait(timeout)
        assert rc == 0, f"{self} exited with {rc}; lines: {self.lines}\n{self.stderr()}"
        return self

    @property
    def ready(self) -> float:
        """When the child was about to run (or resume) the execution."""
        text = self.field("READY")
        assert text is not None, f"{self}: no READY line; lines: {self.lines}"
        return float(text)

    def result(self) -> Any:
        text = self.field("RESULT")
        assert text is not None, f"{self}: no RESULT line; lines: {self.lines}\n{self.stderr()}"
        return json.loads(text)

    @property
    def ran(self) -> list[str]:
        """The step bodies that ran in this child, in order."""
        return [line.split()[1] for line in self.lines if line.startswith("RAN ")]

    def ran_at(self, name: str) -> float:
        for line in self.lines:
            parts = line.split()
            if parts[0] == "RAN" and parts[1] == name:
                return float(parts[2])
        raise AssertionError(f"{self}: step {name} did not run here; lines: {self.lines}")


def spawn(
    env: Mapping[str, str],
    tmp_path: Path,
    *args: str,
    kill_at: str | None = None,
) -> Child:
    full_env = {**env, "PRIM_LOG": str(tmp_path / "effects.log")}
    if kill_at:
        full_env["KILL_AT"] = kill_at
    stderr_path = tmp_path / f"child-{time.monotonic_ns()}.stderr"
    return Child(full_env, args, stderr_path)


def run_flow(
    env: Mapping[str, str],
    tmp_path: Path,
    flow: str,
    execution_id: str,
    *args: Any,
    kill_at: str | None = None,
) -> Child:
    return spawn(
        env, tmp_path, "run", flow, "--id", execution_id, "--args", json.dumps(args),
        kill_at=kill_at,
    )  # fmt: skip


def effects(tmp_path: Path, execution_id: str | None = None) -> Counter[str]:
    """How often each step body ran (for one execution id, or all)."""
    path = tmp_path / "effects.log"
    if not path.exists():
        return Counter()
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        eid, name = line.split(" ")
        if execution_id is None or eid == execution_id:
            counts[name] += 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
