"""Find, read and validate the ``[tool.zart-lint]`` configuration.

The semantics follow ruff so its users need not learn anything new:

* the nearest ``pyproject.toml`` (from the working directory upward) that has a
  ``[tool.zart-lint]`` table is the configuration; its directory is the *project
  root* that ``exclude`` / ``per-file-ignores`` globs and ``cache-dir`` are
  relative to;
* ``select`` replaces the rule set, ``extend-select`` adds to it, ``ignore``
  removes from it; a more specific selector wins over a less specific one
  (``select = ["ZRT001"]`` + ``ignore = ["ZRT"]`` keeps ZRT001);
* ``exclude`` replaces the default excludes, ``extend-exclude`` adds to them.

This module deliberately does not import the analysis core (libcst is slow to
import); the caller passes the known rule codes in.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zart_lint.core._rule_info import UNUSED_SUPPRESSION as UNUSED_SUPPRESSION_RULE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

TABLE = "zart-lint"

# The code reported by --report-unused-suppressions. It is not an analysis rule
# (the core never emits it), but it may appear in ignore / per-file-ignores.
UNUSED_SUPPRESSION = UNUSED_SUPPRESSION_RULE.code

# Same list as ruff, plus our own cache directory.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".git-rewrite",
    ".hg",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".nox",
    ".pants.d",
    ".pyenv",
    ".pytest_cache",
    ".pytype",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    ".vscode",
    ".zart-lint-cache",
    "__pypackages__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
)

DEFAULT_CACHE_DIR = ".zart-lint-cache"


class ConfigError(Exception):
    """A configuration problem, worded as one line for the user."""


@dataclass(frozen=True)
class RuleSelection:
    """One layer of rule selection (the config file, or the command line)."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileConfig:
    """What a config file says, validated but not yet merged with the CLI."""

    path: Path | None
    root: Path
    selection: RuleSelection = field(default_factory=RuleSelection)
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    step_decorators: tuple[str, ...] = ()
    durable_decorators: tuple[str, ...] = ()
    cache_dir: Path | None = None
    report_unused_suppressions: bool = False


@dataclass(frozen=True)
class Settings:
    """The effective settings of one run."""

    root: Path
    config_path: Path | None
    enabled: frozenset[str]
    exclude: tuple[str, ...]
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...]
    step_decorators: tuple[str, ...]
    durable_decorators: tuple[str, ...]
    cache_dir: Path
    report_unused_suppressions: bool
    # Default excludes that skip build output only, not a real package of that name.
    build_output: tuple[str, ...] = ()


_BUILD_OUTPUT = frozenset({"build", "dist"})

# --------------------------------------------------------------------------- codes


def _specificity(selector: str) -> int:
    return 0 if selector == "ALL" else len(selector)


def expand_selector(selector: str, known: Iterable[str]) -> frozenset[str]:
    if selector == "ALL":
        return frozenset(known)
    return frozenset(code for code in known if code.startswith(selector))


def check_selector(selector: str, known: Sequence[str], *, allow: Iterable[str] = ()) -> str | None:
    """Return an error message if ``selector`` selects nothing, else None."""
    candidates = [*known, *allow]
    if selector == "ALL" or any(code.startswith(selector) for code in candidates):
        return None
    hint = ""
    if selector != selector.upper() and any(c.startswith(selector.upper()) for c in candidates):
        hint = f" (codes are upper-case: {selector.upper()!r})"
    elif known:
        hint = f" (known codes: {min(known)}..{max(known)}"
        hint += f", {UNUSED_SUPPRESSION})" if UNUSED_SUPPRESSION in allow else ")"
    return f"unknown rule code or prefix {selector!r}{hint}"


def resolve_rules(layers: Sequence[RuleSelection], known: Sequence[str]) -> frozenset[str]:
    """Apply selection layers in order, the way ruff does.

    A layer with ``select`` starts from scratch; within a layer, selectors are
    applied from least to most specific, ``ignore`` after ``select`` at equal
    specificity.
    """
    enabled: set[str] = set()
    for layer in layers:
        current: set[str] = set() if layer.select is not None else set(enabled)
        entries = [(_specificity(s), 0, s) for s in (*(layer.select or ()), *layer.extend_select)]
        entries += [(_specificity(s), 1, s) for s in layer.ignore]
        for _, is_ignore, selector in sorted(entries):
            codes = expand_selector(selector, known)
            if is_ignore:
                current -= codes
            else:
                current |= codes
        enabled = current
    return frozenset(enabled)


# --------------------------------------------------------------------------- files


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None


def _table_of(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    if path.name != "pyproject.toml":
        return data  # a dedicated file (e.g. zart-lint.toml): settings at top level
    tool = data.get("tool")
    if not isinstance(tool, dict):
        return None
    table = tool.get(TABLE)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.{TABLE}] must be a table")
    return table


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest pyproject.toml at or above ``start`` with a [tool.zart-lint] table."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            table = _table_of(candidate, _load_toml(candidate))
            if table is not None:
                return candidate, table
    return None


def _default_root(start: Path) -> Path:
    # Without a config, anchor patterns and the cache at the project root so a
    # run from a sub-directory does not litter it with cache directories.
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file() or (directory / ".git").exists():
            return directory
    return start


# --------------------------------------------------------------------------- validation


class _Validator:
    def __init__(self, path: Path, known: Sequence[str]) -> None:
        self.path = path
        self.known = known
        self.prefix = f"[tool.{TABLE}]" if path.name == "pyproject.toml" else ""

    def fail(self, key: str, message: str) -> ConfigError:
        where = f"{self.prefix} {key}" if self.prefix else key
        return ConfigError(f"{self.path}: {where}: {message}")

    def str_list(self, table: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {_describe(value)}")
        return tuple(value)

    def codes(self, table: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
        values = self.str_list(table, key)
        for value in values or ():
            problem = check_selector(value, self.known, allow=(UNUSED_SUPPRESSION,))
            if problem:
                raise self.fail(key, problem)
        return values

    def dotted_names(self, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
        values = self.str_list(table, key) or ()
        for value in values:
            parts = value.split(".")
            if not all(part.isidentifier() for part in parts):
                raise self.fail(key, f"{value!r} is not a dotted name like 'mypkg.durable.step'")
        return values


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


_KEYS = (
    "select",
    "extend-select",
    "ignore",
    "exclude",
    "extend-exclude",
    "per-file-ignores",
    "step-decorators",
    "durable-decorators",
    "cache-dir",
    "report-unused-suppressions",
)


def parse_table(path: Path, table: Mapping[str, Any], known: Sequence[str]) -> FileConfig:
    v = _Validator(path, known)
    for key in table:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(_KEYS)})"
            )
            raise v.fail(key, f"unknown key{hint}")

    per_file: list[tuple[str, tuple[str, ...]]] = []
    raw_pfi = table.get("per-file-ignores", {})
    if not isinstance(raw_pfi, dict):
        raise v.fail(
            "per-file-ignores", f"expected a table of glob = [codes], got {_describe(raw_pfi)}"
        )
    for pattern, codes in raw_pfi.items():
        checked = v.codes({f"per-file-ignores.{pattern!r}": codes}, f"per-file-ignores.{pattern!r}")
        per_file.append((pattern, checked or ()))

    cache_dir: Path | None = None
    if "cache-dir" in table:
        raw = table["cache-dir"]
        if not isinstance(raw, str) or not raw:
            raise v.fail("cache-dir", f"expected a path string, got {_describe(raw)}")
        cache_dir = path.parent / Path(raw).expanduser()

    report_unused = table.get("report-unused-suppressions", False)
    if not isinstance(report_unused, bool):
        raise v.fail(
            "report-unused-suppressions", f"expected true or false, got {_describe(report_unused)}"
        )

    return FileConfig(
        path=path,
        root=path.parent,
        selection=RuleSelection(
            select=v.codes(table, "select"),
            extend_select=v.codes(table, "extend-select") or (),
            ignore=v.codes(table, "ignore") or (),
        ),
        exclude=v.str_list(table, "exclude"),
        extend_exclude=v.str_list(table, "extend-exclude") or (),
        per_file_ignores=tuple(per_file),
        step_decorators=v.dotted_names(table, "step-decorators"),
        durable_decorators=v.dotted_names(table, "durable-decorators"),
        cache_dir=cache_dir,
        report_unused_suppressions=report_unused,
    )


def load_file_config(
    cwd: Path, known: Sequence[str], *, config_path: Path | None = None, isolated: bool = False
) -> FileConfig:
    """Locate and parse the configuration (raises ConfigError)."""
    if isolated:
        return FileConfig(path=None, root=_default_root(cwd))
    if config_path is not None:
        config_path = (cwd / config_path).resolve()
        if not config_path.is_file():
            raise ConfigError(f"{config_path}: config file not found (check --config)")
        table = _table_of(config_path, _load_toml(config_path)) or {}
        return parse_table(config_path, table, known)
    found = find_config(cwd)
    if found is None:
        return FileConfig(path=None, root=_default_root(cwd))
    return parse_table(found[0], found[1], known)


def build_settings(
    file_config: FileConfig,
    cli: RuleSelection,
    known: Sequence[str],
    *,
    cache_dir: Path | None = None,
    report_unused_suppressions: bool = False,
) -> Settings:
    # ZRT100 takes part in selection so that ``ignore = ["ZRT100"]`` silences
    # --report-unused-suppressions, but is only ever reported with that flag.
    selected = resolve_rules(
        [RuleSelection(select=("ALL",)), file_config.selection, cli],
        known=[*known, UNUSED_SUPPRESSION],
    )
    report_unused = report_unused_suppressions or file_config.report_unused_suppressions
    exclude = file_config.exclude if file_config.exclude is not None else DEFAULT_EXCLUDES
    # The default "build" / "dist" excludes skip build output, not a package so named.
    build_output = tuple(p for p in exclude if p in _BUILD_OUTPUT and file_config.exclude is None)
    exclude = tuple(p for p in exclude if p not in build_output)
    env_cache = os.environ.get("ZART_LINT_CACHE_DIR")
    chosen_cache = (
        cache_dir
        or (Path(env_cache) if env_cache else None)
        or file_config.cache_dir
        or file_config.root / DEFAULT_CACHE_DIR
    )
    pfi = tuple(
        (pattern, frozenset().union(*(_expand_pfi(c, known) for c in codes)))
        for pattern, codes in file_config.per_file_ignores
    )
    return Settings(
        root=file_config.root,
        config_path=file_config.path,
        enabled=selected - {UNUSED_SUPPRESSION},
        exclude=(*exclude, *file_config.extend_exclude),
        build_output=build_output,
        per_file_ignores=pfi,
        step_decorators=file_config.step_decorators,
        durable_decorators=file_config.durable_decorators,
        cache_dir=chosen_cache,
        report_unused_suppressions=report_unused and UNUSED_SUPPRESSION in selected,
    )


def _expand_pfi(selector: str, known: Sequence[str]) -> frozenset[str]:
    return expand_selector(selector, [*known, UNUSED_SUPPRESSION])
