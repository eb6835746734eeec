"""The value every rule produces and every output format consumes.

Positions follow ruff's conventions so editors and CI annotations line up:
lines and columns are 1-based, columns count characters (code points), and an
end position is exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Edit:
    """Replace the text between two positions of the original source."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str


@dataclass(frozen=True)
class Fix:
    """A safe, self-contained rewrite; its edits never overlap each other."""

    message: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    fix: Fix | None = field(default=None, compare=False)

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)
