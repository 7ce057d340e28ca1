"""Limits learned from ``X-RateLimit-*``: windows not told, caps until a reset, neighbours.

The server's word beats the local model, but only ever lowers the allowance. A limit we were not
told becomes a window as long as the longest ``Reset - Date`` seen; ``Remaining`` below the
local allowance becomes a cap until the server's reset; another client of the key seen in one
window holds the same share of every shorter one. Durations are measured server clock against
server clock and applied on the monotonic clock. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

from runner.ratelimit.sliding_log import Window

__all__ = [
    "Caps",
    "LearnedWindows",
    "cap_seconds",
    "neighbour_holds",
    "standard_length",
    "timing_slack",
    "window_with_limit",
]

# Learned windows: a reset further away than a day is not a window; a handful of limits at most.
_MAX_LEARNED_SECONDS: Final = 86_400.0
_MAX_LEARNED_WINDOWS: Final = 8
# A learned window's length is the longest reset - Date seen, which falls short of the window
# when its headers first show after the window began (another window was tighter until then):
# a minute's window seen a second late and taken as 59 s frees its slots a second early, and
# every request in flight at that moment is a 429. Windows are whole seconds, minutes, hours or
# days (the documented ones are), so a length within this share below one of them is taken as it.
_STANDARD_WINDOWS: Final = (1.0, 60.0, 3600.0, 86_400.0)
_STANDARD_SHARE: Final = 0.1
# A neighbour seen in the headers must use at least this many slots of the reported window...
_NEIGHBOUR_MIN: Final = 2
_NEIGHBOUR_SHARE: Final = 0.02  # ... and at least this share of it
# After the last cap expires, one probe request learns the new Remaining before the local model
# is trusted again: a sliding window's reset frees a slot, not the whole quota (IETF draft:
# "MUST NOT assume the whole quota comes back"). A probe whose answer never comes is retried.
PROBE_SECONDS: Final = 10.0
_PROBE: Final = -math.inf  # the probe's key among the caps, which are keyed by reset time


def standard_length(seconds: float) -> float:
    """``seconds``, or the standard window length it falls short of by less than a tenth."""
    for standard in _STANDARD_WINDOWS:
        if standard * (1.0 - _STANDARD_SHARE) <= seconds < standard:
            return standard
    return seconds


def window_with_limit(windows: Iterable[Window], limit: int | None) -> Window | None:
    """The first of ``windows`` whose limit is ``limit`` (the one a header names), if any."""
    return next((window for window in windows if window.limit == limit), None)


def timing_slack(limit: int | None, configured: Sequence[Window], permits: int) -> int:
    """How far the server's count of a window we were told may exceed our log's, by timing.

    The log counts admissions; the server counts arrivals. Requests admitted after one may
    arrive before it, and requests admitted before the log's window may arrive inside the
    server's: at most the permits held. A difference that small is not news (not a neighbour,
    not a cap). At most half the window, though: a server saying a small window is spent must
    still be heard when more permits are out than the window holds.
    """
    if limit is not None and window_with_limit(configured, limit) is not None:
        return min(permits, max(1, limit // 2))
    return 0


def neighbour_holds(
    reported: Window, windows: Iterable[Window], neighbour: int
) -> dict[Window, int]:
    """Slots of each window shorter than ``reported`` to hold for another client of the key that
    uses ``neighbour`` slots of ``reported``: the same share of each.

    The headers describe one window; a neighbour's traffic in the others (a second inside a busy
    minute) would otherwise only show as 429s. A handful of slots is the edge effect of clocks
    and requests in flight, not a neighbour: nothing is held for it.
    """
    if neighbour < max(_NEIGHBOUR_MIN, math.ceil(_NEIGHBOUR_SHARE * reported.limit)):
        neighbour = 0
    return {
        window: math.ceil(neighbour * window.seconds / reported.seconds)
        for window in windows
        if window.seconds < reported.seconds
    }


def cap_seconds(limit: int | None, windows: Sequence[Window], max_pause: float) -> float:
    """The longest a cap learned from the headers of window ``limit`` may hold.

    At most a pause's cap, or the longest window if longer. The reset comes in whole seconds
    rounded up (up to 2 s late against a ``Date`` also in whole seconds), so when the window the
    header names is known, its length bounds the cap: every slot the server counted in it is free
    again one window after the response.
    """
    horizon = max(max_pause, max((window.seconds for window in windows), default=0.0))
    named = window_with_limit(windows, limit)
    return horizon if named is None else min(named.seconds, horizon)


class LearnedWindows:
    """Windows we were not told: ``X-RateLimit-Limit`` per the longest ``Reset - Date`` seen."""

    __slots__ = ("_configured", "_lengths")

    def __init__(self, configured: Sequence[Window]) -> None:
        self._configured = tuple(configured)
        self._lengths: dict[int, float] = {}

    @property
    def windows(self) -> tuple[Window, ...]:
        """The learned windows by limit, each length rounded up to a standard one if just short."""
        return tuple(Window(n, standard_length(s)) for n, s in sorted(self._lengths.items()))

    def learn(self, limit: int | None, reset_after: float) -> bool:
        """Learn from one response's limit and ``Reset - Date``; whether the windows changed.

        A configured limit is no news; a reset more than a day away is not a window.
        """
        if limit is None or limit < 1 or window_with_limit(self._configured, limit) is not None:
            return False
        if not 0 < reset_after <= _MAX_LEARNED_SECONDS:
            return False
        known = self._lengths.get(limit)
        if known is not None and known >= reset_after:
            return False
        if known is None and len(self._lengths) >= _MAX_LEARNED_WINDOWS:
            return False
        self._lengths[limit] = reset_after
        return True


class _Cap:
    """An allowance that counts down for every admission numbered above ``after_seq``."""

    __slots__ = ("after_seq", "allowance", "expires_at")

    def __init__(self, allowance: int, expires_at: float, after_seq: int) -> None:
        self.allowance = allowance
        self.expires_at = expires_at
        self.after_seq = after_seq


class Caps:
    """Temporary allowances learned from ``X-RateLimit-Remaining``, each until its reset.

    Admissions are numbered (``seq``, from 1); a cap learned from the response to admission
    ``after_seq`` is spent by every later one, and given back by any of them never sent. When
    the last cap expires, a probe (a cap of one) holds the rest until an answer comes.
    """

    __slots__ = ("_caps", "learned")

    def __init__(self) -> None:
        self._caps: dict[float, _Cap] = {}
        self.learned = 0  # caps learned so far

    def __bool__(self) -> bool:
        return bool(self._caps)

    def probe(self, now: float, seq: int) -> None:
        """Admit one request after admission ``seq``, then nothing until an answer comes."""
        self._caps[_PROBE] = _Cap(1, now + PROBE_SECONDS, seq)

    def answered(self) -> None:
        """An answer came: it ends the probe, whose headers say what is left."""
        self._caps.pop(_PROBE, None)

    def probing(self, seq: int) -> bool:
        """Whether admission ``seq`` is the probe, still waiting for its answer."""
        probe = self._caps.get(_PROBE)
        return probe is not None and seq == probe.after_seq + 1

    def ready_at(self, now: float, seq: int) -> float:
        """When the caps allow the next admission (after admission ``seq``)."""
        expired = [key for key, cap in self._caps.items() if cap.expires_at <= now]
        for key in expired:
            del self._caps[key]
        if expired and not self._caps:
            self.probe(now, seq)
        exhausted = (cap.expires_at for cap in self._caps.values() if cap.allowance <= 0)
        return max(exhausted, default=-math.inf)

    def admitted(self) -> None:
        """One more admission: every cap has one less to give."""
        for cap in self._caps.values():
            cap.allowance -= 1

    def given_back(self, seq: int) -> None:
        """Admission ``seq`` was never sent: the caps learned before it get its slot back."""
        for cap in self._caps.values():
            if seq > cap.after_seq:
                cap.allowance += 1

    def tighten(self, reset: float, allowance: int, expires_at: float, after_seq: int) -> bool:
        """Lower and extend the cap until ``reset`` if there is one; whether there was."""
        cap = self._caps.get(reset)
        if cap is None:
            return False
        if allowance < cap.allowance:
            cap.allowance, cap.after_seq = allowance, after_seq
        cap.expires_at = max(cap.expires_at, expires_at)
        return True

    def add(self, reset: float, allowance: int, expires_at: float, after_seq: int) -> None:
        """Cap admissions after ``after_seq`` at ``allowance`` until ``expires_at``."""
        self._caps[reset] = _Cap(allowance, expires_at, after_seq)
        self.learned += 1
