"""Compilation of an annotation into a :class:`~zart._serde._node.Node`.

:func:`compile_type` unwraps the annotation, dispatches on its origin to the node
factories of the lower modules (scalars, containers, unions, classes), compiling
the annotations they are made of first, and memoizes per compilation so that a
recursive type refers to its own node. This is the only module that recurses
into annotations: the factories receive compiled nodes.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import enum
import pathlib
import types
import typing
from collections.abc import Iterable
from typing import Any, cast

from zart._errors import SerializationError
from zart._serde._classes import (
    dataclass_node,
    enum_node,
    namedtuple_node,
    pydantic_node,
    scalar_subclass_node,
    typeddict_node,
)
from zart._serde._containers import dict_node, fixed_tuple_node, seq_node
from zart._serde._node import ADVICE, Node, NoneType
from zart._serde._scalars import NEVER, NONE, SCALARS, str_scalar
from zart._serde._tagged import ANY
from zart._serde._types import (
    class_hints,
    class_kinds,
    is_namedtuple,
    is_pydantic_model,
    is_typeddict,
    special,
    subst,
    tname,
    typeddict_required,
    typevar_map,
    unwrap,
)
from zart._serde._unions import literal_node, union_node


class Ctx:
    """State of one compilation (one root annotation, or one function's parameters)."""

    def __init__(self) -> None:
        # annotation -> compiled node, or a list acting as a forward cell while the
        # node is being compiled (a recursive dataclass refers to itself).
        self.memo: dict[Any, Any] = {}


def compile_type(tp: Any, ctx: Ctx, where: str) -> Node:
    """The node for annotation ``tp``; ``where`` names it in error messages."""
    tp = unwrap(tp)
    if tp is Any or tp is object:
        return ANY
    if tp is None or tp is NoneType:
        return NONE
    if tp in special("NoReturn") + special("Never"):
        return NEVER
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
        cell: list[Node] = []
        ctx.memo[tp] = cell
        try:
            node = _compile_new(tp, ctx, where)
        finally:
            del ctx.memo[tp]
        cell.append(node)
        ctx.memo[tp] = node
        return node
    if isinstance(memo, Node):
        return memo
    return _forward(memo, tp)


def _forward(cell: list[Node], tp: Any) -> Node:
    """A reference to a node still being compiled (recursive type)."""

    def enc(v: Any) -> Any:
        return cell[0].enc(v)

    def dec(obj: Any) -> Any:
        return cell[0].dec(obj)

    exact = (tp,) if isinstance(tp, type) else ()
    return Node(tname(tp), enc, dec, class_kinds(tp), exact)


def _unsupported(tp: Any, where: str) -> SerializationError:
    return SerializationError(
        f"cannot serialize type {tname(tp)} at {where}: not JSON-serializable; {ADVICE}"
    )


def _compile_new(tp: Any, ctx: Ctx, where: str) -> Node:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin is typing.Union or origin is types.UnionType:
        return _compile_union(args, ctx, where)
    if origin is not None and origin in special("Literal"):
        return _compile_literal(tp, args, ctx, where)

    if origin is None and isinstance(tp, type):
        cls = tp
        args = ()
    elif isinstance(origin, type):
        cls = origin
    else:
        raise _unsupported(tp, where)

    scalar = SCALARS.get(cls) if origin is None else None
    if scalar is not None:
        return scalar
    node = _compile_collection(tp, cls, origin, args, ctx, where)
    if node is None:
        node = _compile_class(tp, cls, args, ctx, where)
    return node


_TYPING_TUPLE: Any = typing.Tuple  # noqa: UP006 (bare typing.Tuple means tuple[Any, ...])
_ARRAYS = (list, collections.deque, set, frozenset)
_DICTS = (dict, collections.OrderedDict, collections.Counter)
_ABSTRACT_SEQ = {collections.abc.Sequence, collections.abc.MutableSequence}
_ABSTRACT_COLL = {collections.abc.Collection, collections.abc.Iterable}
_ABSTRACT_SET = {collections.abc.Set, collections.abc.MutableSet}
_ABSTRACT_MAP = {collections.abc.Mapping, collections.abc.MutableMapping}


def _compile_collection(
    tp: Any, cls: type, origin: Any, args: tuple[Any, ...], ctx: Ctx, where: str
) -> Node | None:
    """Builtin and abstract collections; None when ``cls`` is not one."""
    item = args[0] if args else Any
    if cls in _ARRAYS:
        return seq_node(tp, cls, compile_type(item, ctx, where + "[]"))
    if cls is tuple or tp is _TYPING_TUPLE:
        return _compile_tuple(tp, origin, args, ctx, where)
    if cls in _DICTS or cls in _ABSTRACT_MAP:
        key: Any
        val: Any
        if cls is collections.Counter:
            key, val = item, int
        else:
            key, val = (args[0], args[1]) if len(args) == 2 else (Any, Any)
        out = dict if cls in _ABSTRACT_MAP else cls
        knode = compile_type(key, ctx, where + "[<key>]")
        return dict_node(tp, out, knode, compile_type(val, ctx, where + "[]"))
    # Abstract collections accept any of the concrete ones (tagged when ambiguous).
    members: tuple[Any, ...] = ()
    if cls in _ABSTRACT_SEQ:
        members = (list[item], tuple[item, ...])  # type: ignore[valid-type]
    elif cls in _ABSTRACT_SET:
        members = (set[item], frozenset[item])  # type: ignore[valid-type]
    elif cls in _ABSTRACT_COLL:
        members = (list[item], tuple[item, ...], set[item], frozenset[item])  # type: ignore[valid-type]
    return _compile_union(members, ctx, where) if members else None


def _compile_tuple(tp: Any, origin: Any, args: tuple[Any, ...], ctx: Ctx, where: str) -> Node:
    if origin is None or tp is _TYPING_TUPLE:  # bare tuple: tuple[Any, ...]
        return seq_node(tp, tuple, ANY)
    if len(args) == 2 and args[1] is Ellipsis:
        return seq_node(tp, tuple, compile_type(args[0], ctx, where + "[]"))
    if args == ((),):  # Python 3.10 spelling of tuple[()]
        args = ()
    items = [compile_type(a, ctx, f"{where}[{i}]") for i, a in enumerate(args)]
    return fixed_tuple_node(tp, items)


def _compile_class(tp: Any, cls: type, args: tuple[Any, ...], ctx: Ctx, where: str) -> Node:
    """User classes and subclasses of scalar types."""
    if issubclass(cls, enum.Enum):
        return enum_node(cls)
    if issubclass(cls, pathlib.PurePath):
        return str_scalar(tname(cls), cls, str, cls)
    if is_typeddict(cls):
        hints = class_hints(cls, where)
        nodes = _field_nodes(cls, args, list(hints), ctx, where)
        return typeddict_node(tp, nodes, typeddict_required(cls, hints))
    if is_namedtuple(cls):
        fields: tuple[str, ...] = cast(Any, cls)._fields
        return namedtuple_node(tp, cls, _field_nodes(cls, args, fields, ctx, where))
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
        return dataclass_node(tp, cls, _field_nodes(cls, args, names, ctx, where))
    if is_pydantic_model(cls):
        return pydantic_node(cls)
    for base in (str, int, float, bytes):
        if issubclass(cls, base) and cls is not bool:
            return scalar_subclass_node(cls, compile_type(base, ctx, where))
    raise _unsupported(tp, where)


def _field_nodes(
    cls: type, args: tuple[Any, ...], names: Iterable[str], ctx: Ctx, where: str
) -> dict[str, Node]:
    names = list(names)
    hints = class_hints(cls, where, names)
    tvmap = typevar_map(cls, args)
    return {n: compile_type(subst(hints.get(n, Any), tvmap), ctx, f"{where}.{n}") for n in names}


def _compile_union(args: tuple[Any, ...], ctx: Ctx, where: str) -> Node:
    members: list[Node] = []
    for a in args:
        node = compile_type(a, ctx, where)
        if node is ANY:
            return ANY  # `Any` (or `object`) absorbs the union: it round-trips None too
        if node not in members:
            members.append(node)
    return union_node(members)


def _compile_literal(tp: Any, values: tuple[Any, ...], ctx: Ctx, where: str) -> Node:
    encoded = [(lit, compile_type(type(lit), ctx, where).enc(lit)) for lit in values]
    node = literal_node(tname(tp), encoded)
    if node is None:
        # Two literals with the same JSON form (Color.RED and "red"): tag them.
        return _compile_union(tuple(typing.Literal[v] for v in values), ctx, where)
    return node
