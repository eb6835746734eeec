"""ZRT005: a step name template that cannot be formatted.

Step names are ``str.format`` templates whose fields name parameters of the
step: ``@step("process-item-{index}")``, ``{item.id}``, ``{index:04d}``. zart
checks the template when the decorator runs and raises ``StepNameError`` at
import time for an unknown field (a typo, a renamed parameter, a positional
``{}`` / ``{0}``) or malformed braces (``"item-{index"``, a lone ``}``, an
unknown ``!x`` conversion) or an empty name. This rule reports the same mistakes before the
module is ever imported.

Fix: name an existing parameter in each field, and double literal braces
(``{{`` / ``}}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from zart_lint.analysis._report import Report
from zart_lint.core._templates import parse_template
from zart_lint.rules._registry import rule

if TYPE_CHECKING:
    from zart_lint.rules._context import RuleContext

CODE = "ZRT005"
NAME = "bad-step-template"
SUMMARY = "Step name template has an unknown field or malformed braces"
FIXABLE = False

VALID = [
    """
from zart import step

@step("process-item-{index}")
async def process_item(index: int, item: dict[str, str]) -> None: ...
""",
    """
from zart import step

@step("order-{order.id}-{attempt:02d}")
async def ship(order: object, attempt: int = 0) -> None: ...
""",
    """
import zart

@zart.step("literal-{{braces}}")
def braces() -> None: ...

@zart.step
def bare() -> None: ...
""",
]

INVALID = [
    """
from zart import step

@step("process-item-{idx}")
async def process_item(index: int, item: dict[str, str]) -> None: ...
""",
    """
from zart import step

@step("process-item-{index")
async def process_item(index: int) -> None: ...
""",
    """
from zart import zart_step

@zart_step("chunk-{}")
async def chunk(number: int) -> None: ...
""",
    """
import zart

@zart.step("render-{page!x}")
def render(page: int) -> str: ...
""",
    """
from zart import step

@step("")
async def unnamed() -> None: ...
""",
]


@rule
def check(ctx: RuleContext) -> Iterator[Report]:
    import libcst as cst

    from zart_lint.analysis._analysis import template_argument

    analysis = ctx.analysis
    for scope in analysis.model.scopes:
        node = scope.node
        if not isinstance(node, cst.FunctionDef):
            continue
        found = analysis.step_decorator(node)
        if found is None or found[1].kind != "step":
            continue
        decorator, step = found
        call = decorator.decorator
        argument = template_argument(call) if isinstance(call, cst.Call) else None
        if argument is None or step.template is None:
            continue
        template = parse_template(step.template)
        params = [param.name for param in step.params]
        if not step.template.strip():
            message = (
                f"the step name of {step.function}() is empty: the decorator raises StepNameError "
                "at import. Name the step, or use a bare @step to name it after the function"
            )
            yield Report(CODE, message, argument.value)
            continue
        if template.error is not None:
            message = (
                f'the step name template "{step.template}" of {step.function}() is malformed '
                f"({template.error}): the decorator raises StepNameError at import. "
                "Double literal braces ({{ and }}) and close every field"
            )
            yield Report(CODE, message, argument.value)
            continue
        unknown = [field for field in dict.fromkeys(template.fields) if field not in params]
        for field in unknown:
            shown = "{" + field + "}"
            if field == "" or field.isdigit():
                problem = f"the positional field {shown}: every field must name a parameter"
            else:
                problem = f"{shown}, which is not a parameter"
            listed = ", ".join(params) if params else "none"
            message = (
                f'the step name template "{step.template}" of {step.function}() uses {problem} '
                f"(parameters: {listed}): the decorator raises StepNameError at import"
            )
            yield Report(CODE, message, argument.value)
