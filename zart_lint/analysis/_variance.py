"""Does an expression change from one iteration of a loop to the next?

``varies(expr, loop)`` answers True unless it can *prove* that ``expr`` has the
same value in every iteration of ``loop`` -- a false alarm in a pre-commit
hook costs more than a missed one, and the runtime's duplicate-name guard
catches what the linter lets through.

A name varies per iteration of a loop when the loop's region (re)binds it: as a
target of that loop, by ``+=``, from a varying value, by an unknown binding
(with-as, except-as, ...), from two different values; or when something in the
region may change its object in place (``x.append(..)``, ``x.a = ..``, passing
it to an unknown function). Reading into an object (``cfg.region``,
``rows[0]``, ``len(rows)``) is trusted only when the loop calls nothing that
could change objects through another reference. A target of an *inner* loop
varies per iteration of an outer loop only when the inner loop's iterable does
-- and the index of ``enumerate`` or a ``range(n)`` restarts at 0 each time, so
it does not.
"""

from __future__ import annotations

import ast
import functools
import weakref
from collections.abc import Mapping, Sequence
from typing import Protocol

import libcst as cst

from zart_lint.analysis._model import ASSIGN, TARGET, CallSite, FileModel, Loop, Scope
from zart_lint.analysis._walker import root_name

_LITERAL_TYPES = (cst.SimpleString, cst.Integer, cst.Float, cst.Imaginary, cst.Ellipsis)
_CONSTANT_NAMES = frozenset({"None", "True", "False"})
# Builtins whose result depends only on their arguments.
_PURE_BUILTINS = frozenset(
    {"str", "int", "float", "repr", "format", "len", "abs", "round", "hex", "oct", "bin", "bool"}
    | {"min", "max", "tuple", "sorted", "ord", "chr", "sum", "any", "all", "frozenset"}
)
# str methods whose result depends only on the receiver and the arguments.
_PURE_STR_METHODS = frozenset(
    {"format", "lower", "upper", "strip", "lstrip", "rstrip", "replace", "join", "title"}
    | {"casefold", "zfill", "removeprefix", "removesuffix", "capitalize"}
)

_Guard = frozenset[tuple[str, int]]


@functools.lru_cache(maxsize=4096)
def evaluate_literal(text: str) -> object:
    """``ast.literal_eval(text)`` for the text of a number or string token.

    ast.literal_eval is costly and leaves reference cycles behind (its nested
    helper functions); plain strings, the common case, are read directly.
    """
    quote_at = next((at for at, char in enumerate(text) if char in "'\""), -1)
    prefix = text[:quote_at] if quote_at > 0 else ""
    if quote_at >= 0 and prefix.lower() in ("", "r", "u"):
        triple = text.startswith(text[quote_at] * 3, quote_at) and len(text) >= quote_at + 6
        quotes = 3 if triple else 1
        body = text[quote_at + quotes : len(text) - quotes]
        if "\\" not in body and "\r" not in body:
            return body
    return ast.literal_eval(text)


def _string_value(node: cst.BaseExpression) -> str | bytes | None:
    """``evaluated_value`` of a SimpleString / ConcatenatedString, through the cache."""
    if isinstance(node, cst.SimpleString):
        value = evaluate_literal(node.value)
        return value if isinstance(value, (str, bytes)) else None
    if isinstance(node, cst.ConcatenatedString):
        left, right = node.left, node.right
        if isinstance(left, cst.FormattedString) or isinstance(right, cst.FormattedString):
            return None
        left_value, right_value = _string_value(left), _string_value(right)
        if isinstance(left_value, str) and isinstance(right_value, str):
            return left_value + right_value
        if isinstance(left_value, bytes) and isinstance(right_value, bytes):
            return left_value + right_value
    return None


def literal_string(node: cst.BaseExpression) -> str | None:
    """The value of a string literal with no placeholders (f-strings included), else None.

    ``"charge-{}".format("eu")`` and ``"charge-%s" % "eu"`` are literals too: what
    they format is constant, exactly as in ``f"charge-{'eu'}"``.
    """
    if isinstance(node, cst.Call):
        return _formatted(node)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
        return _percent_formatted(node)
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = _string_value(node)
        return value if isinstance(value, str) else None
    if isinstance(node, cst.FormattedString):
        if any(not isinstance(part, cst.FormattedStringText) for part in node.parts):
            return None
        raw = "".join(
            part.value for part in node.parts if isinstance(part, cst.FormattedStringText)
        )
        prefix = node.prefix.replace("f", "").replace("F", "")
        try:
            text = evaluate_literal(f"{prefix}{node.start[len(node.prefix) :]}{raw}{node.end}")
        except (ValueError, SyntaxError):
            return None
        return text.replace("{{", "{").replace("}}", "}") if isinstance(text, str) else None
    return None


def _constant(node: cst.BaseExpression) -> object:
    """A str / number / bool / None literal's value, else ``_NOT_CONSTANT``."""
    text = literal_string(node)
    if text is not None:
        return text
    if isinstance(node, (cst.Integer, cst.Float)):
        return evaluate_literal(node.value)
    if isinstance(node, cst.Name) and node.value in _CONSTANT_NAMES:
        return {"None": None, "True": True, "False": False}[node.value]
    return _NOT_CONSTANT


_NOT_CONSTANT = object()


def _formatted(call: cst.Call) -> str | None:
    """``"<literal>".format(<literals>)``'s value."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value != "format":
        return None
    text = literal_string(func.value)
    if text is None or any(arg.star for arg in call.args):
        return None
    positional: list[object] = []
    keywords: dict[str, object] = {}
    for arg in call.args:
        value = _constant(arg.value)
        if value is _NOT_CONSTANT:
            return None
        if arg.keyword is None:
            positional.append(value)
        else:
            keywords[arg.keyword.value] = value
    try:
        return text.format(*positional, **keywords)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return None


def _percent_formatted(node: cst.BinaryOperation) -> str | None:
    """``"<literal>" % <literal or tuple of literals>``'s value."""
    text = literal_string(node.left)
    if text is None:
        return None
    right = node.right
    if isinstance(right, cst.Tuple):
        if any(isinstance(element, cst.StarredElement) for element in right.elements):
            return None
        values = tuple(_constant(element.value) for element in right.elements)
        if any(value is _NOT_CONSTANT for value in values):
            return None
        operand: object = values
    else:
        operand = _constant(right)
        if operand is _NOT_CONSTANT or isinstance(operand, tuple):
            return None
    try:
        return text % operand
    except (ValueError, KeyError, TypeError, IndexError):
        return None


class Facts(Protocol):
    """What the variance needs to know about the file (an ``Analysis`` provides it)."""

    @property
    def model(self) -> FileModel: ...

    def is_builtin(self, name: str, scope: Scope) -> bool: ...

    def may_mutate(self, site: CallSite | None) -> bool: ...


class Variance:
    def __init__(self, analysis: Facts) -> None:
        # A weak reference: the analysis holds this object, and a reference cycle
        # would keep every file's tree alive until the cyclic GC runs (which then
        # costs a good part of the parse).
        self._analysis_ref = weakref.ref(analysis)
        self._impure: dict[int, bool] = {}  # id(loop) -> calls something that may mutate
        # Names assigned earlier in the iteration, where the expression being judged is.
        self._defs: Mapping[str, cst.BaseExpression] | None = None

    @property
    def _analysis(self) -> Facts:
        analysis = self._analysis_ref()
        assert analysis is not None, "the Analysis this Variance belongs to is gone"
        return analysis

    def varies(
        self,
        expr: cst.BaseExpression,
        loop: Loop,
        defs: Mapping[str, cst.BaseExpression] | None = None,
    ) -> bool:
        """Whether ``expr`` may change per iteration of ``loop``. ``defs``: the names
        assigned on every path earlier in the same iteration of the innermost loop,
        where ``expr`` is evaluated (``x = 0`` makes ``x`` the same in every iteration)."""
        self._defs = defs or None
        try:
            return self._varies(expr, loop, frozenset())
        finally:
            self._defs = None

    def rebound_in(self, name: str, loop: Loop) -> bool:
        """Whether anything in the loop region (re)binds ``name``."""
        return name in loop.bindings or name in self._analysis.model.volatile

    # -- expressions ----------------------------------------------------------------------

    def _varies(self, expr: cst.BaseExpression, loop: Loop, guard: _Guard) -> bool:
        node_type = type(expr)
        if node_type is cst.Name:
            return self._name_varies(expr.value, loop, guard)  # type: ignore[attr-defined]
        if isinstance(expr, _LITERAL_TYPES):
            return False
        if isinstance(expr, cst.ConcatenatedString):
            return self._varies(expr.left, loop, guard) or self._varies(expr.right, loop, guard)
        if isinstance(expr, cst.FormattedString):
            return self._fstring_varies(expr.parts, loop, guard)
        if isinstance(expr, cst.Attribute):
            return self._varies(expr.value, loop, guard) or self._contents_may_change(expr, loop)
        if isinstance(expr, cst.Subscript):
            return (
                self._varies(expr.value, loop, guard)
                or self._contents_may_change(expr, loop)
                or any(self._slice_varies(element.slice, loop, guard) for element in expr.slice)
            )
        if isinstance(expr, (cst.BinaryOperation, cst.BooleanOperation)):
            return self._varies(expr.left, loop, guard) or self._varies(expr.right, loop, guard)
        if isinstance(expr, cst.UnaryOperation):
            return self._varies(expr.expression, loop, guard)
        if isinstance(expr, cst.Comparison):
            return self._varies(expr.left, loop, guard) or any(
                self._varies(target.comparator, loop, guard) for target in expr.comparisons
            )
        if isinstance(expr, cst.IfExp):
            return any(
                self._varies(part, loop, guard) for part in (expr.test, expr.body, expr.orelse)
            )
        if isinstance(expr, (cst.Tuple, cst.List, cst.Set)):
            return any(self._varies(element.value, loop, guard) for element in expr.elements)
        if isinstance(expr, cst.Dict):
            return any(self._dict_element_varies(element, loop, guard) for element in expr.elements)
        if isinstance(expr, cst.NamedExpr):
            return self._varies(expr.value, loop, guard)
        if isinstance(expr, cst.Call):
            return self._call_varies(expr, loop, guard)
        return True  # await, lambda, comprehension, yield ...: unknown

    def _fstring_varies(
        self,
        parts: Sequence[cst.BaseFormattedStringContent],
        loop: Loop,
        guard: _Guard,
    ) -> bool:
        for part in parts:
            if isinstance(part, cst.FormattedStringExpression):
                if self._varies(part.expression, loop, guard):
                    return True
                if part.format_spec and self._fstring_varies(part.format_spec, loop, guard):
                    return True
        return False

    def _slice_varies(self, node: cst.BaseSlice, loop: Loop, guard: _Guard) -> bool:
        if isinstance(node, cst.Index):
            return self._varies(node.value, loop, guard)
        if isinstance(node, cst.Slice):
            return any(
                part is not None and self._varies(part, loop, guard)
                for part in (node.lower, node.upper, node.step)
            )
        return True

    def _dict_element_varies(self, element: cst.BaseDictElement, loop: Loop, guard: _Guard) -> bool:
        if isinstance(element, cst.DictElement):
            return self._varies(element.key, loop, guard) or self._varies(
                element.value, loop, guard
            )
        if isinstance(element, cst.StarredDictElement):
            return self._varies(element.value, loop, guard)
        return True

    def _call_varies(self, call: cst.Call, loop: Loop, guard: _Guard) -> bool:
        func = call.func
        if isinstance(func, cst.Name):
            pure = func.value in _PURE_BUILTINS and self._analysis.is_builtin(
                func.value, loop.scope
            )
        elif isinstance(func, cst.Attribute):
            pure = func.attr.value in _PURE_STR_METHODS and not self._varies(
                func.value, loop, guard
            )
            if pure and func.attr.value == "format" and literal_string(func.value) is not None:
                # "name-{}".format(x): decided from what is formatted, as f"name-{x}" is.
                return any(self._varies(arg.value, loop, guard) for arg in call.args)
        else:
            pure = False
        if not pure:
            return True  # a call may return something new every time (next(it), queue.get())
        return any(
            self._varies(arg.value, loop, guard) or self._contents_may_change(arg.value, loop)
            for arg in call.args
        )

    def _contents_may_change(self, expr: cst.BaseExpression, loop: Loop) -> bool:
        """Could reading into ``expr``'s object (``x.a``, ``x[0]``, ``len(x)``) give new values?

        Yes when the loop calls a function that might change objects -- through
        any reference, not just its arguments -- unless the object is immutable.
        """
        name = root_name(expr)
        if name is None:
            return not isinstance(expr, _LITERAL_TYPES)
        if name in _CONSTANT_NAMES or self._immutable(name, loop.scope):
            return False
        key = id(loop)
        impure = self._impure.get(key)
        if impure is None:
            impure = any(self._analysis.may_mutate(site) for site in loop.calls)
            self._impure[key] = impure
        return impure

    # -- names ----------------------------------------------------------------------------

    def _name_varies(self, name: str, loop: Loop, guard: _Guard) -> bool:
        if name in _CONSTANT_NAMES:
            return False
        if name in self._analysis.model.volatile:
            return True
        key = (name, id(loop))
        defs = self._defs
        if not guard and defs is not None and name in defs:
            # Assigned earlier in this iteration on every path: that value is the name's.
            return self._varies(defs[name], loop, frozenset({key}))
        if key in guard:
            return True  # x = f(x): defined in terms of itself
        bindings = loop.bindings.get(name)
        if bindings:
            inner_guard = guard | {key}
            values: list[cst.BaseExpression] = []
            for kind, value, source in bindings:
                if kind == TARGET:
                    if source is loop or self._target_varies(source, name, loop, inner_guard):
                        return True
                elif kind == ASSIGN and value is not None:
                    if self._varies(value, loop, inner_guard):
                        return True
                    values.append(value)
                else:
                    return True  # counter (+=) or an unknown kind of binding
            if any(not values[0].deep_equals(other) for other in values[1:]):
                return True  # "a" in one branch, "b" in another
        if name in loop.mutated:
            return True
        return any(
            passed == name
            and self._analysis.may_mutate(site)
            and not self._immutable(name, loop.scope)
            for passed, site in loop.passed
        )

    def _target_varies(self, source: Loop, name: str, loop: Loop, guard: _Guard) -> bool:
        """Does an inner loop's target take new values in each iteration of ``loop``?"""
        node = source.node
        if isinstance(node, cst.While):
            return True
        iterable, target = node.iter, node.target
        if (
            isinstance(iterable, cst.Call)
            and isinstance(iterable.func, cst.Name)
            and iterable.func.value in ("enumerate", "range")
            and not any(arg.star for arg in iterable.args)
            and self._analysis.is_builtin(iterable.func.value, source.scope)
        ):
            positional = [arg.value for arg in iterable.args if arg.keyword is None]
            if iterable.func.value == "range":
                # range(n) starts at 0 every time; range(a, b) varies with a.
                return len(positional) >= 2 and self._varies(positional[0], loop, guard)
            if _is_enumerate_index(target, name):
                starts = [arg.value for arg in iterable.args if arg.keyword is not None]
                starts += positional[1:2]
                return bool(starts) and self._varies(starts[0], loop, guard)
            return not positional or self._varies(positional[0], loop, guard)
        return self._varies(iterable, loop, guard)

    def _immutable(self, name: str, scope: Scope) -> bool:
        """Whether ``name`` only ever holds str/number constants (nothing to mutate)."""
        current: Scope | None = scope
        while current is not None:
            values = current.values.get(name)
            if values is not None:
                return all(value is not None and _is_immutable_value(value) for value in values)
            current = current.parent
        return False


def _is_enumerate_index(target: cst.BaseExpression, name: str) -> bool:
    if not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) != 2:
        return False
    first = target.elements[0].value
    return isinstance(first, cst.Name) and first.value == name


def _is_immutable_value(node: cst.BaseExpression) -> bool:
    if isinstance(node, (*_LITERAL_TYPES, cst.ConcatenatedString, cst.FormattedString)):
        return True
    if isinstance(node, cst.Name):
        return node.value in _CONSTANT_NAMES
    if isinstance(node, cst.Tuple):
        return all(_is_immutable_value(element.value) for element in node.elements)
    return False
