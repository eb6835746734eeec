"""Step retries: policies, per-call options, timeouts, and attempt counts across a crash."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import zart
from zart import RetryPolicy, StepError, StepTimeoutError, TaskError, durable, step

import runtime_app

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False)


def _flaky(
    prefix: str, fail_times: int, exc: BaseException, **options: Any
) -> tuple[Any, list[int]]:
    """A step failing its first ``fail_times`` attempts with ``exc``, and a durable
    that returns either its result or a description of the StepError it raised."""
    calls: list[int] = []

    @step(f"{prefix}-step", **options)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise exc
        return f"ok after {len(calls)}"

    @durable(f"{prefix}-flow")
    async def flow() -> str:
        try:
            return await flaky()
        except StepError as err:
            return f"StepError {err.step_name} {err.error_type} {err.message}"

    return flow, calls


def _only_step(app: zart.Zart, execution_id: str) -> zart.StepInfo:
    infos = app.steps(execution_id)
    assert len(infos) == 1
    return infos[0]


def test_retries_until_success(app: zart.Zart) -> None:
    flow, calls = _flaky("rt-retry-ok", 2, ValueError("transient"), retry=FAST)
    assert app.run(flow, execution_id="retry-ok") == "ok after 3"
    assert len(calls) == 3
    info = _only_step(app, "retry-ok")
    assert info.status == "completed"
    assert info.attempts == 3
    assert info.error is None


def test_exhausted_attempts_fail_the_step(app: zart.Zart) -> None:
    flow, calls = _flaky("rt-retry-exhaust", 99, ValueError("still broken"), retry=FAST)
    result = app.run(flow, execution_id="retry-exhaust")
    assert result == "StepError rt-retry-exhaust-step ValueError still broken"
    assert len(calls) == 3
    info = _only_step(app, "retry-exhaust")
    assert info.status == "failed"
    assert info.attempts == 3
    assert info.error is not None and "still broken" in info.error


def test_unhandled_step_failure_fails_the_execution(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-retry-unhandled-step", retry=FAST)
    async def broken() -> int:
        calls.append(1)
        raise ConnectionError("service down")

    @durable("rt-retry-unhandled")
    async def flow() -> int:
        return await broken()

    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="retry-unhandled")
    err = info.value
    assert isinstance(err.cause, StepError)
    assert err.cause.step_name == "rt-retry-unhandled-step"
    assert err.cause.error_type == "ConnectionError"
    assert "service down" in str(err)
    assert len(calls) == 3
    st = app.status("retry-unhandled")
    assert st.status == "failed"
    assert st.error is not None and "service down" in st.error


def test_step_error_not_retryable_fails_at_once(app: zart.Zart) -> None:
    flow, calls = _flaky(
        "rt-retry-fatal", 99, StepError("invalid card", retryable=False), retry=FAST
    )
    result = app.run(flow, execution_id="retry-fatal")
    assert result.startswith("StepError rt-retry-fatal-step")
    assert result.endswith("invalid card")
    assert len(calls) == 1
    assert _only_step(app, "retry-fatal").attempts == 1


def test_retryable_step_error_is_retried(app: zart.Zart) -> None:
    flow, calls = _flaky("rt-retry-soft", 1, StepError("busy, try again"), retry=FAST)
    assert app.run(flow, execution_id="retry-soft") == "ok after 2"
    assert len(calls) == 2


def test_retry_on_limits_which_errors_are_retried(app: zart.Zart) -> None:
    only_value = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(ValueError,))
    flow, calls = _flaky("rt-retry-on-key", 99, KeyError("k"), retry=only_value)
    assert app.run(flow, execution_id="retry-on-key").startswith("StepError")
    assert len(calls) == 1
    assert _only_step(app, "retry-on-key").attempts == 1

    flow2, calls2 = _flaky("rt-retry-on-value", 2, ValueError("v"), retry=only_value)
    assert app.run(flow2, execution_id="retry-on-value") == "ok after 3"
    assert len(calls2) == 3


def test_max_attempts_one_never_retries(app: zart.Zart) -> None:
    flow, calls = _flaky("rt-retry-once", 1, ValueError("x"), retry=RetryPolicy(max_attempts=1))
    assert app.run(flow, execution_id="retry-once").startswith("StepError")
    assert len(calls) == 1


def test_retry_delays_are_waited(app: zart.Zart) -> None:
    slow = RetryPolicy(max_attempts=3, initial_delay=0.1, backoff=2.0, jitter=False)
    flow, _calls = _flaky("rt-retry-delay", 2, ValueError("x"), retry=slow)
    started = time.monotonic()
    assert app.run(flow, execution_id="retry-delay") == "ok after 3"
    assert time.monotonic() - started >= 0.3  # 0.1 s, then 0.2 s


def test_with_retry_overrides_the_decorator_policy(app: zart.Zart) -> None:
    calls: dict[str, int] = {"a": 0, "b": 0}

    @step("rt-retry-call-{key}", retry=RetryPolicy(max_attempts=1))
    async def flaky(key: str, fail_times: int) -> int:
        calls[key] += 1
        if calls[key] <= fail_times:
            raise ValueError(key)
        return calls[key]

    @durable("rt-retry-call")
    async def flow() -> list[str]:
        out = [str(await flaky("a", 2).with_retry(FAST))]
        try:
            await flaky("b", 2)
        except StepError:
            out.append("b failed")
        return out

    assert app.run(flow, execution_id="retry-call") == ["3", "b failed"]
    assert calls == {"a": 3, "b": 1}


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_delay=-1)


# --------------------------------------------------------------------------- timeouts


def test_step_timeout_is_retried_then_fails(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-retry-timeout-step", timeout=0.05, retry=RetryPolicy(2, initial_delay=0.01))
    async def hangs() -> int:
        calls.append(1)
        await asyncio.sleep(5)
        return 1

    @durable("rt-retry-timeout")
    async def flow() -> str:
        try:
            await hangs()
        except StepError as err:
            assert isinstance(err.__cause__, StepTimeoutError)
            return f"{err.error_type}"
        return "no timeout"

    started = time.monotonic()
    assert app.run(flow, execution_id="timeout-1") == "StepTimeoutError"
    assert time.monotonic() - started < 2
    assert len(calls) == 2
    info = _only_step(app, "timeout-1")
    assert info.status == "failed"
    assert info.attempts == 2
    assert info.error is not None and info.error.startswith("StepTimeoutError")


def test_step_timeout_retry_then_success(app: zart.Zart) -> None:
    calls: list[int] = []

    @step("rt-retry-timeout-ok-step", timeout=0.05, retry=FAST)
    async def slow_once() -> int:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(5)
        return len(calls)

    @durable("rt-retry-timeout-ok")
    async def flow() -> int:
        return await slow_once()

    assert app.run(flow, execution_id="timeout-ok") == 2
    assert _only_step(app, "timeout-ok").attempts == 2


def test_with_timeout_per_call(app: zart.Zart) -> None:
    calls: list[float] = []

    @step("rt-retry-pcto-{n}", retry=RetryPolicy(max_attempts=1))
    async def nap(n: int, seconds: float) -> float:
        calls.append(seconds)
        await asyncio.sleep(seconds)
        return seconds

    @durable("rt-retry-pcto")
    async def flow() -> list[str]:
        out = [str(await nap(1, 0.01).with_timeout(1.0))]
        try:
            await nap(2, 5).with_timeout(0.05)
        except StepError as err:
            out.append(str(err.error_type))
        return out

    started = time.monotonic()
    assert app.run(flow, execution_id="pcto-1") == ["0.01", "StepTimeoutError"]
    assert time.monotonic() - started < 2


def test_with_timeout_extends_the_decorator_timeout(app: zart.Zart) -> None:
    @step("rt-retry-ext-{n}", timeout=0.05, retry=RetryPolicy(max_attempts=1))
    async def nap(n: int) -> int:
        await asyncio.sleep(0.2)
        return n

    @durable("rt-retry-ext")
    async def flow() -> list[int]:
        return [await nap(1).with_timeout(2.0), await nap(2).with_timeout(None)]

    assert app.run(flow, execution_id="ext-1") == [1, 2]


# --------------------------------------------------------------------------- crash during backoff


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _kill_during_backoff(app: zart.Zart, child_env: dict[str, str], eid: str) -> None:
    """Start the child, wait until attempt 1 failed (it then sleeps 60 s), SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import runtime_app; runtime_app.child_main()", eid],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def retrying() -> bool:
            assert child.poll() is None, child.stdout.read() if child.stdout else ""
            try:
                infos = app.steps(eid)
            except zart.ExecutionNotFoundError:
                return False
            return any(i.status == "retrying" for i in infos)

        _wait_for(retrying)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout:
            child.stdout.close()
    info = _only_step(app, eid)
    assert (info.name, info.status, info.attempts) == ("rt-crash-flaky", "retrying", 1)
    assert app.status(eid).status == "running"


@pytest.fixture
def crash_step(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """runtime_app's flaky step, with a short backoff in this (the resuming) process."""
    runtime_app.FLAKY_CALLS.clear()
    monkeypatch.setattr(
        runtime_app.crash_flaky,
        "retry",
        RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False),
    )
    monkeypatch.setattr(runtime_app, "FLAKY_SUCCEEDS", False)
    return runtime_app


def test_attempts_continue_after_a_crash_in_backoff(
    app: zart.Zart, child_env: dict[str, str], crash_step: ModuleType
) -> None:
    _kill_during_backoff(app, child_env, "crash-retry-1")
    # Resume here: only attempt 2 of 2 is left, so the step fails after one more call.
    with pytest.raises(TaskError) as info:
        app.run(runtime_app.retry_crash_flow, execution_id="crash-retry-1")
    assert "flaky failure" in str(info.value)
    assert crash_step.FLAKY_CALLS == [1]
    step_info = _only_step(app, "crash-retry-1")
    assert (step_info.status, step_info.attempts) == ("failed", 2)
    st = app.status("crash-retry-1")
    assert st.status == "failed"
    assert st.attempts == 2  # two runs of the body: the killed one and this one


def test_attempt_count_after_crash_then_success(
    app: zart.Zart,
    child_env: dict[str, str],
    crash_step: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _kill_during_backoff(app, child_env, "crash-retry-2")
    monkeypatch.setattr(runtime_app, "FLAKY_SUCCEEDS", True)
    assert app.run(runtime_app.retry_crash_flow, execution_id="crash-retry-2") == "ok"
    assert crash_step.FLAKY_CALLS == [1]
    step_info = _only_step(app, "crash-retry-2")
    assert (step_info.status, step_info.attempts) == ("completed", 2)
