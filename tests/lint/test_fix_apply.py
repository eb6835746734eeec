"""--fix and --diff: applying edits, repeated passes, never writing broken code."""

from __future__ import annotations

import ast
from pathlib import Path

import libcst

from zart_lint import Edit, Finding, Fix
from zart_lint.fix._apply import apply_fixes, fix_until_stable, unified_diff

from cli_helpers import BUGGY, BUGGY_ENUMERATE, CLEAN, invoke, json_findings, run_cli, write_project


def finding(line: int, col: int, *edits: Edit) -> Finding:
    return Finding("ZRT001", "m", "f.py", line, col, line, col + 1, Fix("fix", tuple(edits)))


# ------------------------------------------------------------------ applying edits


def test_identical_edits_from_several_fixes_are_applied_once() -> None:
    source = "for x in xs:\n    a(x)\n    b(x)\n"
    header = Edit(1, 5, 1, 12, "i, x in enumerate(xs)")
    f1 = finding(2, 5, header, Edit(2, 9, 2, 9, ".named('a')"))
    f2 = finding(3, 5, header, Edit(3, 9, 3, 9, ".named('b')"))
    out, applied = apply_fixes(source, [f1, f2])
    assert out == "for i, x in enumerate(xs):\n    a(x).named('a')\n    b(x).named('b')\n"
    assert applied == [f1, f2]


def test_overlapping_fix_is_skipped_for_a_later_pass() -> None:
    source = "abcdef\n"
    first = finding(1, 1, Edit(1, 1, 1, 4, "XYZ"))
    overlapping = finding(1, 3, Edit(1, 3, 1, 6, "Q"))
    disjoint = finding(1, 6, Edit(1, 6, 1, 7, "F"))
    out, applied = apply_fixes(source, [overlapping, disjoint, first])
    assert out == "XYZdeF\n"
    assert applied == [first, disjoint]


def test_two_insertions_at_one_point_conflict() -> None:
    a = finding(1, 1, Edit(1, 2, 1, 2, "a"))
    b = finding(1, 2, Edit(1, 2, 1, 2, "b"))
    out, applied = apply_fixes("xy\n", [a, b])
    assert (out, applied) == ("xay\n", [a])


def test_positions_count_code_points_and_all_newline_styles() -> None:
    source = "é = 1\r\nfor x in y: f(x)\rz = 'ü'; g()\n"
    out, _ = apply_fixes(
        source,
        [finding(2, 13, Edit(2, 17, 2, 17, "!")), finding(3, 10, Edit(3, 10, 3, 13, "h()"))],
    )
    assert out == "é = 1\r\nfor x in y: f(x)!\rz = 'ü'; h()\n"


def test_fix_until_stable_runs_several_passes() -> None:
    # A fake rule: every "a" is a finding whose fix turns it into "b"; only
    # one fix per line can be applied per pass (they all touch column 1).
    def lint(source: str) -> list[Finding]:
        return [
            finding(n, 1, Edit(n, 1, n, 1, "#"), Edit(n, i + 1, n, i + 2, "b"))
            for n, line in enumerate(source.splitlines(), 1)
            for i, ch in enumerate(line)
            if ch == "a"
        ][:1]

    outcome = fix_until_stable("xaa\n", lint, lambda s: True)
    assert outcome.source == "##xbb\n"
    assert len(outcome.applied) == 2 and outcome.passes == 2
    assert outcome.remaining == [] and outcome.converged


def test_a_fix_that_breaks_the_code_is_not_applied() -> None:
    source = "x = 1\n"
    bad = finding(1, 1, Edit(1, 1, 1, 1, "def ("))

    def parses(s: str) -> bool:
        try:
            libcst.parse_module(s)
        except libcst.ParserSyntaxError:
            return False
        return True

    outcome = fix_until_stable(source, lambda s: [bad], parses)
    assert outcome.source == source
    assert outcome.applied == [] and outcome.rejected == [bad]


def test_a_rule_that_never_converges_stops() -> None:
    def lint(source: str) -> list[Finding]:
        return [finding(1, 1, Edit(1, 1, 1, 1, "x"))]

    outcome = fix_until_stable("", lint, lambda s: True, max_passes=5)
    assert outcome.source == "xxxxx" and not outcome.converged


def test_unified_diff_marks_missing_final_newline() -> None:
    diff = unified_diff("a\nb", "a\nc", "f.py")
    assert diff.startswith("--- f.py\n+++ f.py\n")
    assert "-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n" in diff


# ------------------------------------------------------------------ through the CLI


def assert_fixed(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    ast.parse(text)
    libcst.parse_module(text)
    assert ".named(" in text
    return text


def test_fix_for_loop_without_index_adds_enumerate(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    out = invoke(["--fix"], tmp_path)
    assert out.code == 0, out.stdout + out.stderr
    assert "Fixed 1 error in flow.py" in out.stdout
    assert "(1 fixed, 0 remaining)" in out.stdout
    text = assert_fixed(tmp_path / "flow.py")
    assert "enumerate(items)" in text
    assert invoke([], tmp_path).code == 0  # and nothing left to report


def test_fix_for_loop_with_enumerate_keeps_the_header(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY_ENUMERATE})
    out = invoke(["--fix"], tmp_path)
    assert out.code == 0, out.stdout + out.stderr
    text = assert_fixed(tmp_path / "flow.py")
    assert "    for i, item in enumerate(items):\n" in text
    assert text.count("enumerate") == 1
    assert "{i}" in text
    assert invoke([], tmp_path).code == 0


def test_fix_two_calls_in_one_loop(tmp_path: Path) -> None:
    source = BUGGY.replace(
        "        await process_item(item)\n",
        "        await process_item(item)\n        await process_item(item + '!')\n",
    )
    write_project(tmp_path, {"flow.py": source})
    assert len(json_findings([], tmp_path)) == 2
    out = invoke(["--fix"], tmp_path)
    assert out.code == 0, out.stdout + out.stderr
    text = assert_fixed(tmp_path / "flow.py")
    assert text.count("enumerate(") == 1
    assert text.count(".named(") == 2


def test_diff_shows_the_fix_and_writes_nothing(tmp_path: Path) -> None:
    for name, source in (("plain", BUGGY), ("indexed", BUGGY_ENUMERATE)):
        write_project(tmp_path / name, {"flow.py": source})
        out = invoke(["--diff"], tmp_path / name)
        assert out.code == 1, out.stderr
        assert out.stdout.startswith("--- flow.py\n+++ flow.py\n@@ ")
        added = [line for line in out.stdout.splitlines() if line.startswith("+ ")]
        assert any(".named(" in line for line in added)
        assert "Would fix 1 error." in out.stderr
        assert (tmp_path / name / "flow.py").read_text(encoding="utf-8") == source


def test_diff_on_clean_code(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": CLEAN})
    out = invoke(["--diff"], tmp_path)
    assert (out.code, out.stdout) == (0, "")


def test_fix_stdin_prints_the_fixed_code(tmp_path: Path) -> None:
    write_project(tmp_path, {})
    out = run_cli(["--fix", "-", "--stdin-filename", "flow.py"], tmp_path, stdin=BUGGY)
    assert out.returncode == 0, out.stderr
    assert ".named(" in out.stdout
    libcst.parse_module(out.stdout)
    assert not (tmp_path / "flow.py").exists()


def test_fix_keeps_crlf_and_bom(tmp_path: Path) -> None:
    write_project(tmp_path, {})
    data = b"\xef\xbb\xbf" + BUGGY.replace("\n", "\r\n").encode()
    (tmp_path / "flow.py").write_bytes(data)
    out = invoke(["--fix"], tmp_path)
    assert out.code == 0, out.stdout + out.stderr
    fixed = (tmp_path / "flow.py").read_bytes()
    assert fixed.startswith(b"\xef\xbb\xbf")
    assert b".named(" in fixed
    assert fixed.count(b"\n") == fixed.count(b"\r\n")


def test_fix_parallel_run(tmp_path: Path) -> None:
    files = {f"f{i:02d}.py": (BUGGY if i % 2 else BUGGY_ENUMERATE) for i in range(12)}
    write_project(tmp_path, files)
    out = run_cli(["--fix", "--jobs", "2", "--no-cache"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("Fixed 1 error in") == 12
    for name in files:
        assert_fixed(tmp_path / name)


def test_exit_non_zero_on_fix(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    assert invoke(["--fix", "--exit-non-zero-on-fix"], tmp_path).code == 1
