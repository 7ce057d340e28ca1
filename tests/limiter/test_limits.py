"""The limits as one synchronous model: what each response teaches, with ``now`` passed in."""

from __future__ import annotations

import random
from fractions import Fraction

from runner.ratelimit import RateLimitInfo, RequestKind, Window
from runner.ratelimit.limits import Limits
from runner.ratelimit.priority import Reserves
from runner.ratelimit.pushback import PushBack

TRIGGER = RequestKind.TRIGGER
DATE = 1_000_000.0  # the server's clock


def limits(windows: list[Window], *, permits: int = 1, probe_first: bool = False) -> Limits:
    return Limits(
        windows,
        reserves=Reserves(Fraction(1, 5), Fraction(1, 5)),
        pushback=PushBack(max_pause=300.0, random=random.Random(1).random),
        permits=permits,
        probe_first=probe_first,
    )


def ready_at(model: Limits, now: float) -> float:
    return model.ready_at(now, TRIGGER, polls_waiting=False)


def admit(model: Limits, now: float) -> int:
    assert ready_at(model, now) <= now
    return model.admit(now, TRIGGER)


def told(
    status: int, remaining: int, *, reset_in: float, retry_after: float | None = None
) -> RateLimitInfo:
    return RateLimitInfo(status, 300, remaining, DATE + reset_in, DATE, retry_after)


def test_a_429_with_retry_after_pauses_and_its_remaining_adds_nothing() -> None:
    model = limits([Window(300, 60.0)])
    seq = admit(model, 0.0)
    model.observe_admission(seq, told(429, 0, reset_in=40.0, retry_after=5.0), sent_at=0.0, now=1.0)
    assert (ready_at(model, 1.0), model.learned_caps) == (6.0, 0)


def test_a_429_without_retry_after_pauses_until_the_reset_and_caps() -> None:
    model = limits([Window(300, 60.0)])
    seq = admit(model, 0.0)
    model.observe_admission(seq, told(429, 0, reset_in=40.0), sent_at=0.0, now=1.0)
    assert model.learned_caps == 1
    assert ready_at(model, 1.0) == 41.0  # the pause and the cap end together


def test_remaining_within_the_timing_slack_of_a_told_window_is_no_news() -> None:
    model = limits([Window(300, 60.0)], permits=8)
    seq = admit(model, 0.0)  # the log expects 299 left
    model.observe_admission(seq, told(201, 299 - 8, reset_in=60.0), sent_at=0.0, now=0.5)
    assert model.learned_caps == 0
    seq = admit(model, 1.0)  # 298 expected; 9 fewer is more than timing explains
    model.observe_admission(seq, told(201, 298 - 9, reset_in=59.0), sent_at=1.0, now=1.5)
    assert model.learned_caps == 1


def test_a_first_probe_holds_the_rest_until_it_is_answered() -> None:
    model = limits([Window(300, 60.0)], probe_first=True)
    seq = admit(model, 0.0)
    assert ready_at(model, 0.0) == 10.0  # the probe's own expiry, should no answer come
    model.observe_admission(seq, told(201, 299, reset_in=60.0), sent_at=0.0, now=0.2)
    assert ready_at(model, 0.2) == 0.2


def test_a_learned_window_counts_the_admissions_made_before_it_was_known() -> None:
    model = limits([])
    seqs = [admit(model, 0.0) for _ in range(5)]
    for seq in seqs[:4]:
        model.ended(seq, 0.05, TRIGGER)
    info = RateLimitInfo(201, 5, 0, DATE + 60.0, DATE)
    model.observe_admission(seqs[4], info, sent_at=0.0, now=0.1)
    assert model.windows == (Window(5, 60.0),)
    assert ready_at(model, 0.1) == 60.05  # a minute after the first four ended
    model.ended(seqs[4], 0.1, TRIGGER)
    assert model.ready_at(60.05, TRIGGER, polls_waiting=False) == 60.05


def test_a_slot_is_taken_until_a_window_after_its_request_ends() -> None:
    model = limits([Window(2, 1.0)])
    first, second = admit(model, 0.0), admit(model, 0.0)
    assert ready_at(model, 3.0) == float("inf")  # both may still reach the server
    model.ended(first, 3.0, TRIGGER)
    assert ready_at(model, 3.0) == 4.0
    model.give_back(second, TRIGGER)  # never sent
    assert ready_at(model, 3.0) == 3.0
    third = admit(model, 3.0)
    model.ended(third, 3.5, TRIGGER)
    model.give_back(third, TRIGGER, ended_at=3.5)  # found unsent once it had ended
    assert ready_at(model, 3.5) == 3.5


def test_a_refunded_request_that_ends_frees_no_other_slot() -> None:
    model = limits([Window(2, 1.0)])
    first, second = admit(model, 0.0), admit(model, 0.0)
    model.give_back(first, TRIGGER)
    model.ended(first, 0.5, TRIGGER, sent=False)
    assert ready_at(model, 0.5) == 0.5  # one slot free: the second is still in flight
    admit(model, 0.5)
    assert ready_at(model, 5.0) == float("inf")
    model.ended(second, 5.0, TRIGGER)
    assert ready_at(model, 5.0) == 6.0  # the second's slot leaves; the third is still out
