"""The codecs other modules use: :class:`Codec` (one annotation, e.g. a step's
return type), :class:`ArgsCodec` (a function's arguments), their caches, and the
JSON text in and out. Encoding errors become :class:`SerializationError` here,
with the path inside the value.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from zart._errors import SerializationError
from zart._serde._compile import Ctx, compile_type
from zart._serde._node import CACHE_MAX, MISSING, Fail, Fn, Node, fail_key, items_mapper, vname
from zart._serde._types import fn_hints, fn_label, tname

# One encoder instance, built once: json.dumps(...) with non-default options builds a
# new JSONEncoder on every call, which costs more than encoding a small value.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_json_dumps = _ENCODER.encode
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_json_loads = json.loads


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
        self._enc: Fn | None = None
        self._dec: Fn | None = None
        self._annotation: Any = MISSING

    @property
    def annotation(self) -> Any:
        """The resolved annotation (resolving it now if needed; may raise)."""
        if self._annotation is MISSING:
            self._annotation = self._resolve()
        return self._annotation

    def _build(self) -> tuple[Fn, Fn]:
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
        except Fail as e:
            raise SerializationError(e.encode_message(self._root)) from e.cause
        except RecursionError:
            raise SerializationError(
                f"cannot serialize value of type {vname(value)} at {self._root}: it is nested "
                f"too deeply or contains a reference cycle"
            ) from None
        except SerializationError:
            raise
        except Exception as e:  # an int too large for str(), a property that raises, ...
            raise SerializationError(
                f"cannot serialize value of type {vname(value)} at {self._root}: "
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
        except Fail as e:
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
            "<unresolved>" if self._annotation is MISSING else tname(self._annotation)
        )
        return f"<zart Codec {shown}>"


_CACHE: dict[Any, Codec] = {}
_COMPILED: dict[Any, tuple[Fn, Fn]] = {}


def _compiled(annotation: Any) -> tuple[Fn, Fn]:
    """Compiled (enc, dec) for an annotation, shared by every codec that uses it.

    Failures are not cached: a forward reference that cannot be resolved yet may
    resolve on a later call, once the module defining it has finished importing.
    """
    try:
        hit = _COMPILED.get(annotation)
    except TypeError:  # unhashable annotation (e.g. Annotated[int, {...}]): no cache
        node = compile_type(annotation, Ctx(), "result")
        return node.enc, node.dec
    if hit is None:
        node = compile_type(annotation, Ctx(), "result")
        if len(_COMPILED) >= CACHE_MAX:
            _COMPILED.clear()  # bound memory for programs that build annotations dynamically
        hit = _COMPILED[annotation] = (node.enc, node.dec)
    return hit


def codec_for(annotation: Any) -> Codec:
    """The (cached) codec for ``annotation``. Compiles lazily, on first dumps/loads."""
    try:
        codec = _CACHE.get(annotation)
    except TypeError:  # unhashable annotation (e.g. Annotated[int, {...}])
        return Codec(lambda: annotation, label=tname(annotation))
    if codec is None:
        if len(_CACHE) >= CACHE_MAX:
            _CACHE.clear()  # bound memory for programs that build annotations dynamically
        codec = _CACHE[annotation] = Codec(lambda: annotation, label=tname(annotation))
    return codec


def return_codec(fn: Callable[..., Any]) -> Codec:
    """Codec for ``fn``'s return annotation (``Any`` when missing), resolved on first use."""

    def resolve() -> Any:
        return fn_hints(fn, "return").get("return", Any)

    return Codec(resolve, root="result", label=f"return of {fn_label(fn)}")


# --- arguments -----------------------------------------------------------------------

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_BY_KEYWORD = (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)


class ArgsCodec:
    """Encodes a durable function's arguments as ``{"args": [...], "kwargs": {...}}``.

    Arguments are bound with :func:`inspect.signature` and each is encoded by its
    parameter's annotation (``*args``/``**kwargs`` by theirs, per item). Defaults
    are not stored: exactly what the caller passed is replayed.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self._sig = inspect.Signature()
        self._nodes: dict[str, Node] | None = None
        # Set by _build, for loads: which parameter a stored argument belongs to.
        self._positional: list[inspect.Parameter] = []
        self._var_pos: inspect.Parameter | None = None
        self._var_kw: inspect.Parameter | None = None

    def _build(self) -> dict[str, Node]:
        try:
            self._sig = inspect.signature(self._fn)
        except (TypeError, ValueError) as e:
            raise SerializationError(f"cannot inspect {fn_label(self._fn)}: {e}") from e
        hints = fn_hints(self._fn, "parameter")
        ctx = Ctx()
        nodes = {n: compile_type(hints.get(n, Any), ctx, n) for n in self._sig.parameters}
        params = list(self._sig.parameters.values())
        self._positional = [p for p in params if p.kind in _POSITIONAL]
        self._var_pos = next((p for p in params if p.kind is _P.VAR_POSITIONAL), None)
        self._var_kw = next((p for p in params if p.kind is _P.VAR_KEYWORD), None)
        self._nodes = nodes
        return nodes

    def dumps(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        nodes = self._nodes if self._nodes is not None else self._build()
        try:
            bound = self._sig.bind(*args, **kwargs)
        except TypeError as e:
            raise SerializationError(f"arguments do not fit {fn_label(self._fn)}: {e}") from None
        out_args: list[Any] = []
        out_kwargs: dict[str, Any] = {}
        keyword_from_here = False
        name = ""
        try:
            for name, p in self._sig.parameters.items():
                if name not in bound.arguments:
                    keyword_from_here |= p.kind in _POSITIONAL
                    continue
                v, enc = bound.arguments[name], nodes[name].enc
                if p.kind is _P.VAR_POSITIONAL:
                    out_args.extend(items_mapper(enc)(v))
                elif p.kind is _P.VAR_KEYWORD:
                    out_kwargs.update(_enc_values(enc, v))
                elif p.kind is _P.KEYWORD_ONLY or keyword_from_here:
                    out_kwargs[name] = enc(v)
                else:
                    out_args.append(enc(v))
            return _to_text({"args": out_args, "kwargs": out_kwargs})
        except Fail as e:
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
        obj = _parse_arguments(text)
        where = "arguments"
        try:
            args: list[Any] = []
            for i, x in enumerate(obj["args"]):
                where, node = self._positional_slot(i, nodes)
                args.append(node.dec(x))
            kwargs: dict[str, Any] = {}
            for k, x in obj["kwargs"].items():
                where, node = self._keyword_slot(k, nodes)
                kwargs[k] = node.dec(x)
        except Fail as e:
            raise SerializationError(e.decode_message(where)) from e.cause
        except RecursionError:
            raise SerializationError(f"stored argument {where} is nested too deeply") from None
        except Exception as e:  # a user constructor or validator that raised
            raise SerializationError(
                f"cannot deserialize stored argument {where}: {type(e).__name__}: {e}"
            ) from e
        return tuple(args), kwargs

    def _positional_slot(self, i: int, nodes: dict[str, Node]) -> tuple[str, Node]:
        """(where, node) of the i-th stored positional argument."""
        positional = self._positional
        if i < len(positional):
            name = positional[i].name
            return name, nodes[name]
        if self._var_pos is not None:
            return f"{self._var_pos.name}[{i - len(positional)}]", nodes[self._var_pos.name]
        raise Fail(f"too many stored positional arguments for {fn_label(self._fn)}")

    def _keyword_slot(self, k: str, nodes: dict[str, Node]) -> tuple[str, Node]:
        """(where, node) of the stored keyword argument ``k``."""
        p = self._sig.parameters.get(k)
        if p is not None and p.kind in _BY_KEYWORD:
            return k, nodes[k]
        if self._var_kw is not None:
            return f"{self._var_kw.name}[{k!r}]", nodes[self._var_kw.name]
        raise Fail(f"stored keyword argument {k!r} is not a parameter")


def _enc_values(enc: Fn, values: dict[str, Any]) -> dict[str, Any]:
    """The values of ``**kwargs``, each encoded by the parameter's annotation."""
    try:
        return {k: enc(x) for k, x in values.items()}
    except Fail as e:
        e.path.append(fail_key(lambda k: enc(values[k]), values))
        raise


def _parse_arguments(text: str) -> dict[str, Any]:
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
    return obj


def args_codec(fn: Callable[..., Any]) -> ArgsCodec:
    """Codec for a durable function's inputs (annotations resolved on first use)."""
    return ArgsCodec(fn)
