"""Rate limits: the sliding log, its headers, 429s and the window checker."""

from __future__ import annotations

import copy
import json
import math
from email.utils import parsedate_to_datetime

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runner.sandbox import RateLimitPolicy, Window, max_in_window, window_violations
from runner.sandbox.ratelimit import SlidingLog
from runner.sandbox.truth import key_fingerprint

from sandbox.support import JOB_BODY, KEY, Connect, make_sandbox


def test_named_and_custom_policies() -> None:
    assert RateLimitPolicy.named("documented").windows == (
        Window(10, 1.0),
        Window(300, 60.0),
        Window(10_000, 3600.0),
    )
    assert RateLimitPolicy.parse("v2").windows == (Window(20, 1.0), Window(120, 60.0))
    assert RateLimitPolicy.parse("enterprise").windows[0] == Window(100, 1.0)
    assert RateLimitPolicy.parse("off").off
    custom = RateLimitPolicy.parse("5/s, 100/min,1000/h,20/10s")
    assert custom.windows == (Window(5, 1), Window(100, 60), Window(1000, 3600), Window(20, 10))
    assert str(custom.windows[3]) == "20/10s"
    with pytest.raises(ValueError, match="bad rate-limit window"):
        RateLimitPolicy.parse("10 per second")


times_strategy = st.lists(
    st.floats(min_value=0, max_value=30, allow_nan=False).map(lambda t: round(t, 3)),
    max_size=300,
)
windows_strategy = st.lists(
    st.builds(Window, st.integers(1, 12), st.sampled_from([0.5, 1.0, 2.0, 7.5])),
    min_size=1,
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(times=times_strategy, windows=windows_strategy)
def test_no_window_ever_admits_more_than_its_limit(
    times: list[float], windows: list[Window]
) -> None:
    log = SlidingLog(windows)
    admitted = [t for t in sorted(times) if (v := log.admit("k", t)) is not None and v.admitted]
    for window in windows:
        assert max_in_window(admitted, window.seconds) <= window.limit
    assert window_violations({"k": admitted}, windows) == []


@settings(max_examples=100, deadline=None)
@given(times=times_strategy, windows=windows_strategy)
def test_retry_after_is_exactly_when_a_slot_frees(
    times: list[float], windows: list[Window]
) -> None:
    log = SlidingLog(windows)
    for moment in sorted(times):
        verdict = log.admit("k", moment)
        assert verdict is not None
        if not verdict.admitted:
            assert verdict.remaining == 0
            assert verdict.retry_after > 0
            early = copy.deepcopy(log).admit("k", moment + verdict.retry_after * 0.99)
            on_time = copy.deepcopy(log).admit("k", moment + verdict.retry_after + 1e-9)
            assert early is not None
            assert not early.admitted
            assert on_time is not None
            assert on_time.admitted


def test_rejected_requests_take_no_slot() -> None:
    log = SlidingLog([Window(2, 1.0)])
    assert [log.admit("k", 0.0).admitted for _ in range(4)] == [True, True, False, False]  # type: ignore[union-attr]
    verdict = log.admit("k", 1.0)
    assert verdict is not None
    assert verdict.admitted
    assert log.arrivals() == {"k": [0.0, 0.0, 1.0]}


def test_headers_describe_the_window_closest_to_running_out() -> None:
    log = SlidingLog([Window(10, 1.0), Window(12, 60.0)])
    verdicts = [log.admit("k", i * 0.2) for i in range(11)]
    first = verdicts[0]
    assert first is not None
    assert (first.limit, first.remaining) == (10, 9)
    eleventh = verdicts[10]
    assert eleventh is not None
    assert (eleventh.limit, eleventh.remaining) == (12, 1)
    assert eleventh.reset_in == pytest.approx(60.0 - 2.0)


def test_checker_finds_a_leaky_burst() -> None:
    arrivals = {"k": [0.0, 0.1, 0.2, 0.95, 1.0]}
    assert max_in_window(arrivals["k"], 1.0) == 4
    assert window_violations(arrivals, [Window(3, 1.0)]) == ["k: 4 requests in 1s > 3"]


@pytest.mark.anyio
async def test_429_body_headers_and_truth(connect: Connect) -> None:
    sandbox = make_sandbox(rate_limits="3/s")
    async with connect(sandbox) as client:
        answers = [await client.get("/api/projects/list") for _ in range(4)]
        await anyio.sleep(1.0)
        after = await client.get("/api/projects/list")
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[3]
    assert limited.json() == {
        "statusCode": 429,
        "message": "Too many requests. Please retry after 1 seconds.",
        "error": "Too Many Requests",
    }
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    date = parsedate_to_datetime(limited.headers["date"]).timestamp()
    assert int(limited.headers["x-ratelimit-reset"]) == math.ceil(date + 1)
    assert "retry-after" not in answers[0].headers
    assert after.status_code == 200
    truth = sandbox.truth()
    assert truth["rateLimited"] == {key_fingerprint(KEY): 1}
    assert KEY not in json.dumps(truth)  # the truth never shows a key
    assert len(truth["arrivals"][key_fingerprint(KEY)]) == 4
    assert sandbox.window_violations() == []


@pytest.mark.anyio
async def test_limits_are_per_key(connect: Connect) -> None:
    async with connect(make_sandbox(rate_limits="1/min")) as client:
        first = await client.get("/api/projects/list")
        other = await client.get("/api/projects/list", headers={"x-api-key": "ml_live_other"})
        again = await client.get("/api/projects/list")
    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)
    assert again.headers["retry-after"] == "60"


@pytest.mark.anyio
async def test_time_scale_shrinks_windows(connect: Connect) -> None:
    async with connect(make_sandbox(rate_limits="2/min", time_scale=60.0)) as client:
        answers = [await client.get("/api/projects/list") for _ in range(3)]
        await anyio.sleep(1.0)
        later = await client.get("/api/projects/list")
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"] == "1"  # real seconds, rounded up, at least 1
    assert later.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("style", "check"),
    [
        ("seconds", lambda v: v == "1"),
        ("http-date", lambda v: v.endswith(" GMT")),
        ("missing", lambda v: v is None),
        ("garbage", lambda v: v is not None and not v.isdigit()),
        ("huge", lambda v: v == "86400"),
    ],
)
async def test_retry_after_variants(connect: Connect, style: str, check: object) -> None:
    sandbox = make_sandbox(rate_limits="1/s", faults={"retry_after": style})
    async with connect(sandbox) as client:
        await client.get("/api/projects/list")
        limited = await client.get("/api/projects/list")
    assert limited.status_code == 429
    assert check(limited.headers.get("retry-after"))  # type: ignore[operator]


@pytest.mark.anyio
async def test_schedule_lowers_limits_after_n_requests(connect: Connect) -> None:
    sandbox = make_sandbox(rate_limits="off", schedule=((3, {"rate_limits": "1/min"}),))
    async with connect(sandbox) as client:
        codes = [
            (await client.post("/api/jobs/trigger", json=JOB_BODY)).status_code for _ in range(6)
        ]
    # The three earlier admissions count against the new window: the 4th request is refused.
    assert codes == [201, 201, 201, 429, 429, 429]
    assert sandbox.config.rate_limits.windows == (Window(1, 60.0),)


@pytest.mark.anyio
async def test_a_neighbour_can_use_part_of_the_budget(connect: Connect) -> None:
    sandbox = make_sandbox(rate_limits="10/min")
    async with connect(sandbox) as client:
        sandbox.occupy(KEY, 8)
        response = await client.get("/api/projects/list")
    assert response.headers["x-ratelimit-remaining"] == "1"
