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
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = [
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


def _check_backoff_args(attempt: int, base: float, cap: float) -> None:
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt!r}")
    for name, number in (("base", base), ("cap", cap)):
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"{name} must be >= 0 and finite, got {number!r}")
