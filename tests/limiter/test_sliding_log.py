"""The pure sliding log: exact over every window, and the leaky bucket it replaces is not."""

from __future__ import annotations

import asyncio

import aiolimiter
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runner.ratelimit import SlidingLog, Window
from runner.ratelimit.sliding_log import IN_FLIGHT

from .limiter_support import (
    arrival_violations,
    brute_force_ready_at,
    ideal_schedule,
    max_in_any_window,
    sent,
    violations,
)

DOCUMENTED = (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0))

windows_strategy = st.lists(
    st.builds(
        Window,
        limit=st.integers(min_value=1, max_value=6),
        seconds=st.sampled_from([0.3, 0.5, 1.0, 1.5, 2.0, 3.7, 10.0]),
    ),
    min_size=1,
    max_size=3,
)
steps_strategy = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 1.0, 1.7]),
        st.sampled_from(["admit", "end", "refund"]),
        st.integers(0, 200),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(windows=windows_strategy, steps=steps_strategy)
def test_every_window_holds_whenever_requests_arrive_and_ready_at_is_exact(
    windows: list[Window], steps: list[tuple[float, str, int]]
) -> None:
    """Requests are admitted, end after any delay, or are refunded; whenever each one reaches the
    server between its admission and its end, no window is exceeded, and the log names the
    exact instant it has room again (never, while only requests in flight fill a window)."""
    log = SlidingLog(windows)
    spans: list[list[float]] = []  # [admitted, ended]: ended is IN_FLIGHT until it ends
    now = 0.0
    for advance, action, pick in steps:
        now += advance
        expected = brute_force_ready_at([ended for _, ended in spans], windows, now)
        assert log.ready_at(now) == expected
        assert log.delay(now) == expected - now
        in_flight = [span for span in spans if span[1] == IN_FLIGHT]
        if action == "admit" and expected <= now:
            log.admit(now)
            spans.append([now, IN_FLIGHT])
        elif action == "admit":
            with pytest.raises(ValueError, match="no room"):
                log.admit(now)
        elif action == "end" and in_flight:
            log.end(now)
            in_flight[pick % len(in_flight)][1] = now  # which one ended does not matter
        elif action == "refund" and spans:
            victim = spans.pop(pick % len(spans))
            log.refund(victim[1])
    assert arrival_violations([(sent, ended) for sent, ended in spans], windows) == []


def test_a_request_in_flight_holds_its_slot_until_a_window_after_it_ends() -> None:
    log = SlidingLog([Window(2, 1.0)])
    log.admit(0.0)
    log.admit(0.0)
    assert log.ready_at(5.0) == IN_FLIGHT  # still in flight: it may yet reach the server
    log.end(5.0)  # answered at 5.0: the server counted it at 5.0 at the latest
    assert log.ready_at(5.0) == 6.0
    log.refund()  # the other one was never sent after all
    assert log.ready_at(5.0) == 5.0
    log.admit(5.0)
    log.end(5.5)
    log.refund(5.0)  # the first: given back by the time it ended
    assert log.count(Window(2, 1.0), 5.5) == 1
    assert log.ready_at(5.5) == 5.5


def test_end_with_nothing_in_flight_changes_nothing() -> None:
    log = SlidingLog([Window(1, 1.0)])
    log.end(1.0)
    assert log.ready_at(1.0) == 1.0


def test_ready_at_names_the_instant_the_oldest_relevant_entry_leaves() -> None:
    log = SlidingLog([Window(2, 1.0), Window(3, 10.0)])
    for t in (0.0, 0.4, 1.0):
        sent(log, t)
    assert log.ready_at(1.0) == 10.0  # the 10 s window is full until the entry at 0.0 leaves
    assert log.allowance(1.0) == 0
    log.refund(0.4)
    assert log.ready_at(1.0) == 1.0
    assert log.allowance(1.0) == 1


def test_refund_of_an_expired_admission_is_a_no_op() -> None:
    log = SlidingLog([Window(1, 1.0)])
    sent(log, 0.0)
    sent(log, 1.0)
    log.refund(0.0)
    assert log.ready_at(1.0) == 2.0


def test_time_must_not_go_backwards() -> None:
    log = SlidingLog([Window(5, 1.0)])
    log.admit(2.0)
    with pytest.raises(ValueError, match="backwards"):
        log.admit(1.0)
    with pytest.raises(ValueError, match="backwards"):
        log.end(1.0)


def test_no_windows_means_no_bound() -> None:
    log = SlidingLog([])
    for _ in range(1000):
        sent(log, 0.0)
    assert log.delay(0.0) == 0.0
    assert log.allowance(0.0) is None


@pytest.mark.parametrize(("limit", "seconds"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, float("inf"))])
def test_invalid_windows_are_refused(limit: int, seconds: float) -> None:
    with pytest.raises(ValueError):
        Window(limit, seconds)


def greedy(log: SlidingLog, count: int) -> list[float]:
    """Admit ``count`` requests as early as the log allows, all waiting from time 0."""
    times: list[float] = []
    now = 0.0
    for _ in range(count):
        now = log.ready_at(now)
        sent(log, now)
        times.append(now)
    return times


def test_documented_limits_over_an_hour_and_a_half_are_ideal_and_exact() -> None:
    times = greedy(SlidingLog(DOCUMENTED), 12_000)
    assert times == ideal_schedule(12_000, DOCUMENTED)
    assert violations(times, DOCUMENTED) == []
    # The hourly window is the real ceiling: request 10,001 waits for the first to leave it.
    assert times[10_000] == 3600.0
    assert max_in_any_window(times, 1.0) == 10
    assert max_in_any_window(times, 60.0) == 300


# -- the leaky bucket regression


class LeakyBucket:
    """aiolimiter's algorithm in miniature: level drains at N/W, admit while level + 1 <= N."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.rate = limit, limit / seconds
        self.level, self.last = 0.0, 0.0

    def try_admit(self, now: float) -> bool:
        self.level = max(0.0, self.level - (now - self.last) * self.rate)
        self.last = now
        if self.level + 1 <= self.limit:
            self.level += 1
            return True
        return False


def hammer(try_admit_at: object, until: float, tick: float = 0.001) -> list[float]:
    """Greedy demand: at every tick, take every admission on offer."""
    assert callable(try_admit_at)
    times: list[float] = []
    for step in range(round(until / tick)):
        now = step * tick
        while try_admit_at(now):
            times.append(now)
    return times


@given(st.integers(min_value=2, max_value=20))
def test_a_leaky_bucket_admits_2n_minus_1_in_the_first_window(limit: int) -> None:
    bucket_times = hammer(LeakyBucket(limit, 1.0).try_admit, until=3.0)
    assert max_in_any_window(bucket_times, 1.0) == 2 * limit - 1
    assert violations(bucket_times, [Window(limit, 1.0)]) != []

    log = SlidingLog([Window(limit, 1.0)])

    def log_admit(now: float) -> bool:
        if log.delay(now) > 0:
            return False
        sent(log, now)
        return True

    log_times = hammer(log_admit, until=3.0)
    assert max_in_any_window(log_times, 1.0) == limit
    assert violations(log_times, [Window(limit, 1.0)]) == []


def test_aiolimiter_itself_fails_the_exactness_check() -> None:
    """aiolimiter 1.3 configured to 10 per second, driven on a virtual loop clock."""

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        now = [0.0]
        loop.time = lambda: now[0]  # type: ignore[method-assign]
        limiter = aiolimiter.AsyncLimiter(10, 1.0)
        times: list[float] = []
        for step in range(3000):
            now[0] = step * 0.001
            while limiter.has_capacity():
                await limiter.acquire()
                times.append(now[0])
        return times

    times = asyncio.run(main())
    assert max_in_any_window(times, 1.0) == 19
    assert violations(times, [Window(10, 1.0)]) == [Window(10, 1.0)]


def test_a_rebuilt_log_remembers_which_admissions_were_polls() -> None:
    log = SlidingLog([Window(10, 1.0)], history=[0.0, 0.1, 0.2, 0.2], polls=[0.2])
    assert log.poll_count(Window(10, 1.0), 0.3) == 1
    log.refund(0.2)  # the trigger's: the poll stays
    assert log.poll_count(Window(10, 1.0), 0.3) == 1
    log.refund(0.2, poll=True)
    assert log.poll_count(Window(10, 1.0), 0.3) == 0
    assert log.count(Window(10, 1.0), 0.3) == 2
    with pytest.raises(ValueError, match="polls must be among"):
        SlidingLog([Window(10, 1.0)], history=[0.0], polls=[0.5])


def test_a_rebuilt_log_keeps_the_requests_in_flight_in_flight() -> None:
    log = SlidingLog([Window(2, 1.0)], history=[0.0, IN_FLIGHT, IN_FLIGHT], polls=[IN_FLIGHT])
    assert log.ready_at(5.0) == IN_FLIGHT
    log.end(5.0, poll=True)
    assert log.poll_count(Window(2, 1.0), 5.0) == 1
    assert log.ready_at(5.0) == 6.0  # the poll's slot leaves first; the trigger is still out
    log.end(5.5)
    assert log.ready_at(5.5) == 6.0
    assert log.poll_count(Window(2, 1.0), 6.0) == 0
    with pytest.raises(ValueError, match="backwards"):
        log.admit(5.4)
