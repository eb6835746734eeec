"""Which name does each step call run under, and can it repeat? (ZRT001-ZRT004)

A call's step name comes from, in order of precedence: its ``.named(...)``
argument; for a primitive, its name argument; else the step's template,
formatted with the arguments bound to its ``{fields}``.

One verdict per call in a loop, so ZRT001/002/003 never report the same call
twice: ZRT001 when the name is a constant of the definition (a template without
fields, a primitive's string literal), ZRT002 when ``.named()`` gets a constant
(a literal, or a variable no loop rebinds), ZRT003 when the name is computed but
from nothing that changes per iteration of one of the enclosing loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import libcst as cst

from zart_lint.analysis._analysis import (
    Analysis,
    Invocation,
    is_literal,
    literal_value,
    template_of,
)
from zart_lint.analysis._exits import effective_loop
from zart_lint.analysis._model import Loop
from zart_lint.analysis._variance import literal_string
from zart_lint.core._recognize import Param, StepDef
from zart_lint.core._templates import render

LoopCode = Literal["ZRT001", "ZRT002", "ZRT003"]


class _Default:
    """A parameter left to its default value: the same in every call."""


DEFAULT = _Default()
Bound = dict[str, "cst.BaseExpression | _Default"]


@dataclass(frozen=True)
class LoopVerdict:
    code: LoopCode
    invocation: Invocation
    loop: Loop  # the (innermost) loop whose iterations all get the same name
    constant: str | None  # the constant name (ZRT001, literal ZRT002)
    expression: cst.BaseExpression | None  # the .named() / primitive name expression
    bound: Bound | None  # template fields -> arguments (step templates)


def bind_arguments(params: tuple[Param, ...], call: cst.Call) -> Bound | None:
    """Parameter name -> argument (or DEFAULT); None when the binding is unknowable."""
    positional = [p for p in params if p.kind in ("positional_only", "positional")]
    bound: Bound = {}
    index = 0
    for arg in call.args:
        if arg.star:
            return None  # *args / **kwargs spread: anything could land anywhere
        if arg.keyword is None:
            if index < len(positional):
                bound[positional[index].name] = arg.value
            index += 1
        else:
            bound[arg.keyword.value] = arg.value
    for param in params:
        if param.name not in bound and param.has_default:
            bound[param.name] = DEFAULT
    return bound


def template_fields(step: StepDef, call: cst.Call) -> tuple[tuple[str, ...], Bound] | None:
    """Fields of a valid templated name and the arguments bound to them."""
    template = template_of(step)
    if template is None or template.error is not None or not template.fields:
        return None
    bound = bind_arguments(step.params, call)
    if bound is None:
        return None
    variadic = {p.name for p in step.params if p.kind in ("var_positional", "var_keyword")}
    if any(field not in bound or field in variadic for field in template.fields):
        return None  # unknown field (ZRT005) or a missing argument: the call fails anyway
    return template.fields, bound


def step_name(step: StepDef, call: cst.Call) -> str | tuple[tuple[str, ...], Bound] | None:
    """A step call's name from its template: the constant name, or the template's
    fields and the arguments bound to them; None when the template is not known
    or not valid, or the arguments cannot be bound."""
    template = template_of(step)
    if template is None or template.error is not None:
        return None
    if template.is_constant:
        return template.constant_value()
    return template_fields(step, call)


class Naming:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self._verdicts: dict[int, LoopVerdict | None] = {}

    def loop_verdict(self, invocation: Invocation) -> LoopVerdict | None:
        key = id(invocation.site)
        if key not in self._verdicts:
            self._verdicts[key] = self._loop_verdict(invocation)
        return self._verdicts[key]

    def _loop_verdict(self, invocation: Invocation) -> LoopVerdict | None:
        site = invocation.site
        analysis = self.analysis
        if site.loop is None or analysis.in_step_body(site.scope) is not None:
            return None
        if analysis.named_elsewhere(invocation):
            return None
        # A call after which every path leaves the loop runs at most once per run of it.
        innermost = effective_loop(site.call, site.loop)
        if innermost is None:
            return None
        defs = site.defs
        if invocation.named_call is not None:
            if invocation.named is None or invocation.named.star:
                return None
            return self._expression_verdict(invocation, invocation.named.value, innermost)
        if invocation.primitive is not None:
            argument = invocation.name_argument()
            if argument is None:
                return None
            constant = literal_string(argument.value)
            if constant is not None:
                return LoopVerdict("ZRT001", invocation, innermost, constant, argument.value, None)
            return self._expression_verdict(invocation, argument.value, innermost)
        assert invocation.step is not None
        found = step_name(invocation.step, invocation.call)
        if found is None:
            return None
        if isinstance(found, str):
            return LoopVerdict("ZRT001", invocation, innermost, found, None, None)
        fields, bound = found
        arguments = [bound[field] for field in fields]
        for loop in reversed(innermost.chain()):
            if not any(
                isinstance(arg, cst.BaseExpression) and analysis.variance.varies(arg, loop, defs)
                for arg in arguments
            ):
                return LoopVerdict("ZRT003", invocation, loop, None, None, bound)
        return None

    def _expression_verdict(
        self, invocation: Invocation, expression: cst.BaseExpression, innermost: Loop
    ) -> LoopVerdict | None:
        variance = self.analysis.variance
        defs = invocation.site.defs
        constant = literal_string(expression)
        if constant is not None:
            return LoopVerdict("ZRT002", invocation, innermost, constant, expression, None)
        loops = innermost.chain()
        if (
            isinstance(expression, cst.Name)
            and not variance.rebound_in(expression.value, loops[0])
            and not variance.varies(expression, innermost, defs)
        ):
            return LoopVerdict("ZRT002", invocation, innermost, None, expression, None)
        for loop in reversed(loops):
            if not variance.varies(expression, loop, defs):
                return LoopVerdict("ZRT003", invocation, loop, None, expression, None)
        return None

    def constant_name(self, invocation: Invocation) -> str | None:
        """The step name when it is the same on every run (for ZRT004), else None."""
        if invocation.named_call is not None:
            named = invocation.named
            return literal_string(named.value) if named is not None and not named.star else None
        if invocation.primitive is not None:
            argument = invocation.name_argument()
            return literal_string(argument.value) if argument is not None else None
        step = invocation.step
        assert step is not None
        found = step_name(step, invocation.call)
        if found is None or isinstance(found, str):
            return found
        fields, bound = found
        values: dict[str, object] = {}
        defaults = {p.name: p for p in step.params}
        for field in fields:
            bound_to = bound[field]
            if isinstance(bound_to, _Default):
                param = defaults[field]
                if not param.has_literal_default:
                    return None
                values[field] = param.literal_default
            else:
                value = literal_value(bound_to)
                if not is_literal(value):
                    return None
                values[field] = value
        assert step.template is not None
        return render(step.template, values)

    def varying_parameter(self, invocation: Invocation) -> str | None:
        """A parameter of the step bound to something that changes per iteration."""
        step, loop = invocation.step, invocation.site.loop
        if step is None or loop is None:
            return None
        bound = bind_arguments(step.params, invocation.call)
        if bound is None:
            return None
        for param in step.params:
            argument = bound.get(param.name)
            if (
                param.kind not in ("var_positional", "var_keyword")
                and isinstance(argument, cst.BaseExpression)
                and self.analysis.variance.varies(argument, loop, invocation.site.defs)
            ):
                return param.name
        return None
