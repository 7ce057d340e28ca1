"""An exact sliding log over several windows at once: pure, no clock, no I/O, no waiting.

A request takes a slot in every window from its admission until one window after it *ends*:
the server counts it when it arrives, which is after its admission and before its answer, so
whatever the delays on the way, at most ``N`` requests of a window ``W`` with limit ``N`` can
arrive within any ``W`` seconds. While a request is in flight its slot has no end; when it ends
the slot is logged at that instant. A request is admitted only if every window has room, and it
takes a slot in every window at once. When a window is full, the log knows the exact instant it
opens again (its oldest relevant end plus ``W``, or the end of a request in flight), so a caller
never polls and never leaves an idle gap.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["IN_FLIGHT", "SlidingLog", "Window", "WindowLog", "clears_at"]

IN_FLIGHT: Final = math.inf
"""The time logged for a request still in flight: its slot leaves no window until it ends."""


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
    """One window's slots still taken: all of them, the polls among them, the others.

    Each slot is logged at the end of its request (:data:`IN_FLIGHT` until then), in order:
    requests end in the order of the clock, and the ones in flight sort last. ``held`` slots are
    kept for others sharing the budget (a neighbour seen in the headers); the rest, ``room``, are
    ours. Entries are purged as they leave, as of the last :meth:`SlidingLog.ready_at`.
    """

    __slots__ = ("admissions", "flying", "held", "others", "polls", "window")

    def __init__(self, window: Window, polls: Iterable[float], others: Iterable[float]) -> None:
        self.window = window
        self.held = 0
        self.polls = deque(polls)
        self.others = deque(others)
        self.admissions = deque(sorted([*self.polls, *self.others]))
        # Requests in flight, by `poll` (their entries are the last of each deque).
        self.flying = {True: self.polls.count(IN_FLIGHT), False: self.others.count(IN_FLIGHT)}

    @property
    def room(self) -> int:
        """The window's limit less the slots held for others."""
        return self.window.limit - self.held

    def purge(self, seconds: float, now: float) -> None:
        """Drop the slots that have left the window (``seconds`` long) by ``now``."""
        for entries in (self.admissions, self.polls, self.others):
            while entries and entries[0] + seconds <= now:
                entries.popleft()

    def admit(self, *, poll: bool) -> None:
        """Take a slot for a request now in flight."""
        self.admissions.append(IN_FLIGHT)
        (self.polls if poll else self.others).append(IN_FLIGHT)
        self.flying[poll] += 1

    def end(self, now: float, *, poll: bool) -> None:
        """A request in flight has ended at ``now``: its slot is logged there (after every slot
        logged so far, before those still in flight). A no-op with none of its kind in flight."""
        flying = self.flying
        if not flying[poll]:
            return
        # The first entry in flight takes `now`: the order stays sorted.
        self.admissions[len(self.admissions) - flying[True] - flying[False]] = now
        kind = self.polls if poll else self.others
        kind[len(kind) - flying[poll]] = now
        flying[poll] -= 1

    def refund(self, at: float, *, poll: bool) -> None:
        """Free the slot logged at ``at`` (:data:`IN_FLIGHT`: a request still in flight)."""
        if at == IN_FLIGHT:
            if self.flying[poll]:
                self.flying[poll] -= 1
                self.admissions.pop()
                (self.polls if poll else self.others).pop()
        elif _remove_latest(self.polls if poll else self.others, at):
            _remove_latest(self.admissions, at)


class SlidingLog:
    """An exact sliding log over several windows, with polls logged apart from the others.

    Times passed in must never decrease from one call to the next (a monotonic clock). Every
    admitted request is in flight until :meth:`end`; one never sent hands its slots back
    (:meth:`refund`).
    """

    __slots__ = ("_last", "_logs", "_windows")

    def __init__(
        self, windows: Sequence[Window], history: Iterable[float] = (), polls: Iterable[float] = ()
    ) -> None:
        """Start with ``windows`` and, optionally, the slots of past requests (``history``: end
        times, :data:`IN_FLIGHT` for those still in flight), of which ``polls`` were polls.

        Raises:
            ValueError: a time in ``polls`` is not in ``history``.
        """
        self._windows = tuple(windows)
        past_polls = sorted(polls)
        others = _without(sorted(history), past_polls)
        self._logs = tuple(WindowLog(window, past_polls, others) for window in self._windows)
        self._last = max((t for t in others + past_polls if t != IN_FLIGHT), default=-math.inf)

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
        """Slots of ``window`` taken at ``now`` (requests in flight, and ended inside it)."""
        self.ready_at(now)
        return len(self._logs[self._windows.index(window)].admissions)

    def poll_count(self, window: Window, now: float) -> int:
        """Slots of ``window`` taken by polls at ``now``."""
        self.ready_at(now)
        return len(self._logs[self._windows.index(window)].polls)

    def entries(self) -> list[float]:
        """Every slot still taken in the longest window (enough to rebuild any log)."""
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
            seconds = log.window.seconds
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
        """Slots left per window limit, as of the last admission, end or ``ready_at``."""
        return {log.window.limit: log.window.limit - len(log.admissions) for log in self._logs}

    def allowance(self, now: float) -> int | None:
        """Requests every window would still admit at ``now`` (``None``: no windows, no bound)."""
        self.ready_at(now)
        return min((log.room - len(log.admissions) for log in self._logs), default=None)

    def admit(self, now: float, *, poll: bool = False) -> None:
        """Take a slot in every window at once for a request sent now, in flight until
        :meth:`end` (logged as a poll's when ``poll``).

        Raises:
            ValueError: some window has no room at ``now``, or ``now`` is before the last time
                passed in.
        """
        if self.ready_at(now) > now:
            raise ValueError(f"no room at {now!r}: every window must have room to admit")
        self._advance(now)
        for log in self._logs:
            log.admit(poll=poll)

    def end(self, now: float, *, poll: bool = False) -> None:
        """A request in flight has ended at ``now`` (answered or not): its slots are logged
        there, and leave each window one window later. A no-op with none in flight.

        Raises:
            ValueError: ``now`` is before the last time passed in.
        """
        self._advance(now)
        for log in self._logs:
            log.end(now, poll=poll)

    def refund(self, at: float = IN_FLIGHT, *, poll: bool = False) -> None:
        """Give back the slots of a request that was never sent: one still in flight, or one
        that ended at ``at``. A no-op in windows the slot has already left."""
        for log in self._logs:
            log.refund(at, poll=poll)

    def _advance(self, now: float) -> None:
        if now < self._last:
            raise ValueError(f"time went backwards: {now!r} is before {self._last!r}")
        self._last = now


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
