"""An exact sliding log over several windows at once: pure, no clock, no I/O, no waiting.

For every window ``W`` with limit ``N`` and any instant ``t``, at most ``N`` admissions fall in
``[t, t + W)``. A request is admitted only if every window has room, and it takes a slot in every
window at once. When a window is full, the log knows the exact instant it opens again (its oldest
relevant entry plus ``W``), so a caller never polls and never leaves an idle gap.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["SlidingLog", "Window", "WindowLog", "clears_at"]


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` requests in any half-open interval ``[t, t + seconds)``."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"a window's limit must be an integer >= 1, got {self.limit!r}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"a window must last a positive, finite time, got {self.seconds!r}")


def clears_at(entries: deque[float], keep: int, seconds: float) -> float:
    """The instant at which at most ``keep`` of the sorted ``entries`` are still inside a window
    ``seconds`` long: ``-inf`` if they already are, ``inf`` if ``keep`` is negative."""
    if keep < 0:
        return math.inf
    over = len(entries) - keep
    return entries[over - 1] + seconds if over > 0 else -math.inf


class WindowLog:
    """One window's admissions still inside it: all of them, the polls among them, the others.

    ``held`` slots are kept for others sharing the budget (a neighbour seen in the headers); the
    rest, ``room``, are ours. Entries are purged as they leave, as of the last
    :meth:`SlidingLog.ready_at`.
    """

    __slots__ = ("admissions", "held", "others", "polls", "window")

    def __init__(self, window: Window, polls: Iterable[float], others: Iterable[float]) -> None:
        self.window = window
        self.held = 0
        self.polls = deque(polls)
        self.others = deque(others)
        self.admissions = deque(sorted([*self.polls, *self.others]))

    @property
    def room(self) -> int:
        """The window's limit less the slots held for others."""
        return self.window.limit - self.held

    def purge(self, seconds: float, now: float) -> None:
        """Drop the admissions that have left the window (``seconds`` long) by ``now``."""
        for entries in (self.admissions, self.polls, self.others):
            while entries and entries[0] + seconds <= now:
                entries.popleft()


class SlidingLog:
    """An exact sliding log over several windows, with polls logged apart from the others.

    Times passed in must never decrease from one call to the next (a monotonic clock). A request
    that is never sent hands its slots back (:meth:`refund`).
    """

    __slots__ = ("_logs", "_windows", "margin")

    def __init__(
        self, windows: Sequence[Window], history: Iterable[float] = (), polls: Iterable[float] = ()
    ) -> None:
        """Start with ``windows`` and, optionally, past admission times (``history``), of which
        ``polls`` were polls.

        Raises:
            ValueError: a time in ``polls`` is not in ``history``.
        """
        self._windows = tuple(windows)
        past_polls = sorted(polls)
        others = _without(sorted(history), past_polls)
        self._logs = tuple(WindowLog(window, past_polls, others) for window in self._windows)
        # Seconds added to every window: requests admitted W apart may *arrive* closer together
        # (one waited longer in our loop, on the wire or in the server's queue); a margin of the
        # longest recent round trip keeps them W apart at the server too.
        self.margin = 0.0

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows this log enforces."""
        return self._windows

    @property
    def window_logs(self) -> tuple[WindowLog, ...]:
        """Each window's own log, in the order of :attr:`windows`."""
        return self._logs

    def reserve(self, window: Window, slots: int) -> None:
        """Hold ``slots`` of ``window`` for others sharing the budget (at least one slot stays
        ours, so the log never blocks for good)."""
        log = self._logs[self._windows.index(window)]
        log.held = max(0, min(slots, window.limit - 1))

    def count(self, window: Window, now: float) -> int:
        """Admissions inside ``window`` at ``now``."""
        self.ready_at(now)
        return len(self._logs[self._windows.index(window)].admissions)

    def poll_count(self, window: Window, now: float) -> int:
        """Polls inside ``window`` at ``now``."""
        self.ready_at(now)
        return len(self._logs[self._windows.index(window)].polls)

    def entries(self) -> list[float]:
        """Every admission still inside the longest window (enough to rebuild any log)."""
        return list(self._longest().admissions) if self._logs else []

    def poll_entries(self) -> list[float]:
        """The polls among :meth:`entries`."""
        return list(self._longest().polls) if self._logs else []

    def _longest(self) -> WindowLog:
        return max(self._logs, key=lambda log: log.window.seconds)

    def ready_at(self, now: float) -> float:
        """The earliest instant, not before ``now``, at which every window has room."""
        ready = now
        for log in self._logs:
            seconds = log.window.seconds + self.margin
            admissions = log.admissions
            if admissions and admissions[0] + seconds <= now:
                log.purge(seconds, now)
            excess = len(admissions) - (log.window.limit - log.held)
            if excess >= 0:
                ready = max(ready, admissions[excess] + seconds)
        return ready

    def delay(self, now: float) -> float:
        """``0.0`` if every window has room at ``now``, else the seconds until all of them do."""
        return self.ready_at(now) - now

    def remaining(self) -> dict[int, int]:
        """Slots left per window limit, as of the last admission or ``ready_at``."""
        return {log.window.limit: log.window.limit - len(log.admissions) for log in self._logs}

    def allowance(self, now: float) -> int | None:
        """Requests every window would still admit at ``now`` (``None``: no windows, no bound)."""
        self.ready_at(now)
        return min((log.room - len(log.admissions) for log in self._logs), default=None)

    def admit(self, now: float, *, poll: bool = False) -> None:
        """Take a slot in every window at once (logged as a poll's when ``poll``).

        Raises:
            ValueError: some window has no room at ``now``, or ``now`` is before the last admission.
        """
        if self.ready_at(now) > now:
            raise ValueError(f"no room at {now!r}: every window must have room to admit")
        for log in self._logs:
            if log.admissions and log.admissions[-1] > now:
                raise ValueError(f"time went backwards: {now!r} is before {log.admissions[-1]!r}")
        for log in self._logs:
            log.admissions.append(now)
            (log.polls if poll else log.others).append(now)

    def refund(self, admitted_at: float, *, poll: bool = False) -> None:
        """Give back the slots of a request admitted at ``admitted_at`` that was never sent.

        A no-op in windows the admission has already left.
        """
        for log in self._logs:
            if _remove_latest(log.polls if poll else log.others, admitted_at):
                _remove_latest(log.admissions, admitted_at)


def _without(values: list[float], removed: list[float]) -> list[float]:
    """``values`` less one occurrence of each of ``removed`` (both sorted)."""
    kept: list[float] = []
    pending = deque(removed)
    for value in values:
        if pending and pending[0] == value:
            pending.popleft()
        else:
            kept.append(value)
    if pending:
        raise ValueError(f"polls must be among the admissions: {pending[0]!r} is not")
    return kept


def _remove_latest(log: deque[float], value: float) -> bool:
    """Remove one occurrence of ``value`` from a sorted deque, searching from the recent end;
    whether there was one."""
    for index in range(len(log) - 1, -1, -1):
        entry = log[index]
        if entry == value:
            del log[index]
            return True
        if entry < value:
            return False
    return False
