"""Backoff arithmetic: pure functions of their inputs, randomness injected.

Nothing here sleeps or reads a clock; callers pass the attempt number and a ``random`` callable,
and get a number of seconds back. That keeps the retry policy testable without time and
deterministic under a seeded ``random.Random``.

* :func:`full_jitter` is "Full Jitter" from the AWS Architecture Blog ("Exponential Backoff and
  Jitter"), as botocore, Google api-core and Smithy waiters use it: a uniform draw from
  ``[0, min(cap, base * 2**(attempt - 1)))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
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


def _check_backoff_args(attempt: int, base: float, cap: float) -> None:
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt!r}")
    for name, number in (("base", base), ("cap", cap)):
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"{name} must be >= 0 and finite, got {number!r}")
