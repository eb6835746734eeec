"""Issue 14's behaviours that are not rule examples: how far the index reaches and what
a run reads, parses and reports (never timed here: benchmarks/lint_throughput.py is)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zart_lint.engine import _workers
from zart_lint.engine._api import ProjectIndex, RuleOptions, lint_source, might_involve_steps

from cli_helpers import BUGGY, REPO_ROOT, child_env, invoke, write_project
from lint_helpers import codes, write_tree

STEPS = 'from zart import step\n\n@step("charge")\nasync def charge(x): ...\n'
LOOP = "async def flow(xs):\n    for x in xs:\n        await {call}(x)\n"


def lint_alone(root: Path, relative: str) -> tuple[list[str], ProjectIndex]:
    path = root / relative
    index = ProjectIndex.build(ProjectIndex.find_root(path), RuleOptions())
    return codes(lint_source(path.read_text(), path, index, RuleOptions())), index


def test_single_file_reads_only_what_it_imports(tmp_path: Path) -> None:
    """Item 8: a big tree costs a single-file run nothing it does not import."""
    files = {"pyproject.toml": "", "app/__init__.py": "", "app/steps.py": STEPS}
    files["app/flows.py"] = "from app.steps import charge\n" + LOOP.format(call="charge")
    for n in range(300):
        files[f"noise/m{n}.py"] = f"import zart\n\n@zart.step('s{n}')\nasync def s{n}(): ...\n"
    root = write_tree(tmp_path, files)
    found, index = lint_alone(root, "app/flows.py")
    assert found == ["ZRT001"]
    assert index.files_read <= 3  # steps.py (and the packages on the way), not the noise


def test_star_import_chain_of_15_layers(tmp_path: Path) -> None:
    """Item 9: each layer's exports are computed once, whatever the depth."""
    files = {"pyproject.toml": "", "pkg/__init__.py": "", "pkg/l15.py": STEPS}
    for n in range(15):
        files[f"pkg/l{n}.py"] = f"from .l{n + 1} import *\nfrom .l{n + 1} import *\n"
    files["pkg/flows.py"] = "from pkg.l0 import *\n" + LOOP.format(call="charge")
    root = write_tree(tmp_path, files)
    found, index = lint_alone(root, "pkg/flows.py")
    assert found == ["ZRT001"]
    assert index.files_read <= 17


def test_explicit_file_is_syntax_checked(tmp_path: Path) -> None:
    """Item 11: named on the command line, a broken file without zart is ZRT000."""
    write_project(tmp_path, {"broken.py": "def oops(:\n    pass\n"})
    out = invoke(["--output-format", "concise", "broken.py"], tmp_path)
    assert out.code == 1 and "broken.py:1:" in out.stdout and "ZRT000" in out.stdout
    # A directory walk does not parse files that cannot involve steps (documented).
    walked = invoke(["--output-format", "concise", "--no-cache", "."], tmp_path)
    assert walked.code == 0
    # ... and a cached walk result does not hide the error when the file is named later.
    invoke(["--output-format", "concise", "."], tmp_path)
    again = invoke(["--output-format", "concise", "broken.py"], tmp_path)
    assert again.code == 1 and "ZRT000" in again.stdout


def test_build_package_is_found_and_build_output_is_reported(tmp_path: Path) -> None:
    """Item 12: a package named build is indexed and walked; root build/ is skipped, said."""
    write_project(
        tmp_path,
        {
            "tool/__init__.py": "",
            "tool/build/__init__.py": "",
            "tool/build/steps.py": STEPS,
            "tool/flows.py": "from tool.build.steps import charge\n" + LOOP.format(call="charge"),
            "build/lib/tool/flows.py": "from tool.build.steps import charge\n"
            + LOOP.format(call="charge"),
        },
    )
    out = invoke(["--output-format", "concise", "--no-cache", "tool/flows.py"], tmp_path)
    assert "tool/flows.py:4:15: ZRT001" in out.stdout
    shown = invoke(["--show-files", "."], tmp_path)
    assert "tool/build/steps.py" in shown.stdout and "build/lib" not in shown.stdout
    assert "skipped build output (not a package): build/" in shown.stderr


def test_prefilter_uses_import_evidence_not_words(tmp_path: Path) -> None:
    """Item 13: steps named get / run do not make every file mentioning them a candidate."""
    root = write_tree(
        tmp_path,
        {
            "pyproject.toml": "",
            "lib/__init__.py": "",
            "lib/tasks.py": 'import zart\n\n@zart.step("get")\nasync def get(): ...\n',
            "lib/util.py": "def run(): ...\n",
        },
    )
    index = ProjectIndex.build(root, RuleOptions())
    options = RuleOptions()
    assert not might_involve_steps("d = {}\nd.get('run')\nrun()\n", index, options)
    assert not might_involve_steps("from lib.util import run\nrun()\n", index, options)
    assert might_involve_steps("from lib.tasks import get\n", index, options)
    assert might_involve_steps("from lib import tasks\n", index, options)


def test_no_worker_processes_without_parse_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 14: files that cannot involve steps never start the pool (nor libcst)."""
    write_project(tmp_path, {f"plain{n}.py": f"X = {n}\n" for n in range(40)})
    started: list[int] = []
    monkeypatch.setattr(_workers._ProcessPool, "get", lambda self: started.append(1))
    out = invoke(["--no-cache", "--jobs", "4", "."], tmp_path)
    assert out.code == 0 and started == []


def test_editing_one_file_rereads_one_file(tmp_path: Path) -> None:
    """Item 15: the index cache is per file."""
    files = {f"m{n}.py": STEPS.replace("charge", f"charge{n}") for n in range(10)}
    files["flows.py"] = BUGGY
    write_project(tmp_path, files)
    from test_cache import age, index_line

    age(tmp_path)
    assert "built (11 of 11 files read)" in index_line(tmp_path)[1]
    assert "loaded from the cache" in index_line(tmp_path)[1]
    (tmp_path / "m3.py").write_text(STEPS.replace("charge", "charge3") + "\n# edited\n")
    age(tmp_path)
    assert "built (1 of 11 files read)" in index_line(tmp_path)[1]


def test_broken_pipe_exits_quietly(tmp_path: Path) -> None:
    """Item 16: `zart-lint --show-files . | head -1` ends without an error message."""
    write_project(tmp_path, {f"m{n}.py": "X = 1\n" for n in range(50)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "zart_lint", "--show-files", "."],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert stderr == ""
    assert proc.returncode == 141


def test_valid_python_libcst_cannot_parse(tmp_path: Path) -> None:
    """Item 7: a notice, no ZRT000, and a failing run only with --strict."""
    write_project(tmp_path, {"odd.py": "import zart\n\n(ready): bool = True\n"})
    out = invoke(["--output-format", "concise", "odd.py"], tmp_path)
    assert out.code == 0 and out.stdout == ""
    assert "odd.py: cannot analyse this file: it is valid Python" in out.stderr
    assert "ZRT000" not in out.stderr
    strict = invoke(["--output-format", "concise", "--strict", "odd.py"], tmp_path)
    assert strict.code == 1 and "error: odd.py: cannot analyse" in strict.stderr
    assert REPO_ROOT.exists()
