"""Retention: delete old finished executions, from Python, the CLI or a worker.

Every execution keeps its row, its steps, events and audit rows until something
deletes them. ``app.gc`` deletes those that finished more than an age ago (a tree of
child executions goes whole, once every member has finished; open executions are
never touched), in short batches that run safely beside workers:

    python examples/flow_control_retention.py
    zart gc --older-than 30d --dry-run      # what would go
    zart gc --older-than 30d                # delete it
    zart worker examples/flow_control_retention.py --retention 30d   # in the background
"""

from __future__ import annotations

import os
import sys

import zart
from zart import durable, step


@step("render-{day}")
async def render(day: str) -> int:
    print(f"rendered the report of {day}", flush=True)
    return len(day)


@durable("daily-report")
async def daily_report(day: str) -> int:
    return await render(day)


def main() -> int:
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    size = app.run(daily_report, "2026-11-25", execution_id="report-2026-11-25")
    # What a 30-day retention would delete now (nothing: this report is brand new).
    would = app.gc(older_than="30d", dry_run=True)
    # Delete the finished reports older than 30 days: same counts as the dry run.
    done = app.gc("30d", statuses=["completed", "failed", "cancelled"], durable="daily-report")
    # A worker can do it in the background, a bounded batch a minute:
    #     app.worker(retention="30d").run()
    print(f"result: size={size} would={would.executions} deleted={done.executions}")
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
