"""The web view served at / by ``zart serve``, rendered by a real headless Chromium
driven over the DevTools protocol (``cdp_browser``).

Chromium comes from scripts/ensure_browser.sh (Debian's ``chromium`` package);
a missing browser is a test failure, never a skip. Screenshots are written under the
test's tmp_path (printed); ``ZART_WEB_SCREENSHOTS=DIR`` copies them to DIR too.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cdp_browser import CHROMIUM, Browser, Page

import zart
from zart import TaskError

import ops_app
from ops_app import ops_engine, running_server


@pytest.fixture
def browser() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"headless Chromium not found at {CHROMIUM}: run scripts/ensure_browser.sh "
            "(apt-get install -y chromium) or set ZART_TEST_CHROMIUM",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    with ops_engine(db_url) as app:
        yield app


def keep(*shots: Path) -> None:
    """Print where the screenshots are; copy them to $ZART_WEB_SCREENSHOTS if set."""
    target = os.environ.get("ZART_WEB_SCREENSHOTS")
    for shot in shots:
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
        print(f"screenshot: {shot}")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(target) / shot.name)


def loaded(page: Page) -> None:
    page.wait_for("document.body.dataset.loaded === 'true'")


def test_web_view_lists_and_shows_a_timeline(
    engine: zart.Zart, browser: str, tmp_path: Path
) -> None:
    engine.run(ops_app.greet, "ana", execution_id="web-ok")
    ops_app.FAILING.add("ops-charge-1")
    with pytest.raises(TaskError):
        engine.run(ops_app.pipeline, 3, execution_id="web-bad")

    with running_server(engine) as url, Browser(browser, 1280, 900) as chrome:
        page = chrome.open(url + "/")
        loaded(page)
        rows = page.eval(
            "[...document.querySelectorAll('#executions tbody tr')]"
            ".map(r => [r.dataset.id, r.dataset.status, r.innerText])"
        )
        by_id = {eid: (status, text) for eid, status, text in rows}
        assert by_id["web-ok"][0] == "completed" and "ops-greet" in by_id["web-ok"][1]
        assert by_id["web-bad"][0] == "failed" and "card declined for item 1" in by_id["web-bad"][1]

        page.eval("location.hash = '#/executions/web-bad'")
        page.wait_for("document.body.dataset.timelineMs")
        state = page.eval("zart.timeline.state()")
        # Three steps, none sharing a template with another: one row each, in call order.
        assert state["visible"] == ["ops-load", "ops-charge-0", "ops-charge-1"], state
        title = page.eval("document.querySelector('.exec-title').dataset.status")
        assert title == "failed"
        version = engine.status("web-bad").version
        assert version and version in page.eval("document.querySelector('.facts').innerText")
        assert "StepError: card declined for item 1" in page.eval("document.body.innerText")
        assert page.eval("document.querySelector('#summary [data-steps]').textContent") == "3"

        page.click("#jump-failed")
        page.wait_for("document.querySelector('#panel .panel-title')?.textContent")
        panel = page.eval("document.querySelector('#panel').innerText")
        assert "ops-charge-1" in panel and "card declined for item 1" in panel
        shot = page.screenshot(tmp_path / "view.png")
        assert page.problems() == []  # no CSP violation, no script error
    keep(shot)


# ---------------------------------------------------------------------- at scale

STEPS = 10_000
EXECUTIONS = 100_000
DASH = "\N{EN DASH}"


def bulk_database(tmp_path: Path) -> str:
    """SQLite (synchronous=OFF, for speed) with a real 10,000-step run of
    ``ops_app.bulk`` (one charge fails), 100,000 more executions written directly,
    and one execution whose id is 255 characters long."""
    url = f"sqlite:///{tmp_path / 'scale.db'}?synchronous=OFF"
    app = zart.Zart(url)
    t0 = time.perf_counter()
    with pytest.raises(TaskError, match="1 charge"):
        app.run(ops_app.bulk, STEPS, execution_id="bulk-10k")
    print(f"\n10,000-step execution run in {time.perf_counter() - t0:.2f}s")
    app.submit(ops_app.greet, "long", execution_id="L" * 255)
    app.close()
    now = time.time()
    statuses = ("completed", "failed", "pending", "running")
    rows = [
        (f"order-{i:06d}", "ops-greet", statuses[i % 4], '{"args":["x"],"kwargs":{}}', 1,
         now - EXECUTIONS + i, now - EXECUTIONS + i)
        for i in range(EXECUTIONS)
    ]  # fmt: skip
    with sqlite3.connect(tmp_path / "scale.db") as conn:
        conn.executemany(
            "INSERT INTO zart_executions (id, durable_name, status, input, attempts, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return url


def timed_get(client: httpx.Client, path: str) -> float:
    t0 = time.perf_counter()
    assert client.get(path).status_code == 200, path
    return (time.perf_counter() - t0) * 1000


def check_list(page: Page) -> None:
    """Server-side pages of 50 over 100,002 executions; a 255-character id is cut to
    its column, it does not widen the page."""
    loaded(page)
    total = f"{EXECUTIONS + 2:,}"
    assert page.eval("document.querySelector('#range').textContent") == f"1{DASH}50 of {total}"
    assert page.eval("document.querySelectorAll('#executions tbody tr').length") == 50
    long_id = "L" * 255
    cell = page.eval(
        f"(() => {{ const td = document.querySelector('tr[data-id=\"{long_id}\"] td.id');"
        " return [td.title.length, td.getBoundingClientRect().width]; })()"
    )
    assert cell[0] == 255 and cell[1] < 500, cell
    width = page.eval("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"
    page.click("#last")
    page.wait_for(f"document.querySelector('#range').textContent.startsWith('{EXECUTIONS + 1:,}')")
    assert page.eval("document.querySelectorAll('#executions tbody tr').length") == 2
    page.eval("location.hash = '#/?status=failed'")
    failed = EXECUTIONS // 4 + 1  # and the 10,000-step one
    page.wait_for(f"document.querySelector('#range').textContent === '1{DASH}50 of {failed:,}'")


def check_timeline(page: Page, out: Path) -> list[Path]:
    """10,000 steps: grouped, summarised, filtered, the failure found; screenshots."""
    render_ms = page.wait_for("document.body.dataset.timelineMs", timeout=30)
    print(f"10,000-step timeline rendered {render_ms} ms after navigation started (goal < 2000)")
    state = page.eval("zart.timeline.state()")
    assert state["steps"] == STEPS
    groups = {g["key"]: g["count"] for g in state["groups"]}
    assert groups == {"charge:{…}": 5000, "ship-{…}": 4998}, groups
    assert state["rows"] == 4  # load, the two groups, report
    assert page.eval("document.querySelectorAll('body *').length") < 400  # no row per step
    summary = page.eval("document.querySelector('#summary').innerText")
    assert "10,000" in summary and "9,999" in summary and "failed" in summary
    # Input and result are fetched when asked for, not with every refresh.
    fetched = "performance.getEntriesByType('resource').map(e => e.name)"
    assert not [u for u in page.eval(fetched) if u.endswith(("/input", "/result"))]
    shots = [page.screenshot(out / "summary.png", "#summary")]

    t0 = time.perf_counter()
    page.eval("document.querySelector('#step-filter').value = 'charge:31'")
    page.eval("document.querySelector('#step-filter').dispatchEvent(new Event('input'))")
    filtered = page.eval("zart.timeline.state()")
    print(f"filter over 10,000 steps applied in {(time.perf_counter() - t0) * 1000:.0f} ms")
    assert filtered["groups"] == [{"key": "charge:{…}", "count": 111, "open": False}]
    page.eval("document.querySelector('#step-filter').value = ''")
    page.eval("document.querySelector('#step-filter').dispatchEvent(new Event('input'))")

    # Expand a group: its histogram and its 5,000 rows (drawn only where visible).
    page.eval("zart.timeline.toggle('charge:{…}')")
    expanded = page.eval("zart.timeline.state()")
    assert expanded["rows"] == 4 + 3 + 5000 and len(expanded["visible"]) < 60
    page.wait_for("zart.timeline.state().visible.includes('charge:0')")
    shots.append(page.screenshot(out / "timeline.png", "#timeline"))
    t0 = time.perf_counter()
    page.eval("document.querySelector('#rows').scrollTop = 60000")
    page.wait_for("!zart.timeline.state().visible.includes('charge:0')")
    print(f"scroll and redraw in {(time.perf_counter() - t0) * 1000:.0f} ms")

    page.click("#jump-failed")
    page.wait_for("document.querySelector('#panel .panel-title')?.textContent === 'charge:3137'")
    panel = page.wait_for(
        "document.querySelector('#panel').innerText.includes('traceback')"
        " && document.querySelector('#panel').innerText"
    )
    assert "card declined for order 3137" in panel, panel
    facts = dict(
        page.eval(
            "[...document.querySelectorAll('#panel dt')]"
            ".map(d => [d.textContent, d.nextElementSibling.textContent])"
        )
    )
    assert facts["attempts"] == "2" and facts["status"] == "failed", facts
    assert page.eval("zart.timeline.state().selected") == "charge:3137"
    shots.append(page.screenshot(out / "failed-step.png"))
    return shots


def test_web_view_at_scale(browser: str, tmp_path: Path) -> None:
    url = bulk_database(tmp_path)
    app = zart.Zart(url)
    try:
        with running_server(app) as base, Browser(browser, 1400, 1000) as chrome:
            with httpx.Client(base_url=base, timeout=30) as client:
                for path in ("/api/executions?limit=50", f"/api/executions?offset={EXECUTIONS}",
                             "/api/counts", "/api/executions/bulk-10k/timeline"):  # fmt: skip
                    print(f"GET {path}: {timed_get(client, path):.0f} ms")
            page = chrome.open(base + "/")
            check_list(page)
            assert page.problems() == []
            page = chrome.open(base + "/#/executions/bulk-10k")  # render time from navigation
            shots = check_timeline(page, tmp_path)
            assert page.problems() == []
    finally:
        app.close()
    keep(*shots)
