"""The architecture, enforced: layers that only point down, and no import cycles.

Every import counts, wherever it is written: at module level, under ``if
TYPE_CHECKING``, or inside a function. A module may import from its own layer or a
lower one; an import from a higher layer fails here with the offending line. See
docs/architecture.md for what each layer holds.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module belongs to the layer of its longest matching prefix.
ZART_LAYERS: list[tuple[str, ...]] = [
    ("zart._version", "zart._errors", "zart._owner"),  # foundations: no zart imports
    ("zart._serde",),  # typed JSON
    ("zart._store",),  # storage: records, SQL, its own errors
    ("zart._execution",),  # the durable-function model and the journal of one run
    ("zart._engine",),  # Zart facade, runner, leases, worker, admin
    ("zart",),  # the public API (zart/__init__.py): what the tools above may use
    ("zart._ops",),  # HTTP API, web view, metrics, schedules
    ("zart.cli", "zart._cli", "zart.__main__"),  # the `zart` command
]

ZART_LINT_LAYERS: list[tuple[str, ...]] = [
    ("zart_lint.core",),  # findings, rule metadata, options, recognition tables, templates
    ("zart_lint.project",),  # config, discovery, the project index (ast)
    ("zart_lint.analysis",),  # libcst: model, walker, dataflow, variance, positions
    ("zart_lint.fix",),  # fix planning and applying
    ("zart_lint.rules",),  # one module a rule, and their registry
    ("zart_lint.engine",),  # checking files: lint, suppression, cache, workers, runs
    ("zart_lint.output",),  # the output formats and their registry
    ("zart_lint.cli", "zart_lint.__main__"),  # the `zart-lint` command
    ("zart_lint",),  # the public API (zart_lint/__init__.py)
]


def module_files(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, resolved to a known module
    (``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else base), node.lineno


def layer_of(module: str, layers: list[tuple[str, ...]]) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, prefixes in enumerate(layers):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), index)
    return best[1] if best is not None else None


def graph(package: str) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    files = module_files(package)
    known = set(files)
    edges: dict[str, dict[str, int]] = {m: {} for m in files}
    for module, path in files.items():
        for target, line in imports_of(module, path, known):
            if target in known and target != module:
                edges[module].setdefault(target, line)
    return files, edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


CASES = [("zart", ZART_LAYERS), ("zart_lint", ZART_LINT_LAYERS)]


@pytest.mark.parametrize(("package", "layers"), CASES, ids=[c[0] for c in CASES])
def test_every_module_has_a_layer(package: str, layers: list[tuple[str, ...]]) -> None:
    files, _ = graph(package)
    assert [m for m in files if layer_of(m, layers) is None] == []


@pytest.mark.parametrize(("package", "layers"), CASES, ids=[c[0] for c in CASES])
def test_imports_only_point_down(package: str, layers: list[tuple[str, ...]]) -> None:
    files, edges = graph(package)
    upward = []
    for module, targets in edges.items():
        mine = layer_of(module, layers)
        for target, line in targets.items():
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                rel = files[module].relative_to(ROOT)
                upward.append(f"{rel}:{line}: {module} imports {target} (a higher layer)")
    assert upward == []


@pytest.mark.parametrize("package", ["zart", "zart_lint"])
def test_no_import_cycles(package: str) -> None:
    _, edges = graph(package)
    assert cycles(edges) == []


def test_the_checker_sees_upward_imports_and_cycles(tmp_path: Path) -> None:
    """The guard itself: an upward import inside a function or under TYPE_CHECKING and a
    two-module cycle are both caught."""
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zart._engine import x\n"
    path = tmp_path / "m.py"
    path.write_text(source + "def f():\n    import zart.cli\n", encoding="utf-8")
    found = dict(imports_of("zart._store._m", path, {"zart._engine", "zart.cli"}))
    assert layer_of("zart._store._m", ZART_LAYERS) == 2
    assert {layer_of(t, ZART_LAYERS) for t in found if t.startswith("zart")} == {4, 7}
    assert cycles({"a": {"b": 1}, "b": {"a": 1}, "c": {}}) == [["a", "b"]]


LONG_FUNCTION_LINES = 60
# A function may be longer when a comment on its first line or the line above says why.
LONG_FUNCTION_MARK = "long-function:"


@pytest.mark.parametrize("package", ["zart", "zart_lint"])
def test_functions_fit_on_a_screen(package: str) -> None:
    too_long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = (node.end_lineno or node.lineno) - start + 1
            marked = any(LONG_FUNCTION_MARK in lines[i] for i in (start - 2, node.lineno - 1))
            if length > LONG_FUNCTION_LINES and not marked:
                rel = path.relative_to(ROOT)
                too_long.append(f"{rel}:{node.lineno}: {node.name} has {length} lines")
    assert too_long == []
