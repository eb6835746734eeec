"""JSON → typed call arguments of a durable function (``zart run --input``, the API's
``input`` fields, ``zart schedule add --input``)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from zart import DurableFunction, ZartError
from zart._ops._internals import InvalidInputError


def json_arguments(
    durable: DurableFunction[Any, Any], data: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Plain JSON → typed call arguments, decoded through the function's annotations.

    Same convention as ``zart run --input``: an array gives positional arguments;
    an object whose keys are all parameter names gives keyword arguments;
    anything else is the single parameter's value. Raises ``InvalidInputError``.
    """
    params = list(inspect.signature(durable.fn).parameters)
    if data is None and not params:
        raw: dict[str, Any] = {"args": [], "kwargs": {}}
    elif isinstance(data, list):
        raw = {"args": data, "kwargs": {}}
    elif isinstance(data, dict) and data and set(data) <= set(params):
        raw = {"args": [], "kwargs": data}
    elif len(params) == 1:
        raw = {"args": [data], "kwargs": {}}
    else:
        raise InvalidInputError(
            f"input for {durable.name!r} must be a JSON array of arguments or an object with "
            f"keys among its parameters ({', '.join(params) or 'none'})"
        )
    try:
        return durable.args_codec.loads(json.dumps(raw))
    except ZartError as exc:
        raise InvalidInputError(
            f"input does not match the parameters of {durable.name!r}: {exc}"
        ) from None
