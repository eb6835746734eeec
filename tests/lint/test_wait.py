"""``zart.wait`` (a journaled ``asyncio.wait``) and the races ZRT007 reports.

``zart.wait`` shares the step name space, but its name is an optional
keyword-only ``name=``: a call without it is named by its order in the run
(``zart.wait-<n>``) and so never repeats a name. ``asyncio.wait``,
``asyncio.as_completed`` and ``asyncio.wait_for`` directly in a durable body do
not replay the same way: ZRT007.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zart_lint.engine._api import ProjectIndex, RuleOptions, lint_source

from lint_helpers import codes, lint, write_tree

STEPS = """
import asyncio
import zart
from zart import durable, step

@step("ping-{host}")
async def ping(host): ...

@step("fixed")
async def fixed(): ...
"""


def in_durable(body: str, imports: str = "") -> str:
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f'{STEPS}{imports}\n@durable("flow")\nasync def flow(hosts, region):\n{indented}\n'


def found(body: str, imports: str = "") -> list[tuple[str, str]]:
    """(code, source line) of every finding in a durable built around ``body``."""
    source = in_durable(body, imports)
    lines = source.splitlines()
    return [(f.code, lines[f.line - 1].strip()) for f in lint(source)]


# -- zart.wait: recognition ------------------------------------------------------------


@pytest.mark.parametrize(
    ("imports", "callee"),
    [
        ("", "zart.wait"),
        ("import zart as z", "z.wait"),
        ("from zart import wait", "wait"),
        ("from zart import wait as race", "race"),
        ("from zart import *", "wait"),
        ("race = zart.wait", "race"),
        ("import zart as z\nrace = z.wait", "race"),
    ],
)
def test_wait_is_recognised_through_imports_and_aliases(imports: str, callee: str) -> None:
    body = f"""
for host in hosts:
    await {callee}([ping(host)], name="race")
    await {callee}([ping(host)])
"""
    assert found(body, imports) == [("ZRT001", f'await {callee}([ping(host)], name="race")')]


def test_wait_aliased_in_another_module(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'demo'\n",
            "pkg/__init__.py": "",
            "pkg/compat.py": "import zart\n\nrace = zart.wait\n",
            "pkg/flows.py": """
                from zart import durable

                from .compat import race

                @durable("flow")
                async def flow(groups):
                    for group in groups:
                        await race(group, name="race")
                        await race(group)
                """,
        },
    )
    path = root / "pkg" / "flows.py"
    options = RuleOptions()
    index = ProjectIndex.build(ProjectIndex.find_root(path), options)
    assert codes(lint_source(path.read_text(), path, index, options)) == ["ZRT001"]


def test_asyncio_wait_is_not_the_primitive() -> None:
    """``asyncio.wait`` in a loop is a race (ZRT007), not a constant-named primitive."""
    body = """
for host in hosts:
    await wait([ping(host)])
"""
    assert found(body, "from asyncio import wait") == [("ZRT007", "await wait([ping(host)])")]


# -- zart.wait: naming ---------------------------------------------------------------------


def test_wait_names_in_loops() -> None:
    body = """
name = "shared"
for i, host in enumerate(hosts):
    await zart.wait([ping(host)], return_when=asyncio.FIRST_COMPLETED)
    await zart.wait([ping(host)], timeout=5, name="race")
    await zart.wait([ping(host)], name=name)
    await zart.wait([ping(host)], name=f"race-{region}")
    await zart.wait([ping(host)], name=f"race-{i}")
    await zart.wait([ping(host)], name=None)
    await zart.wait([ping(host)], **{"name": "hidden"})
"""
    assert found(body) == [
        ("ZRT001", 'await zart.wait([ping(host)], timeout=5, name="race")'),
        ("ZRT002", "await zart.wait([ping(host)], name=name)"),
        ("ZRT003", 'await zart.wait([ping(host)], name=f"race-{region}")'),
    ]


def test_wait_loop_messages_offer_leaving_the_name_out() -> None:
    body = """
for host in hosts:
    await zart.wait([ping(host)], name="race")
"""
    (finding,) = lint(in_durable(body))
    assert 'under the constant name "race"' in finding.message
    assert "leave out name=" in finding.message
    sleep = lint(in_durable('for host in hosts:\n    await zart.sleep("nap", 1)'))
    assert [f.code for f in sleep] == ["ZRT001"]
    assert "leave out name=" not in sleep[0].message  # zart.sleep's name is required


def test_unnamed_waits_never_repeat() -> None:
    body = """
await zart.wait([ping("a")])
await zart.wait([ping("b")])
while True:
    await zart.wait([ping(hosts.pop())], timeout=1)
"""
    assert found(body) == []


def test_wait_shares_the_step_name_space() -> None:
    body = """
await zart.wait([ping("a")], name="race")
await zart.wait([ping("b")], name="race")
await zart.sleep("fixed", 1)
await zart.wait([ping("c")], name="fixed")
if region:
    await zart.wait([ping("d")], name="branch")
else:
    await zart.wait([ping("e")], name="branch")
"""
    assert found(body) == [
        ("ZRT004", 'await zart.wait([ping("b")], name="race")'),
        ("ZRT004", 'await zart.wait([ping("c")], name="fixed")'),
    ]
    messages = [f.message for f in lint(in_durable(body))]
    assert 'e.g. name="race-2", or leave out name=' in messages[0]


def test_duplicate_step_name_message_fits_the_callee() -> None:
    body = """
await fixed()
await fixed()
await zart.sleep("nap", 1)
await zart.sleep("nap", 1)
"""
    first, second = lint(in_durable(body))
    assert 'e.g. .named("fixed-2")' in first.message
    assert 'e.g. name="nap-2"' in second.message
    assert "leave out" not in first.message + second.message


def test_wait_inside_a_step_body_is_zrt008() -> None:
    source = (
        STEPS
        + """
@step("outer")
async def outer(aws):
    await zart.wait(aws)
    await zart.wait(aws, name="race")
"""
    )
    assert codes(lint(source)) == ["ZRT008", "ZRT008"]


def test_wait_name_is_fixed_in_place() -> None:
    source = in_durable(
        """
for host in hosts:
    await zart.wait([ping(host)], name="race")
"""
    )
    (finding,) = lint(source)
    assert finding.fix is not None
    contents = sorted(edit.content for edit in finding.fix.edits)
    assert contents == ['f"race-{i}"', "i, host in enumerate(hosts)"]


# -- ZRT007: races in durable bodies ---------------------------------------------------------

RACES = """
done, pending = await {wait}([ping("a"), ping("b")], return_when=asyncio.FIRST_COMPLETED)
for each in {as_completed}([ping("c"), ping("d")]):
    await each
await {wait_for}(ping("e"), timeout=5)
"""


@pytest.mark.parametrize(
    ("imports", "names"),
    [
        ("", ("asyncio.wait", "asyncio.as_completed", "asyncio.wait_for")),
        ("import asyncio as aio", ("aio.wait", "aio.as_completed", "aio.wait_for")),
        (
            "from asyncio import wait as w, as_completed, wait_for",
            ("w", "as_completed", "wait_for"),
        ),
        ("from asyncio import tasks", ("tasks.wait", "tasks.as_completed", "tasks.wait_for")),
    ],
)
def test_races_are_reported(imports: str, names: tuple[str, str, str]) -> None:
    wait, as_completed, wait_for = names
    body = RACES.format(wait=wait, as_completed=as_completed, wait_for=wait_for)
    source = in_durable(body, imports)
    findings = lint(source)
    assert codes(findings) == ["ZRT007", "ZRT007", "ZRT007"]
    first, second, third = (f.message for f in findings)
    assert "await zart.wait(aws, return_when=...)" in first
    assert "await zart.wait(aws, return_when=...)" in second
    assert "@step(..., timeout=...)" in third
    assert "zart.wait([aw], timeout=...)" in third
    if wait != "asyncio.wait":
        assert "(asyncio.wait)" in first or "(asyncio.tasks.wait)" in first


def test_races_are_fine_outside_durable_bodies() -> None:
    source = (
        STEPS
        + """
async def fetch(url): ...

@step("fastest")
async def fastest(urls):
    done, _ = await asyncio.wait([asyncio.ensure_future(fetch(u)) for u in urls])
    for each in asyncio.as_completed([fetch(u) for u in urls]):
        await each
    return await asyncio.wait_for(fetch(urls[0]), timeout=5)

async def helper(urls):
    return await asyncio.wait([asyncio.ensure_future(fetch(u)) for u in urls])

@durable("flow")
async def flow(urls):
    async def nested():
        return await asyncio.wait_for(fetch(urls[0]), timeout=1)
    results = await asyncio.gather(ping("a"), ping("b"))
    task = asyncio.create_task(ping("c"))
    await asyncio.sleep(0)
    await task
    return await zart.wait([ping("d"), ping("e")], return_when=asyncio.FIRST_COMPLETED)
"""
    )
    assert codes(lint(source)) == []
