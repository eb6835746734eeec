"""Batch processor: fetch a list inside a step, then one step per item.

Run it, kill it (Ctrl-C or kill -9) half-way, and run it again with the same
--id: finished items are skipped, work resumes at the first unfinished one.

    python examples/batch_processor.py --id batch-1 --items 20 --delay 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

import zart
from zart import durable, step


@dataclass
class Item:
    id: int
    payload: str


@dataclass
class Output:
    item_id: int
    checksum: int


@dataclass
class BatchData:
    size: int
    delay: float = 0.0
    recipients: tuple[str, ...] = ()


@dataclass
class BatchResult:
    processed: int
    total_checksum: int


@step("fetch-items")
async def fetch_items(size: int) -> list[Item]:
    # Fetched inside a step: after a crash, replay sees exactly this list again.
    return [Item(id=i, payload=f"item-{i}") for i in range(size)]


@step("process-item-{index}")
async def process_item(index: int, item: Item, delay: float) -> Output:
    await asyncio.sleep(delay)
    print(f"ran process-item-{index}", flush=True)
    return Output(item_id=item.id, checksum=sum(item.payload.encode()))


@step("send-notification")
async def send_notification(user_id: str) -> None:
    print(f"notified {user_id}", flush=True)


@durable("batch-processor")
async def process_batch(data: BatchData) -> BatchResult:
    items = await fetch_items(data.size)
    outputs = []
    for i, item in enumerate(items):
        outputs.append(await process_item(i, item, data.delay))  # process-item-0, -1, ...
    for i, user_id in enumerate(data.recipients):
        await send_notification(user_id).named(f"send-notification-{i}")
    return BatchResult(processed=len(outputs), total_checksum=sum(o.checksum for o in outputs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="batch-demo", help="execution id (reuse it to resume)")
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per item")
    parser.add_argument("--notify", nargs="*", default=["ana", "ben"])
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    data = BatchData(size=args.items, delay=args.delay, recipients=tuple(args.notify))
    result = app.run(process_batch, data, execution_id=args.id)
    print(f"result: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
