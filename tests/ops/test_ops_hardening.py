"""``zart serve`` as an attacker and a careless operator would try it, over real HTTP:
secrets (1), cross-site requests and headers (2), body limits (3), ids of any shape
(6), ids past the limits (7), events to finished executions (8).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner

import zart
from zart._ops.api import ServerSettings
from zart.cli import main

from ops_app import (
    child_env,
    free_port,
    fresh_postgres,
    ops_engine,
    running_server,
    serve_process,
)

SECRET = "s3cr3t-Pa55"
TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
E = "/api/executions"
LEAKS = ("Traceback", "SELECT", "INSERT", "sqlalchemy", "psycopg", 'File "')


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    with ops_engine(db_url) as app:
        yield app


def with_password(url: str, password: str = SECRET) -> str:
    """A PostgreSQL URL with a password (the test server trusts loopback: it is ignored)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def path_of(eid: str, action: str = "") -> str:
    return f"{E}/{quote(eid, safe='')}" + (f"/{action}" if action else "")


# ---------------------------------------------------------------------- 1. secrets


def _secret_free(text: str, *also: str) -> None:
    for word in (SECRET, *also):
        assert word not in text, f"{word!r} leaked: {text[:2000]}"


def test_no_password_in_bodies_logs_or_cli(pg_database: str, tmp_path: Path) -> None:
    """A PostgreSQL URL with a password: the API's bodies, the server log and the CLI
    never show it; an unreachable database's details go to token holders only."""
    fresh_postgres(pg_database)
    url = with_password(pg_database)
    dbname = pg_database.rsplit("/", 1)[1]
    log = tmp_path / "serve.log"
    probes = [
        ("GET", E + "/nope"),
        ("GET", E + "/nope/steps"),
        ("POST", E + "/nope/retry-step"),
        ("POST", E + "/nope/events"),
        ("GET", E + "/nope/steps/x"),
        ("GET", "/no/such/route"),
    ]
    with (
        serve_process(child_env(url), "ops_app", "--no-worker", log=log) as (_, base),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        for method, path in probes:
            body = {"json": {"name": "x"}} if method == "POST" else {}
            r = client.request(method, path, **body)
            assert r.status_code == 404, (path, r.text)
            _secret_free(r.text, dbname, "127.0.0.1")
    _secret_free(log.read_text())

    closed = with_password(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/{dbname}")
    down = zart.Zart(closed)
    try:
        with running_server(down, token=TOKEN) as base:
            anonymous = httpx.get(base + "/readyz", timeout=10)
            assert anonymous.status_code == 503 and anonymous.headers["retry-after"]
            _secret_free(anonymous.text, dbname, "127.0.0.1", "postgres")
            holder = httpx.get(base + "/readyz", headers=AUTH, timeout=10)
            assert holder.status_code == 503 and "detail" in holder.json()
            _secret_free(holder.text)
            listing = httpx.get(base + E, headers=AUTH, timeout=10)
            assert listing.status_code == 503 and listing.json()["error"] == "database_unavailable"
            _secret_free(listing.text)
    finally:
        down.close()

    runner = CliRunner()
    unparsable = with_password("postgresql://u@127.0.0.1:badport/x")
    for database, args in [(url, ["status", "nope"]), (closed, ["list"]), (unparsable, ["list"])]:
        result = runner.invoke(main, ["--database-url", database, *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("zart: error: ") and len(result.stderr.splitlines()) == 1
        _secret_free(result.output)


# ---------------------------------------------------------------------- 2. cross-site


def _refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == code


def test_cross_site_writes_and_other_hosts_are_refused(engine: zart.Zart) -> None:
    greet = {"durable": "ops-greet", "input": "x"}
    with (
        running_server(engine, worker_concurrency=2) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        # What a cross-site HTML form can send: text/plain, even holding JSON.
        form = client.post(E, content=b'{"durable": "ops-greet", "input": "x", "id": "csrf"}',
                           headers={"content-type": "text/plain"})  # fmt: skip
        _refused(form, 415, "unsupported_media_type")
        for cross in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
            r = client.post(E, json={**greet, "id": "csrf"}, headers=cross)
            _refused(r, 403, "cross_origin")
        # DNS rebinding: a page on evil.example resolving to this server.
        _refused(client.get(E, headers={"host": "evil.example:80"}), 400, "invalid_host")
        r = client.post(E, json={**greet, "id": "csrf"}, headers={"host": "evil.example"})
        _refused(r, 400, "invalid_host")
        assert client.get(E + "/csrf").status_code == 404  # nothing was created

        # An event sent cross-site is not delivered: the execution keeps waiting.
        own_origin = {"origin": base}
        approval = {"durable": "ops-approval", "input": "po", "id": "w"}
        started = client.post(E, json=approval, headers=own_origin)
        assert started.status_code == 201, started.text
        event = {"name": "ops-decision", "payload": {"verdict": "forged"}}
        plain = {"content-type": "text/plain"}
        r = client.post(E + "/w/events", content=b'{"name": "ops-decision"}', headers=plain)
        _refused(r, 415, "unsupported_media_type")
        r = client.post(E + "/w/events", json=event, headers={"origin": "null"})
        _refused(r, 403, "cross_origin")
        time.sleep(0.5)
        assert client.get(E + "/w").json()["status"] in ("pending", "running", "waiting")
        real = {"name": "ops-decision", "payload": {"verdict": "yes"}}
        assert client.post(E + "/w/events", json=real).status_code == 202
        done = client.get(E + "/w/wait", params={"timeout": 10}).json()
        assert done["result"] == "po: yes"
        _check_security_headers(client)


def _check_security_headers(client: httpx.Client) -> None:
    for path in ("/", "/static/app.js", E, E + "/nope", "/healthz"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert client.get(E).headers["cache-control"] == "no-store"
    page = client.get("/").text
    assert "<script>" not in page and "style=" not in page and "<style" not in page


def test_allowed_hosts_and_origins_are_configurable(sqlite_url: str) -> None:
    settings = ServerSettings(
        allowed_hosts=("zart.example.com", ".internal.example"),
        allowed_origins=("https://ops.example.com",),
    )
    hosts = ("zart.example.com", "a.internal.example:8443", "127.0.0.1", "[::1]:80", "localhost")
    greet = {"durable": "ops-greet", "input": "o", "id": "from-ops"}
    with (
        ops_engine(sqlite_url) as app,
        running_server(app, settings=settings) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        for host in hosts:
            assert client.get(E, headers={"host": host}).status_code == 200, host
        _refused(client.get(E, headers={"host": "example.com"}), 400, "invalid_host")
        r = client.post(E, json=greet, headers={"origin": "https://ops.example.com"})
        assert r.status_code == 201, r.text
        r = client.post(E, json=greet, headers={"origin": "https://ops.example.com.evil"})
        _refused(r, 403, "cross_origin")


# ---------------------------------------------------------------------- 3. body limit


def _status_line(sock: socket.socket, timeout: float) -> tuple[str, float]:
    """The response's status line, and how long it took to come."""
    sock.settimeout(timeout)
    t0 = time.monotonic()
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(), time.monotonic() - t0


def test_request_bodies_are_limited(engine: zart.Zart) -> None:
    """50 MB is answered 413 as soon as its length is known, or as soon as the bytes
    read pass the limit (chunked), long before it could all be sent; nothing is created."""
    with running_server(engine) as base:
        port = int(base.rsplit(":", 1)[1])
        head = f"POST {E} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall((head + f"Content-Length: {50 * 1024 * 1024}\r\n\r\n").encode())
            sock.sendall(b'{"durable": "ops-greet", "input": "' + b"x" * 65536)
            line, took = _status_line(sock, 5)
        assert line.startswith("HTTP/1.1 413"), line
        print(f"\n413 for a declared 50 MB body after {took * 1000:.0f} ms")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            chunk = b"x" * (1024 * 1024)
            sent = 0
            line = ""
            for _ in range(50):  # up to 50 MB, stopping at the answer
                try:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except OSError:
                    break
                sent += 1
                sock.settimeout(0.01)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except (TimeoutError, BlockingIOError):
                    pass
            line, _ = _status_line(sock, 5)
        assert line.startswith("HTTP/1.1 413"), line
        assert sent < 20, f"{sent} MB were accepted before the 413"
        assert httpx.get(base + E).json()["items"] == []


def test_body_limit_is_configurable_and_large_inputs_are_fetched_on_demand(
    engine: zart.Zart,
) -> None:
    settings = ServerSettings(max_body_bytes=300_000)
    with (
        running_server(engine, settings=settings) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        big = "y" * 250_000
        over = client.post(E, json={"durable": "ops-greet", "input": big + big, "id": "over"})
        _refused(over, 413, "payload_too_large")
        assert "300000 bytes" in over.json()["message"]
        assert client.post(E, json={"durable": "ops-greet", "input": big, "id": "big"}).is_success
        overview = client.get(E + "/big/overview")
        assert overview.status_code == 200 and len(overview.content) < 3000
        assert overview.json()["input_size"] > 250_000
        assert "input" not in overview.json() and "result" not in overview.json()
        full = client.get(E + "/big/input").json()
        assert full["input"] == {"args": [big], "kwargs": {}}


# ---------------------------------------------------------------------- 6. any id


ODD_IDS = [
    "cp-1/steps", "cp-1/wait", "cp-1/cancel", "cp-1/events", "a/b/c/audit",
    "50% off", "with space", "naïve-日本-🙂", "%2F-literal", "slash/", "p/steps/x", "?#&=+",
]  # fmt: skip


def test_every_id_is_reachable(engine: zart.Zart) -> None:
    with (
        running_server(engine) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        for eid in ["cp-1", *ODD_IDS]:
            r = client.post(E, json={"durable": "ops-approval", "input": eid, "id": eid})
            assert r.status_code == 201 and r.json()["id"] == eid, (eid, r.text)
        for eid in ODD_IDS:
            assert client.get(path_of(eid)).json()["id"] == eid, eid
            assert client.get(path_of(eid, "steps")).json()["execution_id"] == eid, eid
            waited = client.get(path_of(eid, "wait"), params={"timeout": 0})
            assert waited.json()["id"] == eid, eid
            assert client.get(path_of(eid, "overview")).json()["input_size"] > 0
            r = client.post(path_of(eid, "events"), json={"name": "unused"})
            assert r.status_code == 202 and r.json()["id"] == eid, (eid, r.text)
            cancelled = client.post(path_of(eid, "cancel"), json={})
            assert cancelled.json() == {"id": eid, "cancelled": True, "status": "cancelled"}
        # The parent's own steps are not the child's, written either way.
        assert client.get(E + "/cp-1/steps").json()["execution_id"] == "cp-1"
        assert client.get(E + "/cp-1%2Fsteps").json()["id"] == "cp-1/steps"
        # A raw "/" still finds an id when the path is not ambiguous.
        assert client.get(E + "/cp-1/wait/steps").json()["execution_id"] == "cp-1/wait"
        assert client.get(E + "/a/b/c/audit").status_code == 404  # "a/b/c"'s audit: encode!
        assert client.get(E + "/with%20space/steps").status_code == 200
        doc = client.get("/openapi.json").json()
        parameter = doc["paths"][E + "/{id}"]["get"]["parameters"][0]
        assert "percent-encoded" in parameter["description"] and "%2F" in parameter["description"]


# ---------------------------------------------------------------------- 7. limits


def _invalid(r: httpx.Response, *fragments: str) -> None:
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"] == "invalid_input"
    for fragment in fragments:
        assert fragment in r.json()["message"], (fragment, r.text)
    for leak in LEAKS:
        assert leak not in r.text, (leak, r.text)


def test_ids_past_the_limits_are_422_never_sql(engine: zart.Zart) -> None:
    long_id, nul_id = "i" * 256, "bad\x00id"
    with (
        running_server(engine) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        greet = {"durable": "ops-greet", "input": "x"}
        _invalid(client.post(E, json={**greet, "id": long_id}), "256 characters", "255")
        _invalid(client.post(E, json={**greet, "id": nul_id}), "U+0000")
        _invalid(client.post(E, json={**greet, "id": "x\u0085y"}), "U+0085")
        lone = b'{"durable": "ops-greet", "input": "x", "id": "\\ud800"}'
        _invalid(client.post(E, content=lone, headers={"content-type": "application/json"}))
        _invalid(client.post(E, json={"durable": "ops\x00greet", "input": "x"}), "U+0000")
        _invalid(client.get(path_of(long_id)), "255")
        _invalid(client.get(E + "/bad%00id/steps"), "U+0000")
        _invalid(client.get(E + "/%FF%FE"), "UTF-8")
        _invalid(client.get(E, params={"name": "n\x00"}), "U+0000")
        assert client.post(E, json={**greet, "id": "ok-" + "i" * 252}).status_code == 201
        ok = path_of("ok-" + "i" * 252)
        _invalid(client.post(ok + "/events", json={"name": "e" * 513}), "512")
        _invalid(client.post(ok + "/events", json={"name": "e\x00"}), "U+0000")
        _invalid(client.post(ok + "/restart", json={"new_id": long_id}), "255")
        _invalid(client.post(ok + "/retry-step", json={"actor": "a\x00"}), "actor")
        _invalid(client.get(ok + "/steps/" + "s" * 513), "512")
        assert client.get(E).json()["items"][0]["id"] == "ok-" + "i" * 252  # nothing else


def test_unexpected_errors_show_a_reference_not_a_traceback(sqlite_url: str) -> None:
    from zart._ops.api import ApiState, app_for

    def lookup(name: str) -> zart.DurableFunction[Any, Any]:
        raise RuntimeError(f"registry exploded at {sqlite_url} with SELECT * FROM x")

    async def scenario(state: ApiState) -> httpx.Response:
        transport = httpx.ASGITransport(app=app_for(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return await c.post(E, json={"durable": "anything", "input": 1})

    import asyncio

    app = zart.Zart(sqlite_url)
    try:
        r = asyncio.run(scenario(ApiState(app, lookup=lookup)))
    finally:
        app.close()
    assert r.status_code == 500 and r.json()["error"] == "internal"
    assert "reference" in r.json()["message"]
    for leak in (*LEAKS, "exploded", sqlite_url):
        assert leak not in r.text


# ---------------------------------------------------------------------- 8. late events


def test_event_to_a_finished_execution_is_409(engine: zart.Zart, db_url: str) -> None:
    with (
        running_server(engine, worker_concurrency=2) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        client.post(E, json={"durable": "ops-greet", "input": "x", "id": "done"})
        assert client.get(E + "/done/wait", params={"timeout": 10}).json()["status"] == "completed"
        client.post(E, json={"durable": "ops-approval", "input": "po", "id": "gone"})
        client.post(E + "/gone/cancel", json={})
        for eid, status in (("done", "completed"), ("gone", "cancelled")):
            r = client.post(f"{E}/{eid}/events", json={"name": "ops-decision", "payload": 1})
            assert r.status_code == 409 and r.json()["error"] == "conflict", r.text
            assert status in r.json()["message"] and "not delivered" in r.json()["message"]
    result = CliRunner().invoke(
        main, ["--database-url", db_url, "send-event", "done", "ops-decision"]
    )
    assert result.exit_code != 0
    assert "not delivered" in result.stderr and "completed" in result.stderr
