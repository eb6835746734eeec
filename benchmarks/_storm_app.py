"""The durable function of ``recovery_storm.py``: imported by the script (to submit)
and by its ``zart worker`` processes (to run)."""

from __future__ import annotations

from zart import durable, step

STEPS = 3


@step("storm-step-{i}")
async def storm_step(i: int, job: int) -> int:
    return job + i


@durable("storm-job")
async def storm_job(job: int) -> int:
    total = 0
    for i in range(STEPS):
        total += await storm_step(i, job)
    return total


def expected(job: int) -> int:
    return STEPS * job + STEPS * (STEPS - 1) // 2
