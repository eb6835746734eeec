"""Typed JSON serialization of step results and durable-function inputs.

A step's return value is checkpointed as JSON text and, on replay, must come back
*equal to* and *of the same type as* the original. JSON alone cannot say whether
``"2024-01-01"`` was a ``str`` or a ``date``, so decoding is driven by the step
function's return annotation: ``codec_for(list[User])`` knows that every element is
a ``User`` dataclass whose ``joined`` field is a ``datetime``.

Design
------
An annotation is *compiled once* into a tree of small closures (:class:`_Node`),
one encoder and one decoder per type. Encoding a value then only walks the value;
no annotation is inspected on the hot path. Errors are reported with the path
inside the value (``result[3].owner``): paths are built only while an error
propagates (each container appends its own segment), so the success path pays
nothing for them.

Pickle is never used and decoding never imports a class named in the stored data:
a database row must not be able to run code. Every class that decoding constructs
is one the annotation named.

Encodings (what a stored row looks like)
----------------------------------------
* ``None``/``bool``/``int``/``str``: JSON as is. ``float``: JSON number; NaN and
  the infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
* ``bytes``/``bytearray``: base64 string. ``Decimal``: its exact string.
  ``UUID``/``Path``: string. ``datetime``/``date``/``time``: ISO 8601 (tz-aware
  values keep their offset, naive ones stay naive; a ``zoneinfo.ZoneInfo`` zone is
  kept as an RFC 9557 suffix, ``"...+01:00[Europe/Paris]"``).
  ``timedelta``: ``[days, seconds, microseconds]`` (exact).
* ``Enum``: its value. ``Literal``: the literal.
* ``list``/``tuple``/``set``/``frozenset``/``deque``: JSON array.
* ``dict[K, V]``: a JSON object when every key encodes to a string (``str``,
  ``UUID``, ``date``, ``Decimal``, string-valued enums, ...); otherwise (``int``,
  ``tuple``, ... keys) a JSON array of ``[key, value]`` pairs.
* dataclasses, ``NamedTuple``, ``TypedDict``: JSON object of fields. Pydantic v2
  models: ``model_dump(mode="json")`` / ``model_validate``.
* Unions: a member is chosen by trying members (an exact type match first). When
  the JSON kind of the encoding alone identifies that member on decoding (``int |
  None``, ``User | list[User]``), the value is stored bare; otherwise (two
  dataclasses, ``date | str``, ...) it is stored as ``{"$type": <member name>,
  "$value": ...}`` where the name is looked up among the union's own members.
* ``Any`` / ``object`` / no annotation: a self-describing encoding. JSON-native
  values are stored as is; ``tuple``, ``set``, ``frozenset``, ``bytes``,
  ``bytearray``, ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal``,
  ``UUID``, ``Path``, non-finite floats and dicts with non-string keys are tagged
  as one-key objects (``{"$decimal": "0.1"}``); a user dict that itself has one
  ``$``-key is escaped as ``{"$dict": {...}}``. Dataclasses, models, enums and
  other classes are refused under ``Any``: decoding them would require importing a
  class named in the data.

Type choices (documented contract)
----------------------------------
* The annotation is the contract. An instance of a *subclass* of the annotated
  type is stored as the annotated type and comes back as the annotated type (a
  dataclass subclass is stored by the declared class's fields; an ``IntEnum`` under
  ``int`` comes back as ``int``; a ``NamedTuple`` under ``tuple[int, ...]`` as a
  ``tuple``). Annotate the precise type to keep the subclass.
* ``bool`` is kept under ``int``/``float`` (JSON distinguishes ``true`` from ``1``),
  and an ``int`` under ``float`` comes back as ``int`` (the stored JSON number type
  decides): both are "equal and of the same type" as what the step returned.
* A ``datetime`` under a ``date`` annotation is kept as a ``datetime`` (dropping
  its time silently would be worse than keeping the subclass).
* Dataclasses are rebuilt by calling the class with its ``init`` fields (so
  ``__post_init__`` runs and derived attributes exist), then ``init=False`` fields
  are restored. Classes with ``InitVar`` pseudo-fields or ``init=False`` are rebuilt
  without calling ``__init__`` (``InitVar`` values are not stored, and
  ``__post_init__`` already transformed the stored fields). Unknown keys in a stored
  object are ignored and missing fields with defaults get their default, so adding
  or removing a defaulted field does not break replay of old rows.

Limitations
-----------
* Sets are stored in iteration order (not sorted): equal sets may produce
  different rows; decoding is unaffected. :func:`fingerprint` does sort.
* ``timezone`` and ``ZoneInfo`` tzinfos come back as they were; other tzinfo
  implementations (pytz, dateutil) come back as a fixed-offset ``timezone`` (same
  instant, equal, different tzinfo object). ``time`` values keep a fixed offset only.
* Not supported (SerializationError on first use): ``defaultdict``, ``Callable``,
  ``type[...]``, ``complex``, and classes that are not dataclasses, NamedTuples,
  TypedDicts, pydantic models, enums or subclasses of ``str``/``int``/``float``/
  ``bytes``/``PurePath``.
* Pydantic models round-trip as pydantic's own JSON mode does (a field typed
  ``Any`` holding a ``datetime`` comes back as a ``str``); fields whose
  serialization alias differs from their validation alias are not supported.
* Generic dataclasses resolve TypeVars through ``Box[int]`` and generic bases; one
  TypeVar bound differently at two levels of a hierarchy takes the most-derived
  binding.
* Union tags are class names: renaming a member of an ambiguous union (``Cat |
  Dog``) makes old rows tagged with the old name unreadable.
"""

from __future__ import annotations

import base64
import collections
import collections.abc
import contextlib
import dataclasses
import datetime as _dt
import enum
import hashlib
import inspect
import json
import pathlib
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, cast

from ._errors import SerializationError

__all__ = ["ArgsCodec", "Codec", "args_codec", "codec_for", "fingerprint", "return_codec"]

_Fn = Callable[[Any], Any]
_NoneType: type[None] = type(None)
# The Python types json.loads produces; a node's "kinds" is the subset its encoder emits.
_ALL_KINDS: frozenset[type] = frozenset({_NoneType, bool, int, float, str, list, dict})
_STR = frozenset({str})
_MISSING: Any = object()

# One encoder instance, built once: json.dumps(...) with non-default options builds a
# new JSONEncoder on every call, which costs more than encoding a small value.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_json_dumps = _ENCODER.encode
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_json_loads = json.loads

_TAG_TYPE = "$type"
_TAG_VALUE = "$value"

_ADVICE = "annotate it as a dataclass, pydantic model, or a supported type"


# --------------------------------------------------------------------------- errors


class _Fail(Exception):
    """Internal failure carrying a reason and the path, built while unwinding."""

    def __init__(
        self, reason: str, vtype: str | None = None, cause: BaseException | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.vtype = vtype
        self.cause = cause
        self.path: list[str] = []  # innermost segment first

    def where(self, root: str) -> str:
        return root + "".join(reversed(self.path))

    def encode_message(self, root: str) -> str:
        vtype = f" of type {self.vtype}" if self.vtype else ""
        return f"cannot serialize value{vtype} at {self.where(root)}: {self.reason}"

    def decode_message(self, root: str) -> str:
        return f"cannot deserialize stored value at {self.where(root)}: {self.reason}"


def _vname(v: object) -> str:
    t = type(v)
    return "None" if t is _NoneType else t.__qualname__.rsplit("<locals>.", 1)[-1]


def _mismatch(expected: str, v: object) -> _Fail:
    return _Fail(f"does not match the annotation {expected}", _vname(v))


_JSON_NAMES: dict[type, str] = {
    _NoneType: "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _expected(expected: str, obj: object) -> _Fail:
    shown = repr(obj)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    kind = _JSON_NAMES.get(type(obj), type(obj).__qualname__)
    return _Fail(f"expected {expected}, found JSON {kind} {shown}")


def _fail_index(fn: _Fn, items: Iterable[Any]) -> str:
    # Only called on the error path: re-run the (pure) item encoder to find which
    # element failed, so that the success path can use a fast comprehension.
    for i, x in enumerate(items):
        try:
            fn(x)
        except Exception:
            return f"[{i}]"
    return "[?]"


def _fail_key(fn: _Fn, keys: Iterable[Any]) -> str:
    for k in keys:
        try:
            fn(k)
        except Exception:
            return f"[{k!r}]"
    return "[?]"


# --------------------------------------------------------------------------- nodes


class _Node:
    """Compiled encoder/decoder for one annotation.

    ``kinds``: the JSON types ``enc`` may emit (unions use it to decide whether a
    value needs a type tag). ``exact``: types this node is the natural owner of
    (unions try it first for such values). ``strkey``: ``enc`` always returns a
    ``str`` (so it can encode a JSON object key). ``prim``: values of exactly this
    type are encoded and decoded unchanged (lets containers skip per-item calls).
    """

    __slots__ = ("dec", "enc", "exact", "kinds", "name", "prim", "strkey")

    def __init__(
        self,
        name: str,
        enc: _Fn,
        dec: _Fn,
        kinds: frozenset[type],
        exact: tuple[type, ...] = (),
        strkey: bool = False,
        prim: type | None = None,
    ) -> None:
        self.name = name
        self.enc = enc
        self.dec = dec
        self.kinds = kinds
        self.exact = exact
        self.strkey = strkey
        self.prim = prim


# --- scalars ---------------------------------------------------------------------


def _enc_none(v: Any) -> Any:
    if v is None:
        return None
    raise _mismatch("None", v)


def _dec_none(obj: Any) -> Any:
    if obj is None:
        return None
    raise _expected("null", obj)


def _enc_bool(v: Any) -> Any:
    if v is True or v is False:
        return v
    raise _mismatch("bool", v)


def _dec_bool(obj: Any) -> Any:
    if obj is True or obj is False:
        return obj
    raise _expected("bool", obj)


def _enc_int(v: Any) -> Any:
    t = type(v)
    if t is int or t is bool:
        return v
    if isinstance(v, int):
        return int(v)  # IntEnum, IntFlag, custom int subclass: stored as the annotated int
    raise _mismatch("int", v)


def _dec_int(obj: Any) -> Any:
    t = type(obj)
    if t is int or t is bool:
        return obj
    raise _expected("int", obj)


_FLOAT_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


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
    raise _mismatch("float", v)


def _dec_float(obj: Any) -> Any:
    t = type(obj)
    if t is float or t is int or t is bool:
        return obj
    if t is str:
        special = _FLOAT_SPECIAL.get(obj)
        if special is not None:
            return special
    raise _expected("float", obj)


def _enc_str(v: Any) -> Any:
    if type(v) is str:
        return v
    if isinstance(v, str):
        return str.__str__(v)  # the plain string content, also for `str, Enum` mixins
    raise _mismatch("str", v)


def _dec_str(obj: Any) -> Any:
    if type(obj) is str:
        return obj
    raise _expected("str", obj)


def _str_scalar(
    name: str, cls: type, to_s: Callable[[Any], str], from_s: Callable[[str], Any]
) -> _Node:
    """A type stored as a JSON string."""

    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            try:
                return to_s(v)
            except Exception as e:
                raise _Fail(f"cannot encode {name}: {e}", _vname(v), e) from None
        raise _mismatch(name, v)

    def dec(obj: Any) -> Any:
        if type(obj) is not str:
            raise _expected(f"{name} (a JSON string)", obj)
        try:
            return from_s(obj)
        except Exception as e:
            raise _Fail(f"invalid stored {name} {obj!r}: {e}", cause=e) from None

    return _Node(name, enc, dec, _STR, (cls,), strkey=True)


def _b64(v: bytes | bytearray) -> str:
    return base64.b64encode(v).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _dt_to(v: _dt.datetime) -> str:
    s = v.isoformat()
    tz = v.tzinfo
    if tz is not None and type(tz) is not _dt.timezone:
        zi = sys.modules.get("zoneinfo")
        key = getattr(tz, "key", None)
        # Keep the IANA zone so the value comes back with the same tzinfo (an offset
        # alone would come back as a fixed-offset timezone: equal, but not the same).
        if zi is not None and isinstance(tz, zi.ZoneInfo) and isinstance(key, str):
            s = f"{s}[{key}]"
    return s


def _dt_from(s: str) -> _dt.datetime:
    if s.endswith("]"):
        i = s.find("[")
        from zoneinfo import ZoneInfo

        return _dt.datetime.fromisoformat(s[:i]).astimezone(ZoneInfo(s[i + 1 : -1]))
    return _dt.datetime.fromisoformat(s)


def _date_to(v: _dt.date) -> str:
    # A datetime is a date subclass: keep its time rather than silently dropping it.
    return _dt_to(v) if isinstance(v, _dt.datetime) else v.isoformat()


def _date_from(s: str) -> _dt.date:
    return _dt.date.fromisoformat(s) if len(s) == 10 else _dt_from(s)


def _td_to(v: _dt.timedelta) -> list[int]:
    return [v.days, v.seconds, v.microseconds]


def _td_from(obj: Any) -> _dt.timedelta:
    if type(obj) is list and len(obj) == 3 and all(type(x) is int for x in obj):
        return _dt.timedelta(days=obj[0], seconds=obj[1], microseconds=obj[2])
    raise _expected("timedelta ([days, seconds, microseconds])", obj)


def _enc_td(v: Any) -> Any:
    if isinstance(v, _dt.timedelta):
        return [v.days, v.seconds, v.microseconds]
    raise _mismatch("timedelta", v)


_NONE = _Node("None", _enc_none, _dec_none, frozenset({_NoneType}), (_NoneType,), prim=_NoneType)
_BOOL = _Node("bool", _enc_bool, _dec_bool, frozenset({bool}), (bool,), prim=bool)
_INT = _Node("int", _enc_int, _dec_int, frozenset({int, bool}), (int,), prim=int)
_FLOAT = _Node("float", _enc_float, _dec_float, frozenset({float, int, bool, str}), (float,))
_STRN = _Node("str", _enc_str, _dec_str, _STR, (str,), strkey=True, prim=str)
_TIMEDELTA = _Node("timedelta", _enc_td, _td_from, frozenset({list}), (_dt.timedelta,))

_SCALARS: dict[Any, _Node] = {
    bool: _BOOL,
    int: _INT,
    float: _FLOAT,
    str: _STRN,
    _dt.timedelta: _TIMEDELTA,
    bytes: _str_scalar("bytes", bytes, _b64, _unb64),
    bytearray: _str_scalar("bytearray", bytearray, _b64, lambda s: bytearray(_unb64(s))),
    _dt.datetime: _str_scalar("datetime", _dt.datetime, _dt_to, _dt_from),
    _dt.date: _str_scalar("date", _dt.date, _date_to, _date_from),
    _dt.time: _str_scalar("time", _dt.time, _dt.time.isoformat, _dt.time.fromisoformat),
    Decimal: _str_scalar("Decimal", Decimal, str, Decimal),
    uuid.UUID: _str_scalar("UUID", uuid.UUID, str, uuid.UUID),
}


def _never_enc(v: Any) -> Any:
    raise _mismatch("NoReturn (this function never returns)", v)


def _never_dec(obj: Any) -> Any:
    raise _expected("nothing (annotation NoReturn)", obj)


_NEVER = _Node("NoReturn", _never_enc, _never_dec, frozenset())


# --- Any: self-describing tagged encoding --------------------------------------


def _any_unsupported(v: object) -> _Fail:
    if dataclasses.is_dataclass(v) or _is_pydantic_instance(v) or isinstance(v, (enum.Enum, tuple)):
        what = "enum member" if isinstance(v, enum.Enum) else "instance of a class"
        reason = (
            f"not JSON-serializable without a type annotation: a {what} cannot be stored "
            f"under a missing or `Any` annotation (reading it back would mean importing a class "
            f"named in the stored data); annotate the step's return type (or the parameter), "
            f"e.g. -> {_vname(v)}"
        )
    else:
        reason = f"not JSON-serializable; {_ADVICE}"
    return _Fail(reason, _vname(v))


def _any_enc(v: Any) -> Any:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    f = _ANY_ENC.get(t)
    if f is None:
        raise _any_unsupported(v)
    return f(v)


def _any_enc_items(v: Iterable[Any]) -> list[Any]:
    try:
        return [_any_enc(x) for x in v]
    except _Fail as e:
        e.path.append(_fail_index(_any_enc, v))
        raise


def _any_enc_dict(v: dict[Any, Any]) -> Any:
    for k in v:
        if type(k) is not str:
            return {"$map": _any_enc_pairs(v)}
    try:
        out = {k: _any_enc(x) for k, x in v.items()}
    except _Fail as e:
        for k, x in v.items():
            try:
                _any_enc(x)
            except _Fail:
                e.path.append(f"[{k!r}]")
                break
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
            out.append([_any_enc(k), _any_enc(x)])
        except _Fail as e:
            e.path.append(f"[{k!r}]")
            raise
    return out


def _any_float(v: float) -> Any:
    if v - v == 0.0:
        return v
    return {"$float": "nan" if v != v else ("inf" if v > 0 else "-inf")}


_ANY_ENC: dict[type, _Fn] = {
    float: _any_float,
    list: _any_enc_items,
    dict: _any_enc_dict,
    tuple: lambda v: {"$tuple": _any_enc_items(v)},
    set: lambda v: {"$set": _any_enc_items(v)},
    frozenset: lambda v: {"$frozenset": _any_enc_items(v)},
    bytes: lambda v: {"$bytes": _b64(v)},
    bytearray: lambda v: {"$bytearray": _b64(v)},
    _dt.datetime: lambda v: {"$datetime": _dt_to(v)},
    _dt.date: lambda v: {"$date": v.isoformat()},
    _dt.time: lambda v: {"$time": v.isoformat()},
    _dt.timedelta: lambda v: {"$timedelta": _td_to(v)},
    Decimal: lambda v: {"$decimal": str(v)},
    uuid.UUID: lambda v: {"$uuid": str(v)},
    pathlib.PurePosixPath: lambda v: {"$pureposixpath": str(v)},
    pathlib.PureWindowsPath: lambda v: {"$purewindowspath": str(v)},
    type(pathlib.Path()): lambda v: {"$path": str(v)},
}


def _any_dec(obj: Any) -> Any:
    t = type(obj)
    if t is list:
        return _any_dec_items(obj)
    if t is dict:
        if len(obj) == 1:
            for k in obj:
                if k[:1] == "$":
                    return _any_dec_tag(k, obj[k])
        try:
            return {k: _any_dec(x) for k, x in obj.items()}
        except _Fail as e:
            e.path.append(_fail_key(lambda k: _any_dec(obj[k]), obj))
            raise
    if t is float or t is int or t is str or t is bool or obj is None:
        return obj
    raise _expected("a JSON value", obj)


def _any_dec_items(obj: list[Any]) -> list[Any]:
    try:
        return [_any_dec(x) for x in obj]
    except _Fail as e:
        e.path.append(_fail_index(_any_dec, obj))
        raise


def _want(kind: type, what: str, obj: Any) -> Any:
    if type(obj) is not kind:
        raise _expected(what, obj)
    return obj


def _any_dec_map(obj: Any) -> dict[Any, Any]:
    out = {}
    for pair in _want(list, "a list of [key, value] pairs", obj):
        if type(pair) is not list or len(pair) != 2:
            raise _expected("a [key, value] pair", pair)
        out[_any_dec(pair[0])] = _any_dec(pair[1])
    return out


def _any_dec_float(obj: Any) -> float:
    special = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(obj)
    if special is None:
        raise _expected('"nan", "inf" or "-inf"', obj)
    return _FLOAT_SPECIAL[special]


_ANY_TAGS: dict[str, _Fn] = {
    "$tuple": lambda x: tuple(_any_dec_items(_want(list, "a list", x))),
    "$set": lambda x: set(_any_dec_items(_want(list, "a list", x))),
    "$frozenset": lambda x: frozenset(_any_dec_items(_want(list, "a list", x))),
    "$map": _any_dec_map,
    "$dict": lambda x: {k: _any_dec(v) for k, v in _want(dict, "an object", x).items()},
    "$float": _any_dec_float,
    "$bytes": lambda x: _unb64(_want(str, "a base64 string", x)),
    "$bytearray": lambda x: bytearray(_unb64(_want(str, "a base64 string", x))),
    "$datetime": lambda x: _dt_from(_want(str, "an ISO datetime", x)),
    "$date": lambda x: _dt.date.fromisoformat(_want(str, "an ISO date", x)),
    "$time": lambda x: _dt.time.fromisoformat(_want(str, "an ISO time", x)),
    "$timedelta": _td_from,
    "$decimal": lambda x: Decimal(_want(str, "a decimal string", x)),
    "$uuid": lambda x: uuid.UUID(_want(str, "a UUID string", x)),
    "$path": lambda x: pathlib.Path(_want(str, "a path string", x)),
    "$pureposixpath": lambda x: pathlib.PurePosixPath(_want(str, "a path string", x)),
    "$purewindowspath": lambda x: pathlib.PureWindowsPath(_want(str, "a path string", x)),
}


def _any_dec_tag(tag: str, payload: Any) -> Any:
    f = _ANY_TAGS.get(tag)
    if f is None:
        raise _Fail(f"unknown type tag {tag!r} in a value stored under `Any`")
    try:
        return f(payload)
    except _Fail as e:
        e.path.append(f"[{tag!r}]")
        raise
    except Exception as e:
        raise _Fail(f"invalid {tag} payload {payload!r}: {e}", cause=e) from None


_ANY = _Node("Any", _any_enc, _any_dec, _ALL_KINDS)


# --------------------------------------------------------------------------- compile


def _tname(tp: Any) -> str:
    """Readable name of an annotation, for messages and union tags."""
    if tp is _NoneType or tp is None:
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        # Union tags are stored: keep them short and independent of the function a
        # local class happens to be defined in.
        return tp.__qualname__.rsplit("<locals>.", 1)[-1]
    return re.sub(r"\btyping(_extensions)?\.", "", repr(tp))


def _special(name: str) -> tuple[Any, ...]:
    """typing special forms by name, from typing and (when loaded) typing_extensions."""
    found = []
    for mod in (typing, sys.modules.get("typing_extensions")):
        obj = getattr(mod, name, None) if mod is not None else None
        if obj is not None and obj not in found:
            found.append(obj)
    return tuple(found)


def _is_pydantic_model(tp: Any) -> bool:
    pyd = sys.modules.get("pydantic")  # a model class exists only if pydantic was imported
    return pyd is not None and isinstance(tp, type) and issubclass(tp, pyd.BaseModel)


def _is_pydantic_instance(v: object) -> bool:
    pyd = sys.modules.get("pydantic")
    return pyd is not None and isinstance(v, pyd.BaseModel)


def _is_typeddict(tp: Any) -> bool:
    if not isinstance(tp, type) or not issubclass(tp, dict):
        return False
    return typing.is_typeddict(tp) or (
        hasattr(tp, "__required_keys__") and hasattr(tp, "__total__")
    )


def _is_namedtuple(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


class _Ctx:
    def __init__(self) -> None:
        # annotation -> compiled node, or a list acting as a forward cell while the
        # node is being compiled (a recursive dataclass refers to itself).
        self.memo: dict[Any, Any] = {}


def _unwrap(tp: Any) -> Any:
    """Strip wrappers that do not change the runtime representation."""
    annotated = _special("Annotated")
    qualifiers = _special("Final") + _special("Required") + _special("NotRequired")
    qualifiers += _special("ReadOnly") + _special("ClassVar")
    alias_type = _special("TypeAliasType")
    while True:
        origin = typing.get_origin(tp)
        if origin is not None and origin in annotated:
            tp = tp.__origin__
        elif origin is not None and origin in qualifiers:
            tp = typing.get_args(tp)[0]
        elif tp in qualifiers:  # bare `Final`
            return Any
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        elif alias_type and isinstance(tp, alias_type):
            tp = tp.__value__
        elif isinstance(tp, typing.TypeVar):
            if tp.__bound__ is not None:
                tp = tp.__bound__
            elif tp.__constraints__:
                tp = typing.Union[tp.__constraints__]  # noqa: UP007 (runtime construction)
            else:
                return Any
        else:
            return tp


def _compile(tp: Any, ctx: _Ctx, where: str) -> _Node:
    tp = _unwrap(tp)
    if tp is Any or tp is object:
        return _ANY
    if tp is None or tp is _NoneType:
        return _NONE
    if tp in _special("NoReturn") + _special("Never"):
        return _NEVER
    if isinstance(tp, (str, typing.ForwardRef)):
        name = tp if isinstance(tp, str) else tp.__forward_arg__
        raise SerializationError(
            f"cannot serialize {where}: unresolved forward reference {name!r}; define or "
            f"import the type at module level so typing.get_type_hints can resolve it"
        )
    try:
        memo = ctx.memo.get(tp)
    except TypeError:  # unhashable annotation (e.g. Annotated metadata): no memo
        return _compile_new(tp, ctx, where)
    if memo is None:
        cell: list[_Node] = []
        ctx.memo[tp] = cell
        try:
            node = _compile_new(tp, ctx, where)
        finally:
            del ctx.memo[tp]
        cell.append(node)
        ctx.memo[tp] = node
        return node
    if isinstance(memo, _Node):
        return memo
    return _forward(memo, tp)


def _forward(cell: list[_Node], tp: Any) -> _Node:
    """A reference to a node still being compiled (recursive type)."""

    def enc(v: Any) -> Any:
        return cell[0].enc(v)

    def dec(obj: Any) -> Any:
        return cell[0].dec(obj)

    exact = (tp,) if isinstance(tp, type) else ()
    return _Node(_tname(tp), enc, dec, _class_kinds(tp), exact)


def _class_kinds(tp: Any) -> frozenset[type]:
    """JSON kinds of a class compiled later (kept exact so `Node | None` needs no tag)."""
    cls = typing.get_origin(tp) or tp
    if not isinstance(cls, type):
        return _ALL_KINDS
    if dataclasses.is_dataclass(cls) or _is_namedtuple(cls) or _is_typeddict(cls):
        return frozenset({dict})
    if _is_pydantic_model(cls) and not getattr(cls, "__pydantic_root_model__", False):
        return frozenset({dict})
    return _ALL_KINDS


_TYPING_TUPLE: Any = typing.Tuple  # noqa: UP006 (bare typing.Tuple means tuple[Any, ...])
_ABSTRACT_SEQ = {
    collections.abc.Sequence,
    collections.abc.MutableSequence,
}
_ABSTRACT_COLL = {collections.abc.Collection, collections.abc.Iterable}
_ABSTRACT_SET = {collections.abc.Set, collections.abc.MutableSet}
_ABSTRACT_MAP = {collections.abc.Mapping, collections.abc.MutableMapping}


def _compile_new(tp: Any, ctx: _Ctx, where: str) -> _Node:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin is typing.Union or origin is types.UnionType:
        return _compile_union(tp, args, ctx, where)
    if origin is not None and origin in _special("Literal"):
        return _compile_literal(tp, args, ctx, where)

    if origin is None and isinstance(tp, type):
        cls = tp
        args = ()
    elif isinstance(origin, type):
        cls = origin
    else:
        raise _unsupported(tp, where)

    scalar = _SCALARS.get(cls) if origin is None else None
    if scalar is not None:
        return scalar

    item = args[0] if args else Any
    if cls is list:
        return _compile_seq(tp, list, _compile(item, ctx, where + "[]"))
    if cls is collections.deque:
        return _compile_seq(tp, collections.deque, _compile(item, ctx, where + "[]"))
    if cls is set or cls is frozenset:
        return _compile_seq(tp, cls, _compile(item, ctx, where + "[]"))
    if (cls is tuple and origin is None) or tp is _TYPING_TUPLE:
        return _compile_seq(tp, tuple, _ANY)
    if cls is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _compile_seq(tp, tuple, _compile(args[0], ctx, where + "[]"))
        if args == ((),):  # Python 3.10 spelling of tuple[()]
            args = ()
        return _compile_fixed_tuple(
            tp, [_compile(a, ctx, f"{where}[{i}]") for i, a in enumerate(args)]
        )
    if cls in (dict, collections.OrderedDict, collections.Counter) or cls in _ABSTRACT_MAP:
        out = dict if cls in _ABSTRACT_MAP else cls
        key: Any
        val: Any
        if cls is collections.Counter:
            key, val = item, int
        else:
            key, val = (args[0], args[1]) if len(args) == 2 else (Any, Any)
        return _compile_dict(
            tp, out, _compile(key, ctx, where + "[<key>]"), _compile(val, ctx, where + "[]")
        )
    if cls in _ABSTRACT_SEQ:
        return _compile_union(tp, (list[item], tuple[item, ...]), ctx, where)  # type: ignore[valid-type]
    if cls in _ABSTRACT_SET:
        return _compile_union(tp, (set[item], frozenset[item]), ctx, where)  # type: ignore[valid-type]
    if cls in _ABSTRACT_COLL:
        members = (list[item], tuple[item, ...], set[item], frozenset[item])  # type: ignore[valid-type]
        return _compile_union(tp, members, ctx, where)

    if issubclass(cls, enum.Enum):
        return _compile_enum(cls)
    if issubclass(cls, pathlib.PurePath):
        return _str_scalar(_tname(cls), cls, str, cls)
    if _is_typeddict(cls):
        return _compile_typeddict(tp, cls, args, ctx, where)
    if _is_namedtuple(cls):
        return _compile_namedtuple(tp, cls, args, ctx, where)
    if dataclasses.is_dataclass(cls):
        return _compile_dataclass(tp, cls, args, ctx, where)
    if _is_pydantic_model(cls):
        return _compile_pydantic(cls)
    for base in (str, int, float, bytes):
        if issubclass(cls, base) and cls is not bool:
            return _compile_scalar_subclass(cls, _compile(base, ctx, where))
    raise _unsupported(tp, where)


def _unsupported(tp: Any, where: str) -> SerializationError:
    return SerializationError(
        f"cannot serialize type {_tname(tp)} at {where}: not JSON-serializable; {_ADVICE}"
    )


def _compile_scalar_subclass(cls: type, base: _Node) -> _Node:
    """`class UserId(str)`: stored as the base value, rebuilt with ``cls(value)``."""
    benc, bdec, name = base.enc, base.dec, _tname(cls)

    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            return benc(v)
        raise _mismatch(name, v)

    def dec(obj: Any) -> Any:
        try:
            return cls(bdec(obj))
        except _Fail:
            raise
        except Exception as e:
            raise _Fail(f"{name}({obj!r}) raised {type(e).__name__}: {e}", cause=e) from None

    return _Node(name, enc, dec, base.kinds, (cls,), strkey=base.strkey)


# --- containers --------------------------------------------------------------------


def _compile_seq(tp: Any, out: Any, item: _Node) -> _Node:
    """list / tuple[T, ...] / set / frozenset / deque, stored as a JSON array."""
    name = _tname(tp)
    ienc, idec, prim = item.enc, item.dec, item.prim
    check: Any = out

    def enc(v: Any) -> Any:
        if not isinstance(v, check):
            raise _mismatch(name, v)
        if prim is not None and out is list:
            # list[str] of plain strs: nothing to convert, hand the list to json as is.
            for x in v:
                if type(x) is not prim:
                    break
            else:
                return v
        try:
            return [ienc(x) for x in v]
        except _Fail as e:
            e.path.append(_fail_index(ienc, v))
            raise

    def dec(obj: Any) -> Any:
        if type(obj) is not list:
            raise _expected(name, obj)
        if prim is not None and out is list:
            for x in obj:
                if type(x) is not prim:
                    break
            else:
                return obj  # a fresh list from json.loads: safe to hand out
        try:
            items = [idec(x) for x in obj]
        except _Fail as e:
            e.path.append(_fail_index(idec, obj))
            raise
        if out is list:
            return items
        try:
            return out(items)
        except TypeError as e:  # e.g. unhashable item for a set
            raise _Fail(f"cannot build {name}: {e}", cause=e) from None

    return _Node(name, enc, dec, frozenset({list}), (check,))


def _compile_fixed_tuple(tp: Any, items: list[_Node]) -> _Node:
    name = _tname(tp)
    n = len(items)
    encs = tuple(node.enc for node in items)
    decs = tuple(node.dec for node in items)

    def enc(v: Any) -> Any:
        if not isinstance(v, tuple) or len(v) != n:
            raise _mismatch(name, v)
        i = 0
        try:
            out = []
            for i, f in enumerate(encs):
                out.append(f(v[i]))
            return out
        except _Fail as e:
            e.path.append(f"[{i}]")
            raise

    def dec(obj: Any) -> Any:
        if type(obj) is not list or len(obj) != n:
            raise _expected(f"{name} (a JSON array of {n})", obj)
        i = 0
        try:
            out = []
            for i, f in enumerate(decs):
                out.append(f(obj[i]))
            return tuple(out)
        except _Fail as e:
            e.path.append(f"[{i}]")
            raise

    return _Node(name, enc, dec, frozenset({list}), (tuple,))


def _compile_dict(tp: Any, out: Any, key: _Node, val: _Node) -> _Node:
    name = _tname(tp)
    kenc, kdec, venc, vdec = key.enc, key.dec, val.enc, val.dec
    vprim = val.prim
    plain = out is dict

    if key.strkey:
        # Every key encodes to a string: a JSON object.
        kprim = key.prim

        def enc(v: Any) -> Any:
            if not isinstance(v, dict):
                raise _mismatch(name, v)
            try:
                if kprim is str:
                    return {k if type(k) is str else kenc(k): venc(x) for k, x in v.items()}
                return {kenc(k): venc(x) for k, x in v.items()}
            except _Fail as e:
                e.path.append(_dict_fail_path(kenc, venc, v))
                raise

        def dec(obj: Any) -> Any:
            if type(obj) is not dict:
                raise _expected(name, obj)
            if kprim is str and vprim is not None and plain:
                for x in obj.values():
                    if type(x) is not vprim:
                        break
                else:
                    return obj
            try:
                d = {kdec(k): vdec(x) for k, x in obj.items()}
            except _Fail as e:
                e.path.append(_dict_fail_path(kdec, vdec, obj))
                raise
            return d if plain else out(d)

        return _Node(name, enc, dec, frozenset({dict}), (dict,))

    any_key = key is _ANY

    # Other keys (int, tuple, ...): a JSON array of [key, value] pairs, decoded by K.
    # With untyped keys (bare `dict`, dict[Any, V]) an all-str-keys dict is still a
    # JSON object: decoding tells the two forms apart by JSON kind.
    def enc_pairs(v: Any) -> Any:
        if not isinstance(v, dict):
            raise _mismatch(name, v)
        try:
            if any_key:
                for k in v:
                    if type(k) is not str:
                        break
                else:
                    return {k: venc(x) for k, x in v.items()}
            return [[kenc(k), venc(x)] for k, x in v.items()]
        except _Fail as e:
            e.path.append(_dict_fail_path(kenc, venc, v))
            raise

    def dec_pairs(obj: Any) -> Any:
        if any_key and type(obj) is dict:
            try:
                d0 = {k: vdec(x) for k, x in obj.items()}
            except _Fail as e:
                e.path.append(_dict_fail_path(str, vdec, obj))
                raise
            return d0 if plain else out(d0)
        if type(obj) is not list:
            raise _expected(f"{name} (a JSON array of [key, value] pairs)", obj)
        d: dict[Any, Any] = {}
        for i, pair in enumerate(obj):
            if type(pair) is not list or len(pair) != 2:
                raise _expected("a [key, value] pair", pair)
            try:
                d[kdec(pair[0])] = vdec(pair[1])
            except _Fail as e:
                e.path.append(f"[{i}]")
                raise
            except TypeError as e:
                raise _Fail(f"unhashable dict key {pair[0]!r}", cause=e) from None
        return d if plain else out(d)

    kinds = frozenset({list, dict}) if any_key else frozenset({list})
    return _Node(name, enc_pairs, dec_pairs, kinds, (dict,))


def _dict_fail_path(kfn: _Fn, vfn: _Fn, d: dict[Any, Any]) -> str:
    for k, x in d.items():
        try:
            kfn(k)
        except Exception:
            return f"[<key {k!r}>]"
        try:
            vfn(x)
        except Exception:
            return f"[{k!r}]"
    return "[?]"


# --- unions and literals -----------------------------------------------------------


def _is_tag_shaped(obj: Any) -> bool:
    return type(obj) is dict and len(obj) == 2 and _TAG_TYPE in obj and _TAG_VALUE in obj


def _compile_union(tp: Any, args: tuple[Any, ...], ctx: _Ctx, where: str) -> _Node:
    members: list[_Node] = []
    for a in args:
        node = _compile(a, ctx, where)
        if node is _ANY:
            return _ANY  # `Any` (or `object`) absorbs the union: it round-trips None too
        if node not in members:
            members.append(node)
    if len(members) == 1:
        return members[0]
    name = " | ".join(m.name for m in members)

    non_none = [m for m in members if m is not _NONE]
    if len(members) == 2 and len(non_none) == 1 and _NoneType not in non_none[0].kinds:
        return _compile_optional(name, non_none[0])

    # Unique tag names: short names first, qualified on clashes.
    names: list[str] = [m.name for m in members]
    for i, n in enumerate(names):
        if names.count(n) > 1:
            ex = members[i].exact
            names[i] = f"{ex[0].__module__}.{n}" if ex else n
    for i, n in enumerate(names):
        if names.count(n) > 1:
            names[i] = f"{n}#{i}"
    by_name = dict(zip(names, members, strict=True))
    tag_of = {id(m): n for n, m in by_name.items()}

    # A value is stored bare only when its JSON kind can come from one member alone
    # (`int | list[str]`); every other value carries the member's tag. Deciding by
    # "only one member can emit this kind" rather than "first member" keeps old rows
    # readable when the union's members are reordered.
    emitters: dict[type, list[_Node]] = {}
    for m in members:
        for k in m.kinds:
            emitters.setdefault(k, []).append(m)
    kind_owner = {k: ms[0] for k, ms in emitters.items() if len(ms) == 1}
    exact_first: dict[type, _Node] = {}
    for m in members:
        for t in m.exact:
            exact_first.setdefault(t, m)

    def enc(v: Any) -> Any:
        first = exact_first.get(type(v))
        chosen: _Node | None = None
        best: _Fail | None = None
        obj: Any = None
        if first is not None:
            try:
                obj = first.enc(v)
                chosen = first
            except _Fail as e:
                best = e
        if chosen is None:
            for m in members:
                if m is first:
                    continue
                try:
                    obj = m.enc(v)
                    chosen = m
                    break
                except _Fail as e:
                    if best is None or (e.path and not best.path):
                        best = e
            else:
                if best is not None and best.path:
                    raise best  # a member matched the outer type but failed inside: say where
                raise _mismatch(name, v)
        if kind_owner.get(type(obj)) is chosen and not _is_tag_shaped(obj):
            return obj
        return {_TAG_TYPE: tag_of[id(chosen)], _TAG_VALUE: obj}

    def dec(obj: Any) -> Any:
        if _is_tag_shaped(obj):
            tag = obj[_TAG_TYPE]
            m = by_name.get(tag) if type(tag) is str else None
            if m is None:
                raise _Fail(f"stored type tag {tag!r} is not a member of {name}")
            try:
                return m.dec(obj[_TAG_VALUE])
            except _Fail as e:
                e.path.append(f"<{tag}>")
                raise
        m = kind_owner.get(type(obj))
        if m is None:
            raise _expected(name, obj)
        return m.dec(obj)

    kinds = frozenset().union(*(m.kinds for m in members)) | {dict}
    exact = tuple(t for m in members for t in m.exact)
    return _Node(name, enc, dec, kinds, exact)


def _compile_optional(name: str, inner: _Node) -> _Node:
    """``T | None`` where T never encodes to null: no tag needed."""
    ienc, idec = inner.enc, inner.dec

    def enc(v: Any) -> Any:
        if v is None:
            return None
        try:
            return ienc(v)
        except _Fail as e:
            if not e.path and e.reason.startswith("does not match the annotation"):
                e.reason = f"does not match the annotation {name}"
            raise

    def dec(obj: Any) -> Any:
        return None if obj is None else idec(obj)

    return _Node(name, enc, dec, inner.kinds | {_NoneType}, (*inner.exact, _NoneType))


def _compile_literal(tp: Any, values: tuple[Any, ...], ctx: _Ctx, where: str) -> _Node:
    name = _tname(tp)
    to_json: dict[tuple[type, Any], Any] = {}
    from_json: dict[tuple[type, Any], Any] = {}
    for lit in values:
        encoded = _compile(type(lit), ctx, where).enc(lit)
        jkey = (type(encoded), encoded)
        if jkey in from_json:
            # Two literals with the same JSON form (Color.RED and "red"): tag them.
            singles = tuple(typing.Literal[v] for v in values)
            return _compile_union(tp, singles, ctx, where)
        to_json[(type(lit), lit)] = encoded
        from_json[jkey] = lit
    kinds = frozenset(k for k, _ in from_json)

    def enc(v: Any) -> Any:
        try:
            return to_json[(type(v), v)]
        except (KeyError, TypeError):
            raise _mismatch(name, v) from None

    def dec(obj: Any) -> Any:
        try:
            return from_json[(type(obj), obj)]
        except (KeyError, TypeError):
            raise _expected(name, obj) from None

    strkey = kinds == _STR
    return _Node(name, enc, dec, kinds, (), strkey=strkey)


def _compile_enum(cls: type[enum.Enum]) -> _Node:
    name = _tname(cls)
    members = list(cls.__members__.values())
    enc_map: dict[Any, Any] = {}
    dec_map: dict[tuple[type, Any], Any] = {}
    for m in members:
        try:
            encoded = _any_enc(m.value)
        except _Fail as e:
            raise SerializationError(
                f"cannot serialize enum {name}: member {m.name} has a value of type "
                f"{_vname(m.value)} that cannot be stored as JSON"
            ) from e
        enc_map[m] = encoded
        with contextlib.suppress(TypeError):  # list/dict encodings: decoded via cls(value)
            dec_map.setdefault((type(encoded), encoded), m)
    kinds = frozenset(type(e) for e in enc_map.values())
    if issubclass(cls, enum.Flag):
        kinds |= {int}

    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            encoded = enc_map.get(v, _MISSING)
            return _any_enc(v.value) if encoded is _MISSING else encoded
        raise _mismatch(name, v)

    def dec(obj: Any) -> Any:
        try:
            return dec_map[(type(obj), obj)]
        except (KeyError, TypeError):
            pass
        try:
            return cls(_any_dec(obj))  # Flag combinations, container values
        except _Fail:
            raise
        except Exception:
            raise _expected(f"a value of enum {name}", obj) from None

    return _Node(name, enc, dec, kinds, (cls,), strkey=kinds == _STR)


# --- classes with fields -------------------------------------------------------------


def _class_hints(cls: type, where: str, names: Iterable[str] | None = None) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as e:
        if names is not None:
            # One unresolvable annotation must not sink the others: Python 3.10
            # cannot resolve a string "InitVar[int]", which is not a field anyway.
            try:
                return _hints_of_names(cls, set(names))
            except Exception:
                pass
        raise SerializationError(
            f"cannot serialize {where}: the type hints of {cls.__qualname__} cannot be resolved "
            f"({type(e).__name__}: {e}); define or import the referenced types at module level"
        ) from e


def _hints_of_names(cls: type, names: set[str]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        wanted = {n: a for n, a in inspect.get_annotations(klass).items() if n in names}
        if wanted:
            # A throwaway class holding only the wanted annotations, resolved in the
            # namespace of the module that defined them.
            shim = type(klass.__name__, (), {"__annotations__": wanted})
            shim.__module__ = klass.__module__
            local = {klass.__name__: klass}
            hints.update(typing.get_type_hints(shim, localns=local, include_extras=True))
    return hints


def _typevar_map(cls: type, args: tuple[Any, ...]) -> dict[Any, Any]:
    """TypeVar bindings for a generic class alias (``Box[int]``) and its generic bases."""
    out: dict[Any, Any] = {}

    def walk(c: Any, a: tuple[Any, ...]) -> None:
        params = getattr(c, "__parameters__", ())
        for p, v in zip(params, a, strict=False):
            out.setdefault(p, _subst(v, out))
        for base in getattr(c, "__orig_bases__", ()):
            borigin = typing.get_origin(base)
            if isinstance(borigin, type) and borigin is not typing.Generic:
                walk(borigin, tuple(_subst(x, out) for x in typing.get_args(base)))

    walk(cls, args)
    return out


def _subst(tp: Any, tvmap: dict[Any, Any]) -> Any:
    if not tvmap:
        return tp
    if isinstance(tp, typing.TypeVar):
        return tvmap.get(tp, tp)
    params = getattr(tp, "__parameters__", None)
    if params and typing.get_origin(tp) is not None:
        try:
            return tp[tuple(tvmap.get(p, p) for p in params)]
        except TypeError:
            return tp
    return tp


def _field_nodes(
    cls: type, args: tuple[Any, ...], names: Iterable[str], ctx: _Ctx, where: str
) -> dict[str, _Node]:
    names = list(names)
    hints = _class_hints(cls, where, names)
    tvmap = _typevar_map(cls, args)
    return {n: _compile(_subst(hints.get(n, Any), tvmap), ctx, f"{where}.{n}") for n in names}


def _compile_dataclass(tp: Any, cls: type, args: tuple[Any, ...], ctx: _Ctx, where: str) -> _Node:
    name = _tname(tp)
    fields = dataclasses.fields(cls)
    nodes = _field_nodes(cls, args, [f.name for f in fields], ctx, where)
    encs = tuple((f.name, nodes[f.name].enc) for f in fields)

    initvar = getattr(dataclasses, "_FIELD_INITVAR", None)
    has_initvar = any(
        getattr(f, "_field_type", None) is initvar
        for f in getattr(cls, "__dataclass_fields__", {}).values()
    )
    params = getattr(cls, "__dataclass_params__", None)
    bypass_init = has_initvar or (params is not None and not params.init)

    def required(f: dataclasses.Field[Any]) -> bool:
        return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING

    init_decs = tuple((f.name, nodes[f.name].dec, required(f)) for f in fields if f.init)
    post_decs = tuple((f.name, nodes[f.name].dec) for f in fields if not f.init)
    # Without __init__, defaults of fields missing from an old row are applied here.
    defaults = {
        f.name: (lambda f=f: f.default_factory())
        if f.default_factory is not dataclasses.MISSING
        else (lambda f=f: f.default)
        for f in fields
        if not required(f)
    }

    def enc(v: Any) -> Any:
        if type(v) is not cls and not isinstance(v, cls):
            raise _mismatch(name, v)
        out = {}
        fname = ""
        try:
            for fname, fenc in encs:
                x = getattr(v, fname, _MISSING)
                if x is not _MISSING:  # an init=False field never assigned
                    out[fname] = fenc(x)
        except _Fail as e:
            e.path.append("." + fname)
            raise
        return out

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise _expected(f"{name} (a JSON object)", obj)
        kw = {}
        fname = ""
        try:
            for fname, fdec, req in init_decs:
                x = obj.get(fname, _MISSING)
                if x is not _MISSING:
                    kw[fname] = fdec(x)
                elif req:
                    raise _Fail(f"missing required field {fname!r} of {name}")
        except _Fail as e:
            e.path.append("." + fname)
            raise
        if bypass_init:
            inst: Any = object.__new__(cls)
            for fname, _, _ in init_decs:
                if fname in kw:
                    object.__setattr__(inst, fname, kw[fname])
                elif fname in defaults:
                    object.__setattr__(inst, fname, defaults[fname]())
        else:
            try:
                inst = cls(**kw)
            except Exception as e:
                raise _Fail(f"{name}(...) raised {type(e).__name__}: {e}", cause=e) from None
        for fname, fdec in post_decs:
            x = obj.get(fname, _MISSING)
            if x is not _MISSING:
                try:
                    object.__setattr__(inst, fname, fdec(x))
                except _Fail as e:
                    e.path.append("." + fname)
                    raise
            elif bypass_init and fname in defaults:
                object.__setattr__(inst, fname, defaults[fname]())
        return inst

    return _Node(name, enc, dec, frozenset({dict}), (cls,))


def _compile_namedtuple(tp: Any, cls: Any, args: tuple[Any, ...], ctx: _Ctx, where: str) -> _Node:
    name = _tname(tp)
    fields: tuple[str, ...] = cls._fields
    defaults: dict[str, Any] = getattr(cls, "_field_defaults", {})
    nodes = _field_nodes(cls, args, fields, ctx, where)
    encs = tuple((i, f, nodes[f].enc) for i, f in enumerate(fields))
    decs = tuple((f, nodes[f].dec, f not in defaults) for f in fields)

    def enc(v: Any) -> Any:
        if not isinstance(v, cls):
            raise _mismatch(name, v)
        fname = ""
        try:
            out = {}
            for i, fname, fenc in encs:
                out[fname] = fenc(v[i])
            return out
        except _Fail as e:
            e.path.append("." + fname)
            raise

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise _expected(f"{name} (a JSON object)", obj)
        kw = {}
        fname = ""
        try:
            for fname, fdec, req in decs:
                x = obj.get(fname, _MISSING)
                if x is not _MISSING:
                    kw[fname] = fdec(x)
                elif req:
                    raise _Fail(f"missing required field {fname!r} of {name}")
        except _Fail as e:
            e.path.append("." + fname)
            raise
        try:
            return cls(**kw)
        except Exception as e:
            raise _Fail(f"{name}(...) raised {type(e).__name__}: {e}", cause=e) from None

    return _Node(name, enc, dec, frozenset({dict}), (cls,))


def _compile_typeddict(tp: Any, cls: type, args: tuple[Any, ...], ctx: _Ctx, where: str) -> _Node:
    name = _tname(tp)
    hints = _class_hints(cls, where)
    nodes = _field_nodes(cls, args, list(hints), ctx, where)
    required = set(getattr(cls, "__required_keys__", hints))
    # Under `from __future__ import annotations` Python 3.10/3.11 compute
    # __required_keys__ from unevaluated strings and miss NotRequired: re-read the
    # resolved hints.
    not_required, is_required = _special("NotRequired"), _special("Required")
    for k, h in hints.items():
        origin = typing.get_origin(h)
        if origin is not None and origin in not_required:
            required.discard(k)
        elif origin is not None and origin in is_required:
            required.add(k)
    encs = {k: n.enc for k, n in nodes.items()}
    decs = {k: n.dec for k, n in nodes.items()}

    def enc(v: Any) -> Any:
        if not isinstance(v, dict):
            raise _mismatch(name, v)
        out = {}
        k: Any = ""
        try:
            for k, x in v.items():
                if type(k) is not str:
                    raise _Fail(f"{name} keys must be str", _vname(k))
                # Keys the TypedDict does not declare are legal (structural typing):
                # store them self-described.
                out[k] = encs.get(k, _any_enc)(x)
            for k in required:
                if k not in v:
                    raise _Fail(f"missing required key {k!r} of {name}", _vname(v))
        except _Fail as e:
            e.path.append(f"[{k!r}]")
            raise
        return out

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise _expected(f"{name} (a JSON object)", obj)
        out = {}
        k = ""
        try:
            for k, x in obj.items():
                out[k] = decs.get(k, _any_dec)(x)
        except _Fail as e:
            e.path.append(f"[{k!r}]")
            raise
        return out

    return _Node(name, enc, dec, frozenset({dict}), ())


def _compile_pydantic(cls: Any) -> _Node:
    name = _tname(cls)
    pyd = sys.modules["pydantic"]
    version = tuple(int(p) for p in re.findall(r"\d+", str(pyd.VERSION))[:2])
    # warnings="error" (pydantic >= 2.7) makes a field holding the wrong type fail
    # here, before anything is committed, instead of a warning and a bad row.
    opts: dict[str, Any] = {"mode": "json", "by_alias": True, "round_trip": True}
    if version >= (2, 7):
        opts["warnings"] = "error"
    serializer = cls.__pydantic_serializer__
    validate = cls.model_validate

    def enc(v: Any) -> Any:
        if not isinstance(v, cls):
            raise _mismatch(name, v)
        try:
            if type(v) is cls:
                return v.model_dump(**opts)
            # A subclass instance is stored as the declared model (its fields only).
            return serializer.to_python(v, **opts)
        except Exception as e:
            raise _Fail(f"pydantic could not serialize it: {e}", _vname(v), e) from None

    def dec(obj: Any) -> Any:
        try:
            return validate(obj)
        except Exception as e:
            raise _Fail(f"{name}.model_validate failed: {e}", cause=e) from None

    root = bool(getattr(cls, "__pydantic_root_model__", False))
    return _Node(name, enc, dec, _ALL_KINDS if root else frozenset({dict}), (cls,))


# --------------------------------------------------------------------------- public API


def _to_text(obj: Any) -> str:
    text = _json_dumps(obj)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (e.g. from a filename) is valid in a Python str but
            # not in UTF-8, so the database could not store it: escape it as \udXXX.
            text = _ASCII_ENCODER.encode(obj)
    return text


class Codec:
    """Encoder/decoder for one type annotation; built once per step and cached.

    The annotation is compiled on first use, so a codec can be created at import
    (decoration) time even when it refers to classes defined later in the module.
    """

    __slots__ = ("_annotation", "_dec", "_enc", "_label", "_resolve", "_root")

    def __init__(
        self, resolve: Callable[[], Any], *, root: str = "result", label: str = ""
    ) -> None:
        self._resolve = resolve
        self._root = root
        self._label = label
        self._enc: _Fn | None = None
        self._dec: _Fn | None = None
        self._annotation: Any = _MISSING

    @property
    def annotation(self) -> Any:
        """The resolved annotation (resolving it now if needed; may raise)."""
        if self._annotation is _MISSING:
            self._annotation = self._resolve()
        return self._annotation

    def _build(self) -> tuple[_Fn, _Fn]:
        annotation = self._resolve()
        enc, dec = _compiled(annotation)
        self._annotation = annotation
        self._dec = dec
        self._enc = enc
        return enc, dec

    def dumps(self, value: object) -> str:
        """JSON text for ``value``; raises SerializationError if it does not fit."""
        enc = self._enc
        if enc is None:
            enc = self._build()[0]
        try:
            return _to_text(enc(value))
        except _Fail as e:
            raise SerializationError(e.encode_message(self._root)) from e.cause
        except RecursionError:
            raise SerializationError(
                f"cannot serialize value of type {_vname(value)} at {self._root}: it is nested "
                f"too deeply or contains a reference cycle"
            ) from None
        except SerializationError:
            raise
        except Exception as e:  # an int too large for str(), a property that raises, ...
            raise SerializationError(
                f"cannot serialize value of type {_vname(value)} at {self._root}: "
                f"{type(e).__name__}: {e}"
            ) from e

    def loads(self, text: str) -> Any:
        """The value stored by :meth:`dumps`; raises SerializationError on bad data."""
        dec = self._dec
        if dec is None:
            dec = self._build()[1]
        try:
            obj = _json_loads(text)
        except (ValueError, TypeError, RecursionError) as e:
            raise SerializationError(
                f"cannot deserialize stored value at {self._root}: not valid JSON ({e})"
            ) from None
        try:
            return dec(obj)
        except _Fail as e:
            raise SerializationError(e.decode_message(self._root)) from e.cause
        except RecursionError:
            raise SerializationError(
                f"cannot deserialize stored value at {self._root}: nested too deeply"
            ) from None
        except SerializationError:
            raise
        except Exception as e:  # a user constructor or validator that raised
            raise SerializationError(
                f"cannot deserialize stored value at {self._root}: {type(e).__name__}: {e}"
            ) from e

    def __repr__(self) -> str:
        shown = self._label or (
            "<unresolved>" if self._annotation is _MISSING else _tname(self._annotation)
        )
        return f"<zart Codec {shown}>"


_CACHE: dict[Any, Codec] = {}
_COMPILED: dict[Any, tuple[_Fn, _Fn]] = {}
_CACHE_MAX = 4096


def _compiled(annotation: Any) -> tuple[_Fn, _Fn]:
    """Compiled (enc, dec) for an annotation, shared by every codec that uses it.

    Failures are not cached: a forward reference that cannot be resolved yet may
    resolve on a later call, once the module defining it has finished importing.
    """
    try:
        hit = _COMPILED.get(annotation)
    except TypeError:  # unhashable annotation (e.g. Annotated[int, {...}]): no cache
        node = _compile(annotation, _Ctx(), "result")
        return node.enc, node.dec
    if hit is None:
        node = _compile(annotation, _Ctx(), "result")
        if len(_COMPILED) >= _CACHE_MAX:
            _COMPILED.clear()  # bound memory for programs that build annotations dynamically
        hit = _COMPILED[annotation] = (node.enc, node.dec)
    return hit


def codec_for(annotation: Any) -> Codec:
    """The (cached) codec for ``annotation``. Compiles lazily, on first dumps/loads."""
    try:
        codec = _CACHE.get(annotation)
    except TypeError:  # unhashable annotation (e.g. Annotated[int, {...}])
        return Codec(lambda: annotation, label=_tname(annotation))
    if codec is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()  # bound memory for programs that build annotations dynamically
        codec = _CACHE[annotation] = Codec(lambda: annotation, label=_tname(annotation))
    return codec


def _fn_label(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{qualname}" if module else str(qualname)


def _hints_of(fn: Callable[..., Any], what: str) -> dict[str, Any]:
    target: Any = fn
    while hasattr(target, "func") and not inspect.isfunction(target):  # functools.partial
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target) or isinstance(target, type)):
        target = type(target).__call__ if callable(target) else target
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as e:
        raise SerializationError(
            f"cannot resolve the {what} annotation of {_fn_label(fn)}: {type(e).__name__}: {e}. "
            f"Define or import the referenced types at module level (annotations are resolved "
            f"with typing.get_type_hints when the value is first stored)"
        ) from e


def return_codec(fn: Callable[..., Any]) -> Codec:
    """Codec for ``fn``'s return annotation (``Any`` when missing), resolved on first use."""

    def resolve() -> Any:
        return _hints_of(fn, "return").get("return", Any)

    return Codec(resolve, root="result", label=f"return of {_fn_label(fn)}")


class ArgsCodec:
    """Encodes a durable function's arguments as ``{"args": [...], "kwargs": {...}}``.

    Arguments are bound with :func:`inspect.signature` and each is encoded by its
    parameter's annotation (``*args``/``**kwargs`` by theirs, per item). Defaults
    are not stored: exactly what the caller passed is replayed.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self._sig = inspect.Signature()
        self._nodes: dict[str, _Node] | None = None

    def _build(self) -> dict[str, _Node]:
        try:
            self._sig = inspect.signature(self._fn)
        except (TypeError, ValueError) as e:
            raise SerializationError(f"cannot inspect {_fn_label(self._fn)}: {e}") from e
        hints = _hints_of(self._fn, "parameter")
        ctx = _Ctx()
        nodes = {n: _compile(hints.get(n, Any), ctx, n) for n in self._sig.parameters}
        self._nodes = nodes
        return nodes

    def dumps(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        nodes = self._nodes if self._nodes is not None else self._build()
        try:
            bound = self._sig.bind(*args, **kwargs)
        except TypeError as e:
            raise SerializationError(f"arguments do not fit {_fn_label(self._fn)}: {e}") from None
        out_args: list[Any] = []
        out_kwargs: dict[str, Any] = {}
        keyword_from_here = False
        P = inspect.Parameter
        name = ""
        try:
            for name, p in self._sig.parameters.items():
                if name not in bound.arguments:
                    keyword_from_here |= p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
                    continue
                v = bound.arguments[name]
                enc = nodes[name].enc
                if p.kind is P.VAR_POSITIONAL:
                    for i, x in enumerate(v):
                        try:
                            out_args.append(enc(x))
                        except _Fail as e:
                            e.path.append(f"[{i}]")
                            raise
                elif p.kind is P.VAR_KEYWORD:
                    for k, x in v.items():
                        try:
                            out_kwargs[k] = enc(x)
                        except _Fail as e:
                            e.path.append(f"[{k!r}]")
                            raise
                elif p.kind is P.KEYWORD_ONLY or keyword_from_here:
                    out_kwargs[name] = enc(v)
                else:
                    out_args.append(enc(v))
            return _to_text({"args": out_args, "kwargs": out_kwargs})
        except _Fail as e:
            raise SerializationError(e.encode_message(name)) from e.cause
        except RecursionError:
            raise SerializationError(
                f"cannot serialize argument {name}: nested too deeply or contains a cycle"
            ) from None
        except Exception as e:  # an int too large for str(), a property that raises, ...
            raise SerializationError(
                f"cannot serialize argument {name}: {type(e).__name__}: {e}"
            ) from e

    def loads(self, text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        nodes = self._nodes if self._nodes is not None else self._build()
        try:
            obj = _json_loads(text)
        except (ValueError, TypeError, RecursionError) as e:
            raise SerializationError(f"stored arguments are not valid JSON ({e})") from None
        if (
            type(obj) is not dict
            or type(obj.get("args")) is not list
            or type(obj.get("kwargs")) is not dict
        ):
            raise SerializationError('stored arguments are not {"args": [...], "kwargs": {...}}')
        P = inspect.Parameter
        params = list(self._sig.parameters.values())
        positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
        var_pos = next((p for p in params if p.kind is P.VAR_POSITIONAL), None)
        var_kw = next((p for p in params if p.kind is P.VAR_KEYWORD), None)
        where = "arguments"
        try:
            args: list[Any] = []
            for i, x in enumerate(obj["args"]):
                if i < len(positional):
                    where = positional[i].name
                    args.append(nodes[where].dec(x))
                elif var_pos is not None:
                    where = f"{var_pos.name}[{i - len(positional)}]"
                    args.append(nodes[var_pos.name].dec(x))
                else:
                    raise _Fail(f"too many stored positional arguments for {_fn_label(self._fn)}")
            kwargs: dict[str, Any] = {}
            for k, x in obj["kwargs"].items():
                p = self._sig.parameters.get(k)
                if p is not None and p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY):
                    where = k
                    kwargs[k] = nodes[k].dec(x)
                elif var_kw is not None:
                    where = f"{var_kw.name}[{k!r}]"
                    kwargs[k] = nodes[var_kw.name].dec(x)
                else:
                    raise _Fail(f"stored keyword argument {k!r} is not a parameter")
        except _Fail as e:
            raise SerializationError(e.decode_message(where)) from e.cause
        except RecursionError:
            raise SerializationError(f"stored argument {where} is nested too deeply") from None
        except Exception as e:  # a user constructor or validator that raised
            raise SerializationError(
                f"cannot deserialize stored argument {where}: {type(e).__name__}: {e}"
            ) from e
        return tuple(args), kwargs


def args_codec(fn: Callable[..., Any]) -> ArgsCodec:
    """Codec for a durable function's inputs (annotations resolved on first use)."""
    return ArgsCodec(fn)


# --------------------------------------------------------------------------- fingerprint

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


_CANON: dict[type, _Fn] = {
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
        if len(_DC_FIELDS) >= _CACHE_MAX:
            _DC_FIELDS.clear()
        names = _DC_FIELDS[t] = tuple(f.name for f in dataclasses.fields(v))
    if names is not None:
        return {n: _canon(getattr(v, n, None)) for n in names}
    if isinstance(v, enum.Enum):
        return _canon(v.value)
    if _is_pydantic_instance(v):
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
