"""The limits as known now: when a request of each kind may go, and what a response teaches.

:class:`Limits` composes the sliding log of the configured and learned windows, the poll
reserve, the caps and neighbour holds learned from ``X-RateLimit-*`` and the server's push-back.
Synchronous and clock-free: the caller passes ``now`` (monotonic seconds) and numbers the
admissions; waiting is the business of :class:`~runner.ratelimit.limiter.RateLimiter`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final

from runner.ratelimit.headers import RateLimitInfo
from runner.ratelimit.learning import (
    Caps,
    LearnedWindows,
    cap_seconds,
    neighbour_holds,
    timing_slack,
    window_with_limit,
)
from runner.ratelimit.priority import (
    RequestKind,
    Reserves,
    poll_budget_applies,
    polls_within_budget,
    trigger_ready_at,
)
from runner.ratelimit.pushback import PushBack
from runner.ratelimit.sliding_log import IN_FLIGHT, SlidingLog, Window, WindowLog

__all__ = ["Limits"]

# Admission times kept to count requests sent after an observed one (in-flight accounting),
# and, while no window is known, the slots a learned window starts with.
_RECENT_HORIZON: Final = 60.0


class Limits:
    """Every limit on admissions at once: windows, learned caps and holds, and pauses.

    ``windows`` is empty when the limits are unknown (then they are learned from the headers).
    ``permits`` is how many requests may be held at once, which bounds the timing slack of a
    configured window's headers. ``probe_first`` admits one request and waits for its answer
    before the others, so that a neighbour's use of the key is known before a burst.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        *,
        reserves: Reserves,
        pushback: PushBack,
        permits: int,
        probe_first: bool = False,
    ) -> None:
        self._configured = tuple(windows)
        self._reserves = reserves
        self._pushback = pushback
        self._permits = permits
        self._probe_first = probe_first  # armed on the first admission decision
        self._log = SlidingLog(self._configured) if self._configured else None
        self._learned = LearnedWindows(self._configured)
        self._caps = Caps()
        self._holds: dict[Window, tuple[int, float]] = {}  # slots held for a neighbour, until
        self._seq = 0
        self._predicted: dict[int, dict[int, int]] = {}  # per admission: slots left by limit
        self._recent: deque[float] = deque()
        # The slots of the last minute while no window is known (its limit is unused).
        self._unlogged = WindowLog(Window(1, _RECENT_HORIZON), (), ())

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows enforced now: the configured ones and those learned from the headers."""
        return self._log.windows if self._log is not None else ()

    @property
    def learned_windows(self) -> tuple[Window, ...]:
        """The windows learned from the headers."""
        return self._learned.windows

    @property
    def learned_caps(self) -> int:
        """How many caps were learned from ``X-RateLimit-Remaining``."""
        return self._caps.learned

    # -- admission -------------------------------------------------------------------------------

    def ready_at(self, now: float, kind: RequestKind, *, polls_waiting: bool) -> float:
        """When the pause, the windows (for a trigger, the poll reserve too) and the caps all
        allow an admission of ``kind``."""
        ready = self._pushback.until
        if self._probe_first:
            self._probe_first = False
            self._caps.probe(now, self._seq)
        if self._holds:
            self._apply_holds(now)
        log = self._log
        if log is not None and kind == RequestKind.TRIGGER:
            trigger_ready = trigger_ready_at(log, self._reserves, now, polls_waiting=polls_waiting)
            ready = max(ready, trigger_ready)
        elif log is not None:
            ready = max(ready, log.ready_at(now))
        if self._caps:
            ready = max(ready, self._caps.ready_at(now, self._seq))
        return ready

    def polls_within_budget(self, now: float) -> bool | None:
        """Whether every window holds fewer polls than its budget; ``None`` if none applies."""
        log = self._log
        if log is None or not poll_budget_applies(log, self._reserves):
            return None
        return polls_within_budget(log, self._reserves, now)

    def admit(self, now: float, kind: RequestKind) -> int:
        """Take the slots of one request of ``kind`` at ``now``, in flight until :meth:`ended`;
        its number (from 1)."""
        poll = kind is RequestKind.POLL
        log = self._log
        if log is not None:
            log.admit(now, poll=poll)
        else:
            self._unlogged.purge(_RECENT_HORIZON, now)
            self._unlogged.admit(poll=poll)
        self._caps.admitted()
        self._seq += 1
        _append_recent(self._recent, now, now - _RECENT_HORIZON)
        if log is not None:
            self._predicted[self._seq] = log.remaining()
        return self._seq

    def give_back(self, seq: int, kind: RequestKind, *, ended_at: float = IN_FLIGHT) -> None:
        """Return the slots of admission ``seq``, never sent (in flight, or ended at
        ``ended_at``), and its share of the caps."""
        poll = kind == RequestKind.POLL
        if self._log is not None:
            self._log.refund(ended_at, poll=poll)
        else:
            self._unlogged.refund(ended_at, poll=poll)
        self._caps.given_back(seq)

    def ended(self, seq: int, now: float, kind: RequestKind, *, sent: bool = True) -> bool:
        """Admission ``seq`` has ended at ``now``, answered or not (its slots, if ``sent``, leave
        each window one window from now); whether it was the probe and no answer came (a
        network error): then the next probe may go at once (:meth:`probe`)."""
        if sent:
            poll = kind == RequestKind.POLL
            if self._log is not None:
                self._log.end(now, poll=poll)
            else:
                self._unlogged.end(now, poll=poll)
        self._predicted.pop(seq, None)
        return self._caps.probing(seq)

    def probe(self, now: float) -> None:
        """Admit one request, then nothing more until an answer comes."""
        self._caps.probe(now, self._seq)

    # -- learning from responses -------------------------------------------------------------------

    def observe_admission(
        self, seq: int, info: RateLimitInfo, *, sent_at: float, now: float
    ) -> None:
        """Learn from the response to admission ``seq``: exact in-flight accounting."""
        predicted = self._predicted.pop(seq, None)
        self._observe(info, after_seq=seq, sent_at=sent_at, now=now, predicted=predicted)

    def observe(self, info: RateLimitInfo, *, sent_at: float, now: float) -> None:
        """Learn from the response to a request sent at ``sent_at``: the admissions since then
        count as in flight (conservative by one: the observed request itself)."""
        in_flight_after = 0
        for admitted_at in reversed(self._recent):
            if admitted_at < sent_at:
                break
            in_flight_after += 1
        self._observe(info, after_seq=self._seq - in_flight_after, sent_at=sent_at, now=now)

    def _observe(
        self,
        info: RateLimitInfo,
        *,
        after_seq: int,
        sent_at: float,
        now: float,
        predicted: Mapping[int, int] | None = None,
    ) -> None:
        self._caps.answered()  # any answer ends a probe: its headers say what is left
        if info.reset_after is not None:
            self._learn_window(info.limit, info.reset_after)
        if not self._pushback.respond(info, sent_at=sent_at, now=now):
            self._learn_remaining(info, after_seq=after_seq, now=now, predicted=predicted)

    def _learn_remaining(
        self,
        info: RateLimitInfo,
        *,
        after_seq: int,
        now: float,
        predicted: Mapping[int, int] | None,
    ) -> None:
        """What ``Remaining`` and ``Reset`` say beyond our own log's count and what timing
        explains: a neighbour's share to hold, and a cap until the reset."""
        remaining, reset, reset_after = info.remaining, info.reset_epoch, info.reset_after
        if remaining is None or reset is None or reset_after is None:
            return
        expected = None if predicted is None or info.limit is None else predicted.get(info.limit)
        slack = timing_slack(info.limit, self._configured, self._permits)
        if expected is not None and remaining >= expected - slack:
            return  # the server counted no more than our own log did: nothing to learn
        self._learn_neighbour(info.limit, remaining, now, after_seq, expected)
        self._learn_cap(info.limit, remaining, reset, reset_after, now, after_seq)

    def _learn_window(self, limit: int | None, reset_after: float) -> None:
        """A limit we were not told becomes a window, enforced beside the configured ones."""
        if not self._learned.learn(limit, reset_after):
            return
        if self._log is not None:
            history, polls = self._log.entries(), self._log.poll_entries()
        else:
            history, polls = list(self._unlogged.admissions), list(self._unlogged.polls)
        windows = [*self._configured, *self._learned.windows]
        self._log = SlidingLog(windows, history=history, polls=polls)
        self._holds.clear()

    def _learn_cap(
        self,
        limit: int | None,
        remaining: int,
        reset: float,
        reset_after: float,
        now: float,
        after_seq: int,
    ) -> None:
        """``Remaining`` below the local allowance: cap admissions until the server's reset.

        The allowance compared is that of the window the headers describe (by its limit) when
        it is one we enforce, else the tightest of them.
        """
        if reset_after <= 0:
            return  # the window the header describes has already been reset
        allowance = remaining - (self._seq - after_seq)
        expires_at = now + min(
            reset_after, cap_seconds(limit, self.windows, self._pushback.max_pause)
        )
        if self._caps.tighten(reset, allowance, expires_at, after_seq):
            return
        local = self._local_allowance(limit, now)
        if local is None or allowance < local:
            self._caps.add(reset, allowance, expires_at, after_seq)

    def _local_allowance(self, limit: int | None, now: float) -> int | None:
        if self._log is None:
            return None
        reported = window_with_limit(self._log.windows, limit)
        if reported is None:
            return self._log.allowance(now)
        return reported.limit - self._log.count(reported, now)

    def _learn_neighbour(
        self, limit: int | None, remaining: int, now: float, after_seq: int, expected: int | None
    ) -> None:
        """Another client of the key uses part of the window the headers describe: hold the
        same share of every shorter window for it, until that window's span has passed."""
        log = self._log
        reported = None if log is None else window_with_limit(log.windows, limit)
        if log is None or reported is None:
            return
        if expected is None:  # no prediction: what our log had left when the request went out
            expected = reported.limit - (log.count(reported, now) - (self._seq - after_seq))
        for window, slots in neighbour_holds(reported, log.windows, expected - remaining).items():
            self._holds[window] = (slots, now + reported.seconds)
        self._apply_holds(now)

    def _apply_holds(self, now: float) -> None:
        if self._log is None:
            return
        for window, (slots, until) in list(self._holds.items()):
            expired = until <= now
            if expired:
                del self._holds[window]
            self._log.reserve(window, 0 if expired else slots)


def _append_recent(recent: deque[float], now: float, horizon: float) -> None:
    recent.append(now)
    while recent[0] < horizon:
        recent.popleft()
