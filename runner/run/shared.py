"""Runs shared by key: across re-runs, machines and the shards of one CI job.

A run with a key (:mod:`runner.run.runkey`) is found again by it. A re-run of the job
continues it, from any machine with the same state: what was triggered is not triggered again,
what was in doubt is settled, jobs still running are followed. A run that ended is not applied
again unless ``--new-run`` names a new run with the key.

The shards of a keyed run (``--shard I/N``) write into one run: the first to arrive records the
whole plan, the others join it, each applies its part under a lease of its own. Before any of
them sends, the budget is checked against the whole plan: each shard reads its own projects'
query counts and records them in the state, then waits until every project's count is known
(the other shards read theirs meanwhile) and checks the whole plan's cost.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from runner.clock import Clock
from runner.errors import BudgetExceeded, ConfigError
from runner.plan import Plan
from runner.plan.shard import Shard
from runner.run.execute import Part
from runner.run.signals import Interrupt, Say
from runner.store import ActionState, RunRecord, RunStatus, Store

WHOLE = "all"  # the part of an unsharded run
BUDGET_CHECKED = "budget_checked"  # the whole plan passed the budget: any shard may send
BUDGET_REFUSED = "budget_refused"  # the whole plan did not: no shard sends
SHARD_WAIT = 600.0  # seconds a shard waits for the other shards' query counts
COUNT_AGE = 24 * 3600.0  # a count read this long before the run began still counts for it
_SAID_EVERY = 10.0


def part_name(shard: Shard | None) -> str:
    """``2/4`` for a shard, ``all`` for a whole run."""
    return WHOLE if shard is None else str(shard)


def part_of(plan: Plan, shard: Shard | None) -> Part | None:
    """The actions of ``plan`` that ``shard`` applies; None for the whole run."""
    if shard is None:
        return None
    keys = frozenset(a.key for a in plan.actions if shard.owns(a.project))
    return Part(str(shard), keys, shard.count)


def check_same_manifest(record: RunRecord, whole: Plan, key: str) -> None:
    """A run continued by its key applies the manifest it was planned from, or nothing."""
    if record.manifest_digest != whole.manifest_digest:
        raise ConfigError(
            f"run {record.run_id} ({key}) was planned from another manifest than this one: "
            "a run key continues its own run; pass --new-run to start a new run with this "
            "manifest, or --run-key another name"
        )


def part_ended(ledger: Store, record: RunRecord, part: Part | None) -> bool:
    """Whether this part of the run is over: nothing left to send, follow or settle."""
    if part is None:
        return record.status in {RunStatus.FINISHED, RunStatus.FAILED}
    return ledger.parts(record.run_id).get(part.name) in {RunStatus.FINISHED, RunStatus.FAILED}


def part_started(ledger: Store, run_id: str, part: Part | None) -> bool:
    """Whether any trigger of this part was attempted (or settled) already."""
    return any(
        record.state != ActionState.PENDING
        for record in ledger.actions(run_id)
        if part is None or record.action.key in part.keys
    )


def budget_settled(ledger: Store, run_id: str) -> str | None:
    """``budget_checked`` or ``budget_refused`` once a shard decided for the whole run."""
    for _at, kind, _key, _detail in reversed(ledger.events(run_id)):
        if kind in {BUDGET_CHECKED, BUDGET_REFUSED}:
            return kind
    return None


async def whole_plan_counted(  # noqa: PLR0913 - the barrier's collaborators, by name
    ledger: Store,
    record: RunRecord,
    *,
    base_url: str,
    since: float,
    clock: Clock,
    say: Say,
    interrupt: Interrupt,
    wait: float = SHARD_WAIT,
) -> Plan:
    """The run's whole plan with every project's query count, once every shard read its own.

    Waits (at most ``wait`` seconds) until the state holds a count read since ``since`` for
    each project of the run, or until another shard decided the budget; what is still unknown
    then stays unknown (the budget check says so).
    """
    plan = record.plan
    names = {a.project_id: a.project for a in plan.actions}
    deadline = clock.monotonic() + wait
    said = clock.monotonic()
    with interrupt.phase():
        while True:
            counts = ledger.query_counts(base_url, since=since)
            missing = names.keys() - counts.keys()
            if not missing or budget_settled(ledger, record.run_id) is not None:
                break
            if clock.monotonic() >= deadline:
                say(f"the other shards did not read {len(missing)} projects' query counts")
                break
            if clock.monotonic() - said >= _SAID_EVERY:
                said = clock.monotonic()
                known = len(names) - len(missing)
                say(f"waiting for the other shards: {known} of {len(names)} query counts known")
            await anyio.sleep(1.0)
    counted = {names[pid]: count for pid, count in counts.items() if pid in names}
    return plan.with_query_counts(counted)


def decide_budget(
    ledger: Store, run_id: str, whole: Plan, *, allow_unknown_cost: bool, now: float
) -> None:
    """Check the whole plan's cost once for every shard; BudgetExceeded for each if refused."""
    from runner.run.preflight import check_budget  # noqa: PLC0415 - one budget rule for all

    if budget_settled(ledger, run_id) == BUDGET_REFUSED:
        raise BudgetExceeded(f"run {run_id}: another shard found the whole plan over the budget")
    try:
        check_budget(whole, allow_unknown_cost=allow_unknown_cost)
    except BudgetExceeded as refusal:
        ledger.record_event(run_id, BUDGET_REFUSED, now=now, message=str(refusal))
        raise
    with ledger.transaction():
        ledger.set_plan(run_id, whole)
        ledger.record_event(run_id, BUDGET_CHECKED, now=now)


def counts_by_id(plan: Plan, counts: Mapping[str, int]) -> dict[str, int]:
    """Query counts by project name (as the plan carries them) turned into counts by id."""
    ids = {a.project: a.project_id for a in plan.actions}
    return {ids[name]: count for name, count in counts.items() if name in ids}
