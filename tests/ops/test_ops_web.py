"""The web view served at / by ``zart serve``, rendered by a real headless Chromium.

Chromium comes from scripts/ensure_browser.sh (Debian's ``chromium`` package);
a missing browser is a test failure, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import zart
from zart import TaskError

import ops_app
from ops_app import ops_engine, running_server

CHROMIUM = os.environ.get("ZART_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


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


def chromium(browser: str, tmp: Path, *args: str) -> str:
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return out.stdout


def test_web_view_lists_and_shows_a_timeline(
    engine: zart.Zart, browser: str, tmp_path: Path
) -> None:
    engine.run(ops_app.greet, "ana", execution_id="web-ok")
    ops_app.FAILING.add("ops-charge-1")
    with pytest.raises(TaskError):
        engine.run(ops_app.pipeline, 3, execution_id="web-bad")

    with running_server(engine) as url:
        listing = chromium(browser, tmp_path, "--dump-dom", url + "/")
        detail = chromium(browser, tmp_path, "--dump-dom", url + "/#/executions/web-bad")
        shot = tmp_path / "view.png"
        chromium(
            browser,
            tmp_path,
            f"--screenshot={shot}",
            "--window-size=1280,900",
            url + "/#/executions/web-bad",
        )

    # The list: both executions, each with its status; the failure's error on its row.
    assert 'data-loaded="true"' in listing, listing[-3000:]
    ok_row = re.search(r'<tr[^>]*data-id="web-ok"[^>]*data-status="completed".*?</tr>', listing)
    bad_row = re.search(r'<tr[^>]*data-id="web-bad"[^>]*data-status="failed".*?</tr>', listing)
    assert ok_row and bad_row, listing[-3000:]
    assert "ops-greet" in ok_row.group(0) and "ops-pipeline" in bad_row.group(0)
    assert "card declined for item 1" in bad_row.group(0)

    # The timeline of the failed execution: steps in order, statuses, attempts, error.
    steps = re.findall(
        r'<div class="step [a-z]+" data-step="([^"]+)" data-status="([a-z]+)"', detail
    )
    assert steps == [
        ("ops-load", "completed"),
        ("ops-charge-0", "completed"),
        ("ops-charge-1", "failed"),
    ], detail[-3000:]
    assert 'class="exec-title" data-id="web-bad" data-status="failed"' in detail
    assert "StepError: card declined for item 1" in detail
    assert "1 attempt" in detail and " ms</span>" in detail

    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("ZART_WEB_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
