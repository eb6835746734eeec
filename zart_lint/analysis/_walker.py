"""The one pass over a libcst tree that records a :class:`FileModel`.

A hand-written, type-dispatched recursive walk instead of ``CSTVisitor``:
libcst's visitor rebuilds every node it leaves and costs more than half of the
parse; walking only the fields that can hold code (no whitespace, commas,
parentheses) costs a few percent of it. That is what keeps linting within
~1.5x of ``libcst.parse_module``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import libcst as cst

from zart_lint.analysis._model import (
    ALIAS,
    ASSIGN,
    AUG,
    CLASS,
    DEF,
    IMPORT,
    LOCAL_MEANING,
    OTHER,
    PARTIAL,
    TARGET,
    Branch,
    CallSite,
    Defs,
    FileModel,
    ImportRef,
    Loop,
    LoopKind,
    Meaning,
    PartialRef,
    Scope,
)

# Fields that only ever hold trivia (whitespace, punctuation): never walked.
_TRIVIA_FIELDS = frozenset(
    {
        "lpar",
        "rpar",
        "comma",
        "semicolon",
        "leading_lines",
        "lines_after_decorators",
        "header",
        "footer",
        "operator",
        "dot",
        "equal",
        "colon",
        "lbracket",
        "rbracket",
        "lbrace",
        "rbrace",
        "newline",
        "asynchronous",
        "star",
        "first_colon",
        "second_colon",
        "posonly_ind",
        "relative",
        "annotation",  # annotations hold no calls that run in a durable body
        "returns",
        "type_parameters",
    }
)
# Methods that read their receiver without changing it: calling them is not a mutation.
PURE_METHODS = frozenset(
    {
        "format",
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "replace",
        "join",
        "split",
        "startswith",
        "endswith",
        "title",
        "casefold",
        "zfill",
        "get",
        "keys",
        "values",
        "items",
        "copy",
        "count",
        "index",
        "named",
    }
)

_FieldNames = tuple[str, ...]


class _ChildFields(dict[type, _FieldNames]):
    """Node type -> names of its fields that can hold code, computed once per type."""

    def __missing__(self, node_type: type) -> _FieldNames:
        names = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if f.name not in _TRIVIA_FIELDS and "whitespace" not in f.name
        )
        self[node_type] = names
        return names


class _NodeTypes(dict[type, bool]):
    """Type -> whether it is a CSTNode (a plain dict look-up beats an ABC isinstance)."""

    def __missing__(self, value_type: type) -> bool:
        is_node = issubclass(value_type, cst.CSTNode)
        self[value_type] = is_node
        return is_node


_CHILD_FIELDS = _ChildFields()
_IS_NODE = _NodeTypes()


def child_nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The children of ``node`` that can hold code (no whitespace or punctuation)."""
    children: list[cst.CSTNode] = []
    is_node = _IS_NODE
    for name in _CHILD_FIELDS[type(node)]:
        value = getattr(node, name)
        value_type = type(value)
        if value_type is tuple or value_type is list:
            children.extend(item for item in value if is_node[type(item)])
        elif is_node[value_type]:
            children.append(value)
    return children


def dotted_parts(node: cst.BaseExpression) -> tuple[str, ...] | None:
    """("zart", "sleep") for ``zart.sleep``; None unless a plain dotted name."""
    parts: list[str] = []
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)
        node = node.value
    if type(node) is not cst.Name:
        return None
    parts.append(node.value)
    parts.reverse()
    return tuple(parts)


def root_name(node: cst.BaseExpression) -> str | None:
    """``x`` for ``x``, ``x.a.b``, ``x[0].a``: the variable an expression reads from."""
    while True:
        node_type = type(node)
        if node_type is cst.Name:
            return node.value  # type: ignore[attr-defined, no-any-return]
        if node_type is cst.Attribute or node_type is cst.Subscript:
            node = node.value  # type: ignore[attr-defined]
            continue
        return None


def ends_in_exit(body: cst.BaseSuite) -> bool:
    """Whether a block's last statement is ``return`` or ``raise``."""
    statements: Sequence[cst.CSTNode] = body.body
    if not statements:
        return False
    last = statements[-1]
    if isinstance(last, cst.SimpleStatementLine):
        if not last.body:
            return False
        last = last.body[-1]
    return isinstance(last, (cst.Return, cst.Raise))


def walk(module: cst.Module) -> FileModel:
    walker = _Walker(module)
    for index, statement in enumerate(module.body):
        walker.top = index
        walker.visit(statement)
    return walker.model


_Handler = Callable[["_Walker", Any], None]
_Saved = tuple[Scope, "Loop | None", tuple[Branch, ...], "Defs | None", int]


class _Walker:
    def __init__(self, module: cst.Module) -> None:
        self.model = FileModel(module)
        self.scope = self.model.module_scope
        self.loop: Loop | None = None
        self.branches: tuple[Branch, ...] = ()
        self.fstring_depth = 0
        self.top = -1  # index of the top-level statement being walked
        # Per-iteration definitions of the current loop (see CallSite.defs), and
        # how deep in conditional code (if, try, match ...) of that loop the walk is.
        self.defs: Defs | None = None
        self.conditional = 0

    # -- dispatch -------------------------------------------------------------------------

    def visit(self, node: cst.CSTNode) -> None:
        handler = _HANDLERS.get(type(node))
        if handler is None:
            self._generic(node)
        else:
            handler(self, node)

    def _generic(self, node: cst.CSTNode) -> None:
        # The hottest loop of the walk: visit() is inlined.
        is_node, handlers = _IS_NODE, _HANDLERS
        for name in _CHILD_FIELDS[type(node)]:
            value = getattr(node, name)
            value_type = type(value)
            if value_type is tuple or value_type is list:
                for item in value:
                    item_type = type(item)
                    if is_node[item_type]:
                        handler = handlers.get(item_type)
                        if handler is None:
                            self._generic(item)
                        else:
                            handler(self, item)
            elif is_node[value_type]:
                handler = handlers.get(value_type)
                if handler is None:
                    self._generic(value)
                else:
                    handler(self, value)

    def _leaf(self, node: cst.CSTNode) -> None:
        """Literals and the like: nothing inside can hold code."""

    # -- bindings -------------------------------------------------------------------------

    def _bind(
        self,
        name: str,
        kind: int,
        value: cst.BaseExpression | None = None,
        meaning: Meaning = LOCAL_MEANING,
        source: Loop | None = None,
    ) -> None:
        scope = self.scope
        if name in scope.globals:
            scope = self.model.module_scope
        self.scope.used.add(name)
        scope.meanings.setdefault(name, []).append(meaning)
        scope.values.setdefault(name, []).append(value if kind == ASSIGN else None)
        defs = self.defs
        if defs is not None and name in defs:
            self.defs = {key: known for key, known in defs.items() if key != name}
        loop = self.loop
        if loop is not None:
            binding = (kind, value, source if source is not None else loop)
            while loop is not None:
                loop.bindings.setdefault(name, []).append(binding)
                loop = loop.parent

    def _bind_target(
        self,
        target: cst.BaseExpression,
        kind: int,
        value: cst.BaseExpression | None,
        source: Loop | None = None,
    ) -> None:
        target_type = type(target)
        if target_type is cst.Name:
            meaning = (
                _alias_meaning(value, self.loop is not None)
                if kind == ASSIGN and value is not None
                else LOCAL_MEANING
            )
            self._bind(target.value, kind, value, meaning, source)  # type: ignore[attr-defined]
        elif target_type is cst.Tuple or target_type is cst.List:
            for element in target.elements:  # type: ignore[attr-defined]
                self._bind_target(element.value, kind, value, source)
        elif target_type is cst.StarredElement:
            self._bind_target(target.value, kind, value, source)  # type: ignore[attr-defined]
        else:
            # x.attr = ..., x[k] = ...: the object in x changes in place.
            self._mutate(target)
            self.visit(target)

    def _mutate(self, node: cst.BaseExpression) -> None:
        name = root_name(node)
        loop = self.loop
        if name is None:
            return
        while loop is not None:
            loop.mutated.add(name)
            loop = loop.parent

    # -- scopes ---------------------------------------------------------------------------

    def _enter(self, scope: Scope) -> _Saved:
        saved = (self.scope, self.loop, self.branches, self.defs, self.conditional)
        self.model.scopes.append(scope)
        self.scope, self.loop, self.branches, self.defs, self.conditional = scope, None, (), None, 0
        return saved

    def _leave(self, saved: _Saved) -> None:
        inner = self.scope
        self.scope, self.loop, self.branches, self.defs, self.conditional = saved
        self.scope.used |= inner.used

    def _enter_loop(self, loop: Loop) -> tuple[Loop | None, Defs | None, int]:
        saved = (self.loop, self.defs, self.conditional)
        self.model.loops.append(loop)
        self.loop, self.defs, self.conditional = loop, {}, 0
        return saved

    def _leave_loop(self, saved: tuple[Loop | None, Defs | None, int]) -> None:
        inner = self.loop
        self.loop, defs, self.conditional = saved
        if defs and inner is not None and not inner.bindings.keys().isdisjoint(defs):
            defs = {name: value for name, value in defs.items() if name not in inner.bindings}
        self.defs = defs

    def _define(self, targets: Sequence[cst.BaseExpression], value: cst.BaseExpression) -> None:
        """Record ``name = value`` run on every path of the current loop iteration."""
        if self.defs is not None and not self.conditional and len(targets) == 1:
            target = targets[0]
            if isinstance(target, cst.Name):
                self.defs = {**self.defs, target.value: value}

    def _params(self, params: cst.Parameters) -> None:
        """Visit defaults (evaluated where the def is) -- not the names."""
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if param.default is not None:
                self.visit(param.default)

    def _bind_params(self, params: cst.Parameters) -> None:
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            self._bind(param.name.value, OTHER)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                self._bind(star.name.value, OTHER)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        for decorator in node.decorators:
            self.visit(decorator.decorator)
        self._params(node.params)
        self._bind(node.name.value, OTHER, meaning=(DEF, node))
        scope = Scope(
            "function",
            node,
            self.scope,
            name=node.name.value,
            is_async=node.asynchronous is not None,
            decorators=tuple(node.decorators),
        )
        self.model.def_scopes[id(node)] = scope
        saved = self._enter(scope)
        self._bind_params(node.params)
        self.visit(node.body)
        self._leave(saved)

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._params(node.params)
        saved = self._enter(Scope("lambda", node, self.scope))
        self._bind_params(node.params)
        self.visit(node.body)
        self._leave(saved)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        for decorator in node.decorators:
            self.visit(decorator.decorator)
        for arg in (*node.bases, *node.keywords):
            self.visit(arg.value)
        self._bind(node.name.value, OTHER, meaning=(CLASS, node))
        scope = Scope("class", node, self.scope, name=node.name.value)
        self.model.class_scopes[id(node)] = scope
        saved = self._enter(scope)
        self.visit(node.body)
        self._leave(saved)

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self.scope.globals.add(item.name.value)
            self.model.volatile.add(item.name.value)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for item in node.names:
            self.model.volatile.add(item.name.value)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_parts(alias.name)
            if full is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                ref = ImportRef(0, ".".join(full), None)
                self._bind(alias.asname.name.value, OTHER, meaning=(IMPORT, ref))
            else:
                self._bind(full[0], OTHER, meaning=(IMPORT, ImportRef(0, full[0], None)))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        module = dotted_parts(node.module) if node.module is not None else ()
        if module is None:
            return
        level, base = len(node.relative), ".".join(module)
        if isinstance(node.names, cst.ImportStar):
            self.model.star_imports.append(ImportRef(level, base, None))
            return
        for alias in node.names:
            if not isinstance(alias.name, cst.Name):
                continue
            local = alias.name.value
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self._bind(local, OTHER, meaning=(IMPORT, ImportRef(level, base, alias.name.value)))

    # -- statements -----------------------------------------------------------------------

    def visit_Expr(self, node: cst.Expr) -> None:
        if type(node.value) is cst.Call:
            self.model.bare_statements.add(id(node.value))
        self.visit(node.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        self.visit(value)
        if type(value) is cst.Call:
            names = tuple(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
            if names:
                self.model.assigned[id(value)] = names
        for target in node.targets:
            self._bind_target(target.target, ASSIGN, value)
        self._define([target.target for target in node.targets], value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._bind_target(node.target, ASSIGN, node.value)
            self._define([node.target], node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.visit(node.value)
        self._bind_target(node.target, AUG, node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.visit(node.value)
        self._bind_target(node.target, ASSIGN, node.value)

    def visit_Del(self, node: cst.Del) -> None:
        self._bind_target(node.target, OTHER, None)

    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            self.visit(item.item)
            if item.asname is not None:
                self._bind_target(item.asname.name, OTHER, None)
        self.visit(node.body)

    def visit_ExceptHandler(self, node: cst.ExceptHandler | cst.ExceptStarHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name is not None:
            self._bind_target(node.name.name, OTHER, None)
        self.visit(node.body)

    def visit_For(self, node: cst.For) -> None:
        self.visit(node.iter)  # evaluated once, before the loop
        kind: LoopKind = "async for" if node.asynchronous is not None else "for"
        loop = Loop(node, kind, self.loop, self.scope)
        saved = self._enter_loop(loop)
        self._bind_target(node.target, TARGET, None, source=loop)
        self.visit(node.body)
        self._leave_loop(saved)
        if node.orelse is not None:
            self.visit(node.orelse)  # runs once, after the loop

    def visit_While(self, node: cst.While) -> None:
        saved = self._enter_loop(Loop(node, "while", self.loop, self.scope))
        self.visit(node.test)  # evaluated before every iteration
        self.visit(node.body)
        self._leave_loop(saved)
        if node.orelse is not None:
            self.visit(node.orelse)

    def _comprehension(self, for_in: cst.CompFor, elements: Sequence[cst.BaseExpression]) -> None:
        self.visit(for_in.iter)  # the outermost iterable is evaluated once
        saved: list[tuple[Loop | None, Defs | None, int]] = []
        comp: cst.CompFor | None = for_in
        while comp is not None:
            loop = Loop(comp, "comprehension", self.loop, self.scope)
            saved.append(self._enter_loop(loop))
            self._bind_target(comp.target, TARGET, None, source=loop)
            for condition in comp.ifs:
                self.visit(condition.test)
            comp = comp.inner_for_in
            if comp is not None:
                self.visit(comp.iter)
        for element in elements:
            self.visit(element)
        for state in reversed(saved):
            self._leave_loop(state)

    def visit_ListComp(self, node: cst.ListComp | cst.SetComp | cst.GeneratorExp) -> None:
        self._comprehension(node.for_in, (node.elt,))

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self._comprehension(node.for_in, (node.key, node.value))

    def _branch(self, node: cst.CSTNode, index: int, body: cst.CSTNode, exits: bool) -> None:
        saved = self.branches
        self.branches = (*saved, (id(node), index, exits))
        self.conditional += 1
        self.visit(body)
        self.conditional -= 1
        self.branches = saved

    def visit_Try(self, node: cst.Try | cst.TryStar) -> None:
        # Any statement of a try block may be skipped (by an exception).
        self.conditional += 1
        self._generic(node)
        self.conditional -= 1

    def visit_If(self, node: cst.If) -> None:
        self.visit(node.test)
        self._branch(node, 0, node.body, ends_in_exit(node.body))
        orelse = node.orelse
        if orelse is not None:
            exits = isinstance(orelse, cst.Else) and ends_in_exit(orelse.body)
            self._branch(node, 1, orelse if isinstance(orelse, cst.If) else orelse.body, exits)

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self.visit(node.test)
        self._branch(node, 0, node.body, False)
        self._branch(node, 1, node.orelse, False)

    def visit_Match(self, node: cst.Match) -> None:
        self.visit(node.subject)
        for index, case in enumerate(node.cases):
            for name in _pattern_captures(case.pattern):
                self._bind(name, OTHER)
            if case.guard is not None:
                self.visit(case.guard)
            self._branch(node, index, case.body, ends_in_exit(case.body))

    # -- expressions ----------------------------------------------------------------------

    def visit_Name(self, node: cst.Name) -> None:
        self.scope.used.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.visit(node.value)

    def visit_BinaryOperation(self, node: cst.BinaryOperation | cst.BooleanOperation) -> None:
        # Long chains ("a" + "b" + ... in generated code) nest as deep as they are
        # long: walk the left spine in a loop instead of recursing into it.
        rights: list[cst.BaseExpression] = []
        current: cst.BaseExpression = node
        while isinstance(current, (cst.BinaryOperation, cst.BooleanOperation)):
            rights.append(current.right)
            current = current.left
        self.visit(current)
        for right in reversed(rights):
            self.visit(right)

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> None:
        current: cst.BaseExpression | cst.BaseString = node
        while isinstance(current, cst.ConcatenatedString):
            self.visit(current.left)
            current = current.right
        self.visit(current)

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self.fstring_depth += 1
        self._generic(node)
        self.fstring_depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        model = self.model
        model.top_level[id(node)] = self.top
        if type(func) is cst.Attribute:
            inner = func.value
            if type(inner) is cst.Call:
                model.chain_parent[id(inner)] = (node, func.attr.value)
            elif type(inner) is cst.Name and func.attr.value == "named":
                self.scope.named_receivers.add(inner.value)
        parts = dotted_parts(func)
        site = None
        if parts is not None:
            site = CallSite(
                node,
                parts,
                self.scope,
                self.loop,
                self.branches,
                self.fstring_depth > 0,
                self.defs if self.loop is not None else None,
            )
            model.calls.append(site)
        loop = self.loop
        if loop is not None and not (type(func) is cst.Attribute and func.attr.value == "named"):
            pure = type(func) is cst.Attribute and func.attr.value in PURE_METHODS
            if type(func) is cst.Attribute and not pure:
                self._mutate(func.value)  # x.append(...) changes x
            # "-".join(x), "{}".format(x): methods that read their arguments, never change them.
            passed = (
                []
                if pure
                else [name for arg in node.args if (name := root_name(arg.value)) is not None]
            )
            while loop is not None:
                loop.calls.append(site)
                loop.passed.extend((name, site) for name in passed)
                loop = loop.parent
        self.visit(func)
        for arg in node.args:
            self.visit(arg.value)


def _alias_meaning(value: cst.BaseExpression, in_loop: bool) -> Meaning:
    """What ``name = value`` makes of the name: an alias, a partial, or a plain local."""
    value_type = type(value)
    if value_type is cst.Name or value_type is cst.Attribute:
        parts = dotted_parts(value)
        if parts is not None:
            return (ALIAS, parts)
    elif value_type is cst.Call:
        call: cst.Call = value  # type: ignore[assignment]
        function = dotted_parts(call.func)
        if function is not None and function[-1] == "partial" and call.args:
            first = call.args[0]
            if first.keyword is None and not first.star and dotted_parts(first.value):
                return (PARTIAL, PartialRef(function, call, in_loop))
    return LOCAL_MEANING


def _pattern_captures(pattern: cst.CSTNode) -> list[str]:
    """Names a match pattern binds (``case Point(x=px) as p`` -> px, p)."""
    names: list[str] = []
    stack: list[cst.CSTNode] = [pattern]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.MatchAs, cst.MatchStar)) and node.name is not None:
            names.append(node.name.value)
        elif isinstance(node, cst.MatchMapping) and node.rest is not None:
            names.append(node.rest.value)
        stack.extend(node.children)
    return names


_HANDLERS: dict[type, _Handler] = {
    cst.FunctionDef: _Walker.visit_FunctionDef,
    cst.Lambda: _Walker.visit_Lambda,
    cst.ClassDef: _Walker.visit_ClassDef,
    cst.Global: _Walker.visit_Global,
    cst.Nonlocal: _Walker.visit_Nonlocal,
    cst.Import: _Walker.visit_Import,
    cst.ImportFrom: _Walker.visit_ImportFrom,
    cst.Expr: _Walker.visit_Expr,
    cst.Assign: _Walker.visit_Assign,
    cst.AnnAssign: _Walker.visit_AnnAssign,
    cst.AugAssign: _Walker.visit_AugAssign,
    cst.NamedExpr: _Walker.visit_NamedExpr,
    cst.Del: _Walker.visit_Del,
    cst.With: _Walker.visit_With,
    cst.ExceptHandler: _Walker.visit_ExceptHandler,
    cst.ExceptStarHandler: _Walker.visit_ExceptHandler,
    cst.Try: _Walker.visit_Try,
    cst.TryStar: _Walker.visit_Try,
    cst.For: _Walker.visit_For,
    cst.While: _Walker.visit_While,
    cst.ListComp: _Walker.visit_ListComp,
    cst.SetComp: _Walker.visit_ListComp,
    cst.GeneratorExp: _Walker.visit_ListComp,
    cst.DictComp: _Walker.visit_DictComp,
    cst.If: _Walker.visit_If,
    cst.IfExp: _Walker.visit_IfExp,
    cst.Match: _Walker.visit_Match,
    cst.Name: _Walker.visit_Name,
    cst.Attribute: _Walker.visit_Attribute,
    cst.FormattedString: _Walker.visit_FormattedString,
    cst.BinaryOperation: _Walker.visit_BinaryOperation,
    cst.BooleanOperation: _Walker.visit_BinaryOperation,
    cst.ConcatenatedString: _Walker.visit_ConcatenatedString,
    cst.Call: _Walker.visit_Call,
    cst.SimpleString: _Walker._leaf,
    cst.Integer: _Walker._leaf,
    cst.Float: _Walker._leaf,
    cst.Imaginary: _Walker._leaf,
    cst.Ellipsis: _Walker._leaf,
    cst.FormattedStringText: _Walker._leaf,
    cst.Pass: _Walker._leaf,
    cst.Break: _Walker._leaf,
    cst.Continue: _Walker._leaf,
}
