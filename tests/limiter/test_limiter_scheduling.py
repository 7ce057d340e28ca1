"""The limiter under virtual time: exact, never idle, fast, prioritised, and leak-free."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runner.clock import LoopClock
from runner.ratelimit import RateLimiter, RequestKind, Window

from .limiter_support import arrival_violations, ideal_schedule, run_virtual

TRIGGER, POLL, URGENT = RequestKind.TRIGGER, RequestKind.POLL, RequestKind.URGENT
DOCUMENTED = (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0))


@dataclass
class Visit:
    """One request's life: when it asked, was admitted, and let go of its slot."""

    order: int
    arrived: float
    admitted: float
    released: float


async def drive(
    limiter: RateLimiter, requests: list[tuple[float, float]], kind: RequestKind = TRIGGER
) -> list[Visit]:
    """Each request arrives after its delay, holds its permit for its hold time, then leaves."""
    visits: list[Visit] = []

    async def client(delay: float, hold: float) -> None:
        await anyio.sleep(delay)
        arrived = anyio.current_time()
        async with limiter.acquire(kind) as permit:
            visit = Visit(permit._seq, arrived, anyio.current_time(), -1.0)
            visits.append(visit)
            await anyio.sleep(hold)
        visit.released = anyio.current_time()

    async with anyio.create_task_group() as tg:
        for delay, hold in requests:
            tg.start_soon(client, delay, hold)
    # Trio runs woken tasks in random order: sort by the order the limiter granted them.
    return sorted(visits, key=lambda v: v.order)


def earliest_possible(
    visits: list[Visit], k: int, windows: list[Window], concurrency: int
) -> float:
    """When visit k could go at the earliest, given the visits admitted before it (FIFO): each
    of them takes a slot of every window until one window after it let go."""
    visit = visits[k]
    earliest = max(visit.arrived, visits[k - 1].admitted) if k else visit.arrived
    for w in windows:
        if k >= w.limit:
            leaving = sorted(v.released + w.seconds for v in visits[:k])
            earliest = max(earliest, leaving[k - w.limit])
    if k >= concurrency:
        releases = sorted(v.released for v in visits[:k])
        earliest = max(earliest, releases[k - concurrency])
    return earliest


windows_strategy = st.lists(
    st.builds(
        Window,
        limit=st.integers(min_value=1, max_value=5),
        seconds=st.sampled_from([0.5, 0.7, 1.0, 1.5, 2.0, 3.0]),
    ),
    max_size=3,
)
requests_strategy = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0, 1.5, 3.0]),
        st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(
    windows=windows_strategy,
    concurrency=st.integers(min_value=1, max_value=4),
    requests=requests_strategy,
)
def test_admissions_are_exact_fifo_and_never_idle(
    windows: list[Window], concurrency: int, requests: list[tuple[float, float]]
) -> None:
    async def main() -> list[Visit]:
        limiter = RateLimiter(windows, clock=LoopClock(), concurrency=concurrency)
        visits = await drive(limiter, requests)
        assert (limiter.in_flight, limiter.waiting) == (0, 0)
        return visits

    visits = run_virtual(main)
    assert len(visits) == len(requests)
    assert arrival_violations([(v.admitted, v.released) for v in visits], windows) == []
    for k, visit in enumerate(visits):
        # No idle gap: admitted the moment the windows and a free slot allowed, not later.
        assert visit.admitted == pytest.approx(earliest_possible(visits, k, windows, concurrency))
        # FIFO, and never more than `concurrency` in flight.
        assert all(v.arrived <= visit.arrived for v in visits[:k])
        holding = sum(1 for v in visits[:k] if v.released > visit.admitted)
        assert holding < concurrency


@pytest.mark.parametrize(("hold", "last"), [(0.0, 379.0), (0.2, 384.0)])
def test_documented_limits_sustain_the_ideal_rate(hold: float, last: float) -> None:
    """2,000 triggers under 10/s, 300/min, 10,000/h finish at the theoretical minimum."""
    count = 2000

    async def main() -> list[Visit]:
        limiter = RateLimiter(DOCUMENTED, clock=LoopClock(), concurrency=10)
        return await drive(limiter, [(0.0, hold)] * count)

    visits = run_virtual(main)
    times = [v.admitted for v in visits]
    ideal = ideal_schedule(count, DOCUMENTED, hold=hold)
    assert arrival_violations([(v.admitted, v.released) for v in visits], DOCUMENTED) == []
    # Instant answers: six full minutes of 300, then 200 more at 10/s, the last at 379 s. Each
    # slot is taken until a window after its answer: 0.2 s answers make 10 per 1.2 s.
    assert ideal[-1] == pytest.approx(last)
    assert times == pytest.approx(ideal)
    # Over whole minutes the rate is the tightest window that binds (300/min).
    assert sum(1 for t in times if t < 360.0 + 6 * hold) == 6 * 300


def test_no_windows_is_a_pure_concurrency_limit() -> None:
    async def main() -> list[Visit]:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=3)
        return await drive(limiter, [(0.0, 1.0)] * 7)

    assert [v.admitted for v in run_virtual(main)] == [0.0] * 3 + [1.0] * 3 + [2.0]


# -- priorities


async def queue_up(limiter: RateLimiter, kinds: list[RequestKind], hold: float = 0.0) -> list[str]:
    """Queue ``kinds`` in this order behind an in-flight trigger; return the admission order."""
    order: list[str] = []

    async def client(label: str, kind: RequestKind) -> None:
        async with limiter.acquire(kind):
            order.append(label)
            await anyio.sleep(hold)

    async with anyio.create_task_group() as tg:
        tg.start_soon(client, "first", TRIGGER)
        await anyio.sleep(0.1)
        for index, kind in enumerate(kinds):
            tg.start_soon(client, f"{kind.name.lower()}{index}", kind)
            await anyio.sleep(0)
    return order


def test_urgent_jumps_the_queue_then_polls_then_triggers() -> None:
    async def main() -> list[str]:
        limiter = RateLimiter([Window(1, 1.0)], clock=LoopClock(), concurrency=1, poll_share=1.0)
        return await queue_up(limiter, [TRIGGER, TRIGGER, POLL, POLL, URGENT, URGENT])

    assert run_virtual(main) == [
        "first", "urgent4", "urgent5", "poll2", "poll3", "trigger0", "trigger1"
    ]  # fmt: skip


def test_a_poll_goes_first_then_polls_get_their_share() -> None:
    async def main() -> list[str]:
        limiter = RateLimiter([Window(1, 1.0)], clock=LoopClock(), concurrency=1, poll_share=0.2)
        kinds = [TRIGGER] * 8 + [POLL] * 3
        return await queue_up(limiter, kinds)

    order = run_virtual(main)
    kinds = [label.rstrip("0123456789") for label in order[1:]]
    assert kinds == ["poll", *["trigger"] * 4, "poll", *["trigger"] * 4, "poll"]


@pytest.mark.parametrize("share", [0.1, 0.2, 0.5, 0.9])
def test_poll_share_holds_while_both_kinds_saturate(share: float) -> None:
    async def main() -> list[RequestKind]:
        limiter = RateLimiter([Window(1, 1.0)], clock=LoopClock(), concurrency=1, poll_share=share)
        admitted: list[tuple[int, RequestKind]] = []

        async def client(kind: RequestKind) -> None:
            async with limiter.acquire(kind) as permit:
                admitted.append((permit._seq, kind))

        async with anyio.create_task_group() as tg:
            tg.start_soon(client, TRIGGER)  # takes the window: everybody else queues
            await anyio.sleep(0.5)
            for _ in range(100):
                tg.start_soon(client, TRIGGER)
                tg.start_soon(client, POLL)
        return [kind for _, kind in sorted(admitted)[1:]]

    admitted = run_virtual(main)
    last_trigger = len(admitted) - 1 - admitted[::-1].index(TRIGGER)
    last_poll = len(admitted) - 1 - admitted[::-1].index(POLL)
    contested = admitted[: min(last_trigger, last_poll) + 1]
    for n in range(1, len(contested) + 1):
        polls = contested[:n].count(POLL)
        assert polls >= n * share - 1  # polls get their share...
        assert n - polls >= n * (1 - share) - 1  # ...and triggers are not starved either
    if share < 0.5:  # the triggers run out first: then polls take everything at once
        assert admitted[last_trigger + 1 :] == [POLL] * (len(admitted) - last_trigger - 1)
        assert len(admitted) - last_trigger - 1 > 0


# -- cancellation and refunds


def test_a_cancelled_waiter_leaves_no_trace() -> None:
    async def main() -> None:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=1)
        order: list[str] = []
        release = anyio.Event()

        async def client(label: str, scope: anyio.CancelScope | None = None) -> None:
            with scope or anyio.CancelScope():
                async with limiter.acquire(TRIGGER):
                    order.append(label)
                    if label == "holder":
                        await release.wait()

        victim = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(client, "holder")
            await anyio.sleep(0.1)
            tg.start_soon(client, "victim", victim)
            tg.start_soon(client, "next")
            await anyio.sleep(1.0)
            assert limiter.waiting == 2
            victim.cancel()
            await anyio.sleep(0.1)
            assert limiter.waiting == 1
            release.set()
        assert order == ["holder", "next"]
        stats = limiter.stats
        assert stats.admitted[TRIGGER] == 2
        assert (stats.in_flight, stats.waiting) == (0, 0)

    run_virtual(main)


def test_cancelling_the_waiter_that_holds_the_timer_does_not_stall_the_others() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter([Window(1, 10.0)], clock=LoopClock(), concurrency=5)
        admitted: list[float] = []

        async def client(scope: anyio.CancelScope) -> None:
            with scope:
                async with limiter.acquire(TRIGGER):
                    admitted.append(anyio.current_time())

        scopes = [anyio.CancelScope() for _ in range(3)]
        async with anyio.create_task_group() as tg:
            for scope in scopes:
                tg.start_soon(client, scope)
                await anyio.sleep(0)
            await anyio.sleep(5.0)
            scopes[1].cancel()  # the head of the queue: it is the one sleeping until t=10
        return admitted

    assert run_virtual(main) == [0.0, 10.0]


def test_a_waiter_cancelled_as_it_is_granted_hands_the_slot_on() -> None:
    async def main() -> None:
        limiter = RateLimiter([Window(2, 10.0)], clock=LoopClock(), concurrency=1)
        admitted: list[tuple[str, float]] = []
        release = anyio.Event()
        victim = anyio.CancelScope()

        async def holder() -> None:
            async with limiter.acquire(TRIGGER):
                admitted.append(("holder", anyio.current_time()))
                await release.wait()
            victim.cancel()  # granted on our exit, cancelled before it could run

        async def client(label: str, scope: anyio.CancelScope) -> None:
            with scope:
                async with limiter.acquire(TRIGGER):
                    admitted.append((label, anyio.current_time()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await anyio.sleep(0)
            tg.start_soon(client, "victim", victim)
            await anyio.sleep(0)
            tg.start_soon(client, "next", anyio.CancelScope())
            await anyio.sleep(1.0)
            release.set()
        # The victim's window slot came back, so "next" did not wait for the 10 s window.
        assert admitted == [("holder", 0.0), ("next", 1.0)]
        assert limiter.stats.admitted[TRIGGER] == 2
        assert (limiter.in_flight, limiter.waiting) == (0, 0)

    run_virtual(main)


def test_refund_returns_the_window_slots() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter([Window(1, 10.0)], clock=LoopClock(), concurrency=1)
        admitted: list[float] = []
        async with limiter.acquire(TRIGGER) as permit:
            admitted.append(anyio.current_time())
            permit.refund()  # connection refused: never sent
            permit.refund()  # idempotent
        async with limiter.acquire(URGENT) as permit:
            admitted.append(anyio.current_time())
        permit.refund()  # also allowed after leaving the block
        async with limiter.acquire(URGENT):
            admitted.append(anyio.current_time())
        async with limiter.acquire(URGENT):
            admitted.append(anyio.current_time())
        assert limiter.stats.refunded[TRIGGER] == 1
        assert limiter.stats.refunded[URGENT] == 1
        return admitted

    assert run_virtual(main) == [0.0, 0.0, 0.0, 10.0]


def test_misuse_of_a_permit_is_refused() -> None:
    async def main() -> None:
        limiter = RateLimiter([], clock=LoopClock(), concurrency=1)
        permit = limiter.acquire(TRIGGER)
        with pytest.raises(RuntimeError):
            permit.refund()
        with pytest.raises(RuntimeError):
            _ = permit.admitted_at
        async with permit:
            pass
        with pytest.raises(RuntimeError):
            async with permit:
                pass

    run_virtual(main)


@pytest.mark.parametrize(
    ("concurrency", "poll_share", "max_pause"),
    [(0, 0.2, 300.0), (1, -0.1, 300.0), (1, 1.5, 300.0), (1, 0.2, 0.0), (1, 0.2, float("inf"))],
)
def test_invalid_limiter_settings_are_refused(
    concurrency: int, poll_share: float, max_pause: float
) -> None:
    with pytest.raises(ValueError):
        RateLimiter(
            [],
            clock=LoopClock(),
            concurrency=concurrency,
            poll_share=poll_share,
            max_pause=max_pause,
        )


@pytest.mark.parametrize("setting", ["poll_reserve", "trigger_reserve"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_reserves_outside_0_to_1_are_refused(setting: str, value: float) -> None:
    shares = {"poll_reserve": 0.2, "trigger_reserve": 0.2} | {setting: value}
    with pytest.raises(ValueError, match=setting):
        RateLimiter(
            [],
            clock=LoopClock(),
            concurrency=1,
            poll_reserve=shares["poll_reserve"],
            trigger_reserve=shares["trigger_reserve"],
        )


# -- the poll reserve: polls find a slot at once, and neither kind starves


@dataclass
class KindVisit:
    """A visit and what it was for."""

    order: int
    kind: RequestKind
    arrived: float
    admitted: float
    released: float = -1.0


async def drive_kinds(
    limiter: RateLimiter, requests: list[tuple[float, float, RequestKind]]
) -> list[KindVisit]:
    """Like :func:`drive`, each request with its own kind; sorted by the order of admission."""
    visits: list[KindVisit] = []

    async def client(delay: float, hold: float, kind: RequestKind) -> None:
        await anyio.sleep(delay)
        arrived = anyio.current_time()
        async with limiter.acquire(kind) as permit:
            visit = KindVisit(permit._seq, kind, arrived, anyio.current_time())
            visits.append(visit)
            await anyio.sleep(hold)
        visit.released = anyio.current_time()

    async with anyio.create_task_group() as tg:
        for delay, hold, kind in requests:
            tg.start_soon(client, delay, hold, kind)
    return sorted(visits, key=lambda v: v.order)


def poll_slots(
    limit: int, poll_reserve: float = 0.2, trigger_reserve: float = 0.2
) -> tuple[int, int]:
    """``R`` and ``P`` of a window, as the priority module defines them (no neighbour)."""
    reserve = max(0, min(math.floor(limit * Fraction(poll_reserve)), limit - 1))
    triggers = min(math.ceil(limit * Fraction(trigger_reserve)), limit - reserve)
    return reserve, limit - triggers


def test_due_polls_find_a_slot_in_the_middle_of_a_trigger_phase() -> None:
    """Under the documented limits, triggers fill each minute in 30 s; a poll every 3 s."""
    requests = [(0.0, 0.2, TRIGGER)] * 1500 + [(1.0 + 3 * k, 0.2, POLL) for k in range(60)]

    def poll_waits(poll_reserve: float = 0.2) -> list[float]:
        async def main() -> list[KindVisit]:
            limiter = RateLimiter(
                DOCUMENTED, clock=LoopClock(), concurrency=10, poll_reserve=poll_reserve
            )
            return await drive_kinds(limiter, requests)

        visits = run_virtual(main)
        assert arrival_violations([(v.admitted, v.released) for v in visits], DOCUMENTED) == []
        return [v.admitted - v.arrived for v in visits if v.kind == POLL]

    # With the reserve a poll waits at most for the 1 s window and a 0.2 s answer (the minute
    # keeps 60 for it)...
    assert max(poll_waits()) <= 1.0 + 0.2 + 1e-9
    # ...without it, for the minute to open again: up to half of it.
    assert max(poll_waits(poll_reserve=0.0)) >= 20.0


def test_under_a_flood_each_kind_keeps_its_reserve() -> None:
    """Polls go first up to their budget P = 8 of 10; the triggers' reserve T = 2 is theirs."""

    async def main() -> list[KindVisit]:
        limiter = RateLimiter([Window(10, 1.0)], clock=LoopClock(), concurrency=100)
        fill = [(0.0, 0.0, TRIGGER)] * 10  # the window is full: everybody else queues
        return await drive_kinds(limiter, fill + [(0.5, 0.0, POLL), (0.5, 0.0, TRIGGER)] * 100)

    visits = run_virtual(main)
    for second in range(1, 11):
        inside = [v.kind for v in visits if second <= v.admitted < second + 1]
        assert (inside.count(POLL), inside.count(TRIGGER)) == (8, 2)
        # Polls first, within their budget; then the triggers.
        assert inside == [POLL] * 8 + [TRIGGER] * 2


def test_triggers_get_the_rest_of_every_window_but_the_poll_reserve() -> None:
    """Two polls a second beside a flood of triggers: every poll goes the moment it arrives, and
    triggers get at least ``limit - R - polls`` = 10 - 2 - 2 of every second."""

    async def main() -> list[KindVisit]:
        limiter = RateLimiter([Window(10, 1.0)], clock=LoopClock(), concurrency=100)
        triggers = [(0.0, 0.0, TRIGGER)] * 80
        polls = [(second + offset, 0.0, POLL) for second in range(8) for offset in (0.25, 0.75)]
        return await drive_kinds(limiter, triggers + polls)

    visits = run_virtual(main)
    assert arrival_violations([(v.admitted, v.released) for v in visits], [Window(10, 1.0)]) == []
    polls = [v for v in visits if v.kind == POLL]
    assert all(v.admitted == v.arrived for v in polls if v.arrived >= 1.0)
    last_trigger = max(v.admitted for v in visits if v.kind == TRIGGER)
    for second in range(1, math.floor(last_trigger)):
        inside = [v.kind for v in visits if second <= v.admitted < second + 1]
        assert inside.count(TRIGGER) >= 10 - 2 - 2


def test_the_reserve_lifts_when_the_last_poll_leaves_and_none_waits() -> None:
    async def main() -> list[KindVisit]:
        limiter = RateLimiter([Window(10, 1.0)], clock=LoopClock(), concurrency=100)
        return await drive_kinds(limiter, [(0.0, 0.0, POLL)] + [(0.1, 0.0, TRIGGER)] * 30)

    triggers = [v.admitted for v in run_virtual(main) if v.kind == TRIGGER]
    # 7 leave R = 2 free beside the poll; when the poll leaves at 1.0, the 3 slots are the
    # triggers' at once, and from then on the whole window is.
    expected = [0.1] * 7 + [1.0] * 3 + [1.1] * 7 + [2.0] * 3 + [2.1] * 7 + [3.0] * 3
    assert triggers == pytest.approx(expected)


def test_a_trigger_waits_for_the_reserve_to_lift_not_for_the_window() -> None:
    async def main() -> list[KindVisit]:
        limiter = RateLimiter([Window(10, 1.0)], clock=LoopClock(), concurrency=100)
        # Urgent work does not leave the reserve free: 10 in the window, one a poll.
        requests = [(0.0, 0.0, POLL)] + [(0.1, 0.0, URGENT)] * 9 + [(0.2, 0.0, TRIGGER)]
        return await drive_kinds(limiter, requests)

    trigger = next(v for v in run_virtual(main) if v.kind == TRIGGER)
    # 2 would have to leave for R = 2 to be free (at 1.1); the poll leaving lifts it at 1.0.
    assert trigger.admitted == 1.0


def test_a_poll_goes_while_the_reserve_of_another_window_holds_the_triggers() -> None:
    """The polls have used their budget in the short window (triggers' turn), but the long
    window keeps its reserve from the triggers: the poll goes rather than nobody."""
    windows = [Window(5, 1.0), Window(12, 10.0)]  # (R, P): (1, 4) and (2, 9)

    async def main() -> list[KindVisit]:
        limiter = RateLimiter(windows, clock=LoopClock(), concurrency=100)
        requests = [(0.0, 0.0, TRIGGER)] * 6 + [(2.0, 0.0, POLL)] * 4
        requests += [(2.4, 0.0, TRIGGER), (2.5, 0.0, POLL)]
        return await drive_kinds(limiter, requests)

    visits = run_virtual(main)
    assert [v.admitted for v in visits if v.kind == POLL] == [2.0] * 4 + [2.5]
    assert arrival_violations([(v.admitted, v.released) for v in visits], windows) == []


def test_without_polls_triggers_keep_the_whole_window() -> None:
    """A run that does not follow (``--no-wait``) never pays for the reserve."""

    async def main() -> list[KindVisit]:
        limiter = RateLimiter([Window(10, 1.0)], clock=LoopClock(), concurrency=100)
        return await drive_kinds(limiter, [(0.0, 0.0, TRIGGER)] * 30)

    assert [v.admitted for v in run_virtual(main)] == [0.0] * 10 + [1.0] * 10 + [2.0] * 10


mixed_requests_strategy = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0, 1.5, 3.0]),
        st.sampled_from([0.0, 0.1, 0.5, 1.0]),
        st.sampled_from(RequestKind),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(
    windows=st.lists(
        st.builds(
            Window,
            limit=st.integers(min_value=1, max_value=12),
            seconds=st.sampled_from([0.5, 1.0, 1.5, 3.0]),
        ),
        max_size=3,
    ),
    concurrency=st.integers(min_value=1, max_value=6),
    requests=mixed_requests_strategy,
    shares=st.sampled_from([(0.2, 0.2), (0.5, 0.0), (0.0, 0.5), (0.3, 0.3)]),
)
def test_mixed_kinds_are_exact_and_triggers_leave_the_poll_reserve(
    windows: list[Window],
    concurrency: int,
    requests: list[tuple[float, float, RequestKind]],
    shares: tuple[float, float],
) -> None:
    poll_reserve, trigger_reserve = shares

    async def main() -> list[KindVisit]:
        limiter = RateLimiter(
            windows,
            clock=LoopClock(),
            concurrency=concurrency,
            poll_reserve=poll_reserve,
            trigger_reserve=trigger_reserve,
        )
        visits = await drive_kinds(limiter, requests)
        assert (limiter.in_flight, limiter.waiting) == (0, 0)
        return visits

    visits = run_virtual(main)
    assert len(visits) == len(requests)
    assert arrival_violations([(v.admitted, v.released) for v in visits], windows) == []
    for k, visit in enumerate(visits):
        if visit.kind != TRIGGER:
            continue
        for w in windows:
            before = [v for v in visits[:k] if v.released + w.seconds > visit.admitted]
            polls = sum(1 for v in before if v.kind == POLL)
            if polls:  # polling is active in this window: the trigger left the reserve free
                reserve, budget = poll_slots(w.limit, poll_reserve, trigger_reserve)
                assert len(before) + max(0, min(reserve, budget - polls)) < w.limit
