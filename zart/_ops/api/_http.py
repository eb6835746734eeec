"""HTTP plumbing shared by the handlers: JSON errors, request parsing, and the wrapper
that checks the bearer token and turns exceptions into JSON errors."""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from zart import (
    DatabaseUnavailableError,
    ExecutionConflictError,
    ExecutionNotFoundError,
    IdentifierError,
    SerializationError,
    StepNameError,
    UnknownDurableError,
    ZartError,
)
from zart._ops._internals import InvalidInputError
from zart._ops.api._gate import Overloaded
from zart._ops.api._state import ApiState, api_state
from zart._ops.secrets import scrub

log = logging.getLogger("zart.api")

# A handler gets the server's state and the request; ``endpoint`` adapts it to Starlette.
Handler = Callable[[ApiState, Request], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An error answered as ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def invalid(message: str) -> ApiError:
    """A 422 ``invalid_input`` error."""
    return ApiError(422, "invalid_input", message)


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


RETRY_AFTER = {"Retry-After": "2"}
MAX_ACTOR_LENGTH = 200  # the audit column holds 255, with " (token:1a2b3c4d)" appended
# " in postgresql+psycopg://app:***@db/app" at the end of an engine's not-found message.
_LOCATION = re.compile(r" in [a-zA-Z][a-zA-Z0-9+.\-]*://\S*")


def _unavailable(exc: BaseException, detailed: bool) -> JSONResponse:
    message = "the database is unavailable; retry in a few seconds"
    if isinstance(exc, Overloaded):
        message = "the server is overloaded; retry in a few seconds"
    if detailed:
        message += f" ({scrub(str(exc))})"
    return error_response(503, "database_unavailable", message, **RETRY_AFTER)


def map_exception(exc: BaseException, *, detailed: bool = False) -> Response:
    """The JSON error answered for an exception raised by a handler.

    Never a traceback, SQL or a password: an unexpected error is logged (with a
    reference) and answered with the reference only. ``detailed`` (the caller holds the
    token) adds what the database said to a 503.
    """
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.headers)
    if isinstance(exc, ExecutionNotFoundError):
        return error_response(404, "not_found", _LOCATION.sub("", scrub(str(exc))))
    if isinstance(exc, (IdentifierError, StepNameError)):
        return error_response(422, "invalid_input", scrub(str(exc)))
    if isinstance(exc, ExecutionConflictError):
        return error_response(409, "conflict", scrub(str(exc)))
    if isinstance(exc, (InvalidInputError, SerializationError, UnknownDurableError)):
        return error_response(422, "invalid_input", scrub(str(exc)))
    if isinstance(exc, DatabaseUnavailableError):
        return _unavailable(exc, detailed)
    if isinstance(exc, ClientDisconnect):
        log.debug("the client went away before its request was read")
        return Response(status_code=400)  # nobody is there to read it
    if isinstance(exc, ZartError):
        return error_response(409, "conflict", _LOCATION.sub("", scrub(str(exc))))
    reference = secrets.token_hex(4)
    log.error("unexpected error in the API (reference %s)", reference, exc_info=exc)
    return error_response(
        500, "internal", f"internal error (reference {reference}); the server log has the details"
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) as JSON errors too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


# ---------------------------------------------------------------------- requests


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low} and {high}")
    return value


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise invalid(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    return data


def opt_str(body: dict[str, Any], key: str) -> str | None:
    """``body[key]``: absent or null gives None; else it must be a non-empty string."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(f"{key!r} must be a non-empty string")
    return value


def required_name(body: dict[str, Any], key: str, what: str) -> str:
    """``body[key]``, a non-empty string, else 422 "'key' (what) is required"."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(f"{key!r} ({what}) is required")
    return value


def actor_of(state: ApiState, request: Request, body: dict[str, Any]) -> str:
    """The audit actor: the body's ``actor`` (if any) and who sent the request."""
    given = opt_str(body, "actor")
    if given is not None and (len(given) > MAX_ACTOR_LENGTH or not given.isprintable()):
        raise invalid(f"'actor' must be at most {MAX_ACTOR_LENGTH} printable characters")
    who = state.identity or f"api@{request.client.host if request.client else 'unknown'}"
    return f"{given} ({who})" if given else who


# ---------------------------------------------------------------------- endpoints


def authenticated(state: ApiState, request: Request) -> bool:
    """The request carries this server's token (False when the server has none)."""
    return state.token is not None and authorized(state, request)


def authorized(state: ApiState, request: Request) -> bool:
    if state.token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), state.token.encode()
    )


def unauthorized() -> JSONResponse:
    return error_response(
        401,
        "unauthorized",
        "missing or wrong bearer token (Authorization: Bearer <ZART_API_TOKEN>)",
        **{"WWW-Authenticate": 'Bearer realm="zart"'},
    )


def endpoint(handler: Handler, *, open_: bool = False) -> Endpoint:
    """A Starlette endpoint calling ``handler(state, request)``: the bearer token is
    checked first (unless ``open_``) and exceptions become JSON errors."""

    async def wrapped(request: Request) -> Response:
        state = api_state(request)
        if not open_ and not authorized(state, request):
            return unauthorized()
        try:
            return await handler(state, request)
        except Exception as exc:
            return map_exception(exc, detailed=authenticated(state, request))

    wrapped.__name__ = getattr(handler, "__name__", type(handler).__name__)
    wrapped.__doc__ = handler.__doc__
    return wrapped
