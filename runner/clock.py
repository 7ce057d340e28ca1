"""Time as an input: the runner never reads the clock or sleeps except through a Clock.

Production uses :class:`SystemClock`. Tests run the whole stack (runner and in-process sandbox)
under anyio's trio backend with ``trio.testing.MockClock(autojump_threshold=0)``: then
``anyio.current_time()`` and ``anyio.sleep`` are virtual, and :class:`LoopClock` derives a wall
clock from that virtual time, so hours of simulated traffic run in milliseconds.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic time for measuring, wall time for timestamps, and a sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (the event loop's clock)."""
        ...

    def wall(self) -> float:
        """Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop's clock."""
        ...


class SystemClock:
    """The real clocks: the event loop's monotonic time and the system's wall time."""

    def monotonic(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class LoopClock:
    """A wall clock derived from the event loop's clock: virtual under a mock clock.

    ``wall() == epoch + anyio.current_time()``. Two LoopClocks with different epochs model two
    machines whose wall clocks disagree (clock skew) while sharing one notion of elapsed time.
    """

    def __init__(self, epoch: float = 1_790_000_000.0) -> None:
        self.epoch = epoch

    def monotonic(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return self.epoch + anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
