"""Many executions at once in one process, for the group-commit kill test.

    python -m group_app --executions N --steps K --log PATH

Runs executions ``g-0`` .. ``g-<N-1>`` concurrently on one event loop (``app.start``,
so their checkpoints share transactions). Every step body appends ``RAN <id> <step>``
to the log before it returns, and the durable body appends ``ACK <id> <step>`` once
the step's await has returned (its checkpoint acknowledged as committed); both with
O_APPEND + fsync, so the log's order is the order things happened, across SIGKILL.
Started again with the same arguments it resumes the executions. Prints ``DONE``.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import zart


def record(line: str) -> None:
    fd = os.open(os.environ["GROUP_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# Each kill counts as an attempt of the steps in flight (a step that keeps killing its
# process must end): allow more attempts than the test kills.
@zart.step("part-{k}", retry=zart.RetryPolicy(max_attempts=10))
async def part(eid: str, k: int) -> int:
    await asyncio.sleep(0.004)
    record(f"RAN {eid} part-{k}")
    return k * k


@zart.durable("group-commit-job")
async def job(eid: str, steps: int) -> int:
    total = 0
    for k in range(steps):
        total += await part(eid, k)
        record(f"ACK {eid} part-{k}")
    return total


async def main(executions: int, steps: int) -> None:
    app = zart.Zart(lease_seconds=30)

    async def one(i: int) -> int:
        eid = f"g-{i}"
        handle = await app.start(job, eid, steps, execution_id=eid)
        return await handle.result()

    results = await asyncio.gather(*(one(i) for i in range(executions)))
    assert results == [sum(k * k for k in range(steps))] * executions
    app.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="group_app")
    parser.add_argument("--executions", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.steps))
