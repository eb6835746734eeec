"""Pause rules: hold every order before its charge step, then let them all go on.

The card processor is down. One rule, ``app.pause(step="charge:*")`` (the CLI:
``zart pause --step 'charge:*'``), makes every execution about to run a step named
``charge:...`` finish its current step and stop there, as ``paused``, in every
worker within about a second. Removing the rule (``app.resume_rule(rule.id)``,
``zart resume --rule ID``) puts them back to pending: they replay their journal and
continue exactly where they stopped, each step having run once.

    python examples/flow_control_pause.py
"""

from __future__ import annotations

import asyncio
import os
import sys

import zart
from zart import durable, step


@step("reserve:{order}")
async def reserve(order: str) -> str:
    print(f"reserved {order}", flush=True)
    return f"R-{order}"


@step("charge:{order}")
async def charge(order: str, cents: int) -> int:
    print(f"charged {order}", flush=True)
    return cents


@durable("pause-demo-order")
async def place_order(order: str, cents: int) -> str:
    reservation = await reserve(order)
    charged = await charge(order, cents)
    return f"{order}: {reservation}, {charged} cents"


ORDERS = {"a-1": 1250, "a-2": 990, "a-3": 4100}


def run_workers(app: zart.Zart) -> None:
    """A worker in this process, until nothing is runnable (a paused order is not)."""
    worker = app.worker(concurrency=4, poll_interval=0.05)
    asyncio.run(worker.run_async(until_idle=True))


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout: the steps' effects and the result


def main() -> int:
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    rule = app.pause(step="charge:*", reason="card processor down", actor="ops")
    log(f"pause rule {rule.id}: {rule.scope}")
    for order, cents in ORDERS.items():
        app.submit(place_order, order, cents, execution_id=f"pause-demo-{order}")
    run_workers(app)
    for order in ORDERS:  # paused before charge:<order> (completed on a second run)
        st = app.status(f"pause-demo-{order}")
        log(f"{st.id}: {st.status}" + (f" by rule {st.paused_by}" if st.paused_by else ""))
    resumed = app.resume_rule(rule.id, actor="ops")
    log(f"resumed {len(resumed.execution_ids)} orders")
    run_workers(app)
    results = [app.result(f"pause-demo-{order}") for order in ORDERS]
    print("result:", results, flush=True)
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
