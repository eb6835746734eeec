"""fingerprint(): a short hash of a step call's arguments, stable across processes
and independent of annotations, that replay compares to detect drift.

It runs on every step call, so values are canonicalized by type-keyed dispatch
and dumped by a C encoder built once.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import pathlib
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from zart._serde._node import CACHE_MAX, Fn
from zart._serde._types import is_pydantic_instance

# ensure_ascii: the text is hashed as bytes, and ASCII escapes make lone surrogates safe.
_FP_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def _prebuilt_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode`` without building a new C encoder on every call.

    ``JSONEncoder.encode`` constructs its C encoder per call (~1 µs); fingerprints
    run on every step call, so build it once. No circular-reference markers: the
    canonical payload is a fresh tree, and RecursionError is caught by the caller.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pure-Python json (PyPy, some builds)
        return encoder.encode
    c_encode = make(
        None, encoder.default, json.encoder.encode_basestring_ascii, None,
        ":", ",", True, False, False,
    )  # fmt: skip

    def encode(obj: Any) -> str:
        return "".join(c_encode(obj, 0))

    return encode


_fp_encode = _prebuilt_encoder(_FP_ENCODER)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


def _canon(v: Any) -> Any:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    f = _CANON.get(t)
    return f(v) if f is not None else _canon_other(v)


def _canon_float(v: float) -> Any:
    if v - v == 0.0:
        return v + 0.0  # -0.0 == 0.0: same fingerprint
    return {"$f": repr(v)}


def _canon_dict(v: dict[Any, Any]) -> Any:
    for k in v:
        if type(k) is not str:
            pairs = [[_canon(k), _canon(x)] for k, x in v.items()]
            pairs.sort(key=_sort_key)
            return {"$map": pairs}
    return {k: _canon(x) for k, x in v.items()}  # key order: sort_keys at dump time


def _sort_key(x: Any) -> str:
    return _FP_ENCODER.encode(x)


def _canon_set(v: Any) -> Any:
    items = [_canon(x) for x in v]
    items.sort(key=_sort_key)  # set order varies across processes (hash randomization)
    return {"$set": items}


def _canon_decimal(v: Decimal) -> Any:
    try:
        return {"$dec": str(v.normalize())}  # Decimal("1.0") == Decimal("1.00")
    except ArithmeticError:
        return {"$dec": str(v)}


def _canon_datetime(v: _dt.datetime) -> Any:
    if v.tzinfo is not None and v.utcoffset() is not None:
        # Equal instants in different zones are equal datetimes.
        v = v.astimezone(_dt.timezone.utc)
    return {"$dt": v.isoformat()}


_CANON: dict[type, Fn] = {
    float: _canon_float,
    list: lambda v: [_canon(x) for x in v],
    tuple: lambda v: [_canon(x) for x in v],  # list/tuple alike: no false drift warnings
    dict: _canon_dict,
    set: _canon_set,
    frozenset: _canon_set,
    bytes: lambda v: {"$b": v.hex()},
    bytearray: lambda v: {"$b": v.hex()},
    _dt.datetime: _canon_datetime,
    _dt.date: lambda v: {"$d": v.isoformat()},
    _dt.time: lambda v: {"$t": v.isoformat()},
    _dt.timedelta: lambda v: {"$td": [v.days, v.seconds, v.microseconds]},
    Decimal: _canon_decimal,
    uuid.UUID: lambda v: {"$u": v.hex},
}


_DC_FIELDS: dict[type, tuple[str, ...]] = {}


def _canon_other(v: Any) -> Any:
    t = type(v)
    names = _DC_FIELDS.get(t)
    if names is None and dataclasses.is_dataclass(v) and not isinstance(v, type):
        if len(_DC_FIELDS) >= CACHE_MAX:
            _DC_FIELDS.clear()
        names = _DC_FIELDS[t] = tuple(f.name for f in dataclasses.fields(v))
    if names is not None:
        return {n: _canon(getattr(v, n, None)) for n in names}
    if isinstance(v, enum.Enum):
        return _canon(v.value)
    if is_pydantic_instance(v):
        try:
            return _canon(v.model_dump())
        except Exception:
            pass
    for base, f in _CANON.items():
        if isinstance(v, base):  # subclasses of the builtins (NamedTuple, OrderedDict, ...)
            return f(v)
    if isinstance(v, (str, int)):
        return str.__str__(v) if isinstance(v, str) else int(v)
    if isinstance(v, pathlib.PurePath):
        return {"$p": str(v)}
    label = f"{t.__module__}.{t.__qualname__}"
    if cast(Any, t).__repr__ is object.__repr__:
        return {"$o": label}  # the default repr holds a memory address: type name only
    try:
        r = repr(v)
    except Exception:
        return {"$o": label}
    return {"$o": label, "r": _ADDRESS.sub("", r)}


def fingerprint(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Short stable hash of the arguments, independent of annotations and processes.

    Equal values give equal fingerprints (dict key order, set order, the zone of an
    aware datetime and Decimal exponent do not matter); values of different types
    may differ even when ``==`` (``1`` and ``1.0``). Objects that cannot be encoded
    contribute their type's name, plus their repr when it is not the default
    ``<... at 0x...>`` one (addresses are removed in any case).
    """
    try:
        payload = [[_canon(x) for x in args], {k: _canon(x) for k, x in kwargs.items()}]
        text = _fp_encode(payload)
    except Exception:
        # Cyclic values, a property that raises, ...: fingerprinting must never fail
        # a step call, so fall back to the argument types.
        text = repr(([type(x).__qualname__ for x in args], sorted(kwargs)))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
