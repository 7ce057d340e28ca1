"""When to look at a job next: what its timestamps reveal, the cohort, a one-step look-ahead.

The model. A job waits (``pending``) from its creation ``c`` until a start ``s``, then finishes
its ``N`` executions at an even pace, one every ``tau`` seconds, and ends at ``E = s + N tau``.
The API shows this through ``updatedAt``: while pending it is ``createdAt``; in processing it is
the moment the counters last changed, ``s + d tau`` once ``d`` executions are done (``s`` itself
before the first). So one processing look pins a point ``(d, u)`` of the job's line, two points
pin the line and its end, a pending look says the start is later, and a look that sees the same
count as the last one says the next execution is later. All times here are the server's (epoch
seconds); the follower maps them to its own clock.

The prior. Jobs of the same run whose start and pace became known make the :class:`Cohort`: how
long jobs stay pending, and how long processing takes against the job's size (a least-squares
``a + b N`` with a spread of ratios around it). Its quantiles give the hypotheses ``(s, tau)``
still possible for a job; those the looks so far rule out are dropped, and a point on the job's
line is weighted by how typical its implied pending time and pace are.

The decision. Each hypothesis says what a look at time ``t`` would find: the end (a cost of
``LATENESS_WEIGHT`` looks per whole duration of lateness), a second point (then one more look,
at the known end), a first point (about ``AFTER_FIRST_POINT`` more looks), or nothing new (the
same problem again, so ``J = (1 + known costs) / (1 - p_nothing)``). :func:`next_look` picks
the candidate time with the lowest expected cost; ``None`` means no basis (the caller falls back
to an age-based backoff).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

LATENESS_WEIGHT = 14.0  # looks worth one whole duration of lateness: 10 % late ~ 1.4 looks
AFTER_FIRST_POINT = 1.8  # expected looks once a first point of the line is known
QUANTILES = 9  # per prior dimension: at most QUANTILES**2 hypotheses
LINE_POINTS = 17  # hypotheses along a known point's line
CANDIDATES = 24  # look times weighed per decision
NOTHING_LEARNED_MAX = 0.97  # a look this likely to learn nothing is not worth weighing
COHORT_MIN = 3  # jobs with a known start and pace before the cohort is trusted
WIDEN = 3.0  # a small cohort's quantiles are spread by 1 + WIDEN / size: few jobs, less sure
FIT_MIN = 8  # jobs (of at least three sizes) before an overhead is fitted, not just a pace


@dataclass(frozen=True)
class Sighting:
    """What the looks so far revealed about one job (server times)."""

    created: float
    total: int
    seen_at: float  # the latest look
    seen_done: int  # executions done at the latest look
    started: bool  # a look saw it processing
    after: float  # the start is later than this (the latest pending look, else the creation)
    points: tuple[tuple[int, float], ...] = ()  # distinct (done, updatedAt) seen in processing

    def line(self) -> tuple[float, float] | None:
        """``(start, seconds per execution)`` from the two latest points, unless a later look
        contradicts it (the next execution was due before that look and had not come)."""
        if len(self.points) < 2:
            return None
        (d1, u1), (d2, u2) = self.points[-2], self.points[-1]
        if d2 <= d1 or u2 <= u1:
            return None
        tau = (u2 - u1) / (d2 - d1)
        start = u2 - d2 * tau
        if start + (self.seen_done + 1) * tau < self.seen_at:
            return None
        return start, tau


@dataclass(frozen=True)
class Prior:
    """The cohort's view of a job: pending-time and processing-ratio quantiles, a size fit."""

    pending: tuple[float, ...]
    ratios: tuple[float, ...]
    overhead: float
    per_execution: float
    bandwidth: float  # of the pending-time density

    def processing(self, total: int) -> float:
        return self.overhead + self.per_execution * total

    def pending_density(self, seconds: float) -> float:
        return _density(self.pending, seconds, self.bandwidth)

    def ratio_density(self, ratio: float) -> float:
        return _density(self.ratios, ratio, max(0.05, 0.25 * _spread(self.ratios)))


@dataclass
class Cohort:
    """Jobs of this run whose start and pace are known: the prior for the others."""

    pending: list[float] = field(default_factory=list)
    runs: list[tuple[int, float]] = field(default_factory=list)  # (total, processing seconds)

    def add(self, pending: float, total: int, processing: float) -> None:
        self.pending.append(max(0.0, pending))
        self.runs.append((total, processing))

    def __len__(self) -> int:
        return len(self.runs)

    def prior(self) -> Prior | None:
        """The prior, once ``COHORT_MIN`` jobs are known."""
        if len(self.runs) < COHORT_MIN:
            return None
        overhead, per_execution = _fit(self.runs)
        ratios = [p / max(1e-9, overhead + per_execution * n) for n, p in self.runs]
        widen = 1.0 + WIDEN / len(self.runs)
        pending = _widened(_quantiles(self.pending), widen, floor=0.0)
        return Prior(
            pending=pending,
            ratios=_widened(_quantiles(ratios), widen, floor=0.05),
            overhead=overhead,
            per_execution=per_execution,
            bandwidth=max(0.25, 0.25 * _spread(pending)),
        )


def hypotheses(seen: Sighting, prior: Prior | None) -> list[tuple[float, float, float]]:
    """``(start, seconds per execution, weight)`` for what is still possible, weighted; a known
    line needs no prior, anything else does (no prior: no hypotheses)."""
    line = seen.line()
    if line is not None:
        return [(line[0], line[1], 1.0)]
    if prior is None:
        return []
    if seen.points:
        return _on_point(seen, prior)
    base = prior.processing(seen.total) / seen.total
    starts = [seen.created + p for p in prior.pending if seen.created + p > seen.after]
    if not starts:  # pending longer than any job of the cohort: it may start at any moment
        starts = [seen.after]
    return [(start, base * ratio, 1.0) for start in starts for ratio in prior.ratios]


def _on_point(seen: Sighting, prior: Prior) -> list[tuple[float, float, float]]:
    """One point ``(d, u)`` is known: ``s = u - d tau``, so only the pace is open."""
    done, updated = seen.points[-1]
    base = prior.processing(seen.total) / seen.total
    low = max(0.0, seen.seen_at - updated) if seen.seen_done == done else 0.0
    high = (updated - max(seen.created, seen.after)) / done if done else math.inf
    typical_low, typical_high = base * prior.ratios[0] / 1.5, base * prior.ratios[-1] * 1.5
    start, stop = max(low, typical_low), min(high, typical_high)
    if start >= stop:  # the job is not like the cohort: every pace it allows, equally
        start, stop = low, min(high, 3.0 * max(low, base))
    if not stop > start:
        return []
    hyps = []
    for index in range(LINE_POINTS):
        tau = start + (stop - start) * (index + 0.5) / LINE_POINTS
        weight = prior.ratio_density(tau / base)
        if done:
            weight *= prior.pending_density(updated - done * tau - seen.created)
        hyps.append((updated - done * tau, tau, weight))
    if sum(w for _, _, w in hyps) <= 0:
        return [(s, tau, 1.0) for s, tau, _ in hyps]
    return hyps


def next_look(
    seen: Sighting, hyps: Sequence[tuple[float, float, float]], earliest: float, latest: float
) -> float | None:
    """The look time in ``[earliest, latest]`` with the lowest expected cost, or None."""
    if not hyps:
        return None
    if len(hyps) == 1:
        start, tau, _ = hyps[0]
        return min(latest, max(earliest, start + seen.total * tau))
    best, best_cost = None, math.inf
    for moment in _candidates(seen, hyps, earliest, latest):
        cost = expected_cost(seen, hyps, moment)
        if cost < best_cost:
            best, best_cost = moment, cost
    return best


def expected_cost(seen: Sighting, hyps: Sequence[tuple[float, float, float]], at: float) -> float:
    """Expected looks (lateness priced in looks) if the next look is at ``at``."""
    total_weight = sum(w for _, _, w in hyps)
    known, nothing = 0.0, 0.0
    for start, tau, weight in hyps:
        end = start + seen.total * tau
        if at >= end:
            known += weight * LATENESS_WEIGHT * (at - end) / max(1e-9, end - seen.created)
        elif at < start or (seen.started and math.floor((at - start) / tau) == seen.seen_done):
            nothing += weight
        else:
            known += weight * (1.0 if seen.points else AFTER_FIRST_POINT)
    if nothing / total_weight > NOTHING_LEARNED_MAX:
        return math.inf
    return (1.0 + known / total_weight) / (1.0 - nothing / total_weight)


def _candidates(
    seen: Sighting, hyps: Sequence[tuple[float, float, float]], earliest: float, latest: float
) -> list[float]:
    """Each hypothesis's end and next change, thinned to ``CANDIDATES``, within the bounds."""
    moments = {earliest, latest}
    for start, tau, _ in hyps:
        moments.add(start + seen.total * tau)
        following = start if not seen.started else start + (seen.seen_done + 1) * tau
        moments.add(following + 1e-3)
    inside = sorted(m for m in moments if earliest <= m <= latest)
    if len(inside) <= CANDIDATES:
        return inside
    step = len(inside) / CANDIDATES
    return [inside[int(i * step)] for i in range(CANDIDATES)]


def _fit(runs: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``processing = a + b N`` with ``a, b >= 0`` (proportional when sizes agree)."""
    sizes = [float(n) for n, _ in runs]
    times = [p for _, p in runs]
    mean_n, mean_p = statistics.fmean(sizes), statistics.fmean(times)
    spread = sum((n - mean_n) ** 2 for n in sizes)
    if len(runs) >= FIT_MIN and len(set(sizes)) >= 3:  # a line needs three sizes
        slope = sum((n - mean_n) * (p - mean_p) for n, p in runs) / spread
        intercept = mean_p - slope * mean_n
        if slope >= 0 and intercept >= 0:
            return intercept, slope
    return 0.0, sum(times) / max(1.0, sum(sizes))


def _quantiles(values: Sequence[float]) -> tuple[float, ...]:
    ordered = sorted(values)
    count = min(QUANTILES, len(ordered))
    return tuple(ordered[int((i + 0.5) * len(ordered) / count)] for i in range(count))


def _widened(values: tuple[float, ...], factor: float, *, floor: float) -> tuple[float, ...]:
    middle = values[len(values) // 2]
    return tuple(max(floor, middle + (v - middle) * factor) for v in values)


def _spread(ordered: Sequence[float]) -> float:
    return ordered[-1] - ordered[0] if ordered else 0.0


def _density(samples: Sequence[float], value: float, bandwidth: float) -> float:
    """A Gaussian kernel density (unnormalised: only ratios between hypotheses matter)."""
    return sum(math.exp(-0.5 * ((value - x) / bandwidth) ** 2) for x in samples)
