"""Durable primitives in one process: now, capture, sleep, events, and misuse errors."""

import asyncio
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import zart
from zart import (
    DuplicateStepError,
    EventTimeoutError,
    StepError,
    TaskError,
    ZartError,
    durable,
    step,
)

from runtime_app import SimulatedCrash

# --------------------------------------------------------------------------- now / capture


def test_now_is_recorded_once(app: zart.Zart) -> None:
    seen: list[datetime] = []
    state = {"crash": True}

    @durable("rt-prim-now")
    async def flow() -> datetime:
        moment = await zart.now("rt-prim-now-started")
        seen.append(moment)
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash
        return moment

    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="now-1")
    time.sleep(0.01)
    result = app.run(flow, execution_id="now-1")
    assert len(seen) == 2
    assert seen[0] == seen[1] == result
    assert isinstance(seen[1], datetime)
    assert seen[1].tzinfo is not None
    assert abs((datetime.now(timezone.utc) - seen[0]).total_seconds()) < 30
    infos = app.steps("now-1")
    assert [(i.name, i.kind, i.status) for i in infos] == [
        ("rt-prim-now-started", "now", "completed")
    ]


def test_capture_records_value_once(app: zart.Zart) -> None:
    seen: list[tuple[float, uuid.UUID, int]] = []
    moments: list[datetime] = []
    calls: list[str] = []
    state = {"crash": True}

    def new_id() -> uuid.UUID:
        calls.append("id")
        return uuid.uuid4()

    async def fetch_config() -> int:
        calls.append("config")
        return random.randint(1, 10**9)

    @durable("rt-prim-capture")
    async def flow() -> str:
        r = await zart.capture("rt-prim-rand", lambda: random.random())
        moment = await zart.capture("rt-prim-moment", lambda: datetime.now(timezone.utc))
        moments.append(moment)
        i = await zart.capture("rt-prim-id", new_id)
        c = await zart.capture("rt-prim-config", fetch_config)
        seen.append((r, i, c))
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash
        return "done"

    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="capture-1")
    assert app.run(flow, execution_id="capture-1") == "done"
    assert seen[0] == seen[1]
    assert isinstance(seen[1][1], uuid.UUID)  # typed by new_id's annotation
    assert isinstance(seen[1][0], float) and isinstance(seen[1][2], int)
    assert calls == ["id", "config"]
    assert moments[0] == moments[1]
    assert isinstance(moments[1], datetime) and moments[1].tzinfo is not None
    assert [i.kind for i in app.steps("capture-1")] == ["capture"] * 4


def test_primitives_outside_a_durable() -> None:
    async def main() -> tuple[datetime, int, float]:
        started = time.monotonic()
        await zart.sleep("rt-prim-outside-nap", 0.02)
        slept = time.monotonic() - started
        return await zart.now("rt-prim-outside-now"), await zart.capture("c", lambda: 5), slept

    moment, value, slept = asyncio.run(main())
    assert moment.tzinfo is not None
    assert value == 5
    assert slept >= 0.015

    async def wait() -> object:
        return await zart.wait_for_event("rt-prim-outside-evt", timeout=0.01)

    with pytest.raises(ZartError):
        asyncio.run(wait())


# --------------------------------------------------------------------------- sleep


def test_sleep_in_loop_with_unique_names(app: zart.Zart) -> None:
    @durable("rt-prim-sleeps")
    async def flow(n: int) -> int:
        for i in range(n):
            await zart.sleep(f"rt-prim-nap-{i}", 0.05)
        await zart.sleep("rt-prim-nap-td", timedelta(milliseconds=20))
        return n

    started = time.monotonic()
    assert app.run(flow, 3, execution_id="sleep-1") == 3
    assert time.monotonic() - started >= 0.15
    infos = app.steps("sleep-1")
    assert [i.name for i in infos] == [
        "rt-prim-nap-0",
        "rt-prim-nap-1",
        "rt-prim-nap-2",
        "rt-prim-nap-td",
    ]
    assert {(i.kind, i.status) for i in infos} == {("sleep", "completed")}


def test_completed_sleep_is_not_slept_again(app: zart.Zart) -> None:
    state = {"crash": True}

    @durable("rt-prim-sleep-replay")
    async def flow() -> str:
        await zart.sleep("rt-prim-replay-nap", 0.6)
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash
        return "awake"

    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="sleep-replay")
    started = time.monotonic()
    assert app.run(flow, execution_id="sleep-replay") == "awake"
    assert time.monotonic() - started < 0.5


def test_sleep_until_a_moment(app: zart.Zart) -> None:
    @durable("rt-prim-sleep-until")
    async def flow() -> str:
        target = await zart.capture(
            "rt-prim-target", lambda: datetime.now(timezone.utc) + timedelta(milliseconds=80)
        )
        await zart.sleep_until("rt-prim-until", target)
        return "ok"

    started = time.monotonic()
    assert app.run(flow, execution_id="until-1") == "ok"
    assert time.monotonic() - started >= 0.07


def test_long_sleep_releases_the_execution_and_can_be_cancelled(app: zart.Zart) -> None:
    after: list[int] = []

    @step("rt-prim-after-nap")
    async def later() -> int:
        after.append(1)
        return 1

    @durable("rt-prim-long-sleep")
    async def flow() -> int:
        await zart.sleep("rt-prim-long-nap", timedelta(hours=1))
        return await later()

    app.submit(flow, execution_id="long-sleep")
    asyncio.run(app.worker(poll_interval=0.05).run_async(until_idle=True))
    st = app.status("long-sleep")
    assert st.status == "sleeping"
    assert st.lease_owner is None
    assert st.wake_at is not None
    remaining = (st.wake_at - datetime.now(timezone.utc)).total_seconds()
    assert 3500 < remaining <= 3600
    assert [(i.name, i.kind) for i in app.steps("long-sleep")] == [("rt-prim-long-nap", "sleep")]

    assert app.cancel("long-sleep") is True
    with pytest.raises(zart.ExecutionCancelledError):
        app.run(flow, execution_id="long-sleep")
    assert after == []


def test_constant_sleep_name_in_loop_is_a_duplicate(app: zart.Zart) -> None:
    @durable("rt-prim-sleep-dup")
    async def flow() -> None:
        for _ in range(3):
            await zart.sleep("rt-prim-poll", 0.01)

    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="sleep-dup")
    assert isinstance(info.value.cause, DuplicateStepError)
    assert "rt-prim-poll" in str(info.value)


def test_primitive_and_step_share_the_name_space(app: zart.Zart) -> None:
    @step("rt-prim-shared")
    async def work() -> int:
        return 1

    @durable("rt-prim-shared-ns")
    async def flow() -> None:
        await work()
        await zart.now("rt-prim-shared")

    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="shared-ns")
    assert isinstance(info.value.cause, DuplicateStepError)


def test_invalid_sleep_arguments() -> None:
    async def negative() -> None:
        await zart.sleep("rt-prim-neg", -1)

    async def naive() -> None:
        await zart.sleep_until("rt-prim-naive", datetime(2030, 1, 1))

    with pytest.raises(ValueError):
        asyncio.run(negative())
    with pytest.raises(ValueError):
        asyncio.run(naive())


# --------------------------------------------------------------------------- misuse inside a step


def test_step_called_inside_a_step_body(app: zart.Zart) -> None:
    @step("rt-prim-inner")
    async def inner() -> int:
        return 1

    @step("rt-prim-outer", retry=zart.RetryPolicy(max_attempts=1))
    async def outer() -> int:
        return await inner()

    @durable("rt-prim-nested")
    async def flow() -> str:
        try:
            await outer()
        except StepError as exc:
            return str(exc)
        return "no error"

    message = app.run(flow, execution_id="nested-1")
    assert "rt-prim-inner" in message and "rt-prim-outer" in message

    # Outside a durable execution the nested call is refused just the same.
    async def call_outer() -> int:
        return await outer()

    with pytest.raises(ZartError) as info:
        asyncio.run(call_outer())
    assert "rt-prim-inner" in str(info.value) and "rt-prim-outer" in str(info.value)


def test_primitive_called_inside_a_step_body() -> None:
    @step("rt-prim-bad-body")
    async def bad_body() -> datetime:
        return await zart.now("rt-prim-now-in-step")

    async def call() -> datetime:
        return await bad_body()

    with pytest.raises(ZartError) as info:
        asyncio.run(call())
    assert "rt-prim-now-in-step" in str(info.value) and "rt-prim-bad-body" in str(info.value)


# --------------------------------------------------------------------------- events


def test_event_sent_before_the_wait_is_delivered(app: zart.Zart) -> None:
    @durable("rt-prim-evt-early")
    async def flow() -> dict[str, str]:
        payload = await zart.wait_for_event("rt-prim-approved")
        assert isinstance(payload, dict)
        return payload

    app.submit(flow, execution_id="evt-early")
    app.send_event("evt-early", "rt-prim-approved", {"by": "ana"})
    assert app.run(flow, execution_id="evt-early") == {"by": "ana"}
    infos = app.steps("evt-early")
    assert [(i.name, i.kind, i.status) for i in infos] == [
        ("rt-prim-approved", "event", "completed")
    ]


def test_event_sent_while_body_runs_before_the_wait(app: zart.Zart) -> None:
    entered = asyncio.Event()
    gate = asyncio.Event()

    @step("rt-prim-evt-busy")
    async def busy() -> int:
        entered.set()
        await gate.wait()
        return 1

    @durable("rt-prim-evt-mid")
    async def flow() -> object:
        await busy()
        return await zart.wait_for_event("rt-prim-go")

    async def main() -> object:
        handle = await app.start(flow, execution_id="evt-mid")
        await asyncio.wait_for(entered.wait(), 10)
        app.send_event("evt-mid", "rt-prim-go", [1, 2, 3])
        gate.set()
        return await handle.result(timeout=10)

    assert asyncio.run(main()) == [1, 2, 3]


def test_event_sent_to_a_waiting_execution(app: zart.Zart) -> None:
    result: dict[str, object] = {}

    @durable("rt-prim-evt-wait")
    async def flow() -> object:
        return await zart.wait_for_event("rt-prim-later", timeout=30)

    def runner() -> None:
        try:
            result["value"] = app.run(flow, execution_id="evt-wait")
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=runner)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if app.status("evt-wait").status == "waiting":
                    break
            except zart.ExecutionNotFoundError:
                pass
            time.sleep(0.02)
        assert app.status("evt-wait").status == "waiting"
        app.send_event("evt-wait", "rt-prim-later", "hello")
    finally:
        thread.join(15)
    assert not thread.is_alive()
    assert result == {"value": "hello"}
    assert app.status("evt-wait").status == "completed"


def test_each_event_reaches_one_wait(app: zart.Zart) -> None:
    @durable("rt-prim-evt-two")
    async def flow() -> list[object]:
        first = await zart.wait_for_event("rt-prim-tick-1")
        second = await zart.wait_for_event("rt-prim-tick-2")
        return [first, second]

    app.submit(flow, execution_id="evt-two")
    app.send_event("evt-two", "rt-prim-tick-2", 2)
    app.send_event("evt-two", "rt-prim-tick-1", 1)
    app.send_event("evt-two", "rt-prim-tick-1", "extra")
    assert app.run(flow, execution_id="evt-two") == [1, 2]


def test_wait_for_event_timeout_is_catchable(app: zart.Zart) -> None:
    @durable("rt-prim-evt-timeout")
    async def flow() -> str:
        try:
            await zart.wait_for_event("rt-prim-never", timeout=0.2)
        except EventTimeoutError:
            return "timed out"
        return "got it"

    started = time.monotonic()
    assert app.run(flow, execution_id="evt-timeout") == "timed out"
    elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 5
    infos = app.steps("evt-timeout")
    assert [(i.name, i.status) for i in infos] == [("rt-prim-never", "failed")]


def test_wait_for_event_timeout_unhandled_fails(app: zart.Zart) -> None:
    @durable("rt-prim-evt-timeout2")
    async def flow() -> object:
        return await zart.wait_for_event("rt-prim-never2", timedelta(milliseconds=100))

    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="evt-timeout2")
    assert info.value.error_type == "EventTimeoutError"
    assert "rt-prim-never2" in str(info.value)
    assert issubclass(EventTimeoutError, TimeoutError)


def test_event_payload_must_be_json(app: zart.Zart) -> None:
    @durable("rt-prim-evt-json")
    async def flow() -> object:
        return await zart.wait_for_event("rt-prim-x")

    app.submit(flow, execution_id="evt-json")
    with pytest.raises(zart.SerializationError):
        app.send_event("evt-json", "rt-prim-x", object())
