"""Random interleavings of acquire, cancel, release, refund, observe and clock advance.

The limiter runs on trio in a blocking portal with a *manual* mock clock: each rule does one thing,
waits until every task is blocked, and the invariants are checked against the test's own record
of admissions (never against the limiter's internals).
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from runner.clock import LoopClock
from runner.ratelimit import Permit, RateLimiter, RateLimitInfo, RequestKind, Window
from trio.testing import MockClock, wait_all_tasks_blocked

from .limiter_support import arrival_violations

WINDOWS = st.lists(
    st.builds(
        Window,
        # up to 12, for the reserves to be whole slots; not 10, the limit the headers report
        limit=st.sampled_from([1, 2, 3, 4, 5, 7, 12]),
        seconds=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
    ),
    min_size=1,
    max_size=3,
)


@dataclass(eq=False)
class Client:
    """One task holding (or waiting for) one permit."""

    kind: RequestKind
    brief: bool = False  # leaves as soon as it is admitted
    scope: anyio.CancelScope | None = None
    release: anyio.Event | None = None
    permit: Permit | None = None
    admitted_at: float | None = None
    ended_at: float = math.inf  # left its permit: the request has ended
    done: bool = False
    refunded: bool = False
    future: Future[Any] | None = None

    @property
    def waiting(self) -> bool:
        return self.permit is None and not self.done

    @property
    def holding(self) -> bool:
        return self.permit is not None and not self.done


class LimiterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = MockClock()  # manual: time moves only when a rule says so
        self.portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal(
            "trio", backend_options={"clock": self.clock}
        )
        self.portal = self.portal_cm.__enter__()
        self.clients: list[Client] = []
        self.blocked_until = -math.inf  # by the pauses and caps this test asked for
        self.windows: list[Window] = []
        self.concurrency = 1
        self.shares = (0.2, 0.2)  # poll_reserve, trigger_reserve
        self.limiter: RateLimiter | None = None

    # -- plumbing ----------------------------------------------------------------------------------

    def settle(self) -> None:
        self.portal.call(wait_all_tasks_blocked)

    def now(self) -> float:
        return self.portal.call(anyio.current_time)

    def sent(self, *, polls: bool = False) -> list[Client]:
        """The requests sent: admitted and not refunded (only the polls, if ``polls``)."""
        return [
            c
            for c in self.clients
            if c.admitted_at is not None
            and not c.refunded
            and (c.kind == RequestKind.POLL or not polls)
        ]

    @property
    def lim(self) -> RateLimiter:
        assert self.limiter is not None
        return self.limiter

    async def run_client(self, client: Client) -> None:
        client.release = anyio.Event()
        with anyio.CancelScope() as client.scope:
            async with self.lim.acquire(client.kind) as permit:
                client.permit = permit
                client.admitted_at = anyio.current_time()
                if not client.brief:
                    await client.release.wait()
            client.ended_at = anyio.current_time()
        client.done = True

    def pick(self, data: st.DataObject, condition: str) -> Client:
        candidates = [c for c in self.clients if getattr(c, condition)]
        return data.draw(st.sampled_from(candidates))

    # -- rules -------------------------------------------------------------------------------------

    @initialize(
        windows=WINDOWS,
        concurrency=st.integers(min_value=1, max_value=3),
        share=st.sampled_from([0.0, 0.2, 1.0]),
        shares=st.sampled_from([(0.2, 0.2), (0.0, 0.2), (0.2, 0.0), (0.5, 0.5), (0.0, 0.0)]),
    )
    def setup(
        self,
        windows: list[Window],
        concurrency: int,
        share: float,
        shares: tuple[float, float],
    ) -> None:
        self.windows, self.concurrency, self.shares = windows, concurrency, shares
        self.limiter = RateLimiter(
            windows,
            clock=LoopClock(),
            concurrency=concurrency,
            poll_share=share,
            poll_reserve=shares[0],
            trigger_reserve=shares[1],
            max_pause=4.0,
        )

    @rule(kind=st.sampled_from(RequestKind), brief=st.booleans(), count=st.integers(1, 3))
    def arrive(self, kind: RequestKind, brief: bool, count: int) -> None:
        for _ in range(count):
            client = Client(kind, brief)
            self.clients.append(client)
            client.future = self.portal.start_task_soon(self.run_client, client)
        self.settle()

    @precondition(lambda self: any(c.waiting for c in self.clients))
    @rule(data=st.data())
    def cancel_a_waiter(self, data: st.DataObject) -> None:
        client = self.pick(data, "waiting")
        assert client.scope is not None
        self.portal.call(client.scope.cancel)
        self.settle()
        client.done = True

    @precondition(lambda self: any(c.holding for c in self.clients))
    @rule(data=st.data(), cancel_another=st.booleans())
    def release(self, data: st.DataObject, cancel_another: bool) -> None:
        """Leave a permit; maybe cancel a waiter in the same instant (it may be granted first)."""
        client = self.pick(data, "holding")
        waiters = [c for c in self.clients if c.waiting]
        victim = data.draw(st.sampled_from(waiters)) if cancel_another and waiters else None

        def act() -> None:
            assert client.release is not None
            client.release.set()
            if victim is not None and victim.scope is not None:
                victim.scope.cancel()

        self.portal.call(act)
        self.settle()
        if victim is not None:
            victim.done = True  # whether or not it was granted, it never ran its body

    @precondition(lambda self: any(c.permit and not c.refunded for c in self.clients))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        candidates = [c for c in self.clients if c.permit is not None and not c.refunded]
        client = data.draw(st.sampled_from(candidates))
        assert client.permit is not None
        self.portal.call(client.permit.refund)
        client.refunded = True
        self.settle()

    @precondition(lambda self: any(c.holding for c in self.clients))
    @rule(
        data=st.data(),
        status=st.sampled_from([200, 201, 429, 503]),
        retry_after=st.none() | st.sampled_from([0.0, 0.5, 1.5, 10.0]),
        remaining=st.none() | st.integers(min_value=0, max_value=5),
        reset_in=st.sampled_from([0.0, 1.0, 3.0, 30.0]),
    )
    def observe(
        self,
        data: st.DataObject,
        status: int,
        retry_after: float | None,
        remaining: int | None,
        reset_in: float,
    ) -> None:
        client = self.pick(data, "holding")
        assert client.permit is not None
        date = 1_000_000.0
        info = RateLimitInfo(status, 10, remaining, date + reset_in, date, retry_after)
        now = self.now()
        self.portal.call(client.permit.observe, info)
        if status in (429, 503) and retry_after is not None:
            self.blocked_until = max(self.blocked_until, now + min(retry_after, 4.0))
        elif remaining is not None or status == 429:
            # A cap lasts until the reset; a bare 429 pauses at most until the reset or backoff.
            self.blocked_until = max(self.blocked_until, now + max(reset_in, 60.0))
        self.settle()

    @rule(seconds=st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 5.0]))
    def advance(self, seconds: float) -> None:
        self.portal.call(self.clock.jump, seconds)
        self.settle()

    @precondition(lambda self: any(c.ended_at < math.inf for c in self.sent()))
    @rule(early=st.sampled_from([0.0, 0.01]))
    def advance_to_the_next_expiry(self, early: float) -> None:
        """Land exactly where an admission leaves a window, or just before: the half-open edge."""
        now = self.now()
        ended = [c.ended_at for c in self.sent() if c.ended_at < math.inf]
        edges = [e + w.seconds for e in ended for w in self.windows]
        later = [edge - early for edge in edges if edge - early > now]
        if later:
            self.portal.call(self.clock.jump, min(later) - now)
            self.settle()

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def every_window_holds(self) -> None:
        """Whenever each request reached the server, between its admission and its end."""
        spans = [(c.admitted_at, c.ended_at) for c in self.sent()]
        assert arrival_violations(spans, self.windows) == []  # type: ignore[arg-type]

    @invariant()
    def slots_are_accounted_for(self) -> None:
        if self.limiter is None:
            return
        holding = sum(1 for c in self.clients if c.holding)
        waiting = sum(1 for c in self.clients if c.waiting)
        assert holding <= self.concurrency
        assert (self.lim.in_flight, self.lim.waiting) == (holding, waiting)
        stats = self.lim.stats
        admitted = sum(1 for c in self.clients if c.permit is not None)
        assert sum(stats.admitted.values()) == admitted
        assert sum(stats.refunded.values()) == sum(1 for c in self.clients if c.refunded)

    @invariant()
    def no_idle_gap(self) -> None:
        """Work waits and a slot is free: then some window (or a pause/cap we caused) is full,
        or only triggers wait and some window's poll reserve holds them."""
        if self.limiter is None or not self.lim.waiting or self.lim.in_flight >= self.concurrency:
            return
        now = self.now()
        # Every window enforced, the learned ones too.
        windows = self.lim.windows
        full = any(self.inside(self.sent(), w, now) >= w.limit for w in windows)
        only_triggers = all(c.kind == RequestKind.TRIGGER for c in self.clients if c.waiting)
        held = only_triggers and any(self.reserve_holds(w, now) for w in windows)
        assert full or held or now < self.blocked_until

    def inside(self, requests: list[Client], window: Window, now: float) -> int:
        """Slots of ``window`` taken at ``now``: until a window after each request ended."""
        return sum(1 for c in requests if c.ended_at + window.seconds > now)

    def reserve_holds(self, window: Window, now: float) -> bool:
        """With no poll waiting: a poll in the window, and a trigger would not leave the
        ``min(R, P - polls)`` slots the priority module says it must."""
        polls = self.inside(self.sent(polls=True), window, now)
        if not polls:
            return False
        limit = window.limit
        reserve = max(0, min(math.floor(limit * Fraction(self.shares[0])), limit - 1))
        triggers = min(math.ceil(limit * Fraction(self.shares[1])), limit - reserve)
        free = max(0, min(reserve, limit - triggers - polls))
        return self.inside(self.sent(), window, now) + free >= limit

    def teardown(self) -> None:
        def cancel_all() -> None:
            for client in self.clients:
                if client.scope is not None:
                    client.scope.cancel()

        try:
            self.portal.call(cancel_all)
            self.settle()
        finally:
            self.portal_cm.__exit__(None, None, None)
        for client in self.clients:
            assert client.future is not None
            assert client.future.exception() is None


LimiterMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_limiter_state_machine = LimiterMachine.TestCase
