"""JSON → typed call arguments of a durable function (``zart run --input``, the API's
``input`` fields, ``zart schedule add --input``)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Union

from zart import DurableFunction, ZartError
from zart._ops._internals import InvalidInputError


def json_arguments(
    durable: DurableFunction[Any, Any], data: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Plain JSON → typed call arguments, decoded through the function's annotations.

    Same convention as ``zart run --input``: an array gives positional arguments;
    an object whose keys are all parameter names gives keyword arguments;
    anything else is the single parameter's value. Raises ``InvalidInputError``.
    """
    params = list(inspect.signature(durable.fn).parameters)
    if data is None and not params:
        raw: dict[str, Any] = {"args": [], "kwargs": {}}
    elif isinstance(data, list):
        raw = {"args": data, "kwargs": {}}
    elif isinstance(data, dict) and data and set(data) <= set(params):
        raw = {"args": [], "kwargs": data}
    elif len(params) == 1:
        raw = {"args": [data], "kwargs": {}}
    else:
        raise InvalidInputError(
            f"input for {durable.name!r} must be a JSON array of arguments or an object with "
            f"keys among its parameters ({', '.join(params) or 'none'})"
        )
    try:
        args, kwargs = durable.args_codec.loads(json.dumps(raw))
    except ZartError as exc:
        raise InvalidInputError(
            f"input does not match the parameters of {durable.name!r}: {exc}"
        ) from None
    problem = _first_boolean_mismatch(durable, args, kwargs)
    if problem is not None:
        raise InvalidInputError(
            f"input does not match the parameters of {durable.name!r}: {problem}"
        )
    return args, kwargs


# ---------------------------------------------------------------------- strict numbers
#
# zart's codec takes a JSON boolean for an ``int`` or ``float`` annotation (in Python,
# ``bool`` is an ``int``, and a stored ``True`` must come back as ``True``). Input typed
# by a person or another program is held to the annotation: ``true`` is not a number.


def _first_boolean_mismatch(
    durable: DurableFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """``"<where>: expected int, got JSON boolean true"`` for the first boolean given
    where the annotations ask for a number; None when there is none."""
    signature = inspect.signature(durable.fn)
    try:
        hints = typing.get_type_hints(durable.fn)
        bound = signature.bind(*args, **kwargs)
    except Exception:  # unresolvable annotations or arguments: the codec has decided
        return None
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        hint = hints.get(name, Any)
        if kind is inspect.Parameter.VAR_POSITIONAL:
            pairs: Iterator[tuple[str, Any]] = ((f"{name}[{i}]", v) for i, v in enumerate(value))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            pairs = ((f"{name}.{k}", v) for k, v in value.items())
        else:
            pairs = iter([(name, value)])
        for where, item in pairs:
            found = _mismatch(item, hint, where, 0)
            if found is not None:
                return found
    return None


def _mismatch(value: Any, hint: Any, where: str, depth: int) -> str | None:
    if depth > 20 or hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _mismatch(value, typing.get_args(hint)[0], where, depth + 1)
    if origin is Union or origin is types.UnionType:
        return _union_mismatch(value, typing.get_args(hint), where, depth)
    if isinstance(value, bool):
        if hint in (int, float, complex):
            word = "true" if value else "false"
            return f"{where}: expected {hint.__name__}, got JSON boolean {word}"
        return None
    return _nested_mismatch(value, hint, origin, where, depth)


def _union_mismatch(value: Any, members: tuple[Any, ...], where: str, depth: int) -> str | None:
    if value is None:
        return None
    real = [m for m in members if m is not type(None)]
    if not isinstance(value, bool):
        # Optional[X]: look inside X. Otherwise the member the codec chose is not known.
        return _mismatch(value, real[0], where, depth + 1) if len(real) == 1 else None
    if any(m is bool or m is Any or typing.get_origin(m) is typing.Literal for m in real):
        return None
    if any(m in (int, float, complex) for m in real):
        word = "true" if value else "false"
        names = " | ".join(getattr(m, "__name__", str(m)) for m in real)
        optional = " | None" if len(real) < len(members) else ""
        return f"{where}: expected {names}{optional}, got JSON boolean {word}"
    return None


def _nested_mismatch(value: Any, hint: Any, origin: Any, where: str, depth: int) -> str | None:
    args = typing.get_args(hint)
    if origin in (list, set, frozenset, tuple) or (
        isinstance(origin, type) and issubclass(origin, (list, set, frozenset))
    ):
        if origin is tuple and args and args[-1] is not Ellipsis:
            pairs = enumerate(zip(value, args, strict=False))
            items = [(f"{where}[{i}]", v, a) for i, (v, a) in pairs]
        else:
            item_hint = args[0] if args else Any
            items = [(f"{where}[{i}]", v, item_hint) for i, v in enumerate(value)]
        return _first(items, depth)
    if isinstance(value, Mapping) and args and len(args) == 2:
        return _first([(f"{where}.{k}", v, args[1]) for k, v in value.items()], depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            field_hints = typing.get_type_hints(type(value))
        except Exception:
            return None
        fields = [
            (f"{where}.{f.name}", getattr(value, f.name), field_hints.get(f.name, Any))
            for f in dataclasses.fields(value)
        ]
        return _first(fields, depth)
    return None


def _first(items: list[tuple[str, Any, Any]], depth: int) -> str | None:
    for where, value, hint in items:
        found = _mismatch(value, hint, where, depth + 1)
        if found is not None:
            return found
    return None
