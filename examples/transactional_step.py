"""Transactional steps: write your own rows in the same transaction as the checkpoint.

A step declared ``@step(..., transactional=True)`` gets the database connection of
its checkpoint's transaction from ``zart.transaction()``. Its rows and its
checkpoint commit together or not at all, so a crash can neither lose the rows of
a completed step nor write them twice when the step runs again. The table lives in
the same database as zart's own tables.

    python examples/transactional_step.py --id invoices-1
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import sqlalchemy as sa

import zart
from zart import durable, step

TABLE = "example_invoices"


@dataclass
class Invoice:
    customer: str
    cents: int


CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (batch VARCHAR(255) NOT NULL, "
    "idx INTEGER NOT NULL, customer VARCHAR(255) NOT NULL, cents INTEGER NOT NULL)"
)


@step("store-invoice-{index}", transactional=True)
def store_invoice(index: int, batch: str, invoice: Invoice) -> int:
    conn = zart.transaction()  # the checkpoint's own transaction: do not commit it
    # The table is created here, in the same transaction, so the example works however
    # it is run: its main(), `zart run examples/transactional_step.py:store_invoices`,
    # or a `zart worker` on a database that has never seen it.
    conn.exec_driver_sql(CREATE_TABLE)
    conn.execute(
        sa.text(f"INSERT INTO {TABLE} (batch, idx, customer, cents) VALUES (:b, :i, :c, :n)"),
        {"b": batch, "i": index, "c": invoice.customer, "n": invoice.cents},
    )
    print(f"stored invoice {index} for {invoice.customer}", flush=True)
    return invoice.cents


@durable("store-invoices")
async def store_invoices(batch: str, invoices: list[Invoice]) -> int:
    total = 0
    for i, invoice in enumerate(invoices):
        total += await store_invoice(i, batch, invoice)
    return total


def create_table(url: str) -> None:
    """Create the table up front too (``count_rows`` reads it even before any step ran)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(CREATE_TABLE)
    engine.dispose()


def count_rows(url: str, batch: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        query = sa.text(f"SELECT COUNT(*) FROM {TABLE} WHERE batch = :b")
        rows = int(conn.execute(query, {"b": batch}).scalar_one())
    engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="invoices-demo", help="execution id (reuse it to resume)")
    args = parser.parse_args(argv)
    url = os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db")
    create_table(url)
    app = zart.Zart(url)
    invoices = [Invoice("ana", 1200), Invoice("ben", 450), Invoice("carla", 9900)]
    total = app.run(store_invoices, args.id, invoices, execution_id=args.id)
    # Exactly one row per invoice, however often this script runs or crashes.
    print(f"result: {total} cents in {count_rows(url, args.id)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
