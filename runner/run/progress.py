"""What a run shows while it works: a live display on a terminal, a few plain lines in CI.

On a TTY the view redraws a small block in place a few times a second: the run's line (sent,
in flight, done, failed, request rate, 429s, ETA) and one line per unfinished project. Anywhere
else (a CI log, a pipe, ``--no-progress``) it prints one timestamped line every
``plain_interval`` seconds, so a long run leaves a few lines a minute, never a spinner's worth.
Either way, a long wait says what it is waiting for: an outage ("API unavailable since
12:03:10 (HTTP 503); next probe in 20s"), a Retry-After pause.

The engine, the follower and the outage breaker count into :class:`RunProgress`; the view
only reads it and the limiter's pause, and never blocks the run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import anyio

LIVE_INTERVAL = 0.25
PLAIN_INTERVAL = 15.0
VERBOSE_PLAIN_INTERVAL = 5.0
PROJECT_LINES = 8
_RATE_WINDOW = 10.0  # seconds of history behind the request rate and the ETA

Pause = Callable[[], "tuple[float, str] | None"]


@dataclass
class ProjectProgress:
    """Counters of one project's actions."""

    actions: int = 0
    sent: int = 0
    in_flight: int = 0
    triggered: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0

    @property
    def settled(self) -> int:
        return self.triggered + self.failed + self.unknown + self.skipped


@dataclass(frozen=True)
class Outage:
    """Why and since when sending is paused for an outage; wall-clock times."""

    since: float  # when the breaker opened
    why: str  # the last sign of the outage: "HTTP 503", "no answer to the probe"...
    next_probe: float | None  # when the next probe may go; None while one is out


@dataclass
class RunProgress:
    """Live counters for the progress display; the ledger stays the source of truth."""

    total: int = 0
    sent: int = 0
    in_flight: int = 0
    triggered: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    requests: int = 0
    requests_in_flight: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    retries: int = 0
    jobs_followed: int = 0
    jobs_done: int = 0
    guard_reads_skipped: int = 0  # the state saw the project's latest job end
    stop_reason: str | None = None
    outage: Outage | None = None  # the API is unavailable: nothing is sent but a probe
    projects: dict[str, ProjectProgress] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return self.triggered + self.failed + self.unknown + self.skipped

    def note(self, project: str, **deltas: int) -> None:
        """Add ``deltas`` to the run's counters and to ``project``'s."""
        counters = self.projects.setdefault(project, ProjectProgress())
        for name, delta in deltas.items():
            setattr(self, name, getattr(self, name) + delta)
            setattr(counters, name, getattr(counters, name) + delta)


@dataclass(frozen=True)
class ViewOptions:
    live: bool  # redraw in place (a TTY); else plain timestamped lines
    color: bool = False
    verbose: bool = False


class ProgressView:
    """Renders a run's progress to a stream until cancelled, then leaves a final line."""

    def __init__(
        self,
        progress: RunProgress,
        stream: TextIO,
        options: ViewOptions,
        *,
        pause: Pause | None = None,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._progress = progress
        self._stream = stream
        self._options = options
        self._pause = pause
        self._now = now
        self._wall = wall
        self._history: deque[tuple[float, int, int]] = deque()  # (time, requests, settled)
        self._drawn_lines = 0
        self._started = now()

    async def run(self) -> None:
        """Draw until cancelled; the last state stays on screen."""
        interval = self._interval()
        try:
            while True:
                self._draw()
                await anyio.sleep(interval)
        finally:
            self._draw(final=True)

    def _interval(self) -> float:
        if self._options.live:
            return LIVE_INTERVAL
        return VERBOSE_PLAIN_INTERVAL if self._options.verbose else PLAIN_INTERVAL

    def _draw(self, *, final: bool = False) -> None:
        self._sample()
        if self._options.live:
            self._redraw(self._live_lines(final=final))
        elif final or self._progress.total:
            self._stream.write(f"[{time.strftime('%H:%M:%S')}] {self.summary_line()}\n")
            self._stream.flush()

    def _sample(self) -> None:
        now = self._now()
        self._history.append((now, self._progress.requests, self._progress.settled))
        while len(self._history) > 2 and now - self._history[0][0] > _RATE_WINDOW:
            self._history.popleft()

    def _rates(self) -> tuple[float, float]:
        """Requests per second and settled actions per second over the recent window."""
        if len(self._history) < 2:
            return 0.0, 0.0
        (t0, r0, s0), (t1, r1, s1) = self._history[0], self._history[-1]
        span = max(t1 - t0, 1e-9)
        return (r1 - r0) / span, (s1 - s0) / span

    # -- text ------------------------------------------------------------------------------------

    def summary_line(self) -> str:
        """The run on one line."""
        p = self._progress
        request_rate, settle_rate = self._rates()
        parts = [
            f"triggers {p.settled}/{p.total} done",
            f"{p.sent} sent",
            f"{p.in_flight} in flight",
            f"{p.failed} failed",
        ]
        if p.unknown:
            parts.append(f"{p.unknown} unknown")
        if p.skipped:
            parts.append(f"{p.skipped} skipped")
        if p.jobs_followed:
            parts.append(f"jobs {p.jobs_done}/{p.jobs_followed} finished")
        parts.append(f"{request_rate:.1f} req/s")
        parts.append(f"{p.rate_limited} × 429")
        parts.append(self._eta(settle_rate))
        waiting = self._waiting()
        if waiting:
            parts.append(waiting)
        return " · ".join(parts)

    def _eta(self, settle_rate: float) -> str:
        p = self._progress
        remaining = p.total - p.settled
        if remaining <= 0:
            left = p.jobs_followed - p.jobs_done
            return f"following {left} jobs" if left > 0 else "done"
        if settle_rate <= 0:
            return "ETA —"
        return f"ETA {_duration(remaining / settle_rate)}"

    def _waiting(self) -> str | None:
        if self._progress.stop_reason:
            return f"stopping: {self._progress.stop_reason}"
        if self._progress.outage is not None:
            return outage_text(self._progress.outage, self._wall())
        pause = self._pause() if self._pause else None
        if pause is not None:
            seconds, reason = pause
            return f"waiting {_duration(seconds)} ({reason})"
        return None

    def _live_lines(self, *, final: bool) -> list[str]:
        elapsed = _duration(self._now() - self._started)
        head = f"mlrun {elapsed} · {self.summary_line()}"
        lines = [self._bold(head)]
        if not final:
            lines.extend(self._project_lines())
        return lines

    def _project_lines(self) -> list[str]:
        busy = [
            (name, counters)
            for name, counters in self._progress.projects.items()
            if counters.settled < counters.actions or counters.in_flight
        ]
        busy.sort(key=lambda item: (-item[1].in_flight, item[0]))
        lines = [_project_line(name, counters) for name, counters in busy[:PROJECT_LINES]]
        if len(busy) > PROJECT_LINES:
            lines.append(f"  … and {len(busy) - PROJECT_LINES} more projects")
        return lines

    def _bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self._options.color else text

    def _redraw(self, lines: list[str]) -> None:
        out = []
        if self._drawn_lines:
            out.append(f"\x1b[{self._drawn_lines}F")  # back to the first line of the block
        out.extend(f"\x1b[2K{line}\n" for line in lines)
        stale = self._drawn_lines - len(lines)
        out.extend("\x1b[2K\n" for _ in range(max(0, stale)))
        if stale > 0:
            out.append(f"\x1b[{stale}F")
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn_lines = len(lines)


def _project_line(name: str, counters: ProjectProgress) -> str:
    return (
        f"  {name}: {counters.settled}/{counters.actions} done · {counters.in_flight} in flight"
        f" · {counters.failed} failed"
    )


def outage_text(outage: Outage, now: float) -> str:
    """The outage on one line: since when (local time), why, and when the next probe goes."""
    since = time.strftime("%H:%M:%S", time.localtime(outage.since))
    text = f"API unavailable since {since} ({outage.why})"
    if outage.next_probe is None:
        return f"{text}; probing"
    return f"{text}; next probe in {_duration(outage.next_probe - now)}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
