"""The safe-deploy story with real processes, one per deployed version, on both backends:
v1 parks an execution; a v2 that inserts a step before recorded ones stops it as
``diverged`` without running the step; the same v2 guarded by ``zart.patched``
resumes it on the old branch and runs new executions on the new one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zart

APP = Path(__file__).with_name("deploy_app.py")


def deploy(env: dict[str, str], version: str, action: str, eid: str) -> str:
    """Run one process of ``version`` until it has nothing left to do; its last status."""
    done = subprocess.run(
        [sys.executable, str(APP), version, action, eid],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_insert_diverges_then_patched_code_resumes_old_and_new_executions(
    child_env: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    ran = tmp_path / "ran.txt"
    env = dict(child_env, DEPLOY_RAN_FILE=str(ran))
    assert deploy(env, "v1", "start", "proc-1") == "status waiting"
    assert ran.read_text().split() == ["a", "b"]
    with zart.Zart(db_url) as app:
        app.send_event("proc-1", "go", "ok")
        assert deploy(env, "insert", "drive", "proc-1") == "status diverged"
        assert ran.read_text().split() == ["a", "b"]  # x did not run, nor c
        error = app.status("proc-1").error or ""
        assert error.startswith("Diverged:") and "'x'" in error
        assert "x" not in [s.name for s in app.steps("proc-1")]

        assert deploy(env, "patched", "resume", "proc-1") == "status completed"
        assert ran.read_text().split() == ["a", "b", "c"]
        assert deploy(env, "patched", "start", "proc-2") == "status waiting"
        app.send_event("proc-2", "go", "new")
        assert deploy(env, "patched", "drive", "proc-2") == "status completed"
        assert ran.read_text().split() == ["a", "b", "c", "x", "a", "b", "c"]
        rec1, rec2 = (app.ops_store.get_execution(i) for i in ("proc-1", "proc-2"))
        assert rec1 is not None and json.loads(rec1.result or "null") == ["a", "b", "ok", "c"]
        assert rec2 is not None and json.loads(rec2.result or "null") == ["x", "a", "b", "new", "c"]
