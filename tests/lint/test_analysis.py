"""Loop, variance and recognition edge cases of the analysis core."""

from __future__ import annotations

import pytest

from zart_lint.engine._api import RuleOptions

from lint_helpers import codes, lint

STEPS = """
import asyncio
import zart
from zart import durable, step

@step("send-notification")
async def send(user): ...

@step("process-item-{index}")
async def process_item(index, item): ...

@step("process-{region}-{shard}")
async def process_shard(region, shard): ...

@step("item-{item.id}")
async def by_item(item): ...

@step("p-{region}")
async def with_default(x, region="eu"): ...

@step("fetch-items")
async def fetch_items(): ...

@step("fetch-more")
async def fetch_more(): ...
"""


def in_durable(body: str) -> str:
    """A durable function (parameters ``xs``, ``groups``, ``region``) around ``body``."""
    indented = "\n".join("    " + line if line else "" for line in body.strip("\n").splitlines())
    return f'{STEPS}\n@durable("flow")\nasync def flow(xs, groups, region):\n{indented}\n'


def found(body: str, **kwargs: object) -> list[tuple[str, str]]:
    """(code, source line) of every finding in a durable built around ``body``."""
    source = in_durable(body)
    lines = source.splitlines()
    return [(f.code, lines[f.line - 1].strip()) for f in lint(source, **kwargs)]  # type: ignore[arg-type]


# -- where "in a loop" is ---------------------------------------------------------------


def test_constant_name_in_for_body() -> None:
    assert found("for x in xs:\n    await send(x)") == [("ZRT001", "await send(x)")]


def test_async_for_body() -> None:
    assert codes(lint(in_durable("async for x in xs:\n    await send(x)"))) == ["ZRT001"]


def test_loop_else_and_iterable_run_once() -> None:
    body = """
for x in await fetch_items():
    pass
else:
    await fetch_more()
"""
    assert found(body) == []


def test_while_condition_and_body() -> None:
    body = """
while await fetch_items():
    await fetch_more()
"""
    assert found(body) == [
        ("ZRT001", "while await fetch_items():"),
        ("ZRT001", "await fetch_more()"),
    ]


def test_comprehension_element_and_condition_but_not_outer_iterable() -> None:
    body = "r = [await send(x) for x in await fetch_items() if await fetch_more()]"
    assert [code for code, _ in found(body)] == ["ZRT001", "ZRT001"]
    positions = [f.column for f in lint(in_durable(body))]
    line = in_durable(body).splitlines()[-1]
    assert [line[c - 1 :].split("(")[0] for c in positions] == ["send", "fetch_more"]


def test_inner_comprehension_iterable_is_per_iteration() -> None:
    body = "r = [y for x in xs for y in await fetch_items()]"
    assert found(body) == [("ZRT001", body)]


def test_gather_of_generator() -> None:
    assert found("await asyncio.gather(*(send(x) for x in xs))") == [
        ("ZRT001", "await asyncio.gather(*(send(x) for x in xs))")
    ]
    assert found("await asyncio.gather(*(process_item(i, x) for i, x in enumerate(xs)))") == []


def test_dict_and_set_comprehensions() -> None:
    assert codes(lint(in_durable("d = {x: await send(x) for x in xs}"))) == ["ZRT001"]
    assert codes(lint(in_durable("s = {await send(x) for x in xs}"))) == ["ZRT001"]


def test_nested_function_and_lambda_in_loop_are_not_in_the_loop() -> None:
    body = """
for x in xs:
    async def handle():
        await send(x)
    later = lambda: send(x)
    await handle()
"""
    assert found(body) == []


def test_module_level_loop() -> None:
    source = STEPS + "\nfor user in ['a', 'b']:\n    asyncio.run(send(user))\n"
    assert codes(lint(source)) == ["ZRT001"]


# -- variance -----------------------------------------------------------------------------


def test_template_bound_to_loop_index_is_fine() -> None:
    assert found("for i, x in enumerate(xs):\n    await process_item(i, x)") == []


def test_template_bound_to_invariant_values() -> None:
    body = """
r = "eu"
for shard in range(4):
    await process_shard(r, 1)
    await process_shard(r, shard)
"""
    assert found(body) == [("ZRT003", "await process_shard(r, 1)")]


def test_nested_loops_name_must_vary_with_every_loop() -> None:
    body = """
for i, g in enumerate(groups):
    for j, x in enumerate(g):
        await send(x).named(f"a-{i}")
        await send(x).named(f"b-{j}")
        await send(x).named(f"c-{i}-{j}")
        await send(x).named(f"d-{x.id}")
"""
    result = found(body)
    assert result == [
        ("ZRT003", 'await send(x).named(f"a-{i}")'),
        ("ZRT003", 'await send(x).named(f"b-{j}")'),
    ]
    messages = [f.message for f in lint(in_durable(body))]
    assert "`for j, x in enumerate(g)` loop" in messages[0]
    assert "outer `for i, g in enumerate(groups)` loop" in messages[1]


def test_inner_range_restarts_but_offset_range_does_not() -> None:
    body = """
for i in range(3):
    for j in range(4):
        await process_item(j, None)
    for k in range(i * 10, i * 10 + 10):
        await process_item(k, None)
"""
    assert found(body) == [("ZRT003", "await process_item(j, None)")]


def test_counters_vary() -> None:
    body = """
n = 0
while True:
    await process_item(n, None)
    n += 1
"""
    assert found(body) == []


def test_counter_incremented_after_use_in_for() -> None:
    body = """
page = 1
for _ in range(10):
    await process_item(page, None)
    page = page + 1
"""
    assert found(body) == []


def test_walrus_binds_per_iteration() -> None:
    body = """
for x in xs:
    if (key := x.id):
        await send(x).named(f"send-{key}")
"""
    assert found(body) == []


def test_name_assigned_a_constant_in_the_loop_does_not_vary() -> None:
    body = """
for x in xs:
    label = "same"
    await send(x).named(label)
"""
    assert found(body) == [("ZRT003", "await send(x).named(label)")]


def test_name_assigned_different_constants_is_unknown() -> None:
    body = """
for x in xs:
    if x.big:
        label = "big"
    else:
        label = "small"
    await send(x).named(label)
"""
    assert found(body) == []


def test_attribute_template_depends_on_its_root() -> None:
    body = """
for x in xs:
    await by_item(x)
    await by_item(region)
"""
    assert found(body) == [("ZRT003", "await by_item(region)")]


def test_keyword_binding() -> None:
    body = """
for i, x in enumerate(xs):
    await process_item(item=x, index=i)
    await process_item(item=x, index=0)
"""
    assert found(body) == [("ZRT003", "await process_item(item=x, index=0)")]


def test_default_parameter_is_constant() -> None:
    body = """
for x in xs:
    await with_default(x)
    await with_default(x, region=x.region)
    await with_default(x, x.region)
"""
    assert found(body) == [("ZRT003", "await with_default(x)")]


def test_star_arguments_are_unknown() -> None:
    body = """
args = (0, None)
for x in xs:
    await process_item(*args)
    await process_item(**{"index": 0, "item": x})
"""
    assert found(body) == []


def test_mutated_container_varies() -> None:
    body = """
done = []
for x in xs:
    done.append(x)
    await send(x).named(f"send-{len(done)}")
"""
    assert found(body) == []


def test_unknown_calls_are_assumed_to_vary() -> None:
    body = """
for x in xs:
    await send(x).named(next_name())
    await send(x).named(f"send-{uuid_like()}")
"""
    assert found(body) == []


def test_subscript_of_invariant_is_invariant() -> None:
    assert found('for x in xs:\n    await send(x).named(f"s-{xs[0]}")') == [
        ("ZRT003", 'await send(x).named(f"s-{xs[0]}")')
    ]


def test_global_names_are_never_proven_invariant() -> None:
    source = in_durable("global COUNTER\nfor x in xs:\n    await send(x).named(f'c-{COUNTER}')")
    assert codes(lint(source)) == []


# -- .named() and primitives -------------------------------------------------------------


def test_named_constant_and_parameter() -> None:
    body = """
for x in xs:
    await send(x).named("send")
    await send(x).named(region)
    await send(x).named(f"send-{region}")
"""
    assert found(body) == [
        ("ZRT002", 'await send(x).named("send")'),
        ("ZRT002", "await send(x).named(region)"),
        ("ZRT003", 'await send(x).named(f"send-{region}")'),
    ]


def test_named_overrides_the_template() -> None:
    body = """
for i, x in enumerate(xs):
    await fetch_items().named(f"fetch-{i}")
"""
    assert found(body) == []


def test_named_set_on_a_variable_later_is_not_reported() -> None:
    body = """
for i, x in enumerate(xs):
    call = send(x)
    await call.named(f"send-{i}")
"""
    assert found(body) == []


def test_primitives_in_loops() -> None:
    body = """
for i, x in enumerate(xs):
    await zart.sleep("wait", 5)
    await zart.sleep(f"wait-{i}", 5)
    await zart.sleep_until(name="until", when=None)
    await zart.wait_for_event("approved")
    await zart.now(f"now-{region}")
    await zart.capture(f"c-{i}", lambda: 1)
    await zart.run_child(flow, x, name="child")
    await zart.run_child(flow, x, name=f"child-{i}")
    await zart.run_child(flow, x)
"""
    assert found(body) == [
        ("ZRT001", 'await zart.sleep("wait", 5)'),
        ("ZRT001", 'await zart.sleep_until(name="until", when=None)'),
        ("ZRT001", 'await zart.wait_for_event("approved")'),
        ("ZRT003", 'await zart.now(f"now-{region}")'),
        ("ZRT001", 'await zart.run_child(flow, x, name="child")'),
    ]


def test_primitive_imported_under_an_alias() -> None:
    source = """
from zart import durable, sleep as zsleep
import asyncio

@durable("d")
async def d(xs):
    for x in xs:
        await zsleep("wait", 5)
        await asyncio.sleep(5)
"""
    assert codes(lint(source)) == ["ZRT001"]


# -- recognition --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imports", "decorator"),
    [
        ("from zart import step", '@step("c")'),
        ("from zart import step as s", '@s("c")'),
        ("from zart import zart_step", '@zart_step("c")'),
        ("import zart", '@zart.step("c")'),
        ("import zart as z", '@z.zart_step("c")'),
        ("from zart import step", "@step"),
        ("from zart import *", '@step("c", retry=None)'),
    ],
)
def test_step_decorator_spellings(imports: str, decorator: str) -> None:
    source = f"""
{imports}

{decorator}
def constant(x): ...

async def helper(xs):
    for x in xs:
        await constant(x)
"""
    assert codes(lint(source)) == ["ZRT001"]


def test_not_a_step_without_zart_import() -> None:
    source = """
from somewhere import step

@step("c")
def constant(x): ...

async def helper(xs):
    for x in xs:
        await constant(x)
"""
    assert codes(lint(source)) == []


def test_local_function_shadowing_a_step_name() -> None:
    source = in_durable(
        """
async def send(user): ...
for x in xs:
    await send(x)
"""
    )
    assert codes(lint(source)) == []


def test_parameter_shadowing_a_step_name() -> None:
    source = STEPS + "\nasync def helper(xs, send):\n    for x in xs:\n        await send(x)\n"
    assert codes(lint(source)) == []


def test_module_level_redefinition_is_not_trusted() -> None:
    source = (
        STEPS
        + "\nasync def send(user): ...\n\n"
        + "async def helper(xs):\n    for x in xs:\n        await send(x)\n"
    )
    assert codes(lint(source)) == []


def test_configured_decorators() -> None:
    source = """
from myapp.tasks import task, flow
import myapp.tasks as tasks

@task("constant")
def constant(x): ...

@tasks.task("also-constant")
def also(x): ...

@flow("f")
async def run(xs):
    for x in xs:
        await constant(x)
        await also(x)
    await constant(1)
    await constant(2)
"""
    options = RuleOptions(
        extra_step_decorators=("myapp.tasks.task",), extra_durable_decorators=("myapp.tasks.flow",)
    )
    assert codes(lint(source, options=options)) == ["ZRT001", "ZRT001", "ZRT004"]
    assert codes(lint(source)) == []


def test_class_attribute_named_like_a_step_is_not_visible_in_methods() -> None:
    source = (
        STEPS
        + """
class Holder:
    send = None

    async def run(self, xs):
        for x in xs:
            await send(x)
"""
    )
    assert codes(lint(source)) == ["ZRT001"]


# -- duplicates, awaits, determinism, nesting ---------------------------------------------


def test_duplicate_names_respect_exclusive_branches() -> None:
    body = """
if region:
    await fetch_items()
elif xs:
    await fetch_items()
else:
    await fetch_items()
match region:
    case "eu":
        await fetch_more()
    case _:
        await fetch_more()
items = await (send(1) if xs else send(2))
"""
    assert found(body) == []


def test_duplicate_after_branch_that_does_not_exit() -> None:
    body = """
if region:
    await fetch_items()
await fetch_items()
"""
    assert found(body) == [("ZRT004", "await fetch_items()")]
    finding = lint(in_durable(body))[0]
    assert f"on line {finding.line - 1} " in finding.message


def test_duplicate_rendered_from_literal_arguments() -> None:
    assert found("await process_item(1, 'a')\nawait process_item(1, 'b')") == [
        ("ZRT004", "await process_item(1, 'b')")
    ]
    assert found("await process_item(1, 'a')\nawait process_item(2, 'b')") == []


def test_duplicates_only_in_durable_bodies() -> None:
    source = STEPS + "\nasync def test_steps():\n    await fetch_items()\n    await fetch_items()\n"
    assert codes(lint(source)) == []


def test_not_awaited_only_as_bare_statement() -> None:
    body = """
process_item(1, None)
task = asyncio.create_task(process_item(2, None))
await asyncio.gather(process_item(3, None), process_item(4, None))
await task
"""
    assert found(body) == [("ZRT006", "process_item(1, None)")]


def test_nondeterminism_only_directly_in_durable_body() -> None:
    source = (
        STEPS
        + """
import time as t
from datetime import date, datetime
from uuid import uuid4

@durable("clock")
async def clock():
    a = t.monotonic()
    b = date.today()
    c = uuid4()
    d = await zart.capture("d", lambda: t.time())
    def helper():
        return datetime.now()
    e = await zart.capture("e", helper)
    f = t.sleep(0)

async def not_durable():
    return t.time()
"""
    )
    assert codes(lint(source)) == ["ZRT007", "ZRT007", "ZRT007"]


def test_step_called_inside_step_body_only_reports_zrt008() -> None:
    source = (
        STEPS
        + """
@step("outer")
async def outer(xs):
    for x in xs:
        await send(x)
    await zart.sleep("s", 1)
"""
    )
    assert codes(lint(source)) == ["ZRT008", "ZRT008"]


def test_bad_template_fields() -> None:
    source = """
from zart import step

@step("a-{index}-{index.x}-{missing}-{other}")
def a(index): ...

@step("b-{x[0]}-{x.attr}-{x:>{width}}")
def b(x, width): ...

@step("c-{x.}")
def c(x): ...
"""
    findings = lint(source)
    assert codes(findings) == ["ZRT005", "ZRT005", "ZRT005"]
    assert "{missing}" in findings[0].message and "{other}" in findings[1].message


def test_findings_are_sorted_and_positions_are_one_based() -> None:
    source = in_durable("for x in xs:\n    await send(x)\n    await send(x).named('n')")
    findings = lint(source)
    assert [(f.code, f.line) for f in findings] == sorted((f.code, f.line) for f in findings)
    line = source.splitlines()[findings[0].line - 1]
    assert line[findings[0].column - 1 : findings[0].end_column - 1] == "send(x)"
    second = source.splitlines()[findings[1].line - 1]
    assert second[findings[1].column - 1 : findings[1].end_column - 1] == "send(x).named('n')"


def test_syntax_error_is_a_finding_not_a_crash() -> None:
    findings = lint("def f(:\n    pass\n", path=__import__("pathlib").Path("bad.py"))
    assert [(f.code, f.line, f.path) for f in findings] == [("ZRT000", 1, "bad.py")]


def test_tokenizer_error_has_a_position() -> None:
    findings = lint("x = 1\ny = )\n")
    assert [(f.code, f.line, f.column) for f in findings] == [("ZRT000", 2, 5)]


# -- positions ----------------------------------------------------------------------------

POSITION_SOURCES = [
    STEPS + "\nasync def f(xs):\n    for x in xs:\n        await send(x)\n",
    # CRLF newlines, tabs, non-ASCII text, a file without a trailing newline
    "import zart\r\n\r\nasync def f(xs):\r\n\tfor x in xs:\r\n\t\tawait zart.sleep('é—x', 1)",
    # identical top-level statements: the text of a statement is not unique
    "x = [zart.now('a')]\nx = [zart.now('a')]\n",
    '"""Doc."""\n# comment\n\n@deco(a, b=(c,\n   d))\n'
    'class K:\n    y = f"{g(1)}" + h(  # c\n  2)\n',
]


@pytest.mark.parametrize("source", POSITION_SOURCES)
@pytest.mark.parametrize("strategy", ["statements", "module"])
def test_positions_match_libcst(source: str, strategy: str) -> None:
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    from zart_lint.analysis import _positions

    module = cst.parse_module(source)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    expected = wrapper.resolve(PositionProvider)
    # Expressions: what findings point at (libcst derives the positions of
    # statements, Arg, ... from their children; _positions does not).
    kinds = (cst.Call, cst.Name, cst.Attribute, cst.SimpleString, cst.Tuple)
    nodes = [n for n in expected if isinstance(n, kinds)]
    assert nodes
    if strategy == "module":
        got = _positions._whole_module(module, {id(n) for n in nodes})
    else:
        got = _positions.spans(module, nodes, source)
    for node in nodes:
        where = expected[node]
        assert got[id(node)].inner == (
            where.start.line,
            where.start.column + 1,
            where.end.line,
            where.end.column + 1,
        ), module.code_for_node(node)
        outer = got[id(node)].outer
        lines = source.splitlines(keepends=True)
        text = "".join(lines[outer[0] - 1 : outer[2]])
        start = outer[1] - 1
        end = len(text) - len(lines[outer[2] - 1]) + outer[3] - 1
        assert text[start:end] == module.code_for_node(node)


@pytest.mark.parametrize("operator", [" + ", " or ", " "])
def test_long_operator_chains_do_not_hide_findings(operator: str) -> None:
    """Generated code nests thousands deep; the walk must not hit the recursion limit.

    (The chain sits in another top-level statement than the finding: libcst's own
    code generation, used for the finding's position, recurses through it.)
    """
    chain = operator.join(["'a'"] * 3000)
    source = in_durable("for x in xs:\n    await send(x)") + f"\nTABLE = {chain}\n"
    assert codes(lint(source)) == ["ZRT001"]


def test_object_reads_are_not_trusted_when_the_loop_calls_unknown_code() -> None:
    body = """
for x in xs:
    await send(x).named(f"a-{region.name}")
for x in xs:
    advance_everything()
    await send(x).named(f"b-{region.name}")
for x in xs:
    print(x)
    await send(x).named(f"c-{region.name}")
"""
    assert found(body) == [
        ("ZRT003", 'await send(x).named(f"a-{region.name}")'),
        ("ZRT003", 'await send(x).named(f"c-{region.name}")'),
    ]
