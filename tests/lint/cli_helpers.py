"""Helpers shared by the zart-lint CLI tests: sample projects and two ways to run the CLI.

``run_cli`` starts the real program (``python -m zart_lint``) in a subprocess;
``invoke`` runs it in-process with click's CliRunner, which is much faster and
lets a test patch internals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

if str(REPO_ROOT) not in sys.path:  # the package may not be installed (plain checkout)
    sys.path.insert(0, str(REPO_ROOT))

from click.testing import CliRunner  # noqa: E402

from zart_lint.cli import cli  # noqa: E402

# One durable with the headline bug: a constant-named step awaited in a for loop.
# Line 12 column 15 is the start of the call ``process_item(item)``.
BUGGY = textwrap.dedent(
    """\
    from zart import durable, step


    @step("process-item")
    async def process_item(item: str) -> str:
        return item.upper()


    @durable("batch")
    async def batch(items: list[str]) -> None:
        for item in items:
            await process_item(item)
    """
)
BUG_LINE, BUG_COL = 12, 15

# The same bug in a loop that already has an index.
BUGGY_ENUMERATE = BUGGY.replace("for item in items:", "for i, item in enumerate(items):")

CLEAN = BUGGY.replace('@step("process-item")', '@step("process-item-{item}")')

PYPROJECT = '[project]\nname = "sample"\nversion = "0"\n\n[tool.zart-lint]\n'


def write_project(root: Path, files: Mapping[str, str], config: str = "") -> Path:
    """A project directory with a pyproject.toml ([tool.zart-lint] + ``config``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT + textwrap.dedent(config), encoding="utf-8")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_LINT_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str],
    cwd: Path,
    *,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 240,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m zart_lint ARGS`` in ``cwd``; text output."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [sys.executable, "-m", "zart_lint", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        env=child_env(env),
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None


@contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def invoke(
    args: Sequence[str],
    cwd: Path,
    *,
    stdin: str | bytes | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Outcome:
    """Run the CLI in-process (one worker: no process pool inside pytest)."""
    runner_env = {"ZART_LINT_OUTPUT_FORMAT": None, "NO_COLOR": "1", **(env or {})}
    try:  # click < 8.2 mixes stderr into stdout unless told otherwise
        runner = CliRunner(env=runner_env, mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        runner = CliRunner(env=runner_env)
    full_args = list(args)
    if "--jobs" not in full_args and "-j" not in full_args:
        full_args += ["--jobs", "1"]
    with _chdir(cwd):
        result = runner.invoke(cli, full_args, input=stdin, catch_exceptions=True)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return Outcome(result.exit_code, result.stdout, result.stderr, exc)


def json_findings(args: Sequence[str], cwd: Path) -> list[dict[str, Any]]:
    out = invoke([*args, "--output-format", "json"], cwd)
    assert out.code in (0, 1), out.stderr
    data: list[dict[str, Any]] = json.loads(out.stdout)
    return data
