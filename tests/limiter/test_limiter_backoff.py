"""Backoff arithmetic as pure functions: full jitter."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner.backoff import backoff_ceiling, full_jitter

unit_floats = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


# -- full jitter


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=1e6),
    cap=st.floats(min_value=0.0, max_value=1e6),
    draw=unit_floats,
)
def test_full_jitter_stays_within_zero_and_the_capped_exponential(
    attempt: int, base: float, cap: float, draw: float
) -> None:
    delay = full_jitter(attempt, base=base, cap=cap, random=lambda: draw)
    try:
        ceiling = min(cap, math.ldexp(base, attempt - 1))
    except OverflowError:
        ceiling = cap
    assert 0.0 <= delay <= ceiling
    assert delay == pytest.approx(draw * ceiling)


def test_full_jitter_doubles_per_attempt_until_the_cap() -> None:
    top = [full_jitter(n, base=0.5, cap=20.0, random=lambda: 1.0) for n in range(1, 9)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_full_jitter_is_uniform_over_the_whole_range() -> None:
    draws = random.Random(7)
    delays = [full_jitter(3, base=1.0, cap=60.0, random=draws.random) for _ in range(4000)]
    assert min(delays) < 0.05
    assert max(delays) > 3.95
    assert sum(delays) / len(delays) == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize(
    ("attempt", "base", "expected"),
    [
        (1_025, 1.0, 30.0),
        (10**6, 1.0, 30.0),
        (10**6, 1e-310, 30.0),
        (1_025, 1e-310, math.ldexp(1e-310, 1024)),
    ],
)
def test_huge_attempt_numbers_do_not_overflow(attempt: int, base: float, expected: float) -> None:
    assert backoff_ceiling(attempt, base=base, cap=30.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("attempt", "base", "cap"),
    [(0, 1.0, 1.0), (-1, 1.0, 1.0), (1, -1.0, 1.0), (1, 1.0, -1.0), (1, math.nan, 1.0)],
)
def test_invalid_backoff_arguments_are_refused(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        full_jitter(attempt, base=base, cap=cap, random=lambda: 0.5)
