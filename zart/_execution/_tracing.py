"""Optional OpenTelemetry spans: one per execution run, one per step attempt.

Off by default and free when off (the engine checks one attribute). Turn on with
``Zart(..., tracing=True)`` (global tracer provider) or ``tracing=<TracerProvider>``;
needs ``pip install 'zart[otel]'``. Replayed steps get no span of their own:
they are counted on the execution span (``zart.steps.replayed``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zart._errors import ZartError


class Tracing:
    def __init__(self, provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ZartError(
                "tracing needs OpenTelemetry: pip install 'zart[otel]' "
                "(opentelemetry-api, plus an SDK/exporter of your choice)"
            ) from None
        from zart._version import __version__

        self._trace = trace
        self._tracer = trace.get_tracer("zart", __version__, tracer_provider=provider)

    @contextmanager
    def execution(self, durable_name: str, execution_id: str, attempt: int) -> Iterator[Any]:
        with self._tracer.start_as_current_span(
            f"zart.execution {durable_name}",
            attributes={
                "zart.durable": durable_name,
                "zart.execution_id": execution_id,
                "zart.attempt": attempt,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    @contextmanager
    def step(self, name: str, execution_id: str, attempt: int) -> Iterator[Any]:
        with self._tracer.start_as_current_span(
            f"zart.step {name}",
            attributes={
                "zart.step": name,
                "zart.execution_id": execution_id,
                "zart.attempt": attempt,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                self.fail(span, exc)
                raise

    def fail(self, span: Any, exc: BaseException) -> None:
        span.record_exception(exc)
        span.set_status(
            self._trace.Status(self._trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        )
