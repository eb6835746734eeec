"""Failures, the duplicate-name guard and replay drift, as users see them."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import zart
from zart import (
    DuplicateStepError,
    ReplayMismatchError,
    StepError,
    TaskError,
    ZartError,
    durable,
    step,
)

from runtime_app import SimulatedCrash

HERE = Path(__file__)


def _line_of(marker: str) -> int:
    """Line number (1-based) of the one line of this file ending with ``# <marker>``."""
    lines = [
        n
        for n, text in enumerate(HERE.read_text().splitlines(), 1)
        if text.rstrip().endswith(f"# {marker}")
    ]
    assert len(lines) == 1, marker
    return lines[0]


# --------------------------------------------------------------------------- failed executions


def test_failed_execution_stores_error_and_is_not_rerun(app: zart.Zart) -> None:
    calls: list[str] = []
    body_runs: list[int] = []

    @step("rt-err-fail-prep")
    async def prep() -> int:
        calls.append("prep")
        return 1

    @durable("rt-err-fail")
    async def failing() -> int:
        body_runs.append(1)
        await prep()
        raise ValueError("the order has no lines")

    with pytest.raises(TaskError) as first:
        app.run(failing, execution_id="fail-1")
    err = first.value
    assert err.execution_id == "fail-1"
    assert err.error_type == "ValueError"
    assert isinstance(err.cause, ValueError)
    assert "the order has no lines" in str(err)

    st = app.status("fail-1")
    assert st.status == "failed"
    assert st.error is not None and "the order has no lines" in st.error
    assert [(s.name, s.status) for s in app.steps("fail-1")] == [("rt-err-fail-prep", "completed")]

    with pytest.raises(TaskError) as second:
        app.run(failing, execution_id="fail-1")
    assert second.value.execution_id == "fail-1"
    assert second.value.error_type == "ValueError"
    assert "the order has no lines" in str(second.value)
    assert calls == ["prep"]
    assert body_runs == [1]
    assert app.status("fail-1").attempts == 1


def test_failed_step_error_is_the_same_on_rerun(app: zart.Zart) -> None:
    @step("rt-err-failstep-charge", retry=zart.RetryPolicy(max_attempts=1))
    async def charge() -> int:
        raise ValueError("card declined")

    @durable("rt-err-failstep")
    async def pay() -> int:
        return await charge()

    with pytest.raises(TaskError) as first:
        app.run(pay, execution_id="failstep-1")
    with pytest.raises(TaskError) as second:
        app.run(pay, execution_id="failstep-1")
    assert "rt-err-failstep-charge" in str(first.value)
    assert "card declined" in str(first.value)
    assert second.value.error_type == first.value.error_type
    assert str(second.value) == str(first.value)


def test_caught_step_failure_lets_the_execution_continue(app: zart.Zart) -> None:
    @step("rt-err-catch-risky", retry=zart.RetryPolicy(max_attempts=1))
    async def risky() -> int:
        raise KeyError("missing")

    @step("rt-err-catch-fallback")
    async def fallback() -> int:
        return 5

    @durable("rt-err-catch")
    async def careful() -> int:
        try:
            return await risky()
        except StepError as exc:
            assert exc.step_name == "rt-err-catch-risky"
            return await fallback()

    assert app.run(careful, execution_id="catch-1") == 5
    assert app.status("catch-1").status == "completed"
    assert [(s.name, s.status) for s in app.steps("catch-1")] == [
        ("rt-err-catch-risky", "failed"),
        ("rt-err-catch-fallback", "completed"),
    ]


def test_failed_step_is_not_rerun_on_resume(app: zart.Zart) -> None:
    calls: list[str] = []
    state = {"crash": True}

    @step("rt-err-resume-risky", retry=zart.RetryPolicy(max_attempts=1))
    async def risky() -> int:
        calls.append("risky")
        raise ValueError("bad luck")

    @durable("rt-err-resume")
    async def flow() -> str:
        try:
            await risky()
        except StepError as exc:
            outcome = f"{exc.error_type}: {exc.message}"
        if state["crash"]:
            raise SimulatedCrash
        return outcome

    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="resume-fail")
    state["crash"] = False
    # The replayed failure is raised again (same type name and message), not re-run.
    assert app.run(flow, execution_id="resume-fail") == "ValueError: bad luck"
    assert calls == ["risky"]


# --------------------------------------------------------------------------- duplicate guard


def test_duplicate_step_name_message(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-err-dup-ping")
    async def ping() -> int:
        calls.append(1)
        return len(calls)

    @durable("rt-err-dup")
    async def dup() -> str:
        await ping()  # dup-first-call
        try:
            await ping()  # dup-second-call
        except DuplicateStepError as exc:
            return str(exc)
        return "no error"

    message = app.run(dup, execution_id="dup-1")
    assert calls == [1]
    assert "rt-err-dup-ping" in message
    assert f"{HERE.name}:{_line_of('dup-first-call')}" in message
    assert f"{HERE.name}:{_line_of('dup-second-call')}" in message
    # Both fixes: a template field and .named().
    assert "{" in message and "@step(" in message
    assert ".named(" in message


def test_unhandled_duplicate_fails_the_execution(app: zart.Zart) -> None:
    @step("rt-err-dup2-ping")
    async def ping() -> int:
        return 1

    @durable("rt-err-dup2")
    async def dup() -> int:
        return await ping() + await ping()

    with pytest.raises(TaskError) as info:
        app.run(dup, execution_id="dup-2")
    assert isinstance(info.value.cause, DuplicateStepError)
    assert info.value.error_type == "DuplicateStepError"
    assert "rt-err-dup2-ping" in str(info.value)
    assert app.status("dup-2").status == "failed"


def test_constant_name_in_loop_raises_on_second_iteration(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-err-loop-process")
    async def process(i: int) -> int:
        calls.append(i)
        return i * 2

    @durable("rt-err-loop")
    async def loop() -> list[int]:
        return [await process(i) for i in range(3)]

    with pytest.raises(TaskError) as info:
        app.run(loop, execution_id="loop-1")
    assert isinstance(info.value.cause, DuplicateStepError)
    assert calls == [0]  # iteration 2 never ran (nor got iteration 1's result)
    assert [s.name for s in app.steps("loop-1")] == ["rt-err-loop-process"]


def test_named_and_template_calls_in_a_loop_are_fine(app: zart.Zart) -> None:
    @step("rt-err-ok-notify")
    async def notify(user: str) -> str:
        return f"sent:{user}"

    @step("rt-err-ok-item-{i}")
    async def item(i: int) -> int:
        return i

    @durable("rt-err-ok-loop")
    async def loop(users: list[str]) -> list[str]:
        out = [await notify(u).named(f"rt-err-ok-notify-{i}") for i, u in enumerate(users)]
        out += [str(await item(i)) for i in range(len(users))]
        return out

    assert app.run(loop, ["ana", "ben"], execution_id="ok-loop") == [
        "sent:ana",
        "sent:ben",
        "0",
        "1",
    ]
    assert [s.name for s in app.steps("ok-loop")] == [
        "rt-err-ok-notify-0",
        "rt-err-ok-notify-1",
        "rt-err-ok-item-0",
        "rt-err-ok-item-1",
    ]


def test_gather_of_distinct_names_works_and_replays(app: zart.Zart) -> None:
    calls: list[int] = []
    state = {"crash": True}

    @step("rt-err-fan-{i}")
    async def fan(i: int) -> int:
        calls.append(i)
        await asyncio.sleep(0.01 * (4 - i))
        return i * i

    @durable("rt-err-gather")
    async def gathered(n: int) -> list[int]:
        results = await asyncio.gather(*(fan(i) for i in range(n)))
        if state["crash"]:
            raise SimulatedCrash
        return list(results)

    with pytest.raises(SimulatedCrash):
        app.run(gathered, 4, execution_id="gather-1")
    assert sorted(calls) == [0, 1, 2, 3]
    state["crash"] = False
    assert app.run(gathered, 4, execution_id="gather-1") == [0, 1, 4, 9]
    assert sorted(calls) == [0, 1, 2, 3]  # replayed, not re-run
    infos = app.steps("gather-1")
    assert sorted(s.name for s in infos) == [f"rt-err-fan-{i}" for i in range(4)]
    assert len({s.seq for s in infos}) == 4


def test_gather_with_duplicate_names_raises(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-err-gdup-{i}")
    async def fan(i: int) -> int:
        calls.append(i)
        await asyncio.sleep(0.01)
        return i

    @durable("rt-err-gather-dup")
    async def gathered() -> str:
        try:
            await asyncio.gather(fan(1), fan(2), fan(1))
        except DuplicateStepError as exc:
            return str(exc)
        return "no error"

    message = app.run(gathered, execution_id="gather-dup")
    assert "rt-err-gdup-1" in message
    assert sorted(calls) == [1, 2]


# --------------------------------------------------------------------------- replay drift


def _drift_flow(prefix: str, strict: bool | None = None) -> tuple[Any, dict[str, Any], list[int]]:
    """A durable whose step argument is read outside a step (the drift pitfall)."""
    source = {"value": 1, "crash": True}
    calls: list[int] = []

    @step(f"{prefix}-use")
    async def use(v: int) -> int:
        calls.append(v)
        return v * 10

    @durable(f"{prefix}-flow", strict=strict)
    async def flow() -> int:
        result = await use(source["value"])  # read outside a step: drifts on replay
        if source["crash"]:
            raise SimulatedCrash
        return result

    return flow, source, calls


def test_replay_drift_logs_a_warning(app: zart.Zart, caplog: pytest.LogCaptureFixture) -> None:
    flow, source, calls = _drift_flow("rt-err-drift")
    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="drift-1")
    source.update(value=2, crash=False)
    with caplog.at_level(logging.WARNING, logger="zart"):
        assert app.run(flow, execution_id="drift-1") == 10  # the stored result
    assert calls == [1]
    warnings = [
        r for r in caplog.records if r.name.startswith("zart") and r.levelno == logging.WARNING
    ]
    assert any("rt-err-drift-use" in r.getMessage() for r in warnings), caplog.text
    assert app.status("drift-1").status == "completed"


def test_replay_with_same_arguments_does_not_warn(
    app: zart.Zart, caplog: pytest.LogCaptureFixture
) -> None:
    flow, source, calls = _drift_flow("rt-err-nodrift")
    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="nodrift-1")
    source.update(crash=False)
    with caplog.at_level(logging.WARNING, logger="zart"):
        assert app.run(flow, execution_id="nodrift-1") == 10
    assert "rt-err-nodrift-use" not in caplog.text
    assert calls == [1]


def test_replay_drift_in_strict_engine_raises(db_url: str) -> None:
    flow, source, calls = _drift_flow("rt-err-strict")
    with zart.Zart(db_url, strict=True, lease_seconds=5) as app:
        with pytest.raises(SimulatedCrash):
            app.run(flow, execution_id="strict-1")
        source.update(value=2, crash=False)
        with pytest.raises(TaskError) as info:
            app.run(flow, execution_id="strict-1")
        assert isinstance(info.value.cause, ReplayMismatchError)
        assert "rt-err-strict-use" in str(info.value)
        assert app.status("strict-1").status == "failed"
    assert calls == [1]


def test_replay_drift_in_strict_durable_raises(app: zart.Zart) -> None:
    flow, source, calls = _drift_flow("rt-err-strictd", strict=True)
    assert app.strict is False
    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="strictd-1")
    source.update(value=3, crash=False)
    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="strictd-1")
    assert isinstance(info.value.cause, ReplayMismatchError)
    assert "rt-err-strictd-use" in str(info.value.cause)
    assert calls == [1]


def test_strict_mismatch_is_catchable_in_the_body(app: zart.Zart) -> None:
    source = {"value": 1, "crash": True}

    @step("rt-err-strictc-use")
    async def use(v: int) -> int:
        return v

    @durable("rt-err-strictc", strict=True)
    async def flow() -> str:
        try:
            await use(source["value"])
        except ReplayMismatchError as exc:
            return f"mismatch: {exc}"
        if source["crash"]:
            raise SimulatedCrash
        return "same"

    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="strictc-1")
    source.update(value=2, crash=False)
    result = app.run(flow, execution_id="strictc-1")
    assert result.startswith("mismatch: ")
    assert "rt-err-strictc-use" in result
    assert issubclass(ReplayMismatchError, ZartError)
