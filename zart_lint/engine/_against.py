"""``zart-lint --against REF``: the durables and steps of the working tree compared with
those of a git revision, by the --against rules (ZRT009-ZRT012).

Runs only when the flag is given. The revision's Python files under the given
paths are read with git (never checked out: the repository is left alone) and
written to a temporary directory, so that the project index can resolve steps
across modules there as it does in the working tree. Both versions are parsed
and walked as a normal check does; :mod:`zart_lint.analysis._durables` turns
each file into its durables (with their call sequences) and steps, and the
rules compare the two (see :mod:`zart_lint.rules._against`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import libcst as cst

from zart_lint.analysis._analysis import Analysis
from zart_lint.analysis._durables import FileShape, file_shape
from zart_lint.analysis._model import FileModel
from zart_lint.analysis._report import Report
from zart_lint.analysis._walker import walk
from zart_lint.core._finding import Finding
from zart_lint.core._options import RuleOptions
from zart_lint.engine._lint import _materialize, parse_module
from zart_lint.project._git import python_files_at, repository_root, resolve_commit
from zart_lint.project._index import ProjectIndex
from zart_lint.rules import COMPARISONS
from zart_lint.rules._against import AgainstContext, AgainstReport

__all__ = ["Revision", "compare_sources"]


@dataclass
class _Parsed:
    module: cst.Module
    source: str
    model: FileModel
    shape: FileShape


def _shapes(
    files: Mapping[str, str],
    index: ProjectIndex,
    place: Callable[[str], Path],
    options: RuleOptions,
) -> dict[str, _Parsed]:
    parsed: dict[str, _Parsed] = {}
    triggers = ("zart", *options.decorator_words())
    for key, source in files.items():
        if not any(word in source for word in triggers):
            continue  # defines no durable or step
        try:
            module = parse_module(source)
            model = walk(module)
            shape = file_shape(Analysis(model, place(key), index, options))
        except (cst.ParserSyntaxError, RecursionError, ValueError):
            continue  # the normal check reports it (ZRT000)
        parsed[key] = _Parsed(module, source, model, shape)
    return parsed


def _compare(ref: str, old: Mapping[str, _Parsed], new: Mapping[str, _Parsed]) -> list[Finding]:
    context = AgainstContext(
        ref,
        {key: parsed.shape for key, parsed in old.items()},
        {key: parsed.shape for key, parsed in new.items()},
    )
    by_path: dict[str, list[AgainstReport]] = {}
    for comparison in COMPARISONS:
        for report in comparison(context):
            by_path.setdefault(report.path, []).append(report)
    findings: list[Finding] = []
    for path, reports in by_path.items():
        parsed = new.get(path)
        placed = [Report(r.code, r.message, r.node) for r in reports if r.node and parsed]
        findings += [
            Finding(r.code, r.message, path, 1, 1, 1, 1)
            for r in reports
            if r.node is None or parsed is None
        ]
        if parsed is not None and placed:
            findings += _materialize(
                parsed.module, parsed.source, placed, path, parsed.model.top_level, []
            )
    for parsed in (*old.values(), *new.values()):
        parsed.model.release()
    findings.sort(key=lambda finding: finding.sort_key)
    return findings


def compare_sources(
    old: Mapping[str, str],
    new: Mapping[str, str],
    ref: str = "REF",
    options: RuleOptions | None = None,
) -> list[Finding]:
    """The --against findings for two in-memory versions of a project (path -> source),
    without git or a project index (steps are resolved within each file)."""
    options = options or RuleOptions()
    index = ProjectIndex.empty(options)
    return _compare(ref, _shapes(old, index, Path, options), _shapes(new, index, Path, options))


class Revision:
    """A git revision to compare the working tree with. Raises ``GitError`` when
    ``start`` is not in a git repository or ``ref`` names no commit."""

    def __init__(self, ref: str, start: Path) -> None:
        self.ref = ref
        self.repo = repository_root(start)
        self.commit = resolve_commit(self.repo, ref)

    def findings(
        self,
        paths: Sequence[Path],
        files: Iterable[Path],
        project_root: Path,
        options: RuleOptions,
        excluded: Callable[[Path], bool],
    ) -> list[Finding]:
        """Findings (paths relative to the repository) for the working-tree ``files``
        against the revision's files under ``paths`` (those ``excluded`` left out)."""
        repo = self.repo.resolve()
        prefixes = tuple(
            p for p in (_relative(path.resolve(), repo) for path in paths) if p is not None
        )
        old_sources = {
            key: text
            for key, text in python_files_at(self.repo, self.commit, prefixes).items()
            if not excluded(repo / key)
        }
        new_sources: dict[str, str] = {}
        for path in files:
            key = _relative(path.resolve(), repo)
            if key is not None:
                try:
                    new_sources[key] = path.read_text(encoding="utf-8-sig")
                except (OSError, UnicodeDecodeError):
                    continue  # the normal check reports it
        new_index = ProjectIndex.build(project_root, options)
        new = _shapes(new_sources, new_index, lambda key: repo / key, options)
        with tempfile.TemporaryDirectory(prefix="zart-lint-against-") as scratch:
            top = Path(scratch)
            for key, text in old_sources.items():
                target = top / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            root_key = _relative(project_root.resolve(), repo)
            old_root = top / root_key if root_key is not None else None
            if old_root is not None:
                old_root.mkdir(parents=True, exist_ok=True)
                (old_root / "pyproject.toml").touch()  # the index root marker
            old_index = ProjectIndex.build(old_root, options)
            old = _shapes(old_sources, old_index, lambda key: top / key, options)
        return _compare(self.ref, old, new)


def _relative(path: Path, repo: Path) -> str | None:
    """``path`` relative to the repository as a POSIX string ("" for the top), or None."""
    try:
        relative = PurePosixPath(path.relative_to(repo).as_posix())
    except ValueError:
        return None
    return "" if str(relative) == "." else str(relative)
