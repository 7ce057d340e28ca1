"""Who goes next: the reserves of each window, the polls' budget, and the poll share.

The rule is the one the priority module's docstring states; brute force checks it exactly.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runner.ratelimit import RequestKind, SlidingLog, Window
from runner.ratelimit.priority import (
    PollCredit,
    Reserves,
    next_kind,
    poll_budget_applies,
    polls_within_budget,
    trigger_ready_at,
)
from runner.ratelimit.sliding_log import IN_FLIGHT

from .limiter_support import arrival_violations, brute_force_ready_at, sent

DOCUMENTED = (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0))
FIFTHS = Reserves(Fraction(1, 5), Fraction(1, 5))
TRIGGER, POLL, URGENT = RequestKind.TRIGGER, RequestKind.POLL, RequestKind.URGENT

# -- the poll reserve and the polls' budget

reserve_windows_strategy = st.lists(
    st.builds(
        Window,
        limit=st.integers(min_value=1, max_value=12),
        seconds=st.sampled_from([0.5, 1.0, 1.5, 3.7]),
    ),
    min_size=1,
    max_size=3,
)
mixed_steps_strategy = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 1.7]),
        st.sampled_from(["poll", "trigger", "urgent"]),
        st.booleans(),  # polls waiting, when a trigger asks
        st.booleans(),  # the oldest request in flight ends first
    ),
    max_size=80,
)
SHARES = st.sampled_from([Fraction(0), Fraction(1, 5), Fraction(1, 2), Fraction(1)])


def slots(window: Window, poll_reserve: Fraction, trigger_reserve: Fraction) -> tuple[int, int]:
    """``R`` and ``P`` as the priority module defines them (no neighbour: room is the limit)."""
    room = window.limit
    reserve = max(0, min(math.floor(poll_reserve * room), room - 1))
    triggers = min(math.ceil(trigger_reserve * room), room - reserve)
    return reserve, room - triggers


def brute_force_trigger_ready_at(
    admissions: Sequence[tuple[float, bool]],
    windows: Sequence[Window],
    shares: tuple[Fraction, Fraction],
    now: float,
    *,
    polls_waiting: bool,
) -> float:
    """The first candidate instant at which every window lets a trigger in, from the rule;
    ``admissions``: each request's end (``inf`` in flight) and whether it is a poll."""

    def allows(window: Window, t: float) -> bool:
        inside = [poll for a, poll in admissions if a + window.seconds > t]
        total, polls = len(inside), sum(inside)
        if total >= window.limit:
            return False
        if not (polls or polls_waiting):
            return True
        reserve, budget = slots(window, *shares)
        return total + max(0, min(reserve, budget - polls)) < window.limit

    candidates = sorted({now} | {a + w.seconds for a, _ in admissions for w in windows})
    for t in candidates:
        if t >= now and all(allows(w, t) for w in windows):
            return t
    return math.inf  # held for waiting polls that never come: only with polls_waiting


@settings(max_examples=200, deadline=None)
@given(
    windows=reserve_windows_strategy,
    steps=mixed_steps_strategy,
    poll_reserve=SHARES,
    trigger_reserve=SHARES,
)
def test_trigger_ready_at_keeps_the_poll_reserve_exactly(
    windows: list[Window],
    steps: list[tuple[float, str, bool, bool]],
    poll_reserve: Fraction,
    trigger_reserve: Fraction,
) -> None:
    log = SlidingLog(windows)
    reserves = Reserves(poll_reserve, trigger_reserve)
    requests: list[list[float]] = []  # [sent, ended, poll]: ended is IN_FLIGHT until it ends
    now = 0.0
    for advance, kind, polls_waiting, one_ends in steps:
        now += advance
        in_flight = [r for r in requests if r[1] == IN_FLIGHT]
        if one_ends and in_flight:
            in_flight[0][1] = now
            log.end(now, poll=bool(in_flight[0][2]))
        admitted = [(ended, bool(poll)) for _, ended, poll in requests]
        shares = (poll_reserve, trigger_reserve)
        expected = brute_force_ready_at([a for a, _ in admitted], windows, now)
        assert log.ready_at(now) == expected
        if kind == "trigger":
            expected = brute_force_trigger_ready_at(
                admitted, windows, shares, now, polls_waiting=polls_waiting
            )
            assert trigger_ready_at(log, reserves, now, polls_waiting=polls_waiting) == expected
        budgets = [slots(w, *shares)[1] for w in windows]
        assert poll_budget_applies(log, reserves) == all(budget >= 1 for budget in budgets)
        inside = [sum(p for a, p in admitted if a + w.seconds > now) for w in windows]
        assert polls_within_budget(log, reserves, now) == all(map(operator.lt, inside, budgets))
        if expected <= now:
            log.admit(now, poll=kind == "poll")
            requests.append([now, IN_FLIGHT, kind == "poll"])
    assert arrival_violations([(sent, ended) for sent, ended, _ in requests], windows) == []


def test_the_documented_limits_keep_a_fifth_for_each_kind() -> None:
    assert [FIFTHS.slots(w.limit) for w in DOCUMENTED] == [(2, 8), (60, 240), (2000, 8000)]
    assert poll_budget_applies(SlidingLog(DOCUMENTED), FIFTHS)


@pytest.mark.parametrize(
    ("limit", "expected"), [(1, (0, 0)), (2, (0, 1)), (4, (0, 3)), (5, (1, 4)), (9, (1, 7))]
)
def test_small_windows_never_give_the_last_slot_away(limit: int, expected: tuple[int, int]) -> None:
    assert FIFTHS.slots(limit) == expected
    assert poll_budget_applies(SlidingLog([Window(limit, 1.0)]), FIFTHS) == (expected[1] >= 1)


def test_a_neighbour_shrinks_the_room_both_reserves_are_taken_from() -> None:
    log = SlidingLog([Window(10, 1.0)])
    log.reserve(Window(10, 1.0), 5)
    [window_log] = log.window_logs
    assert FIFTHS.slots(window_log.room) == (1, 4)


def test_the_reserve_counts_the_polls_already_in_the_window() -> None:
    window = Window(10, 1.0)
    log = SlidingLog([window])
    # R = 2, P = 8
    sent(log, 0.0, poll=True)
    for _ in range(7):
        assert trigger_ready_at(log, FIFTHS, 0.0, polls_waiting=False) == 0.0
        sent(log, 0.0)
    # 8 admissions, one a poll: the next trigger would leave one slot, not R = 2.
    assert trigger_ready_at(log, FIFTHS, 0.0, polls_waiting=True) == 1.0
    # With no poll waiting, the reserve lifts when the window's only poll leaves it: the same
    # instant here, as everything leaves together.
    assert trigger_ready_at(log, FIFTHS, 0.0, polls_waiting=False) == 1.0
    assert log.ready_at(0.0) == 0.0  # a poll may go now


def test_with_no_poll_in_sight_triggers_take_the_whole_window() -> None:
    log = SlidingLog([Window(10, 1.0)])
    for _ in range(10):
        assert trigger_ready_at(log, FIFTHS, 0.0, polls_waiting=False) == 0.0
        sent(log, 0.0)
    assert trigger_ready_at(log, FIFTHS, 0.5, polls_waiting=False) == 1.0


def test_the_reserve_lifts_when_the_last_poll_leaves_the_window() -> None:
    log = SlidingLog([Window(10, 1.0)])
    # R = 2, P = 8
    sent(log, 0.0, poll=True)
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        sent(log, t)
    # 9 in the window, one a poll: a trigger must leave 2 free, so 2 must leave first (at 1.1)
    # while polls wait; with none waiting, the reserve goes with the poll, at 1.0.
    assert trigger_ready_at(log, FIFTHS, 0.8, polls_waiting=True) == 1.1
    assert trigger_ready_at(log, FIFTHS, 0.8, polls_waiting=False) == 1.0


@pytest.mark.parametrize(("polls", "free"), [(1, 2), (6, 2), (7, 1), (8, 0)])
def test_the_reserve_shrinks_as_polls_use_their_budget(polls: int, free: int) -> None:
    log = SlidingLog([Window(10, 1.0)])
    # R = 2, P = 8
    for _ in range(polls):
        sent(log, 0.0, poll=True)
    while trigger_ready_at(log, FIFTHS, 0.0, polls_waiting=True) == 0.0:
        sent(log, 0.0)
    assert log.allowance(0.0) == free  # min(R, P - polls): the polls' budget, never more


@settings(max_examples=200)
@given(room=st.integers(min_value=1, max_value=20_000), polls=SHARES, triggers=SHARES)
def test_reserve_and_budget_follow_their_definition(
    room: int, polls: Fraction, triggers: Fraction
) -> None:
    reserve, budget = Reserves(polls, triggers).slots(room)
    assert (reserve, budget) == slots(Window(room, 1.0), polls, triggers)
    assert 0 <= reserve <= budget <= room
    assert reserve < room  # never the last slot


@pytest.mark.parametrize("share", [Fraction(-1, 5), Fraction(6, 5)])
def test_reserves_outside_0_to_1_are_refused_by_the_policy_too(share: Fraction) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Reserves(share, Fraction(1, 5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        Reserves(Fraction(1, 5), share)


# -- the poll share, where no budget applies


def contested_picks(credit: PollCredit, count: int) -> list[RequestKind]:
    """``count`` picks while both kinds wait, as the limiter makes them."""
    picks = []
    for _ in range(count):
        kind = POLL if credit.poll_due else TRIGGER
        credit.admitted(kind, contested=True)
        picks.append(kind)
    return picks


@settings(max_examples=200)
@given(
    share=st.fractions(min_value=0, max_value=1, max_denominator=1000),
    count=st.integers(min_value=1, max_value=300),
)
def test_polls_get_their_share_of_contested_picks_within_one(share: Fraction, count: int) -> None:
    picks = contested_picks(PollCredit(share), count)
    for n in range(1, count + 1):
        polls = picks[:n].count(POLL)
        # The first pick is a poll's, then exactly one poll per 1 / share picks.
        assert polls == (math.floor(1 + (n - 1) * share) if share else 0)


def test_triggers_alone_bank_one_poll_at_most() -> None:
    credit = PollCredit(Fraction(1, 5))
    contested_picks(credit, 7)
    for _ in range(100):  # a long run of triggers while no poll waits
        credit.admitted(TRIGGER, contested=False)
    for _ in range(100):  # polls alone change nothing
        credit.admitted(POLL, contested=False)
    assert contested_picks(credit, 11) == [POLL, *[TRIGGER] * 4, POLL, *[TRIGGER] * 4, POLL]


@pytest.mark.parametrize("share", [Fraction(-1, 5), Fraction(6, 5)])
def test_a_poll_share_outside_0_to_1_is_refused(share: Fraction) -> None:
    with pytest.raises(ValueError, match="poll_share"):
        PollCredit(share)


# -- the next kind


def waiting(urgent: int = 0, polls: int = 0, triggers: int = 0) -> list[int]:
    counts = [0] * len(RequestKind)
    counts[URGENT], counts[POLL], counts[TRIGGER] = urgent, polls, triggers
    return counts


@pytest.mark.parametrize("within", [True, False, None])
def test_urgent_work_goes_first_whatever_the_budget(within: bool | None) -> None:
    credit = PollCredit(Fraction(1, 5))
    picked = next_kind(waiting(1, 3, 3), polls_within_budget=within, credit=credit)
    assert picked == (URGENT, False)


def test_a_kind_waiting_alone_goes_uncontested() -> None:
    credit = PollCredit(Fraction(0))  # polls never win a contest, yet go when alone
    assert next_kind(waiting(polls=2), polls_within_budget=False, credit=credit) == (POLL, False)
    assert next_kind(waiting(triggers=2), polls_within_budget=True, credit=credit) == (
        TRIGGER,
        False,
    )


def test_the_polls_budget_decides_between_polls_and_triggers() -> None:
    credit = PollCredit(Fraction(0))
    both = waiting(polls=1, triggers=1)
    assert next_kind(both, polls_within_budget=True, credit=credit) == (POLL, False)
    assert next_kind(both, polls_within_budget=False, credit=credit) == (TRIGGER, False)


def test_without_a_budget_the_credit_decides_and_the_pick_is_contested() -> None:
    credit = PollCredit(Fraction(1, 2))
    both = waiting(polls=1, triggers=1)
    assert next_kind(both, polls_within_budget=None, credit=credit) == (POLL, True)
    credit.admitted(POLL, contested=True)
    assert next_kind(both, polls_within_budget=None, credit=credit) == (TRIGGER, True)
