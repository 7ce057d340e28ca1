"""Limits learned from the headers, as pure functions and small classes: no clock, no waiting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner.ratelimit import Window
from runner.ratelimit.learning import (
    PROBE_SECONDS,
    Caps,
    LearnedWindows,
    cap_seconds,
    neighbour_holds,
    standard_length,
    timing_slack,
)

DOCUMENTED = (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0))

# -- the length of a learned window


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.5, 0.5),
        (0.95, 1.0),
        (2.0, 2.0),
        (40.0, 40.0),
        (53.9, 53.9),
        (54.0, 60.0),
        (59.0, 60.0),
        (60.0, 60.0),
        (95.0, 95.0),
        (3_300.0, 3_600.0),
        (86_000.0, 86_400.0),
    ],
)
def test_a_length_just_short_of_a_standard_window_is_taken_as_it(
    seconds: float, expected: float
) -> None:
    assert standard_length(seconds) == expected


@given(st.floats(min_value=0.001, max_value=100_000.0))
def test_a_length_is_only_ever_rounded_up_by_less_than_a_ninth(seconds: float) -> None:
    length = standard_length(seconds)
    assert seconds <= length < seconds / 0.9 or length == seconds


def test_a_limit_is_learned_as_its_longest_reset() -> None:
    learned = LearnedWindows([])
    assert learned.learn(120, 40.0)
    assert not learned.learn(120, 30.0)  # shorter: no news
    assert learned.learn(20, 0.5)
    assert learned.learn(120, 57.0)  # a minute seen 3 s late
    assert learned.windows == (Window(20, 0.5), Window(120, 60.0))


@pytest.mark.parametrize(
    ("limit", "reset_after"),
    [(None, 30.0), (0, 30.0), (300, 30.0), (50, 0.0), (50, -1.0), (50, 86_401.0)],
)
def test_what_is_not_a_window_to_learn(limit: int | None, reset_after: float) -> None:
    learned = LearnedWindows([Window(300, 60.0)])  # 300 is a configured limit: no news
    assert not learned.learn(limit, reset_after)
    assert learned.windows == ()


def test_a_handful_of_limits_are_learned_at_most() -> None:
    learned = LearnedWindows([])
    assert all(learned.learn(limit, 1.0) for limit in range(1, 9))
    assert not learned.learn(9, 1.0)
    assert learned.learn(8, 2.0)  # a known limit still grows
    assert len(learned.windows) == 8


# -- timing slack, neighbours and how long a cap holds


@pytest.mark.parametrize(
    ("limit", "permits", "slack"),
    [(10, 8, 5), (10, 4, 4), (10, 1, 1), (300, 9, 9), (None, 8, 0), (77, 8, 0)],
)
def test_the_timing_slack_of_a_configured_window(
    limit: int | None, permits: int, slack: int
) -> None:
    # Up to the permits held, at most half the window; none for a window we were not told.
    assert timing_slack(limit, DOCUMENTED, permits) == slack


def test_a_window_of_one_has_a_slack_of_one() -> None:
    assert timing_slack(1, [Window(1, 1.0)], 4) == 1


@pytest.mark.parametrize(
    ("reported", "neighbour", "expected"),
    [
        (Window(300, 60.0), 30, {Window(10, 1.0): 1}),
        (Window(300, 60.0), 120, {Window(10, 1.0): 2}),
        (Window(10_000, 3600.0), 3600, {Window(10, 1.0): 1, Window(300, 60.0): 60}),
        (Window(10, 1.0), 8, {}),  # no window is shorter than the second
    ],
)
def test_a_neighbour_takes_the_same_share_of_every_shorter_window(
    reported: Window, neighbour: int, expected: dict[Window, int]
) -> None:
    assert neighbour_holds(reported, DOCUMENTED, neighbour) == expected


@pytest.mark.parametrize("neighbour", [-3, 0, 1, 5])
def test_a_few_slots_are_edge_effects_not_a_neighbour(neighbour: int) -> None:
    # At least 2 % of the window (6 of 300)...
    assert neighbour_holds(Window(300, 60.0), DOCUMENTED, neighbour) == {Window(10, 1.0): 0}


@pytest.mark.parametrize(("neighbour", "held"), [(1, 0), (2, 1)])
def test_a_neighbour_uses_two_slots_at_least(neighbour: int, held: int) -> None:
    # ... and at least 2 slots, where 2 % of the window is less.
    windows = [Window(5, 1.0), Window(50, 60.0)]
    assert neighbour_holds(Window(50, 60.0), windows, neighbour) == {Window(5, 1.0): held}


@pytest.mark.parametrize(
    ("limit", "windows", "max_pause", "seconds"),
    [
        (10, DOCUMENTED, 300.0, 1.0),  # the named window bounds it
        (10_000, DOCUMENTED, 300.0, 3600.0),  # a window longer than a pause
        (77, DOCUMENTED, 300.0, 3600.0),  # unnamed: the longest window
        (77, [Window(10, 1.0)], 300.0, 300.0),  # unnamed: a pause's cap
        (None, [], 120.0, 120.0),
    ],
)
def test_how_long_a_cap_may_hold(
    limit: int | None, windows: list[Window], max_pause: float, seconds: float
) -> None:
    assert cap_seconds(limit, windows, max_pause) == seconds


# -- caps


def test_a_cap_is_spent_by_later_admissions_until_it_expires() -> None:
    caps = Caps()
    caps.add(reset=1_000.0, allowance=2, expires_at=20.0, after_seq=0)
    assert (bool(caps), caps.learned) == (True, 1)
    caps.admitted()
    assert caps.ready_at(1.0, seq=1) == -math.inf
    caps.admitted()
    assert caps.ready_at(1.0, seq=2) == 20.0


def test_only_admissions_after_the_observed_one_give_their_slot_back() -> None:
    caps = Caps()
    caps.add(reset=1_000.0, allowance=0, expires_at=20.0, after_seq=5)
    caps.given_back(5)  # counted by the server already
    assert caps.ready_at(1.0, seq=7) == 20.0
    caps.given_back(6)
    assert caps.ready_at(1.0, seq=7) == -math.inf


def test_a_cap_for_the_same_reset_is_only_ever_tightened_and_extended() -> None:
    caps = Caps()
    assert not caps.tighten(1_000.0, allowance=5, expires_at=20.0, after_seq=1)
    caps.add(1_000.0, allowance=1, expires_at=20.0, after_seq=1)
    assert caps.tighten(1_000.0, allowance=5, expires_at=10.0, after_seq=2)  # neither
    caps.admitted()
    assert caps.ready_at(1.0, seq=2) == 20.0
    assert caps.tighten(1_000.0, allowance=-1, expires_at=30.0, after_seq=2)
    caps.given_back(3)
    assert caps.ready_at(1.0, seq=3) == 30.0  # still none left: -1 + 1
    assert caps.learned == 1


def test_when_the_last_cap_expires_one_probe_goes_until_an_answer() -> None:
    caps = Caps()
    caps.add(1_000.0, allowance=0, expires_at=5.0, after_seq=0)
    assert caps.ready_at(4.0, seq=3) == 5.0
    assert caps.ready_at(5.0, seq=3) == -math.inf  # the probe may go
    caps.admitted()
    assert caps.ready_at(6.0, seq=4) == 5.0 + PROBE_SECONDS  # then nothing until its answer
    caps.answered()
    assert not caps
    assert caps.ready_at(6.0, seq=4) == -math.inf


def test_a_probe_is_the_first_admission_after_it_was_armed() -> None:
    caps = Caps()
    caps.probe(0.0, seq=7)
    caps.admitted()  # admission 8 is the probe
    assert [caps.probing(seq) for seq in (7, 8, 9)] == [False, True, False]
    assert caps.ready_at(1.0, seq=8) == PROBE_SECONDS
    caps.probe(2.0, seq=8)  # it ended unanswered: the next one may go now
    assert caps.ready_at(2.0, seq=8) == -math.inf
    assert caps.probing(9)
    caps.answered()
    assert not caps.probing(9)
    assert caps.learned == 0  # probes are not learned caps
