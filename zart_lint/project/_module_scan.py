"""What the project index knows of one module, read with ``ast``.

A :class:`ModuleInfo` holds the module's step and durable definitions
(functions, and methods as ``"Class.method"``), the names it imports and the
module-level aliases it makes (``pay = charge``, ``activity = zart.step``),
its star imports, its ``functools.partial`` objects of steps, and the
functions decorated with something that may turn out to be an alias of a step
decorator defined elsewhere. Plain, picklable data: the index cache stores it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from zart_lint.core._options import RuleOptions
from zart_lint.core._recognize import (
    Binding,
    Param,
    ParamKind,
    StepDef,
    decorator_kind,
    method_binding,
)
from zart_lint.project._imports import resolve_relative

_PARTIAL = "functools.partial"


@dataclass(frozen=True)
class Partial:
    """``functools.partial(target, <positional> args, **keywords)`` made at module level."""

    target: str  # qualified name of the wrapped callable
    positional: int
    keywords: tuple[tuple[str, object, bool], ...]  # (name, literal value, is a literal)


@dataclass(frozen=True)
class Decorated:
    """A function whose decorator is a project name that may alias a step decorator."""

    decorator: str  # qualified name of the decorator
    definition: StepDef  # the definition it makes if it is one (kind decided then)


@dataclass(frozen=True)
class ModuleInfo:
    # Root-relative dotted path: "src.pkg.steps", or "pkg" for pkg/__init__.py.
    key: str
    # Parsed with ast (definitions and aliases known), or only its imports scanned.
    full: bool = True
    # Mentions zart or a configured decorator: the only modules that can define steps.
    mentions: bool = True
    steps: dict[str, StepDef] = field(default_factory=dict)
    # Local name -> absolute qualified name it was imported as, or aliases.
    imports: dict[str, str] = field(default_factory=dict)
    star_imports: tuple[str, ...] = ()
    # Qualified names of the modules it imports (and of ``X.n`` for ``from X import n``).
    modules: tuple[str, ...] = ()
    partials: dict[str, Partial] = field(default_factory=dict)
    decorated: dict[str, Decorated] = field(default_factory=dict)


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


def parse_module(
    key: str, directory: tuple[str, ...], text: str, options: RuleOptions, mentions: bool
) -> ModuleInfo | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    statements = list(_module_level(tree.body))
    imports, stars, modules = _imports(statements, directory)
    local = {
        s.name
        for s in statements
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    partials = _aliases(key, statements, imports, local)
    info = ModuleInfo(
        key,
        full=True,
        mentions=mentions,
        imports=imports,
        star_imports=tuple(stars),
        modules=tuple(dict.fromkeys(modules)),
        partials=partials,
    )
    _definitions(info, statements, options)
    return info


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


def _imports(
    statements: list[ast.stmt], directory: tuple[str, ...]
) -> tuple[dict[str, str], list[str], list[str]]:
    imports: dict[str, str] = {}
    stars: list[str] = []
    modules: list[str] = []
    for statement in statements:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                modules.append(alias.name)
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
            if base:
                modules.append(base)
            for alias in statement.names:
                if alias.name == "*":
                    stars.append(base)
                else:
                    qualified = f"{base}.{alias.name}" if base else alias.name
                    modules.append(qualified)
                    imports[alias.asname or alias.name] = qualified
    return imports, stars, modules


def _aliases(
    key: str, statements: list[ast.stmt], imports: dict[str, str], local: set[str]
) -> dict[str, Partial]:
    """Module-level ``name = other.name`` aliases (into ``imports``) and partials.

    A name bound more than once at module level is left out: which value a call
    sees is not known.
    """
    values: dict[str, list[ast.expr]] = {}
    for statement in statements:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    values.setdefault(target.id, []).append(statement.value)
        elif (
            isinstance(statement, ast.AnnAssign)
            and statement.value is not None
            and isinstance(statement.target, ast.Name)
        ):
            values.setdefault(statement.target.id, []).append(statement.value)
    partials: dict[str, Partial] = {}
    for name, bound in values.items():
        if len(bound) != 1 or name in local:
            continue
        partial = _partial(bound[0], key, imports, local)
        if partial is not None:
            partials[name] = partial
            continue
        aliased = _qualified(bound[0], key, imports, local)
        if aliased is not None and name not in imports:
            imports[name] = aliased
    return partials


def _qualified(node: ast.expr, key: str, imports: dict[str, str], local: set[str]) -> str | None:
    written = dotted_name(node)
    if written is None:
        return None
    head = written.split(".")[0]
    if head in local:
        return f"{key}.{written}"
    return qualify(written, imports)


def _partial(node: ast.expr, key: str, imports: dict[str, str], local: set[str]) -> Partial | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    written = dotted_name(node.func)
    if written is None or qualify(written, imports) != _PARTIAL:
        return None
    if any(isinstance(arg, ast.Starred) for arg in node.args) or any(
        keyword.arg is None for keyword in node.keywords
    ):
        return None
    target = _qualified(node.args[0], key, imports, local)
    if target is None:
        return None
    keywords = []
    for keyword in node.keywords:
        value = keyword.value
        literal = isinstance(value, ast.Constant) and isinstance(
            value.value, (str, int, float, bool, type(None))
        )
        keywords.append((str(keyword.arg), value.value if literal else None, literal))  # type: ignore[attr-defined]
    return Partial(target, len(node.args) - 1, tuple(keywords))


def _definitions(info: ModuleInfo, statements: list[ast.stmt], options: RuleOptions) -> None:
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _define(info, statement.name, statement, options, "function")
        elif isinstance(statement, ast.ClassDef):
            for member in statement.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    decorators = tuple(
                        (dotted_name(d) or "").rsplit(".", 1)[-1] for d in member.decorator_list
                    )
                    name = f"{statement.name}.{member.name}"
                    _define(info, name, member, options, method_binding(decorators))


def _define(
    info: ModuleInfo,
    name: str,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    options: RuleOptions,
    binding: Binding,
) -> None:
    candidate: Decorated | None = None
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        written = dotted_name(call.func if call is not None else decorator)
        if written is None:
            continue
        qualified = qualify(written, info.imports)
        kind = decorator_kind(qualified, written, options)
        definition = StepDef(
            kind or "step",
            node.name,
            _template(node, call),
            _params(node.args),
            isinstance(node, ast.AsyncFunctionDef),
            binding,
        )
        if kind is not None:
            info.steps[name] = definition
            return
        if candidate is None and qualified is not None and qualified.split(".")[0] != "zart":
            candidate = Decorated(qualified, definition)
    if candidate is not None:
        info.decorated[name] = candidate


def _template(node: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call | None) -> str | None:
    if call is None:
        return node.name
    argument = call.args[0] if call.args else None
    for keyword in call.keywords:
        if keyword.arg in ("name", "template"):
            argument = keyword.value
    if argument is None:
        return node.name
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
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


def info_key(info: ModuleInfo) -> str:
    """Everything an info holds that findings depend on, as text (for fingerprints)."""
    steps = [(name, _step_key(step)) for name, step in sorted(info.steps.items())]
    decorated = [
        (name, entry.decorator, _step_key(entry.definition))
        for name, entry in sorted(info.decorated.items())
    ]
    partials = sorted((name, repr(partial)) for name, partial in info.partials.items())
    return repr(
        (info.key, steps, sorted(info.imports.items()), info.star_imports, partials, decorated)
    )


def _step_key(step: StepDef) -> tuple[object, ...]:
    """Everything a StepDef holds, as plain tuples (a dataclass repr costs far more)."""
    params = tuple(
        (p.name, p.kind, p.has_default, p.literal_default, p.has_literal_default)
        for p in step.params
    )
    return (step.kind, step.function, step.template, params, step.is_async, step.binding)
