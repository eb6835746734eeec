"""Durable functions the CLI tests run: ``zart run cli_app:greet ...``."""

import dataclasses
from decimal import Decimal

import zart
from zart import durable, step


@dataclasses.dataclass
class Line:
    sku: str
    price: Decimal
    qty: int = 1


@step("cli-app-shout-{name}")
async def shout(name: str) -> str:
    return name.upper()


@step("cli-app-line-{index}")
async def line_total(index: int, line: Line) -> Decimal:
    return line.price * line.qty


@durable("cli-app-greet")
async def greet(name: str) -> str:
    return f"hello {await shout(name)}"


@durable("cli-app-add")
async def add(a: int, b: int) -> int:
    return a + b


@durable("cli-app-total")
async def total(lines: list[Line]) -> Decimal:
    result = Decimal(0)
    for i, line in enumerate(lines):
        result += await line_total(i, line)
    return result


@durable("cli-app-noargs")
async def noargs() -> dict[str, int]:
    return {"answer": 42}


@durable("cli-app-fail")
async def fail() -> None:
    raise ValueError("cli failure on purpose")


@durable("cli-app-approval")
async def approval(request: str) -> str:
    decision = await zart.wait_for_event("cli-app-decision")
    return f"{request}: {decision['verdict']} by {decision['by']}"


def plain_function(x: int) -> int:
    return x


NOT_A_FUNCTION = 42
