"""Approvals with events: the execution waits for ``approval-0``, ``approval-1``, ...

``zart.wait_for_event(name, timeout=...)`` suspends the execution until
``app.send_event(execution_id, name, payload)`` (or ``zart send-event``) delivers
that event; an event sent before the wait is reached is kept until the wait takes
it, and each event reaches its wait exactly once. A wait with a timeout raises
``EventTimeoutError`` when the event does not come; here the body catches it.

In real life a web handler or another process sends the events; this demo sends
them itself, right after starting the execution (some before the waits run), and
never sends the last approver's, so that wait times out.

    python examples/approval_events.py --id expense-1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

import zart
from zart import EventTimeoutError, durable, step


@dataclass
class Expense:
    id: str
    amount: int
    approvers: list[str]


@dataclass
class Decision:
    approver: str
    approved: bool | None  # None: no answer in time


@step("submit-expense")
async def submit_expense(expense: Expense) -> str:
    print(f"submitted {expense.id} for {expense.amount}", flush=True)
    return expense.id


@step("record-decision-{index}")
async def record_decision(index: int, decision: Decision) -> None:
    print(f"recorded {decision.approver}: {decision.approved}", flush=True)


@durable("expense-approval")
async def expense_approval(expense: Expense, timeout: float) -> list[Decision]:
    await submit_expense(expense)
    decisions = []
    for i, approver in enumerate(expense.approvers):
        try:
            payload = await zart.wait_for_event(f"approval-{i}", timeout=timeout)
            decision = Decision(approver, bool(payload["approved"]))
        except EventTimeoutError:
            decision = Decision(approver, None)
        await record_decision(i, decision)
        decisions.append(decision)
    return decisions


async def demo(app: zart.Zart, execution_id: str, expense: Expense, timeout: float) -> Any:
    handle = await app.start(expense_approval, expense, timeout, execution_id=execution_id)
    if handle.status().status not in ("completed", "failed", "cancelled"):
        # Everyone but the last approver answers.
        for i, approver in enumerate(expense.approvers[:-1]):
            app.send_event(execution_id, f"approval-{i}", {"by": approver, "approved": True})
    return await handle.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="approval-demo", help="execution id (reuse it to resume)")
    parser.add_argument("--timeout", type=float, default=0.3, help="seconds to wait per approver")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    expense = Expense(id="exp-42", amount=120, approvers=["ana", "ben", "carla"])
    result = asyncio.run(demo(app, args.id, expense, args.timeout))
    print(f"result: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
