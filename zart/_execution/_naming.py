"""Step-name templates: validated when the decorator runs, rendered per call.

A template uses ``str.format`` field syntax and every field's first component
must be a parameter of the step function, so ``"process-item-{index}"``,
``"user-{user.id}"`` and ``"chunk-{n:04d}"`` are fine and ``"item-{idx}"`` on a
function without ``idx`` is rejected at import time, not on the first call.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Mapping
from typing import Any

from zart._errors import StepNameError
from zart._execution._identifiers import check_step_name

_FORMATTER = string.Formatter()


class _Anything:
    """Stands in for any argument while a template's field syntax is checked."""

    def __getattr__(self, name: str) -> _Anything:
        return self

    def __getitem__(self, key: object) -> _Anything:
        return self


_ANYTHING = _Anything()


def _field_root(field_name: str) -> str:
    """``"item.id"`` → ``"item"``, ``"rows[0]"`` → ``"rows"``."""
    for i, ch in enumerate(field_name):
        if ch in ".[":
            return field_name[:i]
    return field_name


def template_fields(template: str, *, _depth: int = 0, _whole: str = "") -> list[str]:
    """The root parameter names a template refers to, in order, de-duplicated.

    Raises StepNameError for malformed braces or positional fields.
    """
    if _depth > 1:
        # str.format allows one level of fields inside a format spec ({x:{width}});
        # deeper ones fail on every call ("Max string recursion exceeded").
        raise StepNameError(
            f"malformed step name template {_whole or template!r}: a format spec may hold fields "
            "only one level deep, e.g. {x:{width}}"
        )
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise StepNameError(f"malformed step name template {template!r}: {exc}") from None
    roots: list[str] = []
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        root = _field_root(field_name)
        if not root or root.isdigit():
            raise StepNameError(
                f"step name template {template!r} uses a positional field "
                f"{{{field_name}}}; name a parameter instead, e.g. {{index}}"
            )
        # Malformed attribute/index parts ({item.}, {rows[0]x}) and conversions ({x!z})
        # would otherwise only fail on the first call.
        if conversion not in (None, "r", "s", "a"):
            raise StepNameError(
                f"malformed step name template {template!r}: unknown conversion !{conversion} "
                "(use !r, !s or !a)"
            )
        try:
            _FORMATTER.get_field(field_name, (), {root: _ANYTHING})
        except ValueError as exc:
            raise StepNameError(f"malformed step name template {template!r}: {exc}") from None
        if format_spec and "{" in format_spec:
            # Nested fields in a format spec, e.g. {x:{width}}: check those too.
            for nested in template_fields(
                format_spec, _depth=_depth + 1, _whole=_whole or template
            ):
                if nested not in roots:
                    roots.append(nested)
        if root not in roots:
            roots.append(root)
    return roots


class NameTemplate:
    """A compiled step-name template bound to one function's signature."""

    __slots__ = ("_positions", "_signature", "fields", "is_constant", "template")

    def __init__(self, template: str, fn: Callable[..., Any]) -> None:
        if not isinstance(template, str) or not template.strip():
            raise StepNameError(
                f"step name for {fn.__qualname__} must be a non-empty string, got {template!r}"
            )
        self.template = template
        self.fields = template_fields(template)
        self.is_constant = not self.fields
        self._signature = inspect.signature(fn)
        params = self._signature.parameters
        unknown = [f for f in self.fields if f not in params]
        if unknown:
            available = ", ".join(params) or "none"
            fields = ", ".join("{" + u + "}" for u in unknown)
            raise StepNameError(
                f"step name template {template!r} on {fn.__qualname__} refers to unknown "
                f"field{'s' if len(unknown) > 1 else ''} {fields}; "
                f"parameters are: {available}"
            )
        # Fast path for the common case: every field is a plain positional-or-keyword
        # parameter, so the value is args[pos] or kwargs[name] without a full bind().
        positions: dict[str, int] = {}
        for pos, (name, p) in enumerate(params.items()):
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positions[name] = pos
        self._positions = positions
        if self.is_constant:
            # "{{" escapes still need un-escaping.
            self.template = template.format()

    def render(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        if self.is_constant:
            return self.template
        values: dict[str, Any] = {}
        needs_bind = False
        for name in self.fields:
            if name in kwargs:
                values[name] = kwargs[name]
                continue
            pos = self._positions.get(name)
            if pos is not None and pos < len(args):
                values[name] = args[pos]
            else:
                needs_bind = True
                break
        if needs_bind:
            try:
                bound = self._signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"cannot name step {self.template!r}: {exc}") from None
            bound.apply_defaults()
            values = {name: bound.arguments[name] for name in self.fields}
        try:
            return self.template.format(**values)
        except Exception as exc:  # attribute missing on the value, bad format spec...
            raise StepNameError(
                f"cannot render step name {self.template!r} with {values!r}: {exc}"
            ) from None


def check_name(name: object, what: str = "step name") -> str:
    """A step, primitive or durable-call name within zart's limits (see _identifiers)."""
    return check_step_name(name, what)
