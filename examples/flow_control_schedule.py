"""Schedules from Python: ``app.schedule`` / ``app.unschedule``.

A schedule starts an execution of a durable function on a cron expression (in a
timezone) or every N seconds. Defining it again, from any process, changes
nothing, so every worker may declare its schedules at start-up. Occurrences are
started by workers that run the scheduler:

    python examples/flow_control_schedule.py        # define it (and run one now)
    zart worker examples/flow_control_schedule.py --scheduler
    zart schedule list                               # with the next 5 runs
"""

from __future__ import annotations

import os
import sys

import zart
from zart import durable, step


@step("collect-{team}")
async def collect(team: str) -> list[str]:
    print(f"collected the open tickets of {team}", flush=True)
    return [f"{team}-1", f"{team}-2"]


@durable("morning-digest")
async def morning_digest(team: str) -> int:
    return len(await collect(team))


def main() -> int:
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    sched = app.schedule(
        "ops-digest",
        morning_digest,
        "ops",
        cron="0 8 * * MON-FRI",
        timezone="Europe/Paris",
        overlap="buffer_one",  # a slow digest delays the next one instead of doubling up
        backfill=0,  # after downtime: one late run, not one per missed morning
    )
    # One run now, under an id of our own (occurrences are "ops-digest@<UTC time>").
    tickets = app.run(morning_digest, "ops", execution_id="ops-digest-manual")
    print(f"result: {sched.name} {sched.cron} {len(sched.next_runs)} runs ahead, tickets={tickets}")
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
