"""What counts as a step, a durable, a durable primitive or a non-deterministic call.

Everything here works on *qualified names* ("zart.step", "pkg.steps.fetch"):
the per-file analysis and the project index each turn the names written in the
source into qualified names through the imports of their module, then ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zart_lint.core._options import RuleOptions

DefKind = Literal["step", "durable"]
ParamKind = Literal[
    "positional_only", "positional", "var_positional", "keyword_only", "var_keyword"
]
# How a step is called: a plain function, or a method of a class (the first
# parameter of an instance method or a classmethod is bound by the call).
Binding = Literal["function", "static", "class", "instance"]

# zart's own decorators and primitives (tests/lint/test_parity.py checks these
# tables against what zart exports).
STEP_DECORATORS = frozenset({"step", "zart_step"})
DURABLE_DECORATORS = frozenset({"durable", "zart_durable"})


@dataclass(frozen=True)
class NameArgument:
    """Where a durable primitive takes its journal name."""

    # True: the first positional argument (or ``name=``); False: only ``name=``
    # (run_child's first positional argument is the child durable function).
    positional: bool
    # False: ``name=`` may be left out, and the call is then named by its order in
    # the run (``zart.wait-<n>``): such a call never repeats a name.
    required: bool = True


# Durable primitives share the step name space: ZRT001-ZRT004 apply to their names.
PRIMITIVES: dict[str, NameArgument] = {
    "sleep": NameArgument(positional=True),
    "sleep_until": NameArgument(positional=True),
    "wait_for_event": NameArgument(positional=True),
    "now": NameArgument(positional=True),
    "capture": NameArgument(positional=True),
    "run_child": NameArgument(positional=False),
    "wait": NameArgument(positional=False, required=False),
}

# Non-deterministic calls (ZRT007) -> which durable replacement to suggest:
# "now" (zart.now), "capture" (zart.capture), "wait" (zart.wait: which awaitables
# finish first differs between runs), "timeout" (a step timeout or
# zart.wait(..., timeout=...): whether a timeout fires differs between runs).
NondeterministicKind = Literal["now", "capture", "wait", "timeout"]
_NONDETERMINISTIC: dict[str, NondeterministicKind] = {
    "time.time": "now",
    "time.time_ns": "now",
    "time.monotonic": "now",
    "time.monotonic_ns": "now",
    "time.perf_counter": "now",
    "time.perf_counter_ns": "now",
    "datetime.datetime.now": "now",
    "datetime.datetime.utcnow": "now",
    "datetime.datetime.today": "now",
    "datetime.date.today": "now",
    "uuid.uuid1": "capture",
    "uuid.uuid4": "capture",
    "os.urandom": "capture",
    "os.getrandom": "capture",
    "asyncio.wait": "wait",
    "asyncio.tasks.wait": "wait",
    "asyncio.as_completed": "wait",
    "asyncio.tasks.as_completed": "wait",
    "asyncio.wait_for": "timeout",
    "asyncio.tasks.wait_for": "timeout",
}
_NONDETERMINISTIC_MODULES = frozenset({"random", "secrets"})
# Members of those modules that are not themselves a source of randomness.
_DETERMINISTIC_MEMBERS = frozenset(
    {"random.seed", "random.Random", "random.getstate", "random.setstate", "secrets.compare_digest"}
)


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind
    has_default: bool = False
    # The default when it is a str/int/float/bool/None literal (for rendering
    # names in ZRT004); ``has_literal_default`` tells None-the-literal apart.
    literal_default: str | int | float | bool | None = None
    has_literal_default: bool = False


@dataclass(frozen=True)
class StepDef:
    """A function decorated as a step or a durable."""

    kind: DefKind
    function: str
    # The step name template (the function name for a bare ``@step``); None when
    # the decorator argument is not a string literal and so cannot be checked.
    template: str | None
    params: tuple[Param, ...]
    is_async: bool
    binding: Binding = "function"

    def call_params(self, through_class: bool = False) -> tuple[Param, ...]:
        """The parameters a call's arguments bind to: without ``self`` / ``cls`` when the
        call supplies it (``self.charge(x)``, ``Billing.charge(x)`` for a classmethod).
        ``through_class``: called on the class itself (an instance method then takes
        ``self`` explicitly)."""
        if self.binding == "class" or (self.binding == "instance" and not through_class):
            return self.params[1:]
        return self.params


def method_binding(decorators: tuple[str, ...]) -> Binding:
    """A method's binding from the last part of its decorators' names."""
    if "staticmethod" in decorators:
        return "static"
    if "classmethod" in decorators:
        return "class"
    return "instance"


def decorator_kind(
    qualified: str | None, written: str | None, options: RuleOptions
) -> DefKind | None:
    """Classify a decorator from its qualified name and its dotted name as written."""
    for candidate in (qualified, written):
        if candidate is None:
            continue
        if candidate in options.extra_step_decorators:
            return "step"
        if candidate in options.extra_durable_decorators:
            return "durable"
    if qualified is not None:
        parts = qualified.split(".")
        if parts[0] == "zart" and len(parts) > 1:
            if parts[-1] in STEP_DECORATORS:
                return "step"
            if parts[-1] in DURABLE_DECORATORS:
                return "durable"
    return None


def primitive_of(qualified: str) -> str | None:
    """``"sleep"`` for ``zart.sleep`` and the like, else None."""
    parts = qualified.split(".")
    if parts[0] == "zart" and len(parts) > 1 and parts[-1] in PRIMITIVES:
        return parts[-1]
    return None


def nondeterministic_kind(qualified: str) -> NondeterministicKind | None:
    kind = _NONDETERMINISTIC.get(qualified)
    if kind is not None:
        return kind
    module, _, member = qualified.rpartition(".")
    if module in _NONDETERMINISTIC_MODULES and member and qualified not in _DETERMINISTIC_MEMBERS:
        return "capture"
    return None


def partial_step(
    step: StepDef,
    positional: int,
    keywords: dict[str, tuple[object, bool]],
    fixed: bool,
) -> StepDef:
    """The step ``functools.partial(step, <positional args>, **keywords)`` calls.

    The first ``positional`` parameters are gone; a keyword-bound parameter keeps
    its partial value as a default when ``fixed`` (the partial is made once, outside
    any loop: its values are the same in every iteration) and is gone otherwise (a
    name that depends on it is then not judged). ``keywords``: name -> (literal
    value, whether it is a literal).
    """
    remaining = list(step.call_params())[positional:]
    params: list[Param] = []
    for param in remaining:
        bound = keywords.get(param.name)
        if bound is None:
            params.append(param)
        elif fixed:
            value, is_literal = bound
            literal = value if is_literal and _plain(value) else None
            assert literal is None or isinstance(literal, (str, int, float, bool))
            params.append(Param(param.name, "keyword_only", True, literal, is_literal))
    return StepDef(step.kind, step.function, step.template, tuple(params), step.is_async)


def _plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
