"""What ``lint_source`` does (see ``_api``), kept apart so that importing the
interface does not import libcst: a run answered by the cache never needs it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import libcst as cst

from zart_lint.analysis._analysis import Analysis
from zart_lint.analysis._positions import NodeSpan, spans
from zart_lint.analysis._report import RELATED_LINE, PlannedEdit, Report
from zart_lint.analysis._walker import walk
from zart_lint.core._finding import Edit, Finding, Fix
from zart_lint.core._options import RuleOptions
from zart_lint.project._index import ProjectIndex
from zart_lint.rules import CHECKS, zrt000_syntax_error
from zart_lint.rules._context import RuleContext

_PARSE_LOCK = threading.Lock()


def _trust_the_parser(self: cst.CSTNode) -> None:
    pass


def parse_module(source: str) -> cst.Module:
    """``libcst.parse_module``, without validating every node the parser builds.

    Each libcst node checks its fields when it is constructed (``__post_init__``
    calls ``_validate``), which is meant for trees built by hand: a tree that
    the parser built from source is valid by construction, and checking its
    thousands of nodes again costs some 15% of the parse. The check is switched
    off for the duration of the parse (process-wide: a node another thread
    builds by hand meanwhile is not validated either) and restored afterwards.
    """
    original = cst.CSTNode.__dict__.get("__post_init__")
    if original is None:  # not the libcst this was written for: parse as usual
        return cst.parse_module(source)
    with _PARSE_LOCK:
        cst.CSTNode.__post_init__ = _trust_the_parser  # type: ignore[method-assign]
        try:
            return cst.parse_module(source)
        finally:
            cst.CSTNode.__post_init__ = original  # type: ignore[method-assign]


def lint_source(
    source: str, path: Path, index: ProjectIndex, options: RuleOptions
) -> list[Finding]:
    """``_api.lint_source``."""
    return analyse_source(source, path, index, options)[0]


def analyse_source(
    source: str, path: Path, index: ProjectIndex, options: RuleOptions
) -> tuple[list[Finding], str | None]:
    """``_api.analyse_source``: the findings, and why the file could not be analysed."""
    try:
        module = parse_module(source)
    except (cst.ParserSyntaxError, RecursionError, ValueError) as error:
        notice = zrt000_syntax_error.cannot_analyse(source, error)
        if notice is not None:
            return [], notice
        return [zrt000_syntax_error.finding(source, path, error)], None
    return _findings(module, source, path, index, options), None


def _findings(
    module: cst.Module, source: str, path: Path, index: ProjectIndex, options: RuleOptions
) -> list[Finding]:
    model = None
    try:
        model = walk(module)
        context = RuleContext(Analysis(model, path, index, options))
        reports = [report for check in CHECKS for report in check(context)]
        loops = [loop.node for loop in model.loops if isinstance(loop.node, cst.For)]
        findings = _materialize(module, source, reports, str(path), model.top_level, loops)
    except RecursionError:
        # Pathologically deep nesting (libcst's code generation recurses too):
        # report nothing rather than crash the run.
        return []
    finally:
        if model is not None:
            model.release()
    findings.sort(key=lambda finding: (finding.line, finding.column, finding.code))
    return findings


def _materialize(
    module: cst.Module,
    source: str,
    reports: list[Report],
    path: str,
    top_level: dict[int, int],
    loops: list[cst.For],
) -> list[Finding]:
    wanted: list[cst.CSTNode] = []
    statements: dict[int, int] = {}  # id(node) -> index of its top-level statement, if known
    for report in reports:
        nodes = [report.node]
        if report.end_node is not None:
            nodes.append(report.end_node)
        if report.related is not None:
            nodes.append(report.related)
        if report.fix is not None:
            for edit in report.fix.edits:
                nodes.extend((edit.start, edit.end))
        wanted.extend(nodes)
        statement = top_level.get(id(report.node))
        if statement is not None:  # a report's nodes all lie in one top-level statement
            statements.update((id(node), statement) for node in nodes)
    positions = spans(module, wanted, source, statements, loops if reports else ())
    findings: list[Finding] = []
    for report in reports:
        start = positions[id(report.node)].inner
        end = positions[id(report.end_node if report.end_node is not None else report.node)].inner
        message = report.message
        if report.related is not None:
            message = message.replace(RELATED_LINE, str(positions[id(report.related)].inner[0]))
        fix = None
        if report.fix is not None:
            edits = tuple(sorted(_edit(edit, positions) for edit in report.fix.edits))
            fix = Fix(report.fix.message, edits)
        findings.append(
            Finding(
                code=report.code,
                message=message,
                path=path,
                line=start[0],
                column=start[1],
                end_line=end[2],
                end_column=end[3],
                fix=fix,
            )
        )
    return findings


def _edit(edit: PlannedEdit, positions: dict[int, NodeSpan]) -> Edit:
    start, end = positions[id(edit.start)].outer, positions[id(edit.end)].outer
    line, column = (start[0], start[1]) if edit.start_side == "start" else (start[2], start[3])
    end_line, end_column = (end[0], end[1]) if edit.end_side == "start" else (end[2], end[3])
    return Edit(line, column, end_line, end_column, edit.content)
