"""One request budget for the whole run: every window at once, learned from the server, prioritised.

The model
=========

**Sliding log, conjunctive and atomic.** The documented limits are several windows at once (for
example 10 per second, 300 per minute and 10,000 per hour). :class:`SlidingLog` keeps, per window,
the exact times of the admissions that are still inside it (a deque; expired entries are purged from
the left, amortised O(1)). A request is admitted at ``now`` only if *every* window has room, and it
then takes a slot in *every* window at once. The guarantee is exact: for every window ``W`` with
limit ``N`` and any instant ``t``, at most ``N`` admissions fall in ``[t, t + W)``. A leaky bucket
configured to "N per W" does not give it: it admits a full burst plus a steady drip, ``2N - 1`` in
the first window (aiolimiter measurably does), which a server counting a sliding N per W rejects.
When a window is full, the log knows the exact instant it opens again (the oldest relevant entry
plus ``W``), so waiting never polls and never leaves an idle gap. A request that is never sent
hands its slots back (:meth:`Permit.refund`).

**The server's word beats the model.** Every response goes through :meth:`RateLimiter.observe`
(or :meth:`Permit.observe`), in this order of authority:

1. ``Retry-After`` on a 429 or 503 overrides everything: a global pause until ``now + value``.
   A huge value is capped at ``max_pause`` and the capped value is recorded in :attr:`stats`, so
   the operator is told instead of the run sleeping for a day.
2. ``X-RateLimit-Remaining`` below the local model's own allowance becomes a temporary cap, until
   ``X-RateLimit-Reset``. The reset is a unix time on the *server's* clock, so the cap's duration
   is ``reset - Date`` (server clock against server clock) and is applied on our monotonic clock;
   the local wall clock, which may be minutes off, is never consulted. Requests admitted after the
   observed one was sent are already in flight and will spend part of ``remaining``, so they are
   subtracted from it. Caps only ever lower the allowance: the configured windows are never raised.
   For a window we were told, a server count up to ``concurrency`` above the log's is timing
   (the server counts arrivals, the log admissions, and requests overtake each other in
   flight), not news: no cap, no neighbour (see ``_timing_slack``).
3. A 429 without ``Retry-After`` pauses until the reset when it is known, else for a full-jitter
   backoff that grows with consecutive throttles (a burst of 429s for requests that were already in
   flight counts once).
4. With no configured windows (limits unknown), each ``X-RateLimit-Limit`` seen with a reset becomes
   a learned window whose length is the longest ``reset - Date`` observed, so that 429s stay rare.

**Priorities and reserves.** Waiters queue per :class:`RequestKind`, FIFO within a kind.
``URGENT`` (retries of safe failures, reconciliation reads) always goes first. Between polls and
triggers the rule is that following jobs notices completions soon after they happen (issue 6)
and that neither kind ever starves the other. Per window, with ``room`` its limit less what is
held for a neighbour:

* ``T = ceil(trigger_reserve * room)`` slots are the triggers' (default 20 %), and
* ``R = floor(poll_reserve * room)`` slots are the polls' (default 20 %; never the last slot,
  never into ``T``); the polls' *budget* is ``P = room - T``.

1. *Polls go first within their budget.* When both kinds wait, a poll goes ahead of the triggers
   while every window holds fewer than ``P`` polls; beyond that, triggers go first.
2. *Triggers leave the poll reserve free.* While polling is active in a window (a poll admitted
   within the window's span, or a poll waiting), a trigger needs room in the window *and* must
   leave ``min(R, P - polls)`` slots free: it may fill the window up to ``room - R``, or with up
   to ``room - P`` admissions other than polls. So a poll that falls due finds a slot at once
   even in the middle of a trigger phase, and triggers lose nothing to the reserve once the
   polls have used their budget. With no poll waiting, the reserve lifts as the window's last
   poll leaves it (the waiting triggers are woken for that instant).
3. *A kind that waits alone takes everything it may*: polls the whole window, triggers all but
   the poll reserve while polling is active. Runs that never poll (``--no-wait``) never pay for
   the reserve.

Why: under the documented limits (10/s, 300/min), a trigger phase fills each minute in 30 s at
10/s; with polls behind triggers, a due poll found no slot for the next 30 s and completions were
seen 40 % to 90 % of a job's duration late. So while both kinds saturate, polls get ``P`` of every
window (``room - T``) and triggers ``T``; when polls need less, triggers get the rest but ``R``.

With no windows (limits unknown and not yet learned), or a window too small for a budget
(``P = 0``, as with a limit of 1), a credit counter over exact integers decides instead: polls
get ``poll_share`` of the contested admissions (within one) and triggers the rest; after a run of
triggers with no poll waiting, the next poll to arrive goes ahead of the queued triggers (the
credit holds one poll's worth, never a burst). ``poll_reserve=0`` turns the reserve off;
``trigger_reserve=0`` gives strict URGENT > POLL > TRIGGER within the windows.

**Concurrency and waiting.** At most ``concurrency`` permits are held at once. Admission happens in
one synchronous step (``_dispatch``) run whenever something changes: a request arrives, a permit is
released or refunded, a waiter leaves, or a deadline passes. Exactly one waiter at a time holds the
*timer*: it sleeps (through the injected :class:`~runner.clock.Clock`) until the instant the
windows, caps and pause allow the next admission, then dispatches. Waiters are woken by cancelling
their own cancel scope; no task is spawned, no thread is used. Cancelling a waiter leaves no trace:
a queued waiter is dropped, and one granted a permit it never received gives the slot straight back.

**Global pause.** :meth:`RateLimiter.pause` (used by ``observe`` and by the engine's outage circuit
breaker) holds every admission, whatever its kind, until the pause ends; it only ever extends.

**Cost.** With no windows, caps or pause, and nobody waiting, ``acquire`` is O(1): a few attribute
checks, one allocation (the :class:`Permit`) and two checkpoints.
"""

# Permit is RateLimiter's waiter record: the two share private state within this module.
# ruff: noqa: SLF001

from __future__ import annotations

import math
import random as _random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from types import MappingProxyType, TracebackType
from typing import Final, Self

import anyio
from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from runner.backoff import full_jitter, parse_http_date, parse_retry_after
from runner.clock import Clock

__all__ = [
    "LimiterStats",
    "PauseRecord",
    "Permit",
    "RateLimitInfo",
    "RateLimiter",
    "RequestKind",
    "SlidingLog",
    "Window",
    "parse_rate_limit_headers",
]

# Admission times kept to count requests sent after an observed one (in-flight accounting).
_RECENT_HORIZON: Final = 60.0
# Backoff for a 429 that says neither Retry-After nor when the window resets.
_THROTTLE_BASE: Final = 1.0
_THROTTLE_CAP: Final = 60.0
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
# When a learned cap expires, one probe request learns the new Remaining before the local model
# is trusted again: a sliding window's reset frees a slot, not the whole quota (IETF draft:
# "MUST NOT assume the whole quota comes back"). A probe whose answer never comes is retried.
_PROBE: Final = -math.inf
_PROBE_SECONDS: Final = 10.0
# A neighbour seen in the headers must use at least this many slots of the reported window.
_NEIGHBOUR_MIN: Final = 2
_NEIGHBOUR_SHARE: Final = 0.02  # ... and at least this share of it
_POLL_SHARE_DENOMINATOR: Final = 1000
# Latency margin: the longest of the last round trips, at most this share of the shortest window.
_ROUND_TRIPS_KEPT: Final = 64
_MAX_MARGIN_SHARE: Final = 0.25

_COUNT = re.compile(r"[0-9]+")
_EPOCH = re.compile(r"[0-9]+(?:\.[0-9]+)?")

# Permit life cycle.
_NEW: Final = 0
_WAITING: Final = 1
_ADMITTED: Final = 2
_RELEASED: Final = 3
_CANCELLED: Final = 4


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


class RequestKind(IntEnum):
    """What a request is for, which decides its place in the queue."""

    URGENT = 0
    """Retries of safe failures and reconciliation reads: ahead of everything."""
    POLL = 1
    """Status polls: behind urgent work, ahead of triggers within their budget."""
    TRIGGER = 2
    """First attempts of triggers: the point of the run, and the bulk of it."""


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


def _standard_length(seconds: float) -> float:
    """``seconds``, or the standard window length it falls short of by less than a tenth."""
    for standard in _STANDARD_WINDOWS:
        if standard * (1.0 - _STANDARD_SHARE) <= seconds < standard:
            return standard
    return seconds


def parse_rate_limit_headers(headers: Mapping[str, str], status: int) -> RateLimitInfo:
    """Read ``X-RateLimit-Limit/Remaining/Reset``, ``Date`` and ``Retry-After`` from a response.

    Header names are matched case-insensitively; a malformed value is ignored (``None``) rather
    than trusted or raised on. ``X-RateLimit-Reset`` is a unix time, as the API documents.
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


def _parse_count(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    return int(text) if _COUNT.fullmatch(text) else None


def _parse_epoch(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if not _EPOCH.fullmatch(text):
        return None
    epoch = float(text)
    return epoch if math.isfinite(epoch) else None


class SlidingLog:
    """An exact sliding log over several windows. Pure: no clock, no I/O, no waiting.

    Polls are logged apart from the other admissions, so that a trigger can be kept out of the
    slots of each window set aside for polls (:meth:`set_poll_priority`, :meth:`trigger_ready_at`).
    Times passed in must never decrease from one call to the next (a monotonic clock).
    """

    __slots__ = (
        "_logs",
        "_others",
        "_poll_reserve",
        "_polls",
        "_reserved",
        "_trigger_reserve",
        "_windows",
        "margin",
    )

    def __init__(
        self, windows: Sequence[Window], history: Iterable[float] = (), polls: Iterable[float] = ()
    ) -> None:
        """Start with ``windows`` and, optionally, past admission times (``history``), of which
        ``polls`` were polls.

        Raises:
            ValueError: a time in ``polls`` is not in ``history``.
        """
        self._windows = tuple(windows)
        past, past_polls = sorted(history), sorted(polls)
        others = _without(past, past_polls)
        self._logs = tuple(deque(past) for _ in self._windows)
        self._polls = tuple(deque(past_polls) for _ in self._windows)
        self._others = tuple(deque(others) for _ in self._windows)
        self._reserved = [0] * len(self._windows)
        self._poll_reserve = self._trigger_reserve = Fraction(0)
        # Seconds added to every window: requests admitted W apart may *arrive* closer together
        # (one waited longer in our loop, on the wire or in the server's queue); a margin of the
        # longest recent round trip keeps them W apart at the server too.
        self.margin = 0.0

    def reserve(self, window: Window, slots: int) -> None:
        """Hold ``slots`` of ``window`` for others sharing the budget (at least one slot stays
        ours, so the log never blocks for good)."""
        index = self._windows.index(window)
        self._reserved[index] = max(0, min(slots, window.limit - 1))

    def set_poll_priority(self, poll_reserve: Fraction, trigger_reserve: Fraction) -> None:
        """Set the shares of every window kept for polls and for triggers (see
        :meth:`poll_slots`)."""
        for share in (poll_reserve, trigger_reserve):
            if not 0 <= share <= 1:
                raise ValueError(f"a reserve is a share between 0 and 1, got {share!r}")
        self._poll_reserve, self._trigger_reserve = poll_reserve, trigger_reserve

    def poll_slots(self, window: Window) -> tuple[int, int]:
        """The polls' reserve ``R`` in ``window`` and their budget ``P``.

        Of the window's ``room`` (its limit, less what is held for a neighbour), triggers keep
        ``T = ceil(trigger_reserve * room)`` and polls ``R = floor(poll_reserve * room)``, never
        the last slot and never into ``T``; ``P = room - T``. While polling is active, triggers
        leave ``min(R, P - polls)`` slots free; polls go ahead of triggers while fewer than
        ``P``.
        """
        return self._poll_slots(self._windows.index(window))

    def _poll_slots(self, index: int) -> tuple[int, int]:
        room = self._windows[index].limit - self._reserved[index]
        polls, triggers = self._poll_reserve, self._trigger_reserve
        reserve = max(0, min(room * polls.numerator // polls.denominator, room - 1))
        kept = min(-(-room * triggers.numerator // triggers.denominator), room - reserve)  # ceil
        return reserve, room - kept

    def count(self, window: Window, now: float) -> int:
        """Admissions inside ``window`` at ``now``."""
        self.ready_at(now)
        return len(self._logs[self._windows.index(window)])

    def poll_count(self, window: Window, now: float) -> int:
        """Polls inside ``window`` at ``now``."""
        self.ready_at(now)
        return len(self._polls[self._windows.index(window)])

    def entries(self) -> list[float]:
        """Every admission still inside the longest window (enough to rebuild any log)."""
        return list(self._logs[self._longest()]) if self._windows else []

    def poll_entries(self) -> list[float]:
        """The polls among :meth:`entries`."""
        return list(self._polls[self._longest()]) if self._windows else []

    def _longest(self) -> int:
        return max(range(len(self._windows)), key=lambda i: self._windows[i].seconds)

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows this log enforces."""
        return self._windows

    def ready_at(self, now: float) -> float:
        """The earliest instant, not before ``now``, at which every window has room."""
        ready = now
        for index, window in enumerate(self._windows):
            seconds = window.seconds + self.margin
            log = self._logs[index]
            if log and log[0] + seconds <= now:
                self._purge(index, seconds, now)
            excess = len(log) - (window.limit - self._reserved[index])
            if excess >= 0:
                ready = max(ready, log[excess] + seconds)
        return ready

    def trigger_ready_at(self, now: float, *, polls_waiting: bool) -> float:
        """When a trigger may go: every window has room, and no window where polling is active
        (a poll inside it, or ``polls_waiting``) loses its poll reserve to it.

        In such a window a trigger leaves ``min(R, P - polls)`` slots free (see
        :meth:`poll_slots`): ``R`` while the polls are well within their budget, none once they
        have used it up. That is: room, and either fewer than ``room - R`` admissions or fewer
        than ``room - P`` other than polls. With no poll waiting, the reserve lifts when the
        window's last poll leaves it.
        """
        ready = self.ready_at(now)
        for index, window in enumerate(self._windows):
            polls = self._polls[index]
            if not (polls or polls_waiting):
                continue
            reserve, budget = self._poll_slots(index)
            room = window.limit - self._reserved[index]
            log, others = self._logs[index], self._others[index]
            crowded = len(log) - (room - reserve)
            if reserve == 0 or crowded < 0:
                continue
            seconds = window.seconds + self.margin
            others_over = len(others) - (room - budget)
            if others_over < 0:
                within_others = now
            elif others_over < len(others):
                within_others = others[others_over] + seconds
            else:  # the polls' budget is the whole window: the reserve never lifts for others
                within_others = math.inf
            lifted = math.inf if polls_waiting else polls[-1] + seconds
            ready = max(ready, min(log[crowded] + seconds, within_others, lifted))
        return ready

    def poll_budget_applies(self) -> bool:
        """Whether every window gives polls a budget of one slot at least (not so with no
        windows, or a window whose every slot the triggers' reserve takes, as a limit of 1)."""
        return bool(self._windows) and all(
            self._poll_slots(index)[1] >= 1 for index in range(len(self._windows))
        )

    def polls_within_budget(self, now: float) -> bool:
        """Whether every window holds fewer polls than its budget ``P`` at ``now``."""
        self.ready_at(now)
        return all(
            len(self._polls[index]) < self._poll_slots(index)[1]
            for index in range(len(self._windows))
        )

    def _purge(self, index: int, seconds: float, now: float) -> None:
        """Drop the admissions that have left window ``index`` (``seconds`` long) by ``now``."""
        for entries in (self._logs[index], self._polls[index], self._others[index]):
            while entries and entries[0] + seconds <= now:
                entries.popleft()

    def remaining(self) -> dict[int, int]:
        """Slots left per window limit, as of the last admission or ``ready_at``."""
        pairs = zip(self._windows, self._logs, strict=True)
        return {window.limit: window.limit - len(log) for window, log in pairs}

    def delay(self, now: float) -> float:
        """``0.0`` if every window has room at ``now``, else the seconds until all of them do."""
        return self.ready_at(now) - now

    def allowance(self, now: float) -> int | None:
        """Requests every window would still admit at ``now`` (``None``: no windows, no bound)."""
        self.ready_at(now)
        counts = (
            w.limit - held - len(log)
            for w, log, held in zip(self._windows, self._logs, self._reserved, strict=True)
        )
        return min(counts, default=None)

    def admit(self, now: float, *, poll: bool = False) -> None:
        """Take a slot in every window at once (logged as a poll's when ``poll``).

        Raises:
            ValueError: some window has no room at ``now``, or ``now`` is before the last admission.
        """
        if self.ready_at(now) > now:
            raise ValueError(f"no room at {now!r}: every window must have room to admit")
        for log in self._logs:
            if log and log[-1] > now:
                raise ValueError(f"time went backwards: {now!r} is before {log[-1]!r}")
        for log, kind_log in zip(self._logs, self._polls if poll else self._others, strict=True):
            log.append(now)
            kind_log.append(now)

    def refund(self, admitted_at: float, *, poll: bool = False) -> None:
        """Give back the slots of a request admitted at ``admitted_at`` that was never sent.

        A no-op in windows the admission has already left.
        """
        kind_logs = self._polls if poll else self._others
        for log, kind_log in zip(self._logs, kind_logs, strict=True):
            if _remove_latest(kind_log, admitted_at):
                _remove_latest(log, admitted_at)


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


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of what the limiter did, for the report and the operator."""

    admitted: Mapping[RequestKind, int]
    refunded: Mapping[RequestKind, int]
    total_wait: float
    throttled: int
    pauses: tuple[PauseRecord, ...]
    capped_retry_afters: tuple[float, ...]
    learned_caps: int
    learned_windows: tuple[Window, ...]
    in_flight: int
    waiting: int


class _Cap:
    """A temporary allowance learned from ``X-RateLimit-Remaining``, until the server's reset.

    ``allowance`` counts down for every admission with a sequence number above ``after_seq``.
    """

    __slots__ = ("after_seq", "allowance", "expires_at")

    def __init__(self, allowance: int, expires_at: float, after_seq: int) -> None:
        self.allowance = allowance
        self.expires_at = expires_at
        self.after_seq = after_seq


class Permit:
    """The right to send one request; an async context manager from :meth:`RateLimiter.acquire`.

    Entering waits for admission; leaving frees the concurrency slot (the window slots stay taken,
    because the request was sent). If the request turns out never to have been sent, call
    :meth:`refund` (inside or after the ``async with``).
    """

    __slots__ = (
        "_admitted_at",
        "_enqueued_at",
        "_limiter",
        "_refunded",
        "_scope",
        "_seq",
        "_state",
        "kind",
    )

    def __init__(self, limiter: RateLimiter, kind: RequestKind) -> None:
        self.kind: Final = kind
        self._limiter = limiter
        self._state = _NEW
        self._admitted_at = math.nan
        self._enqueued_at = math.nan
        self._seq = 0
        self._refunded = False
        self._scope: anyio.CancelScope | None = None

    @property
    def admitted_at(self) -> float:
        """Monotonic time of admission: the ``sent_at`` to pass to :meth:`RateLimiter.observe`."""
        if self._state in (_NEW, _WAITING, _CANCELLED):
            raise RuntimeError("this permit has not been admitted")
        return self._admitted_at

    async def __aenter__(self) -> Self:
        """Wait for admission. Cancellation while waiting leaves no trace."""
        await self._limiter._enter(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Free the concurrency slot and let the next waiter in."""
        self._limiter._release(self)

    def refund(self) -> None:
        """The request was never sent: hand back its window slots (idempotent)."""
        self._limiter._refund(self)

    def observe(self, info: RateLimitInfo) -> None:
        """Learn from this request's response; exact in-flight accounting (preferred to
        ``RateLimiter.observe``, which has to match admissions by time)."""
        self._limiter._observe_permit(self, info)

    def _wake(self) -> None:
        """Wake the task waiting on this permit so that it re-examines the limiter."""
        if self._scope is not None:
            self._scope.cancel()


class RateLimiter:
    """Multi-window, header-adaptive, prioritised admission control for one run's requests.

    See the module docstring for the model. Use::

        async with limiter.acquire(RequestKind.TRIGGER) as permit:
            response = await client.post(...)
            permit.observe(parse_rate_limit_headers(response.headers, response.status_code))
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings, each named at the call site
        self,
        windows: Sequence[Window],
        *,
        clock: Clock,
        concurrency: int,
        headroom: int = 0,
        poll_share: float = 0.2,
        poll_reserve: float = 0.2,
        trigger_reserve: float = 0.2,
        max_pause: float = 300.0,
        random: Callable[[], float] | None = None,
        probe_first: bool = False,
    ) -> None:
        """Enforce ``windows`` (empty: limits unknown, learned from headers) with at most
        ``concurrency`` requests in flight. ``random`` feeds the jitter of 429 backoffs.

        ``headroom``: permits beyond ``concurrency`` for requests that prepare something
        between their admission and the wire (the engine makes each trigger's intent durable
        there). The limiter then admits up to ``concurrency + headroom`` at once and the caller
        holds the wire to ``concurrency`` (:class:`runner.engine.Gateway` does); a request
        waiting on its disk then no longer keeps another from the network.

        ``probe_first``: a slow start. Admit one request and wait for its answer before the
        next ones, so that the server's headers (a neighbour already using part of the key's
        budget) are known before a burst goes out; it costs one round trip per run.

        ``poll_reserve``, ``trigger_reserve`` and ``poll_share`` set the priorities between
        polls and triggers (see the module docstring): while polling is active, triggers leave
        ``poll_reserve`` of every window free for polls and polls go first, but never into the
        ``trigger_reserve`` of a window; with no windows, polls get ``poll_share`` of the
        contested admissions."""
        shares = {
            "poll_share": poll_share,
            "poll_reserve": poll_reserve,
            "trigger_reserve": trigger_reserve,
        }
        _check_limiter_args(concurrency, shares, max_pause)
        if headroom < 0:
            raise ValueError(f"headroom must be 0 or more, not {headroom}")
        self._clock = clock
        self._concurrency = concurrency
        self._permits = concurrency + headroom
        share = Fraction(poll_share).limit_denominator(_POLL_SHARE_DENOMINATOR)
        self._poll_num, self._poll_den = share.numerator, share.denominator
        self._poll_reserve = Fraction(poll_reserve).limit_denominator(_POLL_SHARE_DENOMINATOR)
        self._trigger_reserve = Fraction(trigger_reserve).limit_denominator(_POLL_SHARE_DENOMINATOR)
        self._max_pause = max_pause
        self._random = random if random is not None else _random.Random().random
        self._configured = tuple(windows)
        self._log = self._new_log(self._configured) if self._configured else None
        self._learned: dict[int, float] = {}
        self._init_state()
        self._probe_first = probe_first  # armed on the first admission decision (in the loop)

    def _init_state(self) -> None:
        self._in_flight = 0
        self._pushed_back_at = -math.inf  # the last 429 or 503
        self._predicted: dict[int, dict[int, int]] = {}  # per admission seq: slots left by limit
        self._round_trips: deque[float] = deque(maxlen=_ROUND_TRIPS_KEPT)
        self._queues: tuple[deque[Permit], ...] = tuple(deque[Permit]() for _ in RequestKind)
        self._live = [0 for _ in RequestKind]
        self._waiting = 0
        self._poll_credit = self._poll_den - self._poll_num  # first contested pick: a poll
        self._timer: Permit | None = None
        self._timer_at = -math.inf
        self._pause_until = -math.inf
        self._caps: dict[float, _Cap] = {}
        self._reserved: dict[Window, tuple[int, float]] = {}  # held for a neighbour, until
        self._recent: deque[float] = deque()
        self._recent_polls: deque[float] = deque()
        self._seq = 0
        self._throttle_since = -math.inf
        self._throttle_streak = 0
        self._admitted = [0 for _ in RequestKind]
        self._refunded = [0 for _ in RequestKind]
        self._total_wait = 0.0
        self._throttled = 0
        self._pauses: list[PauseRecord] = []
        self._capped_retry_afters: list[float] = []
        self._caps_learned = 0

    # -- public API ------------------------------------------------------------------------------

    def acquire(self, kind: RequestKind) -> Permit:
        """A permit to enter with ``async with``: waits for a concurrency slot and for every window,
        learned cap and pause to allow the request. Give every attempt its own permit (a retry of a
        safe failure as ``URGENT``)."""
        return Permit(self, kind)

    def observe(self, info: RateLimitInfo, *, sent_at: float) -> None:
        """Learn from a response to a request admitted (or sent) at monotonic time ``sent_at``.

        Requests admitted at or after ``sent_at`` count as in flight (conservative by one: the
        observed request itself). :meth:`Permit.observe` is exact and needs no time.
        """
        in_flight_after = 0
        for admitted_at in reversed(self._recent):
            if admitted_at < sent_at:
                break
            in_flight_after += 1
        self._observe(info, after_seq=self._seq - in_flight_after, sent_at=sent_at)

    def current_pause(self) -> tuple[float, str] | None:
        """Seconds left in the global pause and its reason, or None when not paused."""
        left = self._pause_until - self._clock.monotonic()
        if left <= 0 or not self._pauses:
            return None
        return left, self._pauses[-1].reason

    def pause(self, seconds: float, *, reason: str) -> None:
        """Hold every admission for ``seconds`` from now (capped at ``max_pause``, recorded).

        Pauses only ever extend: a shorter pause than the current one changes nothing.
        """
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"a pause lasts zero seconds or more, got {seconds!r}")
        self._pause_for(seconds, reason=reason, now=self._clock.monotonic())

    @property
    def stats(self) -> LimiterStats:
        """Admissions and refunds per kind, time spent waiting, pauses, capped Retry-Afters, and
        what was learned from the headers."""
        return LimiterStats(
            admitted=MappingProxyType({kind: self._admitted[kind] for kind in RequestKind}),
            refunded=MappingProxyType({kind: self._refunded[kind] for kind in RequestKind}),
            total_wait=self._total_wait,
            throttled=self._throttled,
            pauses=tuple(self._pauses),
            capped_retry_afters=tuple(self._capped_retry_afters),
            learned_caps=self._caps_learned,
            learned_windows=self._learned_windows(),
            in_flight=self._in_flight,
            waiting=self._waiting,
        )

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows enforced now: the configured ones, or those learned from the headers."""
        return self._log.windows if self._log is not None else ()

    @property
    def margin(self) -> float:
        """Seconds added to every window: the longest recent round trip (bounded)."""
        return self._log.margin if self._log is not None else 0.0

    @property
    def in_flight(self) -> int:
        """Permits currently held."""
        return self._in_flight

    @property
    def concurrency(self) -> int:
        """Requests allowed on the wire at once."""
        return self._concurrency

    @property
    def permits(self) -> int:
        """Permits that may be held at once: ``concurrency`` plus the headroom."""
        return self._permits

    @property
    def waiting(self) -> int:
        """Tasks currently waiting for a permit."""
        return self._waiting

    # -- admission -------------------------------------------------------------------------------

    async def _enter(self, permit: Permit) -> None:
        if permit._state != _NEW:
            raise RuntimeError("a permit can be entered only once; acquire a new one")
        await checkpoint_if_cancelled()
        now = self._clock.monotonic()
        kind = permit.kind
        room = self._in_flight < self._permits_now(now)
        if self._waiting == 0 and room and self._ready(now, kind):
            if kind == RequestKind.TRIGGER:
                self._account_poll_share(kind, contested=False)
            self._grant(permit, now)
            await cancel_shielded_checkpoint()
            return
        self._enqueue(permit, now)
        try:
            await self._wait_for_turn(permit)
            # A task cancelled just as it was granted does not get the permit: no trace is left.
            await checkpoint_if_cancelled()
        except BaseException:
            self._abandon(permit)
            raise

    def _ready(self, now: float, kind: RequestKind) -> bool:
        return self._ready_at(now, kind) <= now

    def _ready_at(self, now: float, kind: RequestKind) -> float:
        """When the pause, the windows (and for a trigger, the poll reserve) and the learned caps
        all allow an admission of ``kind``."""
        ready = self._pause_until
        if self._probe_first:
            self._probe_first = False
            self._caps[_PROBE] = _Cap(1, now + _PROBE_SECONDS, self._seq)
        if self._reserved:
            self._apply_reservations(now)
        if self._log is not None:
            if kind == RequestKind.TRIGGER:
                polls_waiting = self._live[RequestKind.POLL] > 0
                ready = max(ready, self._log.trigger_ready_at(now, polls_waiting=polls_waiting))
            else:
                ready = max(ready, self._log.ready_at(now))
        if self._caps:
            ready = max(ready, self._caps_ready_at(now))
        return ready

    def _caps_ready_at(self, now: float) -> float:
        expired = [key for key, cap in self._caps.items() if cap.expires_at <= now]
        for key in expired:
            del self._caps[key]
        if expired and not self._caps:
            self._caps[_PROBE] = _Cap(1, now + _PROBE_SECONDS, self._seq)
        exhausted = (cap.expires_at for cap in self._caps.values() if cap.allowance <= 0)
        return max(exhausted, default=-math.inf)

    def _enqueue(self, permit: Permit, now: float) -> None:
        permit._state = _WAITING
        permit._enqueued_at = now
        self._queues[permit.kind].append(permit)
        self._live[permit.kind] += 1
        self._waiting += 1

    async def _wait_for_turn(self, permit: Permit) -> None:
        self._dispatch()
        while permit._state == _WAITING:
            await self._sleep_until_woken(permit)
            if permit._state == _WAITING:
                if self._timer is permit:
                    self._timer = None
                self._dispatch()

    async def _sleep_until_woken(self, permit: Permit) -> None:
        """Sleep until woken (the timer holder: until the next admission is possible)."""
        with anyio.CancelScope() as scope:
            permit._scope = scope
            try:
                if self._timer is permit:
                    now = self._clock.monotonic()
                    await self._clock.sleep(_seconds_until(self._timer_at, now))
                else:
                    await anyio.sleep_forever()
            finally:
                permit._scope = None

    def _dispatch(self) -> None:
        """Admit waiters, in policy order, for as long as a slot is free and the budget allows."""
        if not self._waiting:
            return
        now = self._clock.monotonic()
        while self._waiting and self._in_flight < self._permits_now(now):
            kind, contested = self._next_kind(now)
            ready_at = self._ready_at(now, kind)
            if ready_at > now and kind == RequestKind.TRIGGER and self._live[RequestKind.POLL]:
                # Triggers are held out of the poll reserve, polls are not: one may go sooner.
                kind, contested = RequestKind.POLL, False
                ready_at = self._ready_at(now, kind)
            head = self._head(kind)
            if ready_at > now:
                self._arm_timer(head, ready_at)
                return
            self._pop(kind, contested=contested)
            self._grant(head, now)
            head._wake()

    def _next_kind(self, now: float) -> tuple[RequestKind, bool]:
        """The kind whose head goes next, and whether polls and triggers contested the pick."""
        live = self._live
        if live[RequestKind.URGENT]:
            return RequestKind.URGENT, False
        if live[RequestKind.POLL] and live[RequestKind.TRIGGER]:
            if self._log is not None and self._log.poll_budget_applies():
                within = self._log.polls_within_budget(now)
                return (RequestKind.POLL if within else RequestKind.TRIGGER), False
            polls_due = self._poll_num > 0 and self._poll_credit + self._poll_num >= self._poll_den
            return (RequestKind.POLL if polls_due else RequestKind.TRIGGER), True
        return (RequestKind.POLL if live[RequestKind.POLL] else RequestKind.TRIGGER), False

    def _head(self, kind: RequestKind) -> Permit:
        queue = self._queues[kind]
        while queue[0]._state != _WAITING:  # cancelled waiters are dropped lazily
            queue.popleft()
        return queue[0]

    def _pop(self, kind: RequestKind, *, contested: bool) -> None:
        if kind != RequestKind.URGENT:
            self._account_poll_share(kind, contested=contested)
        self._queues[kind].popleft()
        self._live[kind] -= 1
        self._waiting -= 1

    def _account_poll_share(self, kind: RequestKind, *, contested: bool) -> None:
        """Keep polls' share of contested admissions at ``poll_share``, exactly in integers.

        ``_poll_credit`` stays in ``[0, den)``: a contested poll is admitted when the credit plus
        ``num`` reaches ``den``, and pays ``den``. A trigger admitted while no poll waits tops the
        credit up to one poll's worth at most, so a poll arriving later goes first, but polls never
        bank a burst.
        """
        if contested:
            self._poll_credit += self._poll_num
            if kind == RequestKind.POLL:
                self._poll_credit -= self._poll_den
        elif kind == RequestKind.TRIGGER:
            ceiling = self._poll_den - self._poll_num
            topped_up = min(self._poll_credit + self._poll_num, ceiling)
            self._poll_credit = max(self._poll_credit, topped_up)

    def _arm_timer(self, head: Permit, ready_at: float) -> None:
        """Make sure one waiter wakes at ``ready_at`` (or earlier) to dispatch."""
        if self._timer is not None and self._timer_at <= ready_at:
            return
        self._timer = head
        self._timer_at = ready_at
        head._wake()

    def _grant(self, permit: Permit, now: float) -> None:
        self._in_flight += 1
        poll = permit.kind is RequestKind.POLL
        if self._log is not None:
            self._log.admit(now, poll=poll)
        for cap in self._caps.values():
            cap.allowance -= 1
        self._seq += 1
        self._remember(now, poll=poll)
        permit._seq = self._seq
        if self._log is not None:
            self._predicted[self._seq] = self._log.remaining()
        permit._admitted_at = now
        permit._state = _ADMITTED
        self._admitted[permit.kind] += 1
        if not math.isnan(permit._enqueued_at):
            self._total_wait += now - permit._enqueued_at
        if self._timer is permit:
            self._timer = None

    def _remember(self, now: float, *, poll: bool) -> None:
        horizon = now - _RECENT_HORIZON
        _append_recent(self._recent, now, horizon)
        if poll:
            _append_recent(self._recent_polls, now, horizon)

    # -- leaving -----------------------------------------------------------------------------------

    def _release(self, permit: Permit) -> None:
        self._predicted.pop(permit._seq, None)
        if permit._state != _ADMITTED:
            return
        permit._state = _RELEASED
        self._in_flight -= 1
        probe = self._caps.get(_PROBE)
        if probe is not None and permit._seq == probe.after_seq + 1:
            # The probe ended without an answer to learn from (a network error): the next one
            # may go now rather than when the probe would have expired.
            self._caps[_PROBE] = _Cap(1, self._clock.monotonic() + _PROBE_SECONDS, self._seq)
        self._dispatch()

    def _abandon(self, permit: Permit) -> None:
        """A waiter was cancelled: drop it, or hand back a permit it never received."""
        if permit._state == _WAITING:
            self._live[permit.kind] -= 1
            self._waiting -= 1
            if self._timer is permit:
                self._timer = None
        elif permit._state == _ADMITTED:
            self._in_flight -= 1
            self._give_back(permit)
            self._admitted[permit.kind] -= 1
            if not math.isnan(permit._enqueued_at):
                self._total_wait -= permit._admitted_at - permit._enqueued_at
        permit._state = _CANCELLED
        self._dispatch()

    def _refund(self, permit: Permit) -> None:
        if permit._state not in (_ADMITTED, _RELEASED):
            raise RuntimeError("only an admitted permit can be refunded")
        if permit._refunded:
            return
        permit._refunded = True
        self._give_back(permit)
        self._refunded[permit.kind] += 1
        self._dispatch()

    def _give_back(self, permit: Permit) -> None:
        """Return an unsent request's window slots, and its share of the learned caps."""
        if self._log is not None:
            self._log.refund(permit._admitted_at, poll=permit.kind == RequestKind.POLL)
        for cap in self._caps.values():
            if permit._seq > cap.after_seq:
                cap.allowance += 1

    # -- learning from responses -------------------------------------------------------------------

    def _observe_permit(self, permit: Permit, info: RateLimitInfo) -> None:
        predicted = self._predicted.pop(permit._seq, None)
        self._note_round_trip(self._clock.monotonic() - permit.admitted_at)
        self._observe(info, after_seq=permit._seq, sent_at=permit.admitted_at, predicted=predicted)

    def _note_round_trip(self, seconds: float) -> None:
        self._round_trips.append(seconds)
        if self._log is not None and self._log.windows:
            shortest = min(w.seconds for w in self._log.windows)
            self._log.margin = min(max(self._round_trips), _MAX_MARGIN_SHARE * shortest)

    def _observe(
        self,
        info: RateLimitInfo,
        *,
        after_seq: int,
        sent_at: float,
        predicted: Mapping[int, int] | None = None,
    ) -> None:
        now = self._clock.monotonic()
        if info.status in (429, 503):
            self._pushed_back_at = now
        self._caps.pop(_PROBE, None)  # any answer ends a probe: its headers say what is left
        reset_after = info.reset_after
        if reset_after is not None:
            self._learn_window(info.limit, reset_after)
        if info.retry_after is not None and info.status in (429, 503):
            if info.status == 429:
                self._throttled += 1
            reason = f"Retry-After on HTTP {info.status}"
            self._pause_for(info.retry_after, reason=reason, now=now, retry_after=True)
            return
        expected = None if predicted is None or info.limit is None else predicted.get(info.limit)
        agrees = (
            expected is not None
            and info.remaining is not None
            and info.remaining >= expected - self._timing_slack(info.limit)
        )
        if (
            info.remaining is not None
            and info.reset_epoch is not None
            and reset_after is not None
            and not agrees  # the server counted no more than our own log did: nothing to learn
        ):
            self._learn_neighbour(info.limit, info.remaining, now, after_seq, expected)
            self._learn_cap(
                info.limit, info.remaining, info.reset_epoch, reset_after, now, after_seq
            )
        if info.status == 429:
            self._on_throttled(reset_after, sent_at, now)
        elif info.status < 400 and sent_at > self._throttle_since:
            self._throttle_streak = 0

    def _permits_now(self, now: float) -> int:
        """The headroom holds while the service takes what it is sent: for a minute after a
        429 or a 503, bursts are ``concurrency`` at most (each permit admitted is a request
        that will reach a server pushing back)."""
        if now - self._pushed_back_at < _RECENT_HORIZON:
            return self._concurrency
        return self._permits

    def _timing_slack(self, limit: int | None) -> int:
        """How far the server's count of a window we were told may exceed our log's, by timing.

        The log counts admissions; the server counts arrivals. Requests admitted after this one
        may arrive before it, and requests admitted before the log's window may arrive inside
        the server's: at most the requests in flight, ``concurrency``. For a configured window
        the log is exact about our own traffic, so a difference that small is not news (not a
        neighbour, not a cap; with headroom, every permit held counts: its request may be
        between admission and the wire): under the documented limits, with 8 requests in flight, the
        10-per-second window's headers otherwise set a cap every few admissions and cost a
        tenth of the binding rate. A neighbour larger than that still shows, and any overshoot
        is a 429 whose Retry-After pauses the run.
        """
        if limit is not None and any(w.limit == limit for w in self._configured):
            # At most half the window, though: a server saying a small window is spent (a
            # neighbour) must still be heard when more permits are out than the window holds.
            return min(self._permits, max(1, limit // 2))
        return 0

    def _learn_window(self, limit: int | None, reset_after: float) -> None:
        """A limit we were not told (none configured, or the server lowered its limits): make
        ``X-RateLimit-Limit`` per the longest observed ``reset - Date`` a window, enforced
        alongside the configured ones (it can only lower the allowance)."""
        if limit is None or limit < 1 or any(w.limit == limit for w in self._configured):
            return  # no news: a configured window (or no limit at all)
        if not 0 < reset_after <= _MAX_LEARNED_SECONDS:
            return
        known = self._learned.get(limit)
        if known is not None and known >= reset_after:
            return
        if known is None and len(self._learned) >= _MAX_LEARNED_WINDOWS:
            return
        self._learned[limit] = reset_after
        learned = self._learned_windows()
        if self._log is not None:
            history, polls = self._log.entries(), self._log.poll_entries()
        else:
            history, polls = list(self._recent), list(self._recent_polls)
        self._log = self._new_log([*self._configured, *learned], history=history, polls=polls)
        self._reserved.clear()

    def _learned_windows(self) -> tuple[Window, ...]:
        return tuple(Window(n, _standard_length(s)) for n, s in sorted(self._learned.items()))

    def _new_log(
        self, windows: Sequence[Window], history: Iterable[float] = (), polls: Iterable[float] = ()
    ) -> SlidingLog:
        log = SlidingLog(windows, history=history, polls=polls)
        log.set_poll_priority(self._poll_reserve, self._trigger_reserve)
        return log

    def _learn_cap(
        self,
        limit: int | None,
        remaining: int,
        reset_epoch: float,
        reset_after: float,
        now: float,
        after_seq: int,
    ) -> None:
        """``Remaining`` below the local allowance: cap admissions until the server's reset.

        The allowance compared is that of the window the headers describe (by its limit) when
        it is one we enforce, else the tightest of them."""
        if reset_after <= 0:
            return  # the window the header describes has already been reset
        allowance = remaining - (self._seq - after_seq)
        expires_at = now + min(reset_after, self._cap_seconds(limit))
        cap = self._caps.get(reset_epoch)
        if cap is not None:
            if allowance < cap.allowance:
                cap.allowance, cap.after_seq = allowance, after_seq
            cap.expires_at = max(cap.expires_at, expires_at)
            return
        local = self._local_allowance(limit, now)
        if local is not None and allowance >= local:
            return
        self._caps[reset_epoch] = _Cap(allowance, expires_at, after_seq)
        self._caps_learned += 1

    def _local_allowance(self, limit: int | None, now: float) -> int | None:
        if self._log is None:
            return None
        reported = next((w for w in self._log.windows if w.limit == limit), None)
        if reported is None:
            return self._log.allowance(now)
        return reported.limit - self._log.count(reported, now)

    def _learn_neighbour(
        self,
        limit: int | None,
        remaining: int,
        now: float,
        after_seq: int,
        expected: int | None = None,
    ) -> None:
        """Another client of the key uses part of the window the headers describe: hold the
        same share of every shorter window for it, until that window's span has passed.

        The headers describe one window; a neighbour's traffic in the others (a second inside
        a busy minute) would otherwise only show as 429s.
        """
        if limit is None or self._log is None:
            return
        reported = next((w for w in self._log.windows if w.limit == limit), None)
        if reported is None:
            return
        if expected is not None:  # what our log said was left when this request went out
            neighbour = expected - remaining
        else:
            ours_seen = self._log.count(reported, now) - (self._seq - after_seq)
            neighbour = (limit - remaining) - ours_seen
        if neighbour < max(_NEIGHBOUR_MIN, math.ceil(_NEIGHBOUR_SHARE * limit)):
            neighbour = 0  # edge effects of clocks and in-flight requests, not a neighbour
        for window in self._log.windows:
            if window.seconds < reported.seconds:
                slots = math.ceil(neighbour * window.seconds / reported.seconds)
                self._reserved[window] = (slots, now + reported.seconds)
        self._apply_reservations(now)

    def _apply_reservations(self, now: float) -> None:
        if self._log is None:
            return
        for window, (slots, until) in list(self._reserved.items()):
            expired = until <= now
            if expired:
                del self._reserved[window]
            self._log.reserve(window, 0 if expired else slots)

    def _cap_seconds(self, limit: int | None) -> float:
        """The longest a cap may hold. The reset comes in whole seconds rounded up (up to 2 s
        late against a ``Date`` also in whole seconds), so when the window the header names is
        known, its length bounds the cap: every slot the server counted in it is free again one
        window after the response."""
        named = next((w for w in self.windows if w.limit == limit), None)
        return self._cap_horizon() if named is None else min(named.seconds, self._cap_horizon())

    def _cap_horizon(self) -> float:
        """The longest a learned cap may hold: a pause's cap, or the longest window if longer."""
        longest = max((w.seconds for w in self.windows), default=0.0)
        return max(self._max_pause, longest)

    def _on_throttled(self, reset_after: float | None, sent_at: float, now: float) -> None:
        """A 429 without Retry-After: pause until the reset, else for a growing jittered backoff."""
        self._throttled += 1
        if sent_at <= self._throttle_since:
            return  # sent before the last reaction: the same burst, already paid for
        self._throttle_since = now
        self._throttle_streak += 1
        if reset_after is not None and reset_after > 0:
            self._pause_for(reset_after, reason="HTTP 429 until X-RateLimit-Reset", now=now)
            return
        seconds = full_jitter(
            self._throttle_streak, base=_THROTTLE_BASE, cap=_THROTTLE_CAP, random=self._random
        )
        self._pause_for(seconds, reason="HTTP 429 without Retry-After: backoff", now=now)

    def _pause_for(
        self, requested: float, *, reason: str, now: float, retry_after: bool = False
    ) -> None:
        seconds = min(requested, self._max_pause)
        if retry_after and requested > self._max_pause:
            self._capped_retry_afters.append(requested)
        until = now + seconds
        if until <= self._pause_until:
            return
        self._pause_until = until
        self._pauses.append(PauseRecord(reason, seconds, requested, now))


def _append_recent(recent: deque[float], now: float, horizon: float) -> None:
    recent.append(now)
    while recent[0] < horizon:
        recent.popleft()


def _seconds_until(target: float, now: float) -> float:
    """A sleep that ends at or after ``target`` despite float rounding in ``now + seconds``."""
    seconds = max(0.0, target - now)
    while now + seconds < target:
        seconds = math.nextafter(seconds, math.inf)
    return seconds


def _check_limiter_args(concurrency: int, shares: Mapping[str, float], max_pause: float) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {share!r}")
    if not (math.isfinite(max_pause) and max_pause > 0):
        raise ValueError(f"max_pause must be positive and finite, got {max_pause!r}")
