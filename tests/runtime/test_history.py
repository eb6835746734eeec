"""Export an execution's history and replay it against other code, running nothing."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import drain
from deploy_app import CODE, RAN, flow, parallel

import zart
from zart._engine._history import export_history, replay_history, replay_history_async


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    CODE["version"] = "v1"
    RAN.clear()
    yield
    CODE["version"] = "v1"


def parked_history(app: zart.Zart, eid: str) -> dict[str, Any]:
    app.submit(flow, execution_id=eid)
    drain(app)
    RAN.clear()
    doc = export_history(app, eid)
    return json.loads(json.dumps(doc))  # as read back from a file


def check(app: zart.Zart, version: str, doc: dict[str, Any]) -> zart.ReplayReport:
    CODE["version"] = version
    try:
        return app.replay_check(doc)
    finally:
        CODE["version"] = "v1"


def test_export_is_a_versioned_document_with_record_input_and_steps(app: zart.Zart) -> None:
    doc = parked_history(app, "h-1")
    assert doc["format"] == "zart-history" and doc["version"] == 1
    assert doc["execution"]["id"] == "h-1" and doc["execution"]["status"] == "waiting"
    assert doc["execution"]["durable_name"] == "deploy-flow"
    assert doc["input"] is not None
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["a"]["output"] == "a" and steps["a"]["kind"] == "step"
    assert steps["go"]["kind"] == "event" and steps["go"]["status"] == "waiting"
    with pytest.raises(zart.ExecutionNotFoundError):
        app.export("nope")


def test_replay_of_the_same_code_or_an_append_is_compatible(app: zart.Zart) -> None:
    doc = parked_history(app, "h-2")
    for version in ("v1", "append", "patched"):
        report = check(app, version, doc)
        assert report.compatible, (version, report)
        assert report.divergence is None and report.replayed == 2
    assert RAN == []  # no step body ran


def test_replay_of_an_inserted_step_reports_the_first_divergence(app: zart.Zart) -> None:
    doc = parked_history(app, "h-3")
    report = check(app, "insert", doc)
    assert not report.compatible
    assert report.divergence is not None
    assert report.divergence["asked"] == "x" and report.divergence["unvisited"] == ["a", "b"]
    assert RAN == []
    assert app.status("h-3").status == "waiting"  # a check changes nothing stored
    assert app.replay_check("h-3").compatible  # by id, from the database (v1 code)


def test_replay_reports_an_unvisited_tail_and_a_kind_mismatch(app: zart.Zart) -> None:
    CODE["version"] = "append"
    app.submit(flow, execution_id="h-4")
    drain(app)
    app.send_event("h-4", "go", "ok")
    drain(app)
    assert app.status("h-4").status == "completed"
    doc = app.export("h-4")
    tail = check(app, "v1", doc)  # step d was removed from the end
    assert not tail.compatible and tail.divergence is not None
    assert tail.divergence["asked"] is None and tail.divergence["unvisited"] == ["d"]
    assert check(app, "append", doc).compatible
    changed = copy.deepcopy(doc)
    for s in changed["steps"]:
        if s["name"] == "b":
            s["kind"] = "sleep"
    mismatch = check(app, "append", changed)
    assert not mismatch.compatible and mismatch.divergence is not None
    assert mismatch.divergence["asked"] == "b" and "'sleep'" in mismatch.divergence["message"]


def test_replay_of_parallel_branches_is_compatible(app: zart.Zart) -> None:
    app.submit(parallel, execution_id="h-5")
    drain(app)
    app.send_event("h-5", "go")
    drain(app)
    RAN.clear()
    doc = app.export("h-5")
    # Drop l-2 as if the run died there: branch l reaches its frontier first.
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "l-2"]
    report = check(app, "append", doc)
    assert report.compatible, report
    assert RAN == []


def test_a_history_of_another_format_or_version_is_refused(app: zart.Zart) -> None:
    doc = parked_history(app, "h-6")
    with pytest.raises(ValueError, match="version"):
        replay_history(flow, dict(doc, version=99))
    with pytest.raises(ValueError, match="not a zart history"):
        replay_history(flow, {"format": "other"})
    with pytest.raises(ValueError, match="deploy-flow"):
        replay_history(parallel, doc)


def test_replay_from_async_code(app: zart.Zart) -> None:
    doc = parked_history(app, "h-7")

    async def main() -> None:
        report = await replay_history_async(flow, doc)
        assert report.compatible and report.as_dict()["durable"] == "deploy-flow"
        assert replay_history(None, doc).compatible  # from a running loop, too

    asyncio.run(main())


def test_replay_reports_a_stored_result_the_code_cannot_decode(app: zart.Zart) -> None:
    doc = parked_history(app, "h-8")
    for s in doc["steps"]:
        if s["name"] == "a":
            s["output"] = {"not": "a str"}  # as if step a's return type had changed
    report = check(app, "v1", doc)
    assert not report.compatible and report.divergence is None
    assert report.error is not None and "SerializationError" in report.error
