"""Timestamps as the API writes them: ISO-8601 with milliseconds and ``Z``; HTTP dates."""

from __future__ import annotations

import time
from email.utils import formatdate
from functools import lru_cache


def iso(wall: float) -> str:
    """``2026-06-08T12:00:00.000Z`` for a unix time."""
    seconds = int(wall // 1)
    millis = min(999, round((wall - seconds) * 1000))
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@lru_cache(maxsize=64)
def http_date(seconds: int) -> str:
    """``Mon, 08 Jun 2026 12:00:00 GMT`` for a whole unix second."""
    return formatdate(seconds, usegmt=True)
