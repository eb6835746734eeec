"""The ZRT001 / ZRT002 fixes: applied, the code still parses and the finding is gone."""

from __future__ import annotations

import ast
import itertools
import textwrap

import pytest

from zart_lint import Edit, Finding

from lint_helpers import lint

HEADER = """
import zart
from zart import durable, step

@step("send-notification")
async def send(user): ...

@step("braces-{{literal}}")
async def braces(user): ...
"""


def apply(source: str, findings: list[Finding]) -> str:
    """Apply every fix: identical edits once, any other overlap is a test failure."""
    edits = sorted({edit for finding in findings if finding.fix for edit in finding.fix.edits})
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1

    spans = [(offset(e.line, e.column), offset(e.end_line, e.end_column), e.content) for e in edits]
    spans.sort()
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert end <= start, f"overlapping edits: {edits}"
    for start, end, content in reversed(spans):
        source = source[:start] + content + source[end:]
    return source


def fixed(body: str, code: str) -> tuple[str, list[Finding]]:
    source = HEADER + textwrap.dedent(body)
    findings = [f for f in lint(source) if f.code == code]
    assert findings, "expected a finding to fix"
    assert all(f.fix is not None for f in findings), findings
    result = apply(source, findings)
    ast.parse(result)
    assert [f.code for f in lint(result) if f.code in ("ZRT001", "ZRT002", "ZRT003")] == []
    return result[len(HEADER) :], findings


def test_adds_enumerate_and_named() -> None:
    result, findings = fixed(
        """
        async def flow(users):
            for user in users:
                await send(user)
        """,
        "ZRT001",
    )
    assert "for i, user in enumerate(users):" in result
    assert 'await send(user).named(f"send-notification-{i}")' in result
    assert findings[0].fix is not None
    assert findings[0].fix.message == 'Add .named(f"send-notification-{i}") and enumerate the loop'


def test_reuses_existing_enumerate_index() -> None:
    result, findings = fixed(
        """
        async def flow(users):
            for n, user in enumerate(users, start=1):
                await send(user)
        """,
        "ZRT001",
    )
    assert 'await send(user).named(f"send-notification-{n}")' in result
    assert findings[0].fix is not None and len(findings[0].fix.edits) == 1


def test_reuses_range_target() -> None:
    result, _ = fixed(
        """
        async def flow():
            for attempt in range(3):
                await send("ops")
        """,
        "ZRT001",
    )
    assert 'await send("ops").named(f"send-notification-{attempt}")' in result
    assert "enumerate" not in result


def test_index_name_avoids_names_in_use() -> None:
    result, _ = fixed(
        """
        async def flow(users, i):
            idx = 0
            for user in users:
                await send(user)
        """,
        "ZRT001",
    )
    assert "for index, user in enumerate(users):" in result


def test_nested_loops_get_every_index() -> None:
    result, _ = fixed(
        """
        async def flow(groups):
            for group in groups:
                for a, b in group.pairs:
                    await send(a)
        """,
        "ZRT001",
    )
    assert "for i, group in enumerate(groups):" in result
    assert "for idx, (a, b) in enumerate(group.pairs):" in result
    assert 'await send(a).named(f"send-notification-{i}-{idx}")' in result


def test_sibling_loops_reuse_the_index_name() -> None:
    result, _ = fixed(
        """
        async def flow(users, admins):
            for user in users:
                await send(user)
            for admin in admins:
                for group in admin.groups:
                    await send(group)
        """,
        "ZRT001",
    )
    assert "for i, user in enumerate(users):" in result
    assert "for i, admin in enumerate(admins):" in result
    assert "for idx, group in enumerate(admin.groups):" in result


def test_several_findings_share_one_header_edit() -> None:
    source = HEADER + textwrap.dedent(
        """
        async def flow(users):
            for user in users:
                await send(user)
                await send(user).named("again")
        """
    )
    findings = [f for f in lint(source) if f.fix]
    assert [f.code for f in findings] == ["ZRT001", "ZRT002"]
    headers = [next(e for e in f.fix.edits if "enumerate" in e.content) for f in findings if f.fix]
    assert headers[0] == headers[1]
    combined = apply(source, findings)
    assert 'await send(user).named(f"send-notification-{i}")' in combined
    assert 'await send(user).named(f"again-{i}")' in combined
    assert combined.count("enumerate") == 1
    assert lint(combined) == []


def test_named_literal_and_constant_variable() -> None:
    result, _ = fixed(
        """
        LABEL = "notify"

        async def flow(users):
            for i, user in enumerate(users):
                await send(user).named('send')
                await send(user).named(LABEL)
        """,
        "ZRT002",
    )
    assert 'await send(user).named(f"send-{i}")' in result
    assert 'await send(user).named(f"{LABEL}-{i}")' in result


def test_primitive_literal_name() -> None:
    result, _ = fixed(
        """
        async def flow(jobs):
            for job in jobs:
                await zart.sleep("backoff", 5)
                await zart.run_child(flow, job, name="child")
        """,
        "ZRT001",
    )
    assert 'await zart.sleep(f"backoff-{i}", 5)' in result
    assert 'await zart.run_child(flow, job, name=f"child-{i}")' in result


def test_braces_in_constant_name_are_escaped() -> None:
    result, _ = fixed(
        """
        async def flow(users):
            for user in users:
                await braces(user)
        """,
        "ZRT001",
    )
    assert 'named(f"braces-{{literal}}-{i}")' in result


def test_multiline_iterable_and_tuple_iterable() -> None:
    result, _ = fixed(
        """
        async def flow(a, b):
            for user in (
                a  # first
                + b
            ):
                await send(user)
            for other in a, b:
                await send(other)
        """,
        "ZRT001",
    )
    assert "# first" in result
    assert "enumerate((a, b))" in result


@pytest.mark.parametrize(
    "body",
    [
        "async def flow(users):\n    while users:\n        await send(users.pop())\n",
        "async def flow(users):\n    return [await send(u) for u in users]\n",
        "async def flow(users):\n    async for user in users:\n        await send(user)\n",
        "async def flow(users):\n    for first, *rest in users:\n        await send(first)\n",
        "async def flow(users, box):\n    for box.user in users:\n        await send(box.user)\n",
        'async def flow(users):\n    for user in users:\n        print(f"{await send(user)}")\n',
        "enumerate = None\nasync def flow(us):\n    for u in us:\n        await send(u)\n",
        "async def flow(us):\n    for u in us:\n        while True:\n            await send(u)\n",
    ],
)
def test_no_fix_when_unusual(body: str) -> None:
    findings = [f for f in lint(HEADER + body) if f.code == "ZRT001"]
    assert findings
    assert all(f.fix is None for f in findings)


def test_edits_are_one_based_and_exclusive() -> None:
    source = HEADER + "async def flow(us):\n    for u in us:\n        await send(u)\n"
    finding = next(f for f in lint(source) if f.code == "ZRT001")
    assert finding.fix is not None
    header, call = sorted(finding.fix.edits)
    line = source.splitlines()[header.line - 1]
    assert line[header.column - 1 : header.end_column - 1] == "u in us"
    assert call == Edit(call.line, call.column, call.line, call.column, call.content)
    assert source.splitlines()[call.line - 1][: call.column - 1].endswith("send(u)")
