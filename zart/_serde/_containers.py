"""Nodes for collections, built from the nodes of their items: ``list``, ``tuple``,
``set``, ``frozenset`` and ``deque`` (JSON arrays), fixed-length tuples, and dicts
(a JSON object when every key encodes to a string, else an array of
``[key, value]`` pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zart._serde._node import (
    DICT_KINDS,
    LIST_KINDS,
    Fail,
    Fn,
    Node,
    expected,
    fail_entry,
    fail_index,
    fail_key,
    mismatch,
)
from zart._serde._tagged import ANY
from zart._serde._types import tname

# mismatch (encoding) or expected (decoding): the failure for a value of the wrong kind.
_Reject = Callable[[str, Any], Fail]


def seq_node(tp: Any, out: type, item: Node) -> Node:
    """list / tuple[T, ...] / set / frozenset / deque, stored as a JSON array."""
    name = tname(tp)
    # list[str] of plain strs: nothing to convert, json takes (and returns) the list as is.
    prim = item.prim if out is list else None
    enc = _array_mapper(name, item.enc, out, mismatch, prim, None)
    dec = _array_mapper(name, item.dec, list, expected, prim, None if out is list else out)
    return Node(name, enc, dec, LIST_KINDS, (out,))


def _array_mapper(
    name: str, f: Fn, accept: Any, reject: _Reject, prim: type | None, build: type | None
) -> Fn:
    """Maps ``f`` over a sequence: the encoder or the decoder of a :func:`seq_node`.

    One function serves both directions (they differ only in the parameters), and
    it is the node's enc/dec itself, so calls go through no extra layer.
    """

    def run(v: Any) -> Any:
        if not isinstance(v, accept):
            raise reject(name, v)
        if prim is not None:
            for x in v:
                if type(x) is not prim:
                    break
            else:
                return v  # encoding: json takes it as is; decoding: a fresh list from json
        try:
            items = [f(x) for x in v]
        except Fail as e:
            e.path.append(fail_index(f, v))
            raise
        if build is None:
            return items
        try:
            return build(items)
        except TypeError as e:  # e.g. unhashable item for a set
            raise Fail(f"cannot build {name}: {e}", cause=e) from None

    return run


def fixed_tuple_node(tp: Any, items: list[Node]) -> Node:
    """``tuple[A, B, C]``, stored as a JSON array of exactly that length."""
    name = tname(tp)
    n = len(items)
    enc = _row_mapper(name, tuple(node.enc for node in items), tuple, mismatch, None)
    dec_label = f"{name} (a JSON array of {n})"
    dec = _row_mapper(dec_label, tuple(node.dec for node in items), list, expected, tuple)
    return Node(name, enc, dec, LIST_KINDS, (tuple,))


def _row_mapper(
    label: str, fns: tuple[Fn, ...], accept: Any, reject: _Reject, build: type | None
) -> Fn:
    """Applies ``fns[i]`` to item i: the encoder or the decoder of a fixed tuple."""
    n = len(fns)

    def run(v: Any) -> Any:
        if not isinstance(v, accept) or len(v) != n:
            raise reject(label, v)
        i = 0
        try:
            out = []
            for i, f in enumerate(fns):
                out.append(f(v[i]))
        except Fail as e:
            e.path.append(f"[{i}]")
            raise
        return out if build is None else build(out)

    return run


def dict_node(tp: Any, out: type, key: Node, val: Node) -> Node:
    """``dict[K, V]`` (and OrderedDict, Counter, Mapping): ``out`` is the class rebuilt."""
    if key.strkey:
        return _object_dict_node(tname(tp), out, key, val)
    return _pairs_dict_node(tname(tp), out, key, val)


def _object_dict_node(name: str, out: type, key: Node, val: Node) -> Node:
    """Every key encodes to a string: a JSON object."""
    kenc, kdec, venc, vdec = key.enc, key.dec, val.enc, val.dec
    kprim = key.prim
    plain = out is dict
    # dict[str, int] of plain values: json.loads' dict is returned as is.
    vprim = val.prim if kprim is str and plain else None

    def enc(v: Any) -> Any:
        if not isinstance(v, dict):
            raise mismatch(name, v)
        try:
            if kprim is str:
                return {k if type(k) is str else kenc(k): venc(x) for k, x in v.items()}
            return {kenc(k): venc(x) for k, x in v.items()}
        except Fail as e:
            e.path.append(fail_entry(kenc, venc, v))
            raise

    def dec(obj: Any) -> Any:
        if type(obj) is not dict:
            raise expected(name, obj)
        if vprim is not None:
            for x in obj.values():
                if type(x) is not vprim:
                    break
            else:
                return obj
        try:
            d = {kdec(k): vdec(x) for k, x in obj.items()}
        except Fail as e:
            e.path.append(fail_entry(kdec, vdec, obj))
            raise
        return d if plain else out(d)

    return Node(name, enc, dec, DICT_KINDS, (dict,))


def _pairs_dict_node(name: str, out: type, key: Node, val: Node) -> Node:
    """Other keys (int, tuple, ...): a JSON array of [key, value] pairs, decoded by K.

    With untyped keys (bare `dict`, dict[Any, V]) an all-str-keys dict is still a
    JSON object: decoding tells the two forms apart by JSON kind.
    """
    kenc, kdec, venc, vdec = key.enc, key.dec, val.enc, val.dec
    plain = out is dict
    any_key = key is ANY

    def enc(v: Any) -> Any:
        if not isinstance(v, dict):
            raise mismatch(name, v)
        try:
            if any_key:
                for k in v:
                    if type(k) is not str:
                        break
                else:
                    return {k: venc(x) for k, x in v.items()}
            return [[kenc(k), venc(x)] for k, x in v.items()]
        except Fail as e:
            e.path.append(fail_entry(kenc, venc, v))
            raise

    def dec(obj: Any) -> Any:
        if any_key and type(obj) is dict:
            try:
                d0 = {k: vdec(x) for k, x in obj.items()}
            except Fail as e:
                e.path.append(fail_key(lambda k: vdec(obj[k]), obj))
                raise
            return d0 if plain else out(d0)
        if type(obj) is not list:
            raise expected(f"{name} (a JSON array of [key, value] pairs)", obj)
        d: dict[Any, Any] = {}
        for i, pair in enumerate(obj):
            if type(pair) is not list or len(pair) != 2:
                raise expected("a [key, value] pair", pair)
            try:
                d[kdec(pair[0])] = vdec(pair[1])
            except Fail as e:
                e.path.append(f"[{i}]")
                raise
            except TypeError as e:
                raise Fail(f"unhashable dict key {pair[0]!r}", cause=e) from None
        return d if plain else out(d)

    kinds = frozenset({list, dict}) if any_key else LIST_KINDS
    return Node(name, enc, dec, kinds, (dict,))
