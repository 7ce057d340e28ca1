"""How a 429 or a 503 pauses the run: pure, with ``now`` and the jitter passed in."""

from __future__ import annotations

import pytest
from runner.ratelimit import RateLimitInfo
from runner.ratelimit.pushback import PauseRecord, PushBack

BARE_429 = RateLimitInfo(429)


def pushback(max_pause: float = 300.0, draw: float = 0.5) -> PushBack:
    return PushBack(max_pause=max_pause, random=lambda: draw)


@pytest.mark.parametrize(("status", "throttled"), [(429, 1), (503, 0)])
def test_retry_after_on_a_429_or_a_503_pauses_everything(status: int, throttled: int) -> None:
    back = pushback()
    info = RateLimitInfo(
        status, remaining=0, reset_epoch=1_060.0, date_epoch=1_000.0, retry_after=30
    )
    assert back.respond(info, sent_at=9.0, now=10.0)  # Retry-After decided: nothing else counts
    reason = f"Retry-After on HTTP {status}"
    assert back.pauses == [PauseRecord(reason, 30.0, 30.0, 10.0)]
    assert back.throttled == throttled
    assert back.current(15.0) == (25.0, reason)
    assert back.current(40.0) is None


def test_retry_after_on_a_success_is_no_pause() -> None:
    back = pushback()
    assert not back.respond(RateLimitInfo(200, retry_after=99.0), sent_at=0.0, now=1.0)
    assert (back.pauses, back.current(1.0)) == ([], None)


def test_a_huge_retry_after_is_capped_and_recorded() -> None:
    back = pushback(max_pause=120.0)
    back.respond(RateLimitInfo(429, retry_after=86_400.0), sent_at=0.0, now=0.0)
    [pause] = back.pauses
    assert (pause.seconds, pause.requested, pause.capped) == (120.0, 86_400.0, True)
    assert back.capped_retry_afters == [86_400.0]


def test_a_429_without_retry_after_waits_for_the_reset() -> None:
    back = pushback()
    info = RateLimitInfo(429, limit=10, remaining=0, reset_epoch=1_007.0, date_epoch=1_000.0)
    assert not back.respond(info, sent_at=0.0, now=0.0)  # the headers have more to say
    assert back.pauses == [PauseRecord("HTTP 429 until X-RateLimit-Reset", 7.0, 7.0, 0.0)]


def test_a_bare_429_backs_off_more_each_time_and_a_burst_counts_once() -> None:
    back = pushback(draw=0.5)
    for _ in range(5):  # five requests in flight when the server started refusing
        back.respond(BARE_429, sent_at=0.0, now=0.0)
    back.respond(BARE_429, sent_at=1.0, now=1.0)  # sent after the reaction: the backoff grows
    back.respond(BARE_429, sent_at=2.0, now=2.0)
    assert [p.seconds for p in back.pauses] == [0.5, 1.0, 2.0]  # half of 1 s, 2 s, 4 s
    assert back.throttled == 7


def test_the_backoff_of_a_bare_429_is_capped_at_a_minute() -> None:
    back = pushback(draw=0.999)
    for second in range(12):
        back.respond(BARE_429, sent_at=100.0 * second, now=100.0 * second)
    assert max(p.seconds for p in back.pauses) == pytest.approx(0.999 * 60.0)


@pytest.mark.parametrize(("sent_at", "backoff"), [(0.5, 0.5), (0.0, 1.0)])
def test_a_success_sent_after_the_reaction_ends_the_streak(sent_at: float, backoff: float) -> None:
    back = pushback(draw=0.5)
    back.respond(BARE_429, sent_at=0.0, now=0.0)
    back.respond(RateLimitInfo(200), sent_at=sent_at, now=0.9)  # sent at 0.0: the same burst
    back.respond(BARE_429, sent_at=1.0, now=1.0)
    assert [p.seconds for p in back.pauses] == [0.5, backoff]


@pytest.mark.parametrize(("status", "pushed_back"), [(429, True), (503, True), (500, False)])
def test_the_headroom_is_withheld_for_a_minute_after_a_push_back(
    status: int, *, pushed_back: bool
) -> None:
    back = pushback()
    assert not back.pushed_back_recently(0.0)
    back.respond(RateLimitInfo(status), sent_at=0.0, now=10.0)
    assert back.pushed_back_recently(69.9) is pushed_back
    assert not back.pushed_back_recently(70.0)


def test_a_pause_only_ever_extends() -> None:
    back = pushback(max_pause=60.0)
    back.pause(10.0, reason="outage", now=0.0)
    back.pause(3.0, reason="shorter: ignored", now=1.0)
    back.pause(500.0, reason="long", now=2.0)  # capped, but not a Retry-After: not recorded apart
    assert [(p.reason, p.seconds) for p in back.pauses] == [("outage", 10.0), ("long", 60.0)]
    assert back.capped_retry_afters == []
    assert back.current(5.0) == (57.0, "long")
