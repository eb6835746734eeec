"""Races, shutdown and the small things, over real HTTP and real processes: concurrent
creates of one id (5), SIGTERM with an open long poll (9), clients that go away, typed
input, bad ``--input``, re-run durations, the README and the transactional example (10).
"""

from __future__ import annotations

import collections
import json
import logging
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import zart
from zart.cli import main

import ops_app
from ops_app import ROOT, child_env, ops_engine, running_server, serve_process

E = "/api/executions"
RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends RST


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    with ops_engine(db_url) as app:
        yield app


# ---------------------------------------------------------------------- 5. one winner


def test_sixty_concurrent_creates_of_one_id(engine: zart.Zart) -> None:
    """Exactly one 201; the 59 others 200 with that same execution and its input."""
    answers: list[httpx.Response] = []
    with running_server(engine) as base:
        barrier = threading.Barrier(60)

        def create(n: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                barrier.wait()
                body = {"durable": "ops-greet", "input": f"caller-{n}", "id": "contested"}
                answers.append(client.post(E, json=body))

        threads = [threading.Thread(target=create, args=(n,)) for n in range(60)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        print(f"\n60 concurrent creates answered in {time.perf_counter() - t0:.2f}s")
    codes = collections.Counter(r.status_code for r in answers)
    assert codes == {201: 1, 200: 59}, codes
    winner = next(r.json() for r in answers if r.status_code == 201)
    for r in answers:
        body = r.json()
        assert (body["id"], body["created_at"], body["input"]) == (
            "contested",
            winner["created_at"],
            winner["input"],
        )


# ---------------------------------------------------------------------- 9. shutdown


def test_sigterm_answers_open_waits_and_exits_in_its_grace(tmp_path: Path) -> None:
    env = child_env(f"sqlite:///{tmp_path / 'serve.db'}")
    log = tmp_path / "serve.log"
    waits: list[tuple[httpx.Response | Exception, float]] = []
    with serve_process(env, "ops_app", "--grace-seconds", "4", log=log) as (proc, base):
        r = httpx.post(base + E, json={"durable": "ops-approval", "input": "po", "id": "lp"})
        assert r.status_code == 201

        def long_poll() -> None:
            t0 = time.monotonic()
            try:
                answer: httpx.Response | Exception = httpx.get(
                    base + E + "/lp/wait", params={"timeout": 30}, timeout=40
                )
            except Exception as exc:  # reported below
                answer = exc
            waits.append((answer, time.monotonic() - t0))

        pollers = [threading.Thread(target=long_poll) for _ in range(3)]
        for t in pollers:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        exit_seconds = time.monotonic() - t0
        for t in pollers:
            t.join(10)
    print(f"\nexit {exit_seconds:.2f}s after SIGTERM with 3 open long polls")
    assert proc.returncode in (0, -signal.SIGTERM), log.read_text()
    assert exit_seconds < 4 + 1, log.read_text()
    assert len(waits) == 3
    for answer, _ in waits:
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 503 and answer.json()["error"] == "shutting_down"
        assert answer.headers["retry-after"]
    assert "Traceback" not in log.read_text()


# ---------------------------------------------------------------------- 10. small things


def test_a_client_going_away_leaves_no_traceback(
    engine: zart.Zart, caplog: pytest.LogCaptureFixture
) -> None:
    engine.submit(ops_app.approval, "po", execution_id="held")
    with running_server(engine) as base, caplog.at_level(logging.DEBUG):
        port = int(base.rsplit(":", 1)[1])
        requests = [
            f"POST {E} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n{",
            f"GET {E}/held/wait?timeout=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET {E}?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ]
        for raw in requests:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(raw.encode())
            time.sleep(0.2)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            sock.close()  # reset: the client is gone
        time.sleep(1.0)
        assert httpx.get(base + "/healthz").status_code == 200
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]


def test_a_closed_pipe_ends_the_cli_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    schema = zart.Zart(url)
    schema.ops_store.ensure_schema()
    schema.close()
    rows = [(f"pipe-{i:05d}", "ops-greet", "pending", "{}", 0, i, i) for i in range(3000)]
    with sqlite3.connect(tmp_path / "many.db") as conn:  # more than a pipe holds
        conn.executemany(
            "INSERT INTO zart_executions (id, durable_name, status, input, attempts, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    listing = subprocess.Popen(
        [sys.executable, "-m", "zart", "list", "--limit", "3000"],
        env=child_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None and listing.stderr is not None
    assert listing.stdout.readline().startswith(b"ID")
    listing.stdout.close()  # like `zart list | head -1`
    listing.wait(30)
    stderr = listing.stderr.read().decode()
    assert stderr == "" and listing.returncode == 141, (listing.returncode, stderr)


def test_typed_input_refuses_a_boolean_for_an_int(engine: zart.Zart, db_url: str) -> None:
    with running_server(engine) as base, httpx.Client(base_url=base) as client:
        for data in ([True], True, {"n": False}):
            r = client.post(E, json={"durable": "ops-pipeline", "input": data, "id": "b"})
            assert r.status_code == 422, (data, r.text)
            assert "n: expected int, got JSON boolean" in r.json()["message"]
        assert client.get(E + "/b").status_code == 404
        assert client.post(E, json={"durable": "ops-pipeline", "input": 2}).status_code == 201
    result = CliRunner().invoke(
        main, ["--database-url", db_url, "run", "cli_app:add", "--input", "[true, 1]"]
    )
    assert result.exit_code == 2 and "a: expected int, got JSON boolean true" in result.stderr


def test_run_rejects_bad_json_before_importing_the_module(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    module = tmp_path / "noisy_flows.py"
    module.write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('side effect')\n"
        "import zart\n\n"
        "@zart.durable('noisy')\n"
        "async def noisy(n: int) -> int:\n"
        "    return n\n"
    )
    db = f"sqlite:///{tmp_path / 'x.db'}"
    target = f"{module}:noisy"
    for args in (
        ["run", target, "--input", "[bad"],
        ["schedule", "add", "s", target, "--every", "5", "--input", "{x"],
    ):
        result = CliRunner().invoke(main, ["--database-url", db, *args])
        assert result.exit_code == 2, result.output
        assert "--input is not valid JSON" in result.stderr
        assert not marker.exists(), "the module was imported before the JSON was checked"


def _durations(client: httpx.Client, db_url: str, eid: str) -> tuple[float, float]:
    api = client.get(f"{E}/{eid}").json()["duration"]
    out = CliRunner().invoke(main, ["--database-url", db_url, "status", eid, "--json"])
    return api, float(json.loads(out.stdout)["duration"])


def _finish(client: httpx.Client, eid: str, status: str) -> None:
    done = client.get(f"{E}/{eid}/wait", params={"timeout": 10}).json()
    assert done["status"] == status, done


def test_rerun_duration_is_the_rerun_not_since_the_first_run(
    engine: zart.Zart, db_url: str
) -> None:
    """A re-run that takes milliseconds shows milliseconds, not the pause before it."""
    with (
        running_server(engine, worker_concurrency=2) as base,
        httpx.Client(base_url=base, timeout=20) as client,
    ):
        ops_app.FAILING.add("ops-charge-1")
        client.post(E, json={"durable": "ops-pipeline", "input": 3, "id": "rr"})
        _finish(client, "rr", "failed")
        time.sleep(1.0)  # the operator takes a while to react
        ops_app.FAILING.clear()
        assert client.post(E + "/rr/rerun-from", json={"step": "ops-charge-1"}).is_success
        _finish(client, "rr", "completed")
        api, cli = _durations(client, db_url, "rr")
        print(f"\nrerun-from: the re-run took {api:.3f}s (API), {cli:.3f}s (CLI)")
        assert api < 0.8 and cli < 0.8, (api, cli)

        ops_app.FAILING.add("ops-charge-2")
        assert client.post(E + "/rr/restart", json={}).is_success
        _finish(client, "rr", "failed")
        time.sleep(1.0)
        ops_app.FAILING.clear()
        assert client.post(E + "/rr/retry-step", json={}).is_success
        _finish(client, "rr", "completed")
        api, cli = _durations(client, db_url, "rr")
        print(f"retry-step: the re-run took {api:.3f}s (API), {cli:.3f}s (CLI)")
        assert api < 0.8 and cli < 0.8, (api, cli)


def test_readme_serve_section_says_how_to_install_the_api(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    assert "pip install -e '.[api]'" in section and "pip install 'zart[api]'" in section


def test_transactional_example_creates_its_own_table(db_url: str) -> None:
    """Run by `zart run` (not its own main()), on a database that has never seen it."""
    example = ROOT / "examples" / "transactional_step.py"
    data = '["batch-1", [{"customer": "ana", "cents": 1200}, {"customer": "ben", "cents": 5}]]'
    args: list[Any] = ["--database-url", db_url, "run", f"{example}:store_invoices"]
    result = CliRunner().invoke(main, [*args, "--input", data, "--id", "tx-1"])
    assert result.exit_code == 0, result.output
    assert "1205" in result.stdout
