"""The database goes away while ``zart serve`` runs (4): bounded answers (503 with
Retry-After within about 2 s), a readiness probe that answers within 2 s whatever the
database does, and an outage banner in the page that clears when the database is back.

PostgreSQL is reached through a TCP proxy the test controls: ``close()`` refuses new
connections and cuts the open ones (a crash, a failover), ``blackhole()`` accepts but
forwards nothing (a partition: the nastiest case, every call would hang).
SQLite's outage is another process holding the write lock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cdp_browser import CHROMIUM, Browser

from ops_app import child_env, free_port, fresh_postgres, ops_engine, running_server, serve_process

E = "/api/executions"
SECRET = "outage-Pa55"
PG_PORT = 5432


class PortProxy:
    """127.0.0.1:<port> → 127.0.0.1:<target>, with the failures described above."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.mode = "open"
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.listen()

    def listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            if self.mode == "closed":
                client.close()
                return
            with self.lock:
                self.sockets.append(client)
            if self.mode == "blackhole":
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.mode == "blackhole":
                    time.sleep(0.02)  # held, as a partitioned network holds packets
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _cut(self) -> None:
        with self.lock:
            doomed, self.sockets = self.sockets, []
        for s in doomed:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        """Connections refused, open ones cut."""
        self.mode = "closed"
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self.listener.close()
            self.listener = None
        self._cut()

    def open(self) -> None:
        self.mode = "open"
        if self.listener is None:
            self.listen()

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def heal(self) -> None:
        self.mode = "open"


def timed(call: httpx.Client, method: str, path: str, **kw: object) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = call.request(method, path, **kw)  # type: ignore[arg-type]
    return r, time.monotonic() - t0


def assert_unavailable(r: httpx.Response, took: float, what: str) -> None:
    print(f"  {what}: {r.status_code} in {took * 1000:.0f} ms")
    assert r.status_code == 503, (what, r.text)
    assert r.headers.get("retry-after"), what
    assert took < 2.6, f"{what} took {took:.2f}s"
    for leak in (SECRET, "127.0.0.1", "postgres"):
        assert leak not in r.text, (leak, r.text)


def readyz_under_load(client: httpx.Client, base: str, expect: int) -> list[float]:
    """/readyz five times while 16 clients hammer the API; its answer times."""
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=base, timeout=10) as own:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    own.get(E)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    times = []
    try:
        time.sleep(0.3)
        for _ in range(5):
            r, took = timed(client, "GET", "/readyz")
            assert r.status_code == expect, r.text
            times.append(took)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    return times


@pytest.fixture
def browser() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"headless Chromium not found at {CHROMIUM}", pytrace=False)
    return CHROMIUM


@pytest.fixture
def proxy() -> Iterator[PortProxy]:
    found = PortProxy(PG_PORT)
    yield found
    found.close()


def wait_ready(client: httpx.Client, timeout: float = 15) -> float:
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/readyz").status_code == 200:
                return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, "the server did not become ready again"
        time.sleep(0.1)


def test_postgres_outage_is_bounded_and_shown(
    pg_database: str, proxy: PortProxy, browser: str, tmp_path: Path
) -> None:
    fresh_postgres(pg_database)
    dbname = pg_database.rsplit("/", 1)[1]
    url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{proxy.port}/{dbname}"
    log = tmp_path / "serve.log"
    args = ("ops_app", "--no-worker", "--no-scheduler")
    with (
        serve_process(child_env(url), *args, log=log, ready="/readyz") as (_, base),
        httpx.Client(base_url=base, timeout=10) as client,
        Browser(browser, 1280, 800) as chrome,
    ):
        created = client.post(E, json={"durable": "ops-greet", "input": "x", "id": "before"})
        assert created.status_code == 201, created.text
        page = chrome.open(base + "/")
        page.wait_for("document.body.dataset.loaded === 'true'")
        assert page.eval("document.querySelector('#outage').hidden") is True

        print("\ndatabase connections refused and cut:")
        proxy.close()
        assert_unavailable(*timed(client, "GET", E), "GET list")
        assert_unavailable(*timed(client, "GET", E + "/before"), "GET execution")
        body = {"durable": "ops-greet", "input": "y", "id": "during"}
        assert_unavailable(*timed(client, "POST", E, json=body), "POST create")
        times = readyz_under_load(client, base, 503)
        print(f"  /readyz under load: {', '.join(f'{t * 1000:.0f}' for t in times)} ms")
        assert max(times) < 2.0
        page.wait_for("document.body.dataset.outage === 'true'", timeout=8)
        banner = page.eval("document.querySelector('#outage').innerText")
        assert "The database does not answer" in banner
        assert SECRET not in banner and dbname not in banner
        assert page.eval("document.querySelector('#live').textContent") == "outage"
        shots = [page.screenshot(tmp_path / "outage.png")]

        proxy.open()
        print(f"  ready again {wait_ready(client):.2f}s after the database came back")
        assert client.get(E + "/before").status_code == 200
        page.wait_for("document.body.dataset.outage === 'false'", timeout=8)
        assert page.eval("document.querySelector('#outage').hidden") is True
        shots.append(page.screenshot(tmp_path / "recovered.png"))
        assert page.problems() == []

        print("database partitioned (packets held):")
        proxy.blackhole()
        time.sleep(0.6)  # past the half second a successful ping is reused
        r, took = timed(client, "GET", "/readyz")
        print(f"  /readyz: {r.status_code} in {took * 1000:.0f} ms")
        assert r.status_code == 503 and took < 2.0
        assert_unavailable(*timed(client, "GET", E + "/before"), "GET execution")
        proxy.heal()
        print(f"  ready again {wait_ready(client):.2f}s after the partition healed")
    text = log.read_text()
    assert SECRET not in text and "Traceback" not in text, text[-3000:]
    for shot in shots:
        print(f"screenshot: {shot}")


def test_sqlite_held_write_lock_is_a_bounded_503(sqlite_url: str, tmp_path: Path) -> None:
    """Another process holds SQLite's write lock (busy timeout: 30 s): writes answer 503
    in about 2 s, reads and /readyz go on (WAL), and all is well once it lets go."""
    with (
        ops_engine(sqlite_url) as app,
        running_server(app) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        assert client.post(E, json={"durable": "ops-greet", "input": "x"}).status_code == 201
        holder = sqlite3.connect(str(tmp_path / "zart.db"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            r, took = timed(client, "POST", E, json={"durable": "ops-greet", "input": "y"})
            print(f"\nPOST while the write lock is held: {r.status_code} in {took:.2f}s")
            assert r.status_code == 503 and r.headers["retry-after"] and took < 2.6
            r, took = timed(client, "GET", "/readyz")
            assert r.status_code == 200 and took < 2.0
            assert len(client.get(E).json()["items"]) == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        body = {"durable": "ops-greet", "input": "z", "id": "after"}
        assert client.post(E, json=body).status_code == 201
