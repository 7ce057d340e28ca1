"""Learning from responses: Retry-After, X-RateLimit-* measured on the server's clock, 429s."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import anyio
import pytest
from runner.clock import LoopClock
from runner.ratelimit import (
    RateLimiter,
    RateLimitInfo,
    RequestKind,
    Window,
    parse_rate_limit_headers,
)

from .limiter_support import run_virtual, violations

TRIGGER, URGENT = RequestKind.TRIGGER, RequestKind.URGENT
SERVER_EPOCH = 1_790_000_000.0  # the server's wall clock at virtual time 0
SKEWS = [-300.0, 0.0, 300.0]  # the local wall clock, five minutes off either way


def http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(math.floor(epoch), UTC), usegmt=True)


def server_headers(**fields: str | float) -> dict[str, str]:
    """Headers a server would send now, dated by its own clock (not ours)."""
    now = SERVER_EPOCH + anyio.current_time()
    names = {"limit": "X-RateLimit-Limit", "remaining": "x-ratelimit-remaining"}
    headers = {"Date": http_date(now)}
    for name, value in fields.items():
        if name == "reset_in":
            headers["X-RATELIMIT-RESET"] = str(math.floor(now) + int(value))
        elif name == "retry_after":
            headers["Retry-After"] = str(value)
        else:
            headers[names[name]] = str(value)
    return headers


# -- Retry-After


async def admitted_after(limiter: RateLimiter, kind: RequestKind = URGENT) -> float:
    async with limiter.acquire(kind):
        return anyio.current_time()


@pytest.mark.parametrize("skew", SKEWS)
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_pauses_everything_until_it_passes(skew: float, form: str) -> None:
    async def main() -> float:
        limiter = RateLimiter([], clock=LoopClock(SERVER_EPOCH + skew), concurrency=4)
        async with limiter.acquire(TRIGGER) as permit:
            await anyio.sleep(0.5)
            value = "30" if form == "seconds" else http_date(SERVER_EPOCH + 0.5 + 30)
            permit.observe(parse_rate_limit_headers(server_headers(retry_after=value), 429))
        started = anyio.current_time()
        assert started == 0.5
        [pause] = limiter.stats.pauses
        assert (pause.seconds, pause.capped) == (30.0, False)
        return await admitted_after(limiter)  # urgent or not, it waits

    assert run_virtual(main) == 30.5


def test_retry_after_on_503_pauses_too_but_not_on_a_success() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=4)
        limiter.observe(RateLimitInfo(status=200, retry_after=99.0), sent_at=0.0)
        times = [await admitted_after(limiter)]
        limiter.observe(RateLimitInfo(status=503, retry_after=5.0), sent_at=0.0)
        times.append(await admitted_after(limiter))
        return times

    assert run_virtual(main) == [0.0, 5.0]


def test_a_huge_retry_after_is_capped_and_reported() -> None:
    async def main() -> float:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=4, max_pause=120.0)
        limiter.observe(RateLimitInfo(status=429, retry_after=86_400.0), sent_at=0.0)
        stats = limiter.stats
        assert stats.capped_retry_afters == (86_400.0,)
        [pause] = stats.pauses
        assert (pause.seconds, pause.requested, pause.capped) == (120.0, 86_400.0, True)
        assert stats.throttled == 1
        return await admitted_after(limiter)

    assert run_virtual(main) == 120.0


def test_a_429_without_retry_after_waits_for_the_reset() -> None:
    async def main() -> float:
        limiter = RateLimiter([Window(10, 1.0)], clock=LoopClock(), concurrency=4)
        async with limiter.acquire(TRIGGER) as permit:
            headers = server_headers(limit=10, remaining=0, reset_in=7, retry_after="garbage")
            permit.observe(parse_rate_limit_headers(headers, 429))
        return await admitted_after(limiter)

    assert run_virtual(main) == 7.0


def test_a_bare_429_backs_off_with_jitter_and_a_burst_counts_once() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=8, random=lambda: 0.5)
        bare = RateLimitInfo(status=429)
        for _ in range(5):  # five requests in flight when the server started refusing
            limiter.observe(bare, sent_at=0.0)
        first = await admitted_after(limiter)
        limiter.observe(bare, sent_at=first)  # sent after the reaction: the backoff grows
        second = await admitted_after(limiter)
        limiter.observe(RateLimitInfo(status=200), sent_at=second)  # a success resets it
        limiter.observe(bare, sent_at=second)
        third = await admitted_after(limiter)
        assert limiter.stats.throttled == 7
        return [first, second - first, third - second]

    # full jitter with random() = 0.5: 0.5 * 1 s, then 0.5 * 2 s, then 0.5 * 1 s again
    assert run_virtual(main) == [0.5, 1.0, 0.5]


def test_pause_is_global_only_extends_and_is_recorded() -> None:
    async def main() -> float:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=4)
        limiter.pause(10.0, reason="outage: every request refused")
        limiter.pause(3.0, reason="shorter: ignored")
        assert [p.reason for p in limiter.stats.pauses] == ["outage: every request refused"]
        with pytest.raises(ValueError):
            limiter.pause(-1.0, reason="nonsense")
        return await admitted_after(limiter)

    assert run_virtual(main) == 10.0


# -- X-RateLimit-Remaining and Reset


@pytest.mark.parametrize("skew", SKEWS)
def test_remaining_below_the_model_caps_admissions_until_the_server_reset(skew: float) -> None:
    """The local wall clock is 5 min off: the reset is still measured as reset - Date."""

    async def main() -> list[float]:
        windows = [Window(10, 1.0), Window(300, 60.0)]
        limiter = RateLimiter(windows, clock=LoopClock(SERVER_EPOCH + skew), concurrency=10)
        admitted: list[float] = []

        async def client(observe: bool) -> None:
            async with limiter.acquire(TRIGGER) as permit:
                admitted.append(anyio.current_time())
                await anyio.sleep(0.25)
                if observe:  # the server has 5 left, its window resets in 20 s (server clock)
                    headers = server_headers(limit=300, remaining=5, reset_in=20)
                    permit.observe(parse_rate_limit_headers(headers, 201))
                elif anyio.current_time() > 20:  # after the reset the server has room again
                    headers = server_headers(limit=300, remaining=290, reset_in=60)
                    permit.observe(parse_rate_limit_headers(headers, 201))

        async with anyio.create_task_group() as tg:
            tg.start_soon(client, True)  # noqa: FBT003
            await anyio.sleep(0)
            for _ in range(3):  # admitted after the observed request: they spend part of the 5
                tg.start_soon(client, False)  # noqa: FBT003
            await anyio.sleep(0.5)
            for _ in range(10):
                tg.start_soon(client, False)  # noqa: FBT003
        assert limiter.stats.learned_caps >= 1
        assert violations(admitted, windows) == []
        return admitted

    admitted = run_virtual(main)
    # 4 at t=0, then only 5 - 3 = 2 more until the reset at 0.25 + 20 s on the monotonic clock
    # (paced within the seconds a neighbour using 294 of the minute leaves us); then one probe,
    # whose answer lets the rest go.
    assert admitted[:4] == [0.0] * 4
    assert all(0.5 <= t < 20.0 for t in admitted[4:6])
    assert admitted[6] == 20.25
    assert all(t >= 20.5 for t in admitted[7:])


@pytest.mark.parametrize(("extra", "capped"), [(1, False), (2, True)])
def test_a_configured_window_is_capped_only_beyond_what_requests_in_flight_explain(
    extra: int, *, capped: bool
) -> None:
    """The server counts arrivals, the log admissions: up to ``concurrency`` apart is timing.

    Each response reports the 10-per-second window with ``extra`` more of its slots used than
    the log had admitted when that request went out (as when requests overtake each other in
    flight). With one request in flight, one more is no news: the window's rate goes on (20 in
    2 s). One more than could be in flight is: caps (each for at most the window's length, the
    header naming a window we know) hold some back past the window's own pace.
    """

    async def main() -> list[float]:
        windows = [Window(10, 1.0), Window(300, 60.0)]
        limiter = RateLimiter(windows, clock=LoopClock(SERVER_EPOCH), concurrency=1)
        admitted: list[float] = []

        async def client() -> None:
            async with limiter.acquire(TRIGGER) as permit:
                now = anyio.current_time()
                mine = sum(1 for t in admitted if t > now - 1.0)  # the log's count, before this
                admitted.append(now)
                remaining = max(10 - mine - 1 - extra, 0)
                headers = server_headers(limit=10, remaining=remaining, reset_in=5)
                permit.observe(parse_rate_limit_headers(headers, 201))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(client)
        assert violations(admitted, windows) == []
        assert (limiter.stats.learned_caps > 0) is capped
        return admitted

    admitted = run_virtual(main)
    if capped:
        assert admitted[-1] > 1.0
    else:
        assert admitted == [0.0] * 10 + [1.0] * 10


def test_a_spent_small_window_is_heard_even_with_more_permits_than_it_holds() -> None:
    """Headroom makes the permits (9) more than the window holds (10 per second minus the one
    sent): the timing slack is at most half the window, so "0 remaining" still caps."""

    async def main() -> int:
        windows = [Window(10, 1.0)]
        limiter = RateLimiter(windows, clock=LoopClock(SERVER_EPOCH), concurrency=1, headroom=8)
        async with limiter.acquire(TRIGGER) as permit:  # the log expects 9 left
            headers = server_headers(limit=10, remaining=0, reset_in=1)
            permit.observe(parse_rate_limit_headers(headers, 201))
        return limiter.stats.learned_caps

    assert run_virtual(main) == 1


def test_remaining_never_raises_the_configured_limits() -> None:
    async def main() -> list[float]:
        windows = [Window(3, 1.0)]
        limiter = RateLimiter(windows, clock=LoopClock(), concurrency=10)
        admitted: list[float] = []

        async def client() -> None:
            async with limiter.acquire(TRIGGER) as permit:
                admitted.append(anyio.current_time())
                headers = server_headers(limit=1000, remaining=999, reset_in=60)
                permit.observe(parse_rate_limit_headers(headers, 200))

        async with anyio.create_task_group() as tg:
            for _ in range(9):
                tg.start_soon(client)
        assert limiter.stats.learned_caps == 0
        assert violations(admitted, windows) == []
        return admitted

    assert run_virtual(main) == [0.0] * 3 + [1.0] * 3 + [2.0] * 3


def test_time_based_observe_counts_later_admissions_as_in_flight() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=10)
        for _ in range(4):
            await admitted_after(limiter, TRIGGER)
        await anyio.sleep(1.0)
        info = RateLimitInfo(status=200, remaining=6, reset_epoch=1030.0, date_epoch=1000.0)
        limiter.observe(info, sent_at=0.0)  # the 4 at t=0 (itself included) count as in flight
        return [await admitted_after(limiter, TRIGGER) for _ in range(3)]

    assert run_virtual(main) == [1.0, 1.0, 31.0]


def test_a_reset_already_past_or_without_a_date_is_not_a_cap() -> None:
    async def main() -> float:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=10)
        past = RateLimitInfo(status=200, remaining=0, reset_epoch=990.0, date_epoch=1000.0)
        undated = RateLimitInfo(status=200, remaining=0, reset_epoch=10**10)
        limiter.observe(past, sent_at=0.0)
        limiter.observe(undated, sent_at=0.0)  # local wall clock never consulted
        assert limiter.stats.learned_caps == 0
        return await admitted_after(limiter)

    assert run_virtual(main) == 0.0


# -- unknown limits: learn them from the headers


class FixedWindowServer:
    """A server enforcing ``limit`` per fixed ``seconds`` window, with 1 s resolution Dates."""

    def __init__(self, limit: int, seconds: int) -> None:
        self.limit, self.seconds = limit, seconds
        self.counts: dict[int, int] = {}
        self.accepted: list[float] = []
        self.refused = 0

    def handle(self) -> dict[str, str]:
        """Process a request now; the headers of a 429 carry a Retry-After."""
        now = SERVER_EPOCH + anyio.current_time()
        window = math.floor(now / self.seconds)
        used = self.counts.get(window, 0)
        reset = (window + 1) * self.seconds
        ok = used < self.limit
        self.counts[window] = used + ok
        self.accepted += [now] if ok else []
        self.refused += not ok
        return {
            "Date": http_date(now),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - used - ok)),
            "X-RateLimit-Reset": str(reset),
            **({} if ok else {"Retry-After": str(math.ceil(reset - now))}),
        }


def test_unknown_limits_are_learned_so_429s_stay_rare() -> None:
    server = FixedWindowServer(limit=20, seconds=60)
    jitter = random.Random(3)

    async def main() -> None:
        limiter = RateLimiter([], clock=LoopClock(SERVER_EPOCH - 120), concurrency=5)
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < 200:
                async with limiter.acquire(TRIGGER) as permit:
                    await anyio.sleep(0.05 + jitter.random() * 0.1)  # request reaches the server
                    headers = server.handle()
                    await anyio.sleep(0.05)
                    status = 429 if "Retry-After" in headers else 201
                    permit.observe(parse_rate_limit_headers(headers, status))
                done += status == 201

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(worker)
        assert limiter.stats.learned_windows == (Window(20, limiter.windows[0].seconds),)

    run_virtual(main)
    assert len(server.accepted) >= 200
    assert server.refused <= 0.05 * len(server.accepted)


@pytest.mark.parametrize(
    ("reset_in", "learned"),
    [(57, 60.0), (59, 60.0), (60, 60.0), (40, 40.0), (3_300, 3_600.0), (2, 2.0), (95, 95.0)],
)
def test_a_learned_window_just_short_of_a_standard_length_is_taken_as_it(
    reset_in: int, learned: float
) -> None:
    # The headers of a minute's window first show when another window stops being the tighter,
    # seconds after the minute began: 57 s to its reset is a minute seen 3 s late.
    async def main() -> tuple[Window, ...]:
        limiter = RateLimiter([], clock=LoopClock(SERVER_EPOCH), concurrency=1)
        async with limiter.acquire(TRIGGER) as permit:
            headers = server_headers(limit=120, remaining=100, reset_in=reset_in)
            permit.observe(parse_rate_limit_headers(headers, 201))
        return limiter.stats.learned_windows

    assert run_virtual(main) == (Window(120, learned),)


def test_after_a_cap_expires_one_probe_goes_out_until_an_answer_comes() -> None:
    """A sliding window's reset frees a slot, not the whole quota: probe before trusting it."""

    async def main() -> list[float]:
        limiter = RateLimiter([Window(100, 60.0)], clock=LoopClock(SERVER_EPOCH), concurrency=10)
        admitted: list[float] = []

        async def first() -> None:
            async with limiter.acquire(TRIGGER) as permit:
                admitted.append(anyio.current_time())
                headers = server_headers(limit=100, remaining=0, reset_in=5)
                permit.observe(parse_rate_limit_headers(headers, 201))

        async def silent() -> None:  # no answer for a long time: a hanging request
            async with limiter.acquire(TRIGGER):
                admitted.append(anyio.current_time())
                await anyio.sleep(30.0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.sleep(0.1)
            for _ in range(3):
                tg.start_soon(silent)
        return admitted

    admitted = run_virtual(main)
    # Blocked until the reset (5 s), then one probe; while it hangs, the next probe 10 s later.
    assert admitted == [0.0, 5.0, 15.0, 25.0]


def test_a_probe_that_fails_without_an_answer_lets_the_next_one_go_at_once() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter(
            [Window(100, 60.0)], clock=LoopClock(SERVER_EPOCH), concurrency=10, probe_first=True
        )
        admitted: list[float] = []

        async def client(index: int) -> None:
            async with limiter.acquire(TRIGGER) as permit:
                admitted.append(anyio.current_time())
                await anyio.sleep(1.0)
                if index >= 2:  # the first two end in network errors: nothing to observe
                    headers = server_headers(limit=100, remaining=90, reset_in=60)
                    permit.observe(parse_rate_limit_headers(headers, 201))

        async with anyio.create_task_group() as tg:
            for index in range(5):
                tg.start_soon(client, index)
                await anyio.sleep(0)
        return sorted(admitted)

    # One at a time while nothing is learned (no 10 s stall), then the rest together.
    assert run_virtual(main) == [0.0, 1.0, 2.0, 3.0, 3.0]
