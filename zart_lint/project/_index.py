"""The project index: which names of the project lead to a step, a durable or zart.

Linting ``flows.py`` alone (as pre-commit does) must still know that
``process_item``, imported from ``steps.py``, is a step and what its name
template is. The index answers that by following the imports, lazily: a module
is read only when a question reaches it, so the cost of linting one file grows
with what that file reaches through its imports, not with the size of the tree.

What it follows: imports (``from .steps import charge as pay``), module-level
aliases (``pay = billing.charge``, ``activity = zart.step``), star imports
(each module's exported names are computed once, whatever the depth of a
``from .a import *`` chain), ``functools.partial`` of a step, and steps
defined as methods (``Billing.charge``). What it cannot: names built at run
time (``getattr(module, name)``, ``globals()[...]``, ``importlib``).

Cost control: a module that does not mention ``zart`` (nor a configured
decorator) cannot define a step itself; for it, only its imports are read
(with a regular expression, see ``_imports``). It *leads to* steps when it
imports from a module that does (a re-export): such "step-bearing" modules are
then parsed with ``ast`` for their aliases and definitions. Reading and parsing
results are kept per file (``ModuleInfo``), which is what the index cache
stores: an edit re-reads one file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from zart_lint.core._options import RuleOptions
from zart_lint.core._recognize import (
    DURABLE_DECORATORS,
    PRIMITIVES,
    STEP_DECORATORS,
    StepDef,
    decorator_kind,
    partial_step,
)
from zart_lint.project import _module_scan
from zart_lint.project._discovery import BUILD_OUTPUT_DIRS, is_build_output
from zart_lint.project._imports import resolve_relative, scan_imports
from zart_lint.project._module_scan import ModuleInfo, Partial

__all__ = [
    "ModuleInfo",
    "Partial",
    "ProjectIndex",
    "dotted_name",
    "module_parts",
    "python_files",
    "resolve_relative",
]

# Bump when the meaning of the index changes, so cached results are not reused.
_INDEX_FORMAT = "zart-lint-index/2"

_ROOT_MARKERS = ("pyproject.toml", ".git")
# Directories that never hold project code.
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
# Build output (``build/lib/pkg/steps.py`` is a copy that would shadow ``pkg.steps``)
# is skipped unless it is a real sub-package (pip's ``_internal/operations/build/``).
_MAX_HOPS = 64
_ZART_NAMES = STEP_DECORATORS | DURABLE_DECORATORS | frozenset(PRIMITIVES)

dotted_name = _module_scan.dotted_name

# What a name of the project refers to: a step or durable definition, or a
# qualified name outside the project ("zart.step"); None: nothing known.
Resolved = StepDef | str | None
# Scans files for the index, like ``map`` (possibly in worker processes).
Scanner = Callable[
    [Callable[[Path], "ModuleInfo | None"], list[Path]], Iterable["ModuleInfo | None"]
]
StatKey = tuple[int, int, int]


def module_parts(relative: Path) -> tuple[str, ...]:
    """Dotted parts of a root-relative ``.py`` path (``pkg/__init__.py`` -> ("pkg",))."""
    parts = relative.with_suffix("").parts
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return tuple(parts)


def python_files(root: Path, skipped: list[Path] | None = None) -> Iterator[Path]:
    """Root-relative paths of the project's ``.py`` files (``skipped``: build output seen)."""
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        kept = []
        for name in dirnames:
            if name.startswith(".") or name in _SKIPPED_DIRS or name.endswith(".egg-info"):
                continue
            if (here / name / "pyvenv.cfg").exists():  # a virtualenv
                continue
            if name in BUILD_OUTPUT_DIRS and is_build_output(here / name):
                if skipped is not None:
                    skipped.append((here / name).relative_to(root))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            if name.endswith(".py"):
                yield (here / name).relative_to(root)


@dataclass
class _Store:
    """Per-file scan results: the ones of this run, and the cached ones (valid by stat)."""

    infos: dict[str, ModuleInfo | None] = field(default_factory=dict)
    cached: dict[str, tuple[StatKey, ModuleInfo | None]] = field(default_factory=dict)
    stats: dict[str, StatKey] = field(default_factory=dict)  # of the files scanned this run
    reads: set[str] = field(default_factory=set)  # files read since the last save


class ProjectIndex:
    """Steps, durables and aliases of one project, found on demand."""

    def __init__(
        self,
        root: Path | None,
        files: list[Path],
        options: RuleOptions,
        cached: dict[str, tuple[StatKey, ModuleInfo | None]] | None = None,
    ) -> None:
        self.root = root
        self.options = options
        self.files = files
        self._paths = {".".join(module_parts(rel)): rel for rel in files}
        self._package_dirs = {rel.parent for rel in files if rel.name == "__init__.py"}
        # Every importable dotted name -> module keys (several when ambiguous).
        self.names = _register(files, self._package_dirs)
        self._triggers = ("zart", *options.decorator_words())
        self._store = _Store(cached=dict(cached or {}))
        self._exports: dict[str, dict[str, object]] = {}
        self._resolved: dict[tuple[str, str | None], Resolved] = {}
        self._bearing: dict[str, bool] = {}
        self._fingerprint: str | None = None

    # -- construction -----------------------------------------------------------------

    @staticmethod
    def find_root(path: Path) -> Path | None:
        """Nearest directory, from ``path`` upwards, holding pyproject.toml or .git."""
        current = Path(os.path.abspath(path))
        if not current.is_dir():
            current = current.parent
        for candidate in (current, *current.parents):
            if any((candidate / marker).exists() for marker in _ROOT_MARKERS):
                return candidate
        return None

    @classmethod
    def empty(cls, options: RuleOptions | None = None) -> ProjectIndex:
        return cls(None, [], options or RuleOptions())

    @classmethod
    def build(
        cls,
        root: Path | None,
        options: RuleOptions,
        scanner: Scanner | None = None,
        *,
        files: list[Path] | None = None,
        cached: dict[str, tuple[StatKey, ModuleInfo | None]] | None = None,
    ) -> ProjectIndex:
        """The index of the project under ``root``; nothing is read until asked for.

        ``files``: ``sorted(python_files(root))`` when the caller has it already.
        ``cached``: scan results of an earlier run, by root-relative path, each
        used while the file's stat is unchanged. ``scanner`` is kept for
        :meth:`load_all`.
        """
        if root is None:
            return cls.empty(options)
        root = Path(os.path.abspath(root))
        files = files if files is not None else sorted(python_files(root))
        index = cls(root, files, options, cached)
        index._scanner = scanner
        return index

    _scanner: Scanner | None = None

    def load_all(self, scanner: Scanner | None = None) -> None:
        """Scan every file of the project (for :meth:`fingerprint`), in ``scanner``'s workers."""
        if self.root is None:
            return
        todo = [rel for rel in self.files if self._key_of(rel) not in self._store.infos]
        todo = [rel for rel in todo if not self._use_cached(rel)]
        scan = _Scan(self.root, self._triggers, self.options)
        scanner = scanner or self._scanner
        results = scanner(scan, todo) if scanner is not None and len(todo) > 1 else map(scan, todo)
        for rel, info in zip(todo, results, strict=True):
            self._remember(rel, info)
        for key in list(self._paths):
            if self.bearing(key):
                self._full(key)

    # -- state for the cache ----------------------------------------------------------

    def scanned(self) -> dict[str, tuple[StatKey, ModuleInfo | None]]:
        """Scan results worth keeping: the cached ones still valid, and this run's."""
        listed = {str(rel) for rel in self.files}
        kept = {
            rel: entry
            for rel, entry in self._store.cached.items()
            if rel not in self._store.stats and rel in listed
        }
        for key, info in self._store.infos.items():
            rel = self._paths.get(key)
            if rel is not None and str(rel) in self._store.stats:
                kept[str(rel)] = (self._store.stats[str(rel)], info)
        return kept

    @property
    def files_read(self) -> int:
        return len(self._store.reads)

    def mark_saved(self) -> None:
        """What was read so far is in the cache: ``files_read`` counts from here."""
        self._store.reads = set()

    # -- queries ----------------------------------------------------------------------

    def fingerprint(self) -> str:
        """A hash of every definition and alias that can lead to a step (loads all)."""
        if self._fingerprint is None:
            self.load_all()
            relevant = {
                key: info
                for key, info in self._store.infos.items()
                if info is not None and self.bearing(key)
            }
            self._fingerprint = _fingerprint(relevant, self.names, self.options)
        return self._fingerprint

    def location_of(self, path: Path) -> tuple[str, tuple[str, ...]] | None:
        """(module key, root-relative parts of its directory) of a file under the root."""
        if self.root is None:
            return None
        absolute = os.path.abspath(path)
        root = str(self.root)
        prefix = root if root.endswith(os.sep) else root + os.sep
        if os.sep == "/" and absolute.startswith(prefix):
            # The common case, without pathlib (which costs more than the rest of
            # setting up a file's analysis).
            parts = absolute[len(prefix) :].split(os.sep)
            name = parts[-1]
            dot = name.rfind(".")  # the suffix as pathlib sees it
            stem, suffix = (name[:dot], name[dot:]) if 0 < dot < len(name) - 1 else (name, "")
            if suffix not in (".py", ".pyi"):
                return None
            module = [*parts[:-1], stem] if stem != "__init__" else parts[:-1]
            return ".".join(module), tuple(parts[:-1])
        try:
            relative = Path(absolute).relative_to(self.root)
        except ValueError:
            return None
        if relative.suffix not in (".py", ".pyi"):
            return None
        return ".".join(module_parts(relative)), tuple(relative.parent.parts)

    def lookup(self, qualified: str, importer: str | None = None) -> StepDef | None:
        """The step or durable a qualified name refers to, following re-exports."""
        found = self.resolve(qualified, importer)
        return found if isinstance(found, StepDef) else None

    def resolve(self, qualified: str, importer: str | None = None) -> Resolved:
        """What a qualified name refers to: a step / durable, or a name outside the
        project (``"zart.step"`` for ``activity`` after ``activity = zart.step``)."""
        key = (qualified, importer)
        if key not in self._resolved:
            self._resolved[key] = None  # a cycle of aliases resolves to nothing
            self._resolved[key] = self._resolve(qualified, importer, 0)
        return self._resolved[key]

    def leads_to_steps(self, qualified: str, importer: str | None = None) -> bool:
        """Whether an imported name can lead to a step, a durable or zart: a step-bearing
        module, a definition, or an alias of one."""
        if qualified.split(".")[0] == "zart":
            return True
        module = self.module_key(qualified, importer)
        if module is not None:
            return self.bearing(module)
        found = self.resolve(qualified, importer)
        if isinstance(found, str):
            return found.split(".")[0] == "zart" or self._configured(found)
        return found is not None

    def _configured(self, qualified: str) -> bool:
        options = self.options
        return qualified in (*options.extra_step_decorators, *options.extra_durable_decorators)

    def module_key(self, dotted: str, importer: str | None = None) -> str | None:
        keys = self.names.get(dotted)
        return _nearest(keys, importer) if keys else None

    # -- resolution -------------------------------------------------------------------

    def _resolve(self, qualified: str, importer: str | None, hops: int) -> Resolved:
        parts = qualified.split(".")
        if parts[0] == "zart" or hops > _MAX_HOPS:
            return qualified if hops <= _MAX_HOPS else None
        for split in range(len(parts) - 1, 0, -1):
            module = self.module_key(".".join(parts[:split]), importer)
            if module is None:
                continue
            return self._member(module, parts[split:], hops)
        return qualified  # outside the project

    def _member(self, module: str, rest: list[str], hops: int) -> Resolved:
        exports = self.exports(module)
        for width in (2, 1):  # "Billing.charge" (a method), then "charge"
            if len(rest) < width:
                continue
            entry = exports.get(".".join(rest[:width]))
            if entry is None:
                continue
            tail = rest[width:]
            if isinstance(entry, str):
                return self._follow(".".join([entry, *tail]), module, hops)
            if tail:
                return None
            if isinstance(entry, StepDef):
                return entry
            if isinstance(entry, Partial):
                return self._partial(entry, module, hops)
            if isinstance(entry, _module_scan.Decorated):
                return self._decorated(entry, module, hops)
        return None

    def _follow(self, qualified: str, importer: str, hops: int) -> Resolved:
        key = (qualified, importer)
        if key not in self._resolved:
            self._resolved[key] = None
            self._resolved[key] = self._resolve(qualified, importer, hops + 1)
        return self._resolved[key]

    def _partial(self, partial: Partial, module: str, hops: int) -> Resolved:
        target = self._follow(partial.target, module, hops)
        if not isinstance(target, StepDef):
            return None
        keywords = {name: (value, literal) for name, value, literal in partial.keywords}
        return partial_step(target, partial.positional, keywords, fixed=True)

    def _decorated(self, entry: _module_scan.Decorated, module: str, hops: int) -> Resolved:
        decorator = self._follow(entry.decorator, module, hops)
        kind = decorator_kind(decorator if isinstance(decorator, str) else None, None, self.options)
        return replace(entry.definition, kind=kind) if kind is not None else None

    def exports(self, module: str) -> dict[str, object]:
        """Name -> what it is, for every name a module defines or imports: computed once
        per module, star imports included (whatever the depth of their chain)."""
        found = self._exports.get(module)
        if found is None:
            self._exports[module] = {}  # a star-import cycle adds nothing
            found = self._compute_exports(module)
            self._exports[module] = found
        return found

    def _compute_exports(self, module: str) -> dict[str, object]:
        info = self._full(module) if self.bearing(module) else self._info(module)
        if info is None:
            return {}
        table: dict[str, object] = {}
        for star in info.star_imports:
            source = self.module_key(star, module)
            if source is not None and source != module:
                table.update(
                    (name, value)
                    for name, value in self.exports(source).items()
                    if not name.startswith("_")
                )
        table.update(info.imports)
        table.update(info.partials)
        table.update(info.decorated)
        table.update(info.steps)
        return table

    # -- which modules lead to steps ---------------------------------------------------

    def bearing(self, module: str) -> bool:
        """Whether the module defines, or imports from a module that defines, a step, a
        durable, or an alias of zart's API. Explores its imports once."""
        if module not in self._bearing:
            self._explore(module)
        return self._bearing.get(module, False)

    def _explore(self, start: str) -> None:
        edges: dict[str, list[str]] = {}
        direct: set[str] = set()
        stack = [start]
        while stack:
            key = stack.pop()
            if key in edges or key in self._bearing:
                continue
            info = self._info(key)
            edges[key] = []
            if info is None:
                continue
            if info.mentions and _defines(self._full(key)):
                direct.add(key)
            for name in info.modules:
                target = self.module_key(name, key)
                if target is not None and target != key:
                    edges[key].append(target)
                    stack.append(target)
        importers: dict[str, list[str]] = {}
        for key, targets in edges.items():
            for target in targets:
                importers.setdefault(target, []).append(key)
        queue = [key for key in edges if key in direct]
        queue += [key for key in importers if self._bearing.get(key)]
        reached = set(queue)
        while queue:  # importers of a bearing module bear too
            for importer in importers.get(queue.pop(), ()):
                if importer not in reached:
                    reached.add(importer)
                    queue.append(importer)
        for key in edges:
            self._bearing[key] = key in reached

    # -- reading modules --------------------------------------------------------------

    def _key_of(self, rel: Path) -> str:
        return ".".join(module_parts(rel))

    def _info(self, module: str) -> ModuleInfo | None:
        if module in self._store.infos:
            return self._store.infos[module]
        rel = self._paths.get(module)
        if rel is None or self.root is None:
            return None
        if not self._use_cached(rel):
            self._remember(rel, _Scan(self.root, self._triggers, self.options)(rel))
        return self._store.infos.get(module)

    def _full(self, module: str) -> ModuleInfo | None:
        """The module's info with its definitions and aliases (parsed with ast)."""
        info = self._info(module)
        if info is None or info.full or self.root is None:
            return info
        rel = self._paths[module]
        self._remember(rel, _Scan(self.root, self._triggers, self.options, full=True)(rel))
        return self._store.infos.get(module)

    def _use_cached(self, rel: Path) -> bool:
        entry = self._store.cached.get(str(rel))
        if entry is None or self.root is None:
            return False
        try:
            st = os.stat(self.root / rel)
        except OSError:
            return False
        if (st.st_mtime_ns, st.st_size, st.st_ino) != entry[0]:
            return False
        self._store.infos[self._key_of(rel)] = entry[1]
        return True

    def _remember(self, rel: Path, info: ModuleInfo | None) -> None:
        assert self.root is not None
        self._store.reads.add(str(rel))
        try:
            st = os.stat(self.root / rel)
            self._store.stats[str(rel)] = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            pass
        self._store.infos[self._key_of(rel)] = info
        self._fingerprint = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_scanner", None)
        return state


@dataclass(frozen=True)
class _Scan:
    """Reads one file for the index (a picklable function for worker processes)."""

    root: Path
    triggers: tuple[str, ...]
    options: RuleOptions
    full: bool = False

    def __call__(self, rel: Path) -> ModuleInfo | None:
        try:
            text = (self.root / rel).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return None
        key = ".".join(module_parts(rel))
        if not key:
            return None  # an __init__.py at the root is no importable module
        directory = tuple(rel.parent.parts)
        mentions = any(word in text for word in self.triggers)
        if mentions or self.full:
            parsed = _module_scan.parse_module(key, directory, text, self.options, mentions)
            if parsed is not None:
                return parsed
        scanned = scan_imports(text, directory)
        return ModuleInfo(
            key,
            full=False,
            mentions=mentions,
            imports=scanned.names,
            star_imports=scanned.stars,
            modules=scanned.modules,
        )


def _defines(info: ModuleInfo | None) -> bool:
    """A module that defines steps or aliases zart's API (a source of step-bearing)."""
    if info is None:
        return False
    if info.steps or info.partials:
        return True
    for target in info.imports.values():
        parts = target.split(".")
        if parts[0] == "zart" and len(parts) > 1 and parts[-1] in _ZART_NAMES:
            return True
    return False


def _register(files: list[Path], package_dirs: set[Path]) -> dict[str, tuple[str, ...]]:
    """Importable dotted name -> module keys.

    A module is registered under its root-relative path and under the name its
    packages give it (``src/shop/steps.py`` -> "src.shop.steps", "shop.steps").
    Shorter suffixes ("steps") are registered too, for layouts the ``__init__.py``
    files do not tell (namespace packages, scripts run from their directory), but
    never over a name some module has by the first two rules.
    """
    exact: dict[str, set[str]] = {}
    suffixes: dict[str, set[str]] = {}
    for rel in files:
        parts = module_parts(rel)
        key = ".".join(parts)
        if not key:
            continue
        for name in (key, _importable_name(rel, package_dirs)):
            exact.setdefault(name, set()).add(key)
        for start in range(1, len(parts)):
            suffixes.setdefault(".".join(parts[start:]), set()).add(key)
    for name, keys in suffixes.items():
        exact.setdefault(name, keys)
    return {name: tuple(sorted(keys)) for name, keys in exact.items() if name}


def _importable_name(rel: Path, package_dirs: set[Path]) -> str:
    """Dotted name under which ``import`` finds the file: climb while in a package."""
    parts = module_parts(rel)
    if not parts:
        return ""
    name = [parts[-1]]
    directory = rel.parent.parent if rel.name == "__init__.py" else rel.parent
    while directory.parts and directory in package_dirs:
        name.insert(0, directory.name)
        directory = directory.parent
    return ".".join(name)


def _nearest(keys: tuple[str, ...], importer: str | None) -> str:
    """Among modules registered under one name, the one closest to the importer."""
    if len(keys) == 1 or importer is None:
        return keys[0]
    importer_parts = importer.split(".")

    def shared(key: str) -> int:
        count = 0
        for mine, theirs in zip(key.split("."), importer_parts, strict=False):
            if mine != theirs:
                break
            count += 1
        return count

    return min(keys, key=lambda key: (-shared(key), key))


def _fingerprint(
    modules: dict[str, ModuleInfo], names: dict[str, tuple[str, ...]], options: RuleOptions
) -> str:
    digest = hashlib.sha256()
    digest.update(_INDEX_FORMAT.encode())
    digest.update(repr(options).encode())
    relevant = set(modules)
    for key in sorted(modules):
        digest.update(_module_scan.info_key(modules[key]).encode())
    digest.update(
        repr(
            sorted((name, keys) for name, keys in names.items() if relevant.intersection(keys))
        ).encode()
    )
    return digest.hexdigest()
