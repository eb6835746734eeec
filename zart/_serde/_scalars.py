"""Nodes for scalar annotations: ``None``, ``bool``, ``int``, ``float``, ``str``,
``bytes``/``bytearray``, ``datetime``/``date``/``time``/``timedelta``, ``Decimal``,
``UUID`` and ``NoReturn``, plus the string conversions that ``Any`` tagging reuses.
"""

from __future__ import annotations

import base64
import datetime as _dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from zart._serde._node import STR_KINDS, Fail, Node, NoneType, expected, mismatch, vname
from zart._serde._temporal import dt_from, dt_to, time_from, time_to


def _enc_none(v: Any) -> Any:
    if v is None:
        return None
    raise mismatch("None", v)


def _dec_none(obj: Any) -> Any:
    if obj is None:
        return None
    raise expected("null", obj)


def _enc_bool(v: Any) -> Any:
    if v is True or v is False:
        return v
    raise mismatch("bool", v)


def _dec_bool(obj: Any) -> Any:
    if obj is True or obj is False:
        return obj
    raise expected("bool", obj)


def _enc_int(v: Any) -> Any:
    t = type(v)
    if t is int or t is bool:
        return v
    if isinstance(v, int):
        return int(v)  # IntEnum, IntFlag, custom int subclass: stored as the annotated int
    raise mismatch("int", v)


def _dec_int(obj: Any) -> Any:
    t = type(obj)
    if t is int or t is bool:
        return obj
    raise expected("int", obj)


FLOAT_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _float_out(v: float) -> Any:
    if v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
        return v
    if v != v:
        return "NaN"
    return "Infinity" if v > 0 else "-Infinity"


def _enc_float(v: Any) -> Any:
    t = type(v)
    if t is float:
        return v if v - v == 0.0 else _float_out(v)
    if t is int or t is bool:
        return v  # int is acceptable for float (PEP 484); kept as the stored JSON number type
    if isinstance(v, float):
        return _float_out(float(v))
    if isinstance(v, int):
        return int(v)
    raise mismatch("float", v)


def _dec_float(obj: Any) -> Any:
    t = type(obj)
    if t is float or t is int or t is bool:
        return obj
    if t is str:
        special = FLOAT_SPECIAL.get(obj)
        if special is not None:
            return special
    raise expected("float", obj)


def _enc_str(v: Any) -> Any:
    if type(v) is str:
        return v
    if isinstance(v, str):
        return str.__str__(v)  # the plain string content, also for `str, Enum` mixins
    raise mismatch("str", v)


def _dec_str(obj: Any) -> Any:
    if type(obj) is str:
        return obj
    raise expected("str", obj)


def str_scalar(
    name: str, cls: type, to_s: Callable[[Any], str], from_s: Callable[[str], Any]
) -> Node:
    """A type stored as a JSON string."""

    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            try:
                return to_s(v)
            except Fail:
                raise
            except Exception as e:
                raise Fail(f"cannot encode {name}: {e}", vname(v), e) from None
        raise mismatch(name, v)

    def dec(obj: Any) -> Any:
        if type(obj) is not str:
            raise expected(f"{name} (a JSON string)", obj)
        try:
            return from_s(obj)
        except Exception as e:
            raise Fail(f"invalid stored {name} {obj!r}: {e}", cause=e) from None

    return Node(name, enc, dec, STR_KINDS, (cls,), strkey=True)


def b64(v: bytes | bytearray) -> str:
    return base64.b64encode(v).decode("ascii")


def unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _date_to(v: _dt.date) -> str:
    # A datetime is a date subclass: keep its time rather than silently dropping it.
    return dt_to(v) if isinstance(v, _dt.datetime) else v.isoformat()


def _date_from(s: str) -> _dt.date:
    return _dt.date.fromisoformat(s) if len(s) == 10 else dt_from(s)


def td_to(v: _dt.timedelta) -> list[int]:
    return [v.days, v.seconds, v.microseconds]


def td_from(obj: Any) -> _dt.timedelta:
    if type(obj) is list and len(obj) == 3 and all(type(x) is int for x in obj):
        return _dt.timedelta(days=obj[0], seconds=obj[1], microseconds=obj[2])
    raise expected("timedelta ([days, seconds, microseconds])", obj)


def _enc_td(v: Any) -> Any:
    if isinstance(v, _dt.timedelta):
        return [v.days, v.seconds, v.microseconds]
    raise mismatch("timedelta", v)


def _never_enc(v: Any) -> Any:
    raise mismatch("NoReturn (this function never returns)", v)


def _never_dec(obj: Any) -> Any:
    raise expected("nothing (annotation NoReturn)", obj)


NONE = Node("None", _enc_none, _dec_none, frozenset({NoneType}), (NoneType,), prim=NoneType)
NEVER = Node("NoReturn", _never_enc, _never_dec, frozenset())

# Scalar annotations by class (exact class: subclasses are compiled elsewhere).
SCALARS: dict[Any, Node] = {
    bool: Node("bool", _enc_bool, _dec_bool, frozenset({bool}), (bool,), prim=bool),
    int: Node("int", _enc_int, _dec_int, frozenset({int, bool}), (int,), prim=int),
    float: Node("float", _enc_float, _dec_float, frozenset({float, int, bool, str}), (float,)),
    str: Node("str", _enc_str, _dec_str, STR_KINDS, (str,), strkey=True, prim=str),
    _dt.timedelta: Node("timedelta", _enc_td, td_from, frozenset({list}), (_dt.timedelta,)),
    bytes: str_scalar("bytes", bytes, b64, unb64),
    bytearray: str_scalar("bytearray", bytearray, b64, lambda s: bytearray(unb64(s))),
    _dt.datetime: str_scalar("datetime", _dt.datetime, dt_to, dt_from),
    _dt.date: str_scalar("date", _dt.date, _date_to, _date_from),
    _dt.time: str_scalar("time", _dt.time, time_to, time_from),
    Decimal: str_scalar("Decimal", Decimal, str, Decimal),
    uuid.UUID: str_scalar("UUID", uuid.UUID, str, uuid.UUID),
}
