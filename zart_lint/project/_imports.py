"""The imports of a Python file, read from its text with a regular expression.

Used where parsing would cost more than the answer is worth: the pre-filter
(does a file import anything that leads to a step?) and the project index's
first look at a module that does not mention zart (which modules does it
import, and which names from them?). Imports written on one line after a
``;`` or a ``:`` (``if x: import y``) are not seen; everything that decides a
finding is parsed for real afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IMPORT = re.compile(
    r"^[ \t]*(?:"
    r"from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]*(?P<names>\([^)]*\)|(?:[^\n;#\\]|\\\r?\n)*)"
    r"|import[ \t]+(?P<modules>(?:[^\n;#\\]|\\\r?\n)*)"
    r")",
    re.MULTILINE,
)
_COMMENT = re.compile(r"#[^\n]*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")


@dataclass(frozen=True)
class ScannedImports:
    # Local name -> qualified name it is bound to ("from .steps import a as b": b -> pkg.steps.a).
    names: dict[str, str]
    # Modules imported with ``*``.
    stars: tuple[str, ...]
    # Every module imported, and for ``from X import n`` also ``X.n`` (n may be a module).
    modules: tuple[str, ...]
    # The modules of plain ``import a.b`` statements.
    plain: tuple[str, ...] = ()


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


def _aliases(text: str) -> list[tuple[str, str | None]]:
    """``a.b as c, d`` -> [("a.b", "c"), ("d", None)]; malformed parts are dropped."""
    found: list[tuple[str, str | None]] = []
    cleaned = _COMMENT.sub("", text).replace("\\\n", " ").strip().strip("()")
    for part in cleaned.split(","):
        words = part.split()
        if len(words) == 1 and (_DOTTED.match(words[0]) or words[0] == "*"):
            found.append((words[0], None))
        elif len(words) == 3 and words[1] == "as" and _DOTTED.match(words[0]):
            found.append((words[0], words[2]))
    return found


def scan_imports(text: str, directory: tuple[str, ...] | None) -> ScannedImports:
    """The imports of ``text`` (a file in ``directory``, root-relative; None: unknown)."""
    names: dict[str, str] = {}
    stars: list[str] = []
    modules: list[str] = []
    plain: list[str] = []
    for match in _IMPORT.finditer(text):
        base = match.group("base")
        if base is None:
            for module, alias in _aliases(match.group("modules")):
                modules.append(module)
                plain.append(module)
                names[alias or module.split(".")[0]] = module if alias else module.split(".")[0]
            continue
        level = len(base) - len(base.lstrip("."))
        module = base[level:]
        if level:
            if directory is None:
                continue
            resolved = resolve_relative(directory, level, module or None)
            if resolved is None:
                continue
            module = resolved
        if module:
            modules.append(module)
        for name, alias in _aliases(match.group("names")):
            if name == "*":
                stars.append(module)
                continue
            qualified = f"{module}.{name}" if module else name
            modules.append(qualified)
            names[alias or name] = qualified
    return ScannedImports(
        names, tuple(stars), tuple(dict.fromkeys(modules)), tuple(dict.fromkeys(plain))
    )
