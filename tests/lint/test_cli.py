"""The zart-lint command line: paths, excludes, stdin, bad files, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zart_lint.engine._api as api
import zart_lint.engine._checker as checker
import zart_lint.engine._runner as runner

from cli_helpers import (
    BUG_COL,
    BUG_LINE,
    BUGGY,
    CLEAN,
    invoke,
    json_findings,
    run_cli,
    write_project,
)


def concise_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_clean_project_exits_0(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": CLEAN})
    out = invoke([], tmp_path)
    assert out.code == 0, out.stderr
    assert "All checks passed!" in out.stdout


def test_bug_exits_1_with_full_report(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    out = invoke([], tmp_path)  # default path: "."
    assert out.code == 1, out.stderr
    header = next(line for line in out.stdout.splitlines() if "ZRT001" in line)
    assert header.startswith(f"flow.py:{BUG_LINE}:{BUG_COL}: ZRT001 ")
    assert f"{BUG_LINE} |         await process_item(item)" in out.stdout
    caret_line = next(line for line in out.stdout.splitlines() if "^" in line)
    assert caret_line.index("^") == out.stdout.splitlines()[
        out.stdout.splitlines().index(caret_line) - 1
    ].index("process_item")
    assert "Found 1 error." in out.stdout


def test_exit_zero(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    assert invoke(["--exit-zero"], tmp_path).code == 0


def test_real_program_exit_codes(tmp_path: Path) -> None:
    """The console entry point itself (python -m zart_lint), not just the click object."""
    write_project(tmp_path / "bad", {"flow.py": BUGGY})
    write_project(tmp_path / "good", {"flow.py": CLEAN})
    bad = run_cli(["--output-format", "concise", "--no-cache"], tmp_path / "bad")
    assert bad.returncode == 1, bad.stderr
    assert concise_lines(bad.stdout)[0].startswith(f"flow.py:{BUG_LINE}:{BUG_COL}: ZRT001 ")
    good = run_cli(["--no-cache"], tmp_path / "good")
    assert good.returncode == 0, good.stderr
    usage = run_cli(["--output-format", "nonsense"], tmp_path / "good")
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


def test_directory_walk_and_default_excludes(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "pkg/flow.py": BUGGY,
            "build/lib/flow.py": BUGGY,
            ".venv/lib/flow.py": BUGGY,
            "node_modules/x/flow.py": BUGGY,
            "env/lib/flow.py": BUGGY,
            "env/pyvenv.cfg": "home = /usr\n",  # a virtualenv under any name
            "notes.txt": BUGGY,
        },
    )
    files = {f["filename"] for f in json_findings([], tmp_path)}
    assert files == {str(tmp_path / "pkg" / "flow.py")}


def test_explicit_path_is_linted_even_if_excluded(tmp_path: Path) -> None:
    write_project(tmp_path, {"build/flow.py": BUGGY}, 'extend-exclude = ["gen_*.py"]\n')
    (tmp_path / "gen_flow.py").write_text(BUGGY, encoding="utf-8")
    assert json_findings([], tmp_path) == []
    assert len(json_findings(["build/flow.py", "gen_flow.py"], tmp_path)) == 2
    # As ruff: --force-exclude applies excludes to named paths too (for pre-commit).
    assert json_findings(["--force-exclude", "build/flow.py", "gen_flow.py"], tmp_path) == []


def test_explicit_file_without_py_suffix(tmp_path: Path) -> None:
    write_project(tmp_path, {"bin/run-batch": "#!/usr/bin/env python\n" + BUGGY})
    found = json_findings(["bin/run-batch"], tmp_path)
    assert [f["code"] for f in found] == ["ZRT001"]


def test_show_files(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": CLEAN, "sub/b.py": CLEAN, "dist/c.py": CLEAN})
    out = invoke(["--show-files"], tmp_path)
    assert out.code == 0
    assert out.stdout.split() == ["a.py", "sub/b.py"]


def test_non_utf8_and_nul_files_are_findings_not_crashes(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    (tmp_path / "latin1.py").write_bytes(b"# caf\xe9\nx = 1\n")
    (tmp_path / "binary.py").write_bytes(b"x = 1\n\x00\x01\x02")
    out = invoke(["--output-format", "concise"], tmp_path)
    assert out.code == 1, out.stderr
    lines = concise_lines(out.stdout)
    assert any(line.startswith("latin1.py:1:1: ZRT000 file is not valid UTF-8") for line in lines)
    assert any(line.startswith("binary.py:1:1: ZRT000 file is not valid UTF-8") for line in lines)
    assert any(line.startswith(f"flow.py:{BUG_LINE}:{BUG_COL}: ZRT001") for line in lines)


def test_unparsable_file_is_reported_and_others_still_checked(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY, "broken.py": "from zart import step\ndef (:\n"})
    found = json_findings([], tmp_path)
    by_file = {(Path(f["filename"]).name, f["code"]) for f in found}
    assert ("broken.py", "ZRT000") in by_file
    assert ("flow.py", "ZRT001") in by_file


def test_utf8_bom_is_fine(tmp_path: Path) -> None:
    write_project(tmp_path, {})
    (tmp_path / "flow.py").write_bytes(b"\xef\xbb\xbf" + BUGGY.encode())
    found = json_findings([], tmp_path)
    assert [(f["code"], f["line"], f["column"]) for f in found] == [("ZRT001", BUG_LINE, BUG_COL)]


def test_unreadable_file_is_reported_and_others_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, {"flow.py": BUGGY, "secret.py": CLEAN})
    real_read = checker.FileChecker._read

    def read(self: checker.FileChecker, task: checker.FileTask) -> tuple[bytes, object]:
        if task.path.endswith("secret.py"):
            raise checker._Unreadable("Permission denied")
        return real_read(self, task)

    # Root can read any file, so a chmod would prove nothing here: simulate.
    monkeypatch.setattr(checker.FileChecker, "_read", read)
    out = invoke(["--output-format", "concise", "--no-cache"], tmp_path)
    lines = concise_lines(out.stdout)
    assert "secret.py:1:1: ZRT000 cannot read file (Permission denied)" in lines
    assert any(line.startswith("flow.py:") for line in lines)
    assert out.code == 1


def test_missing_path_is_an_error_but_others_are_checked(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    out = invoke(["--output-format", "concise", "flow.py", "nope.py"], tmp_path)
    assert out.code == 2
    assert "nope.py: no such file or directory" in out.stderr
    assert concise_lines(out.stdout)[0].startswith("flow.py:")


def test_stdin_with_filename(tmp_path: Path) -> None:
    write_project(tmp_path, {}, '[tool.zart-lint.per-file-ignores]\n"ignored/*.py" = ["ZRT001"]\n')
    out = run_cli(
        ["-", "--stdin-filename", "src/flow.py", "--output-format", "concise"],
        tmp_path,
        stdin=BUGGY,
    )
    assert out.returncode == 1, out.stderr
    [line] = concise_lines(out.stdout)
    assert line.startswith(f"src/flow.py:{BUG_LINE}:{BUG_COL}: ZRT001 ")
    # The stdin file name decides per-file-ignores, as a real path would.
    ignored = invoke(
        ["-", "--stdin-filename", "ignored/flow.py", "--output-format", "concise"],
        tmp_path,
        stdin=BUGGY,
    )
    assert ignored.code == 0, ignored.stdout + ignored.stderr


def test_stdin_without_filename(tmp_path: Path) -> None:
    out = invoke(["-", "--output-format", "concise"], tmp_path, stdin=BUGGY)
    assert out.code == 1
    assert concise_lines(out.stdout)[0].startswith(f"-:{BUG_LINE}:{BUG_COL}: ZRT001 ")


def test_stdin_cannot_mix_with_paths(tmp_path: Path) -> None:
    out = invoke(["-", "flow.py"], tmp_path, stdin=BUGGY)
    assert out.code == 2


def test_step_defined_in_another_module_when_only_flow_is_named(tmp_path: Path) -> None:
    """pre-commit passes only the changed file; the project root is indexed anyway."""
    steps = textwrap.dedent(
        """\
        from zart import step


        @step("process-item")
        async def process_item(item: str) -> str:
            return item
        """
    )
    flows = textwrap.dedent(
        """\
        from zart import durable

        from steps import process_item


        @durable("batch")
        async def batch(items: list[str]) -> None:
            for item in items:
                await process_item(item)
        """
    )
    write_project(tmp_path, {"steps.py": steps, "flows.py": flows})
    found = json_findings(["flows.py"], tmp_path)
    assert [(f["code"], f["line"]) for f in found] == [("ZRT001", 9)]


def test_parallel_run_matches_serial_run(tmp_path: Path) -> None:
    files = {f"pkg/flow_{i:02d}.py": (BUGGY if i % 3 else CLEAN) for i in range(24)}
    write_project(tmp_path, files)
    serial = run_cli(["--output-format", "json", "--no-cache", "--jobs", "1"], tmp_path)
    parallel = run_cli(["--output-format", "json", "--no-cache", "--jobs", "2"], tmp_path)
    assert serial.returncode == parallel.returncode == 1, parallel.stderr
    assert json.loads(serial.stdout) == json.loads(parallel.stdout)
    assert len(json.loads(parallel.stdout)) == 16


def test_statistics(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": BUGGY, "b.py": BUGGY})
    out = invoke(["--statistics"], tmp_path)
    assert out.code == 1
    first = out.stdout.splitlines()[0].split("\t")
    assert first[0].strip() == "2" and first[1] == "ZRT001" and first[2].startswith("[*] ")
    stats = json.loads(invoke(["--statistics", "--output-format", "json"], tmp_path).stdout)
    assert stats[0]["code"] == "ZRT001" and stats[0]["count"] == 2 and stats[0]["fixable"]


def test_output_file_and_quiet(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    out = invoke(["--output-format", "concise", "-o", "report/lint.txt", "--quiet"], tmp_path)
    assert out.code == 1
    assert out.stdout == "" and out.stderr == ""
    report = (tmp_path / "report" / "lint.txt").read_text(encoding="utf-8")
    assert report.startswith(f"flow.py:{BUG_LINE}:{BUG_COL}: ZRT001 ")


def test_cli_select_and_ignore(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    assert invoke(["--ignore", "ZRT001"], tmp_path).code == 0
    assert invoke(["--select", "ZRT002,ZRT003"], tmp_path).code == 0
    assert invoke(["--select", "ZRT00"], tmp_path).code == 1
    bad = invoke(["--select", "ZRT999"], tmp_path)
    assert bad.code == 2
    assert "ZRT999" in bad.stderr


def test_fix_and_diff_together_is_a_usage_error(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    assert invoke(["--fix", "--diff"], tmp_path).code == 2


def test_internal_error_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "run", boom)
    out = invoke([], tmp_path)
    assert out.code == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "zart-lint: internal error: RuntimeError: boom"
    assert "report" in lines[1]
    verbose = invoke(["--verbose"], tmp_path)
    assert verbose.code == 2
    assert "Traceback" in verbose.stderr


def test_dead_worker_is_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    write_project(tmp_path, {"flow.py": BUGGY})

    def dies(*args: object, **kwargs: object) -> None:
        raise BrokenProcessPool("killed")

    monkeypatch.setattr(runner, "run", dies)
    out = invoke([], tmp_path)
    assert out.code == 2
    assert out.stderr.splitlines()[0] == "zart-lint: internal error: a worker process died (killed)"


def test_crash_in_one_file_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, {"a_crash.py": BUGGY, "b_flow.py": BUGGY})
    real = api.analyse_source

    def analyse_source(source: str, path: Path, *args: object) -> object:
        if path.name == "a_crash.py":
            raise ValueError("rule exploded")
        return real(source, path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(checker, "analyse_source", analyse_source)
    out = invoke(["--output-format", "concise", "--no-cache"], tmp_path)
    assert out.code == 2
    assert concise_lines(out.stdout)[0].startswith("b_flow.py:")
    assert "internal error while checking a_crash.py: ValueError: rule exploded" in out.stderr
    assert "Traceback" not in out.stderr


def test_explain_list_rules_and_version(tmp_path: Path) -> None:
    explained = invoke(["--explain", "ZRT001"], tmp_path)
    assert explained.code == 0 and explained.stdout.startswith("ZRT001 (")
    assert invoke(["--explain", "ZRT777"], tmp_path).code == 2
    listed = invoke(["--list-rules"], tmp_path)
    codes = [line.split()[0] for line in listed.stdout.splitlines()]
    assert codes == [f"ZRT{i:03}" for i in range(13)]
    version = invoke(["--version"], tmp_path)
    assert version.code == 0 and "zart-lint" in version.stdout


def test_no_files_found_is_not_an_error(tmp_path: Path) -> None:
    write_project(tmp_path, {"README.txt": "nothing"})
    out = invoke([], tmp_path)
    assert out.code == 0
    assert "no Python files" in out.stderr


def test_env_var_output_format(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    out = invoke([], tmp_path, env={"ZART_LINT_OUTPUT_FORMAT": "concise"})
    assert concise_lines(out.stdout)[0].startswith(f"flow.py:{BUG_LINE}:{BUG_COL}: ZRT001 ")


def test_cli_rules_and_formats_do_not_import_libcst() -> None:
    """--help, --version, --list-rules and fully cached runs never need libcst."""
    code = (
        "import sys, zart_lint.cli, zart_lint.rules, zart_lint.output, zart_lint.engine._runner\n"
        "assert 'libcst' not in sys.modules, 'libcst imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
