"""Rendering findings: the output formats and the ``--statistics`` / summary texts.

Every format is defined, and registered, in ``_formats`` (see ``_registry``);
importing this package fills :data:`FORMATS`.
"""

from __future__ import annotations

from zart_lint.output import _formats as _formats  # registers the formats
from zart_lint.output._registry import FORMATS, Located, OutputFormat, RenderInput
from zart_lint.output._summary import render_statistics, summary_lines

__all__ = [
    "FORMATS",
    "Located",
    "OutputFormat",
    "RenderInput",
    "render_statistics",
    "summary_lines",
]
