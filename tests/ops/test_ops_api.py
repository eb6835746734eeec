"""The HTTP API (``zart serve``), exercised over real HTTP against uvicorn on a free port.

The contract test walks the served OpenAPI document: every documented route and
response status is produced by a real request, and each body is validated against
its documented schema (a small JSON-Schema subset validator below: $ref, allOf,
type, enum, required, properties, items).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import zart
from zart._ops.api import OPEN_PATHS, ServerSettings

import ops_app
from ops_app import free_port, ops_engine, running_server

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
E = "/api/executions"
RS, RF = E + "/{id}/restart", E + "/{id}/rerun-from"
PR = "/api/pause-rules"
RERUN_STEP = {"json": {"step": "ops-shout-c-rerun"}}


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    with ops_engine(db_url) as app:
        yield app


def wait_done(client: httpx.Client, eid: str, timeout: float = 15) -> dict[str, Any]:
    r = client.get(f"/api/executions/{eid}/wait", params={"timeout": timeout})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] in ("completed", "failed", "cancelled"), body
    return body


def _start_and_inspect(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert "ops-greet" in client.get("/api/durables").json()["items"]

    r = client.post("/api/executions", json={"durable": "ops-greet", "input": "ana", "id": "g1"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "g1" and r.json()["status"] in ("pending", "running", "completed")
    done = wait_done(client, "g1")
    assert done["status"] == "completed" and done["result"] == "hello ANA"
    assert done["input"] == {"args": ["ana"], "kwargs": {}}

    # Idempotent start: the same id returns the same execution (200, not 201).
    again = client.post(
        "/api/executions", json={"durable": "ops-greet", "input": "bob", "id": "g1"}
    )
    assert again.status_code == 200 and again.json()["result"] == "hello ANA"
    # ... but the id of another durable is a conflict.
    clash = client.post("/api/executions", json={"durable": "ops-slow", "input": 1, "id": "g1"})
    assert clash.status_code == 409 and clash.json()["error"] == "conflict"
    assert "ops-greet" in clash.json()["message"]

    steps = client.get("/api/executions/g1/steps").json()["items"]
    assert [(s["name"], s["status"]) for s in steps] == [("ops-shout-ana", "completed")]
    assert client.get("/api/executions/g1").json()["durable_name"] == "ops-greet"


def _list_filter_paginate(client: httpx.Client) -> None:
    # Keyword input, no id (a fresh uuid), then list/filter/paginate.
    for name in ("b", "c", "d"):
        r = client.post("/api/executions", json={"durable": "ops-greet", "input": {"name": name}})
        assert r.status_code == 201, r.text
        wait_done(client, r.json()["id"])
    page = client.get("/api/executions", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    rest = client.get("/api/executions", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 2 and rest["next_offset"] is None
    ids = {i["id"] for i in page["items"]} | {i["id"] for i in rest["items"]}
    assert len(ids) == 4 and "g1" in ids
    assert client.get("/api/executions", params={"status": "failed"}).json()["items"] == []
    by_name = client.get("/api/executions", params={"name": "ops-greet", "limit": 10}).json()
    assert len(by_name["items"]) == 4
    assert client.get("/api/executions", params={"name": "nope"}).json()["items"] == []
    counts = client.get("/api/counts").json()
    assert counts["counts"]["completed"] == 4 and counts["total"] == 4


def _events_cancel_and_bounded_wait(client: httpx.Client) -> None:
    client.post("/api/executions", json={"durable": "ops-approval", "input": "po-1", "id": "a1"})
    r = client.post(
        "/api/executions/a1/events", json={"name": "ops-decision", "payload": {"verdict": "yes"}}
    )
    assert r.status_code == 202
    assert wait_done(client, "a1")["result"] == "po-1: yes"
    client.post("/api/executions", json={"durable": "ops-approval", "input": "po-2", "id": "a2"})
    r = client.post("/api/executions/a2/cancel", json={})
    assert r.status_code == 200
    assert r.json() == {"id": "a2", "cancelled": True, "status": "cancelled"}
    assert client.post("/api/executions/a2/cancel", json={}).json()["cancelled"] is False

    # Wait is bounded: a still-running execution comes back as it is.
    client.post("/api/executions", json={"durable": "ops-slow", "input": 1.0, "id": "s1"})
    t0 = time.monotonic()
    r = client.get("/api/executions/s1/wait", params={"timeout": 0.3})
    assert r.status_code == 200 and r.json()["status"] in ("pending", "running")
    assert time.monotonic() - t0 < 2.5
    client.post("/api/executions/s1/cancel", json={})


def _errors_are_json(client: httpx.Client) -> None:
    for path in ("/api/executions/nope", "/api/executions/nope/steps", "/api/executions/nope/wait"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
    assert client.post("/api/executions/nope/cancel", json={}).status_code == 404
    assert client.post("/api/executions/nope/events", json={"name": "x"}).status_code == 404
    bad = [
        {"durable": "no-such-durable", "input": 1},
        {"durable": "ops-greet", "input": [1, 2, 3]},
        {"input": "x"},
        {"durable": "ops-greet", "input": "x", "id": 5},
    ]
    for body in bad:
        r = client.post("/api/executions", json=body)
        assert r.status_code == 422 and r.json()["error"] == "invalid_input", (body, r.text)
    r = client.post(
        "/api/executions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert client.get("/api/executions", params={"status": "bogus"}).status_code == 422
    assert client.get("/api/executions", params={"limit": "x"}).status_code == 422
    assert client.get("/api/executions/g1/wait", params={"timeout": "999"}).status_code == 422
    assert client.post("/api/executions/g1/events", json={"payload": 1}).status_code == 422
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_start_wait_inspect_list_and_errors(engine: zart.Zart) -> None:
    with (
        running_server(engine, worker_concurrency=4) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        _start_and_inspect(client)
        _list_filter_paginate(client)
        _events_cancel_and_bounded_wait(client)
        # Errors: JSON, with the right status.
        _errors_are_json(client)


def test_child_execution_ids_with_slashes_route(engine: zart.Zart) -> None:
    with running_server(engine) as url, httpx.Client(base_url=url) as client:
        client.post(
            "/api/executions", json={"durable": "ops-greet", "input": "x", "id": "p/child-1"}
        )
        assert client.get("/api/executions/p/child-1").json()["id"] == "p/child-1"
        assert client.get("/api/executions/p%2Fchild-1/steps").json()["execution_id"] == "p/child-1"


def test_bearer_token_required_except_health_and_page(sqlite_url: str) -> None:
    app = zart.Zart(sqlite_url)
    try:
        with running_server(app, token=TOKEN, metrics=True) as url, httpx.Client(base_url=url) as c:
            for path in ("/api/executions", "/api/counts", "/openapi.json", "/metrics"):
                r = c.get(path)
                assert r.status_code == 401, path
                assert r.json()["error"] == "unauthorized"
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
                assert c.get(path, headers={"Authorization": TOKEN}).status_code == 401
                assert c.get(path, headers=AUTH).status_code == 200, path
            r = c.post("/api/executions", json={"durable": "ops-greet", "input": "z"})
            assert r.status_code == 401
            for path in sorted(OPEN_PATHS):
                assert c.get(path).status_code == 200, path
    finally:
        app.close()


# ---------------------------------------------------------------------- contract


def _check(instance: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        _check(instance, target, root, where)
        return
    for sub in schema.get("allOf", []):
        _check(instance, sub, root, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        checks = {
            "null": lambda v: v is None,
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
        }
        assert any(checks[t](instance) for t in types), f"{where}: {instance!r} is not {types}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{where}: {instance!r} not in {schema['enum']}"
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            assert key in instance, f"{where}: missing required {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                _check(instance[key], sub, root, f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            _check(item, schema["items"], root, f"{where}[{i}]")


def test_openapi_documents_every_route() -> None:
    from zart._ops.api import documented_paths
    from zart._ops.openapi import openapi_document

    served = {(p, m.lower()) for p, m in documented_paths()}
    doc = openapi_document(metrics=True)
    documented = {(p, m) for p, item in doc["paths"].items() for m in item}
    assert served == documented


# ---------------------------------------------------------------------- handlers alone


def test_a_handler_is_a_plain_function_of_state_and_request(sqlite_url: str) -> None:
    """No server and no routing: build the state, build a request, await the handler."""
    from starlette.requests import Request

    from zart._ops.api import ApiState
    from zart._ops.api._executions import get_execution

    app = zart.Zart(sqlite_url)
    try:
        app.submit(ops_app.greet, "solo", execution_id="solo-1")
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/executions/solo-1",
            "query_string": b"",
            "headers": [],
            "path_params": {"id": "solo-1"},
        }
        response = asyncio.run(get_execution(ApiState(app), Request(scope)))
        assert response.status_code == 200
        body = json.loads(response.body)
        assert body["id"] == "solo-1" and body["status"] == "pending"
        assert body["input"] == {"args": ["solo"], "kwargs": {}} and body["result"] is None
    finally:
        app.close()


def test_minimal_app_with_its_own_registry_and_a_conflicting_id(sqlite_url: str) -> None:
    """``app_for(ApiState(...))`` served in memory (httpx's ASGI transport): the durables
    the API knows are part of its state, and starting an id of another durable is a 409."""
    from zart import UnknownDurableError
    from zart._ops.api import ApiState, app_for

    known: dict[str, zart.DurableFunction[Any, Any]] = {
        "ops-greet": ops_app.greet,
        "ops-slow": ops_app.slow,
    }

    def lookup(name: str) -> zart.DurableFunction[Any, Any]:
        if name not in known:
            raise UnknownDurableError(f"unknown durable {name!r}")
        return known[name]

    async def scenario(state: ApiState) -> None:
        transport = httpx.ASGITransport(app=app_for(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert (await client.get(E)).status_code == 401
            client.headers.update(AUTH)
            assert (await client.get("/api/durables")).json() == {"items": sorted(known)}
            unknown = await client.post(E, json={"durable": "ops-approval", "input": "x"})
            assert unknown.status_code == 422
            mine = await client.post(E, json={"durable": "ops-greet", "input": "x", "id": "mine"})
            assert mine.status_code == 201, mine.text
            clash = await client.post(E, json={"durable": "ops-slow", "input": 1, "id": "mine"})
            assert clash.status_code == 409 and clash.json()["error"] == "conflict"
            assert "'ops-greet'" in clash.json()["message"]
            assert "another id" in clash.json()["message"]
            stored = (await client.get(E + "/mine")).json()
            assert stored["durable_name"] == "ops-greet"
            assert stored["input"] == {"args": ["x"], "kwargs": {}}

    app = zart.Zart(sqlite_url)
    try:
        state = ApiState(app, token=TOKEN, lookup=lookup, durable_names=lambda: sorted(known))
        asyncio.run(scenario(state))
    finally:
        app.close()


# (method, documented path, status, real path, request options); reads first.
CONTRACT_RECIPES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("get", "/healthz", "200", "/healthz", {}),
    ("get", "/readyz", "200", "/readyz", {}),
    ("get", "/openapi.json", "200", "/openapi.json", {}),
    ("get", "/metrics", "200", "/metrics", {}),
    ("get", "/api/durables", "200", "/api/durables", {}),
    ("get", "/api/counts", "200", "/api/counts", {}),
    ("get", "/api/queues", "200", "/api/queues", {}),
    ("get", E, "200", E, {"params": {"status": "completed", "limit": 2}}),
    ("get", E, "422", E, {"params": {"offset": -1}}),
    ("get", E + "/{id}", "200", E + "/c-fail", {}),
    ("get", E + "/{id}", "404", E + "/nope", {}),
    ("get", E + "/{id}/steps", "200", E + "/c-fail/steps", {}),
    ("get", E + "/{id}/steps", "404", E + "/nope/steps", {}),
    ("get", E + "/{id}/wait", "200", E + "/c-done/wait", {"params": {"timeout": 1}}),
    ("get", E + "/{id}/wait", "404", E + "/nope/wait", {}),
    ("get", E + "/{id}/wait", "422", E + "/c-done/wait", {"params": {"timeout": "x"}}),
    ("post", E, "201", E, {"json": {"durable": "ops-greet", "input": "n", "id": "c-new"}}),
    ("post", E, "200", E, {"json": {"durable": "ops-greet", "input": "n", "id": "c-new"}}),
    ("post", E, "409", E, {"json": {"durable": "ops-slow", "input": 1, "id": "c-new"}}),
    ("post", E, "422", E, {"json": {"durable": "ops-greet", "input": [1, 2]}}),
    ("get", E + "/{id}/overview", "200", E + "/c-fail/overview", {}),
    ("get", E + "/{id}/overview", "404", E + "/nope/overview", {}),
    ("get", E + "/{id}/input", "200", E + "/c-fail/input", {}),
    ("get", E + "/{id}/input", "404", E + "/nope/input", {}),
    ("get", E + "/{id}/result", "200", E + "/c-done/result", {}),
    ("get", E + "/{id}/result", "404", E + "/nope/result", {}),
    ("get", E + "/{id}/timeline", "200", E + "/c-fail/timeline", {}),
    ("get", E + "/{id}/timeline", "404", E + "/nope/timeline", {}),
    ("get", E + "/{id}/steps/{step}", "200", E + "/c-fail/steps/ops-charge-1", {}),
    ("get", E + "/{id}/steps/{step}", "404", E + "/c-fail/steps/no-such-step", {}),
    ("post", E + "/{id}/events", "202", E + "/c-wait/events", {"json": {"name": "other"}}),
    ("post", E + "/{id}/events", "409", E + "/c-done/events", {"json": {"name": "late"}}),
    ("post", E + "/{id}/events", "404", E + "/nope/events", {"json": {"name": "x"}}),
    ("post", E + "/{id}/events", "422", E + "/c-wait/events", {"json": {"name": ""}}),
    ("post", E + "/{id}/cancel", "200", E + "/c-cancel/cancel", {"json": {}}),
    ("post", E + "/{id}/cancel", "404", E + "/nope/cancel", {"json": {}}),
    ("post", E + "/{id}/retry-step", "409", E + "/c-done/retry-step", {"json": {}}),
    ("post", E + "/{id}/retry-step", "404", E + "/nope/retry-step", {"json": {}}),
    ("post", E + "/{id}/retry-step", "200", E + "/c-fail/retry-step", {"json": {}}),
    ("post", RS, "409", E + "/c-wait/restart", {"json": {}}),
    ("post", RS, "404", E + "/nope/restart", {"json": {}}),
    ("post", RS, "422", E + "/c-done/restart", {"json": {"input": [1, 2]}}),
    ("post", RS, "201", E + "/c-done/restart", {"json": {"new_id": "c-copy"}}),
    ("post", RS, "200", E + "/c-restart/restart", {"json": {"actor": "ana"}}),
    ("post", RF, "409", E + "/c-wait/rerun-from", {"json": {"step": "x"}}),
    ("post", RF, "404", E + "/nope/rerun-from", {"json": {"step": "x"}}),
    ("post", RF, "422", E + "/c-rerun/rerun-from", {"json": {}}),
    ("post", RF, "200", E + "/c-rerun/rerun-from", RERUN_STEP),
    ("get", E + "/{id}/audit", "200", E + "/c-restart/audit", {}),
    ("get", E + "/{id}/audit", "404", E + "/nope/audit", {}),
    ("get", "/api/audit", "200", "/api/audit", {}),
    ("get", "/api/audit", "422", "/api/audit", {"params": {"limit": 0}}),
    ("post", PR, "200", PR, {"json": {"step": "never:*", "actor": "ana"}}),
    ("post", PR, "422", PR, {"json": {}}),
    ("get", PR, "200", PR, {}),
    ("post", PR + "/resume", "200", PR + "/resume", {"json": {"step": "never:*"}}),
    ("post", PR + "/resume", "404", PR + "/resume", {"json": {"rule_id": 999}}),
    ("post", PR + "/resume", "422", PR + "/resume", {"json": {"rule_id": "x"}}),
    ("post", E + "/{id}/resume", "200", E + "/c-cancel/resume", {"json": {"actor": "ana"}}),
    ("post", E + "/{id}/resume", "409", E + "/c-done/resume", {"json": {}}),
    ("post", E + "/{id}/resume", "404", E + "/nope/resume", {"json": {}}),
]  # fmt: skip


def _start_contract_executions(client: httpx.Client) -> None:
    def start(durable: str, value: Any, eid: str) -> None:
        r = client.post("/api/executions", json={"durable": durable, "input": value, "id": eid})
        assert r.status_code == 201, r.text

    for eid in ("c-done", "c-restart", "c-rerun"):
        start("ops-greet", eid, eid)
    start("ops-pipeline", 3, "c-fail")
    start("ops-approval", "po", "c-wait")
    start("ops-approval", "po", "c-cancel")
    for eid in ("c-done", "c-restart", "c-rerun", "c-fail"):
        wait_done(client, eid)
    assert client.get("/api/executions/c-fail").json()["status"] == "failed"
    deadline = time.monotonic() + 10
    while client.get("/api/executions/c-wait").json()["status"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _check_response(
    doc: dict[str, Any], method: str, path: str, status: str, response: httpx.Response
) -> None:
    """``response`` has the documented ``status`` and matches its documented schema."""
    assert str(response.status_code) == status, (method, path, response.text)
    spec = doc["paths"][path][method]["responses"][status]
    content = spec.get("content", {})
    if "application/json" in content:
        assert response.headers["content-type"].startswith("application/json")
        _check(response.json(), content["application/json"]["schema"], doc, path)
    elif "text/plain" in content:
        assert response.headers["content-type"].startswith("text/plain")


def _check_unauthorized(url: str, doc: dict[str, Any]) -> None:
    """401 on every operation that is not open, without the token."""
    with httpx.Client(base_url=url) as anonymous:
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if op.get("security") == []:
                    continue
                real = path.replace("{id}", "c-done").replace("{step}", "x")
                body = {"json": {}} if method == "post" else {}
                r = anonymous.request(method, real, **body)
                _check_response(doc, method, path, "401", r)


# Answered by the guard and the database gate, on every route: checked route by route
# below (401, 400, 403, 413, 415) and by the outage tests (503).
GUARD_STATUSES = ("401", "400", "403", "413", "415", "503")
SMALL_BODIES = ServerSettings(max_body_bytes=64 * 1024)


def _check_guards(url: str, doc: dict[str, Any]) -> None:
    """Every documented 400 (a Host this server does not serve), and for each POST its
    403 (another origin), 415 (not JSON) and 413 (a body over the limit)."""
    big = b'{"x": "' + b"a" * SMALL_BODIES.max_body_bytes + b'"}'
    json_type = {"content-type": "application/json"}
    with httpx.Client(base_url=url, headers=AUTH) as c:
        for path, item in doc["paths"].items():
            for method, op in item.items():
                real = path.replace("{id}", "c-done").replace("{step}", "x")
                body = {"json": {}} if method == "post" else {}
                cases: dict[str, dict[str, Any]] = {}
                if path not in ("/healthz", "/readyz"):  # probes answer any Host
                    cases["400"] = {"headers": {"host": "rebind.example"}, **body}
                if method == "post":
                    cases["403"] = {"headers": {"origin": "https://evil.example"}, "json": {}}
                    cases["415"] = {"headers": {"content-type": "text/plain"}, "content": b"{}"}
                    cases["413"] = {"headers": json_type, "content": big}
                for status, options in cases.items():
                    assert status in op["responses"], (method, path, status)
                    r = c.request(method, real, **options)
                    _check_response(doc, method, path, status, r)


def test_contract_every_documented_response(engine: zart.Zart, tmp_path: Path) -> None:
    ops_app.FAILING.add("ops-charge-1")
    with (
        running_server(
            engine, token=TOKEN, metrics=True, worker_concurrency=4, settings=SMALL_BODIES
        ) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=30) as client,
    ):
        _start_contract_executions(client)
        doc = client.get("/openapi.json").json()
        assert doc["openapi"].startswith("3.")
        documented = {
            (m, p, st)
            for p, item in doc["paths"].items()
            for m, op in item.items()
            for st in op["responses"]
            if st not in GUARD_STATUSES
        }
        assert {(m, p, st) for m, p, st, _, _ in CONTRACT_RECIPES} == documented

        for method, path, status, real, options in CONTRACT_RECIPES:
            _check_response(doc, method, path, status, client.request(method, real, **options))

        # The audit entries of the admin calls above, with the token identity as actor.
        entries = client.get(f"{E}/c-restart/audit").json()["items"]
        assert [e["action"] for e in entries] == ["restart"]
        assert entries[0]["actor"].startswith("ana (token:")
        _check_unauthorized(url, doc)
        _check_guards(url, doc)

    # 503: the readiness probe of a server whose database is unreachable.
    broken = zart.Zart(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        with running_server(broken) as url:
            _check_response(doc, "get", "/readyz", "503", httpx.get(url + "/readyz"))
    finally:
        broken.close()


def test_zart_serve_command(tmp_path: Path) -> None:
    """The real `zart serve MODULE` process: token from the environment, worker, metrics."""
    port = free_port()
    env = dict(os.environ)
    env["ZART_DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    env["ZART_API_TOKEN"] = TOKEN
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "zart", "serve", "ops_app", "--port", str(port), "--metrics"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "zart serve did not come up"
            time.sleep(0.1)
        with httpx.Client(base_url=url, headers=AUTH, timeout=20) as client:
            r = client.post(
                "/api/executions", json={"durable": "ops-greet", "input": "cli", "id": "x1"}
            )
            assert r.status_code == 201, r.text
            assert wait_done(client, "x1")["result"] == "hello CLI"
            assert 'zart_executions{status="completed"} 1' in client.get("/metrics").text
        assert httpx.get(url + "/api/executions").status_code == 401
    finally:
        proc.terminate()
        proc.wait(15)
    assert proc.returncode in (0, -15), proc.returncode


def test_serve_bad_module_is_one_line_error(tmp_path: Path) -> None:
    env = dict(os.environ, ZART_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    out = subprocess.run(
        [sys.executable, "-m", "zart", "serve", "no_such_module_xyz"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("zart: error: ") and len(out.stderr.splitlines()) == 1
