"""Backoff arithmetic: pure functions of their inputs, randomness injected.

Nothing here sleeps or reads a clock; callers pass the attempt number and a ``random`` callable,
and get a number of seconds back. That keeps the retry policy testable without time and
deterministic under a seeded ``random.Random``.

* :func:`full_jitter` is "Full Jitter" from the AWS Architecture Blog ("Exponential Backoff and
  Jitter"), as botocore, Google api-core and Smithy waiters use it: a uniform draw from
  ``[0, min(cap, base * 2**(attempt - 1)))``.
* :class:`RetryBudget` is gRPC's retry throttling (proposal A6) as an immutable value: failures
  drain tokens, successes refill a fraction, and while the bucket is at or below half, retries
  stop. During an outage this turns N retry loops into one global pause.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

__all__ = [
    "RetryBudget",
    "backoff_ceiling",
    "full_jitter",
]


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The upper bound of the jitter range: ``min(cap, base * 2**(attempt - 1))``.

    Computed without overflow for any attempt number.
    """
    _check_backoff_args(attempt, base, cap)
    if base == 0.0 or cap == 0.0:
        return 0.0
    doublings = attempt - 1
    if doublings >= math.log2(cap) - math.log2(base):
        return cap
    return min(cap, math.ldexp(base, doublings))


def full_jitter(attempt: int, *, base: float, cap: float, random: Callable[[], float]) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    A uniform draw from ``[0, min(cap, base * 2**(attempt - 1)))``, where ``random()`` returns a
    float in ``[0, 1)`` (``random.Random(seed).random`` in tests).

    Raises:
        ValueError: ``attempt < 1``, or ``base``/``cap`` negative or not finite.
    """
    return random() * backoff_ceiling(attempt, base=base, cap=cap)


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """gRPC-style retry throttling (proposal A6) as an immutable token bucket.

    Each failed attempt costs one token and each success refunds ``token_ratio``; retries are
    allowed only while ``tokens > max_tokens / 2``. With the defaults, ten consecutive failures
    (say, an outage answering 503 to everything) exhaust the retry budget of the whole run: the
    engine then stops retrying per action and pauses globally, probing once per backoff period,
    until successes refill the bucket.

    Usage: ``budget = budget.on_failure()`` / ``budget = budget.on_success()``, then
    ``budget.allows_retry``.
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.1
    tokens: float | None = None  # None means full

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_tokens) and self.max_tokens > 0):
            raise ValueError(f"max_tokens must be positive and finite, got {self.max_tokens!r}")
        if not (math.isfinite(self.token_ratio) and self.token_ratio >= 0):
            raise ValueError(f"token_ratio must be >= 0 and finite, got {self.token_ratio!r}")
        if self.tokens is None:
            object.__setattr__(self, "tokens", self.max_tokens)

    @property
    def level(self) -> float:
        """Tokens currently in the bucket, between 0 and ``max_tokens``."""
        return self.max_tokens if self.tokens is None else self.tokens

    @property
    def allows_retry(self) -> bool:
        """Whether a retry may be sent now (the bucket is more than half full)."""
        return self.level > self.max_tokens / 2

    def on_failure(self) -> RetryBudget:
        """The budget after a retryable failure (one token spent, never below zero)."""
        return replace(self, tokens=max(0.0, self.level - 1.0))

    def on_success(self) -> RetryBudget:
        """The budget after a success (``token_ratio`` refunded, never above the maximum)."""
        return replace(self, tokens=min(self.max_tokens, self.level + self.token_ratio))


def _check_backoff_args(attempt: int, base: float, cap: float) -> None:
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt!r}")
    for name, number in (("base", base), ("cap", cap)):
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"{name} must be >= 0 and finite, got {number!r}")
