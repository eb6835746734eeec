"""`zart export` and `zart replay`: the check before a deploy, run as a user runs it
(real processes, one code version per module), on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import zart

HERE = Path(__file__).resolve().parent


def version_module(tmp_path: Path, version: str) -> str:
    """A module that imports the deploy app and selects one code version."""
    name = f"deploy_{version}"
    (tmp_path / f"{name}.py").write_text(
        f"import deploy_app\ndeploy_app.CODE['version'] = {version!r}\n", encoding="utf-8"
    )
    return name


def zart_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zart", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_export_and_replay_report_compatible_and_diverged(
    child_env: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    env = dict(child_env)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(HERE), env["PYTHONPATH"]])
    v1, insert, append = (version_module(tmp_path, v) for v in ("v1", "insert", "append"))
    parked = subprocess.run(
        [sys.executable, str(HERE / "deploy_app.py"), "v1", "start", "cli-1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert parked.stdout.strip().endswith("status waiting"), parked.stderr

    golden = tmp_path / "cli-1.json"
    exported = zart_cli(env, "export", "cli-1", "--output", str(golden))
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(golden.read_text())
    assert doc["format"] == "zart-history" and [s["name"] for s in doc["steps"]][:2] == ["a", "b"]

    # From the database: every open execution.
    same = zart_cli(env, "replay", v1)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "cli-1 (deploy-flow): compatible" in same.stdout
    inserted = zart_cli(env, "replay", insert, "--id", "cli-1")
    assert inserted.returncode == 1, inserted.stdout + inserted.stderr
    assert "cli-1 (deploy-flow): diverged" in inserted.stdout and "'x'" in inserted.stdout
    # From exported histories (as CI does with a folder of golden files).
    assert zart_cli(env, "replay", append, "--history", str(golden)).returncode == 0
    as_json = zart_cli(env, "replay", insert, "--history", str(golden), "--json")
    assert as_json.returncode == 1
    (report,) = json.loads(as_json.stdout)
    assert report["compatible"] is False and report["divergence"]["asked"] == "x"
    # Nothing ran and nothing changed: the replay runs no step and writes nothing.
    with zart.Zart(db_url) as app:
        assert app.status("cli-1").status == "waiting"
        assert [s.name for s in app.steps("cli-1")] == ["a", "b", "go"]


def test_replay_usage_errors_are_one_line_and_exit_2(
    child_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(child_env)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(HERE), env["PYTHONPATH"]])
    v1 = version_module(tmp_path, "v1")
    (tmp_path / "not-json.json").write_text("{oops", encoding="utf-8")
    cases = [
        (["replay", v1, "--history", str(tmp_path / "missing.json")], "cannot read"),
        (["replay", v1, "--history", str(tmp_path / "not-json.json")], "is not JSON"),
        (["replay", v1, "--history", "x.json", "--id", "y"], "not both"),
        (["replay", "no_such_module_here"], "no_such_module_here"),
        (["export", "nope"], "no execution with id 'nope'"),
    ]
    for args, fragment in cases:
        done = zart_cli(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zart: error:"), (args, done.stderr)
        assert fragment in lines[0], (args, lines[0])


def test_patches_lists_the_markers_open_executions_recorded(
    child_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(child_env)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(HERE), env["PYTHONPATH"]])

    def deploy(version: str, eid: str) -> str:
        done = subprocess.run(
            [sys.executable, str(HERE / "deploy_app.py"), version, "start", eid],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    assert zart_cli(env, "patches").stdout.strip() == "no patches in use by open executions"
    assert deploy("v1", "old-1").endswith("status waiting")  # passed the point unpatched
    assert deploy("patched", "new-1").endswith("status waiting")  # took the new branch
    # A patched worker picks old-1 up when its event comes: the marker records "old".
    with zart.Zart(env["ZART_DATABASE_URL"]) as app:
        app.send_event("old-1", "go", "late")
    subprocess.run(
        [sys.executable, str(HERE / "deploy_app.py"), "patched", "drive", "old-1"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert deploy("patched", "new-2").endswith("status waiting")
    listed = zart_cli(env, "patches", "--json")
    assert listed.returncode == 0, listed.stderr
    (use,) = json.loads(listed.stdout)
    assert use["patch_id"] == "add-x" and use["new"] == ["new-1", "new-2"]
    assert use["old"] == []  # old-1 took the old branch and finished: no longer in use
