"""What every serde module shares: the compiled :class:`Node`, the internal
:class:`Fail` that carries an error's path, and the JSON-kind constants.

This is the bottom layer of the package: it imports no other serde module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Fn = Callable[[Any], Any]
NoneType: type[None] = type(None)
# The Python types json.loads produces; a node's "kinds" is the subset its encoder emits.
ALL_KINDS: frozenset[type] = frozenset({NoneType, bool, int, float, str, list, dict})
STR_KINDS: frozenset[type] = frozenset({str})
LIST_KINDS: frozenset[type] = frozenset({list})
DICT_KINDS: frozenset[type] = frozenset({dict})
# "No value" where None is a value (a field absent from a stored object, ...).
MISSING: Any = object()
# Entries kept by each module-level cache before it is cleared: bounds memory for
# programs that build annotations (or dataclasses) dynamically.
CACHE_MAX = 4096

ADVICE = "annotate it as a dataclass, pydantic model, or a supported type"


class Fail(Exception):
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


class Refused(Fail):
    """An encoding failure of a value of the right type that cannot be stored faithfully
    (e.g. a datetime with a custom tzinfo): unions report it instead of a bare mismatch."""


def vname(v: object) -> str:
    """The type name of a value, as messages show it (no ``<locals>`` prefix)."""
    t = type(v)
    return "None" if t is NoneType else t.__qualname__.rsplit("<locals>.", 1)[-1]


def mismatch(expected: str, v: object) -> Fail:
    """Encoding failure: ``v`` is not a value of the annotation ``expected``."""
    return Fail(f"does not match the annotation {expected}", vname(v))


_JSON_NAMES: dict[type, str] = {
    NoneType: "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def expected(what: str, obj: object) -> Fail:
    """Decoding failure: the stored JSON ``obj`` is not ``what`` the annotation wants."""
    shown = repr(obj)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    kind = _JSON_NAMES.get(type(obj), type(obj).__qualname__)
    return Fail(f"expected {what}, found JSON {kind} {shown}")


def fail_index(fn: Fn, items: Iterable[Any]) -> str:
    """The path segment of the first item ``fn`` fails on.

    Only called on the error path: re-running the (pure) item function to find
    which element failed lets the success path use a fast comprehension.
    """
    for i, x in enumerate(items):
        try:
            fn(x)
        except Exception:
            return f"[{i}]"
    return "[?]"


def fail_key(fn: Fn, keys: Iterable[Any]) -> str:
    """The path segment of the first key for which ``fn(key)`` fails (error path only)."""
    for k in keys:
        try:
            fn(k)
        except Exception:
            return f"[{k!r}]"
    return "[?]"


def fail_entry(kfn: Fn, vfn: Fn, d: dict[Any, Any]) -> str:
    """The path segment of the first dict entry whose key (``kfn``) or value fails.

    Error path only, like :func:`fail_index`.
    """
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


def items_mapper(f: Fn) -> Callable[[Iterable[Any]], list[Any]]:
    """``[f(x) for x in items]`` that names the failing item's index on error.

    A factory rather than a helper taking ``f``, so that the returned function is
    what callers call (no extra call layer per list).
    """

    def map_items(items: Iterable[Any]) -> list[Any]:
        try:
            return [f(x) for x in items]
        except Fail as e:
            e.path.append(fail_index(f, items))
            raise

    return map_items


class Node:
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
        enc: Fn,
        dec: Fn,
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
