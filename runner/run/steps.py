"""The steps every ``mlrun apply`` takes, whichever way it came: the request and result, the
query counts (from the state where it has them), a new run started, the run phase with its
progress view, and the report written where the run's reports go.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import anyio

from runner.api import MentionLabClient
from runner.clock import Clock, SystemClock
from runner.errors import LeaseLost, LedgerError, MlrunError, UsageError, collapse
from runner.manifest.model import Settings
from runner.plan import Plan, Selection
from runner.plan.remote import ProjectProblem, RemoteFacts
from runner.plan.shard import Shard
from runner.ratelimit import RateLimiter
from runner.report import Report, build_report, write_reports
from runner.report.words import plural
from runner.run.execute import (
    Part,
    RunOptions,
    RunSummary,
    execute,
    run_metadata,
    set_status,
    start_run,
)
from runner.run.follow import FollowOptions
from runner.run.known import (
    Counting,
    CountRecorder,
    recorded_counts,
    skipped_guard_reads_line,
    skipped_reads_line,
)
from runner.run.lease import under_lease
from runner.run.options import EngineOptions
from runner.run.preflight import Confirm, check_budget, confirmed, plan_line, planned
from runner.run.progress import ProgressView, RunProgress, ViewOptions
from runner.run.signals import Interrupt, Say, interruptible
from runner.run.target import Target
from runner.run.wiring import (
    SANDBOX_TIME_SCALE,
    make_client,
    make_limiter,
    new_sandbox,
    sandbox_saved,
    sandbox_state_file,
)
from runner.store import RunRecord, RunStatus, Store


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


async def apply_new(
    new: New, ledger: Store, out: Output, env: Mapping[str, str], interrupt: Interrupt
) -> ApplyResult:
    """Plan remotely, check the budget, ask, record the run, run it, report."""
    request, settings, target = new.request, new.settings, new.target
    clock = SystemClock()
    sandbox = new_sandbox(request.sandbox_time_scale) if target.sandbox else None
    client = make_client(target, settings, concurrency=request.concurrency, sandbox=sandbox)
    async with client:
        limiter = make_limiter(settings, clock, request.concurrency)
        plan, facts = await counted_plan(
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
            reported_on_failure(ledger, run_id, request, settings, env),
            sandbox_saved(sandbox, sandbox_state_file(ledger, run_id), out.say),
        ):
            summary = await run_phase(
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


def run_new(new: New, ledger: Store, out: Output, env: Mapping[str, str]) -> ApplyResult:
    return interruptible(
        lambda i: under_lease(ledger, lambda: apply_new(new, ledger, out, env, i)), out.say
    )


async def counted_plan(  # noqa: PLR0913 - the planning's collaborators, by name
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
    recorder = CountRecorder(counting, clock.wall)
    counted, facts = await planned(
        plan,
        offline=request.offline,
        client=client,
        limiter=limiter,
        clock=clock,
        say=out.say,
        interrupt=interrupt,
        known=known,
        on_count=recorder.add,
    )
    recorder.flush()
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
    if part is None:
        report = build_report(ledger, run_id, env=env)
    else:
        report = build_report(ledger, run_id, env=env, keys=part.keys, part=part.name)
    formats = request.formats or settings.reports.formats
    files = write_reports(report, report_directory_base(request, settings) / run_id, formats)
    return report, tuple(files)


def resumed_request(request: ApplyRequest, record: RunRecord) -> ApplyRequest:
    """The request with what the run recorded where the command line is silent."""
    report_dir = record.meta.get("reportDir")
    if request.report_dir is None and isinstance(report_dir, str):
        request = replace(request, report_dir=Path(report_dir))
    return request


async def run_phase(  # noqa: PLR0913 - one run's collaborators
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
def reported_on_failure(
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
            f"{error}; nothing more was sent, {written}. Every trigger sent had its intent "
            "recorded first: once the state can be written again (room on the disk, the "
            f"database back), `mlrun apply --resume {run_id}` finishes the run"
        ) from error


async def _show_progress(progress: RunProgress, limiter: RateLimiter, out: Output) -> None:
    if out.view is None or out.stream is None:
        return
    view = ProgressView(progress, out.stream, out.view, pause=limiter.current_pause)
    await view.run()
