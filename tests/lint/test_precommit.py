"""The pre-commit hook, end to end: ``pre-commit try-repo`` installs this checkout
into a fresh virtualenv and runs ``zart-lint`` on a repository with the bug.

try-repo clones the hook repository at a commit (for a local repository with
uncommitted changes it commits the *tracked* changes into a shadow clone, but
leaves untracked files out). So the test snapshots the package files of this
checkout, whatever their git state, into a temporary repository and commits
them there: the hook under test is always the working tree's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import BUGGY, CLEAN, REPO_ROOT

pytest.importorskip("pre_commit")

SNAPSHOT = ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml", "zart", "zart_lint")


def git_env(home: Path) -> dict[str, str]:
    # No PYTHONPATH: the hook must run the package pre-commit installed, not this checkout.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "ZART_LINT_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        GIT_AUTHOR_NAME="zart tests",
        GIT_AUTHOR_EMAIL="tests@example.invalid",
        GIT_COMMITTER_NAME="zart tests",
        GIT_COMMITTER_EMAIL="tests@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        HOME=str(home),
        PRE_COMMIT_HOME=str(home / "pre-commit"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    # Share the pip cache of the real user: installing the hook needs the
    # dependencies again, and downloading them once per test run is enough.
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    return env


def git(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def snapshot_hook_repo(dest: Path, env: dict[str, str]) -> Path:
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".zart-lint-cache")
    for name in SNAPSHOT:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    if not (dest / "README.md").exists():  # the build backend insists on the readme
        (dest / "README.md").write_text("# zart\n", encoding="utf-8")
    git(dest, env, "init", "-q", "-b", "main")
    git(dest, env, "add", "-A")
    git(dest, env, "commit", "-q", "-m", "snapshot")
    return dest


def try_repo(work: Path, hook_repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(hook_repo),
            "zart-lint",
            "--all-files",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.timeout(900)
def test_precommit_hook_fails_on_the_bug_and_passes_when_fixed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = git_env(home)
    hook_repo = snapshot_hook_repo(tmp_path / "hook-repo", env)

    work = tmp_path / "work"
    work.mkdir()
    git(work, env, "init", "-q", "-b", "main")
    (work / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "0"\n\n'
        '[tool.zart-lint]\nextend-exclude = ["fixtures"]\n',
        encoding="utf-8",
    )
    (work / "flows.py").write_text(BUGGY, encoding="utf-8")
    (work / "fixtures").mkdir()
    (work / "fixtures" / "bad_example.py").write_text(BUGGY, encoding="utf-8")  # excluded
    git(work, env, "add", "-A")

    failing = try_repo(work, hook_repo, env)
    output = failing.stdout + failing.stderr
    assert failing.returncode == 1, output
    assert "ZRT001" in output
    assert "flows.py" in output
    assert "bad_example.py" not in output  # config excludes hold for named files

    (work / "flows.py").write_text(CLEAN, encoding="utf-8")
    git(work, env, "add", "-A")
    passing = try_repo(work, hook_repo, env)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "Passed" in passing.stdout
