"""Which files to lint: path globs, excludes and the directory walk.

Exclude semantics follow ruff:

* a pattern without ``/`` matches a file or directory *name* anywhere
  (``build`` skips every directory called build);
* a pattern with ``/`` matches the path relative to the project root
  (``tests/lint_fixtures``, ``src/**/generated_*.py``);
* ``*`` and ``?`` stay within one path component, ``**`` crosses components;
* paths named on the command line are linted even when excluded, unless
  ``--force-exclude`` is given (what pre-commit users want, since pre-commit
  passes file names explicitly).

The default excludes ``build`` and ``dist`` are build output: they are skipped
unless they are a real sub-package (hold an ``__init__.py`` in a directory that
holds one, like pip's ``_internal/operations/build/``). What the walk skips
that way is reported (``Discovery.skipped``), never silently dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


def _glob_to_regex(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    by_name: bool  # no "/" in the pattern: match the last path component
    absolute: bool


BUILD_OUTPUT_DIRS = frozenset({"build", "dist"})


def is_build_output(directory: Path) -> bool:
    """A ``build`` / ``dist`` directory that is not a sub-package of a package."""
    return directory.name in BUILD_OUTPUT_DIRS and not (
        (directory / "__init__.py").is_file() and (directory.parent / "__init__.py").is_file()
    )


class PathMatcher:
    """A set of ruff-style path globs, relative to ``root``.

    ``build_output``: directory names skipped only when they are build output
    (see :func:`is_build_output`), not when they are a real package.
    """

    def __init__(
        self, patterns: Iterable[str], root: Path, build_output: Iterable[str] = ()
    ) -> None:
        self.root = root
        self.build_output = frozenset(build_output)
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            pattern = raw.strip()
            while pattern.startswith("./"):
                pattern = pattern[2:]
            pattern = pattern.rstrip("/")
            if not pattern:
                continue
            absolute = pattern.startswith("/")
            by_name = "/" not in pattern
            self.patterns.append(
                _Pattern(re.compile(_glob_to_regex(pattern) + r"\Z"), by_name, absolute)
            )

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def relative(self, path: Path) -> str:
        """``path`` relative to the root as a POSIX string (absolute if outside)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def matches_entry(self, path: Path, rel: str | None = None) -> bool:
        """Does this one path (not its ancestors) match a pattern?"""
        if not self.patterns and not self.build_output:
            return False
        rel = self.relative(path) if rel is None else rel
        name = path.name
        if name in self.build_output and is_build_output(path):
            return True
        abs_posix = path.as_posix()
        for p in self.patterns:
            if p.by_name:
                if p.regex.match(name) or p.regex.match(rel):
                    return True
            elif p.regex.match(abs_posix if p.absolute else rel):
                return True
        return False

    def matches_path_or_parent(self, path: Path) -> bool:
        """Does the path, or a directory containing it (up to the root), match?"""
        if not self.patterns and not self.build_output:
            return False
        rel = self.relative(path)
        if self.matches_entry(path, rel):
            return True
        if not rel.startswith("/"):
            parts = PurePosixPath(rel).parts
            for i in range(len(parts) - 1, 0, -1):
                if self.matches_entry(self.root.joinpath(*parts[:i]), "/".join(parts[:i])):
                    return True
            return False
        return any(self.matches_entry(parent) for parent in path.parents)


@dataclass
class Discovery:
    files: list[Path]
    missing: list[str]  # command-line paths that do not exist
    skipped: list[Path] = field(default_factory=list)  # build output directories not walked
    explicit: set[Path] = field(default_factory=set)  # files named on the command line


# Never project source, whatever ``exclude`` says (it may replace the defaults).
_ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn", "__pycache__"})


def _never_source(name: str, directory: str) -> bool:
    return name in _ALWAYS_SKIPPED or os.path.isfile(os.path.join(directory, "pyvenv.cfg"))


def _walk(top: Path, excludes: PathMatcher, skipped: list[Path]) -> Iterator[Path]:
    stack = [str(top)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # unreadable directory: nothing we can lint in it
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir:
                path = Path(entry.path)
                if _never_source(entry.name, entry.path) or excludes.matches_entry(path):
                    if entry.name in excludes.build_output and is_build_output(path):
                        skipped.append(path)
                    continue
                stack.append(entry.path)
            elif is_file and entry.name.endswith(".py"):
                path = Path(entry.path)
                if not excludes.matches_entry(path):
                    yield path


def discover(
    paths: Sequence[Path], cwd: Path, excludes: PathMatcher, *, force_exclude: bool = False
) -> Discovery:
    seen: set[Path] = set()
    files: list[Path] = []
    missing: list[str] = []
    skipped: list[Path] = []
    explicit: set[Path] = set()

    def add(path: Path) -> None:
        if path not in seen:
            seen.add(path)
            files.append(path)

    for given in paths:
        path = Path(os.path.normpath(cwd / given))
        if not path.exists():
            missing.append(str(given))
            continue
        if force_exclude and excludes.matches_path_or_parent(path):
            continue
        if path.is_dir():
            for found in sorted(_walk(path, excludes, skipped)):
                add(found)
        else:
            # Named explicitly: lint it whatever its extension (pre-commit also
            # passes extension-less scripts with a python shebang).
            add(path)
            explicit.add(path)
    return Discovery(files, missing, sorted(set(skipped)), explicit)


def display_path(path: Path, cwd: Path) -> str:
    """How a path is shown to the user: relative to the working directory if inside it."""
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return str(path)
