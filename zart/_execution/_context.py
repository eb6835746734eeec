"""Which durable execution (if any) the current task is running in."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Connection


class RunContext(Protocol):
    """What a step call needs from the run it belongs to (the journal's
    ``ExecutionContext``); a protocol so that steps do not import the journal."""

    async def run_step(self, call: Any) -> Any: ...


# Set while a durable body runs; copied into tasks it spawns (asyncio.gather).
current_execution: ContextVar[RunContext | None] = ContextVar(
    "zart_current_execution", default=None
)
# Set to the step name while a step body runs: steps called from inside it would
# run outside the durable journal, so that is refused at runtime (lint rule ZRT008).
current_step: ContextVar[str | None] = ContextVar("zart_current_step", default=None)

# The open transaction of the transactional step running now (see zart.transaction()).
current_transaction: ContextVar[Connection | None] = ContextVar(
    "zart_current_transaction", default=None
)
