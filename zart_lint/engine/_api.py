"""The analysis core's interface: what the runner (and the tests) build on.

``lint_source`` parses a file once with libcst, walks it once, and runs every
rule (no select / ignore / noqa filtering: the caller does that). Positions are
computed afterwards, and only for the nodes that findings and fixes point at.
Importing this module does not import libcst (``_lint`` does, when first used):
a run that the cache answers never needs it.

Fixes: ZRT001 / ZRT002 findings in ``for`` loops carry a :class:`Fix` whose
edits never overlap each other. Several findings in the same loop may each
carry the *same* loop-header edit (``for x in xs:`` -> ``for i, x in
enumerate(xs):``): identical span, identical text. An applier combining the
fixes of one file must apply such identical edits once (dedupe on equality;
``Edit`` is a frozen, hashable dataclass) -- any other overlap means "skip one
of the fixes".

The rules themselves, and their metadata, are in the registry of
:mod:`zart_lint.rules`.
"""

from __future__ import annotations

from pathlib import Path

from zart_lint.core._finding import Finding
from zart_lint.core._options import RuleOptions
from zart_lint.project._imports import scan_imports
from zart_lint.project._index import ProjectIndex

__all__ = [
    "ProjectIndex",
    "RuleOptions",
    "analyse_source",
    "lint_source",
    "might_involve_steps",
]


def might_involve_steps(
    source: str, index: ProjectIndex, options: RuleOptions, path: Path | None = None
) -> bool:
    """False only when the file certainly neither defines nor calls a step or primitive.

    Decided on import evidence, not on words: the file mentions ``zart`` (or a
    configured decorator), or it imports a name that leads to a step, a durable
    or zart's API (a step-bearing module, a step, an alias of one), as the
    index finds by following the imports. ``path`` places the file in the
    project, for its relative imports.
    """
    if "zart" in source:
        return True
    if any(word in source for word in options.decorator_words()):
        return True
    if index.root is None or "import" not in source:
        return False
    location = index.location_of(path) if path is not None else None
    importer, directory = location if location is not None else (None, None)
    scanned = scan_imports(source, directory)
    names = (*scanned.plain, *scanned.names.values(), *scanned.stars)
    return any(index.leads_to_steps(name, importer) for name in dict.fromkeys(names))


def lint_source(
    source: str, path: Path, index: ProjectIndex, options: RuleOptions
) -> list[Finding]:
    """Every rule's findings for one file, sorted by (line, column, code).

    No select / ignore / noqa filtering (the caller's job). A file libcst cannot
    parse yields a single ZRT000. ``path`` is used for ``Finding.path`` (as
    given) and, made absolute, to place the file in ``index``'s project
    (relative imports, nearest module among same-named ones).
    """
    from zart_lint.engine import _lint  # libcst and the analysis: imported when first needed

    return _lint.lint_source(source, path, index, options)


def analyse_source(
    source: str, path: Path, index: ProjectIndex, options: RuleOptions
) -> tuple[list[Finding], str | None]:
    """``lint_source``, and a notice when the file cannot be analysed: valid Python
    that libcst cannot parse (no finding then, not even ZRT000)."""
    from zart_lint.engine import _lint

    return _lint.analyse_source(source, path, index, options)
