"""The project index: every step and durable defined anywhere in the project.

Linting ``flows.py`` alone (as pre-commit does) must still know that
``process_item``, imported from ``steps.py``, is a step and what its name
template is. The index is built once per run from the project root with the
``ast`` module (several times faster than libcst; ``build`` can read and parse
the files in worker processes) and sent to worker processes, so it holds only
plain, picklable data.

Cost control: a file that never mentions ``zart`` (nor a configured decorator)
cannot define a step, so it is not parsed for definitions. It can still
re-export one (``pkg/__init__.py``: ``from .steps import process_item``), so
files that mention the name of a known step, or of a module holding steps, are
parsed for their imports only; that repeats until no new name turns up.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zart_lint.core._options import RuleOptions
from zart_lint.core._recognize import Param, ParamKind, StepDef, decorator_kind

# Bump when the meaning of the index changes, so cached results are not reused.
_INDEX_FORMAT = "zart-lint-index/1"

_ROOT_MARKERS = ("pyproject.toml", ".git")
# Directories that hold no project code, or copies of it that would shadow the
# real modules (build/lib/pkg/steps.py would also register as "pkg.steps").
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})
_MAX_REEXPORT_HOPS = 8


@dataclass(frozen=True)
class ModuleInfo:
    # Root-relative dotted path: "src.pkg.steps", or "pkg" for pkg/__init__.py.
    key: str
    steps: dict[str, StepDef] = field(default_factory=dict)
    # Local name -> absolute qualified name it was imported as.
    imports: dict[str, str] = field(default_factory=dict)
    star_imports: tuple[str, ...] = ()


# What _scan learns about a file: its definitions and imports when it mentions a
# trigger word, else its text (looked at again for re-exports); (None, None) when
# it cannot be read or parsed.
Scanned = tuple[ModuleInfo | None, str | None]
Scanner = Callable[[Callable[[Path], Scanned], list[Path]], Iterable[Scanned]]


def module_parts(relative: Path) -> tuple[str, ...]:
    """Dotted parts of a root-relative ``.py`` path (``pkg/__init__.py`` -> ("pkg",))."""
    parts = relative.with_suffix("").parts
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return tuple(parts)


def resolve_relative(directory: tuple[str, ...], level: int, module: str | None) -> str | None:
    """Root-relative dotted name of ``from <level dots><module> import``.

    ``directory`` holds the root-relative parts of the importing file's directory
    (for ``pkg/__init__.py`` that is the package itself, as Python has it).
    """
    up = level - 1
    if up > len(directory):
        return None  # climbs above the project root
    base = list(directory[: len(directory) - up])
    if module:
        base.extend(module.split("."))
    return ".".join(base)


def dotted_name(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def qualify(written: str, imports: dict[str, str]) -> str | None:
    head, dot, rest = written.partition(".")
    target = imports.get(head)
    if target is None:
        return None
    return f"{target}{dot}{rest}"


class ProjectIndex:
    """Step and durable definitions of one project, keyed by module."""

    def __init__(
        self,
        root: Path | None,
        modules: dict[str, ModuleInfo],
        names: dict[str, tuple[str, ...]],
        words: frozenset[str],
        options: RuleOptions,
    ) -> None:
        self.root = root
        self.modules = modules
        # Every importable dotted name -> module keys (several when ambiguous).
        self.names = names
        # Identifiers whose mention makes a file worth linting (see might_involve_steps).
        self.words = words
        self._options = options
        self._fingerprint: str | None = None  # computed when first asked for

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
        return cls(None, {}, {}, frozenset(), options or RuleOptions())

    @classmethod
    def build(
        cls,
        root: Path | None,
        options: RuleOptions,
        scanner: Scanner | None = None,
        *,
        files: list[Path] | None = None,
    ) -> ProjectIndex:
        """Index the project under ``root``.

        ``scanner`` maps a function over the project's files, like ``map`` (the
        default) but possibly in worker processes: reading and parsing every
        file is most of the work. ``files``: ``sorted(python_files(root))``,
        when the caller has it already.
        """
        if root is None:
            return cls.empty(options)
        root = Path(os.path.abspath(root))
        files = files if files is not None else sorted(python_files(root))
        package_dirs = {rel.parent for rel in files if rel.name == "__init__.py"}
        triggers = ("zart", *options.decorator_words())

        definers: dict[str, ModuleInfo] = {}  # modules that define steps or durables
        parsed: dict[str, ModuleInfo] = {}  # other parsed modules: kept if they re-export
        unparsed: dict[Path, str] = {}
        scan = functools.partial(_scan, root, triggers, options)
        scanned = scanner(scan, files) if scanner is not None else map(scan, files)
        for rel, (info, text) in zip(files, scanned, strict=True):
            if info is not None:
                (definers if info.steps else parsed)[info.key] = info
            elif text is not None:
                unparsed[rel] = text

        relays: dict[str, ModuleInfo] = {}  # modules importing a step (or its module)
        words = _exported_words(definers, relays)
        # Re-exports: parse the imports of files that mention an exported word,
        # until the set of exported words stops growing.
        for _ in range(_MAX_REEXPORT_HOPS):
            frozen = frozenset(words)
            for rel in [rel for rel, text in unparsed.items() if mentions_any(text, frozen)]:
                info = _parse_module(rel, unparsed.pop(rel), options, definitions=False)
                if info is not None:
                    parsed[info.key] = info
            for key in [key for key, info in parsed.items() if _imports_any(info, words)]:
                relays[key] = parsed.pop(key)
            grown = _exported_words(definers, relays)
            if grown == words:
                break
            words = grown
        # Only imports that can lead to a step matter (and enter the fingerprint).
        modules = {key: _trimmed(info, words) for key, info in {**relays, **definers}.items()}
        names = _register(modules, files, package_dirs)
        return cls(root, modules, names, frozenset(words), options)

    # -- queries ----------------------------------------------------------------------

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.root, self.modules, self.names, self._options)
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
        return self._lookup(qualified, importer, 0)

    def _lookup(self, qualified: str, importer: str | None, hops: int) -> StepDef | None:
        if hops > _MAX_REEXPORT_HOPS:
            return None
        parts = qualified.split(".")
        for split in range(len(parts) - 1, 0, -1):
            keys = self.names.get(".".join(parts[:split]))
            if not keys:
                continue
            info = self.modules[_nearest(keys, importer)]
            head, rest = parts[split], parts[split + 1 :]
            if not rest and head in info.steps:
                return info.steps[head]
            target = info.imports.get(head)
            if target is not None:
                return self._lookup(".".join([target, *rest]), info.key, hops + 1)
            for star in info.star_imports:
                found = self._lookup(".".join([star, head, *rest]), info.key, hops + 1)
                if found is not None:
                    return found
            return None
        return None


# -- building blocks --------------------------------------------------------------------


def python_files(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        dirnames[:] = [
            name
            for name in dirnames
            if not name.startswith(".")
            and name not in _SKIPPED_DIRS
            and not name.endswith(".egg-info")
            and not (here / name / "pyvenv.cfg").exists()  # a virtualenv
        ]
        for name in filenames:
            if name.endswith(".py"):
                yield (here / name).relative_to(root)


def _scan(root: Path, triggers: tuple[str, ...], options: RuleOptions, rel: Path) -> Scanned:
    text = _read(root / rel)
    if text is None:
        return None, None
    if any(word in text for word in triggers):
        return _parse_module(rel, text, options, definitions=True), None
    return None, text


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def _parse_module(
    rel: Path, text: str, options: RuleOptions, *, definitions: bool
) -> ModuleInfo | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    key = ".".join(module_parts(rel))
    if not key:
        return None  # an __init__.py at the root is no importable module
    directory = tuple(rel.parent.parts)
    statements = list(_module_level(tree.body))
    imports: dict[str, str] = {}
    stars: list[str] = []
    for statement in statements:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname:
                    imports[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    imports[head] = head
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                base = resolve_relative(directory, statement.level, statement.module)
            else:
                base = statement.module
            if base is None:
                continue
            for alias in statement.names:
                if alias.name == "*":
                    stars.append(base)
                else:
                    qualified = f"{base}.{alias.name}" if base else alias.name
                    imports[alias.asname or alias.name] = qualified
    steps: dict[str, StepDef] = {}
    if definitions:
        for statement in statements:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found = _step_def(statement, imports, options)
                if found is not None:
                    steps[statement.name] = found
    return ModuleInfo(key, steps, imports, tuple(stars))


def _module_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level, looking inside if/try/with blocks."""
    for statement in body:
        yield statement
        if isinstance(statement, ast.If):
            yield from _module_level(statement.body)
            yield from _module_level(statement.orelse)
        elif isinstance(statement, ast.Try):
            yield from _module_level(statement.body)
            for handler in statement.handlers:
                yield from _module_level(handler.body)
            yield from _module_level(statement.orelse)
            yield from _module_level(statement.finalbody)
        elif isinstance(statement, ast.With):
            yield from _module_level(statement.body)


def _step_def(
    node: ast.FunctionDef | ast.AsyncFunctionDef, imports: dict[str, str], options: RuleOptions
) -> StepDef | None:
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        written = dotted_name(call.func if call is not None else decorator)
        if written is None:
            continue
        kind = decorator_kind(qualify(written, imports), written, options)
        if kind is None:
            continue
        template: str | None = node.name
        if call is not None:
            argument = call.args[0] if call.args else None
            for keyword in call.keywords:
                if keyword.arg in ("name", "template"):
                    argument = keyword.value
            if argument is not None:
                template = None
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    template = argument.value
        return StepDef(
            kind, node.name, template, _params(node.args), isinstance(node, ast.AsyncFunctionDef)
        )
    return None


def _params(arguments: ast.arguments) -> tuple[Param, ...]:
    params: list[Param] = []
    positional = [*arguments.posonlyargs, *arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    for index, arg in enumerate(positional):
        kind: ParamKind = "positional_only" if index < len(arguments.posonlyargs) else "positional"
        default = arguments.defaults[index - first_default] if index >= first_default else None
        params.append(_param(arg.arg, kind, default))
    if arguments.vararg is not None:
        params.append(Param(arguments.vararg.arg, "var_positional"))
    for arg, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        params.append(_param(arg.arg, "keyword_only", kw_default))
    if arguments.kwarg is not None:
        params.append(Param(arguments.kwarg.arg, "var_keyword"))
    return tuple(params)


def _param(name: str, kind: ParamKind, default: ast.expr | None) -> Param:
    if default is None:
        return Param(name, kind)
    if isinstance(default, ast.Constant) and isinstance(
        default.value, (str, int, float, bool, type(None))
    ):
        return Param(name, kind, True, default.value, True)
    return Param(name, kind, True)


def _register(
    modules: dict[str, ModuleInfo], files: list[Path], package_dirs: set[Path]
) -> dict[str, tuple[str, ...]]:
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
        if key not in modules:
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


def _last(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def _imports_any(info: ModuleInfo, words: set[str]) -> bool:
    targets = (*info.imports.values(), *info.star_imports)
    return any(_last(target) in words for target in targets)


def _trimmed(info: ModuleInfo, words: set[str]) -> ModuleInfo:
    imports = {local: target for local, target in info.imports.items() if _last(target) in words}
    stars = tuple(star for star in info.star_imports if _last(star) in words)
    return ModuleInfo(info.key, info.steps, imports, stars)


def _exported_words(definers: dict[str, ModuleInfo], relays: dict[str, ModuleInfo]) -> set[str]:
    """Names through which a step can be reached: functions, their modules, aliases."""
    words: set[str] = set()
    for info in definers.values():
        words.update(info.steps)
        words.add(_last(info.key))
    words.update(_last(key) for key in relays)
    modules = [*definers.values(), *relays.values()]
    changed = True
    while changed:  # aliases of aliases: "from .steps import fetch as get"
        changed = False
        for info in modules:
            for local, target in info.imports.items():
                if _last(target) in words and local not in words:
                    words.add(local)
                    changed = True
    return words


# A maximal run of word characters: ``word in _WORD.findall(text)`` is ``\bword\b``
# matching, for a word made of word characters only (identifiers, module names).
_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=16)
def _odd_words_pattern(words: frozenset[str]) -> re.Pattern[str] | None:
    """A regex for the words that are not one run of word characters, if there are any."""
    odd = sorted((word for word in words if not _WORD.fullmatch(word)), key=len, reverse=True)
    if not odd:
        return None
    return re.compile(rf"\b(?:{'|'.join(re.escape(word) for word in odd)})\b")


def mentions_any(text: str, words: frozenset[str]) -> bool:
    """Whether ``text`` holds one of ``words`` as a whole word (``\bword\b``).

    A set intersection with the text's words, not one regex made of every word:
    a project's index easily holds ten thousand names, and compiling them into
    a regex costs more than indexing the project.
    """
    if not words:
        return False
    if not words.isdisjoint(_WORD.findall(text)):
        return True
    odd = _odd_words_pattern(words)
    return odd is not None and odd.search(text) is not None


def _fingerprint(
    root: Path | None,
    modules: dict[str, ModuleInfo],
    names: dict[str, tuple[str, ...]],
    options: RuleOptions,
) -> str:
    digest = hashlib.sha256()
    digest.update(_INDEX_FORMAT.encode())
    digest.update(repr(options).encode())
    for key in sorted(modules):
        info = modules[key]
        steps = [(name, _step_key(step)) for name, step in sorted(info.steps.items())]
        digest.update(repr((key, steps, sorted(info.imports.items()))).encode())
        digest.update(repr(info.star_imports).encode())
    digest.update(repr(sorted(names.items())).encode())
    return digest.hexdigest()


def _step_key(step: StepDef) -> tuple[object, ...]:
    """Everything a StepDef holds, as plain tuples (a dataclass repr costs far more)."""
    params = tuple(
        (p.name, p.kind, p.has_default, p.literal_default, p.has_literal_default)
        for p in step.params
    )
    return (step.kind, step.function, step.template, params, step.is_async)
