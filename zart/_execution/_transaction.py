"""``zart.transaction()``: the database connection of a transactional step."""

from __future__ import annotations

from sqlalchemy import Connection

from zart._errors import ZartError
from zart._execution._context import current_step, current_transaction


def transaction() -> Connection:
    """The SQLAlchemy connection whose transaction will also write this step's checkpoint.

    Only inside the body of a ``@step(..., transactional=True)`` that runs in a
    durable execution. Rows written through it commit together with the step's
    checkpoint, or are rolled back with it (crash, exception, lost lease), so a
    step's side effect in the same database happens exactly once. Do not commit
    or roll back yourself.
    """
    conn = current_transaction.get()
    if conn is None:
        where = f"step {current_step.get()!r}" if current_step.get() else "this code"
        raise ZartError(
            f"zart.transaction() is only available inside a transactional step running in a "
            f"durable execution; {where} is not one (declare it @step(..., transactional=True))"
        )
    return conn
