"""zart: embedded durable execution for Python.

A durable function is an ``async def`` made of named steps; each step's result
is checkpointed under ``(execution_id, step_name)``, so an execution that dies
mid-way resumes at its first unfinished step. See README.md.
"""

from zart._engine._app import ExecutionHandle, Zart
from zart._engine._history import PatchUse, ReplayReport
from zart._engine._info import ExecutionStatus, StepInfo
from zart._engine._pausing import PauseRule, ResumeResult
from zart._engine._retention import GcReport
from zart._engine._schedules import Schedule
from zart._errors import (
    DatabaseUnavailableError,
    DuplicateStepError,
    EventTimeoutError,
    ExecutionCancelledError,
    ExecutionConflictError,
    ExecutionNotFoundError,
    IdentifierError,
    LeaseLostError,
    ReplayMismatchError,
    SerializationError,
    StepError,
    StepNameError,
    StepTimeoutError,
    StorageError,
    TaskError,
    UnknownDurableError,
    UsageError,
    ZartError,
)
from zart._execution._durable import DurableFunction, durable, zart_durable
from zart._execution._primitives import (
    capture,
    deprecate_patch,
    now,
    patched,
    run_child,
    sleep,
    sleep_until,
    wait,
    wait_for_event,
)
from zart._execution._queue import Queue, RateLimit
from zart._execution._retry import RetryPolicy
from zart._execution._step import Step, StepCall, step, zart_step
from zart._execution._transaction import transaction
from zart._version import __version__

__all__ = [
    "DatabaseUnavailableError",
    "DuplicateStepError",
    "DurableFunction",
    "EventTimeoutError",
    "ExecutionCancelledError",
    "ExecutionConflictError",
    "ExecutionHandle",
    "ExecutionNotFoundError",
    "ExecutionStatus",
    "GcReport",
    "IdentifierError",
    "LeaseLostError",
    "PatchUse",
    "PauseRule",
    "Queue",
    "RateLimit",
    "ReplayMismatchError",
    "ReplayReport",
    "ResumeResult",
    "RetryPolicy",
    "Schedule",
    "SerializationError",
    "Step",
    "StepCall",
    "StepError",
    "StepInfo",
    "StepNameError",
    "StepTimeoutError",
    "StorageError",
    "TaskError",
    "UnknownDurableError",
    "UsageError",
    "Zart",
    "ZartError",
    "__version__",
    "capture",
    "deprecate_patch",
    "durable",
    "now",
    "patched",
    "run_child",
    "sleep",
    "sleep_until",
    "step",
    "transaction",
    "wait",
    "wait_for_event",
    "zart_durable",
    "zart_step",
]
