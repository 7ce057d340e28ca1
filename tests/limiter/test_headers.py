"""Reading what a response says about the rate limit: pure parsing, on the server's clock."""

from __future__ import annotations

import ast
import math
import sys
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner.ratelimit import headers
from runner.ratelimit.headers import (
    RateLimitInfo,
    parse_http_date,
    parse_rate_limit_headers,
    parse_retry_after,
)

SERVER_NOW = 1_790_000_000.0


def http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


# -- parsing


def test_headers_are_read_case_insensitively() -> None:
    info = parse_rate_limit_headers(
        {
            "x-ratelimit-limit": "300",
            "X-RateLimit-Remaining": "12",
            "X-RATELIMIT-RESET": "1790000030",
            "date": "Sun, 20 Sep 2026 12:00:00 GMT",
            "Retry-After": "30",
        },
        429,
    )
    assert info == RateLimitInfo(
        status=429,
        limit=300,
        remaining=12,
        reset_epoch=1_790_000_030.0,
        date_epoch=datetime(2026, 9, 20, 12, tzinfo=UTC).timestamp(),
        retry_after=30.0,
    )
    assert info.reset_after == 1_790_000_030.0 - info.date_epoch  # type: ignore[operator]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-RateLimit-Limit": "ten", "X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "soon"},
        {"X-RateLimit-Limit": "1e3", "X-RateLimit-Remaining": "3.5", "X-RateLimit-Reset": "inf"},
        {"X-RateLimit-Limit": "10, 10", "Date": "yesterday", "Retry-After": "later"},
    ],
)
def test_malformed_fields_are_ignored(headers: dict[str, str]) -> None:
    assert parse_rate_limit_headers(headers, 200) == RateLimitInfo(status=200)


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


# -- a module of its own


def imported_packages(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module or "")
    return {name.split(".")[0] for name in names}


def test_the_headers_module_needs_only_the_standard_library() -> None:
    """The API client reads headers through this module alone: no anyio, nothing of the limiter."""
    tree = ast.parse(Path(headers.__file__).read_text(encoding="utf-8"))
    assert imported_packages(tree) <= {*sys.stdlib_module_names, "__future__"}
