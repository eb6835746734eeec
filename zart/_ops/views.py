"""JSON views of executions and steps for the API and the web view.

* ``detail``: an execution with its stored input and result in full.
* ``overview``: the same without them: their size and a short preview instead, so a page
  that refreshes every second and a half never re-downloads a large input.
* ``timeline``: every step of an execution in a compact, column-wise form (about 40
  bytes a step) for the web view's timeline: 10,000 steps are ~400 kB, not 3 MB.
* ``step_detail``: one step in full: output, error with its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zart import ExecutionStatus, StepInfo
from zart._ops._internals import ExecutionRecord, StepRecord, stored_json

PREVIEW_CHARS = 200


def loads_or_text(text: str | None) -> Any:
    """Stored JSON decoded (or the text itself if it is not JSON)."""
    return stored_json(text)


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def detail(st: ExecutionStatus, rec: ExecutionRecord) -> dict[str, Any]:
    """An execution's JSON, with its stored input and result."""
    data = st.as_dict()
    data["input"] = loads_or_text(rec.input)
    data["result"] = loads_or_text(rec.result)
    return data


def overview(st: ExecutionStatus, rec: ExecutionRecord) -> dict[str, Any]:
    """An execution's JSON with the size (characters) and a preview of its input and result."""
    data = st.as_dict()
    data["input_size"] = len(rec.input) if rec.input is not None else 0
    data["input_preview"] = _preview(rec.input)
    data["result_size"] = len(rec.result) if rec.result is not None else None
    data["result_preview"] = _preview(rec.result)
    return data


def _ms(value: float) -> float:
    return round(value * 1000, 3)


def timeline(st: ExecutionStatus, steps: Sequence[StepInfo]) -> dict[str, Any]:
    """Every step as columns: ``name``, ``seq``, ``kind`` and ``status`` (indexes into
    ``kinds`` / ``statuses``), ``attempts``, ``start`` (ms after ``origin``) and
    ``duration`` (ms; null while unknown); ``errors`` maps a step's index to its error."""
    starts = [s.started_at.timestamp() for s in steps if s.started_at is not None]
    if st.started_at is not None:
        starts.append(st.started_at.timestamp())
    origin = min(starts) if starts else st.created_at.timestamp()
    kinds = sorted({s.kind for s in steps})
    statuses = sorted({s.status for s in steps})
    kind_index = {k: i for i, k in enumerate(kinds)}
    status_index = {k: i for i, k in enumerate(statuses)}
    return {
        "execution_id": st.id,
        "status": st.status,
        "origin": origin,
        "count": len(steps),
        "kinds": kinds,
        "statuses": statuses,
        "name": [s.name for s in steps],
        "seq": [s.seq for s in steps],
        "kind": [kind_index[s.kind] for s in steps],
        "step_status": [status_index[s.status] for s in steps],
        "attempts": [s.attempts for s in steps],
        "start": [
            _ms(s.started_at.timestamp() - origin) if s.started_at is not None else None
            for s in steps
        ],
        "duration": [_ms(s.duration) if s.duration is not None else None for s in steps],
        "errors": {str(i): s.error for i, s in enumerate(steps) if s.error},
    }


def step_detail(info: StepInfo, rec: StepRecord) -> dict[str, Any]:
    """One step in full: the view of ``Zart.steps`` plus output, fingerprint and the error
    as stored (type, message, traceback, details)."""
    data = info.as_dict()
    data.pop("output_preview", None)
    data["execution_id"] = rec.execution_id
    data["fingerprint"] = rec.fingerprint
    data["output_size"] = len(rec.output) if rec.output is not None else None
    data["output"] = loads_or_text(rec.output)
    error = loads_or_text(rec.error)
    if error is not None and not isinstance(error, dict):
        error = {"type": "unknown", "message": str(error)}
    data["error"] = error
    data["error_line"] = info.error
    return data
