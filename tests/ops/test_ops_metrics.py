"""Prometheus metrics at /metrics (``zart serve --metrics``), computed from the database."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

import zart
from zart import TaskError

import ops_app
from ops_app import ops_engine, running_server

SAMPLE = re.compile(r'^([a-z_]+)(\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)\})? (-?[0-9.e+]+|\+Inf)$')


@pytest.fixture
def engine(db_url: str) -> Iterator[zart.Zart]:
    with ops_engine(db_url) as app:
        yield app


def parse(text: str) -> dict[str, float]:
    """Sample key (name + labels as written) -> value; checks every line's syntax."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not exposition format: {line!r}"
        name = match.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no # TYPE"
        samples[line.rsplit(" ", 1)[0]] = float(match.group(5))
    return samples


def test_metrics_reflect_the_database(engine: zart.Zart) -> None:
    engine.run(ops_app.greet, "a", execution_id="m1")
    engine.run(ops_app.pipeline, 2, execution_id="m2")
    ops_app.FAILING.add("ops-charge-0")
    with pytest.raises(TaskError):
        engine.run(ops_app.pipeline, 2, execution_id="m3")
    engine.submit(ops_app.greet, "q", execution_id="queued-1")
    engine.submit(ops_app.greet, "q", execution_id="queued-2")
    # An execution claimed twice (as after a lease takeover or a retry).
    engine.retry_step("m3")
    ops_app.FAILING.clear()
    engine.run(ops_app.pipeline, execution_id="m3")  # what a worker does: resume it

    with running_server(engine, metrics=True) as url:
        response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = parse(response.text)
    assert m['zart_executions{status="completed"}'] == 3
    assert m['zart_executions{status="pending"}'] == 2
    assert m['zart_executions{status="failed"}'] == 0
    assert m['zart_steps{kind="step",status="completed"}'] == 1 + 4 + 4
    assert m["zart_queue_depth"] == 2
    assert m["zart_executions_reclaimed"] == 1
    assert m["zart_execution_reclaims"] == 1

    buckets = [
        (k, v)
        for k, v in m.items()
        if k.startswith('zart_step_duration_seconds_bucket{kind="step"')
    ]
    values = [v for _, v in buckets]
    assert values == sorted(values), "buckets must be cumulative"
    count = m['zart_step_duration_seconds_count{kind="step"}']
    assert count == 9 and values[-1] == count and buckets[-1][0].endswith('le="+Inf"}')
    # The charge steps sleep 20 ms each: at least four steps are slower than 10 ms.
    assert m['zart_step_duration_seconds_bucket{kind="step",le="0.01"}'] <= count - 4
    assert m['zart_step_duration_seconds_sum{kind="step"}'] >= 0.08


def test_metrics_are_off_unless_enabled(sqlite_url: str) -> None:
    app = zart.Zart(sqlite_url)
    try:
        with running_server(app) as url:
            assert httpx.get(url + "/metrics").status_code == 404
    finally:
        app.close()
