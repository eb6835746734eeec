"""How errors are stored in the database and raised again on replay."""

from __future__ import annotations

import json
import traceback
from typing import Any

from zart._errors import StepError, TaskError

_MAX_TRACEBACK = 8_000


def encode_error(
    exc: BaseException,
    *,
    step_name: str | None = None,
    claim: int | None = None,
    next_started: bool = False,
) -> str:
    """JSON for an exception: type, message, traceback and StepError details. For a
    failed attempt that will be retried: ``claim``, the execution run it happened in,
    and ``next_started``, whether that run has begun the next attempt (after the
    backoff), so a takeover knows whether the run that died was inside an attempt."""
    data: dict[str, Any] = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": exc.message if isinstance(exc, (StepError, TaskError)) else str(exc),
        "traceback": "".join(traceback.format_exception(exc))[-_MAX_TRACEBACK:],
    }
    if isinstance(exc, TaskError) and exc.error_type:
        data["type"] = exc.error_type
    if isinstance(exc, StepError):
        data["retryable"] = exc.retryable
        if exc.step_name and step_name is None:
            step_name = exc.step_name
        if exc.error_type:
            data["type"] = exc.error_type
        if exc.details is not None:
            try:
                json.dumps(exc.details)
                data["details"] = exc.details
            except (TypeError, ValueError):
                data["details"] = repr(exc.details)
    if step_name is not None:
        data["step"] = step_name
    if claim is not None:
        data["claim"] = claim
        data["next_started"] = next_started
    return json.dumps(data)


def attempt_started_in(error: str | None) -> int | None:
    """The execution run that had begun another attempt of a retrying step, from the
    stored error (see ``encode_error``); None if none had (or it is unknown)."""
    if not error:
        return None
    try:
        data = json.loads(error)
        claim = data.get("claim")
    except (ValueError, AttributeError):
        return None
    return claim if isinstance(claim, int) and data.get("next_started") else None


def decode_error(text: str | None) -> dict[str, Any]:
    if not text:
        return {"type": "unknown", "message": "unknown error"}
    try:
        data = json.loads(text)
    except ValueError:
        return {"type": "unknown", "message": text}
    return data if isinstance(data, dict) else {"type": "unknown", "message": str(data)}


def short_type(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def step_error_from_record(step_name: str, text: str | None) -> StepError:
    """The StepError a failed step raises again on replay (same type name and message)."""
    data = decode_error(text)
    return StepError(
        str(data.get("message", "")),
        retryable=False,
        details=data.get("details"),
        step_name=step_name,
        error_type=short_type(str(data.get("type", "Exception"))),
    )


def task_error(
    execution_id: str, text: str | None, cause: BaseException | None = None
) -> TaskError:
    """The TaskError for a failed execution, built from its stored error.

    Used for the first run and for every later look-up alike, so the error a
    caller sees does not depend on whether the failure happened just now.
    """
    data = decode_error(text)
    message = str(data.get("message", ""))
    if data.get("step"):
        message = f"step {data['step']!r} failed: {message}"
    return TaskError(
        message,
        execution_id=execution_id,
        cause=cause,
        error_type=short_type(str(data.get("type", "Error"))),
    )
