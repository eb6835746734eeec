"""What a rule reports, before positions are known (see ``_positions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import libcst as cst

# Stands for the line of ``Report.related`` in a message; replaced once positions are known.
RELATED_LINE = "\x00related-line\x00"


@dataclass(frozen=True)
class PlannedEdit:
    """Replace the source from one node's start/end to another node's start/end."""

    start: cst.CSTNode
    start_side: Literal["start", "end"]
    end: cst.CSTNode
    end_side: Literal["start", "end"]
    content: str

    @classmethod
    def replace(cls, node: cst.CSTNode, content: str) -> PlannedEdit:
        return cls(node, "start", node, "end", content)

    @classmethod
    def insert_after(cls, node: cst.CSTNode, content: str) -> PlannedEdit:
        return cls(node, "end", node, "end", content)


@dataclass(frozen=True)
class FixPlan:
    message: str
    edits: tuple[PlannedEdit, ...]


@dataclass(frozen=True)
class Report:
    """One finding. All of its nodes lie in the top-level statement holding ``node``."""

    code: str
    message: str
    node: cst.CSTNode  # the finding starts where this node starts ...
    end_node: cst.CSTNode | None = None  # ... and ends where this one ends (default: node)
    fix: FixPlan | None = None
    related: cst.CSTNode | None = None  # its line replaces RELATED_LINE in the message
