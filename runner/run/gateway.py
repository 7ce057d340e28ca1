"""Every request of a run goes through one gateway: the outage breaker, the limiter, the headers.

:class:`Gateway` sends one request at a time for its caller: it waits for the outage breaker
(:class:`OutageBreaker`: after consecutive 503s or refused connections, one probe per period
while the rest wait), takes a permit of the one :class:`~runner.ratelimit.RateLimiter`, runs
the caller's ``before_wire`` step (a trigger's intent is recorded there), sends, and feeds the
answer's rate-limit headers back to the limiter. It also classifies failures for everyone
(:data:`FATAL_ERRORS`, :data:`AMBIGUOUS_ERRORS`) and holds the one retry policy of a run
(:class:`Tries`): how many times, for how long, a request that did not take effect is sent
again, 429s counted apart.
"""

from __future__ import annotations

import random as random_module
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from runner.api import Reply
from runner.backoff import backoff_ceiling, full_jitter
from runner.clock import Clock
from runner.errors import (
    AnswerOutOfBounds,
    ApiError,
    AuthError,
    MalformedResponse,
    NotSent,
    NotTheApi,
    OutcomeUnknown,
    QuotaExhausted,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unreachable,
)
from runner.ratelimit import Permit, RateLimiter, RateLimitInfo, RequestKind
from runner.run.options import EngineOptions
from runner.run.progress import Outage, RunProgress

T = TypeVar("T")

# Failures that stop the run: no later request can do better. The last two may hide a
# processed trigger (recorded ambiguous, settled on resume).
FATAL_ERRORS = (AuthError, QuotaExhausted, NotTheApi, AnswerOutOfBounds)
# Failures after which a request may or may not have been processed.
AMBIGUOUS_ERRORS = (OutcomeUnknown, ServerError, MalformedResponse)
_RETRYABLE_READ_ERRORS = (ServiceUnavailable, NotSent, *AMBIGUOUS_ERRORS)
UNREACHABLE_AFTER = 3  # refused connections, before any answer, that make the API unreachable


class Withdrawn(Exception):
    """A request given up after its turn came but before it was sent (the run is stopping)."""


@dataclass
class Tries:
    """One request's retry budget: failures that may pass, and 429s, counted apart.

    A failure that provably did not take effect (or, for a read, any that may pass) is tried
    again at most ``max_attempts`` times within ``max_retry_seconds`` of the first; a 429 is
    waited out (the limiter holds the resend until the pause ends) up to ``max_throttled``
    times. The same policy for reads and triggers.
    """

    options: EngineOptions
    clock: Clock
    failures: int = 0
    throttled: int = 0
    _first_failure: float | None = field(default=None, repr=False)

    def throttle(self) -> bool:
        """Count a 429; whether the request may be sent again."""
        self.throttled += 1
        return self.throttled < self.options.max_throttled

    def fail(self) -> bool:
        """Count a failure that may pass; whether the request may be sent again."""
        self.failures += 1
        now = self.clock.monotonic()
        if self._first_failure is None:
            self._first_failure = now
        elapsed = now - self._first_failure
        return (
            self.failures < self.options.max_attempts and elapsed < self.options.max_retry_seconds
        )

    @property
    def retrying(self) -> bool:
        """Whether this request has failed before (its resends go first: URGENT)."""
        return bool(self.failures or self.throttled)


class OutageBreaker:
    """A run-wide circuit breaker for outages: one probe per backoff period while open.

    After ``outage_threshold`` consecutive unavailable answers (503s, refused connections) it
    opens for a period (``outage_pause``, doubling up to ``outage_pause_cap``, jittered). When
    the period ends, one request goes as the probe and the others wait for it. Whatever becomes
    of the probe moves the breaker: an answer closes it; anything else (a 503, a refused,
    dropped or timed-out connection, a withdrawal, a cancellation, an exception) opens it for
    the next period. The probe's turn ends when its block does, whatever the exit, and a waiter
    never waits past ``outage_pause_cap`` for a probe: one out for that long is presumed lost
    and the waiter probes in its place. The state is published as ``progress.outage``.
    """

    def __init__(
        self,
        clock: Clock,
        rng: random_module.Random,
        options: EngineOptions,
        *,
        progress: RunProgress,
        on_open: Callable[[float, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._options = options
        self._progress = progress
        self._on_open = on_open
        self._consecutive = 0
        self._openings = 0
        self._open_until: float | None = None
        self._probe: object | None = None  # the token of the probe out, if one is
        self._probe_deadline = 0.0
        self._since = 0.0
        self._why = ""
        self._sleepers: set[anyio.CancelScope] = set()

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        """Wait until this caller may send; yields whether it goes as the probe.

        Closed: at once, not a probe. Open: after the period, one caller as the probe, the
        others once the probe has moved the breaker. If the probe's block ends and nothing has
        closed or re-opened the breaker meanwhile (no answer came), it opens for the next period.
        """
        probe = await self._wait_turn()
        try:
            yield probe is not None
        finally:
            if probe is not None and probe is self._probe:
                self._open("no answer to the probe")

    def on_answer(self) -> None:
        """The service answered (any status but 503): not an outage, the breaker closes."""
        self._consecutive = 0
        self._openings = 0
        if self._open_until is not None:
            self._open_until = None
            self._probe = None
            self._changed()

    def on_unavailable(self, why: str) -> None:
        """Count an unavailable answer (a 503, a refused connection); opens at the threshold."""
        self._consecutive += 1
        if self._open_until is not None or self._consecutive >= self._options.outage_threshold:
            self._open(why)

    def status(self) -> Outage | None:
        """The outage as the progress display shows it; None while the breaker is closed."""
        if self._open_until is None:
            return None
        next_probe = None
        if self._probe is None:
            left = max(0.0, self._open_until - self._clock.monotonic())
            next_probe = self._clock.wall() + left
        return Outage(since=self._since, why=self._why, next_probe=next_probe)

    async def _wait_turn(self) -> object | None:
        while self._open_until is not None:
            now = self._clock.monotonic()
            if now < self._open_until:
                await self._sleep_until(self._open_until)
            elif self._probe is None or now >= self._probe_deadline:
                return self._start_probe(now)
            else:
                await self._sleep_until(self._probe_deadline)
        return None

    def _start_probe(self, now: float) -> object:
        self._probe = probe = object()
        self._probe_deadline = now + self._options.outage_pause_cap
        self._changed()
        return probe

    def _open(self, why: str) -> None:
        self._openings += 1
        ceiling = backoff_ceiling(
            self._openings, base=self._options.outage_pause, cap=self._options.outage_pause_cap
        )
        pause = ceiling * (0.75 + 0.25 * self._rng.random())
        if self._open_until is None:
            self._since = self._clock.wall()
        self._open_until = self._clock.monotonic() + pause
        self._probe = None
        self._why = why
        self._changed()
        if self._on_open is not None:
            self._on_open(pause, why)

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` or until the breaker changes, whichever comes first."""
        with anyio.CancelScope() as scope:
            self._sleepers.add(scope)
            try:
                await self._clock.sleep(deadline - self._clock.monotonic())
            finally:
                self._sleepers.discard(scope)

    def _changed(self) -> None:
        for scope in self._sleepers:
            scope.cancel()
        self._sleepers.clear()
        self._progress.outage = self.status()


class Gateway:
    """Every request of a run goes through here: outage breaker, rate limiter, header learning."""

    def __init__(
        self,
        *,
        limiter: RateLimiter,
        clock: Clock,
        rng: random_module.Random,
        options: EngineOptions,
        progress: RunProgress,
        on_event: Callable[..., None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.clock = clock
        self.progress = progress
        self.breaker = OutageBreaker(
            clock, rng, options, progress=progress, on_open=self._outage_opened
        )
        self._options = options
        self._rng = rng
        self.answered = False  # has anything answered this run (a reply or an HTTP error)?
        self.server_offset = 0.0  # server Date minus our wall clock, from the last response
        self._on_event = on_event

    async def request(
        self,
        kind: RequestKind,
        call: Callable[[], Awaitable[Reply[T]]],
        *,
        before_wire: Callable[[], Awaitable[None]] | None = None,
    ) -> Reply[T]:
        """One request: breaker, limiter, header learning, outage accounting.

        ``before_wire`` runs once, after the limiter has admitted the request and before it is
        sent (a trigger's intent is made durable there). If a pause began meanwhile (a 429's
        Retry-After), the request goes back through the limiter before it is sent: the pause
        holds it too, and the windows space it again.
        """
        while True:
            async with self.breaker.turn() as probe, self.limiter.acquire(kind) as permit:
                if self.breaker.is_open and not probe:
                    permit.refund()  # the breaker opened while this request queued: it waits
                    continue
                if before_wire is not None:
                    await self._prepare(permit, before_wire)
                    before_wire = None
                if self.limiter.current_pause() is not None:
                    permit.refund()  # paused since its admission: through the limiter again
                    continue
                return await self._send(permit, call)

    async def read(self, kind: RequestKind, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        """An idempotent read, resent while its failure may pass; the last error otherwise.

        Reads change nothing, so an ambiguous failure (5xx, a connection lost mid-way, a garbled
        body) is as safe to resend as one that provably never arrived. 429s wait for the
        limiter and count apart (``max_throttled``); other failures back off with full jitter,
        ``max_attempts`` sends and ``max_retry_seconds`` at most. A 4xx, a bad key or exhausted
        credits are answers, never retried. While nothing has answered yet, connections refused
        ``UNREACHABLE_AFTER`` times raise :class:`Unreachable`: a wrong URL is not an outage.
        """
        tries = Tries(self._options, self.clock)
        while True:
            try:
                return await self.request(kind, call)
            except FATAL_ERRORS:
                raise
            except RateLimited:
                if not tries.throttle():
                    raise
            except _RETRYABLE_READ_ERRORS as exc:
                again = tries.fail()
                if (
                    isinstance(exc, NotSent)
                    and not self.answered
                    and tries.failures >= UNREACHABLE_AFTER
                ):
                    raise Unreachable(f"{exc} ({tries.failures} attempts)") from exc
                if not again:
                    raise
                if not self.breaker.is_open:  # an open breaker already spaces the sends
                    await self.clock.sleep(self.backoff(tries.failures))

    def backoff(self, failures: int) -> float:
        """Seconds before the next send after ``failures`` failures: full jitter."""
        return full_jitter(
            failures,
            base=self._options.backoff_base,
            cap=self._options.backoff_cap,
            random=self._rng.random,
        )

    async def _prepare(self, permit: Permit, before_wire: Callable[[], Awaitable[None]]) -> None:
        try:
            await before_wire()
        except Withdrawn:
            permit.refund()
            raise

    async def _send(self, permit: Permit, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        try:
            reply = await self._on_the_wire(call)
        except Withdrawn:
            permit.refund()
            raise
        except NotSent:
            permit.refund()
            self.breaker.on_unavailable("connection refused")
            raise
        except ApiError as exc:
            self.answered = True
            self._learn_from_error(exc, permit)
            raise
        self.answered = True
        permit.observe(reply.rate)
        self.breaker.on_answer()
        self._track_server_clock(reply.rate.date_epoch)
        return reply

    async def _on_the_wire(self, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        self.progress.requests += 1
        self.progress.requests_in_flight += 1
        try:
            return await call()
        finally:
            self.progress.requests_in_flight -= 1

    def _learn_from_error(self, exc: ApiError, permit: Permit) -> None:
        rate = exc.rate
        if isinstance(rate, RateLimitInfo):
            permit.observe(rate)
            self._track_server_clock(rate.date_epoch)
        if isinstance(exc, ServiceUnavailable):
            self.breaker.on_unavailable("HTTP 503")
        else:
            self.breaker.on_answer()  # the service answered: not an outage

    def _outage_opened(self, pause: float, why: str) -> None:
        if self._on_event is not None:
            self._on_event("outage_pause", seconds=pause, why=why)

    def _track_server_clock(self, date_epoch: float | None) -> None:
        if date_epoch is not None:
            self.server_offset = date_epoch - self.clock.wall()
