"""Histories: export an execution's journal as a versioned JSON document, replay one
against the code now importable (running nothing), and list the ``zart.patched``
markers that open executions still depend on.

The document (``HISTORY_FORMAT``, version ``HISTORY_VERSION``)::

    {"format": "zart-history", "version": 1,
     "execution": {"id", "durable_name", "status", "result", "error", "attempts",
                   "recoveries", "parent_id", "created_at", "updated_at",
                   "started_at", "finished_at"},
     "input": <the stored input, JSON>,
     "steps": [{"name", "seq", "kind", "status", "fingerprint", "output", "error",
                "attempts", "started_at", "finished_at"}, ...]}   # in call order

``result``, ``input`` and each step's ``output`` are the stored typed JSON, embedded
as JSON values; ``error`` fields are the stored error objects.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from zart._execution._divergence import PATCH_KIND, PATCH_PREFIX
from zart._execution._durable import DurableFunction, lookup
from zart._execution._replay import ReplayContext, ReplayReport

__all__ = [
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "PatchUse",
    "ReplayReport",
    "export_history",
    "history_document",
    "load_history",
    "patches_in_use",
    "replay_history",
    "replay_history_async",
]
from zart._store import (
    TERMINAL_STATUSES,
    ExecutionRecord,
    JournalStore,
    OpsStore,
    StepRecord,
    stored_json,
)
from zart._store import _schema as schema

HISTORY_FORMAT = "zart-history"
HISTORY_VERSION = 1

_EXECUTION_FIELDS = (
    "id", "durable_name", "status", "attempts", "recoveries", "parent_id",
    "created_at", "updated_at", "started_at", "finished_at",
)  # fmt: skip
_STEP_FIELDS = ("seq", "kind", "status", "fingerprint", "attempts", "started_at", "finished_at")


def _text_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def history_document(rec: ExecutionRecord, steps: list[StepRecord]) -> dict[str, Any]:
    """The history document of one execution (see the module docstring)."""
    execution = {name: getattr(rec, name) for name in _EXECUTION_FIELDS}
    execution["result"] = stored_json(rec.result)
    execution["error"] = stored_json(rec.error)
    ordered = sorted(steps, key=lambda r: (r.seq, r.step_name))
    return {
        "format": HISTORY_FORMAT,
        "version": HISTORY_VERSION,
        "execution": execution,
        "input": stored_json(rec.input),
        "steps": [
            dict(
                name=r.step_name,
                **{f: getattr(r, f) for f in _STEP_FIELDS},
                output=stored_json(r.output),
                error=stored_json(r.error),
            )
            for r in ordered
        ],
    }


class _Exporter(Protocol):
    def export(self, execution_id: str) -> dict[str, Any]: ...


def export_history(app: _Exporter, execution_id: str) -> dict[str, Any]:
    """The history document of a stored execution of ``app`` (a :class:`zart.Zart`);
    ``ExecutionNotFoundError`` if there is no such id."""
    return app.export(execution_id)


def load_history(journal: JournalStore, execution_id: str) -> dict[str, Any] | None:
    """The history document of a stored execution; None if there is no such id."""
    rec = journal.get_execution(execution_id)
    if rec is None:
        return None
    return history_document(rec, list(journal.load_steps(execution_id).values()))


def _checkpoints(history: dict[str, Any]) -> tuple[str, str, str, dict[str, StepRecord]]:
    """(execution id, durable name, input JSON, checkpoints) of a history document."""
    if history.get("format") != HISTORY_FORMAT:
        raise ValueError(f"not a zart history document (format {history.get('format')!r})")
    if history.get("version") != HISTORY_VERSION:
        raise ValueError(
            f"zart history version {history.get('version')!r} is not supported "
            f"(this zart reads version {HISTORY_VERSION})"
        )
    execution = history["execution"]
    eid = str(execution["id"])
    records = {}
    for s in history["steps"]:
        records[s["name"]] = StepRecord(
            eid, s["name"], s["seq"], s["kind"], s["status"], s.get("fingerprint"),
            _text_or_none(s.get("output")), _text_or_none(s.get("error")),
            s.get("attempts", 1), s.get("started_at"), s.get("finished_at"),
        )  # fmt: skip
    input_json = json.dumps(history["input"])
    return eid, str(execution["durable_name"]), input_json, records


async def replay_history_async(
    durable: DurableFunction[Any, Any] | None, history: dict[str, Any]
) -> ReplayReport:
    """Replay ``history`` against ``durable`` (default: the durable registered under the
    history's name) without running any step body, timer, event wait or child."""
    eid, name, input_json, records = _checkpoints(history)
    if durable is None:
        durable = lookup(name)
    elif durable.name != name:
        raise ValueError(f"history {eid!r} is of durable {name!r}, not {durable.name!r}")
    return await ReplayContext(eid, records).drive(durable, input_json)


def replay_history(
    durable: DurableFunction[Any, Any] | None, history: dict[str, Any]
) -> ReplayReport:
    """:func:`replay_history_async` from synchronous code (also from a thread that runs
    an event loop: the replay then gets a loop of its own in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(replay_history_async(durable, history))
    box: list[ReplayReport | BaseException] = []

    def work() -> None:
        try:
            box.append(asyncio.run(replay_history_async(durable, history)))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=work, name="zart-replay")
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


@dataclass(frozen=True)
class PatchUse:
    """A ``zart.patched`` marker recorded by open (unfinished) executions."""

    patch_id: str
    old: list[str]  # ids of open executions that took the old branch
    new: list[str]  # ids of open executions that took the new branch

    def as_dict(self) -> dict[str, Any]:
        return {"patch_id": self.patch_id, "old": self.old, "new": self.new}


def patches_in_use(ops: OpsStore) -> list[PatchUse]:
    """Markers recorded by executions not finished yet (diverged ones included),
    sorted by id. A patch whose ``old`` list is empty no longer needs its old branch
    for the executions that reached it (see docs/safe-deploys.md for the rest)."""
    E, S = schema.executions, schema.steps
    query = (
        select(S.c.step_name, S.c.output, S.c.execution_id)
        .join(E, E.c.id == S.c.execution_id)
        .where(S.c.kind == PATCH_KIND, E.c.status.not_in(TERMINAL_STATUSES))
        .order_by(S.c.step_name, S.c.execution_id)
    )

    def op() -> list[Any]:
        with ops.db.tx(write=False) as conn:
            return list(conn.execute(query))

    found: dict[str, PatchUse] = {}
    for name, output, eid in ops.db.run("patches_in_use", op):
        patch_id = name[len(PATCH_PREFIX) :] if name.startswith(PATCH_PREFIX) else name
        use = found.setdefault(patch_id, PatchUse(patch_id, [], []))
        (use.new if output == "true" else use.old).append(eid)
    return [found[k] for k in sorted(found)]
