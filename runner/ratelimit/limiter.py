"""The async core of the limiter: permits, the queue of waiters, and the one timer.

Admission happens in one synchronous step (``_dispatch``) run whenever something changes: a
request arrives, a permit is released or refunded, a waiter leaves, or a deadline passes. Exactly
one waiter at a time holds the *timer*: it sleeps (through the injected clock) until the instant
the limits allow the next admission, then dispatches. Waiters are woken by cancelling their own
cancel scope; no task is spawned, no thread is used.
"""

# Permit is RateLimiter's waiter record: the two share private state within this module.
# ruff: noqa: SLF001

from __future__ import annotations

import math
import random as _random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType, TracebackType
from typing import Final, Self

import anyio
from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from runner.clock import Clock
from runner.ratelimit.headers import RateLimitInfo
from runner.ratelimit.limits import Limits
from runner.ratelimit.priority import PollCredit, RequestKind, Reserves, next_kind
from runner.ratelimit.pushback import PauseRecord, PushBack
from runner.ratelimit.sliding_log import IN_FLIGHT, Window

__all__ = ["LimiterStats", "Permit", "RateLimiter"]

_SHARE_DENOMINATOR: Final = 1000

# Permit life cycle.
_NEW: Final = 0
_WAITING: Final = 1
_ADMITTED: Final = 2
_RELEASED: Final = 3
_CANCELLED: Final = 4


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


class Permit:
    """The right to send one request; an async context manager from :meth:`RateLimiter.acquire`.

    Entering waits for admission; leaving frees the concurrency slot and ends the request: its
    window slots stay taken until one window later (the server may have counted it as late as
    its answer). If the request turns out never to have been sent, call :meth:`refund` (inside
    or after the ``async with``).
    """

    __slots__ = (
        "_admitted_at",
        "_ended_at",
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
        self._ended_at = IN_FLIGHT
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
        """End the request, free the concurrency slot and let the next waiter in."""
        self._limiter._release(self)

    def refund(self) -> None:
        """The request was never sent: hand back its window slots (idempotent)."""
        self._limiter._refund(self)

    def observe(self, info: RateLimitInfo) -> None:
        """Learn from this request's response, with exact in-flight accounting (preferred to
        :meth:`RateLimiter.observe`, which has to match admissions by time)."""
        self._limiter._observe_permit(self, info)

    def _wake(self) -> None:
        """Wake the task waiting on this permit so that it re-examines the limiter."""
        if self._scope is not None:
            self._scope.cancel()


class _Waiters:
    """The permits waiting for admission: first in, first out within a kind."""

    __slots__ = ("_queues", "count", "live")

    def __init__(self) -> None:
        self._queues: tuple[deque[Permit], ...] = tuple(deque[Permit]() for _ in RequestKind)
        self.live = [0 for _ in RequestKind]  # waiting per kind
        self.count = 0

    def add(self, permit: Permit) -> None:
        self._queues[permit.kind].append(permit)
        self.live[permit.kind] += 1
        self.count += 1

    def head(self, kind: RequestKind) -> Permit:
        queue = self._queues[kind]
        while queue[0]._state != _WAITING:  # cancelled waiters are dropped lazily
            queue.popleft()
        return queue[0]

    def pop(self, kind: RequestKind) -> None:
        self._queues[kind].popleft()
        self.gone(kind)

    def gone(self, kind: RequestKind) -> None:
        """A waiter of ``kind`` is no longer waiting (popped, or cancelled and dropped later)."""
        self.live[kind] -= 1
        self.count -= 1


class RateLimiter:
    """Multi-window, header-adaptive, prioritised admission control for one run's requests.

    The model is in ``docs/architecture.md`` ("Within the limits, and close to them"). Use::

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
        between their admission and the wire (a trigger's durable intent); the caller then
        holds the wire to ``concurrency``. ``probe_first``: admit one request and wait for its
        answer before the next ones. ``poll_reserve``, ``trigger_reserve`` and ``poll_share``
        set the priorities between polls and triggers (:mod:`runner.ratelimit.priority`).
        """
        shares = {
            "poll_share": poll_share,
            "poll_reserve": poll_reserve,
            "trigger_reserve": trigger_reserve,
        }
        _check_limiter_args(concurrency, shares, max_pause, headroom)
        self._clock = clock
        self._concurrency = concurrency
        self._permits = concurrency + headroom
        self._credit = PollCredit(_fraction(poll_share))
        self._pushback = PushBack(
            max_pause=max_pause, random=random if random is not None else _random.Random().random
        )
        self._limits = Limits(
            windows,
            reserves=Reserves(_fraction(poll_reserve), _fraction(trigger_reserve)),
            pushback=self._pushback,
            permits=self._permits,
            probe_first=probe_first,
        )
        self._waiters = _Waiters()
        self._in_flight = 0
        self._timer: Permit | None = None
        self._timer_at = -math.inf
        self._admitted = [0 for _ in RequestKind]
        self._refunded = [0 for _ in RequestKind]
        self._total_wait = 0.0

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
        self._limits.observe(info, sent_at=sent_at, now=self._clock.monotonic())

    def current_pause(self) -> tuple[float, str] | None:
        """Seconds left in the global pause and its reason, or None when not paused."""
        return self._pushback.current(self._clock.monotonic())

    def pause(self, seconds: float, *, reason: str) -> None:
        """Hold every admission for ``seconds`` from now (capped at ``max_pause``, recorded).

        Pauses only ever extend: a shorter pause than the current one changes nothing.
        """
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"a pause lasts zero seconds or more, got {seconds!r}")
        self._pushback.pause(seconds, reason=reason, now=self._clock.monotonic())

    @property
    def stats(self) -> LimiterStats:
        """Admissions and refunds per kind, time spent waiting, pauses, capped Retry-Afters, and
        what was learned from the headers."""
        return LimiterStats(
            admitted=MappingProxyType({kind: self._admitted[kind] for kind in RequestKind}),
            refunded=MappingProxyType({kind: self._refunded[kind] for kind in RequestKind}),
            total_wait=self._total_wait,
            throttled=self._pushback.throttled,
            pauses=tuple(self._pushback.pauses),
            capped_retry_afters=tuple(self._pushback.capped_retry_afters),
            learned_caps=self._limits.learned_caps,
            learned_windows=self._limits.learned_windows,
            in_flight=self._in_flight,
            waiting=self._waiters.count,
        )

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows enforced now: the configured ones, or those learned from the headers."""
        return self._limits.windows

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
        return self._waiters.count

    # -- admission -------------------------------------------------------------------------------

    async def _enter(self, permit: Permit) -> None:
        if permit._state != _NEW:
            raise RuntimeError("a permit can be entered only once; acquire a new one")
        await checkpoint_if_cancelled()
        now = self._clock.monotonic()
        if (
            not self._waiters.count
            and self._in_flight < self._permits_now(now)
            and self._ready_at(now, permit.kind) <= now
        ):
            self._credit.admitted(permit.kind, contested=False)
            self._grant(permit, now)
            await cancel_shielded_checkpoint()
            return
        permit._state = _WAITING
        permit._enqueued_at = now
        self._waiters.add(permit)
        try:
            await self._wait_for_turn(permit)
            # A task cancelled just as it was granted does not get the permit: no trace is left.
            await checkpoint_if_cancelled()
        except BaseException:
            self._abandon(permit)
            raise

    def _permits_now(self, now: float) -> int:
        """The headroom holds while the service takes what it is sent: for a minute after a
        push-back, bursts are ``concurrency`` at most."""
        return self._concurrency if self._pushback.pushed_back_recently(now) else self._permits

    def _ready_at(self, now: float, kind: RequestKind) -> float:
        polls_waiting = self._waiters.live[RequestKind.POLL] > 0
        return self._limits.ready_at(now, kind, polls_waiting=polls_waiting)

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
        """Admit waiters, in priority order, for as long as a slot is free and the limits allow."""
        waiters = self._waiters
        if not waiters.count:
            return
        now = self._clock.monotonic()
        while waiters.count and self._in_flight < self._permits_now(now):
            kind, contested = self._next_kind(now)
            ready_at = self._ready_at(now, kind)
            if ready_at > now and kind == RequestKind.TRIGGER and waiters.live[RequestKind.POLL]:
                # Triggers are held out of the poll reserve, polls are not: one may go sooner.
                kind, contested = RequestKind.POLL, False
                ready_at = self._ready_at(now, kind)
            head = waiters.head(kind)
            if ready_at > now:
                self._arm_timer(head, ready_at)
                return
            waiters.pop(kind)
            self._credit.admitted(kind, contested=contested)
            self._grant(head, now)
            head._wake()

    def _next_kind(self, now: float) -> tuple[RequestKind, bool]:
        live = self._waiters.live
        contested = live[RequestKind.POLL] and live[RequestKind.TRIGGER]
        within = self._limits.polls_within_budget(now) if contested else None
        return next_kind(live, polls_within_budget=within, credit=self._credit)

    def _arm_timer(self, head: Permit, ready_at: float) -> None:
        """Make sure one waiter wakes at ``ready_at`` (or earlier) to dispatch."""
        if self._timer is not None and self._timer_at <= ready_at:
            return
        self._timer = head
        self._timer_at = ready_at
        head._wake()

    def _grant(self, permit: Permit, now: float) -> None:
        self._in_flight += 1
        permit._seq = self._limits.admit(now, permit.kind)
        permit._admitted_at = now
        permit._state = _ADMITTED
        self._admitted[permit.kind] += 1
        if not math.isnan(permit._enqueued_at):
            self._total_wait += now - permit._enqueued_at
        if self._timer is permit:
            self._timer = None

    # -- leaving -----------------------------------------------------------------------------------

    def _release(self, permit: Permit) -> None:
        if permit._state != _ADMITTED:
            return
        permit._state = _RELEASED
        self._in_flight -= 1
        now = self._clock.monotonic()
        permit._ended_at = now
        if self._limits.ended(permit._seq, now, permit.kind, sent=not permit._refunded):
            self._limits.probe(now)
        self._dispatch()

    def _abandon(self, permit: Permit) -> None:
        """A waiter was cancelled: drop it, or hand back a permit it never received."""
        if permit._state == _WAITING:
            self._waiters.gone(permit.kind)
            if self._timer is permit:
                self._timer = None
        elif permit._state == _ADMITTED:
            self._in_flight -= 1
            self._limits.give_back(permit._seq, permit.kind)
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
        self._limits.give_back(permit._seq, permit.kind, ended_at=permit._ended_at)
        self._refunded[permit.kind] += 1
        self._dispatch()

    def _observe_permit(self, permit: Permit, info: RateLimitInfo) -> None:
        sent_at = permit.admitted_at
        now = self._clock.monotonic()
        self._limits.observe_admission(permit._seq, info, sent_at=sent_at, now=now)


def _fraction(share: float) -> Fraction:
    return Fraction(share).limit_denominator(_SHARE_DENOMINATOR)


def _seconds_until(target: float, now: float) -> float:
    """A sleep that ends at or after ``target`` despite float rounding in ``now + seconds``."""
    seconds = max(0.0, target - now)
    while now + seconds < target:
        seconds = math.nextafter(seconds, math.inf)
    return seconds


def _check_limiter_args(
    concurrency: int, shares: Mapping[str, float], max_pause: float, headroom: int
) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {share!r}")
    if not (math.isfinite(max_pause) and max_pause > 0):
        raise ValueError(f"max_pause must be positive and finite, got {max_pause!r}")
    if headroom < 0:
        raise ValueError(f"headroom must be 0 or more, not {headroom}")
