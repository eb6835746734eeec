"""noqa and zart-lint: ignore[...] comments, and --report-unused-suppressions (ZRT100)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zart_lint import Finding
from zart_lint.engine._suppression import Suppression, apply_suppressions, parse_suppressions

from cli_helpers import BUG_LINE, BUGGY, CLEAN, invoke, json_findings, write_project

BUG_CALL = "        await process_item(item)"
RETURN = "    return item.upper()"


def with_comment(comment: str, source: str = BUGGY) -> str:
    assert BUG_CALL + "\n" in source
    return source.replace(BUG_CALL + "\n", f"{BUG_CALL}  {comment}\n")


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("comment", "kind", "codes"),
    [
        ("# noqa", "noqa", None),
        ("# NOQA", "noqa", None),
        ("# noqa: ZRT001", "noqa", ("ZRT001",)),
        ("# noqa:ZRT001,ZRT002", "noqa", ("ZRT001", "ZRT002")),
        ("# noqa: ZRT001, ZRT002", "noqa", ("ZRT001", "ZRT002")),
        ("# noqa: ZRT001 because the name is unique per run", "noqa", ("ZRT001",)),
        ("# zart-lint: ignore[ZRT001]", "zart-lint", ("ZRT001",)),
        ("# zart-lint: ignore[ZRT001,ZRT003]", "zart-lint", ("ZRT001", "ZRT003")),
        ("# zart-lint: ignore[ZRT001, ZRT003]", "zart-lint", ("ZRT001", "ZRT003")),
        ("# zart-lint: ignore", "zart-lint", None),
    ],
)
def test_parse_directive(comment: str, kind: str, codes: tuple[str, ...] | None) -> None:
    [s] = parse_suppressions(f"x = 1  {comment}\n")
    assert (s.line, s.column, s.kind, s.codes) == (1, 8, kind, codes)


def test_directives_only_in_comments() -> None:
    source = 'x = "# noqa"\ny = """\n# zart-lint: ignore[ZRT001]\n"""\n'
    assert parse_suppressions(source) == []


def test_several_directives_in_one_comment() -> None:
    found = parse_suppressions(
        "x = 1  # type: ignore  # noqa: ZRT001 # zart-lint: ignore[ZRT002]\n"
    )
    assert sorted((s.kind, s.codes) for s in found) == [
        ("noqa", ("ZRT001",)),
        ("zart-lint", ("ZRT002",)),
    ]


def test_untokenizable_source_keeps_directives_seen_so_far() -> None:
    found = parse_suppressions("x = 1  # noqa: ZRT001\ny = (\n")
    assert [s.codes for s in found] == [("ZRT001",)]


def finding(code: str, line: int, end_line: int | None = None) -> Finding:
    return Finding(code, "m", "f.py", line, 1, end_line or line, 2)


def test_apply_matches_start_or_end_line() -> None:
    sup = [Suppression(3, 1, 10, "noqa", ("ZRT001",))]
    result = apply_suppressions(
        [finding("ZRT001", 1, 3), finding("ZRT001", 3), finding("ZRT001", 2), finding("ZRT002", 3)],
        sup,
    )
    assert [(f.code, f.line) for f in result.kept] == [("ZRT001", 2), ("ZRT002", 3)]
    assert result.suppressed == 2


# ------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize(
    "comment",
    [
        "# noqa: ZRT001",
        "# noqa:ZRT001",
        "# noqa: ZRT002, ZRT001",
        "# noqa",
        "# zart-lint: ignore[ZRT001]",
        "# zart-lint: ignore[ZRT001,ZRT003]",
    ],
)
def test_suppressed(tmp_path: Path, comment: str) -> None:
    write_project(tmp_path, {"flow.py": with_comment(comment)})
    out = invoke([], tmp_path)
    assert out.code == 0, out.stdout


@pytest.mark.parametrize(
    "comment", ["# noqa: ZRT002", "# zart-lint: ignore[ZRT003]", "# noqa: E501", "# noqa:ZRT0011"]
)
def test_not_suppressed(tmp_path: Path, comment: str) -> None:
    write_project(tmp_path, {"flow.py": with_comment(comment)})
    assert [f["code"] for f in json_findings([], tmp_path)] == ["ZRT001"]


def test_noqa_in_a_string_literal_does_not_suppress(tmp_path: Path) -> None:
    source = BUGGY.replace(BUG_CALL, BUG_CALL + '; note = "# noqa"')
    write_project(tmp_path, {"flow.py": source})
    assert [f["code"] for f in json_findings([], tmp_path)] == ["ZRT001"]


def test_multi_line_finding_suppressed_on_its_last_line(tmp_path: Path) -> None:
    source = BUGGY.replace(BUG_CALL, "        await process_item(\n            item\n        )")
    write_project(tmp_path, {"flow.py": source})
    [f] = json_findings([], tmp_path)
    assert (f["line"], f["end_line"]) == (BUG_LINE, BUG_LINE + 2)
    source = source.replace("\n        )\n", "\n        )  # noqa: ZRT001\n")
    (tmp_path / "flow.py").write_text(source, encoding="utf-8")
    assert json_findings([], tmp_path) == []


# ------------------------------------------------------------------ unused suppressions


def test_unused_suppressions_reported(tmp_path: Path) -> None:
    source = CLEAN.replace(RETURN, RETURN + "  # noqa: ZRT001, E501")
    source += "\n\nx = 1  # noqa\ny = 2  # zart-lint: ignore\n"
    write_project(tmp_path, {"flow.py": source})
    assert invoke([], tmp_path).code == 0  # not reported unless asked
    found = json_findings(["--report-unused-suppressions"], tmp_path)
    assert [(f["code"], f["line"]) for f in found] == [("ZRT100", 6), ("ZRT100", 16)]
    assert "ZRT001" in found[0]["message"] and "E501" not in found[0]["message"].split("unused:")[1]


def test_used_suppression_not_reported(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": with_comment("# noqa: ZRT001")})
    assert invoke(["--report-unused-suppressions"], tmp_path).code == 0


def test_partly_used_suppression_reports_the_unused_code(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": with_comment("# zart-lint: ignore[ZRT001, ZRT007]")})
    [f] = json_findings(["--report-unused-suppressions"], tmp_path)
    assert f["code"] == "ZRT100" and "unused: ZRT007" in f["message"]


def test_fix_removes_unused_suppressions(tmp_path: Path) -> None:
    source = CLEAN.replace(RETURN, RETURN + "  # noqa: ZRT001, E501")
    source += "y = 2  # zart-lint: ignore[ZRT003]\nz = 3  # noqa: ZRT002 # type: ignore\n"
    write_project(tmp_path, {"flow.py": source})
    out = invoke(["--report-unused-suppressions", "--fix"], tmp_path)
    assert out.code == 0, out.stdout + out.stderr
    fixed = (tmp_path / "flow.py").read_text(encoding="utf-8")
    assert RETURN + "  # noqa: E501\n" in fixed
    assert "y = 2\n" in fixed
    assert "z = 3  # type: ignore\n" in fixed


def test_unused_suppressions_can_be_ignored_in_config(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": CLEAN + "x = 1  # noqa: ZRT001\n"}, 'ignore = ["ZRT100"]\n')
    assert invoke(["--report-unused-suppressions"], tmp_path).code == 0
