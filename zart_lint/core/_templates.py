"""Step-name templates: ``str.format`` field syntax, checked like the runtime does.

Shared by ZRT005 (is the template valid?) and by the loop rules (which
parameters does the name depend on?).
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass

_FORMATTER = string.Formatter()
_CONVERSIONS = frozenset({None, "r", "s", "a"})
# What may follow a field's first component: ".attr" and "[key]" parts.
_FIELD_ROOT = re.compile(r"[^.\[]*")
_FIELD_REST = re.compile(r"(?:\.[^.\[]+|\[[^\]]+\])*")


@dataclass(frozen=True)
class Template:
    text: str
    # First component of every replacement field, in order ("item" for "{item.id}").
    # Auto-numbered ("{}") and numbered ("{0}") fields appear as "" and "0".
    fields: tuple[str, ...]
    # Why the template cannot be formatted at all (malformed braces ...), else None.
    error: str | None

    @property
    def is_constant(self) -> bool:
        return self.error is None and not self.fields

    def constant_value(self) -> str:
        """The name a constant template produces (``{{`` unescaped)."""
        return self.text.format()


@functools.lru_cache(maxsize=1024)
def parse_template(text: str) -> Template:
    fields: list[str] = []
    try:
        _collect_fields(text, fields, nesting=0)
    except ValueError as exc:
        return Template(text, (), str(exc))
    return Template(text, tuple(fields), None)


def _collect_fields(text: str, out: list[str], nesting: int) -> None:
    for _literal, field, spec, conversion in _FORMATTER.parse(text):
        if field is None:
            continue
        if nesting > 1:
            # str.format allows one level of fields inside a format spec, no more.
            raise ValueError("Max string recursion exceeded")
        if conversion not in _CONVERSIONS:
            raise ValueError(f"Unknown conversion specifier {conversion}")
        root = _FIELD_ROOT.match(field)
        assert root is not None  # matches the empty string at least
        if not _FIELD_REST.fullmatch(field, root.end()):
            raise ValueError(
                f"Malformed field {{{field}}}: expected .attribute or [key] after the name"
            )
        out.append(root.group())
        if spec:
            _collect_fields(spec, out, nesting + 1)


def render(text: str, values: dict[str, object]) -> str | None:
    """Format a template with literal argument values; None when that fails."""
    try:
        return text.format(**values)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return None
