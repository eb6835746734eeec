"""The shape of a file's durables and steps, for ``zart-lint --against REF``.

A durable's **call sequence** is the ordered list of the step and primitive
calls in its body (nested functions included), in source order, each under
the name it is journaled by: the step's name template (or the ``.named(...)``
argument), the primitive's name argument; a constant name as its value, a
computed one as its source text. It is a static approximation: a call in a
loop counts once, both branches of an ``if`` count, in source order. Calls in
the branch of ``if await zart.patched("id"):`` that only new executions take
(the ``else`` of ``if not await zart.patched(...)``) are *guarded*: in-flight
executions never reach them, so they are left out of the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from zart_lint.analysis._analysis import Analysis, Invocation
from zart_lint.analysis._model import Scope
from zart_lint.analysis._variance import literal_string
from zart_lint.analysis._walker import dotted_parts

_PATCHED = "zart.patched"


@dataclass(frozen=True, eq=False)
class CallShape:
    name: str  # the journal name, or its template / source text when computed
    kind: str  # "step", or the primitive: "sleep", "run_child" ...
    callee: str  # the step's function name, or "zart.<primitive>"
    node: cst.CSTNode  # the call, with its .named(...)
    guarded: bool  # only executions that took a ``zart.patched`` branch reach it


@dataclass(frozen=True, eq=False)
class DurableShape:
    name: str  # the durable's registered name
    function: str
    node: cst.FunctionDef
    calls: tuple[CallShape, ...]

    def sequence(self) -> list[CallShape]:
        """The calls an in-flight execution may have recorded, in call order."""
        return [call for call in self.calls if not call.guarded]


@dataclass(frozen=True, eq=False)
class StepShape:
    template: str
    function: str
    returns: str | None  # the return annotation's source text, if any
    node: cst.CSTNode  # the annotation, or the def's name when it has none


@dataclass(frozen=True, eq=False)
class FileShape:
    durables: tuple[DurableShape, ...]
    steps: tuple[StepShape, ...]


def file_shape(analysis: Analysis) -> FileShape:
    durables: list[DurableShape] = []
    steps: list[StepShape] = []
    by_scope: dict[int, list[Invocation]] = {}
    for invocation in analysis.invocations():
        owner = _function_scopes(invocation.site.scope)
        for scope in owner:
            by_scope.setdefault(id(scope), []).append(invocation)
    for scope in analysis.model.def_scopes.values():
        node = scope.node
        if not isinstance(node, cst.FunctionDef):
            continue
        found = analysis.local_def(node)
        if found is None or found.template is None:
            continue
        if found.kind == "step":
            returns = node.returns.annotation if node.returns is not None else None
            text = analysis.code(returns) if returns is not None else None
            steps.append(StepShape(found.template, found.function, text, returns or node.name))
            continue
        guards = _guards(analysis, node, scope)
        calls = _calls(analysis, by_scope.get(id(scope), []), guards)
        durables.append(DurableShape(found.template, found.function, node, calls))
    return FileShape(tuple(durables), tuple(steps))


def _function_scopes(scope: Scope) -> list[Scope]:
    found: list[Scope] = []
    current: Scope | None = scope
    while current is not None:
        if current.kind == "function":
            found.append(current)
        current = current.parent
    return found


def _calls(
    analysis: Analysis, invocations: list[Invocation], guards: dict[int, int]
) -> tuple[CallShape, ...]:
    calls: list[CallShape] = []
    unnamed = 0
    for invocation in invocations:
        name = _name(analysis, invocation)
        if name is None:
            if invocation.primitive is None or not invocation.name_is_optional:
                continue  # the name is hidden in *args / **kwargs: not comparable
            unnamed += 1
            name = f"zart.{invocation.primitive}-<{unnamed}>"
        guarded = any(guards.get(branch[0]) == branch[1] for branch in invocation.site.branches)
        if invocation.step is not None:
            kind, callee = "step", invocation.step.function
        else:
            kind, callee = str(invocation.primitive), f"zart.{invocation.primitive}"
        calls.append(CallShape(name, kind, callee, invocation.top, guarded))
    return tuple(calls)


def _name(analysis: Analysis, invocation: Invocation) -> str | None:
    argument: cst.Arg | None
    if invocation.named_call is not None:
        argument = invocation.named
    elif invocation.primitive is not None:
        argument = invocation.name_argument()
    else:
        assert invocation.step is not None
        return invocation.step.template or invocation.step.function
    if argument is None or argument.star:
        return None
    value = literal_string(argument.value)
    return value if value is not None else analysis.code(argument.value)


def _guards(analysis: Analysis, function: cst.FunctionDef, scope: Scope) -> dict[int, int]:
    """id(if) -> the index of its branch that only new executions take (0: body, 1: else),
    for each ``if [not] await zart.patched(...):`` in the function."""
    finder = _IfFinder()
    function.body.visit(finder)
    guards: dict[int, int] = {}
    for node in finder.found:
        test, negated = node.test, False
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            test, negated = test.expression, True
        if not (isinstance(test, cst.Await) and isinstance(test.expression, cst.Call)):
            continue
        parts = dotted_parts(test.expression.func)
        if parts is not None and analysis.qualified_name(parts, scope) == _PATCHED:
            guards[id(node)] = 1 if negated else 0
    return guards


class _IfFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.If] = []

    def visit_If(self, node: cst.If) -> None:
        self.found.append(node)
