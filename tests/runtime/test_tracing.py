"""OpenTelemetry spans: one per execution run and per step attempt; none for replayed steps."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import zart
from zart import RetryPolicy, durable, step


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


attempts_seen: list[int] = []


@step("trace-fetch")
async def fetch() -> list[int]:
    return [1, 2]


@step("trace-item-{i}", retry=RetryPolicy(max_attempts=2, initial_delay=0.001))
async def item(i: int) -> int:
    attempts_seen.append(i)
    if i == 1 and attempts_seen.count(1) == 1:
        raise ValueError("flaky")
    return i * 10


@durable("trace-flow")
async def flow() -> int:
    total = 0
    for i in await fetch():
        total += await item(i)
    return total


def test_spans_for_execution_and_each_step_attempt(
    db_url: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    attempts_seen.clear()
    with zart.Zart(db_url, tracing=provider) as app:
        assert app.run(flow, execution_id="t-1") == 30
        finished = exporter.get_finished_spans()
        names = [s.name for s in finished]
        assert names.count("zart.execution trace-flow") == 1
        # item-1 failed once and was retried: two attempt spans, the first an error.
        assert names.count("zart.step trace-item-1") == 2
        assert names.count("zart.step trace-item-2") == 1
        assert names.count("zart.step trace-fetch") == 1
        failed = next(s for s in finished if s.name == "zart.step trace-item-1")
        assert failed.status.status_code is StatusCode.ERROR
        assert failed.attributes is not None and failed.attributes["zart.attempt"] == 1
        root = next(s for s in finished if s.name.startswith("zart.execution"))
        step_span = next(s for s in finished if s.name == "zart.step trace-fetch")
        assert step_span.parent is not None and step_span.parent.span_id == root.context.span_id
        assert root.attributes is not None and root.attributes["zart.steps.executed"] == 3

        # A second run of a completed id runs nothing and so traces nothing new.
        exporter.clear()
        assert app.run(flow, execution_id="t-1") == 30
        assert exporter.get_finished_spans() == ()


def test_tracing_off_by_default(db_url: str) -> None:
    with zart.Zart(db_url) as app:
        assert app._tracing is None
