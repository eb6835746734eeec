"""Retry policies for steps: how many attempts, how long between them, which errors."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zart._errors import StepError, UsageError


@dataclass(frozen=True)
class RetryPolicy:
    """When and how a failed step attempt is retried.

    ``max_attempts`` counts every attempt, the first included, so ``1`` means
    "never retry". Delays grow as ``initial_delay * backoff ** (attempt - 1)``,
    capped at ``max_delay``; with ``jitter`` each delay is drawn uniformly from
    [delay/2, delay] so that many executions failing together do not retry in
    lock-step. Only exceptions that are instances of ``retry_on`` are retried;
    a :class:`StepError` with ``retryable=False`` never is, nor a misuse of zart
    (a step awaited inside another step's body, for example).
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")
        if self.backoff < 1:
            raise ValueError(f"backoff must be >= 1, got {self.backoff}")

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether another attempt follows attempt number ``attempt`` (1-based) failing with exc."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(exc, StepError) and not exc.retryable:
            return False
        if isinstance(exc, UsageError):
            return False  # a programming error: another attempt would fail the same way
        return isinstance(exc, self.retry_on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` failed."""
        base = min(self.max_delay, self.initial_delay * self.backoff ** max(0, attempt - 1))
        if self.jitter:
            return random.uniform(base / 2, base)
        return base


DEFAULT_RETRY = RetryPolicy()
