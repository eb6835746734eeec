"""Notifications named at the call site with ``.named()``.

The step's own name is constant ("send-notification"); each call gets a unique
name from orchestration data the step does not see (the loop index).

    python examples/notifications.py --id notify-1 ana ben carla
"""

from __future__ import annotations

import argparse
import os
import sys

import zart
from zart import durable, step


@step("send-notification")
async def send_notification(user_id: str) -> str:
    print(f"notified {user_id}", flush=True)
    return f"sent:{user_id}"


@durable("notify-users")
async def notify_users(recipients: list[str]) -> list[str]:
    receipts = []
    for i, user_id in enumerate(recipients):
        receipts.append(await send_notification(user_id).named(f"send-notification-{i}"))
    return receipts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", default="notify-demo")
    parser.add_argument("users", nargs="*", default=["ana", "ben", "carla"])
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    receipts = app.run(notify_users, args.users, execution_id=args.id)
    print(f"result: {receipts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
