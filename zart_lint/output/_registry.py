"""The output format registry: each format is registered once, where it is defined.

A format is a function from :class:`RenderInput` to the complete text of the
report, decorated with :func:`output_format`. The CLI takes its
``--output-format`` choices from :data:`FORMATS` (in registration order) and
asks the chosen format how the report is to be accompanied (summary, notes,
color); nothing else lists the formats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from zart_lint.core._finding import Finding
from zart_lint.core._rule_info import RuleInfo


@dataclass(frozen=True)
class Located:
    """A finding with what the formats need to know about its file."""

    finding: Finding
    abs_path: str  # absolute path, or the display name for stdin
    repo_path: str | None  # POSIX path relative to the repository root, if inside it


@dataclass(frozen=True)
class RenderInput:
    """Everything a format may use."""

    items: Sequence[Located]
    rules: Mapping[str, RuleInfo]  # every rule that can be reported in this run, by code
    lines_of: Callable[[Located], Sequence[str]]  # the lines of a finding's file
    repo_root: Path
    show_source: bool = True
    color: bool = False


Renderer = Callable[[RenderInput], str]


@dataclass(frozen=True)
class OutputFormat:
    name: str
    render: Renderer
    # Read by people: the CLI adds the summary ("Found 2 errors.") and the fix notes.
    for_people: bool
    # The summary and notes go into the report itself rather than to stderr.
    notes_in_report: bool
    # Colored when written to a terminal.
    color: bool
    # --statistics is printed as JSON as well.
    json_statistics: bool


FORMATS: dict[str, OutputFormat] = {}


def output_format(
    name: str,
    *,
    for_people: bool = False,
    notes_in_report: bool = False,
    color: bool = False,
    json_statistics: bool = False,
) -> Callable[[Renderer], Renderer]:
    """Register the decorated renderer as ``--output-format NAME``."""

    def decorate(render: Renderer) -> Renderer:
        if name in FORMATS:
            raise RuntimeError(f"two output formats are registered as {name!r}")
        FORMATS[name] = OutputFormat(
            name, render, for_people, notes_in_report, color, json_statistics
        )
        return render

    return decorate
