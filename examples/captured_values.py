"""Captured values: record non-deterministic values once, get them back on replay.

A durable body runs again from the top after a crash, so a clock read or a random
number taken directly in it would change between runs (zart-lint flags that as
ZRT007). ``await zart.now(name)`` and ``await zart.capture(name, fn)`` store the
value the first time and return the stored value on every replay. Run this twice
with the same --id: the same code, timestamp and coupon come back.

    python examples/captured_values.py --id coupon-1
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime

import zart
from zart import durable, step


@dataclass
class Coupon:
    code: str
    batch: uuid.UUID
    issued_at: datetime


def new_code() -> str:
    return secrets.token_hex(4)


@step("email-coupon")
async def email_coupon(user: str, coupon: Coupon) -> None:
    print(f"emailed {coupon.code} to {user}", flush=True)


@durable("issue-coupon")
async def issue_coupon(user: str) -> Coupon:
    issued_at = await zart.now("issued-at")
    code = await zart.capture("coupon-code", new_code)
    batch = await zart.capture("batch-id", uuid.uuid4)
    coupon = Coupon(code=code, batch=batch, issued_at=issued_at)
    await email_coupon(user, coupon)
    return coupon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="captured-demo", help="execution id (reuse it to resume)")
    parser.add_argument("--user", default="ana")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    result = app.run(issue_coupon, args.user, execution_id=args.id)
    print(f"result: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
