"""Chunked processor: a large dataset in fixed-size chunks, one durable step per chunk.

python examples/chunked_processor.py --id chunks-1 --total 1050
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import zart
from zart import durable, step

CHUNK_SIZE = 100


@dataclass
class BatchInput:
    total: int


@step("get-total-count")
async def get_total_count(total: int) -> int:
    return total


@step("process-chunk-{chunk_idx}")
async def process_chunk(chunk_idx: int, total: int) -> int:
    offset = chunk_idx * CHUNK_SIZE
    items = range(offset, min(offset + CHUNK_SIZE, total))
    return len(items)


@durable("chunked-processor")
async def run_chunked(data: BatchInput) -> int:
    total = await get_total_count(data.total)
    num_chunks = -(-total // CHUNK_SIZE)  # ceiling division
    processed = 0
    for chunk_idx in range(num_chunks):
        processed += await process_chunk(chunk_idx, total)
    return processed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", default="chunked-demo")
    parser.add_argument("--total", type=int, default=1050)
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    processed = app.run(run_chunked, BatchInput(total=args.total), execution_id=args.id)
    print(f"result: {processed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
