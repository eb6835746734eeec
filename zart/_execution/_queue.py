"""``zart.Queue``: flow control for submitted executions (concurrency and rate limits,
priorities, partitions), and the checks of what ``Zart.submit`` is given for it.

The limits are enforced by the database, in the claim of every worker
(``_store/_queues.py``); this module only defines and checks them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zart._errors import UsageError
from zart._store._queues import QueueLimits, SubmitOptions


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` executions started per ``per`` seconds (a trailing window)."""

    count: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"a rate limit's count must be a positive int, not {self.count!r}")
        if not _positive(self.per):
            raise ValueError(f"a rate limit's period must be positive seconds, not {self.per!r}")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def seconds(value: float | timedelta | None, what: str) -> float | None:
    """``value`` in seconds (a number or a timedelta), checked to be finite and >= 0."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what} must be seconds (a number) or a timedelta, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{what} must be finite and not negative, not {value!r}")
    return float(value)


def _limit(value: int | None, what: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{what} must be a positive int or None, not {value!r}")
    return value


_REGISTRY: dict[str, Queue] = {}
_LOCK = threading.Lock()


class Queue:
    """A named queue that submitted executions can be put in (``app.submit(fn, ...,
    queue=q)``), with limits that every worker of every process respects:

    * ``concurrency``: executions of the queue running at once, across all workers;
    * ``worker_concurrency``: the same, per worker process;
    * ``rate_limit``: executions *started* (first claim) per period: ``(10, 1.0)`` or
      ``RateLimit(10, per=1.0)`` is 10 per second, over a trailing window;
    * ``priority=True``: submits may carry ``priority=`` (an int, higher first; 0 by
      default) that orders the claims within the queue;
    * ``partition_key=True``: submits may carry ``partition=`` (e.g. a customer id);
      ``concurrency`` and ``rate_limit`` then apply per partition.

    Its definition is stored in the database by every process that submits to it or
    runs a worker with it defined (the last one stored wins): define it at import
    time, next to the durable functions, so that workers see it too.
    """

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: RateLimit | tuple[int, float] | None = None,
        priority: bool = False,
        partition_key: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ValueError(f"a queue name must be a non-empty str of at most 255, not {name!r}")
        self.name = name
        self.concurrency = _limit(concurrency, "concurrency")
        self.worker_concurrency = _limit(worker_concurrency, "worker_concurrency")
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            count, per = rate_limit
            rate_limit = RateLimit(count, float(per))
        self.rate_limit: RateLimit | None = rate_limit
        self.priority = bool(priority)
        self.partition_key = bool(partition_key)
        with _LOCK:
            _REGISTRY[name] = self

    @property
    def limits(self) -> QueueLimits:
        rate = self.rate_limit
        return QueueLimits(
            name=self.name,
            concurrency=self.concurrency,
            worker_concurrency=self.worker_concurrency,
            rate_count=rate.count if rate is not None else None,
            rate_per=rate.per if rate is not None else None,
            priority=self.priority,
            partitioned=self.partition_key,
        )

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"


def registered_queues() -> list[Queue]:
    """Every queue defined in this process (the last definition of each name)."""
    with _LOCK:
        return list(_REGISTRY.values())


def lookup_queue(queue: Queue | str) -> Queue:
    if isinstance(queue, Queue):
        return queue
    with _LOCK:
        found = _REGISTRY.get(queue) if isinstance(queue, str) else None
    if found is None:
        raise UsageError(f"no zart.Queue named {queue!r} is defined in this process")
    return found


def submit_options(
    *,
    queue: Queue | str | None,
    priority: int | None,
    partition: str | None,
    delay: float | timedelta | None,
    dedup_key: str | None,
    dedup_ttl: float | timedelta | None,
    debounce: tuple[str, float | timedelta] | None,
) -> tuple[Queue | None, SubmitOptions | None]:
    """The queue and the store's options for a submit; (None, None) when none is given."""
    if (queue, priority, partition, delay, dedup_key, dedup_ttl, debounce) == (None,) * 7:
        return None, None
    q = lookup_queue(queue) if queue is not None else None
    if priority is not None and (q is None or not q.priority):
        raise UsageError("priority= needs a queue defined with zart.Queue(..., priority=True)")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise UsageError(f"priority must be an int, not {priority!r}")
    if partition is not None and (q is None or not q.partition_key):
        raise UsageError(
            "partition= needs a queue defined with zart.Queue(..., partition_key=True)"
        )
    if partition is not None and (not isinstance(partition, str) or len(partition) > 255):
        raise UsageError(f"partition must be a str of at most 255 characters, not {partition!r}")
    for key, what in ((dedup_key, "dedup_key"), (debounce[0] if debounce else None, "debounce")):
        if key is not None and (not isinstance(key, str) or not key or len(key) > 512):
            raise UsageError(f"a {what} key must be a non-empty str of at most 512 characters")
    if dedup_ttl is not None and dedup_key is None:
        raise UsageError("dedup_ttl= needs a dedup_key=")
    if debounce is not None and (not isinstance(debounce, tuple) or len(debounce) != 2):
        raise UsageError("debounce must be a (key, window seconds) pair")
    options = SubmitOptions(
        queue=q.name if q is not None else None,
        priority=0 if priority is None and q is not None and q.priority else priority,
        partition_key=partition,
        delay=seconds(delay, "delay"),
        dedup_key=dedup_key,
        dedup_ttl=seconds(dedup_ttl, "dedup_ttl"),
        debounce_key=debounce[0] if debounce else None,
        debounce_window=seconds(debounce[1], "the debounce window") if debounce else None,
    )
    return q, options
