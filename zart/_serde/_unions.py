"""Nodes for unions (``A | B``, ``Optional``) and ``Literal``, built from the
nodes of their members.

A union value is stored bare when the JSON kind of its encoding identifies the
member on decoding (``int | None``, ``User | list[User]``), otherwise as
``{"$type": <member name>, "$value": ...}``, the name looked up among the union's
own members.
"""

from __future__ import annotations

from typing import Any

from zart._serde._node import STR_KINDS, Fail, Fn, Node, NoneType, Refused, expected, mismatch
from zart._serde._scalars import NONE

TAG_TYPE = "$type"
TAG_VALUE = "$value"


def _is_tag_shaped(obj: Any) -> bool:
    return type(obj) is dict and len(obj) == 2 and TAG_TYPE in obj and TAG_VALUE in obj


def union_node(members: list[Node]) -> Node:
    """The union of distinct compiled members (one member: that member)."""
    if len(members) == 1:
        return members[0]
    name = " | ".join(m.name for m in members)

    non_none = [m for m in members if m is not NONE]
    if len(members) == 2 and len(non_none) == 1 and NoneType not in non_none[0].kinds:
        return _optional_node(name, non_none[0])

    by_name = dict(zip(_tag_names(members), members, strict=True))
    tag_of = {id(m): n for n, m in by_name.items()}
    kind_owner = _kind_owners(members)
    enc = _union_encoder(name, members, kind_owner, tag_of)
    dec = _union_decoder(name, by_name, kind_owner)
    kinds = frozenset().union(*(m.kinds for m in members)) | {dict}
    exact = tuple(t for m in members for t in m.exact)
    return Node(name, enc, dec, kinds, exact)


def _tag_names(members: list[Node]) -> list[str]:
    """Unique tag names: short names first, qualified on clashes."""
    names: list[str] = [m.name for m in members]
    for i, n in enumerate(names):
        if names.count(n) > 1:
            ex = members[i].exact
            names[i] = f"{ex[0].__module__}.{n}" if ex else n
    for i, n in enumerate(names):
        if names.count(n) > 1:
            names[i] = f"{n}#{i}"
    return names


def _kind_owners(members: list[Node]) -> dict[type, Node]:
    """JSON kind -> the only member that can emit it (kinds two members share are absent).

    A value is stored bare only when its JSON kind can come from one member alone
    (`int | list[str]`); every other value carries the member's tag. Deciding by
    "only one member can emit this kind" rather than "first member" keeps old rows
    readable when the union's members are reordered.
    """
    emitters: dict[type, list[Node]] = {}
    for m in members:
        for k in m.kinds:
            emitters.setdefault(k, []).append(m)
    return {k: ms[0] for k, ms in emitters.items() if len(ms) == 1}


def _union_encoder(
    name: str, members: list[Node], kind_owner: dict[type, Node], tag_of: dict[int, str]
) -> Fn:
    exact_first: dict[type, Node] = {}
    for m in members:
        for t in m.exact:
            exact_first.setdefault(t, m)

    def enc(v: Any) -> Any:
        first = exact_first.get(type(v))
        chosen: Node | None = None
        best: Fail | None = None
        obj: Any = None
        if first is not None:
            try:
                obj = first.enc(v)
                chosen = first
            except Fail as e:
                best = e
        if chosen is None:
            for m in members:
                if m is first:
                    continue
                try:
                    obj = m.enc(v)
                    chosen = m
                    break
                except Fail as e:
                    if best is None or (e.path and not best.path):
                        best = e
            else:
                if best is not None and (best.path or isinstance(best, Refused)):
                    raise best  # a member matched the outer type but failed inside: say why
                raise mismatch(name, v)
        if kind_owner.get(type(obj)) is chosen and not _is_tag_shaped(obj):
            return obj
        return {TAG_TYPE: tag_of[id(chosen)], TAG_VALUE: obj}

    return enc


def _union_decoder(name: str, by_name: dict[str, Node], kind_owner: dict[type, Node]) -> Fn:
    def dec(obj: Any) -> Any:
        if _is_tag_shaped(obj):
            tag = obj[TAG_TYPE]
            m = by_name.get(tag) if type(tag) is str else None
            if m is None:
                raise Fail(f"stored type tag {tag!r} is not a member of {name}")
            try:
                return m.dec(obj[TAG_VALUE])
            except Fail as e:
                e.path.append(f"<{tag}>")
                raise
        m = kind_owner.get(type(obj))
        if m is None:
            raise expected(name, obj)
        return m.dec(obj)

    return dec


def _optional_node(name: str, inner: Node) -> Node:
    """``T | None`` where T never encodes to null: no tag needed."""
    ienc, idec = inner.enc, inner.dec

    def enc(v: Any) -> Any:
        if v is None:
            return None
        try:
            return ienc(v)
        except Fail as e:
            if not e.path and e.reason.startswith("does not match the annotation"):
                e.reason = f"does not match the annotation {name}"
            raise

    def dec(obj: Any) -> Any:
        return None if obj is None else idec(obj)

    return Node(name, enc, dec, inner.kinds | {NoneType}, (*inner.exact, NoneType))


def literal_node(name: str, literals: list[tuple[Any, Any]]) -> Node | None:
    """``Literal[...]`` from (literal, its JSON encoding) pairs.

    None when two literals have the same JSON form (``Color.RED`` and ``"red"``):
    the caller then compiles a tagged union of one-value literals instead.
    """
    to_json: dict[tuple[type, Any], Any] = {}
    from_json: dict[tuple[type, Any], Any] = {}
    for lit, encoded in literals:
        jkey = (type(encoded), encoded)
        if jkey in from_json:
            return None
        to_json[(type(lit), lit)] = encoded
        from_json[jkey] = lit
    kinds = frozenset(k for k, _ in from_json)

    def enc(v: Any) -> Any:
        try:
            return to_json[(type(v), v)]
        except (KeyError, TypeError):
            raise mismatch(name, v) from None

    def dec(obj: Any) -> Any:
        try:
            return from_json[(type(obj), obj)]
        except (KeyError, TypeError):
            raise expected(name, obj) from None

    return Node(name, enc, dec, kinds, (), strkey=kinds == STR_KINDS)
