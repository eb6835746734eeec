"""The checks every request passes before routing, and the headers every answer gets.

An ASGI middleware (no buffering of responses, so long polls stay long polls):

1. ``Host`` must name this server: an IP address, ``localhost`` or an allowed host
   name; a page on another domain that resolves to this server (DNS rebinding) is
   answered ``400 invalid_host``. The health probes are exempt.
2. State-changing requests (every ``POST``) from a browser must come from this server's
   own origin or an allowed one (``Origin`` / ``Sec-Fetch-Site``): ``403 cross_origin``.
3. They must be ``Content-Type: application/json`` (what a cross-site HTML form cannot
   send): ``415 unsupported_media_type``.
4. A body above ``max_body_bytes`` is answered ``413 payload_too_large`` as soon as its
   declared length, or the bytes read so far, exceed it: never read in full.
5. Security headers on every response: a Content-Security-Policy without inline script
   and with ``frame-ancestors 'none'``, ``X-Content-Type-Options``, ``Referrer-Policy``,
   ``X-Frame-Options``, ``Cross-Origin-Opener-Policy``, and ``Cache-Control: no-store``
   on API answers.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zart._ops.api._state import ServerSettings

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
PROBES = frozenset({"/healthz", "/readyz"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def hostname(host_header: str) -> str:
    """The host name of a ``Host`` header: no port, no brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(host_header: str, allowed: Iterable[str]) -> bool:
    """An IP address, ``localhost`` (and ``*.localhost``) or one of ``allowed``."""
    allowed = [a.strip().lower().rstrip(".") for a in allowed]
    if "*" in allowed:
        return True
    name = hostname(host_header)
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost") or name in allowed:
        return True
    if any(a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in allowed):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


class Refusal(Exception):
    """A request refused before routing: ``status``, ``code``, ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings
        self.origins = {o.strip().rstrip("/").lower() for o in settings.allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send, api=scope["path"].startswith("/api/"))
        headers = _headers(scope)
        try:
            self.check(scope, headers)
            if scope["method"] in UNSAFE_METHODS:
                receive = await self.read_body(headers, receive)
        except Refusal as refusal:
            await _refuse(refusal, send)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope, headers: dict[str, str]) -> None:
        """Raise :class:`Refusal` for a wrong host, a cross-origin write or a non-JSON write."""
        host = headers.get("host")
        exempt = host is None or scope["path"] in PROBES
        if not exempt and not host_allowed(host or "", self.settings.allowed_hosts):
            raise Refusal(
                400,
                "invalid_host",
                f"host {hostname(host or '')!r} is not served here; allow it with "
                "--allowed-host (ZART_ALLOWED_HOSTS)",
            )
        if scope["method"] not in UNSAFE_METHODS:
            return
        self.check_origin(headers, host)
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise Refusal(
                415,
                "unsupported_media_type",
                "state-changing requests must be sent as Content-Type: application/json",
            )

    def check_origin(self, headers: dict[str, str], host: str | None) -> None:
        origin = headers.get("origin")
        if origin is None:
            # No Origin: not a browser, or a same-origin navigation. Browsers that say
            # where a request comes from are still believed.
            if headers.get("sec-fetch-site", "same-origin") in ("cross-site", "same-site"):
                raise Refusal(403, "cross_origin", "cross-site requests are refused")
            return
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return
        netloc = urlsplit(origin).netloc if origin != "null" else ""
        if host is not None and netloc and netloc == host.strip().lower():
            return
        raise Refusal(
            403,
            "cross_origin",
            f"requests from origin {origin!r} are refused; allow it with --allowed-origin",
        )

    async def read_body(self, headers: dict[str, str], receive: Receive) -> Receive:
        """Read the body (at most ``max_body_bytes``); a ``receive`` that replays it."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # disconnected: the handler will find out
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return replay


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        "payload_too_large",
        f"the request body is larger than {limit} bytes (the server's --max-body limit)",
    )


def _with_security_headers(send: Send, *, api: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            if api and NO_STORE[0] not in present:
                extra.append(NO_STORE)
            message = {**message, "headers": headers + extra}
        await send(message)

    return wrapped


async def _refuse(refusal: Refusal, send: Send) -> None:
    body = json.dumps({"error": refusal.code, "message": refusal.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if refusal.status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
