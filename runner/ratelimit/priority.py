"""Who goes next: urgent work first, then polls and triggers, each kind with its reserve.

Per window, with ``room`` its limit less what is held for a neighbour, triggers keep
``T = ceil(trigger_reserve * room)`` slots and polls ``R = floor(poll_reserve * room)`` (never
the last slot, never into ``T``); the polls' budget is ``P = room - T``. Polls go ahead of
triggers while every window holds fewer than ``P`` polls; while polling is active, a trigger
leaves ``min(R, P - polls)`` slots free. With no windows, or one too small for a budget, a credit
counter gives polls ``poll_share`` of the contested admissions instead. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction

from runner.ratelimit.sliding_log import SlidingLog, clears_at

__all__ = [
    "PollCredit",
    "RequestKind",
    "Reserves",
    "next_kind",
    "poll_budget_applies",
    "polls_within_budget",
    "trigger_ready_at",
]


class RequestKind(IntEnum):
    """What a request is for, which decides its place in the queue."""

    URGENT = 0
    """Retries of safe failures and reconciliation reads: ahead of everything."""
    POLL = 1
    """Status polls: behind urgent work, ahead of triggers within their budget."""
    TRIGGER = 2
    """First attempts of triggers: the point of the run, and the bulk of it."""


@dataclass(frozen=True, slots=True)
class Reserves:
    """The shares of every window kept for polls (``polls``) and for triggers (``triggers``)."""

    polls: Fraction
    triggers: Fraction

    def __post_init__(self) -> None:
        for share in (self.polls, self.triggers):
            if not 0 <= share <= 1:
                raise ValueError(f"a reserve is a share between 0 and 1, got {share!r}")

    def slots(self, room: int) -> tuple[int, int]:
        """The polls' reserve ``R`` and their budget ``P`` in a window of ``room`` slots."""
        polls, triggers = self.polls, self.triggers
        reserve = max(0, min(room * polls.numerator // polls.denominator, room - 1))
        kept = min(-(-room * triggers.numerator // triggers.denominator), room - reserve)  # ceil
        return reserve, room - kept


def trigger_ready_at(
    log: SlidingLog, reserves: Reserves, now: float, *, polls_waiting: bool
) -> float:
    """When a trigger may go: every window has room, and none where polling is active (a poll
    inside it, or ``polls_waiting``) loses its poll reserve to it.

    In such a window a trigger may fill it up to ``room - R``, or with up to ``room - P``
    admissions other than polls. With no poll waiting, the reserve lifts when the window's last
    poll leaves it.
    """
    ready = log.ready_at(now)
    for window_log in log.window_logs:
        polls = window_log.polls
        if not (polls or polls_waiting):
            continue
        room = window_log.room
        reserve, budget = reserves.slots(room)
        admissions = window_log.admissions
        if reserve == 0 or len(admissions) < room - reserve:
            continue
        seconds = window_log.window.seconds
        crowded = clears_at(admissions, room - reserve - 1, seconds)
        others_clear = clears_at(window_log.others, room - budget - 1, seconds)
        lifted = math.inf if polls_waiting else polls[-1] + seconds
        ready = max(ready, min(crowded, others_clear, lifted))
    return ready


def poll_budget_applies(log: SlidingLog, reserves: Reserves) -> bool:
    """Whether every window gives polls a budget of one slot at least (not so with no windows,
    or a window whose every slot the triggers' reserve takes, as a limit of 1)."""
    logs = log.window_logs
    return bool(logs) and all(reserves.slots(window_log.room)[1] >= 1 for window_log in logs)


def polls_within_budget(log: SlidingLog, reserves: Reserves, now: float) -> bool:
    """Whether every window holds fewer polls than its budget ``P`` at ``now``."""
    log.ready_at(now)
    return all(
        len(window_log.polls) < reserves.slots(window_log.room)[1] for window_log in log.window_logs
    )


class PollCredit:
    """Polls' share of the admissions contested with triggers, kept exactly in integers.

    The credit stays in ``[0, den)``: a contested poll is due when the credit plus ``num``
    reaches ``den``, and pays ``den``. A trigger admitted while no poll waits tops the credit up
    to one poll's worth at most, so a poll arriving later goes first, but polls never bank a
    burst.
    """

    __slots__ = ("_credit", "_den", "_num")

    def __init__(self, share: Fraction) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"poll_share is a share between 0 and 1, got {share!r}")
        self._num, self._den = share.numerator, share.denominator
        self._credit = self._den - self._num  # the first contested pick: a poll

    @property
    def poll_due(self) -> bool:
        """Whether the next contested admission is a poll's."""
        return self._num > 0 and self._credit + self._num >= self._den

    def admitted(self, kind: RequestKind, *, contested: bool) -> None:
        """Account for an admission of ``kind``, picked against the other kind if ``contested``."""
        if contested:
            self._credit += self._num
            if kind == RequestKind.POLL:
                self._credit -= self._den
        elif kind == RequestKind.TRIGGER:
            ceiling = self._den - self._num
            topped_up = min(self._credit + self._num, ceiling)
            self._credit = max(self._credit, topped_up)


def next_kind(
    waiting: Sequence[int], *, polls_within_budget: bool | None, credit: PollCredit
) -> tuple[RequestKind, bool]:
    """The kind whose head goes next, and whether polls and triggers contested the pick.

    ``waiting`` counts the waiters per kind; ``polls_within_budget`` says whether every window
    holds fewer polls than its budget, or is ``None`` where no budget applies (then the credit
    decides).
    """
    if waiting[RequestKind.URGENT]:
        return RequestKind.URGENT, False
    polls, triggers = waiting[RequestKind.POLL], waiting[RequestKind.TRIGGER]
    if polls and triggers:
        if polls_within_budget is not None:
            return (RequestKind.POLL if polls_within_budget else RequestKind.TRIGGER), False
        return (RequestKind.POLL if credit.poll_due else RequestKind.TRIGGER), True
    return (RequestKind.POLL if polls else RequestKind.TRIGGER), False
