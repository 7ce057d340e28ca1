"""What a response says about the rate limit: ``X-RateLimit-*``, ``Date`` and ``Retry-After``.

Pure parsing, no clock and no I/O, so that the API client can read the headers without the
limiter. A malformed value is ignored (``None``) rather than trusted or raised on, as the IETF
RateLimit draft requires. Times stay on the server's clock: a reset or an HTTP-date is measured
against the response's own ``Date``, never against the local wall clock.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["RateLimitInfo", "parse_http_date", "parse_rate_limit_headers", "parse_retry_after"]

_COUNT = re.compile(r"[0-9]+")
# A unix time, or RFC 9110 delay-seconds (1*DIGIT, with a fractional part accepted leniently).
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one response said about the rate limit; ``None`` where a field was absent or malformed.

    ``reset_epoch`` and ``date_epoch`` are unix times on the server's clock; ``retry_after`` is in
    seconds (an HTTP-date already converted against the response's ``Date``).
    """

    status: int
    limit: int | None = None
    remaining: int | None = None
    reset_epoch: float | None = None
    date_epoch: float | None = None
    retry_after: float | None = None

    @property
    def reset_after(self) -> float | None:
        """Seconds from the response to the reset, by the server's clock (``reset - Date``)."""
        if self.reset_epoch is None or self.date_epoch is None:
            return None
        return self.reset_epoch - self.date_epoch


def parse_rate_limit_headers(headers: Mapping[str, str], status: int) -> RateLimitInfo:
    """Read ``X-RateLimit-Limit/Remaining/Reset``, ``Date`` and ``Retry-After`` from a response.

    Header names are matched case-insensitively; a malformed value is ignored (``None``).
    ``X-RateLimit-Reset`` is a unix time, as the API documents.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    date_epoch = parse_http_date(lowered.get("date"))
    return RateLimitInfo(
        status=status,
        limit=_parse_count(lowered.get("x-ratelimit-limit")),
        remaining=_parse_count(lowered.get("x-ratelimit-remaining")),
        reset_epoch=_parse_epoch(lowered.get("x-ratelimit-reset")),
        date_epoch=date_epoch,
        retry_after=parse_retry_after(lowered.get("retry-after"), date_epoch=date_epoch),
    )


def parse_retry_after(
    value: str | None, *, date_epoch: float | None, now_epoch: float | None = None
) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or ``None`` if unusable.

    ``value`` is delay-seconds (``"120"``) or an HTTP-date (RFC 9110 §10.2.3). A date is measured
    against ``date_epoch``, the response's own ``Date`` (immune to local clock skew); without it,
    against ``now_epoch`` (the local wall clock, a last resort); with neither, ``None``. A date in
    the past means "retry now" (``0.0``). Huge values are returned as they are: capping them is
    the caller's decision (and must be reported).
    """
    if value is None:
        return None
    text = value.strip()
    if _DECIMAL.fullmatch(text):
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


def _parse_count(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    return int(text) if _COUNT.fullmatch(text) else None


def _parse_epoch(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if not _DECIMAL.fullmatch(text):
        return None
    epoch = float(text)
    return epoch if math.isfinite(epoch) else None
