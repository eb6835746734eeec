"""The ``@step`` decorator and the awaitable ``StepCall`` it returns."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, ParamSpec, TypeVar, overload

from zart._errors import StepError, StepNameError, StepTimeoutError, UsageError
from zart._execution._context import current_execution, current_step, current_transaction
from zart._execution._naming import NameTemplate, check_name
from zart._execution._retry import DEFAULT_RETRY, RetryPolicy
from zart._serde import Codec, return_codec

P = ParamSpec("P")
R = TypeVar("R")

# Default of Step.invoke's ``timeout``: use the step's own timeout.
_STEP_TIMEOUT: Any = object()


class Step(Generic[P, R]):
    """A step definition: a function plus how its calls are named, retried and stored."""

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        template: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        transactional: bool = False,
    ) -> None:
        if isinstance(fn, (staticmethod, classmethod)):
            raise TypeError("@step goes below @staticmethod/@classmethod, directly on the function")
        self.fn = fn
        self.template = NameTemplate(template, fn)
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.timeout = timeout
        self.transactional = transactional
        self.is_async = inspect.iscoroutinefunction(fn)
        self._codec: Codec | None = None
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The step's name template as written (``"process-item-{index}"``)."""
        return self.template.template

    @property
    def codec(self) -> Codec:
        # Built on first use: the return annotation may name classes defined later.
        if self._codec is None:
            self._codec = return_codec(self.fn)
        return self._codec

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> StepCall[R]:
        frame = sys._getframe(1)
        call = StepCall(self, args, kwargs, (frame.f_code.co_filename, frame.f_lineno))
        inside = current_step.get()
        if inside is not None:
            # Checked here too, not only when awaited: a plain-def body cannot await.
            raise _nested(call, inside)
        return call

    def __repr__(self) -> str:
        return f"<zart step {self.template.template!r} ({self.fn.__qualname__})>"

    async def invoke(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = _STEP_TIMEOUT,
    ) -> R:
        """Run the body once, with no journaling, for at most ``timeout`` seconds
        (default: the step's own timeout; ``None``: no limit)."""
        if timeout is _STEP_TIMEOUT:
            timeout = self.timeout
        if self.is_async:
            coro = self.fn(*args, **kwargs)
            if self.transactional and current_transaction.get() is not None:
                return self._run_without_yielding(coro)
        elif self.transactional:
            # Runs on the event-loop thread: the transaction's connection belongs to it.
            return self.fn(*args, **kwargs)  # type: ignore[return-value]
        else:
            # A plain def runs in a worker thread so a blocking body does not stall
            # every other execution sharing the event loop.
            coro = asyncio.to_thread(self.fn, *args, **kwargs)  # type: ignore[arg-type]
        if timeout is not None:
            bounded: R = await _bounded(coro, timeout)
            return bounded
        return await coro  # type: ignore[misc,no-any-return]

    def _run_without_yielding(self, coro: Any) -> R:
        """Run an async transactional body to its end without letting other tasks run.

        Its transaction is open on the connection every execution in this thread
        shares: if the body waited for something (and the event loop ran other
        executions meanwhile), their checkpoints would land in this transaction, or
        their own transactions would collide with it. So the body must not suspend.
        """
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        coro.close()
        raise StepError(
            f"the body of transactional step {self.template.template!r} awaited something "
            "that suspends it (I/O, a sleep, another task). A transactional step's body runs "
            "inside the database transaction of its checkpoint and must not wait: do the "
            "waiting in a step before it, or make the body a plain def",
            retryable=False,
        )


class StepCall(Generic[R]):
    """One call of a step, not yet run. Await it (inside a durable body) to run or replay it."""

    __slots__ = ("_name", "args", "kwargs", "retry", "site", "step", "timeout")

    def __init__(
        self,
        step: Step[Any, R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        site: tuple[str, int] | None = None,
    ) -> None:
        self.step = step
        self.args = args
        self.kwargs = kwargs
        self.site = site
        self._name: str | None = None
        self.retry: RetryPolicy = step.retry
        self.timeout: float | None = step.timeout

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self.step.template.render(self.args, self.kwargs)
        return self._name

    def named(self, name: str) -> StepCall[R]:
        """Use ``name`` for this call instead of the step's template (unique per iteration!)."""
        self._name = check_name(name)
        return self

    def with_retry(self, policy: RetryPolicy) -> StepCall[R]:
        """Use another retry policy for this call."""
        self.retry = policy
        return self

    def with_timeout(self, seconds: float | None) -> StepCall[R]:
        """Fail an attempt of this call that runs longer than ``seconds``."""
        self.timeout = seconds
        return self

    def __await__(self) -> Generator[Any, None, R]:
        return self._run().__await__()

    async def _run(self) -> R:
        inside = current_step.get()
        if inside is not None:
            raise _nested(self, inside)
        ctx = current_execution.get()
        if ctx is None:
            # Outside a durable execution a step is just its function (unit tests).
            token = current_step.set(self.name)
            try:
                return await self._invoke_once()
            finally:
                current_step.reset(token)
        return await ctx.run_step(self)  # type: ignore[no-any-return]

    async def _invoke_once(self) -> R:
        # This call's timeout replaces the step's (it may lift or extend it, not only shorten).
        return await self.step.invoke(self.args, self.kwargs, self.timeout)

    def __repr__(self) -> str:
        return f"<StepCall {self.name!r}>"


async def _bounded(body: Any, timeout: float) -> Any:
    """Run ``body`` for at most ``timeout`` seconds. Once the timeout has fired the
    attempt has failed, whatever the body does with its cancellation: a body that
    catches CancelledError and returns a value is not a completed step (unlike
    asyncio.wait_for, which would hand back that value)."""
    task = asyncio.ensure_future(body)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()  # the caller was cancelled: the body goes with it
        raise
    if done:
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task  # let it run its cleanup; its value or error no longer counts
    raise StepTimeoutError(f"step attempt timed out after {timeout:g} s")


def _nested(call: StepCall[Any], inside: str) -> UsageError:
    return UsageError(
        f"step {call.name!r} was called inside the body of step {inside!r}. A step's body "
        "runs outside the durable journal: the inner call would get no checkpoint of its own "
        "and be retried with the outer step. Call both steps from the durable function, or "
        f"call the plain function (`{call.step.fn.__name__}.fn(...)`) if it is part of the "
        "outer step's work"
    )


@overload
def step(template: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...
@overload
def step(template: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    template: str | None = None,
    /,
    *,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    transactional: bool = False,
) -> Callable[[Callable[P, Any]], Step[P, Any]]: ...


def step(
    template: Any = None,
    /,
    *,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    transactional: bool = False,
) -> Any:
    """Declare a durable step.

    ``@step("process-item-{index}")`` names each call from the call's arguments
    (``str.format`` fields naming parameters); a bare ``@step`` names the step
    after the function. The template is checked here, at import time.

    ``retry`` sets the retry policy, ``timeout`` bounds each attempt (seconds).
    ``transactional=True`` runs the body inside the database transaction that
    writes its checkpoint: the body gets that connection from
    :func:`zart.transaction` and its writes commit together with the checkpoint,
    or not at all. Keep such steps short: on SQLite they hold the write lock.
    """
    if callable(template) and not isinstance(template, str):
        return Step(template, template.__name__, retry=retry, timeout=timeout)
    if template is not None and not isinstance(template, str):
        raise StepNameError(f"@step expects a name template string, got {template!r}")

    def decorate(fn: Callable[P, Any]) -> Step[P, Any]:
        if isinstance(fn, Step):
            raise TypeError(f"{fn!r} is already a step")
        return Step(
            fn,
            template if template is not None else fn.__name__,
            retry=retry,
            timeout=timeout,
            transactional=transactional,
        )

    return decorate


zart_step = step
