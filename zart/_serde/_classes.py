"""Nodes for user classes, built from the nodes of their fields: dataclasses,
NamedTuples and TypedDicts (JSON objects of fields), pydantic v2 models (their own
JSON mode), enums (their value) and subclasses of scalar types (the base value).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import re
import sys
from collections.abc import Callable
from typing import Any

from zart._errors import SerializationError
from zart._serde._node import (
    ALL_KINDS,
    DICT_KINDS,
    MISSING,
    STR_KINDS,
    Fail,
    Fn,
    Node,
    expected,
    fail_key,
    mismatch,
    vname,
)
from zart._serde._tagged import any_dec, any_enc
from zart._serde._types import tname

# (field name, decoder, required): how a record decoder rebuilds one init field.
_InitDec = tuple[str, Fn, bool]
# Field name -> a function making its default value.
_Defaults = dict[str, Callable[..., Any]]


def dataclass_node(tp: Any, cls: type, nodes: dict[str, Node]) -> Node:
    """A dataclass, from the nodes of its fields (by field name)."""
    name = tname(tp)
    fields = dataclasses.fields(cls)

    def required(f: dataclasses.Field[Any]) -> bool:
        return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING

    init_decs = tuple((f.name, nodes[f.name].dec, required(f)) for f in fields if f.init)
    post_decs = tuple((f.name, nodes[f.name].dec) for f in fields if not f.init)
    # Without __init__, defaults of fields missing from an old row are applied here.
    defaults: _Defaults = {
        f.name: (lambda f=f: f.default_factory())
        if f.default_factory is not dataclasses.MISSING
        else (lambda f=f: f.default)
        for f in fields
        if not required(f)
    }
    encs = tuple((f.name, nodes[f.name].enc) for f in fields)
    enc = _record_encoder(name, cls, encs)
    dec = _record_decoder(name, cls, init_decs, post_decs, defaults, _bypasses_init(cls))
    return Node(name, enc, dec, DICT_KINDS, (cls,))


def _bypasses_init(cls: type) -> bool:
    """Rebuild without calling ``__init__``: it takes InitVars (which are not stored)
    and its ``__post_init__`` already transformed the stored fields, or there is none
    (``init=False``)."""
    initvar = getattr(dataclasses, "_FIELD_INITVAR", None)
    has_initvar = any(
        getattr(f, "_field_type", None) is initvar
        for f in getattr(cls, "__dataclass_fields__", {}).values()
    )
    params = getattr(cls, "__dataclass_params__", None)
    return has_initvar or (params is not None and not params.init)


def namedtuple_node(tp: Any, cls: Any, nodes: dict[str, Node]) -> Node:
    """A NamedTuple, from the nodes of its fields (by field name)."""
    name = tname(tp)
    fields: tuple[str, ...] = cls._fields
    defaults: dict[str, Any] = getattr(cls, "_field_defaults", {})
    encs = tuple((f, nodes[f].enc) for f in fields)
    decs = tuple((f, nodes[f].dec, f not in defaults) for f in fields)
    enc = _record_encoder(name, cls, encs)
    dec = _record_decoder(name, cls, decs, (), {}, False)
    return Node(name, enc, dec, DICT_KINDS, (cls,))


def _record_encoder(name: str, cls: type, encs: tuple[tuple[str, Fn], ...]) -> Fn:
    """Encoder of a dataclass or NamedTuple: a JSON object of its fields."""

    def enc(v: Any) -> Any:
        if type(v) is not cls and not isinstance(v, cls):
            raise mismatch(name, v)
        out = {}
        fname = ""
        try:
            for fname, fenc in encs:
                x = getattr(v, fname, MISSING)
                if x is not MISSING:  # an init=False field never assigned
                    out[fname] = fenc(x)
        except Fail as e:
            e.path.append("." + fname)
            raise
        return out

    return enc


def _record_decoder(
    name: str,
    cls: type,
    init_decs: tuple[_InitDec, ...],
    post_decs: tuple[tuple[str, Fn], ...],
    defaults: _Defaults,
    bypass_init: bool,
) -> Fn:
    """Decoder of a dataclass or NamedTuple: ``cls(**init fields)``, then the
    ``init=False`` fields (``post_decs``) are set; with ``bypass_init``, the
    instance is built without ``__init__`` and missing fields get ``defaults``."""

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise expected(f"{name} (a JSON object)", obj)
        kw = {}
        fname = ""
        try:
            for fname, fdec, req in init_decs:
                x = obj.get(fname, MISSING)
                if x is not MISSING:
                    kw[fname] = fdec(x)
                elif req:
                    raise Fail(f"missing required field {fname!r} of {name}")
        except Fail as e:
            e.path.append("." + fname)
            raise
        if bypass_init:
            inst = _without_init(cls, kw, init_decs, defaults)
        else:
            try:
                inst = cls(**kw)
            except Exception as e:
                raise Fail(f"{name}(...) raised {type(e).__name__}: {e}", cause=e) from None
        for fname, fdec in post_decs:
            x = obj.get(fname, MISSING)
            if x is not MISSING:
                try:
                    object.__setattr__(inst, fname, fdec(x))
                except Fail as e:
                    e.path.append("." + fname)
                    raise
            elif bypass_init and fname in defaults:
                object.__setattr__(inst, fname, defaults[fname]())
        return inst

    return dec


def _without_init(
    cls: type, kw: dict[str, Any], init_decs: tuple[_InitDec, ...], defaults: _Defaults
) -> Any:
    inst: Any = object.__new__(cls)
    for fname, _, _ in init_decs:
        if fname in kw:
            object.__setattr__(inst, fname, kw[fname])
        elif fname in defaults:
            object.__setattr__(inst, fname, defaults[fname]())
    return inst


def typeddict_node(tp: Any, nodes: dict[str, Node], required: set[str]) -> Node:
    """A TypedDict, from the nodes of its keys and the set of required keys."""
    name = tname(tp)
    encs = {k: n.enc for k, n in nodes.items()}
    decs = {k: n.dec for k, n in nodes.items()}

    def enc(v: Any) -> Any:
        if not isinstance(v, dict):
            raise mismatch(name, v)
        out = {}
        k: Any = ""
        try:
            for k, x in v.items():
                if type(k) is not str:
                    raise Fail(f"{name} keys must be str", vname(k))
                # Keys the TypedDict does not declare are legal (structural typing):
                # store them self-described.
                out[k] = encs.get(k, any_enc)(x)
            for k in required:
                if k not in v:
                    raise Fail(f"missing required key {k!r} of {name}", vname(v))
        except Fail as e:
            e.path.append(f"[{k!r}]")
            raise
        return out

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise expected(f"{name} (a JSON object)", obj)
        try:
            return {k: decs.get(k, any_dec)(x) for k, x in obj.items()}
        except Fail as e:
            e.path.append(fail_key(lambda k: decs.get(k, any_dec)(obj[k]), obj))
            raise

    return Node(name, enc, dec, DICT_KINDS, ())


def pydantic_node(cls: Any) -> Node:
    """A pydantic v2 model: ``model_dump(mode="json")`` / ``model_validate``."""
    name = tname(cls)
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
            raise mismatch(name, v)
        try:
            if type(v) is cls:
                return v.model_dump(**opts)
            # A subclass instance is stored as the declared model (its fields only).
            return serializer.to_python(v, **opts)
        except Exception as e:
            raise Fail(f"pydantic could not serialize it: {e}", vname(v), e) from None

    def dec(obj: Any) -> Any:
        try:
            return validate(obj)
        except Exception as e:
            raise Fail(f"{name}.model_validate failed: {e}", cause=e) from None

    root = bool(getattr(cls, "__pydantic_root_model__", False))
    return Node(name, enc, dec, ALL_KINDS if root else DICT_KINDS, (cls,))


def enum_node(cls: type[enum.Enum]) -> Node:
    """An enum, stored as its member's value (self-described, as under ``Any``)."""
    name = tname(cls)
    enc_map: dict[Any, Any] = {}
    dec_map: dict[tuple[type, Any], Any] = {}
    for m in cls.__members__.values():
        try:
            encoded = any_enc(m.value)
        except Fail as e:
            raise SerializationError(
                f"cannot serialize enum {name}: member {m.name} has a value of type "
                f"{vname(m.value)} that cannot be stored as JSON"
            ) from e
        enc_map[m] = encoded
        with contextlib.suppress(TypeError):  # list/dict encodings: decoded via cls(value)
            dec_map.setdefault((type(encoded), encoded), m)
    kinds = frozenset(type(e) for e in enc_map.values())
    if issubclass(cls, enum.Flag):
        kinds |= {int}

    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            encoded = enc_map.get(v, MISSING)
            return any_enc(v.value) if encoded is MISSING else encoded
        raise mismatch(name, v)

    def dec(obj: Any) -> Any:
        try:
            return dec_map[(type(obj), obj)]
        except (KeyError, TypeError):
            pass
        try:
            return cls(any_dec(obj))  # Flag combinations, container values
        except Fail:
            raise
        except Exception:
            raise expected(f"a value of enum {name}", obj) from None

    return Node(name, enc, dec, kinds, (cls,), strkey=kinds == STR_KINDS)


def scalar_subclass_node(cls: type, base: Node) -> Node:
    """`class UserId(str)`: stored as the base value, rebuilt with ``cls(value)``."""
    benc, bdec, name = base.enc, base.dec, tname(cls)

    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            return benc(v)
        raise mismatch(name, v)

    def dec(obj: Any) -> Any:
        try:
            return cls(bdec(obj))
        except Fail:
            raise
        except Exception as e:
            raise Fail(f"{name}({obj!r}) raised {type(e).__name__}: {e}", cause=e) from None

    return Node(name, enc, dec, base.kinds, (cls,), strkey=base.strkey)
