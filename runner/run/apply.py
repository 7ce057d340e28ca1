"""The apply use case: manifest (or saved plan, or resumed run) in, a finished run out.

Wires the pieces for one invocation, in an order that spends nothing before it must: the local
plan (no request), the target (URL and key, checked), the ledger and its lock, then the remote
planning, the budget guard, the run itself and its report. SIGINT and SIGTERM stop whichever
phase is under way cleanly. The CLI parses options into :class:`ApplyRequest` and renders what
comes back; nothing here prints except through the ``say`` callback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import anyio

from runner.api import MentionLabClient
from runner.clock import Clock, SystemClock
from runner.errors import (
    BudgetExceeded,
    ConfigError,
    LeaseLost,
    LedgerError,
    MlrunError,
    UsageError,
    collapse,
)
from runner.manifest.model import Settings, settings_from_json
from runner.plan import Plan, Selection
from runner.plan.changes import nothing_to_apply
from runner.plan.local import local_plan
from runner.plan.planfile import read_saved_plan, verify_saved_plan
from runner.plan.remote import ProjectProblem, RemoteFacts
from runner.plan.shard import Shard, shard_of, shard_settings, split_for_shard
from runner.ratelimit import RateLimiter
from runner.report import Report, build_report, write_reports
from runner.report.words import plural
from runner.run.execute import (
    Part,
    RunOptions,
    RunSummary,
    execute,
    new_run_id,
    run_metadata,
    set_status,
    start_run,
)
from runner.run.follow import FollowOptions
from runner.run.known import (
    Counting,
    Others,
    count_recorder,
    count_the_rest,
    recorded_counts,
    skipped_guard_reads_line,
    skipped_reads_line,
)
from runner.run.lease import under_lease
from runner.run.options import EngineOptions
from runner.run.preflight import Confirm, check_budget, confirmed, plan_line, planned
from runner.run.progress import ProgressView, RunProgress, ViewOptions
from runner.run.runkey import lease_key, run_key
from runner.run.shared import (
    BUDGET_REFUSED,
    budget_settled,
    check_same_manifest,
    decide_budget,
    part_ended,
    part_name,
    part_of,
    part_started,
)
from runner.run.signals import Interrupt, Say, interruptible
from runner.run.target import Target, new_target, pinned_target
from runner.run.wiring import (
    SANDBOX_TIME_SCALE,
    make_client,
    make_limiter,
    new_sandbox,
    resumed_sandbox,
    sandbox_saved,
    sandbox_state_file,
)
from runner.store import (
    RunRecord,
    RunStatus,
    Store,
    ledger_file,
    open_store,
    run_lease_key,
    state_location,
)


@dataclass(frozen=True)
class ApplyRequest:
    """Everything ``mlrun apply`` was asked to do."""

    paths: tuple[str, ...] = ()
    resume: str | None = None  # a run id (prefix) or "last"
    sandbox: bool = False
    sandbox_time_scale: float = SANDBOX_TIME_SCALE
    base_url: str | None = None
    selection: Selection = field(default_factory=Selection)
    concurrency: int | None = None
    dry_run: bool = False
    offline: bool = False
    allow_unknown_cost: bool = False  # --offline with a budget: go on without the query counts
    wait: bool | None = None
    timeout: float | None = None
    fail_fast: bool = False
    max_failures: int | None = None
    retry_ambiguous: bool = False
    allow_stacking: bool = False
    settle_grace: float | None = None
    state: str | None = None  # a PostgreSQL URL or a SQLite ledger's path; None: the default
    lock_timeout: float = 0.0
    report_dir: Path | None = None
    formats: tuple[str, ...] = ()  # empty: the manifest's settings.reports.formats
    max_plan_age: float | None = None  # a saved plan's; None: MLRUN_MAX_PLAN_AGE or 24 h
    changed_since: str | None = None  # a git ref: only what changed since (runner.plan.changes)
    shard: Shard | None = None  # this CI job's part of the plan and of the rate budget
    run_key: str | None = None  # --run-key; None: $MLRUN_RUN_KEY or the CI job's; "": none
    new_run: bool = False  # --new-run: a new run under a key whose run ended (or not)


@dataclass(frozen=True)
class ApplyResult:
    """What happened: the run (None for a dry run), its report, what the remote plan found."""

    plan: Plan
    settings: Settings
    run: RunSummary | None  # None: a dry run, or interrupted (the report says which)
    problems: tuple[ProjectProblem, ...]
    state: str  # where the run is recorded, as messages name it (no password)
    report: Report | None = None
    report_files: tuple[Path, ...] = ()
    interrupted: str | None = None  # the signal that stopped it (SIGINT, SIGTERM), if one did


@dataclass(frozen=True)
class Output:
    """Where a run reports as it goes: messages, the progress view (None: no view), and the
    question asked before the first trigger (None: ask nothing, as in CI or with ``--yes``)."""

    say: Say
    view: ViewOptions | None = None
    stream: TextIO | None = None
    confirm: Confirm | None = None

    @property
    def verbose(self) -> bool:
        """``--verbose``: say what the run skipped and why."""
        return self.view is not None and self.view.verbose


def load_plan(request: ApplyRequest) -> tuple[Plan, Settings]:
    """The manifest's plan, before any remote facts."""
    return local_plan(
        request.paths, request.selection, changed_since=request.changed_since, shard=request.shard
    )


def run_options(request: ApplyRequest, settings: Settings) -> RunOptions:
    engine = EngineOptions(
        fail_fast=request.fail_fast,
        max_failures=request.max_failures,
        retry_ambiguous=request.retry_ambiguous,
        allow_stacking=request.allow_stacking,
        settle_grace=request.settle_grace
        if request.settle_grace is not None
        else max(60.0, 2 * settings.timeouts.request),
    )
    follow = FollowOptions(timeout=request.timeout or settings.timeouts.follow)
    wait = settings.follow if request.wait is None else request.wait
    return RunOptions(engine=engine, follow=follow, wait=wait)


def apply(
    request: ApplyRequest,
    *,
    say: Say,
    env: Mapping[str, str] | None = None,
    view: ViewOptions | None = None,
    stream: TextIO | None = None,
    confirm: Confirm | None = None,
) -> ApplyResult:
    """Run ``mlrun apply``; raises the typed errors the CLI renders.

    ``confirm`` is asked, with the plan's cost, before anything is sent; None goes on.
    """
    env = os.environ if env is None else env
    out = Output(say, view, stream, confirm)
    if request.resume is not None:
        return _resume(request, out=out, env=env)
    target = new_target(sandbox=request.sandbox, base_url=request.base_url, env=env)
    request, whole, whole_settings, problems = _new_plan(request, target, env)
    plan, settings = split_for_shard(whole, whole_settings, request.shard)
    if (nothing := nothing_to_apply(plan)) is not None:  # --changed-since: no run, no ledger
        say(nothing)
        return ApplyResult(plan, settings, None, problems, state_location(request.state))
    if request.dry_run:
        result = interruptible(lambda i: _dry_run(request, plan, settings, target, out, i), say)
        return replace(result, problems=problems + result.problems)
    key = run_key(request.run_key, env)
    with open_store(request.state) as ledger:  # the state and its lock before any request
        if key is not None:
            result = _apply_keyed(
                Keyed(key, request, whole, plan, settings, target), ledger, out, env
            )
        else:
            run_id = new_run_id(SystemClock())
            ledger.lock(run_lease_key(run_id), wait=request.lock_timeout)
            new = New(request, plan, settings, target, run_id)
            result = interruptible(
                lambda i: under_lease(ledger, lambda: _apply_new(new, ledger, out, env, i)), say
            )
    return replace(result, problems=problems + result.problems)


def _new_plan(
    request: ApplyRequest, target: Target, env: Mapping[str, str]
) -> tuple[ApplyRequest, Plan, Settings, tuple[ProjectProblem, ...]]:
    """The whole plan of a new run (every shard's), from the manifest or a saved plan: nothing
    is asked of the API.

    A saved plan runs exactly as planned (checked fresh, unchanged and for this API), so it is
    not planned again: the request becomes ``offline``, and the problems its planning found are
    said again.
    """
    saved = read_saved_plan(request.paths)
    if saved is None:
        plan, settings = local_plan(
            request.paths, request.selection, changed_since=request.changed_since
        )
        return request, plan, settings, ()
    if request.changed_since is not None:
        raise UsageError("a saved plan runs exactly as planned; --changed-since goes to `plan`")
    plan, settings = verify_saved_plan(
        saved,
        selection=request.selection,
        base_url=target.base_url,
        env=env,
        max_age=request.max_plan_age,
    )
    return replace(request, offline=True), plan, settings, tuple(saved.problems)


async def _dry_run(
    request: ApplyRequest,
    plan: Plan,
    settings: Settings,
    target: Target,
    out: Output,
    interrupt: Interrupt,
) -> ApplyResult:
    clock = SystemClock()
    async with make_client(target, settings, concurrency=request.concurrency) as client:
        limiter = make_limiter(settings, clock, request.concurrency)
        plan, facts = await planned(
            plan,
            offline=request.offline,
            client=client,
            limiter=limiter,
            clock=clock,
            say=out.say,
            interrupt=interrupt,
        )
    check_budget(plan, allow_unknown_cost=request.allow_unknown_cost)
    return ApplyResult(plan, settings, None, facts.problems, state_location(request.state))


@dataclass(frozen=True)
class New:
    """A new run about to be planned and recorded: what it applies, where, and its name."""

    request: ApplyRequest
    plan: Plan  # this process's part of it (the whole plan without --shard)
    settings: Settings
    target: Target
    run_id: str
    run_key: str | None = None
    replacing: str | None = None  # --new-run: the run the key named before


async def _apply_new(
    new: New, ledger: Store, out: Output, env: Mapping[str, str], interrupt: Interrupt
) -> ApplyResult:
    """Plan remotely, check the budget, ask, record the run, run it, report."""
    request, settings, target = new.request, new.settings, new.target
    clock = SystemClock()
    sandbox = new_sandbox(request.sandbox_time_scale) if target.sandbox else None
    client = make_client(target, settings, concurrency=request.concurrency, sandbox=sandbox)
    async with client:
        limiter = make_limiter(settings, clock, request.concurrency)
        plan, facts = await _counted(
            new.plan,
            Counting(ledger, target.base_url, clock.wall() - settings.max_count_age),
            request=request,
            settings=settings,
            client=client,
            limiter=limiter,
            out=out,
            interrupt=interrupt,
        )
        check_budget(plan, allow_unknown_cost=request.allow_unknown_cost)
        out.say(f"plan: {plan_line(plan, offline=request.offline)}")
        await confirmed(out.confirm, interrupt)
        options = run_options(request, settings)
        meta = _meta(request, settings, limiter, env, options, sandbox=sandbox is not None)
        run_id = start_run(
            ledger,
            plan,
            clock=clock,
            target=target,
            meta=meta,
            run_id=new.run_id,
            run_key=new.run_key,
            replacing=new.replacing,
        )
        if run_id != new.run_id:  # another process named a run so first: that one goes on
            raise UsageError(
                f"run key {new.run_key!r}: run {run_id} was started meanwhile by another "
                "process; run the command again to continue it (nothing was sent)"
            )
        actions = plural(len(plan.actions), "action")
        named = f" ({new.run_key})" if new.run_key else ""
        out.say(f"run {run_id}{named}: {actions}, ledger {ledger.location}")
        with (
            _reported_on_failure(ledger, run_id, request, settings, env),
            sandbox_saved(sandbox, sandbox_state_file(ledger, run_id), out.say),
        ):
            summary = await _run_phase(
                run_id=run_id,
                client=client,
                limiter=limiter,
                ledger=ledger,
                clock=clock,
                options=options,
                out=out,
                interrupt=interrupt,
            )
    report, files = write_run_report(ledger, run_id, request, settings, env)
    return ApplyResult(
        plan, settings, summary, facts.problems, ledger.location, report, files, interrupt.signal
    )


def _meta(
    request: ApplyRequest,
    settings: Settings,
    limiter: RateLimiter,
    env: Mapping[str, str],
    options: RunOptions,
    *,
    sandbox: bool,
) -> dict[str, object]:
    meta = run_metadata(
        env,
        wait=options.wait,
        rate_limits=[(w.limit, w.seconds) for w in limiter.windows],
        settings=settings,
    )
    meta["reportDir"] = str(report_directory_base(request, settings))
    if sandbox:
        meta["sandboxTimeScale"] = request.sandbox_time_scale
    return meta


def _run_new(new: New, ledger: Store, out: Output, env: Mapping[str, str]) -> ApplyResult:
    return interruptible(
        lambda i: under_lease(ledger, lambda: _apply_new(new, ledger, out, env, i)), out.say
    )


@dataclass(frozen=True)
class Keyed:
    """A run named by a key: found again by it, on any machine, by every shard."""

    key: str
    request: ApplyRequest
    whole: Plan  # every shard's actions
    plan: Plan  # this process's part (the whole plan without --shard)
    settings: Settings  # this part's (with --shard, the rate windows divided)
    target: Target


def _apply_keyed(keyed: Keyed, ledger: Store, out: Output, env: Mapping[str, str]) -> ApplyResult:
    """Start the run named ``keyed.key``, join it (another shard), or continue it (a re-run)."""
    request = keyed.request
    clock = SystemClock()
    ledger.lock(lease_key(keyed.key, part_name(request.shard)), wait=request.lock_timeout)
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
        return _run_new(new, ledger, out, env)
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
    request = _resumed_request(request, record)
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
                summary = await _run_phase(
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

    with _reported_on_failure(ledger, run_id, request, keyed.settings, env):
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
    counting = Counting(ledger, record.base_url, since)

    async def count(plan: Plan) -> tuple[Plan, RemoteFacts]:
        return await _counted(
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


async def _counted(  # noqa: PLR0913 - the planning's collaborators, by name
    plan: Plan,
    counting: Counting,
    *,
    request: ApplyRequest,
    settings: Settings,
    client: MentionLabClient,
    limiter: RateLimiter,
    out: Output,
    interrupt: Interrupt,
) -> tuple[Plan, RemoteFacts]:
    """``plan`` with its query counts: from the state where it has them, else read and recorded."""
    clock = SystemClock()
    known: dict[str, int] = {}
    if not request.offline:
        known = recorded_counts(counting.ledger, plan, counting.base_url, since=counting.since)
    counted, facts = await planned(
        plan,
        offline=request.offline,
        client=client,
        limiter=limiter,
        clock=clock,
        say=out.say,
        interrupt=interrupt,
        known=known,
        on_count=count_recorder(counting, clock.wall),
    )
    if out.verbose and (line := skipped_reads_line(facts, settings.max_count_age)) is not None:
        out.say(line)
    return counted, facts


def report_directory_base(request: ApplyRequest, settings: Settings) -> Path:
    """Where a run's reports go: ``--report-dir``, else the manifest's ``settings.reports.dir``."""
    return request.report_dir or Path(settings.reports.directory)


def write_run_report(
    ledger: Store,
    run_id: str,
    request: ApplyRequest,
    settings: Settings,
    env: Mapping[str, str],
    part: Part | None = None,
) -> tuple[Report, tuple[Path, ...]]:
    """Build the run's report (of ``part``, if given) and write it where the flags say."""
    keys = None if part is None else part.keys
    report = build_report(ledger, run_id, env=env, keys=keys)
    formats = request.formats or settings.reports.formats
    files = write_reports(report, report_directory_base(request, settings) / run_id, formats)
    return report, tuple(files)


def plan_only(
    request: ApplyRequest, *, env: Mapping[str, str] | None = None, say: Say | None = None
) -> ApplyResult:
    """``mlrun plan``: the plan, completed remotely unless --offline. Sends no trigger.

    ``say`` gets the progress lines of a long remote plan."""
    env = os.environ if env is None else env
    plan, settings = load_plan(request)
    state = state_location(request.state)
    if request.offline:
        return ApplyResult(plan, settings, None, (), state)
    target = new_target(sandbox=request.sandbox, base_url=request.base_url, env=env)

    async def remote(interrupt: Interrupt) -> ApplyResult:
        clock = SystemClock()
        async with make_client(target, settings, concurrency=request.concurrency) as client:
            limiter = make_limiter(settings, clock, request.concurrency)
            done, facts = await planned(
                plan,
                offline=request.offline,
                client=client,
                limiter=limiter,
                clock=clock,
                say=say or (lambda _line: None),
                interrupt=interrupt,
            )
        return ApplyResult(done, settings, None, facts.problems, state)

    return interruptible(remote, say or (lambda _line: None))


def _resume(request: ApplyRequest, *, out: Output, env: Mapping[str, str]) -> ApplyResult:
    ledger_path = ledger_file(request.state)
    if ledger_path is not None and not ledger_path.exists():
        raise ConfigError(f"nothing to resume: no ledger at {ledger_path}")
    with open_store(request.state) as ledger:
        run_id = ledger.resolve_run_id(request.resume or "last")
        ledger.lock(run_lease_key(run_id), wait=request.lock_timeout)
        record = ledger.run(run_id)
        target = pinned_target(record, sandbox=request.sandbox, base_url=request.base_url, env=env)
        settings = _resumed_settings(request, record)
        request = _resumed_request(request, record)
        out.say(f"resuming run {run_id} against {target.describe()}")
        state_file = sandbox_state_file(ledger, run_id)

        async def body(interrupt: Interrupt) -> ApplyResult:
            clock = SystemClock()
            sandbox = resumed_sandbox(record, state_file, out.say) if target.sandbox else None
            client = make_client(target, settings, concurrency=request.concurrency, sandbox=sandbox)
            with sandbox_saved(sandbox, state_file, out.say):
                async with client:
                    limiter = make_limiter(settings, clock, request.concurrency)
                    summary = await _run_phase(
                        run_id=run_id,
                        client=client,
                        limiter=limiter,
                        ledger=ledger,
                        clock=clock,
                        options=run_options(request, settings),
                        out=out,
                        interrupt=interrupt,
                    )
            # On the event loop: a signal now is noted, and the report is still written whole.
            report, files = write_run_report(ledger, run_id, request, settings, env)
            return ApplyResult(
                record.plan, settings, summary, (), ledger.location, report, files, interrupt.signal
            )

        with _reported_on_failure(ledger, run_id, request, settings, env):
            return interruptible(lambda i: under_lease(ledger, lambda: body(i)), out.say)


def _resumed_settings(request: ApplyRequest, record: RunRecord) -> Settings:
    if request.paths:
        return load_plan(request)[1]
    if "settings" in record.meta:  # what the run was started with (already sharded)
        return settings_from_json(record.meta["settings"])
    return shard_settings(Settings(), request.shard) if request.shard else Settings()


def _resumed_request(request: ApplyRequest, record: RunRecord) -> ApplyRequest:
    """The request with what the run recorded where the command line is silent."""
    report_dir = record.meta.get("reportDir")
    if request.report_dir is None and isinstance(report_dir, str):
        request = replace(request, report_dir=Path(report_dir))
    return request


async def _run_phase(  # noqa: PLR0913 - one run's collaborators
    *,
    run_id: str,
    client: MentionLabClient,
    limiter: RateLimiter,
    ledger: Store,
    clock: Clock,
    options: RunOptions,
    out: Output,
    interrupt: Interrupt,
    part: Part | None = None,
) -> RunSummary | None:
    """The run, with its progress view; None if a signal stopped it (the ledger says so).

    A ledger that cannot be written stops the run: what it recorded stays right (every intent
    on disk before its trigger), and the error says how to continue.
    """
    progress = RunProgress()
    result: RunSummary | None = None
    try:
        with interrupt.phase():
            async with anyio.create_task_group() as group:
                group.start_soon(_show_progress, progress, limiter, out)
                result = await execute(
                    run_id=run_id,
                    client=client,
                    limiter=limiter,
                    ledger=ledger,
                    clock=clock,
                    options=options,
                    progress=progress,
                    part=part,
                )
                group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        raise collapse(group_error) from group_error
    if out.verbose and (line := skipped_guard_reads_line(progress.guard_reads_skipped)):
        out.say(line)
    if interrupt.signal is not None or result is None:
        set_status(ledger, run_id, part, RunStatus.INTERRUPTED, clock.wall())
        return None
    return result


@contextmanager
def _reported_on_failure(
    ledger: Store,
    run_id: str,
    request: ApplyRequest,
    settings: Settings,
    env: Mapping[str, str],
) -> Iterator[None]:
    """A ledger that cannot be written stops the run: the report is written where it can be.

    What the ledger holds stays right (every trigger's intent was on disk before it was sent),
    so the error says how to continue.
    """
    try:
        yield
    except LeaseLost:
        raise  # the run's new writer reports it
    except LedgerError as error:
        try:
            _, files = write_run_report(ledger, run_id, request, settings, env)
            written = f"the report: {files[0]}" if files else "no report format was asked for"
        except MlrunError as report_error:
            written = f"the report could not be written either ({report_error})"
        raise LedgerError(
            f"{error}; nothing more was sent, {written}. Every trigger sent had its intent on "
            f"disk first: `mlrun apply --resume {run_id}` with room on the disk finishes the run"
        ) from error


async def _show_progress(progress: RunProgress, limiter: RateLimiter, out: Output) -> None:
    if out.view is None or out.stream is None:
        return
    view = ProgressView(progress, out.stream, out.view, pause=limiter.current_pause)
    await view.run()
