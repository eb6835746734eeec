"""Answers the rules' questions about a walked file: what is a step, where, under what name.

Built once per file from the :class:`FileModel`; everything is computed lazily
and memoised, so a file without step calls costs next to nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import libcst as cst

from zart_lint.analysis._model import (
    ALIAS,
    CLASS,
    DEF,
    IMPORT,
    PARTIAL,
    CallSite,
    FileModel,
    ImportRef,
    Loop,
    Meaning,
    PartialRef,
    Scope,
)
from zart_lint.analysis._variance import Variance, evaluate_literal, literal_string
from zart_lint.analysis._walker import dotted_parts
from zart_lint.core._options import RuleOptions
from zart_lint.core._recognize import (
    PRIMITIVES,
    Binding,
    DefKind,
    NondeterministicKind,
    Param,
    ParamKind,
    StepDef,
    decorator_kind,
    method_binding,
    nondeterministic_kind,
    partial_step,
    primitive_of,
)
from zart_lint.core._templates import Template, parse_template
from zart_lint.project._imports import resolve_relative
from zart_lint.project._index import ProjectIndex

# Calls that never change their arguments in place (see Variance: "passed").
_NON_MUTATING_BUILTINS = frozenset(
    {"print", "len", "str", "int", "float", "repr", "isinstance", "format", "sorted", "list"}
    | {"tuple", "set", "dict", "min", "max", "sum", "any", "all", "enumerate", "range", "zip"}
    | {"getattr", "hasattr", "hash", "id", "type", "bool", "frozenset", "reversed", "iter"}
)
_LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)


class _Resolved:
    """What a name refers to, once the whole file is known."""

    __slots__ = ("definition", "kind", "node", "partial", "qualified")

    def __init__(
        self,
        kind: Literal["import", "def", "class", "partial", "local", "builtin"],
        qualified: str | None = None,
        definition: cst.FunctionDef | None = None,
        node: cst.ClassDef | None = None,
        partial: tuple[PartialRef, Scope] | None = None,
    ) -> None:
        self.kind = kind
        self.qualified = qualified
        self.definition = definition
        self.node = node  # the class of a "class"
        self.partial = partial  # the partial(...) of a "partial", and where it is made


_LOCAL = _Resolved("local")
_BUILTIN = _Resolved("builtin")


@dataclass(frozen=True)
class Invocation:
    """A call to a step or a durable primitive, with its naming."""

    site: CallSite
    step: StepDef | None  # None for a primitive
    primitive: str | None  # "sleep", ... for a primitive
    top: cst.Call  # outermost call of `step(x).named(..).<option>(..)`
    named: cst.Arg | None  # the .named() argument, if any
    named_call: cst.Call | None  # the .named(...) call itself

    @property
    def call(self) -> cst.Call:
        return self.site.call

    @property
    def label(self) -> str:
        """How messages refer to the callee."""
        if self.step is not None:
            return (
                f'step "{self.step.template}"'
                if self.step.template
                else f"step {self.step.function}"
            )
        return f"zart.{self.primitive}"

    @property
    def name_is_optional(self) -> bool:
        """A primitive whose calls without ``name=`` are named by their order in the run."""
        return self.primitive is not None and not PRIMITIVES[self.primitive].required

    def renamed(self, name: str) -> str:
        """How a message suggests giving this call the name ``name``."""
        if self.primitive is None or self.named_call is not None:
            return f'.named("{name}")'
        return f'name="{name}"'

    def unnamed_hint(self) -> str:
        """The alternative of leaving the name out, for a primitive whose name is optional."""
        if not self.name_is_optional:
            return ""
        return ", or leave out name= (each call is then named by its order in the run)"

    def name_argument(self) -> cst.Arg | None:
        """The argument that gives a primitive its name (None when absent / not a primitive).

        A call without it (``zart.wait(aws)``, or one whose name is hidden in
        ``*args`` / ``**kwargs``) is not judged by the naming rules; nor is an
        optional name given as ``name=None`` (the call is named by its order)."""
        if self.primitive is None:
            return None
        args = self.call.args
        for arg in args:
            if arg.keyword is not None and arg.keyword.value == "name":
                left_out = isinstance(arg.value, cst.Name) and arg.value.value == "None"
                return None if left_out and self.name_is_optional else arg
        if not PRIMITIVES[self.primitive].positional:
            return None
        if not args or args[0].keyword is not None or args[0].star:
            return None
        return args[0]


class Analysis:
    def __init__(
        self, model: FileModel, path: Path, index: ProjectIndex, options: RuleOptions
    ) -> None:
        self.model = model
        self.index = index
        self.options = options
        self.variance = Variance(self)
        location = index.location_of(path) if index.root is not None else None
        self.module_key: str | None = location[0] if location else None
        self._directory: tuple[str, ...] | None = location[1] if location else None
        self._resolved: dict[tuple[int, str], _Resolved] = {}
        self._resolving: set[tuple[int, str]] = set()
        self._scope_kinds: dict[int, DefKind | None] = {}
        self._local_defs: dict[int, tuple[cst.Decorator, StepDef] | None] = {}
        self._site_targets: dict[int, StepDef | str | None] = {}
        self._invocations: list[Invocation] | None = None
        self._code_cache: dict[int, str] = {}

    # -- names ----------------------------------------------------------------------------

    def qualify_import(self, ref: ImportRef) -> str | None:
        if ref.level == 0:
            base: str | None = ref.module
        elif self._directory is None:
            return None  # a relative import outside any known project
        else:
            base = resolve_relative(self._directory, ref.level, ref.module or None)
        if base is None:
            return None
        if ref.name is None:
            return base
        return f"{base}.{ref.name}" if base else ref.name

    def resolve(self, name: str, scope: Scope) -> _Resolved:
        key = (id(scope), name)
        found = self._resolved.get(key)
        if found is None:
            if key in self._resolving:
                return _LOCAL  # an alias of itself (x = x): nothing known
            self._resolving.add(key)
            try:
                found = self._resolve(name, scope)
            finally:
                self._resolving.discard(key)
            self._resolved[key] = found
        return found

    def _resolve(self, name: str, scope: Scope) -> _Resolved:
        current: Scope | None = scope
        while current is not None:
            # Class bodies are not visible from the functions nested in them.
            if current.kind == "class" and current is not scope:
                current = current.parent
                continue
            if name in current.globals:
                current = self.model.module_scope
            meanings = current.meanings.get(name)
            if meanings is not None:
                return self._from_meanings(meanings, current)
            current = current.parent
        for star in self.model.star_imports:
            base = self.qualify_import(star)
            if base is None:
                continue
            qualified = f"{base}.{name}"
            if base == "zart" or self.index.resolve(qualified, self.module_key) not in (
                None,
                qualified,
            ):
                return _Resolved("import", qualified)
        return _BUILTIN

    def _from_meanings(self, meanings: list[Meaning], scope: Scope) -> _Resolved:
        first = meanings[0]
        if any(other != first for other in meanings[1:]):
            return _LOCAL  # bound in several ways: cannot tell which one a call sees
        kind, payload = first
        if kind == IMPORT and isinstance(payload, ImportRef):
            qualified = self.qualify_import(payload)
            return _Resolved("import", qualified) if qualified is not None else _LOCAL
        if kind == DEF and isinstance(payload, cst.FunctionDef):
            return _Resolved("def", definition=payload)
        if kind == CLASS and isinstance(payload, cst.ClassDef):
            return _Resolved("class", node=payload)
        if kind == ALIAS and isinstance(payload, tuple):
            return self._alias(payload, scope)
        if kind == PARTIAL and isinstance(payload, PartialRef):
            return _Resolved("partial", partial=(payload, scope))
        return _LOCAL

    def _alias(self, parts: tuple[str, ...], scope: Scope) -> _Resolved:
        """``name = other.attr``: what ``other.attr`` is, if it is an import or a definition."""
        target = self.resolve(parts[0], scope)
        if target.kind == "import" and target.qualified is not None:
            return _Resolved("import", ".".join((target.qualified, *parts[1:])))
        if len(parts) == 1 and target.kind in ("def", "class", "partial"):
            return target
        if len(parts) == 2 and target.kind == "class" and target.node is not None:
            method = self.method(target.node, parts[1])
            if method is not None:
                return _Resolved("def", definition=method)
        return _LOCAL

    def method(self, node: cst.ClassDef, name: str) -> cst.FunctionDef | None:
        """The function ``name`` defined in the body of a class of this file."""
        scope = self.model.class_scopes.get(id(node))
        meanings = scope.meanings.get(name) if scope is not None else None
        if not meanings or any(other != meanings[0] for other in meanings[1:]):
            return None
        kind, payload = meanings[0]
        return payload if kind == DEF and isinstance(payload, cst.FunctionDef) else None

    def is_builtin(self, name: str, scope: Scope) -> bool:
        return self.resolve(name, scope).kind == "builtin"

    def qualified_name(self, parts: tuple[str, ...], scope: Scope) -> str | None:
        resolved = self.resolve(parts[0], scope)
        if resolved.kind != "import" or resolved.qualified is None:
            return None
        return ".".join((resolved.qualified, *parts[1:]))

    # -- definitions ----------------------------------------------------------------------

    def scope_kind(self, scope: Scope) -> DefKind | None:
        """ "step" / "durable" for a decorated function's scope, else None."""
        key = id(scope)
        if key not in self._scope_kinds:
            kind = None
            if scope.kind == "function" and isinstance(scope.node, cst.FunctionDef):
                found = self.local_def(scope.node)
                kind = found.kind if found is not None else None
            self._scope_kinds[key] = kind
        return self._scope_kinds[key]

    def in_step_body(self, scope: Scope) -> Scope | None:
        """The step whose body (nested functions included) contains ``scope``."""
        current: Scope | None = scope
        while current is not None and current.kind != "module":
            if self.scope_kind(current) == "step":
                return current
            current = current.parent
        return None

    def local_def(self, node: cst.FunctionDef) -> StepDef | None:
        found = self.step_decorator(node)
        return found[1] if found is not None else None

    def step_decorator(self, node: cst.FunctionDef) -> tuple[cst.Decorator, StepDef] | None:
        """The decorator making ``node`` a step or durable, and the definition it makes."""
        key = id(node)
        if key not in self._local_defs:
            scope = self.model.def_scopes.get(key)
            where = scope.parent if scope is not None else None
            self._local_defs[key] = self._classify_def(node, where) if where is not None else None
        return self._local_defs[key]

    def _classify_def(
        self, node: cst.FunctionDef, where: Scope
    ) -> tuple[cst.Decorator, StepDef] | None:
        for decorator in node.decorators:
            expression = decorator.decorator
            call = expression if isinstance(expression, cst.Call) else None
            parts = dotted_parts(call.func if call is not None else expression)
            if parts is None:
                continue
            kind = decorator_kind(self.decorator_name(parts, where), ".".join(parts), self.options)
            if kind is None:
                continue
            template: str | None = node.name.value
            argument = template_argument(call) if call is not None else None
            if argument is not None:
                template = literal_string(argument.value)
            params = params_of(node.params)
            binding: Binding = "function"
            if where.kind == "class":
                names = tuple((dotted_parts(d.decorator) or ("",))[-1] for d in node.decorators)
                binding = method_binding(names)
            return decorator, StepDef(
                kind, node.name.value, template, params, node.asynchronous is not None, binding
            )
        return None

    def decorator_name(self, parts: tuple[str, ...], scope: Scope) -> str | None:
        """A decorator's qualified name, through aliases made in other modules
        (``from .deco import activity`` where ``activity = zart.step``)."""
        qualified = self.qualified_name(parts, scope)
        if qualified is None or qualified.split(".")[0] == "zart":
            return qualified
        found = self.index.resolve(qualified, self.module_key)
        return found if isinstance(found, str) else qualified

    # -- call sites -----------------------------------------------------------------------

    def target_of(self, site: CallSite) -> StepDef | str | None:
        """The step (StepDef) or primitive ("sleep") a call site calls, else None."""
        key = id(site)
        if key not in self._site_targets:
            self._site_targets[key] = self._target_of(site)
        return self._site_targets[key]

    def _target_of(self, site: CallSite) -> StepDef | str | None:
        resolved = self.resolve(site.parts[0], site.scope)
        if resolved.kind in ("def", "partial", "class") or len(site.parts) == 2:
            local = self._local_target(resolved, site)
            if local is not None or resolved.kind != "import":
                return local
        if resolved.kind != "import" or resolved.qualified is None:
            return None
        return self._imported_target(".".join((resolved.qualified, *site.parts[1:])))

    def _imported_target(self, qualified: str) -> StepDef | str | None:
        if qualified.split(".")[0] == "zart":
            return primitive_of(qualified)
        found = self.index.resolve(qualified, self.module_key)
        if isinstance(found, str):
            return primitive_of(found)
        if found is None or found.kind != "step":
            return None
        # Called on a class (Billing.charge) or a module: an instance method takes self.
        return _as_called(found, through_class=True)

    def _local_target(self, resolved: _Resolved, site: CallSite) -> StepDef | str | None:
        """A step of this file: a function, a partial of one, or a method."""
        parts = site.parts
        if resolved.kind == "def" and resolved.definition is not None and len(parts) == 1:
            found = self.local_def(resolved.definition)
            if found is not None and found.kind == "step":
                return _as_called(found, through_class=found.binding == "function")
            return None
        if resolved.kind == "partial" and resolved.partial is not None and len(parts) == 1:
            return self._partial_target(*resolved.partial)
        if len(parts) != 2:
            return None
        if resolved.kind == "class" and resolved.node is not None:
            method = self.method(resolved.node, parts[1])
            found = self.local_def(method) if method is not None else None
            return _as_called(found, through_class=True) if _is_step(found) else None
        receiver = self.receiver_class(parts[0], site.scope)
        if receiver is not None:
            method = self.method(receiver, parts[1])
            found = self.local_def(method) if method is not None else None
            return _as_called(found, through_class=False) if _is_step(found) else None
        return None

    def receiver_class(self, name: str, scope: Scope) -> cst.ClassDef | None:
        """The class of ``self`` / ``cls``: ``name`` is the first parameter of a method
        (the innermost function whose parent is a class body) that ``scope`` is in."""
        current: Scope | None = scope
        while current is not None and current.kind in ("function", "lambda"):
            parent = current.parent
            if parent is not None and parent.kind == "class":
                node = current.node
                if not isinstance(node, cst.FunctionDef) or not node.params.params:
                    return None
                if node.params.params[0].name.value != name:
                    return None
                klass = parent.node
                return klass if isinstance(klass, cst.ClassDef) else None
            current = parent
        return None

    def _partial_target(self, ref: PartialRef, scope: Scope) -> StepDef | None:
        function = self.qualified_name(ref.function, scope)
        if function != "functools.partial":
            return None
        first = ref.call.args[0]
        wrapped = dotted_parts(first.value)
        if wrapped is None:
            return None
        target = self._target_of(CallSite(ref.call, wrapped, scope, None, (), False))
        if not isinstance(target, StepDef):
            return None
        if any(arg.star for arg in ref.call.args):
            return None
        positional = sum(1 for arg in ref.call.args[1:] if arg.keyword is None)
        keywords: dict[str, tuple[object, bool]] = {}
        for arg in ref.call.args:
            if arg.keyword is not None:
                value = literal_value(arg.value)
                keywords[arg.keyword.value] = (value, is_literal(value))
        return partial_step(target, positional, keywords, fixed=not ref.in_loop)

    def nondeterministic(self, site: CallSite) -> tuple[str, NondeterministicKind] | None:
        qualified = self.qualified_name(site.parts, site.scope)
        if qualified is None:
            return None
        kind = nondeterministic_kind(qualified)
        return (qualified, kind) if kind is not None else None

    def may_mutate(self, site: CallSite | None) -> bool:
        """Could this call change the objects passed to it?"""
        if site is None:
            return True
        if self.target_of(site) is not None:
            return False  # steps get serialized copies
        if len(site.parts) == 1:
            return not (
                site.parts[0] in _NON_MUTATING_BUILTINS
                and self.is_builtin(site.parts[0], site.scope)
            )
        return site.parts[-1] not in _LOG_METHODS

    def invocations(self) -> list[Invocation]:
        if self._invocations is None:
            self._invocations = [
                inv for site in self.model.calls if (inv := self._invocation(site))
            ]
        return self._invocations

    def _invocation(self, site: CallSite) -> Invocation | None:
        target = self.target_of(site)
        if target is None:
            return None
        top, named, named_call = site.call, None, None
        link = self.model.chain_parent.get(id(top))
        while link is not None:
            outer, attribute = link
            if attribute == "named":
                named, named_call = (outer.args[0] if outer.args else None), outer
            top = outer
            link = self.model.chain_parent.get(id(top))
        if isinstance(target, StepDef):
            return Invocation(site, target, None, top, named, named_call)
        return Invocation(site, None, target, top, named, named_call)

    def named_elsewhere(self, invocation: Invocation) -> bool:
        """``call = step(x)`` and later ``call.named(...)``: the name is set apart."""
        names = self.model.assigned.get(id(invocation.top), ())
        return any(name in invocation.site.scope.named_receivers for name in names)

    # -- source text ----------------------------------------------------------------------

    def code(self, node: cst.CSTNode) -> str:
        key = id(node)
        text = self._code_cache.get(key)
        if text is None:
            text = self.model.module.code_for_node(node)
            self._code_cache[key] = text
        return text

    def short_code(self, node: cst.CSTNode) -> str:
        """The code of ``node`` on one line, shortened to fit in a message."""
        return _short(self.code(node))

    def describe_loop(self, loop: Loop) -> str:
        node = loop.node
        if isinstance(node, cst.While):
            return f"`while {self.short_code(node.test)}` loop"
        header = f"for {self.short_code(node.target)} in {self.short_code(node.iter)}"
        if isinstance(node, cst.CompFor):
            return f"comprehension `{header}`"
        prefix = "async " if loop.kind == "async for" else ""
        return f"`{prefix}{header}` loop"


def _is_step(found: StepDef | None) -> bool:
    return found is not None and found.kind == "step"


def _as_called(step: StepDef | None, *, through_class: bool) -> StepDef | None:
    """The definition with the parameters a call's arguments bind to (no self / cls)."""
    if step is None or step.binding == "function":
        return step
    return replace(step, params=step.call_params(through_class), binding="function")


def template_argument(call: cst.Call) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in ("name", "template"):
            return arg
    if call.args and call.args[0].keyword is None and not call.args[0].star:
        return call.args[0]
    return None


def params_of(parameters: cst.Parameters) -> tuple[Param, ...]:
    params: list[Param] = [_param(param, "positional_only") for param in parameters.posonly_params]
    params.extend(_param(param, "positional") for param in parameters.params)
    if isinstance(parameters.star_arg, cst.Param):
        params.append(Param(parameters.star_arg.name.value, "var_positional"))
    params.extend(_param(param, "keyword_only") for param in parameters.kwonly_params)
    if isinstance(parameters.star_kwarg, cst.Param):
        params.append(Param(parameters.star_kwarg.name.value, "var_keyword"))
    return tuple(params)


def _param(param: cst.Param, kind: ParamKind) -> Param:
    if param.default is None:
        return Param(param.name.value, kind)
    literal = literal_value(param.default)
    if literal is _NO_LITERAL:
        return Param(param.name.value, kind, True)
    return Param(param.name.value, kind, True, literal, True)  # type: ignore[arg-type]


_NO_LITERAL = object()


def literal_value(node: cst.BaseExpression) -> object:
    """A str/int/float/bool/None literal's value, else ``_NO_LITERAL``."""
    text = literal_string(node)
    if text is not None:
        return text
    if isinstance(node, (cst.Integer, cst.Float)):
        return evaluate_literal(node.value)
    if isinstance(node, cst.Name) and node.value in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[node.value]
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = node.expression
        if isinstance(inner, (cst.Integer, cst.Float)):
            return -evaluate_literal(inner.value)  # type: ignore[operator]
    return _NO_LITERAL


def is_literal(value: object) -> bool:
    return value is not _NO_LITERAL


def template_of(step: StepDef) -> Template | None:
    return parse_template(step.template) if step.template is not None else None


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
