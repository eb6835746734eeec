"""Durable primitives: timers, events, captured values and child executions.

Each is named like a step and shares the step name space of its execution, so
the duplicate-name guard (and zart-lint's loop rules) apply to them too.
Outside a durable execution they simply do the plain thing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from zart._errors import (
    EventTimeoutError,
    ExecutionCancelledError,
    SerializationError,
    TaskError,
    UsageError,
    ZartError,
)
from zart._execution._context import current_execution, current_step
from zart._execution._divergence import PATCH_PREFIX
from zart._execution._identifiers import child_id
from zart._execution._journal import ExecutionContext, Suspend
from zart._execution._naming import check_name
from zart._serde import Codec, codec_for, return_codec
from zart._store import NO_EVENT, RUNNING, SLEEPING, STEP_FAILED, WAITING, LeaseGone

if TYPE_CHECKING:
    from zart._execution._durable import DurableFunction

T = TypeVar("T")

# Sleeps at most this long stay in the process instead of releasing the execution.
IN_PROCESS_SLEEP = 1.0

_DATETIME = codec_for(datetime)


def _caller_site() -> tuple[str, int]:
    frame = sys._getframe(2)
    return (frame.f_code.co_filename, frame.f_lineno)


def _context(kind: str, name: str) -> ExecutionContext | None:
    check_name(name, f"{kind} name")
    inside = current_step.get()
    if inside is not None:
        raise UsageError(
            f"zart.{kind}({name!r}) was called inside the body of step {inside!r}; "
            "durable primitives belong in the durable function, not in a step"
        )
    ctx = current_execution.get()
    return ctx if isinstance(ctx, ExecutionContext) else None


# The longest sleep, wait or deadline zart accepts: stored times stay far inside what
# datetime can show (year 9999), and a typo such as 1e12 seconds fails loudly.
MAX_WAIT_SECONDS = 100 * 366 * 86400.0


def _seconds(duration: float | timedelta, what: str = "sleep duration") -> float:
    try:
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"{what} must be a number of seconds or a timedelta, got {duration!r}"
        ) from None
    if math.isnan(seconds) or seconds < 0 or seconds > MAX_WAIT_SECONDS:
        raise ValueError(
            f"{what} must be between 0 and {MAX_WAIT_SECONDS:.0f} seconds (100 years), "
            f"got {duration!r}"
        )
    return seconds


def _timestamp(when: datetime) -> float:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(
            "sleep_until needs a timezone-aware datetime (e.g. datetime.now(timezone.utc))"
        )
    target = when.timestamp()
    if target - time.time() > MAX_WAIT_SECONDS:
        raise ValueError(f"sleep_until {when.isoformat()} is more than 100 years away")
    return target


async def sleep(name: str, duration: float | timedelta) -> None:
    """Durable timer: resumes after ``duration`` even across restarts.

    While it sleeps the execution gives up its worker slot; on replay a sleep
    that already elapsed returns at once.
    """
    seconds = _seconds(duration)
    ctx = _context("sleep", name)
    if ctx is None:
        await asyncio.sleep(seconds)
        return
    await _durable_sleep(ctx, name, lambda: time.time() + seconds, _caller_site())


async def sleep_until(name: str, when: datetime) -> None:
    """Durable timer until a timezone-aware moment."""
    target = _timestamp(when)
    ctx = _context("sleep_until", name)
    if ctx is None:
        await asyncio.sleep(max(0.0, target - time.time()))
        return
    await _durable_sleep(ctx, name, lambda: target, _caller_site())


async def _durable_sleep(
    ctx: ExecutionContext, name: str, wake: Callable[[], float], site: tuple[str, int]
) -> None:
    entry = await ctx.entry(name, "sleep", site)
    if entry.done:
        return
    if entry.record is not None and entry.record.output is not None:
        wake_at = float(json.loads(entry.record.output))  # the time set by the first run
    else:
        wake_at = wake()
        entry.write(SLEEPING, json.dumps(wake_at), finished=False)
    remaining = wake_at - time.time()
    if remaining > IN_PROCESS_SLEEP:
        raise Suspend(SLEEPING, wake_at)
    if remaining > 0:
        ctx.busy += 1  # a replaying branch still on its way: no divergence judged meanwhile
        try:
            await asyncio.sleep(remaining)
        finally:
            ctx.busy -= 1
    entry.complete(json.dumps(wake_at))


async def wait_for_event(name: str, timeout: float | timedelta | None = None) -> Any:
    """Wait for the event ``name`` sent with ``Zart.send_event``; returns its payload.

    An event sent before the wait is reached is kept and delivered; each event
    reaches one wait exactly once. With ``timeout`` a missing event raises
    :class:`EventTimeoutError` (catchable) instead of waiting forever. The deadline
    is absolute: restarts do not extend it, and an event sent after it is not
    delivered to this wait (it stays for a later one).
    """
    seconds = _seconds(timeout, "timeout") if timeout is not None else None
    ctx = _context("wait_for_event", name)
    if ctx is None:
        raise ZartError("zart.wait_for_event() only works inside a durable execution")
    entry = await ctx.entry(name, "event", _caller_site())
    if entry.done:
        return json.loads(entry.record.output or "null") if entry.record else None
    if entry.failed:
        raise EventTimeoutError(f"event {name!r} did not arrive before its timeout")
    output = entry.record.output if entry.record is not None else None
    stored = output is not None
    # The deadline set by the first run: restarts do not extend it, and an event sent
    # after it is late (left for a later wait), even if this run only now looks.
    deadline = json.loads(output) if output is not None else None
    try:
        payload = ctx.journal.consume_event_into_step(
            ctx.token, ctx.execution_id, name, entry.seq, sent_by=deadline
        )
    except LeaseGone:
        raise ctx.lost() from None
    if payload is not NO_EVENT:
        ctx.executed += 1
        return json.loads(payload) if isinstance(payload, str) else None
    if not stored:
        deadline = time.time() + seconds if seconds is not None else None
        entry.write(WAITING, json.dumps(deadline), finished=False)
    if deadline is not None and time.time() >= deadline:
        timed_out = {"type": "zart.EventTimeoutError", "message": f"event {name!r} timed out"}
        entry.write(STEP_FAILED, json.dumps(deadline), json.dumps(timed_out))
        raise EventTimeoutError(f"event {name!r} did not arrive before its timeout")
    raise Suspend(WAITING, deadline)


async def now(name: str) -> datetime:
    """The current UTC time, recorded once: replay returns the same moment."""
    ctx = _context("now", name)
    if ctx is None:
        return datetime.now(timezone.utc)
    moment: datetime = await _record(
        ctx, name, "now", lambda: datetime.now(timezone.utc), _DATETIME, _caller_site()
    )
    return moment


async def capture(name: str, fn: Callable[[], T] | Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` once and record its value (random numbers, uuids, config reads).

    Replay returns the recorded value; the value is stored as typed JSON using
    ``fn``'s return annotation (a lambda's values must be JSON-like or tagged
    builtins such as datetime, UUID, Decimal).
    """
    ctx = _context("capture", name)
    if ctx is None:
        plain = fn()
        return await plain if inspect.isawaitable(plain) else plain
    codec = return_codec(fn)
    value: T = await _record(ctx, name, "capture", fn, codec, _caller_site())
    return value


async def _record(
    ctx: ExecutionContext,
    name: str,
    kind: str,
    fn: Callable[[], Any],
    codec: Codec,
    site: tuple[str, int],
) -> Any:
    entry = await ctx.entry(name, kind, site)
    if entry.done and entry.record is not None:
        return codec.loads(entry.record.output or "null")
    value = fn()
    if inspect.isawaitable(value):
        value = await value
    try:
        output = codec.dumps(value)
    except SerializationError as exc:
        raise SerializationError(f"zart.{kind}({name!r}) cannot store its value: {exc}") from None
    entry.complete(output)
    return value


async def run_child(
    durable_fn: DurableFunction[..., T], /, *args: Any, name: str, **kwargs: Any
) -> T:
    """Run another durable function as a child execution and return its result.

    The child's id is ``"<parent id>/<name>"`` (``/`` and ``%`` in the name escaped,
    a long id shortened with a hash), so after a crash of either the parent finds the
    same child again instead of starting a second one, and no other call's child or
    user-chosen id can be taken for it.
    """
    ctx = _context("run_child", name)
    if ctx is None:
        return await durable_fn.fn(*args, **kwargs)
    if ctx.runner is None:
        raise ZartError("run_child needs the engine that runs the parent")
    entry = await ctx.entry(name, "child", _caller_site())
    child = child_id(ctx.execution_id, name)
    if entry.done and entry.record is not None:
        return durable_fn.result_codec.loads(entry.record.output or "null")  # type: ignore[no-any-return]
    if entry.failed and entry.record is not None:
        data = json.loads(entry.record.error or "{}")
        raise TaskError(
            str(data.get("message", "")),
            execution_id=child,
            error_type=str(data.get("type", "TaskError")),
        )
    ctx.runner.create(durable_fn, args, kwargs, child, parent_id=ctx.execution_id)
    try:
        result = await _drive_child(ctx, durable_fn, child)
    except TaskError as exc:
        error = exc
        if isinstance(exc, ExecutionCancelledError):
            # The child was cancelled, not this execution: for the parent that is an
            # ordinary (catchable) failure of the call, stored like any other.
            error = TaskError(
                f"child execution {child!r} was cancelled",
                execution_id=child,
                error_type="ExecutionCancelledError",
            )
        failure = {"type": error.error_type or "TaskError", "message": error.message}
        entry.write(STEP_FAILED, error=json.dumps(failure))
        if error is exc:
            raise
        raise error from None
    entry.complete(durable_fn.result_codec.dumps(result))
    return result  # type: ignore[no-any-return]


async def patched(patch_id: str) -> bool:
    """Guard a change to durable code: ``if await zart.patched("id"): <new> else: <old>``.

    True for an execution that reaches the marker for the first time under code that
    has it; False for one whose journal shows it passed this point under the old code
    (it is replaying and recorded calls after this point remain). The answer is
    journaled (``patched:<id>``, kind "patch"), so every later replay takes the same
    branch, and the new branch may insert or rename calls without a divergence.
    Outside a durable execution: True.
    """
    name = PATCH_PREFIX + patch_id
    ctx = _context("patched", name)
    if ctx is None:
        return True
    return await ctx.patched(name, _caller_site())


def deprecate_patch(patch_id: str) -> None:
    """Mark that the old branch of ``zart.patched(patch_id)`` was removed from the code.

    Put it where the ``if await zart.patched(...)`` was, once no open execution needs
    the old branch (``Zart.patches_in_use()``). It returns None and records nothing;
    an execution whose journal took the old branch stops as ``diverged`` here instead
    of silently running the new branch.
    """
    name = PATCH_PREFIX + patch_id
    ctx = _context("deprecate_patch", name)
    if ctx is not None:
        ctx.deprecated_patch(name)


async def wait(
    aws: Sequence[Awaitable[Any]],
    *,
    return_when: str = asyncio.ALL_COMPLETED,
    timeout: float | None = None,
    name: str | None = None,
) -> tuple[set[asyncio.Future[Any]], set[asyncio.Future[Any]]]:
    """``asyncio.wait`` that replays: which of ``aws`` had finished when it returned is
    journaled, so a replay returns the same ``(done, pending)`` split (each a set of
    tasks, as asyncio's) however fast the replayed steps now finish.

    ``aws`` must be a sequence (its order identifies the awaitables). The journal
    entry is named ``name``, by default ``zart.wait-<n>`` for the n-th call in this
    run; give a name when calls may interleave (parallel branches).
    """
    if isinstance(aws, (set, frozenset)) or not isinstance(aws, Sequence):
        raise TypeError("zart.wait needs a list or tuple of awaitables (their order names them)")
    ctx = _context("wait", name or "zart.wait")
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        raise ValueError("zart.wait needs at least one awaitable")
    if ctx is None:
        plain: tuple[set[asyncio.Future[Any]], set[asyncio.Future[Any]]] = await asyncio.wait(
            tasks, return_when=return_when, timeout=timeout
        )
        return plain
    if name is None:
        ctx.waits += 1
        name = f"zart.wait-{ctx.waits}"
    entry = await ctx.entry(name, "wait", _caller_site())
    if entry.done and entry.record is not None:
        finished = set(json.loads(entry.record.output or "[]"))
        if finished:
            await asyncio.wait([tasks[i] for i in finished])  # replayed: quick
        return _split(tasks, finished)
    if timeout is not None:
        timeout = _seconds(timeout, "timeout")
    done, _ = await asyncio.wait(tasks, return_when=return_when, timeout=timeout)
    finished = {i for i, task in enumerate(tasks) if task in done}
    entry.complete(json.dumps(sorted(finished)))
    return _split(tasks, finished)


def _split(
    tasks: list[asyncio.Future[Any]], finished: set[int]
) -> tuple[set[asyncio.Future[Any]], set[asyncio.Future[Any]]]:
    done = {t for i, t in enumerate(tasks) if i in finished}
    return done, {t for i, t in enumerate(tasks) if i not in finished}


# How often a parent waiting for its child checks whether it was cancelled itself.
_PARENT_CHECK_SECONDS = 0.25


async def _drive_child(
    ctx: ExecutionContext, durable_fn: DurableFunction[..., Any], child: str
) -> Any:
    """Run (or wait for) the child to its end, while watching the parent.

    Cancelling the parent cancels the waiting child too; if the parent loses its
    lease, this process stops driving the child (the parent's new owner will).
    """
    runner = ctx.runner
    assert runner is not None
    token = current_execution.set(None)  # the child runs under its own context
    try:
        drive = asyncio.ensure_future(runner.drive_until_done(durable_fn, child))
    finally:
        current_execution.reset(token)
    try:
        while True:
            done, _ = await asyncio.wait({drive}, timeout=_PARENT_CHECK_SECONDS)
            if done:
                return drive.result()
            stop = ctx.stop
            if stop is None:
                rec = ctx.journal.get_execution(ctx.execution_id)
                if rec is None or rec.status != RUNNING or rec.lease_owner != ctx.token:
                    stop = ctx.lost()
            if stop is not None:
                if isinstance(stop, ExecutionCancelledError):
                    runner.cancel(child)
                raise stop
    finally:
        if not drive.done():
            drive.cancel()  # the child's run hands it back (or it was cancelled above)
            await asyncio.wait({drive})
            if not drive.cancelled():
                drive.exception()  # retrieved: no "exception was never retrieved" noise
