"""Helpers shared by the limiter tests: sliding counts, the ideal schedule, virtual-time runs."""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from runner.ratelimit import SlidingLog, Window
from trio.testing import MockClock

T = TypeVar("T")


def max_in_any_window(times: Sequence[float], seconds: float) -> int:
    """The most admissions in any half-open interval ``[t, t + seconds)``.

    The busiest interval can always be slid right until it starts at an admission, so checking
    the intervals that start at each admission is enough.
    """
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered)), default=0
    )


def violations(times: Sequence[float], windows: Sequence[Window]) -> list[Window]:
    """The windows whose limit the admission log exceeds somewhere."""
    return [w for w in windows if max_in_any_window(times, w.seconds) > w.limit]


def sent(log: SlidingLog, now: float, *, poll: bool = False) -> None:
    """Log a request admitted and answered at once, at ``now``."""
    log.admit(now, poll=poll)
    log.end(now, poll=poll)


def max_arrivals_in_any_window(spans: Sequence[tuple[float, float]], seconds: float) -> int:
    """The most requests that could reach the server within any ``seconds``-long interval, each
    arriving at any instant of its span ``(sent, ended)`` (``ended`` ``inf`` while in flight).

    Whatever the delays, the busiest interval can be slid until it ends at a request's sending
    ``a``: it then holds every request sent by ``a`` that ended after ``a - seconds``.
    """
    return max(
        (sum(1 for sent, ended in spans if sent <= a < ended + seconds) for a, _ in spans),
        default=0,
    )


def arrival_violations(
    spans: Sequence[tuple[float, float]], windows: Sequence[Window]
) -> list[Window]:
    """The windows whose limit some timing of the arrivals within ``spans`` would exceed."""
    return [w for w in windows if max_arrivals_in_any_window(spans, w.seconds) > w.limit]


def brute_force_ready_at(
    admissions: Sequence[float], windows: Sequence[Window], now: float
) -> float:
    """The first candidate instant (now, or an entry leaving a window) at which all have room."""
    candidates = sorted({now} | {a + w.seconds for a in admissions for w in windows} - {-1.0})
    for t in candidates:
        if t < now:
            continue
        if all(sum(1 for a in admissions if a + w.seconds > t) < w.limit for w in windows):
            return t
    raise AssertionError("unreachable: every entry eventually leaves every window")


def ideal_schedule(
    count: int, windows: Sequence[Window], start: float = 0.0, *, hold: float = 0.0
) -> list[float]:
    """The earliest admission times of ``count`` requests all waiting from ``start``, each
    ending ``hold`` seconds after it goes.

    Request k can go no earlier than the previous one, nor than ``W`` after request ``k - N``
    ended, for every window: greedy earliest admission is optimal for these constraints.
    """
    times: list[float] = []
    for k in range(count):
        earliest = times[-1] if times else start
        for w in windows:
            if k >= w.limit:
                earliest = max(earliest, times[k - w.limit] + hold + w.seconds)
        times.append(earliest)
    return times


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` on trio with a fresh mock clock: sleeps are instant, time starts at 0."""
    result: list[T] = []

    async def wrapper() -> None:
        result.append(await main())

    anyio.run(wrapper, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    return result[0]
