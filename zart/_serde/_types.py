"""Annotation introspection: readable type names, typing special forms, what kind
of class an annotation is, unwrapping of ``Annotated``/``NewType``/``TypeVar``/...,
and resolution of type hints for classes (with generic bindings) and functions.

Nothing here encodes or decodes a value.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterable
from typing import Any

from zart._errors import SerializationError
from zart._serde._node import ALL_KINDS, DICT_KINDS, NoneType


def tname(tp: Any) -> str:
    """Readable name of an annotation, for messages and union tags."""
    if tp is NoneType or tp is None:
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        # Union tags are stored: keep them short and independent of the function a
        # local class happens to be defined in.
        return tp.__qualname__.rsplit("<locals>.", 1)[-1]
    return re.sub(r"\btyping(_extensions)?\.", "", repr(tp))


def special(name: str) -> tuple[Any, ...]:
    """typing special forms by name, from typing and (when loaded) typing_extensions."""
    found = []
    for mod in (typing, sys.modules.get("typing_extensions")):
        obj = getattr(mod, name, None) if mod is not None else None
        if obj is not None and obj not in found:
            found.append(obj)
    return tuple(found)


def is_pydantic_model(tp: Any) -> bool:
    pyd = sys.modules.get("pydantic")  # a model class exists only if pydantic was imported
    return pyd is not None and isinstance(tp, type) and issubclass(tp, pyd.BaseModel)


def is_pydantic_instance(v: object) -> bool:
    pyd = sys.modules.get("pydantic")
    return pyd is not None and isinstance(v, pyd.BaseModel)


def is_typeddict(tp: Any) -> bool:
    if not isinstance(tp, type) or not issubclass(tp, dict):
        return False
    return typing.is_typeddict(tp) or (
        hasattr(tp, "__required_keys__") and hasattr(tp, "__total__")
    )


def is_namedtuple(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def class_kinds(tp: Any) -> frozenset[type]:
    """JSON kinds of a class compiled later (kept exact so `Node | None` needs no tag)."""
    cls = typing.get_origin(tp) or tp
    if not isinstance(cls, type):
        return ALL_KINDS
    if dataclasses.is_dataclass(cls) or is_namedtuple(cls) or is_typeddict(cls):
        return DICT_KINDS
    if is_pydantic_model(cls) and not getattr(cls, "__pydantic_root_model__", False):
        return DICT_KINDS
    return ALL_KINDS


def unwrap(tp: Any) -> Any:
    """Strip wrappers that do not change the runtime representation."""
    annotated = special("Annotated")
    qualifiers = special("Final") + special("Required") + special("NotRequired")
    qualifiers += special("ReadOnly") + special("ClassVar")
    alias_type = special("TypeAliasType")
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


# --- classes -------------------------------------------------------------------------


def class_hints(cls: type, where: str, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Resolved annotations of ``cls`` (of ``names`` only, if the others fail)."""
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


def typeddict_required(cls: type, hints: dict[str, Any]) -> set[str]:
    """The required keys of a TypedDict whose resolved annotations are ``hints``."""
    required = set(getattr(cls, "__required_keys__", hints))
    # Under `from __future__ import annotations` Python 3.10/3.11 compute
    # __required_keys__ from unevaluated strings and miss NotRequired: re-read the
    # resolved hints.
    not_required, is_required = special("NotRequired"), special("Required")
    for k, h in hints.items():
        origin = typing.get_origin(h)
        if origin is not None and origin in not_required:
            required.discard(k)
        elif origin is not None and origin in is_required:
            required.add(k)
    return required


def typevar_map(cls: type, args: tuple[Any, ...]) -> dict[Any, Any]:
    """TypeVar bindings for a generic class alias (``Box[int]``) and its generic bases."""
    out: dict[Any, Any] = {}

    def walk(c: Any, a: tuple[Any, ...]) -> None:
        params = getattr(c, "__parameters__", ())
        for p, v in zip(params, a, strict=False):
            out.setdefault(p, subst(v, out))
        for base in getattr(c, "__orig_bases__", ()):
            borigin = typing.get_origin(base)
            if isinstance(borigin, type) and borigin is not typing.Generic:
                walk(borigin, tuple(subst(x, out) for x in typing.get_args(base)))

    walk(cls, args)
    return out


def subst(tp: Any, tvmap: dict[Any, Any]) -> Any:
    """``tp`` with the TypeVars bound in ``tvmap`` replaced."""
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


# --- functions -----------------------------------------------------------------------


def fn_label(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, for messages."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{qualname}" if module else str(qualname)


def fn_hints(fn: Callable[..., Any], what: str) -> dict[str, Any]:
    """Resolved annotations of a function, a ``functools.partial`` or a callable object."""
    target: Any = fn
    while hasattr(target, "func") and not inspect.isfunction(target):  # functools.partial
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target) or isinstance(target, type)):
        target = type(target).__call__ if callable(target) else target
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as e:
        raise SerializationError(
            f"cannot resolve the {what} annotation of {fn_label(fn)}: {type(e).__name__}: {e}. "
            f"Define or import the referenced types at module level (annotations are resolved "
            f"with typing.get_type_hints when the value is first stored)"
        ) from e
