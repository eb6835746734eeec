"""The public runtime API: decorators, step naming, and the engine.

Engine tests run on every backend (the ``app`` fixture); decorator and naming
tests need no database at all.
"""

import asyncio
import importlib.util
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

import zart
from zart import (
    DuplicateStepError,
    ExecutionCancelledError,
    ExecutionNotFoundError,
    StepCall,
    StepNameError,
    TaskError,
    UnknownDurableError,
    ZartError,
    durable,
    step,
    zart_durable,
    zart_step,
)

from runtime_app import SimulatedCrash

# --------------------------------------------------------------------------- decorators


def test_aliases_are_the_same_decorators() -> None:
    assert zart_step is step
    assert zart_durable is durable


def test_aliases_behave_like_the_originals() -> None:
    @zart_step("alias-{n}")
    async def via_alias(n: int) -> int:
        return n

    @step("alias-{n}")
    async def via_step(n: int) -> int:
        return n

    assert type(via_alias) is type(via_step)
    assert via_alias(3).name == via_step(3).name == "alias-3"

    @zart_durable("rt-api-alias-durable")
    async def flow() -> int:
        return 1

    assert isinstance(flow, zart.DurableFunction)
    assert flow.name == "rt-api-alias-durable"


def test_bare_step_is_named_after_the_function() -> None:
    @step
    async def fetch_things() -> int:
        return 1

    @step()
    def load_things() -> int:
        return 2

    assert isinstance(fetch_things, zart.Step)
    assert fetch_things.name == "fetch_things"
    assert fetch_things().name == "fetch_things"
    assert load_things().name == "load_things"


def test_bare_durable_is_named_after_the_function() -> None:
    @durable
    async def rt_api_bare_durable() -> int:
        return 1

    assert rt_api_bare_durable.name == "rt_api_bare_durable"


@dataclass
class Item:
    id: str
    size: int


def test_template_with_parameter_field() -> None:
    @step("process-item-{index}")
    async def process_item(index: int, item: Item) -> None: ...

    assert process_item(0, Item("a", 1)).name == "process-item-0"
    assert process_item(7, Item("a", 1)).name == "process-item-7"
    assert process_item(item=Item("a", 1), index=12).name == "process-item-12"


def test_template_with_attribute_field() -> None:
    @step("item-{item.id}")
    async def handle(item: Item) -> None: ...

    assert handle(Item("abc", 1)).name == "item-abc"
    assert handle(item=Item("x-9", 1)).name == "item-x-9"


def test_template_with_format_spec() -> None:
    @step("chunk-{n:04d}")
    async def chunk(n: int) -> None: ...

    assert chunk(7).name == "chunk-0007"
    assert chunk(12345).name == "chunk-12345"


def test_template_with_several_placeholders_and_defaults() -> None:
    @step("process-{region}-{shard}")
    async def process_shard(region: str, shard: int = 0) -> None: ...

    assert process_shard("eu", 3).name == "process-eu-3"
    assert process_shard("us").name == "process-us-0"
    assert process_shard(shard=5, region="ap").name == "process-ap-5"


def test_template_with_index_conversion_and_nested_spec() -> None:
    @step("first-{rows[0]}")
    async def first(rows: list[int]) -> None: ...

    @step("pad-{n:>{width}}")
    async def pad(n: int, width: int) -> None: ...

    @step("repr-{s!r}")
    async def rep(s: str) -> None: ...

    assert first([5, 6]).name == "first-5"
    assert pad(7, 3).name == "pad-  7"
    assert rep("x").name == "repr-'x'"


def test_template_escaped_braces_are_literal() -> None:
    @step("literal-{{x}}-{n}")
    async def esc(n: int) -> None: ...

    @step("const-{{x}}")
    async def esc_const() -> None: ...

    assert esc(1).name == "literal-{x}-1"
    assert esc_const().name == "const-{x}"


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("item-{idx}", id="unknown-field"),
        pytest.param("item-{item.id}", id="unknown-root-of-attribute"),
        pytest.param("item-{index", id="unclosed-brace"),
        pytest.param("item-index}", id="stray-closing-brace"),
        pytest.param("item-{}", id="positional-empty"),
        pytest.param("item-{0}", id="positional-number"),
        pytest.param("", id="empty"),
        pytest.param("item-{index!z}", id="unknown-conversion"),
        pytest.param("item-{index.}", id="empty-attribute"),
        pytest.param("item-{index[0]x}", id="junk-after-index"),
        pytest.param("item-{index:{width}}", id="unknown-nested-field"),
    ],
)
def test_bad_template_raises_when_decorating(template: str) -> None:
    with pytest.raises(StepNameError):

        @step(template)
        async def process(index: int) -> None: ...


def test_unknown_field_message_names_field_and_parameters() -> None:
    with pytest.raises(StepNameError) as info:

        @step("item-{idx}")
        async def process(index: int, item: Item) -> None: ...

    message = str(info.value)
    assert "{idx}" in message
    assert "index" in message and "item" in message


def test_bad_template_fails_at_import_time(tmp_path: Path) -> None:
    module = tmp_path / "rt_api_bad_template_mod.py"
    module.write_text(
        "from zart import step\n\n"
        "@step('process-{idx}')\n"
        "async def process(index: int) -> None:\n"
        "    pass\n"
    )
    spec = importlib.util.spec_from_file_location("rt_api_bad_template_mod", module)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    with pytest.raises(StepNameError):
        spec.loader.exec_module(mod)


def test_named_overrides_the_template() -> None:
    @step("send-notification")
    async def send(user: str) -> None: ...

    call = send("ana")
    assert isinstance(call, StepCall)
    assert call.named("send-notification-3") is call
    assert call.name == "send-notification-3"
    with pytest.raises(StepNameError):
        send("ana").named("")


def test_durable_on_plain_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="async def"):

        @durable("rt-api-plain")
        def plain() -> int:
            return 1


def test_step_goes_below_staticmethod() -> None:
    with pytest.raises(TypeError, match="staticmethod"):
        step("x")(staticmethod(lambda: 1))  # type: ignore[arg-type]


def test_step_decorator_rejects_non_string_name() -> None:
    with pytest.raises(StepNameError):
        step(42)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- outside a durable


def test_awaiting_steps_outside_a_durable_just_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZART_DATABASE_URL", raising=False)
    calls: list[str] = []

    @step("outside-async-{x}")
    async def double(x: int) -> int:
        calls.append("async")
        return x * 2

    @step("outside-sync")
    def triple(x: int) -> int:
        calls.append("sync")
        return x * 3

    @durable("rt-api-outside")
    async def flow(x: int) -> int:
        return await double(x) + await triple(x)

    async def main() -> tuple[int, int, int]:
        return await double(2), await triple(2), await flow(1)

    assert asyncio.run(main()) == (4, 6, 5)
    assert calls == ["async", "sync", "async", "sync"]
    # Creating an engine connects to nothing either.
    zart.Zart()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- engine: run


def test_default_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZART_DATABASE_URL", raising=False)
    assert zart.Zart().database_url == "sqlite:///zart.db"
    monkeypatch.setenv("ZART_DATABASE_URL", "sqlite:///from-env.db")
    assert zart.Zart().database_url == "sqlite:///from-env.db"
    assert zart.Zart("sqlite:///explicit.db").database_url == "sqlite:///explicit.db"


def test_run_returns_the_result_and_steps_run_in_order(app: zart.Zart) -> None:
    order: list[str] = []

    @step("rt-api-add-{a}-{b}")
    async def add(a: int, b: int) -> int:
        order.append(f"add-{a}-{b}")
        return a + b

    @step("rt-api-mul")
    def mul(a: int, b: int) -> int:  # a plain def step
        order.append("mul")
        return a * b

    @durable("rt-api-arith")
    async def arith(x: int, y: int) -> int:
        s = await add(x, y)
        return await mul(s, 10)

    assert app.run(arith, 2, 3, execution_id="arith-1") == 50
    assert order == ["add-2-3", "mul"]


def test_run_without_id_generates_one(app: zart.Zart) -> None:
    @durable("rt-api-noid")
    async def noid() -> str:
        return "done"

    assert app.run(noid) == "done"
    assert app.run(noid) == "done"
    executions = app.list(durable_name="rt-api-noid")
    assert len(executions) == 2
    assert executions[0].id != executions[1].id


def test_run_accepts_the_durable_name(app: zart.Zart) -> None:
    @durable("rt-api-byname")
    async def byname(x: int) -> int:
        return x + 1

    assert app.run("rt-api-byname", 1, execution_id="byname-1") == 2
    with pytest.raises(UnknownDurableError, match="rt-api-no-such-durable"):
        app.run("rt-api-no-such-durable", execution_id="byname-2")


def test_second_run_with_same_id_returns_stored_result_without_running(
    app: zart.Zart,
) -> None:
    calls: list[int] = []
    body_runs: list[int] = []

    @step("rt-api-idem-work-{x}")
    async def work(x: int) -> int:
        calls.append(x)
        return x * 100

    @durable("rt-api-idem")
    async def idem(x: int) -> int:
        body_runs.append(x)
        return await work(x) + 1

    assert app.run(idem, 4, execution_id="idem-1") == 401
    assert calls == [4]
    assert body_runs == [4]
    # Same id: the stored result, even with other arguments; nothing runs again.
    assert app.run(idem, 4, execution_id="idem-1") == 401
    assert app.run(idem, 9, execution_id="idem-1") == 401
    assert calls == [4]
    assert body_runs == [4]
    assert app.status("idem-1").attempts == 1


def test_existing_id_of_another_durable_is_a_clear_error(app: zart.Zart) -> None:
    @durable("rt-api-owner-a")
    async def flow_a() -> int:
        return 1

    ran: list[int] = []

    @durable("rt-api-owner-b")
    async def flow_b() -> int:
        ran.append(1)
        return 2

    app.run(flow_a, execution_id="shared-id")
    with pytest.raises(ZartError) as info:
        app.run(flow_b, execution_id="shared-id")
    assert not isinstance(info.value, TaskError)
    message = str(info.value)
    assert "shared-id" in message
    assert "rt-api-owner-a" in message and "rt-api-owner-b" in message
    assert ran == []
    assert app.status("shared-id").durable_name == "rt-api-owner-a"


def test_run_inside_event_loop_is_refused(app: zart.Zart) -> None:
    @durable("rt-api-inloop")
    async def inloop() -> int:
        return 1

    async def main() -> None:
        app.run(inloop, execution_id="inloop-1")

    with pytest.raises(ZartError, match="start"):
        asyncio.run(main())


def test_start_and_handle_result(app: zart.Zart) -> None:
    @step("rt-api-start-step-{i}")
    async def part(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    @durable("rt-api-start")
    async def started(n: int) -> int:
        return sum([await part(i) for i in range(n)])

    async def main() -> tuple[int, int, int, str]:
        h1 = await app.start(started, 4, execution_id="start-1")
        h2 = await app.start(started, 5, execution_id="start-2")
        assert isinstance(h1, zart.ExecutionHandle)
        assert h1.execution_id == "start-1"
        r1, r2 = await h1.result(timeout=10), await h2.result(timeout=10)
        # Starting an existing id attaches to it.
        h3 = await app.start(started, 100, execution_id="start-1")
        return r1, r2, await h3.result(timeout=10), h1.status().status

    assert asyncio.run(main()) == (6, 10, 6, "completed")


def test_handle_result_raises_task_error(app: zart.Zart) -> None:
    @durable("rt-api-start-fail")
    async def broken() -> int:
        raise KeyError("gone")

    async def main() -> None:
        handle = await app.start(broken, execution_id="start-fail")
        with pytest.raises(TaskError) as info:
            await handle.result(timeout=10)
        assert info.value.error_type == "KeyError"
        assert info.value.execution_id == "start-fail"

    asyncio.run(main())
    assert app.status("start-fail").status == "failed"


def test_handle_for_an_existing_execution(app: zart.Zart) -> None:
    @durable("rt-api-handle")
    async def handled() -> str:
        return "x"

    app.run(handled, execution_id="handle-1")

    async def main() -> str:
        return str(await app.handle("handle-1").result())

    assert asyncio.run(main()) == "x"
    assert app.result("handle-1") == "x"


# --------------------------------------------------------------------------- status / steps / list


def test_status_of_a_completed_execution(app: zart.Zart) -> None:
    @step("rt-api-status-step")
    async def slow() -> int:
        await asyncio.sleep(0.02)
        return 1

    @durable("rt-api-status")
    async def flow() -> int:
        return await slow()

    before = time.time()
    app.run(flow, execution_id="status-1")
    after = time.time()
    st = app.status("status-1")
    assert isinstance(st, zart.ExecutionStatus)
    assert st.id == "status-1"
    assert st.durable_name == "rt-api-status"
    assert st.status == "completed"
    assert st.attempts == 1
    assert st.error is None
    assert st.lease_owner is None
    for moment in (st.created_at, st.started_at, st.finished_at):
        assert isinstance(moment, datetime)
        assert moment.tzinfo is not None
        assert before - 1 <= moment.timestamp() <= after + 1
    assert st.started_at is not None and st.finished_at is not None
    assert st.created_at <= st.started_at <= st.finished_at
    assert st.duration is not None and st.duration >= 0.015
    as_dict = st.as_dict()
    assert as_dict["status"] == "completed" and as_dict["id"] == "status-1"


def test_status_of_a_failed_execution(app: zart.Zart) -> None:
    @durable("rt-api-status-fail")
    async def failing() -> int:
        raise ValueError("the input was bad")

    with pytest.raises(TaskError):
        app.run(failing, execution_id="status-fail")
    st = app.status("status-fail")
    assert st.status == "failed"
    assert st.error is not None
    assert "ValueError" in st.error and "the input was bad" in st.error
    assert st.finished_at is not None


def test_status_of_a_pending_execution(app: zart.Zart) -> None:
    @durable("rt-api-pending")
    async def pending(x: int) -> int:
        return x

    app.submit(pending, 1, execution_id="pending-1")
    st = app.status("pending-1")
    assert st.status == "pending"
    assert st.attempts == 0
    assert st.started_at is None and st.finished_at is None


def test_steps_history(app: zart.Zart) -> None:
    @step("rt-api-hist-{i}")
    async def numbered(i: int) -> int:
        return i * 11

    @step("rt-api-hist-long")
    async def long_text() -> str:
        return "y" * 500

    @durable("rt-api-history")
    async def history() -> int:
        total = 0
        for i in (3, 1, 2):
            total += await numbered(i)
        await long_text()
        return total

    assert app.run(history, execution_id="hist-1") == 66
    infos = app.steps("hist-1")
    assert all(isinstance(i, zart.StepInfo) for i in infos)
    assert [i.name for i in infos] == [
        "rt-api-hist-3",
        "rt-api-hist-1",
        "rt-api-hist-2",
        "rt-api-hist-long",
    ]
    seqs = [i.seq for i in infos]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert {i.status for i in infos} == {"completed"}
    assert {i.attempts for i in infos} == {1}
    assert {i.kind for i in infos} == {"step"}
    assert [i.output_preview for i in infos[:3]] == ["33", "11", "22"]
    assert all(i.error is None for i in infos)
    assert all(i.started_at is not None and i.finished_at is not None for i in infos)
    long_preview = infos[3].output_preview
    assert long_preview is not None
    assert 20 < len(long_preview) < 200
    assert long_preview.startswith('"yyyy')


def test_steps_of_execution_without_steps(app: zart.Zart) -> None:
    @durable("rt-api-nosteps")
    async def nosteps() -> int:
        return 0

    app.run(nosteps, execution_id="nosteps-1")
    assert app.steps("nosteps-1") == []


def test_list_is_newest_first(app: zart.Zart) -> None:
    @durable("rt-api-list-order")
    async def ordered(x: int) -> int:
        return x

    for i in range(3):
        app.submit(ordered, i, execution_id=f"order-{i}")
        time.sleep(0.01)
    assert [i.id for i in app.list()] == ["order-2", "order-1", "order-0"]


def test_list_filters_by_status_and_name(app: zart.Zart) -> None:
    @durable("rt-api-list-ok")
    async def ok(x: int) -> int:
        return x

    @durable("rt-api-list-bad")
    async def bad() -> int:
        raise RuntimeError("nope")

    for i in range(3):
        app.run(ok, i, execution_id=f"list-ok-{i}")
    with pytest.raises(TaskError):
        app.run(bad, execution_id="list-bad")
    app.submit(ok, 9, execution_id="list-pending")

    def ids(items: list[zart.ExecutionStatus]) -> set[str]:
        return {i.id for i in items}

    assert ids(app.list()) == {"list-ok-0", "list-ok-1", "list-ok-2", "list-bad", "list-pending"}
    assert ids(app.list(status="completed")) == {"list-ok-0", "list-ok-1", "list-ok-2"}
    assert ids(app.list(status="failed")) == {"list-bad"}
    assert ids(app.list(status="pending")) == {"list-pending"}
    assert ids(app.list(status="cancelled")) == set()
    assert ids(app.list(durable_name="rt-api-list-bad")) == {"list-bad"}
    assert len(app.list(limit=2)) == 2
    assert len(app.list(limit=2, offset=4)) == 1
    assert all(i.status == "completed" for i in app.list(status="completed"))


# --------------------------------------------------------------------------- unknown ids


def test_unknown_execution_ids(app: zart.Zart) -> None:
    with pytest.raises(ExecutionNotFoundError, match="no-such-id"):
        app.status("no-such-id")
    with pytest.raises(ExecutionNotFoundError):
        app.steps("no-such-id")
    with pytest.raises(ExecutionNotFoundError):
        app.cancel("no-such-id")
    with pytest.raises(ExecutionNotFoundError):
        app.send_event("no-such-id", "evt", {"a": 1})
    with pytest.raises(ExecutionNotFoundError):
        app.handle("no-such-id")
    with pytest.raises(ExecutionNotFoundError):
        app.result("no-such-id")
    assert issubclass(ExecutionNotFoundError, ZartError)


# --------------------------------------------------------------------------- cancel


def test_cancel_from_another_thread_and_instance_stops_at_next_step(
    app: zart.Zart, db_url: str
) -> None:
    entered = threading.Event()
    release = threading.Event()
    later: list[int] = []
    outcome: dict[str, object] = {}

    @step("rt-api-cancel-block")
    def block() -> int:  # plain def: runs in a thread, so it may block
        entered.set()
        release.wait(10)
        return 1

    @step("rt-api-cancel-later")
    async def after() -> int:
        later.append(1)
        return 2

    @durable("rt-api-cancel")
    async def cancellable() -> int:
        await block()
        return await after()

    def canceller() -> None:
        try:
            if not entered.wait(10):
                return
            other = zart.Zart(db_url)
            try:
                outcome["cancelled"] = other.cancel("cancel-1")
                outcome["status"] = other.status("cancel-1").status
            finally:
                other.close()
        finally:
            release.set()

    thread = threading.Thread(target=canceller)
    thread.start()
    try:
        with pytest.raises(ExecutionCancelledError) as info:
            app.run(cancellable, execution_id="cancel-1")
    finally:
        release.set()
        thread.join(10)
    assert isinstance(info.value, TaskError)
    assert outcome == {"cancelled": True, "status": "cancelled"}
    assert later == []
    st = app.status("cancel-1")
    assert st.status == "cancelled"
    # The step that was running when the execution was cancelled left no checkpoint.
    assert [s.name for s in app.steps("cancel-1") if s.status == "completed"] == []
    # It stays cancelled: running it again runs nothing.
    with pytest.raises(ExecutionCancelledError):
        app.run(cancellable, execution_id="cancel-1")
    assert later == []
    assert app.cancel("cancel-1") is False


def test_cancel_with_start_in_the_same_loop(app: zart.Zart) -> None:
    later: list[int] = []
    entered = asyncio.Event()
    gate = asyncio.Event()

    @step("rt-api-cancel2-wait")
    async def wait_for_gate() -> int:
        entered.set()
        await gate.wait()
        return 1

    @step("rt-api-cancel2-later")
    async def after() -> int:
        later.append(1)
        return 2

    @durable("rt-api-cancel2")
    async def cancellable() -> int:
        await wait_for_gate()
        return await after()

    async def main() -> None:
        handle = await app.start(cancellable, execution_id="cancel-2")
        await asyncio.wait_for(entered.wait(), 10)
        assert app.status("cancel-2").status == "running"
        assert app.cancel("cancel-2") is True
        gate.set()
        with pytest.raises(ExecutionCancelledError):
            await handle.result(timeout=10)

    asyncio.run(main())
    assert later == []
    assert app.status("cancel-2").status == "cancelled"


def test_cancel_pending_execution_never_runs_it(app: zart.Zart) -> None:
    ran: list[int] = []

    @durable("rt-api-cancel-pending")
    async def never() -> int:
        ran.append(1)
        return 1

    app.submit(never, execution_id="cancel-pending")
    assert app.cancel("cancel-pending") is True
    with pytest.raises(ExecutionCancelledError):
        app.run(never, execution_id="cancel-pending")
    assert ran == []


def test_cancel_completed_execution_changes_nothing(app: zart.Zart) -> None:
    @durable("rt-api-cancel-done")
    async def done() -> int:
        return 7

    app.run(done, execution_id="cancel-done")
    before = app.status("cancel-done")
    assert app.cancel("cancel-done") is False
    after = app.status("cancel-done")
    assert after.status == "completed"
    assert after.finished_at == before.finished_at
    assert app.run(done, execution_id="cancel-done") == 7


# --------------------------------------------------------------------------- worker


def test_worker_finishes_pending_executions(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-api-worker-sq-{x}")
    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    @durable("rt-api-worker")
    async def squares(x: int) -> int:
        return await square(x)

    for i in range(4):
        app.submit(squares, i, execution_id=f"worker-{i}")
    assert {s.status for s in app.list()} == {"pending"}

    worker = app.worker(poll_interval=0.05)
    finished = asyncio.run(worker.run_async(until_idle=True))
    assert finished == 4
    assert sorted(calls) == [0, 1, 2, 3]
    for i in range(4):
        assert app.status(f"worker-{i}").status == "completed"
        assert app.run(squares, i, execution_id=f"worker-{i}") == i * i
    assert sorted(calls) == [0, 1, 2, 3]


def test_worker_resumes_an_interrupted_execution(app: zart.Zart) -> None:
    calls: list[str] = []
    state = {"crash": True}

    @step("rt-api-resume-a")
    async def a() -> str:
        calls.append("a")
        return "a"

    @step("rt-api-resume-b")
    async def b() -> str:
        calls.append("b")
        return "b"

    @durable("rt-api-resume")
    async def resumable() -> str:
        first = await a()
        if state["crash"]:
            raise SimulatedCrash
        return first + await b()

    with pytest.raises(SimulatedCrash):
        app.run(resumable, execution_id="resume-1")
    assert app.status("resume-1").status not in ("completed", "failed", "cancelled")
    state["crash"] = False
    asyncio.run(app.worker(poll_interval=0.05).run_async(until_idle=True))
    assert app.status("resume-1").status == "completed"
    assert app.result("resume-1") == "ab"
    assert calls == ["a", "b"]


def test_error_hierarchy() -> None:
    # Every error zart raises can be caught as ZartError.
    for name in (
        "DatabaseUnavailableError",
        "DuplicateStepError",
        "EventTimeoutError",
        "ExecutionCancelledError",
        "ExecutionNotFoundError",
        "LeaseLostError",
        "ReplayMismatchError",
        "SerializationError",
        "StepError",
        "StepNameError",
        "StepTimeoutError",
        "TaskError",
        "UnknownDurableError",
    ):
        assert issubclass(getattr(zart, name), ZartError), name
        assert name in zart.__all__
    assert issubclass(ExecutionCancelledError, TaskError)
    assert issubclass(DuplicateStepError, ZartError)
