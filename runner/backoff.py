"""Backoff arithmetic: pure functions of their inputs, randomness injected.

Nothing here sleeps or reads a clock; callers pass the attempt number, the server's hints and a
``random`` callable, and get a number of seconds back. That keeps the retry policy testable
without time and deterministic under a seeded ``random.Random``.

* :func:`full_jitter` is "Full Jitter" from the AWS Architecture Blog ("Exponential Backoff and
  Jitter"), as botocore, Google api-core and Smithy waiters use it: a uniform draw from
  ``[0, min(cap, base * 2**(attempt - 1)))``.
* :func:`parse_retry_after` reads ``Retry-After`` (RFC 9110 §10.2.3): delay-seconds or an
  HTTP-date, the latter measured against the response's own ``Date`` so that a skewed local clock
  does not matter. Malformed values are ignored (``None``), as the IETF RateLimit draft requires.
* :class:`RetryBudget` is gRPC's retry throttling (proposal A6) as an immutable value: failures
  drain tokens, successes refill a fraction, and while the bucket is at or below half, retries
  stop. During an outage this turns N retry loops into one global pause.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = [
    "RetryBudget",
    "backoff_ceiling",
    "full_jitter",
    "parse_http_date",
    "parse_retry_after",
]

# RFC 9110 delay-seconds is 1*DIGIT; a fractional part is accepted as a lenient extension.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


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


def parse_retry_after(
    value: str | None, *, date_epoch: float | None, now_epoch: float | None = None
) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or ``None`` if unusable.

    ``value`` is delay-seconds (``"120"``) or an HTTP-date. A date is measured against
    ``date_epoch``, the response's own ``Date`` (server clock against server clock, immune to
    local clock skew); without it, against ``now_epoch`` (the local wall clock, a last resort);
    with neither, a date cannot be interpreted and ``None`` is returned. A date in the past means
    "retry now" (``0.0``). Missing, empty, negative, non-finite or unparsable values give ``None``.
    Huge values are returned as they are: capping them is the caller's decision (and must be
    reported).
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    target = parse_http_date(text)
    reference = date_epoch if date_epoch is not None else now_epoch
    if target is None or reference is None:
        return None
    return max(0.0, target - reference)


@functools.lru_cache(maxsize=8)  # every response has a Date, and it changes once a second
def parse_http_date(value: str | None) -> float | None:
    """Unix time of an HTTP-date (IMF-fixdate, RFC 850 or asctime), or ``None`` if malformed.

    A date without a zone is taken as GMT, as HTTP requires; the local time zone never applies.
    """
    if value is None or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        epoch = parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    return epoch if math.isfinite(epoch) else None


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
