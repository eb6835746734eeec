"""full / concise / json / github / sarif output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from zart_lint.rules import RULES

from cli_helpers import BUG_COL, BUG_LINE, BUGGY, BUGGY_ENUMERATE, CLEAN, invoke, write_project


def run_format(tmp_path: Path, fmt: str, *args: str) -> tuple[int, str, str]:
    out = invoke(["--output-format", fmt, *args], tmp_path)
    return out.code, out.stdout, out.stderr


def test_concise_is_exactly_one_line_per_finding(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": BUGGY, "b.py": BUGGY_ENUMERATE, "c.py": CLEAN})
    code, stdout, stderr = run_format(tmp_path, "concise")
    assert code == 1
    _, json_out, _ = run_format(tmp_path, "json")
    expected = [
        f"{Path(f['filename']).name}:{f['line']}:{f['column']}: {f['code']} {f['message']}"
        for f in json.loads(json_out)
    ]
    assert stdout.splitlines() == expected
    assert stdout.splitlines()[0].startswith(f"a.py:{BUG_LINE}:{BUG_COL}: ZRT001 ")
    # The summary goes to stderr, so stdout stays one line per finding.
    assert "Found 2 errors." in stderr


def test_json_fields(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    code, stdout, _ = run_format(tmp_path, "json")
    assert code == 1
    [record] = json.loads(stdout)
    assert record["code"] == "ZRT001"
    assert record["filename"] == str(tmp_path / "flow.py")
    assert (record["line"], record["column"]) == (BUG_LINE, BUG_COL)
    assert record["end_line"] == BUG_LINE
    assert record["end_column"] > record["column"]
    assert isinstance(record["message"], str) and record["message"]
    fix = record["fix"]
    assert isinstance(fix["message"], str)
    assert fix["edits"]
    for edit in fix["edits"]:
        assert set(edit) == {"content", "location", "end_location"}
        assert set(edit["location"]) == set(edit["end_location"]) == {"row", "column"}


def test_json_clean_is_empty_array(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": CLEAN})
    code, stdout, stderr = run_format(tmp_path, "json")
    assert (code, json.loads(stdout), stderr) == (0, [], "")


def test_github_workflow_commands(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write_project(tmp_path, {"src/flow.py": BUGGY})
    code, stdout, _ = run_format(tmp_path, "github")
    assert code == 1
    [line] = stdout.splitlines()
    m = re.fullmatch(
        r"::error title=zart-lint \(ZRT001\),file=(?P<file>[^,]+),line=(\d+),col=(\d+),"
        r"endLine=(\d+),endColumn=(\d+)::ZRT001 (?P<message>.+)",
        line,
    )
    assert m, line
    assert m["file"] == "src/flow.py"
    assert (int(m[2]), int(m[3])) == (BUG_LINE, BUG_COL)


def test_github_escapes_property_and_message_data(tmp_path: Path) -> None:
    from zart_lint import Finding
    from zart_lint.output import FORMATS, Located, RenderInput

    f = Finding("ZRT001", "50% done\nnext", "a,b:c.py", 1, 2, 1, 3)
    items = [Located(f, "/x/a,b:c.py", "a,b:c.py")]
    out = FORMATS["github"].render(RenderInput(items, {}, lambda _: [], Path("/x")))
    assert "file=a%2Cb%3Ac.py" in out
    assert out.endswith("::ZRT001 50%25 done%0Anext\n")


def sarif(tmp_path: Path, *args: str) -> dict[str, Any]:
    code, stdout, _ = run_format(tmp_path, "sarif", *args)
    assert code in (0, 1)
    doc: dict[str, Any] = json.loads(stdout)
    return doc


def test_sarif_structure(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write_project(tmp_path, {"src/flow.py": BUGGY, "src/ok.py": CLEAN})
    doc = sarif(tmp_path)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-2.1.0.json")
    [run] = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "zart-lint"
    assert driver["version"] and driver["informationUri"].startswith("https://")
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == sorted(RULES)
    for rule in driver["rules"]:
        assert rule["name"] and rule["shortDescription"]["text"]
        assert rule["fullDescription"]["text"] and rule["help"]["text"]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"
    [result] = run["results"]
    assert result["ruleId"] == "ZRT001"
    assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    assert result["level"] == "error"
    assert result["message"]["text"]
    [location] = result["locations"]
    artifact = location["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "src/flow.py", "uriBaseId": "%SRCROOT%"}
    region = location["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (BUG_LINE, BUG_COL)
    assert region["endLine"] >= region["startLine"] and region["endColumn"] >= 1
    assert next(iter(result["partialFingerprints"].values()))


def fingerprint_of(doc: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (
            next(iter(r["partialFingerprints"].values())),
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in doc["runs"][0]["results"]
    ]


def test_sarif_fingerprint_survives_lines_moving(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write_project(tmp_path, {"flow.py": BUGGY})
    before = fingerprint_of(sarif(tmp_path, "--no-cache"))
    (tmp_path / "flow.py").write_text("\n\n" + BUGGY, encoding="utf-8")
    after = fingerprint_of(sarif(tmp_path, "--no-cache"))
    assert [fp for fp, _ in before] == [fp for fp, _ in after]
    assert [line + 2 for _, line in before] == [line for _, line in after]


def test_sarif_identical_lines_get_distinct_fingerprints(tmp_path: Path) -> None:
    twice = BUGGY + "    for item in items:\n        await process_item(item)\n"
    (tmp_path / ".git").mkdir()
    write_project(tmp_path, {"flow.py": twice})
    fps = [fp for fp, _ in fingerprint_of(sarif(tmp_path))]
    assert len(fps) == 2 and len(set(fps)) == 2


def test_sarif_without_findings_is_valid(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": CLEAN})
    doc = sarif(tmp_path)
    assert doc["runs"][0]["results"] == []
    assert doc["runs"][0]["tool"]["driver"]["rules"]


def test_full_format_snippet(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    code, stdout, _ = run_format(tmp_path, "full")
    assert code == 1
    lines = stdout.splitlines()
    header = lines[0]
    assert header.startswith(f"flow.py:{BUG_LINE}:{BUG_COL}: ZRT001 [*] ")
    source = next(i for i, line in enumerate(lines) if line.startswith(f"{BUG_LINE} | "))
    assert lines[source - 1].startswith(f"{BUG_LINE - 1} |     for item in items:")
    carets = lines[source + 1]
    start = lines[source].index("process_item")
    assert carets.index("^") == start
    assert carets[start:].startswith("^" * len("process_item(item)"))
    assert carets.rstrip().endswith("ZRT001")
    assert any(line.startswith("  = help: ") for line in lines)
    assert "Found 1 error." in lines
    assert "[*] 1 fixable with the `--fix` option." in lines


def test_full_format_without_source(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    _, stdout, _ = run_format(tmp_path, "full", "--no-show-source")
    assert "|" not in stdout


def test_full_snippet_handles_tabs_and_wide_characters() -> None:
    from zart_lint import Finding
    from zart_lint.output import FORMATS, Located, RenderInput

    text = "for x in y:\n\tz = '日本'; call(x)\n"
    col = text.splitlines()[1].index("call") + 1
    f = Finding("ZRT001", "msg", "t.py", 2, col, 2, col + 7)
    lines = text.splitlines(keepends=True)
    out = FORMATS["full"].render(
        RenderInput([Located(f, "t.py", None)], {}, lambda _: lines, Path())
    )
    src, carets = [line for line in out.splitlines() if line.startswith(("2 |", "  |"))][1:3]
    assert carets.index("^") == src.index("call") + 2  # the two wide characters
    assert carets.count("^") == 7
