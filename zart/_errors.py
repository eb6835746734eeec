"""Every error zart raises derives from :class:`ZartError`.

Messages are written for the person reading a traceback at 3 a.m.: they name
the step or execution involved and say what to do next.
"""

from __future__ import annotations

from typing import Any


class ZartError(Exception):
    """Base class of all zart errors."""


class StepError(ZartError):
    """Raised by a step body to fail the step.

    ``retryable=False`` fails the step at once, without spending the remaining
    attempts of its retry policy. ``details`` is stored with the error (it must
    be JSON-serializable) and shown by ``zart steps``.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        details: Any = None,
        step_name: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details = details
        self.step_name = step_name
        self.error_type = error_type

    def __str__(self) -> str:
        prefix = f"step {self.step_name!r} failed: " if self.step_name else ""
        kind = f"{self.error_type}: " if self.error_type else ""
        return f"{prefix}{kind}{self.message}"


class TaskError(ZartError):
    """A durable execution failed. ``cause`` holds the error that ended it."""

    def __init__(
        self,
        message: str,
        *,
        execution_id: str | None = None,
        cause: BaseException | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.execution_id = execution_id
        self.cause = cause
        self.error_type = error_type
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        where = f"execution {self.execution_id!r} failed: " if self.execution_id else ""
        kind = f"{self.error_type}: " if self.error_type else ""
        return f"{where}{kind}{self.message}"


class StepNameError(ZartError, ValueError):
    """A step name template is malformed or names an unknown parameter."""


class DuplicateStepError(ZartError):
    """One run of a durable body used the same step name twice.

    Without this error the second call would silently return the first call's
    stored result: the cached-result bug zart-lint looks for statically.
    """


class ReplayMismatchError(ZartError):
    """On replay, a completed step was reached with different arguments (strict mode)."""


class SerializationError(ZartError, TypeError):
    """A value cannot be stored as typed JSON (or a stored value cannot be read back)."""


class ExecutionNotFoundError(ZartError, LookupError):
    """No execution has the given id."""


class UnknownDurableError(ZartError, LookupError):
    """No durable function with that name is registered in this process."""


class ExecutionCancelledError(TaskError):
    """The execution was cancelled (raised inside its body at the next step boundary,
    and by ``run`` / ``handle.result()`` for a cancelled execution)."""


class LeaseLostError(ZartError):
    """This process no longer owns the execution (another worker took it over).

    Raised inside a durable body so that a paused or partitioned worker stops
    instead of writing results on top of the new owner's.
    """


class StorageError(ZartError):
    """The database refused an operation and retrying will not help by itself: a file
    zart cannot write, a schema zart does not recognise, a damaged database. The
    message names the database and what to do. An execution that meets it is left
    as it was (resumable), never failed."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be used right now (unreachable, locked, full); zart retried
    for a bounded time first. Transient: the execution is left resumable, and a later
    ``run`` or worker continues it once the database is back."""


class EventTimeoutError(ZartError, TimeoutError):
    """``wait_for_event`` reached its timeout before the event arrived."""


class StepTimeoutError(ZartError, TimeoutError):
    """A step attempt ran longer than its timeout."""


class ExecutionConflictError(ZartError):
    """The request does not fit the execution as it is stored: its id already belongs to
    another durable function, or an operation needs another status (HTTP 409)."""


class InvalidInputError(ZartError, ValueError):
    """Arguments that do not match the durable function's parameters (HTTP 422)."""


class IdentifierError(ZartError, ValueError):
    """An execution id, event name or durable name outside zart's limits (length,
    characters); the message names the limit. Step names raise StepNameError."""


class UsageError(ZartError):
    """zart was used in a way that cannot work: a step or primitive inside a step's body,
    a durable function awaited inside another one, a send from a durable body. A
    programming error, so a step that raises it is never retried."""
