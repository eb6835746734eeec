"""Durable timers: reminders spaced out with ``zart.sleep`` and ``zart.sleep_until``.

A sleep of more than a second gives the execution's worker slot back: the
execution is stored as ``sleeping`` with its wake time, and whoever runs it
next (this script again, or ``zart worker``) wakes it on time, even after a
restart. Try a long interval, kill the script while it sleeps, and run it again
with the same --id: it wakes at the original time, not a full interval later.

    python examples/timers.py --id reminders-1 --interval 5
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

import zart
from zart import durable, step


@step("send-reminder-{n}")
async def send_reminder(n: int, user: str) -> str:
    print(f"reminded {user} (#{n})", flush=True)
    return f"reminder-{n}:{user}"


@durable("reminders")
async def reminders(user: str, count: int, interval: float) -> list[str]:
    started = await zart.now("started-at")  # recorded once: replay sees the same moment
    sent = []
    for n in range(count):
        if n:
            await zart.sleep(f"wait-before-{n}", interval)  # one name per iteration
        sent.append(await send_reminder(n, user))
    # A moment that has already passed (on a replay, say) returns at once.
    await zart.sleep_until("follow-up", started + timedelta(seconds=interval))
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="timers-demo", help="execution id (reuse it to resume)")
    parser.add_argument("--user", default="ana")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between reminders")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    result = app.run(reminders, args.user, args.count, args.interval, execution_id=args.id)
    print(f"result: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
