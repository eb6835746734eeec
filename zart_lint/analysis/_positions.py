"""Source positions, computed only for the few nodes that findings and fixes need.

libcst's ``PositionProvider`` records a range for every node of the module and
costs more than the parse itself. Findings need a handful of positions, found
as cheaply as possible (libcst round-trips code exactly, so a node's generated
code is its text in the source):

1. an expression whose code fits on one line and occurs exactly once in the
   source is placed there: only the expression itself is regenerated;
2. otherwise the top-level statement holding it is regenerated, up to the end
   of the last wanted node in it (counting lines only when a wanted node starts
   or ends), and placed by finding that text in the source; when the partial
   text is not unique in what remains of the file, the whole statement is
   generated, and when even that is not unique, the whole module.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass

import libcst as cst
from libcst._nodes.internal import CodegenState

from zart_lint.analysis._walker import child_nodes

# 1-based line and column of the start, and of the (exclusive) end.
Span = tuple[int, int, int, int]
_Point = tuple[int, int]  # 1-based line, 0-based column, relative to the generated code


@dataclass(frozen=True)
class NodeSpan:
    # Everything the node owns, its parentheses included: what an edit replaces.
    outer: Span
    # libcst's PositionProvider range (inside the parentheses of an expression):
    # what a finding points at. Only expressions get it; other nodes, whose
    # syntactic range libcst derives from their children, fall back to ``outer``.
    inner: Span


_NEWLINE = re.compile(r"\r\n?|\n")


class _AllFound(Exception):
    pass


class _PositionState(CodegenState):
    def __init__(self, module: cst.Module, wanted: set[int], *, stop_early: bool = True) -> None:
        super().__init__(
            default_indent=module.default_indent, default_newline=module.default_newline
        )
        self._wanted = wanted
        self._remaining = len(wanted) if stop_early else -1
        self._consumed = 0  # tokens already counted into _line / _column
        self._line = 1
        self._column = 0  # 0-based, in code points
        self.starts: dict[int, _Point] = {}
        self.ends: dict[int, _Point] = {}
        self.inner: dict[int, tuple[_Point, _Point]] = {}

    def _position(self) -> tuple[int, int]:
        tokens = self.tokens
        if self._consumed < len(tokens):
            text = "".join(tokens[self._consumed :])
            self._consumed = len(tokens)
            lines = _NEWLINE.split(text)
            if len(lines) == 1:
                self._column += len(text)
            else:
                self._line += len(lines) - 1
                self._column = len(lines[-1])
        return self._line, self._column

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self._wanted:
            self.starts[id(node)] = self._position()

    @contextlib.contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        key = id(node)
        if key not in self._wanted or start_node is not None or end_node is not None:
            yield
            return
        start = self._position()
        yield
        self.inner[key] = (start, self._position())

    def after_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self._wanted and key not in self.ends:
            self.ends[key] = self._position()
            self._remaining -= 1
            if self._remaining == 0:
                raise _AllFound


def spans(
    module: cst.Module,
    nodes: Iterable[cst.CSTNode],
    source: str,
    statements: dict[int, int] | None = None,
    loops: Iterable[cst.For] = (),
) -> dict[int, NodeSpan]:
    """id(node) -> its span, for each of ``nodes`` (all in ``module``, parsed from ``source``).

    ``statements`` may tell, for some nodes (by id), the index in ``module.body``
    of the top-level statement holding them; the others are searched for.
    ``loops`` are ``for`` loops whose target or iterable may be among ``nodes``
    (fixes rewrite loop headers): a short target such as ``x`` is rarely unique
    in a file, but the header ``for x in xs:`` usually is.
    """
    by_id = {id(node): node for node in nodes}
    if not by_id:
        return {}
    lines = _LineStarts(source)
    result: dict[int, NodeSpan] = {}
    for key, node in by_id.items():
        found = _by_text(module, node, source, lines)
        if found is not None:
            result[key] = found
    for loop in loops:
        keys = {id(loop.target), id(loop.iter)} & by_id.keys()
        if keys - result.keys():
            for key, span in _by_header(module, loop, source, lines).items():
                if key in keys:
                    result.setdefault(key, span)
    wanted = by_id.keys() - result.keys()
    if wanted:
        placed = _by_statement(module, wanted, source, statements or {}, lines)
        result.update(placed if placed is not None else _whole_module(module, wanted))
    return result


class _LineStarts:
    """Offsets at which the lines of a text start, computed when first needed."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None

    def locate(self, offset: int) -> tuple[int, int]:
        """1-based line and 0-based column of an offset."""
        if self._starts is None:
            self._starts = [0, *(match.end() for match in _NEWLINE.finditer(self._text))]
        index = bisect.bisect_right(self._starts, offset) - 1
        return index + 1, offset - self._starts[index]


def _by_text(
    module: cst.Module, node: cst.CSTNode, source: str, lines: _LineStarts
) -> NodeSpan | None:
    """The span of an expression whose one-line code occurs exactly once in ``source``.

    The code libcst generates for an expression on its own equals its text in
    the file as long as it holds no line break (only indentation, which follows
    a line break, depends on where a node sits).
    """
    if not isinstance(node, cst.BaseExpression):
        return None
    state = _PositionState(module, {id(node)}, stop_early=False)
    node._codegen(state)
    code = "".join(state.tokens)
    if not code or "\n" in code or "\r" in code:
        return None
    found = source.find(code)
    if found < 0 or source.find(code, found + 1) >= 0:
        return None
    return _span(state, id(node), *lines.locate(found))


def _whole_module(module: cst.Module, wanted: set[int]) -> dict[int, NodeSpan]:
    state = _PositionState(module, wanted)
    with contextlib.suppress(_AllFound):  # stop once every wanted node has been seen
        module._codegen(state)
    return {key: _span(state, key, 1, 0) for key in state.ends}


def _by_header(
    module: cst.Module, loop: cst.For, source: str, lines: _LineStarts
) -> dict[int, NodeSpan]:
    """Spans of a ``for`` loop's target and iterable, when its header is one unique line.

    The header is generated from ``for`` to the colon exactly as ``For._codegen_impl``
    does; like an expression's, its text does not depend on where the loop sits.
    """
    wanted = {id(loop.target), id(loop.iter)}
    state = _PositionState(module, wanted, stop_early=False)
    state.add_token("for")
    loop.whitespace_after_for._codegen(state)
    loop.target._codegen(state)
    loop.whitespace_before_in._codegen(state)
    state.add_token("in")
    loop.whitespace_after_in._codegen(state)
    loop.iter._codegen(state)
    loop.whitespace_before_colon._codegen(state)
    state.add_token(":")
    code = "".join(state.tokens)
    if "\n" in code or "\r" in code:
        return {}
    found = source.find(code)
    if found < 0 or source.find(code, found + 1) >= 0:
        return {}
    line, column = lines.locate(found)
    return {key: _span(state, key, line, column) for key in wanted}


def _by_statement(
    module: cst.Module,
    wanted: Set[int],
    source: str,
    statements: dict[int, int],
    lines: _LineStarts | None = None,
) -> dict[int, NodeSpan] | None:
    lines = lines if lines is not None else _LineStarts(source)
    remaining = set(wanted)
    hinted: dict[int, set[int]] = {}
    for key in wanted:
        if key in statements:
            hinted.setdefault(statements[key], set()).add(key)
    unhinted = remaining - statements.keys()
    result: dict[int, NodeSpan] = {}
    offset = 0
    for index, statement in enumerate(module.body):
        if not remaining:
            break
        inside = hinted.get(index, set())
        if unhinted:
            found_here = _present(statement, unhinted)
            unhinted -= found_here
            inside = inside | found_here
        if not inside:
            continue
        placed = _place(module, statement, inside, source, offset, stop_early=True)
        if placed is None:  # the text up to the last wanted node is not unique
            placed = _place(module, statement, inside, source, offset, stop_early=False)
        if placed is None:
            return None  # not placeable with certainty
        state, found, offset = placed
        base_line, base_column = lines.locate(found)
        for key in inside:
            result[key] = _span(state, key, base_line, base_column)
        remaining -= inside
    return result if not remaining else None


def _place(
    module: cst.Module,
    statement: cst.CSTNode,
    inside: set[int],
    source: str,
    offset: int,
    *,
    stop_early: bool,
) -> tuple[_PositionState, int, int] | None:
    """Generate a statement (or its start, up to the wanted nodes) and find it in the source.

    Returns the state, where the statement starts and where its generated text
    ends; None when that text is not found exactly once from ``offset`` on.
    """
    state = _PositionState(module, inside, stop_early=stop_early)
    with contextlib.suppress(_AllFound):
        statement._codegen(state)
    code = "".join(state.tokens)
    found = source.find(code, offset)
    if found < 0 or source.find(code, found + 1) >= 0:
        return None
    return state, found, found + len(code)


def _span(state: _PositionState, key: int, base_line: int, base_column: int) -> NodeSpan:
    """Spans of a node, from positions relative to where the generated code starts."""

    def absolute(start: _Point, end: _Point) -> Span:
        (line, column), (end_line, end_column) = start, end
        if line == 1:
            column += base_column
        if end_line == 1:
            end_column += base_column
        return (base_line + line - 1, column + 1, base_line + end_line - 1, end_column + 1)

    outer = absolute(state.starts[key], state.ends[key])
    inner = state.inner.get(key)
    return NodeSpan(outer, absolute(*inner) if inner is not None else outer)


def _present(root: cst.CSTNode, wanted: set[int]) -> set[int]:
    """The ids in ``wanted`` of nodes inside ``root``."""
    found: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in wanted:
            found.add(id(node))
        stack.extend(child_nodes(node))
    return found
