"""The ``@durable`` decorator and the process-wide registry of durable functions."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from zart._errors import StepNameError, UnknownDurableError, UsageError, ZartError
from zart._execution._context import current_execution
from zart._execution._identifiers import check_durable_name
from zart._serde import ArgsCodec, Codec, args_codec, return_codec

P = ParamSpec("P")
R = TypeVar("R")

_REGISTRY: dict[str, DurableFunction[Any, Any]] = {}

DEFAULT_MAX_RECOVERIES = 100


class DurableFunction(Generic[P, R]):
    """An ``async def`` whose steps are journaled. Run it with ``Zart.run`` / ``start``.

    Calling it directly (``await fn(...)``) outside an execution runs the body without
    journaling, which is what unit tests usually want; inside an execution that is
    refused (use ``zart.run_child``).
    """

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]],
        name: str,
        *,
        strict: bool | None = None,
        max_recoveries: int = DEFAULT_MAX_RECOVERIES,
        on_failure: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"@durable needs an async def; {fn.__qualname__} is a plain function "
                "(steps may be plain functions, durable bodies may not)"
            )
        self.fn = fn
        self.name = check_durable_name(name)
        self.strict = strict
        self.max_recoveries = max_recoveries
        self.on_failure = on_failure
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        self._args_codec: ArgsCodec | None = None
        self._result_codec: Codec | None = None
        functools.update_wrapper(self, fn)

    @property
    def args_codec(self) -> ArgsCodec:
        if self._args_codec is None:
            self._args_codec = args_codec(self.fn)
        return self._args_codec

    @property
    def result_codec(self) -> Codec:
        if self._result_codec is None:
            self._result_codec = return_codec(self.fn)
        return self._result_codec

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        if current_execution.get() is not None:
            raise UsageError(
                f"durable function {self.name!r} was awaited directly inside another durable "
                "execution, so its steps would be journaled as the caller's and collide with "
                f"them. Run it as a child execution: `await zart.run_child({self.fn.__name__}, "
                '..., name="...")`'
            )
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<zart durable {self.name!r} ({self.fn.__qualname__})>"


def _register(fn: DurableFunction[Any, Any]) -> None:
    existing = _REGISTRY.get(fn.name)
    if existing is not None and existing.fn.__qualname__ != fn.fn.__qualname__:
        raise ZartError(
            f"durable name {fn.name!r} is used by both {existing.fn.__module__}."
            f"{existing.fn.__qualname__} and {fn.fn.__module__}.{fn.fn.__qualname__}; "
            "durable names must be unique"
        )
    # Same function registered again (a module imported as __main__ and by name): keep the newest.
    _REGISTRY[fn.name] = fn


def lookup(name: str) -> DurableFunction[Any, Any]:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownDurableError(
            f"no durable function named {name!r} is registered in this process "
            f"(registered: {known}); import the module that defines it "
            "(e.g. `zart worker myapp.flows`)"
        ) from None


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


_VERSION_CACHE: dict[tuple[str, ...], str] = {}


def code_version() -> str:
    """A short hash of the source of every registered durable function: the default code
    version recorded on executions (``Zart(version=...)`` overrides it). Recomputed only
    when the set of registered durables changes."""
    key = tuple(sorted(_REGISTRY))
    found = _VERSION_CACHE.get(key)
    if found is None:
        digest = hashlib.sha256()
        for name in key:
            fn = _REGISTRY[name].fn
            try:
                text = inspect.getsource(fn).encode()
            except (OSError, TypeError):  # no source file (a REPL, a zip): the bytecode
                text = fn.__code__.co_code
            digest.update(name.encode() + b"\0" + text + b"\0")
        found = _VERSION_CACHE[key] = digest.hexdigest()[:12]
    return found


@overload
def durable(name: Callable[P, Awaitable[R]], /) -> DurableFunction[P, R]: ...
@overload
def durable(
    name: str | None = None,
    /,
    *,
    strict: bool | None = None,
    max_recoveries: int = DEFAULT_MAX_RECOVERIES,
    on_failure: Callable[..., Any] | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], DurableFunction[P, R]]: ...


def durable(
    name: Any = None,
    /,
    *,
    strict: bool | None = None,
    max_recoveries: int = DEFAULT_MAX_RECOVERIES,
    on_failure: Callable[..., Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """Declare a durable function under a stable ``name`` (stored with each execution).

    ``strict=True`` turns replay drift (a completed step reached again with other
    arguments) from a warning into :class:`ReplayMismatchError`. ``max_recoveries``
    bounds how often a crashed execution is resumed before it is failed.
    ``timeout`` is the execution's deadline in seconds from its creation: checked
    while the body runs (it is interrupted) and whenever it is picked up again.
    ``on_failure(error: TaskError)`` (plain or async) runs when the execution
    fails; if it returns instead of raising, its value becomes the result and
    the execution completes.
    """
    if callable(name) and not isinstance(name, str):
        fn = DurableFunction(name, name.__name__)
        _register(fn)
        return fn
    if name is not None and not isinstance(name, str):
        raise StepNameError(f"@durable expects a name string, got {name!r}")

    def decorate(f: Callable[P, Awaitable[R]]) -> DurableFunction[P, R]:
        d = DurableFunction(
            f,
            name if name is not None else f.__name__,
            strict=strict,
            max_recoveries=max_recoveries,
            on_failure=on_failure,
            timeout=timeout,
        )
        _register(d)
        return d

    return decorate


zart_durable = durable
