"""Safe deploys: a resume never runs past a divergence; zart.patched; appends; parallel
branches. One durable in several versions (``deploy_app.CODE``), on both backends.

Each test is named in docs/safe-deploys.md next to the recipe it backs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import deploy_app
import pytest
from conftest import drain
from deploy_app import CODE, RAN, flow, parallel

import zart
from zart import TaskError


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    CODE["version"] = "v1"
    RAN.clear()
    yield
    CODE["version"] = "v1"


def park_v1(app: zart.Zart, eid: str) -> None:
    """Start ``flow`` under v1 and let it park on its event after steps a and b."""
    CODE["version"] = "v1"
    app.submit(flow, execution_id=eid)
    drain(app)
    assert app.status(eid).status == "waiting"
    assert RAN == ["a", "b"]
    RAN.clear()


def step_names(app: zart.Zart, eid: str) -> list[str]:
    return [s.name for s in app.steps(eid)]


def test_inserted_step_before_recorded_ones_diverges_and_runs_nothing(app: zart.Zart) -> None:
    park_v1(app, "ins-1")
    CODE["version"] = "insert"
    app.send_event("ins-1", "go", "ok")
    drain(app)
    status = app.status("ins-1")
    assert status.status == "diverged"
    assert RAN == []  # neither the inserted step nor anything after it ran
    assert "x" not in step_names(app, "ins-1")
    assert status.error is not None and status.error.startswith("Diverged:")
    assert "'x'" in status.error and "'a'" in status.error and "'b'" in status.error
    stored = json.loads(app.ops_store.get_execution("ins-1").error or "{}")  # type: ignore[union-attr]
    assert stored["type"] == "Diverged" and stored["asked"] == "x"
    assert stored["kind"] == "step" and stored["unvisited"] == ["a", "b"]
    drain(app)  # not claimable: a worker leaves it alone
    assert app.status("ins-1").status == "diverged"
    with pytest.raises(TaskError, match="diverged") as info:
        app.run(flow, execution_id="ins-1")
    assert info.value.error_type == "Diverged"


def test_diverged_execution_resumes_under_patched_code_on_the_old_branch(app: zart.Zart) -> None:
    park_v1(app, "fix-1")
    CODE["version"] = "insert"
    app.send_event("fix-1", "go", "ok")
    drain(app)
    assert app.status("fix-1").status == "diverged"
    CODE["version"] = "patched"
    assert app.resume("fix-1").status == "pending"
    assert app.run(flow, execution_id="fix-1") == ["a", "b", "ok", "c"]
    assert RAN == ["c"]
    assert {s.name: s.output_preview for s in app.steps("fix-1")}["patched:add-x"] == "false"


def test_resume_of_still_diverging_code_diverges_again_running_nothing(app: zart.Zart) -> None:
    park_v1(app, "again-1")
    CODE["version"] = "insert"
    app.send_event("again-1", "go", "ok")
    drain(app)
    app.resume("again-1")
    drain(app)
    assert app.status("again-1").status == "diverged"
    assert RAN == []


def test_patched_old_executions_take_old_branch_new_ones_the_new(app: zart.Zart) -> None:
    park_v1(app, "old-1")
    CODE["version"] = "patched"
    app.submit(flow, execution_id="new-1")
    drain(app)  # the new one parks on its event after x, a, b
    assert RAN == ["x", "a", "b"]
    assert [(p.patch_id, p.old, p.new) for p in app.patches_in_use()] == [("add-x", [], ["new-1"])]
    app.send_event("old-1", "go", "old")
    app.send_event("new-1", "go", "new")
    drain(app)
    assert app.run(flow, execution_id="old-1") == ["a", "b", "old", "c"]
    assert app.run(flow, execution_id="new-1") == ["x", "a", "b", "new", "c"]
    assert sorted(RAN) == ["a", "b", "c", "c", "x"]  # only new-1 ran x; old-1 only c
    assert app.patches_in_use() == []  # both finished
    app.ops_store.reset_execution(  # replay both again: the journaled answers hold
        "old-1", lambda rec, steps: [], audit_action="t", audit_actor="t", audit_details={}
    )
    assert app.run(flow, execution_id="old-1") == ["a", "b", "old", "c"]


def test_deprecated_patch_diverges_an_execution_that_took_the_old_branch(app: zart.Zart) -> None:
    park_v1(app, "dep-old")
    CODE["version"] = "patched"
    app.submit(flow, execution_id="new-dep")
    drain(app)
    app.send_event("dep-old", "go", "ok")
    app.send_event("new-dep", "go", "ok")
    drain(app)
    assert app.status("dep-old").status == app.status("new-dep").status == "completed"
    # Replay both under code whose old branch is gone.
    for eid in ("dep-old", "new-dep"):
        app.ops_store.reset_execution(
            eid, lambda rec, steps: [], audit_action="t", audit_actor="t", audit_details={}
        )
    CODE["version"] = "deprecated"
    RAN.clear()
    drain(app)
    old = app.status("dep-old")
    assert old.status == "diverged" and "old branch of patch 'add-x'" in (old.error or "")
    assert app.status("new-dep").status == "completed"
    assert RAN == []


def test_appending_steps_is_silent_and_correct(app: zart.Zart) -> None:
    park_v1(app, "app-1")
    CODE["version"] = "append"
    app.send_event("app-1", "go", "ok")
    drain(app)
    assert app.run(flow, execution_id="app-1") == ["a", "b", "ok", "c", "d"]
    assert RAN == ["c", "d"]


def test_parallel_branches_on_replay_raise_no_false_alarm(app: zart.Zart) -> None:
    app.submit(parallel, execution_id="par-1")
    drain(app)
    assert app.status("par-1").status == "waiting"
    assert sorted(RAN) == ["p-0", "p-1", "p-2"]
    CODE["version"] = "append"  # and steps appended after the parallel ones
    app.send_event("par-1", "go")
    drain(app)
    assert app.run(parallel, execution_id="par-1") == [0, 10, 20, 100, 200, 100, 200, 90]


def test_a_branch_reaching_its_frontier_first_waits_for_the_others(app: zart.Zart) -> None:
    """Branch "l" replays l-1 and asks for l-2 (new) before branch "r" has replayed
    r-1 and r-2: it must wait for them, not call it a divergence."""
    app.submit(parallel, execution_id="par-2")
    drain(app)
    app.send_event("par-2", "go")
    drain(app)
    app.ops_store.reset_execution(  # as if it died after l-1, r-1 and r-2 were recorded
        "par-2", lambda rec, steps: ["l-2"], audit_action="t", audit_actor="t", audit_details={}
    )
    RAN.clear()
    assert app.run(parallel, execution_id="par-2") == [0, 10, 20, 100, 200, 100, 200]
    assert RAN == ["p-20"]  # only l-2 ran again


def test_patched_outside_a_durable_execution_is_true() -> None:
    assert asyncio.run(zart.patched("anything")) is True
    assert zart.deprecate_patch("anything") is None


def test_module_is_importable_as_a_script_module() -> None:
    assert deploy_app.flow.name == "deploy-flow"
