"""``mlrun apply`` of a run named by a key: started, joined by its other shards, or continued.

See :mod:`runner.run.shared` for what shards of one run share, and docs/state.md for the
behaviour a user sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner.api import MentionLabClient
from runner.clock import Clock, SystemClock
from runner.errors import BudgetExceeded
from runner.manifest.model import Settings
from runner.plan import Plan
from runner.plan.remote import RemoteFacts
from runner.plan.shard import Shard, shard_of
from runner.ratelimit import RateLimiter
from runner.run.execute import Part, new_run_id, run_metadata, set_status, start_run
from runner.run.known import Counting, Others, count_the_rest
from runner.run.lease import under_lease
from runner.run.preflight import confirmed, plan_line
from runner.run.runkey import lease_key
from runner.run.shared import (
    BUDGET_REFUSED,
    budget_settled,
    check_same_manifest,
    decide_budget,
    lock_part,
    part_ended,
    part_name,
    part_of,
    part_started,
)
from runner.run.signals import Interrupt, interruptible
from runner.run.steps import (
    ApplyRequest,
    ApplyResult,
    New,
    Output,
    counted_plan,
    report_directory_base,
    reported_on_failure,
    resumed_request,
    run_new,
    run_options,
    run_phase,
    write_run_report,
)
from runner.run.target import Target, pinned_target
from runner.run.wiring import (
    make_client,
    make_limiter,
    resumed_sandbox,
    sandbox_saved,
    sandbox_state_file,
)
from runner.store import RunRecord, RunStatus, Store


@dataclass(frozen=True)
class Keyed:
    """A run named by a key: found again by it, on any machine, by every shard."""

    key: str
    request: ApplyRequest
    whole: Plan  # every shard's actions
    plan: Plan  # this process's part (the whole plan without --shard)
    settings: Settings  # this part's (with --shard, the rate windows divided)
    target: Target


def apply_keyed(keyed: Keyed, ledger: Store, out: Output, env: Mapping[str, str]) -> ApplyResult:
    """Start the run named ``keyed.key``, join it (another shard), or continue it (a re-run)."""
    request = keyed.request
    clock = SystemClock()
    lock_part(ledger, keyed.key, request.shard, wait=request.lock_timeout)
    existing = ledger.run_by_key(keyed.key)
    replacing = None
    if existing is not None and request.new_run:
        replacing, existing = existing.run_id, None
    if existing is None and request.shard is None:
        new = New(
            request,
            keyed.plan,
            keyed.settings,
            keyed.target,
            new_run_id(clock),
            keyed.key,
            replacing,
        )
        return run_new(new, ledger, out, env)
    if existing is None:  # the first shard records the whole run; the others join it
        meta = run_metadata(env, settings=keyed.settings)
        meta["reportDir"] = str(report_directory_base(request, keyed.settings))
        run_id = start_run(
            ledger,
            keyed.whole,
            clock=clock,
            target=keyed.target,
            meta=meta,
            run_key=keyed.key,
            replacing=replacing,
        )
        existing = ledger.run(run_id)
    return _continue_keyed(keyed, existing, ledger, out, env)


def _continue_keyed(
    keyed: Keyed, record: RunRecord, ledger: Store, out: Output, env: Mapping[str, str]
) -> ApplyResult:
    """This process's part of the keyed run ``record``: checked, then planned or resumed."""
    request = keyed.request
    check_same_manifest(record, keyed.whole, keyed.key)
    target = pinned_target(record, sandbox=request.sandbox, base_url=request.base_url, env=env)
    part = part_of(record.plan, request.shard)
    run_id = record.run_id
    request = resumed_request(request, record)
    if part_ended(ledger, record, part):
        out.say(
            f"run {run_id} ({keyed.key}) ended {record.status}: nothing is applied again; "
            "--new-run starts a new run with this key"
        )
        report, files = write_run_report(ledger, run_id, request, keyed.settings, env, part)
        return ApplyResult(keyed.plan, keyed.settings, None, (), ledger.location, report, files)
    settled = budget_settled(ledger, run_id)
    if settled == BUDGET_REFUSED:
        set_status(ledger, run_id, part, RunStatus.FAILED, SystemClock().wall())
        raise BudgetExceeded(f"run {run_id} ({keyed.key}): the whole plan is over the budget")
    to_plan = request.shard is not None and settled is None
    verb = "continuing" if part_started(ledger, run_id, part) else "joining"
    out.say(f"{verb} run {run_id} ({keyed.key}), part {part_name(request.shard)}")
    state_file = sandbox_state_file(ledger, run_id)

    async def body(interrupt: Interrupt) -> ApplyResult:
        clock = SystemClock()
        sandbox = resumed_sandbox(record, state_file, out.say) if target.sandbox else None
        client = make_client(
            target, keyed.settings, concurrency=request.concurrency, sandbox=sandbox
        )
        with sandbox_saved(sandbox, state_file, out.say):
            async with client:
                limiter = make_limiter(keyed.settings, clock, request.concurrency)
                if to_plan:
                    await _plan_the_shared_run(
                        keyed,
                        record,
                        part,
                        client=client,
                        limiter=limiter,
                        ledger=ledger,
                        out=out,
                        interrupt=interrupt,
                    )
                summary = await run_phase(
                    run_id=run_id,
                    client=client,
                    limiter=limiter,
                    ledger=ledger,
                    clock=clock,
                    options=run_options(request, keyed.settings),
                    out=out,
                    interrupt=interrupt,
                    part=part,
                )
        report, files = write_run_report(ledger, run_id, request, keyed.settings, env, part)
        return ApplyResult(
            keyed.plan, keyed.settings, summary, (), ledger.location, report, files,
            interrupt.signal,
        )  # fmt: skip

    with reported_on_failure(ledger, run_id, request, keyed.settings, env):
        return interruptible(lambda i: under_lease(ledger, lambda: body(i)), out.say)


async def _plan_the_shared_run(  # noqa: PLR0913 - the shard's collaborators
    keyed: Keyed,
    record: RunRecord,
    part: Part | None,
    *,
    client: MentionLabClient,
    limiter: RateLimiter,
    ledger: Store,
    out: Output,
    interrupt: Interrupt,
) -> None:
    """The whole run counted and its budget decided, before this shard sends anything.

    A shard reads its own projects' counts first, then those of the whole plan that no shard
    has recorded yet: shards that run side by side read each project about once, and a shard
    that runs alone (the others later, or never) still checks the budget of the whole plan.
    """
    request, settings = keyed.request, keyed.settings
    clock = SystemClock()
    since = min(clock.wall() - settings.max_count_age, record.started_at)
    counting = Counting(ledger, record.base_url, since, each=True)

    async def count(plan: Plan) -> tuple[Plan, RemoteFacts]:
        return await counted_plan(
            plan,
            counting,
            request=request,
            settings=settings,
            client=client,
            limiter=limiter,
            out=out,
            interrupt=interrupt,
        )

    whole = record.plan  # offline: as planned (a saved plan's counts, or none)
    if not request.offline and (shard := request.shard) is not None:
        others = _other_shards(shard, keyed, record, ledger, clock)
        counted = await count_the_rest(
            whole, counting, count, own=keyed.plan, others=others, batch=settings.concurrency
        )
        if counted is None:  # another shard decided the budget meanwhile
            if budget_settled(ledger, record.run_id) == BUDGET_REFUSED:
                set_status(ledger, record.run_id, part, RunStatus.FAILED, clock.wall())
                raise BudgetExceeded(f"run {record.run_id}: the whole plan is over the budget")
            return
        whole = counted
    try:
        decide_budget(
            ledger,
            record.run_id,
            whole,
            allow_unknown_cost=request.allow_unknown_cost,
            now=clock.wall(),
        )
    except BudgetExceeded:
        set_status(ledger, record.run_id, part, RunStatus.FAILED, clock.wall())
        raise
    out.say(f"plan: {plan_line(whole, offline=request.offline)}")
    await confirmed(out.confirm, interrupt)


def _other_shards(
    shard: Shard, keyed: Keyed, record: RunRecord, ledger: Store, clock: Clock
) -> Others:
    """The shards beside this one: which are at work (they hold their part's lease)."""

    def working(project: str) -> bool:
        owner = Shard(shard_of(project, shard.count), shard.count)
        return owner != shard and ledger.held_by_another(lease_key(keyed.key, str(owner)))

    return Others(
        working=working,
        decided=lambda: budget_settled(ledger, record.run_id) is not None,
        clock=clock,
    )
