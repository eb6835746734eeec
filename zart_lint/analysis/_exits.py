"""Does a call in a loop body run again in a later iteration? (early exits)

A step called in a loop under a constant name is only the cached-result bug if
it can run twice. When every path from the call leaves the loop -- a
``break``, ``return`` or ``raise`` after it, in the same block or in every
branch of an ``if`` after it -- it runs at most once per run of the loop. A
``break`` leaves only that loop: an enclosing loop may run it again, so the
question is asked again there. A call inside a ``try`` block can also leave
through an exception to a handler that lets the loop go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import libcst as cst

from zart_lint.analysis._model import Loop
from zart_lint.analysis._walker import child_nodes

Exit = Literal["break", "return", "continue"]
_SUITES = (cst.IndentedBlock, cst.SimpleStatementSuite, cst.SimpleStatementLine)


def effective_loop(call: cst.Call, loop: Loop | None) -> Loop | None:
    """The innermost loop in which ``call`` can run more than once, or None."""
    node: cst.CSTNode = call
    while loop is not None:
        kind = _after(node, loop)
        if kind is None or kind == "continue":
            return loop
        if kind == "return":
            return None
        node, loop = loop.node, loop.parent  # break: can the enclosing loop run it again?
    return None


def _after(node: cst.CSTNode, loop: Loop) -> Exit | None:
    """How the iteration ends after ``node`` on every path (None: it may go on)."""
    body = getattr(loop.node, "body", None)
    if not isinstance(loop.node, (cst.For, cst.While)) or body is None:
        return None  # a comprehension: no way out
    path = _path(body, node)
    if path is None:
        return None  # in a while loop's condition
    for depth in range(len(path) - 2, -1, -1):
        parent, child = path[depth], path[depth + 1]
        kind: Exit | None = None
        if isinstance(child, (cst.Return, cst.Raise)):
            kind = "return"
        elif isinstance(parent, _SUITES):
            statements: Sequence[cst.CSTNode] = parent.body
            kind = _leaves(statements[statements.index(child) + 1 :])
        if kind is not None:
            # The call may raise instead: a try around the exit's block catches it.
            return _through_handlers(kind, path[: depth + 1])
    return None


def _through_handlers(kind: Exit, inner: list[cst.CSTNode]) -> Exit | None:
    """``kind``, unless a ``try`` whose block holds the exit has a handler that lets
    the iteration go on (the call raised, the handler swallowed it)."""
    if kind == "continue":
        return kind
    for index, node in enumerate(inner[:-1]):
        if isinstance(node, (cst.Try, cst.TryStar)) and inner[index + 1] is node.body:
            handlers = [_leaves(handler.body.body) for handler in node.handlers]
            if any(handler not in ("break", "return") for handler in handlers):
                return None
            if "break" in handlers:
                kind = "break"
    return kind


def _path(top: cst.CSTNode, target: cst.CSTNode) -> list[cst.CSTNode] | None:
    """The nodes from ``top`` down to ``target`` (a depth-first search)."""
    stack: list[tuple[cst.CSTNode, list[cst.CSTNode]]] = [(top, [top])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        for child in child_nodes(node):
            stack.append((child, [*path, child]))
    return None


def _leaves(statements: Sequence[cst.CSTNode]) -> Exit | None:
    """How a sequence of statements ends on every path, if it always leaves."""
    for statement in statements:
        kind = _statement_leaves(statement)
        if kind is not None:
            return kind
    return None


def _statement_leaves(statement: cst.CSTNode) -> Exit | None:
    if isinstance(statement, cst.SimpleStatementLine):
        return _leaves(statement.body)
    if isinstance(statement, cst.Break):
        return "break"
    if isinstance(statement, cst.Continue):
        return "continue"
    if isinstance(statement, (cst.Return, cst.Raise)):
        return "return"
    if isinstance(statement, cst.With):
        return _leaves(statement.body.body)
    if isinstance(statement, cst.If):
        return _if_leaves(statement)
    return None


def _if_leaves(statement: cst.If) -> Exit | None:
    kinds = [_leaves(statement.body.body)]
    orelse = statement.orelse
    if orelse is None:
        return None
    if isinstance(orelse, cst.If):
        kinds.append(_if_leaves(orelse))
    else:
        kinds.append(_leaves(orelse.body.body))
    if any(kind is None for kind in kinds):
        return None
    if "continue" in kinds:
        return "continue"
    return "return" if all(kind == "return" for kind in kinds) else "break"
