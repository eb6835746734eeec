"""Data pipeline: read records, transform each one, write the results — all durable.

python examples/data_pipeline.py --id pipeline-1
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from decimal import Decimal

import zart
from zart import durable, step


@dataclass
class Record:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass
class Output:
    sku: str
    total: Decimal


@dataclass
class PipelineInput:
    source: str


@step("fetch-records")
async def fetch_records(source: str) -> list[Record]:
    # A real pipeline would query `source`; fetched inside a step so replay is stable.
    return [
        Record("apple", 3, Decimal("0.40")),
        Record("pear", 2, Decimal("0.55")),
        Record("plum", 10, Decimal("0.10")),
    ]


@step("transform-record-{index}")
async def transform_record(index: int, record: Record) -> Output:
    return Output(sku=record.sku, total=record.unit_price * record.quantity)


@step("write-results")
async def write_results(outputs: list[Output]) -> int:
    for output in outputs:
        print(f"wrote {output.sku}: {output.total}", flush=True)
    return len(outputs)


@durable("data-pipeline")
async def run_pipeline(data: PipelineInput) -> Decimal:
    records = await fetch_records(data.source)
    outputs = []
    for i, record in enumerate(records):
        outputs.append(await transform_record(i, record))
    await write_results(outputs)
    return sum((o.total for o in outputs), Decimal(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", default="pipeline-demo")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    total = app.run(run_pipeline, PipelineInput(source="orders"), execution_id=args.id)
    print(f"result: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
