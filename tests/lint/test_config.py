"""[tool.zart-lint]: discovery, rule selection, excludes, per-file-ignores, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from zart_lint.engine._runner import rule_options
from zart_lint.project._config import (
    DEFAULT_EXCLUDES,
    FileConfig,
    RuleSelection,
    build_settings,
    load_file_config,
    resolve_rules,
)
from zart_lint.project._discovery import PathMatcher
from zart_lint.rules import RULES

from cli_helpers import BUGGY, invoke, json_findings, run_cli, write_project

KNOWN = sorted(RULES)


# ------------------------------------------------------------------ rule selection


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ([RuleSelection(select=("ZRT",))], set(KNOWN)),
        ([RuleSelection(select=("ALL",))], set(KNOWN)),
        (
            [RuleSelection(select=("ZRT00",), ignore=("ZRT000",))],
            {code for code in KNOWN if code.startswith("ZRT00")} - {"ZRT000"},
        ),
        ([RuleSelection(select=("ZRT001", "ZRT002"))], {"ZRT001", "ZRT002"}),
        # The more specific selector wins, whichever list it is in.
        ([RuleSelection(select=("ZRT001",), ignore=("ZRT",))], {"ZRT001"}),
        ([RuleSelection(select=("ZRT",), ignore=("ZRT001",))], set(KNOWN) - {"ZRT001"}),
        # A later layer without select builds on the earlier one...
        (
            [RuleSelection(select=("ZRT001",)), RuleSelection(extend_select=("ZRT002",))],
            {"ZRT001", "ZRT002"},
        ),
        (
            [RuleSelection(select=("ZRT",)), RuleSelection(ignore=("ZRT005",))],
            set(KNOWN) - {"ZRT005"},
        ),
        # ...a later select starts over (CLI --select replaces the config).
        (
            [RuleSelection(select=("ZRT",), ignore=("ZRT001",)), RuleSelection(select=("ZRT001",))],
            {"ZRT001"},
        ),
    ],
)
def test_resolve_rules(layers: list[RuleSelection], expected: set[str]) -> None:
    assert resolve_rules(layers, KNOWN) == expected


def test_config_select_and_cli_override(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY}, 'select = ["ZRT002"]\n')
    assert json_findings([], tmp_path) == []
    assert [f["code"] for f in json_findings(["--select", "ZRT001"], tmp_path)] == ["ZRT001"]
    assert [f["code"] for f in json_findings(["--extend-select", "ZRT001"], tmp_path)] == ["ZRT001"]


def test_config_ignore_and_extend_select(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY}, 'ignore = ["ZRT00"]\nextend-select = ["ZRT001"]\n')
    assert [f["code"] for f in json_findings([], tmp_path)] == ["ZRT001"]


def test_per_file_ignores(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {"tests/test_flow.py": BUGGY, "tests/deep/flow.py": BUGGY, "app/flow.py": BUGGY},
        '[tool.zart-lint.per-file-ignores]\n"tests/**" = ["ZRT001"]\n',
    )
    found = json_findings([], tmp_path)
    assert [Path(f["filename"]).relative_to(tmp_path).as_posix() for f in found] == ["app/flow.py"]


def test_per_file_ignores_by_file_name(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {"a/legacy_flow.py": BUGGY, "b/flow.py": BUGGY},
        '[tool.zart-lint.per-file-ignores]\n"legacy_*.py" = ["ZRT"]\n',
    )
    found = json_findings([], tmp_path)
    assert [Path(f["filename"]).name for f in found] == ["flow.py"]


def test_config_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    write_project(tmp_path, {"pkg/sub/flow.py": BUGGY}, 'ignore = ["ZRT001"]\n')
    assert json_findings(["."], tmp_path / "pkg" / "sub") == []


def test_explicit_config_file(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY})
    (tmp_path / "zart-lint.toml").write_text('ignore = ["ZRT001"]\n', encoding="utf-8")
    assert json_findings(["--config", "zart-lint.toml"], tmp_path) == []
    # --isolated ignores every config file
    (tmp_path / "pyproject.toml").write_text('[tool.zart-lint]\nignore = ["ZRT"]\n')
    assert len(json_findings(["--isolated"], tmp_path)) == 1


def test_exclude_replaces_defaults_extend_exclude_adds(tmp_path: Path) -> None:
    files = {"build/flow.py": BUGGY, "generated/flow.py": BUGGY, "app/flow.py": BUGGY}
    write_project(tmp_path / "extend", files, 'extend-exclude = ["generated"]\n')
    found = json_findings([], tmp_path / "extend")
    assert {Path(f["filename"]).parent.name for f in found} == {"app"}
    write_project(tmp_path / "replace", files, 'exclude = ["generated"]\n')
    found = json_findings([], tmp_path / "replace")
    assert {Path(f["filename"]).parent.name for f in found} == {"app", "build"}


def test_settings_from_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.zart-lint]\n"
        'step-decorators = ["myapp.tasks.task"]\n'
        'durable-decorators = ["myapp.flows.workflow"]\n'
        'cache-dir = "var/lint-cache"\n',
        encoding="utf-8",
    )
    fc = load_file_config(tmp_path, KNOWN)
    settings = build_settings(fc, RuleSelection(), KNOWN)
    options = rule_options(settings)
    assert options.extra_step_decorators == ("myapp.tasks.task",)
    assert options.extra_durable_decorators == ("myapp.flows.workflow",)
    assert settings.cache_dir == tmp_path / "var" / "lint-cache"
    # build / dist are build-output excludes: they skip build output, not a package so named.
    kept = tuple(p for p in DEFAULT_EXCLUDES if p not in ("build", "dist"))
    assert (*settings.exclude, *settings.build_output) == (*kept, "build", "dist")
    assert settings.enabled == frozenset(KNOWN)


def test_defaults_without_config(tmp_path: Path) -> None:
    # Without a config the project root (.git or pyproject.toml) anchors globs and the cache.
    (tmp_path / ".git").mkdir()
    (tmp_path / "pkg").mkdir()
    fc = load_file_config(tmp_path / "pkg", KNOWN)
    assert fc == FileConfig(path=None, root=tmp_path)


# ------------------------------------------------------------------ invalid config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('slect = ["ZRT001"]\n', ["slect", "did you mean 'select'"]),
        ('select = "ZRT001"\n', ["select", "list of strings"]),
        ('ignore = ["ZRT999"]\n', ["ignore", "ZRT999"]),
        ('select = ["zrt001"]\n', ["select", "upper-case"]),
        ("[tool.zart-lint.per-file-ignores]\n\"tests/*\" = ['E501']\n", ["tests/*", "E501"]),
        ('step-decorators = ["not a name"]\n', ["step-decorators", "dotted name"]),
        ("cache-dir = 3\n", ["cache-dir", "path"]),
        ("select = [\n", ["invalid TOML"]),
    ],
)
def test_invalid_config_is_one_line_exit_2(
    tmp_path: Path, config: str, expected: list[str]
) -> None:
    write_project(tmp_path, {"flow.py": BUGGY}, config)
    out = invoke([], tmp_path)
    assert out.code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("zart-lint: error: ")
    assert str(tmp_path / "pyproject.toml") in lines[0]
    for piece in expected:
        assert piece in lines[0]
    assert out.stdout == ""


def test_invalid_config_via_real_program(tmp_path: Path) -> None:
    write_project(tmp_path, {"flow.py": BUGGY}, "unknown-key = 1\n")
    out = run_cli([], tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "unknown-key" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_explicit_config(tmp_path: Path) -> None:
    out = invoke(["--config", "nope.toml"], tmp_path)
    assert out.code == 2
    assert "config file not found" in out.stderr


# ------------------------------------------------------------------ path globs


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("build", "build", True),
        ("build", "src/build", True),  # a bare name matches at any depth
        ("tests/lint_fixtures", "tests/lint_fixtures", True),
        ("tests/lint_fixtures", "other/tests/lint_fixtures", False),  # anchored at the root
        ("*.pyi", "pkg/mod.pyi", True),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/sub/a.py", False),  # * stays within one component
        ("src/**/gen_*.py", "src/a/b/gen_x.py", True),
        ("src/**/gen_*.py", "src/gen_x.py", True),
        ("./docs/", "docs", True),
        ("file?.py", "file1.py", True),
        ("file[!0-9].py", "file1.py", False),
    ],
)
def test_path_matcher(pattern: str, path: str, matches: bool, tmp_path: Path) -> None:
    matcher = PathMatcher([pattern], tmp_path)
    assert matcher.matches_entry(tmp_path / path) is matches


def test_path_matcher_parents(tmp_path: Path) -> None:
    matcher = PathMatcher(["tests/*"], tmp_path)
    assert matcher.matches_path_or_parent(tmp_path / "tests" / "deep" / "x.py")
    assert not matcher.matches_path_or_parent(tmp_path / "src" / "x.py")
