"""Runs shared by key: across re-runs, machines and the shards of one CI job.

A run with a key (:mod:`runner.run.runkey`) is found again by it. A re-run of the job
continues it, from any machine with the same state: what was triggered is not triggered again,
what was in doubt is settled, jobs still running are followed. A run that ended is not applied
again unless ``--new-run`` names a new run with the key.

The shards of a keyed run (``--shard I/N``) write into one run: the first to arrive records the
whole plan, the others join it, each applies its part under a lease of its own. Before any of
them sends, the budget is checked against the whole plan: each shard reads its own projects'
query counts and records them in the state, then reads the counts no shard has recorded yet,
and checks the whole plan's cost; the first decision stands for every shard.
"""

from __future__ import annotations

from runner.errors import BudgetExceeded, ConfigError, LedgerError
from runner.plan import Plan
from runner.plan.shard import Shard
from runner.run.execute import Part
from runner.run.runkey import lease_key
from runner.store import ActionState, RunRecord, RunStatus, Store, run_lease_key

WHOLE = "all"  # the part of an unsharded run
BUDGET_CHECKED = "budget_checked"  # the whole plan passed the budget: any shard may send
BUDGET_REFUSED = "budget_refused"  # the whole plan did not: no shard sends


def part_name(shard: Shard | None) -> str:
    """``2/4`` for a shard, ``all`` for a whole run."""
    return WHOLE if shard is None else str(shard)


def lock_part(ledger: Store, key: str, shard: Shard | None, *, wait: float) -> None:
    """Become the one writer of a keyed run's part: the whole run, or shard ``I/N`` of it.

    The parts of one run are applied side by side; the whole run (``mlrun apply --resume``,
    ``mlrun status``, an unsharded apply) never beside any of its parts.
    """
    ledger.lock(lease_key(key, part_name(shard)), wait=wait)
    others = [WHOLE] if shard is not None else [str(Shard(i, n)) for i, n in _parts(ledger, key)]
    for other in others:
        if ledger.held_by_another(lease_key(key, other)):
            whole = "the whole run" if other == WHOLE else f"its part {other}"
            raise LedgerError(
                f"run key {key!r}: another process is applying {whole}; wait for it to end, or "
                "use --lock-timeout SECONDS to wait"
            )


def lock_run(ledger: Store, record: RunRecord, *, wait: float) -> None:
    """Become the one writer of the whole run ``record`` (resume, status), keyed or not."""
    if record.run_key is None:
        ledger.lock(run_lease_key(record.run_id), wait=wait)
    else:
        lock_part(ledger, record.run_key, None, wait=wait)


def _parts(ledger: Store, key: str) -> list[tuple[int, int]]:
    record = ledger.run_by_key(key)
    if record is None:
        return []
    parts = [Shard.parse(name) for name in ledger.parts(record.run_id) if name != WHOLE]
    return [(part.index, part.count) for part in parts]


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


def decide_budget(
    ledger: Store, run_id: str, whole: Plan, *, allow_unknown_cost: bool, now: float
) -> None:
    """Check the whole plan's cost once for every shard; BudgetExceeded for each if refused.

    Shards that finish counting at the same moment decide one after the other, holding the run:
    the first decision stands, and a later shard neither checks again nor records its plan.
    """
    from runner.run.preflight import check_budget  # noqa: PLC0415 - one budget rule for all

    refusal: BudgetExceeded | None = None
    with ledger.transaction():
        ledger.hold_run(run_id)
        settled = budget_settled(ledger, run_id)
        if settled is None:
            try:
                check_budget(whole, allow_unknown_cost=allow_unknown_cost)
            except BudgetExceeded as error:
                refusal = error
                ledger.record_event(run_id, BUDGET_REFUSED, now=now, message=str(error))
            else:
                ledger.set_plan(run_id, whole)
                ledger.record_event(run_id, BUDGET_CHECKED, now=now)
    if refusal is not None:
        raise refusal
    if settled == BUDGET_REFUSED:
        raise BudgetExceeded(f"run {run_id}: another shard found the whole plan over the budget")
