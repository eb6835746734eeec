"""The self-describing encoding used under ``Any``, ``object`` or no annotation.

JSON-native values are stored as they are; other supported values (tuples, sets,
bytes, dates, Decimal, UUID, paths, non-finite floats, dicts with non-string keys)
as one-key objects ``{"$tag": payload}``, and a user dict that itself has one
``$``-key is escaped as ``{"$dict": {...}}``. Classes are refused: decoding them
would mean importing a class named in the stored data.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import pathlib
import uuid
from decimal import Decimal
from typing import Any

from zart._serde._node import (
    ADVICE,
    ALL_KINDS,
    Fail,
    Fn,
    Node,
    expected,
    fail_key,
    items_mapper,
    vname,
)
from zart._serde._scalars import FLOAT_SPECIAL, b64, td_from, td_to, unb64
from zart._serde._temporal import dt_from, dt_to, time_from, time_to
from zart._serde._types import is_pydantic_instance

# --- encoding --------------------------------------------------------------------------


def _any_unsupported(v: object) -> Fail:
    if dataclasses.is_dataclass(v) or is_pydantic_instance(v) or isinstance(v, (enum.Enum, tuple)):
        what = "enum member" if isinstance(v, enum.Enum) else "instance of a class"
        reason = (
            f"not JSON-serializable without a type annotation: a {what} cannot be stored "
            f"under a missing or `Any` annotation (reading it back would mean importing a class "
            f"named in the stored data); annotate the step's return type (or the parameter), "
            f"e.g. -> {vname(v)}"
        )
    else:
        reason = f"not JSON-serializable; {ADVICE}"
    return Fail(reason, vname(v))


def any_enc(v: Any) -> Any:
    """Encode ``v`` self-described (see the module docstring)."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    f = _ANY_ENC.get(t)
    if f is None:
        raise _any_unsupported(v)
    return f(v)


def _any_enc_dict(v: dict[Any, Any]) -> Any:
    for k in v:
        if type(k) is not str:
            return {"$map": _any_enc_pairs(v)}
    try:
        out = {k: any_enc(x) for k, x in v.items()}
    except Fail as e:
        e.path.append(fail_key(lambda k: any_enc(v[k]), v))
        raise
    if len(out) == 1:
        for k in out:
            if k[:1] == "$":
                return {"$dict": out}  # escape: a plain dict that looks like a tag
    return out


def _any_enc_pairs(v: dict[Any, Any]) -> list[Any]:
    out = []
    for k, x in v.items():
        try:
            out.append([any_enc(k), any_enc(x)])
        except Fail as e:
            e.path.append(f"[{k!r}]")
            raise
    return out


_any_enc_items = items_mapper(any_enc)


def _any_float(v: float) -> Any:
    if v - v == 0.0:
        return v
    return {"$float": "nan" if v != v else ("inf" if v > 0 else "-inf")}


_ANY_ENC: dict[type, Fn] = {
    float: _any_float,
    list: _any_enc_items,
    dict: _any_enc_dict,
    tuple: lambda v: {"$tuple": _any_enc_items(v)},
    set: lambda v: {"$set": _any_enc_items(v)},
    frozenset: lambda v: {"$frozenset": _any_enc_items(v)},
    bytes: lambda v: {"$bytes": b64(v)},
    bytearray: lambda v: {"$bytearray": b64(v)},
    _dt.datetime: lambda v: {"$datetime": dt_to(v)},
    _dt.date: lambda v: {"$date": v.isoformat()},
    _dt.time: lambda v: {"$time": time_to(v)},
    _dt.timedelta: lambda v: {"$timedelta": td_to(v)},
    Decimal: lambda v: {"$decimal": str(v)},
    uuid.UUID: lambda v: {"$uuid": str(v)},
    pathlib.PurePosixPath: lambda v: {"$pureposixpath": str(v)},
    pathlib.PureWindowsPath: lambda v: {"$purewindowspath": str(v)},
    type(pathlib.Path()): lambda v: {"$path": str(v)},
}


# --- decoding --------------------------------------------------------------------------


def any_dec(obj: Any) -> Any:
    """Decode a value stored by :func:`any_enc`."""
    t = type(obj)
    if t is list:
        return _any_dec_items(obj)
    if t is dict:
        if len(obj) == 1:
            for k in obj:
                if k[:1] == "$":
                    return _any_dec_tag(k, obj[k])
        try:
            return {k: any_dec(x) for k, x in obj.items()}
        except Fail as e:
            e.path.append(fail_key(lambda k: any_dec(obj[k]), obj))
            raise
    if t is float or t is int or t is str or t is bool or obj is None:
        return obj
    raise expected("a JSON value", obj)


_any_dec_items = items_mapper(any_dec)


def _want(kind: type, what: str, obj: Any) -> Any:
    if type(obj) is not kind:
        raise expected(what, obj)
    return obj


def _any_dec_map(obj: Any) -> dict[Any, Any]:
    out = {}
    for pair in _want(list, "a list of [key, value] pairs", obj):
        if type(pair) is not list or len(pair) != 2:
            raise expected("a [key, value] pair", pair)
        out[any_dec(pair[0])] = any_dec(pair[1])
    return out


def _any_dec_float(obj: Any) -> float:
    special = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(obj)
    if special is None:
        raise expected('"nan", "inf" or "-inf"', obj)
    return FLOAT_SPECIAL[special]


_ANY_TAGS: dict[str, Fn] = {
    "$tuple": lambda x: tuple(_any_dec_items(_want(list, "a list", x))),
    "$set": lambda x: set(_any_dec_items(_want(list, "a list", x))),
    "$frozenset": lambda x: frozenset(_any_dec_items(_want(list, "a list", x))),
    "$map": _any_dec_map,
    "$dict": lambda x: {k: any_dec(v) for k, v in _want(dict, "an object", x).items()},
    "$float": _any_dec_float,
    "$bytes": lambda x: unb64(_want(str, "a base64 string", x)),
    "$bytearray": lambda x: bytearray(unb64(_want(str, "a base64 string", x))),
    "$datetime": lambda x: dt_from(_want(str, "an ISO datetime", x)),
    "$date": lambda x: _dt.date.fromisoformat(_want(str, "an ISO date", x)),
    "$time": lambda x: time_from(_want(str, "an ISO time", x)),
    "$timedelta": td_from,
    "$decimal": lambda x: Decimal(_want(str, "a decimal string", x)),
    "$uuid": lambda x: uuid.UUID(_want(str, "a UUID string", x)),
    "$path": lambda x: pathlib.Path(_want(str, "a path string", x)),
    "$pureposixpath": lambda x: pathlib.PurePosixPath(_want(str, "a path string", x)),
    "$purewindowspath": lambda x: pathlib.PureWindowsPath(_want(str, "a path string", x)),
}


def _any_dec_tag(tag: str, payload: Any) -> Any:
    f = _ANY_TAGS.get(tag)
    if f is None:
        raise Fail(f"unknown type tag {tag!r} in a value stored under `Any`")
    try:
        return f(payload)
    except Fail as e:
        e.path.append(f"[{tag!r}]")
        raise
    except Exception as e:
        raise Fail(f"invalid {tag} payload {payload!r}: {e}", cause=e) from None


ANY = Node("Any", any_enc, any_dec, ALL_KINDS)
