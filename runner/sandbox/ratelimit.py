"""Multi-window rate limits per API key: an exact sliding log, and a checker for tests.

A request is admitted only if every window has room, and then it takes a slot in all of them.
Rejected requests (429) take no slot. A window of ``limit`` per ``seconds`` admits at most
``limit`` requests in any half-open interval of ``seconds``: the request at ``t`` counts the
admissions in ``(t - seconds, t]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Window:
    """At most ``limit`` admitted requests in any ``seconds``-long interval."""

    limit: int
    seconds: float

    def __str__(self) -> str:
        for name, size in (("h", 3600.0), ("min", 60.0)):
            if self.seconds % size == 0:
                count = self.seconds / size
                return f"{self.limit}/{'' if count == 1 else f'{count:g}'}{name}"
        return f"{self.limit}/{'' if self.seconds == 1 else f'{self.seconds:g}'}s"


_NAMED: dict[str, tuple[Window, ...]] = {
    "documented": (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0)),
    "v2": (Window(20, 1.0), Window(120, 60.0)),
    "enterprise": (Window(100, 1.0), Window(3000, 60.0), Window(100_000, 3600.0)),
    "off": (),
}


@dataclass(frozen=True)
class RateLimitPolicy:
    """The windows enforced per API key (simulated seconds, before ``time_scale``)."""

    windows: tuple[Window, ...] = _NAMED["documented"]
    name: str = "documented"

    @classmethod
    def named(cls, name: str) -> RateLimitPolicy:
        """One of ``documented`` (default), ``v2``, ``enterprise`` or ``off``."""
        if name not in _NAMED:
            raise ValueError(f"unknown rate-limit policy {name!r}; use one of {sorted(_NAMED)}")
        return cls(_NAMED[name], name)

    @classmethod
    def parse(cls, spec: str) -> RateLimitPolicy:
        """A name, or windows such as ``"5/s,100/min,1000/h"`` (also ``"20/10s"``)."""
        text = spec.strip().lower()
        if text in _NAMED:
            return cls.named(text)
        windows = tuple(_parse_window(part) for part in text.split(",") if part.strip())
        if not windows:
            raise ValueError(f"empty rate-limit spec {spec!r}")
        return cls(windows, ",".join(str(w) for w in windows))

    @property
    def off(self) -> bool:
        return not self.windows

    def scaled(self, time_scale: float) -> tuple[Window, ...]:
        """The windows in sandbox-clock seconds (simulated seconds divided by the time scale)."""
        return tuple(Window(w.limit, w.seconds / time_scale) for w in self.windows)


def _parse_window(text: str) -> Window:
    match = _WINDOW_RE.match(text)
    if match is None or match.group(3) not in _UNITS:
        raise ValueError(f"bad rate-limit window {text!r}; expected e.g. 10/s, 300/min, 1000/h")
    count = float(match.group(2)) if match.group(2) else 1.0
    limit = int(match.group(1))
    if limit < 1 or count <= 0:
        raise ValueError(f"bad rate-limit window {text!r}: limit and length must be positive")
    return Window(limit, count * _UNITS[match.group(3)])


@dataclass(frozen=True)
class Verdict:
    """The outcome of one admission check, with what the rate-limit headers should say."""

    admitted: bool
    limit: int
    remaining: int
    reset_in: float
    retry_after: float = 0.0


@dataclass
class _KeyLog:
    times: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)


class SlidingLog:
    """Exact sliding-log limiter over several windows, one log per API key."""

    def __init__(self, windows: Sequence[Window]) -> None:
        self._windows = tuple(windows)
        self._logs: dict[str, _KeyLog] = {}

    @property
    def windows(self) -> tuple[Window, ...]:
        return self._windows

    def set_windows(self, windows: Sequence[Window]) -> None:
        """Change the policy mid-run; past admissions keep counting against the new windows."""
        self._windows = tuple(windows)
        for log in self._logs.values():
            log.starts = [0] * len(self._windows)

    def arrivals(self) -> dict[str, list[float]]:
        """Every admitted request's sandbox-clock time, per key."""
        return {key: list(log.times) for key, log in self._logs.items()}

    def occupy(self, key: str, now: float, count: int, *, over: float = 60.0) -> None:
        """Take ``count`` slots as another, well-behaved client of the same key would have:
        spread evenly over the ``over`` seconds before ``now`` (so no shorter window is
        breached by the neighbour itself)."""
        log = self._log(key)
        step = over / count if count else 0.0
        past = [now - over + step * (i + 1) for i in range(count)]
        log.times = sorted([*log.times, *past])
        log.starts = [0] * len(self._windows)

    def admit(self, key: str, now: float) -> Verdict | None:
        """Admit (recording ``now``) or reject; None when no window is configured."""
        log = self._log(key)
        if not self._windows:
            log.times.append(now)
            return None
        counts = self._counts(log, now)
        full = [i for i, w in enumerate(self._windows) if counts[i] >= w.limit]
        if full:
            return self._rejection(log, now, counts, full)
        log.times.append(now)
        counts = [c + 1 for c in counts]
        return self._describe(log, now, counts, admitted=True)

    def peek(self, key: str, now: float) -> Verdict | None:
        """What the headers would say now, without admitting anything."""
        if not self._windows:
            return None
        log = self._log(key)
        return self._describe(log, now, self._counts(log, now), admitted=False)

    def _log(self, key: str) -> _KeyLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _KeyLog(starts=[0] * len(self._windows))
        return log

    def _counts(self, log: _KeyLog, now: float) -> list[int]:
        times, counts = log.times, []
        for i, window in enumerate(self._windows):
            start, horizon = log.starts[i], now - window.seconds
            while start < len(times) and times[start] <= horizon:
                start += 1
            log.starts[i] = start
            counts.append(len(times) - start)
        return counts

    def _frees_at(self, log: _KeyLog, index: int, count: int) -> float:
        """When window ``index`` next has a free slot (its oldest excess entry expires)."""
        window = self._windows[index]
        oldest = log.times[log.starts[index] + max(0, count - window.limit)]
        return oldest + window.seconds

    def _rejection(self, log: _KeyLog, now: float, counts: list[int], full: list[int]) -> Verdict:
        wait = max(self._frees_at(log, i, counts[i]) for i in full) - now
        verdict = self._describe(log, now, counts, admitted=False)
        return Verdict(
            admitted=False,
            limit=verdict.limit,
            remaining=0,
            reset_in=verdict.reset_in,
            retry_after=max(wait, 0.0),
        )

    def _describe(self, log: _KeyLog, now: float, counts: list[int], *, admitted: bool) -> Verdict:
        """The window closest to running out: the smallest share of its limit left (a minute
        with 49 of 300 left is closer than a second with 9 of 10); on a tie the latest reset."""
        best: tuple[float, float, int] | None = None
        for i, window in enumerate(self._windows):
            remaining = max(0, window.limit - counts[i])
            frees = self._frees_at(log, i, counts[i]) - now if counts[i] else 0.0
            candidate = (remaining / window.limit, -frees, i)
            if best is None or candidate < best:
                best = candidate
        assert best is not None
        _, neg_reset, index = best
        window = self._windows[index]
        remaining = max(0, window.limit - counts[index])
        return Verdict(admitted, window.limit, remaining, max(0.0, -neg_reset))


def max_in_window(times: Iterable[float], seconds: float) -> int:
    """The most entries of ``times`` in any half-open interval of length ``seconds``."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def window_violations(arrivals: dict[str, list[float]], windows: Sequence[Window]) -> list[str]:
    """Human-readable breaches of ``windows`` in an arrival log (empty when none)."""
    problems = []
    for key, times in arrivals.items():
        for window in windows:
            worst = max_in_window(times, window.seconds)
            if worst > window.limit:
                problems.append(f"{key}: {worst} requests in {window.seconds:g}s > {window.limit}")
    return problems


def ceil_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1 (a Retry-After never invites an early retry)."""
    return max(1, math.ceil(seconds))
