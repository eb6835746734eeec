"""One durable function in several deployed versions, for the safe-deploy tests.

``CODE["version"]`` picks the body (the tests switch it in-process; as a script the
first argument does). Each step body appends its name to ``RAN`` and, when
``DEPLOY_RAN_FILE`` is set, to that file: the side effects a divergence must prevent.

v1         a, b, wait_for_event("go"), c
insert     x, a, b, wait, c                        (a step inserted before recorded ones)
patched    [x if patched("add-x")], a, b, wait, c  (the same change, guarded)
deprecated deprecate_patch("add-x"), x, a, b, wait, c
append     a, b, wait, c, d                        (a step appended)

Usage as a script: ``python deploy_app.py VERSION start|resume|drive ID``.
"""

from __future__ import annotations

import asyncio
import os
import sys

import zart

CODE = {"version": "v1"}
RAN: list[str] = []


def _effect(name: str) -> str:
    RAN.append(name)
    path = os.environ.get("DEPLOY_RAN_FILE")
    if path:
        with open(path, "a") as f:
            f.write(name + "\n")
    return name


@zart.step("x")
async def step_x() -> str:
    return _effect("x")


@zart.step("a")
async def step_a() -> str:
    return _effect("a")


@zart.step("b")
async def step_b() -> str:
    return _effect("b")


@zart.step("c")
async def step_c() -> str:
    return _effect("c")


@zart.step("d")
async def step_d() -> str:
    return _effect("d")


@zart.durable("deploy-flow")
async def flow() -> list[str]:
    version = CODE["version"]
    out: list[str] = []
    if version == "insert" or (version == "patched" and await zart.patched("add-x")):
        out.append(await step_x())
    if version == "deprecated":
        zart.deprecate_patch("add-x")
        out.append(await step_x())
    out.append(await step_a())
    out.append(await step_b())
    out.append(str(await zart.wait_for_event("go")))
    out.append(await step_c())
    if version == "append":
        out.append(await step_d())
    return out


@zart.step("p-{i}")
async def part(i: int) -> int:
    _effect(f"p-{i}")
    await asyncio.sleep(0.001 * (3 - i))  # finish in another order than started
    return i * 10


@zart.durable("deploy-parallel")
async def parallel() -> list[int]:
    """Parallel branches: on replay they reach their frontier in any order."""
    first = await asyncio.gather(*(part(i) for i in range(3)))
    await zart.wait_for_event("go")
    branches = await asyncio.gather(_branch("l"), _branch("r"))
    extra = [await part(9)] if CODE["version"] == "append" else []
    return [*first, *[v for b in branches for v in b], *extra]


async def _branch(side: str) -> list[int]:
    one = await part(10).named(f"{side}-1")
    two = await part(20).named(f"{side}-2")
    return [one, two]


def main(argv: list[str]) -> int:
    version, action, eid = argv
    CODE["version"] = version
    app = zart.Zart(lease_seconds=5)
    try:
        if action == "start":
            app.submit(flow, execution_id=eid)
        elif action == "resume":
            app.resume(eid)
        asyncio.run(app.worker(concurrency=2).run_async(until_idle=True))
        print("status", app.status(eid).status, flush=True)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
