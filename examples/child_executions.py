"""Child executions: an order ships each package as its own durable execution.

``await zart.run_child(ship_package, package, name=f"ship-{i}")`` starts (or, after a
crash, finds again) the child execution ``"<order id>/ship-<i>"`` and returns its
result. Each child has its own steps and status (``zart status <id>/ship-0``); if the
process dies, running the order again resumes the child where it stopped and the
parent continues with the child's result.

    python examples/child_executions.py --id order-1
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import zart
from zart import durable, step


@dataclass
class Package:
    sku: str
    weight_kg: float


@dataclass
class Shipment:
    sku: str
    tracking: str


@step("pack")
async def pack(package: Package) -> str:
    print(f"packed {package.sku}", flush=True)
    return f"box-{package.sku}"


@step("print-label")
async def print_label(box: str, weight_kg: float) -> str:
    print(f"labelled {box}", flush=True)
    return f"TRK-{box.upper()}-{int(weight_kg * 1000)}"


@durable("ship-package")
async def ship_package(package: Package) -> Shipment:
    box = await pack(package)
    tracking = await print_label(box, package.weight_kg)
    return Shipment(sku=package.sku, tracking=tracking)


@step("notify-customer")
async def notify_customer(shipments: list[Shipment]) -> int:
    print(f"told the customer about {len(shipments)} shipments", flush=True)
    return len(shipments)


@durable("fulfil-order")
async def fulfil_order(packages: list[Package]) -> list[Shipment]:
    shipments = []
    for i, package in enumerate(packages):
        shipments.append(await zart.run_child(ship_package, package, name=f"ship-{i}"))
    await notify_customer(shipments)
    return shipments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", default="order-demo", help="execution id (reuse it to resume)")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    packages = [Package("mug", 0.4), Package("lamp", 1.25)]
    result = app.run(fulfil_order, packages, execution_id=args.id)
    print(f"result: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
