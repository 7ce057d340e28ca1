"""The server pushing back: the one place where a 429 or a 503 turns into a pause of the run.

``Retry-After`` on a 429 or a 503 overrides everything: every admission waits until it passes
(capped at ``max_pause``, the capped value recorded so that the operator is told). A 429 without
it pauses until the window's reset when the headers give it, else for a full-jitter backoff that
grows with consecutive throttles; a burst of 429s for requests already in flight counts once.
For a minute after any push-back the limiter withholds its headroom. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from runner.backoff import full_jitter
from runner.ratelimit.headers import RateLimitInfo

__all__ = ["PauseRecord", "PushBack"]

# Backoff for a 429 that says neither Retry-After nor when the window resets.
_THROTTLE_BASE: Final = 1.0
_THROTTLE_CAP: Final = 60.0
# How long the headroom stays withheld after a 429 or a 503.
_PUSHED_BACK_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class PauseRecord:
    """A global pause: why, for how long, and how long was asked for (more when capped)."""

    reason: str
    seconds: float
    requested: float
    at: float  # monotonic time the pause was decided

    @property
    def capped(self) -> bool:
        """Whether ``max_pause`` shortened the pause that was asked for."""
        return self.requested > self.seconds


class PushBack:
    """The run's global pause, and how each response's status and headers extend it.

    Pauses only ever extend: a shorter one than the current pause changes nothing. ``random``
    returns a float in ``[0, 1)`` and feeds the jitter of a bare 429's backoff.
    """

    __slots__ = (
        "_pushed_back_at",
        "_streak",
        "_streak_since",
        "capped_retry_afters",
        "max_pause",
        "pauses",
        "random",
        "throttled",
        "until",
    )

    def __init__(self, *, max_pause: float, random: Callable[[], float]) -> None:
        self.max_pause = max_pause
        self.random = random
        self.until = -math.inf  # monotonic time the current pause ends
        self.pauses: list[PauseRecord] = []
        self.capped_retry_afters: list[float] = []
        self.throttled = 0  # responses that were 429s
        self._pushed_back_at = -math.inf
        self._streak = 0  # consecutive throttles, for the backoff
        self._streak_since = -math.inf  # the last reaction to a 429: the burst it answered

    def respond(self, info: RateLimitInfo, *, sent_at: float, now: float) -> bool:
        """Act on a response to a request sent at ``sent_at``; whether ``Retry-After`` decided
        the pause (then the response's other headers have nothing to add)."""
        pushed_back = info.status in (429, 503)
        if pushed_back:
            self._pushed_back_at = now
        if pushed_back and info.retry_after is not None:
            if info.status == 429:
                self.throttled += 1
            reason = f"Retry-After on HTTP {info.status}"
            self.pause(info.retry_after, reason=reason, now=now, retry_after=True)
            return True
        if info.status == 429:
            self._throttled(info.reset_after, sent_at, now)
        elif info.status < 400 and sent_at > self._streak_since:
            self._streak = 0
        return False

    def pushed_back_recently(self, now: float) -> bool:
        """Whether a 429 or a 503 came within the last minute."""
        return now - self._pushed_back_at < _PUSHED_BACK_SECONDS

    def current(self, now: float) -> tuple[float, str] | None:
        """Seconds left in the pause and its reason, or None when not paused."""
        left = self.until - now
        if left <= 0 or not self.pauses:
            return None
        return left, self.pauses[-1].reason

    def pause(
        self, requested: float, *, reason: str, now: float, retry_after: bool = False
    ) -> None:
        """Hold every admission for ``requested`` seconds from ``now``, at most ``max_pause``;
        a capped ``Retry-After`` is recorded apart."""
        seconds = min(requested, self.max_pause)
        if retry_after and requested > self.max_pause:
            self.capped_retry_afters.append(requested)
        until = now + seconds
        if until <= self.until:
            return
        self.until = until
        self.pauses.append(PauseRecord(reason, seconds, requested, now))

    def _throttled(self, reset_after: float | None, sent_at: float, now: float) -> None:
        """A 429 without Retry-After: pause until the reset, else for a growing jittered backoff."""
        self.throttled += 1
        if sent_at <= self._streak_since:
            return  # sent before the last reaction: the same burst, already paid for
        self._streak_since = now
        self._streak += 1
        if reset_after is not None and reset_after > 0:
            self.pause(reset_after, reason="HTTP 429 until X-RateLimit-Reset", now=now)
            return
        seconds = full_jitter(
            self._streak, base=_THROTTLE_BASE, cap=_THROTTLE_CAP, random=self.random
        )
        self.pause(seconds, reason="HTTP 429 without Retry-After: backoff", now=now)
