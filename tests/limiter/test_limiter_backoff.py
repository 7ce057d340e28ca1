"""Backoff arithmetic as pure functions: full jitter, Retry-After, HTTP dates."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner.backoff import backoff_ceiling, full_jitter, parse_http_date, parse_retry_after

SERVER_NOW = 1_790_000_000.0
unit_floats = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


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


# -- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5), ("86400", 86400.0)],
)
def test_retry_after_in_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, date_epoch=None) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-5", "+5", "soon", "1e3", "inf", "nan", "0x10", "5 s", "1,2", "Thu, 99 Foo"],
)
def test_missing_or_garbage_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, date_epoch=SERVER_NOW) is None


def test_huge_retry_after_is_returned_for_the_caller_to_cap() -> None:
    assert parse_retry_after("99999999999", date_epoch=None) == 99_999_999_999.0
    assert parse_retry_after("9" * 400, date_epoch=None) is None  # not finite as a float


@pytest.mark.parametrize("local_skew", [-300.0, 0.0, 300.0])
def test_retry_after_date_is_measured_against_the_server_date(local_skew: float) -> None:
    value = http_date(SERVER_NOW + 30)
    # The local clock is never consulted when the response carries a Date.
    delay = parse_retry_after(value, date_epoch=SERVER_NOW, now_epoch=SERVER_NOW + local_skew)
    assert delay == 30.0


def test_retry_after_date_without_a_server_date_needs_a_local_clock() -> None:
    value = http_date(SERVER_NOW + 30)
    assert parse_retry_after(value, date_epoch=None) is None
    assert parse_retry_after(value, date_epoch=None, now_epoch=SERVER_NOW + 10) == 20.0


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after(http_date(SERVER_NOW - 60), date_epoch=SERVER_NOW) == 0.0


@given(st.text(max_size=40))
def test_retry_after_never_raises_and_never_goes_negative(value: str) -> None:
    delay = parse_retry_after(value, date_epoch=SERVER_NOW)
    assert delay is None or (math.isfinite(delay) and delay >= 0.0)


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_the_three_http_date_formats(value: str) -> None:
    assert parse_http_date(value) == 784_111_777.0


def test_a_date_without_zone_is_gmt_not_local_time() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 -0000") == 784_111_777.0


@pytest.mark.parametrize("value", [None, "", "yesterday", "Sun, 06 Nov 1994 25:61:61 GMT"])
def test_malformed_http_dates_are_none(value: str | None) -> None:
    assert parse_http_date(value) is None
