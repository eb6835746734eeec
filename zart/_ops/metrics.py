"""Prometheus metrics in the text exposition format (0.0.4), computed from the database.

Every value is read from zart's tables at scrape time (a handful of aggregate
queries), so it is the same whichever server process is scraped and nothing is
lost when processes restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zart._ops._internals import ALL_STATUSES, STEP_COMPLETED, STEP_FAILED, STEP_RETRYING

if TYPE_CHECKING:
    from zart import Zart

# Step duration buckets, in seconds.
BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
STEP_STATUSES = (STEP_COMPLETED, STEP_FAILED, STEP_RETRYING)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _family(out: list[str], name: str, kind: str, help_: str) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {kind}")


def _step_lines(out: list[str], steps: dict[tuple[str, str], int]) -> None:
    _family(out, "zart_steps", "gauge", "Step checkpoints by kind and status.")
    for kind in sorted({k for k, _ in steps} | {"step"}):
        for status in sorted(set(STEP_STATUSES) | {st for k, st in steps if k == kind}):
            n = steps.get((kind, status), 0)
            out.append(f'zart_steps{{kind="{_label(kind)}",status="{_label(status)}"}} {n}')


def _histogram_lines(out: list[str], histogram: dict[str, tuple[int, float, list[int]]]) -> None:
    _family(
        out,
        "zart_step_duration_seconds",
        "histogram",
        "Duration of finished steps (first attempt start to finish, retries included).",
    )
    for kind in sorted(set(histogram) | {"step"}):
        count, total, cumulative = histogram.get(kind, (0, 0.0, [0] * len(BUCKETS)))
        k = _label(kind)
        for bound, n in zip(BUCKETS, cumulative, strict=True):
            out.append(f'zart_step_duration_seconds_bucket{{kind="{k}",le="{_num(bound)}"}} {n}')
        out.append(f'zart_step_duration_seconds_bucket{{kind="{k}",le="+Inf"}} {count}')
        out.append(f'zart_step_duration_seconds_sum{{kind="{k}"}} {_num(total)}')
        out.append(f'zart_step_duration_seconds_count{{kind="{k}"}} {count}')


def render_metrics(app: Zart) -> str:
    """The metrics page."""
    snap = app.ops_store.metrics_snapshot(BUCKETS)
    out: list[str] = []
    _family(out, "zart_executions", "gauge", "Executions by status.")
    for status in ALL_STATUSES:
        n = snap["executions"].get(status, 0)
        out.append(f'zart_executions{{status="{status}"}} {n}')
    _step_lines(out, snap["steps"])
    _histogram_lines(out, snap["histogram"])
    _family(
        out,
        "zart_queue_depth",
        "gauge",
        "Runnable executions not yet claimed: pending, due sleepers/waiters, expired leases.",
    )
    out.append(f"zart_queue_depth {snap['queue_depth']}")
    _family(
        out,
        "zart_executions_reclaimed",
        "gauge",
        "Executions claimed more than once (lease takeovers, crash recoveries, "
        "wake-ups after sleep/wait, admin retries).",
    )
    out.append(f"zart_executions_reclaimed {snap['resumed']}")
    _family(
        out,
        "zart_execution_reclaims",
        "gauge",
        "Claims beyond each execution's first, summed over all executions.",
    )
    out.append(f"zart_execution_reclaims {snap['extra_claims']}")
    _queue_lines(out, app.ops_store.queue_stats())
    return "\n".join(out) + "\n"


def _queue_lines(out: list[str], queues: list[dict[str, Any]]) -> None:
    """Per queue (zart.Queue): its depth (pending) and its running executions."""
    for name, key, help_ in (
        ("zart_queue_pending", "pending", "Pending executions of each queue (delayed included)."),
        ("zart_queue_running", "running", "Running executions of each queue."),
    ):
        _family(out, name, "gauge", help_)
        for queue in queues:
            out.append(f'{name}{{queue="{_label(queue["name"])}"}} {queue[key]}')
