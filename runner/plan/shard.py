"""``--shard i/n``: one of ``n`` parallel CI jobs runs its part of the plan on 1/n of the budget.

The partition is by project: a project's shard is a hash of its *name* modulo ``n``, so

* every action of a project lands in the same shard, and the one-trigger-in-flight-per-project
  rule still holds across the ``n`` jobs (no two jobs ever trigger the same project);
* a project keeps its shard when other projects are added, removed or reordered (a hash of the
  name, not a position), so a shard's history stays comparable from run to run;
* the same manifest gives the same partition on every machine (SHA-256, not Python's ``hash``).

The rate budget is the account's, shared by the ``n`` jobs: each shard's limiter gets every window
floor-divided by ``n`` (at least 1), so together they stay within the limits. The execution budget
(``settings.budget.maxExecutions``) is shared the same way when the whole plan's cost is unknown at
split time (a plan straight from a manifest); a saved plan, whose cost is known, is checked whole
before it is split, and a refusal stops every shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from runner.errors import BudgetExceeded, UsageError
from runner.manifest.model import RateLimits, Settings
from runner.plan import Plan

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
MAX_SHARDS = 256  # GitHub's job matrix holds at most 256 jobs


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise UsageError(
                f"--shard: the shard count must be 1 to {MAX_SHARDS}, not {self.count}"
            )
        if not 1 <= self.index <= self.count:
            raise UsageError(f"--shard {self}: the index must be 1 to {self.count} (1-based)")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` → ``Shard(2, 4)``; :class:`UsageError` for anything else."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise UsageError(f"--shard {text!r}: write I/N, for example 2/4 (1-based)")
        return cls(int(match[1]), int(match[2]))

    def owns(self, project: str) -> bool:
        """Whether ``project``'s actions run in this shard."""
        return shard_of(project, self.count) == self.index


def shard_of(project: str, count: int) -> int:
    """The 1-based shard of ``project`` among ``count``: SHA-256 of the name, modulo ``count``."""
    digest = hashlib.sha256(project.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def share(limit: int, count: int) -> int:
    """One shard's part of a rate limit: ``limit // count``, at least 1."""
    return max(limit // count, 1)


def shard_rate_limits(limits: RateLimits, count: int) -> RateLimits:
    """Every window's limit divided among ``count`` shards; unset windows stay unset."""

    def part(limit: int | None) -> int | None:
        return None if limit is None else share(limit, count)

    return RateLimits(part(limits.per_second), part(limits.per_minute), part(limits.per_hour))


def shard_settings(settings: Settings, shard: Shard) -> Settings:
    """``settings`` with the rate windows divided among the shards."""
    return replace(settings, rate_limits=shard_rate_limits(settings.rate_limits, shard.count))


def shard_plan(plan: Plan, shard: Shard, limits: RateLimits | None = None) -> Plan:
    """The shard's part of ``plan``, with its share of the execution budget and a note.

    Raises :class:`BudgetExceeded` when the whole plan's cost is known and over the budget: no
    shard may run a part of a refused plan.
    """
    verdict = plan.budget()
    if verdict.refused:
        raise BudgetExceeded(verdict.message())
    actions = tuple(a for a in plan.actions if shard.owns(a.project))
    notes = (*plan.notes, _note(plan, actions, shard), *_overload_notes(limits, shard))
    return replace(
        plan, actions=actions, max_executions=_budget_share(plan, shard), notes=tuple(notes)
    )


def _budget_share(plan: Plan, shard: Shard) -> int | None:
    """The whole budget when the whole plan was checked against it, else a 1/n share."""
    if plan.max_executions is None or plan.total_expected is not None:
        return plan.max_executions
    return plan.max_executions // shard.count


def _note(plan: Plan, kept: tuple[object, ...], shard: Shard) -> str:
    projects = len({a.project for a in plan.actions})
    mine = len({a.project for a in plan.actions if shard.owns(a.project)})
    return (
        f"shard {shard}: {mine} of {projects} projects ({len(kept)} of {len(plan.actions)} "
        f"actions); every rate window divided by {shard.count}"
    )


def _overload_notes(limits: RateLimits | None, shard: Shard) -> tuple[str, ...]:
    """A warning when some window is smaller than the shard count (each shard still gets 1)."""
    if limits is None:
        return ()
    small = [limit for limit, _seconds in limits.windows() if limit < shard.count]
    if not small:
        return ()
    warning = (
        f"warning: {shard.count} shards exceed a rate window of {min(small)}; each shard "
        "still sends 1 per window, so together they may exceed it: use fewer shards"
    )
    return (warning,)


def split_for_shard(plan: Plan, settings: Settings, shard: Shard | None) -> tuple[Plan, Settings]:
    """With ``--shard i/n``: the shard's actions, and every rate window divided by n."""
    if shard is None:
        return plan, settings
    return shard_plan(plan, shard, settings.rate_limits), shard_settings(settings, shard)
