"""The apply use case: manifest (or saved plan, or resumed run) in, a finished run out.

Wires the pieces for one invocation: the client (real API, or the in-process sandbox), the one
rate limiter, the ledger and its lock, the remote planning, the budget guard, the run itself with
signal handling, and progress lines. The CLI parses options into :class:`ApplyRequest` and renders
what comes back; nothing here prints except through the ``say`` callback.
"""

from __future__ import annotations

import os
import random as random_module
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import anyio
import httpx

from runner.api import ClientOptions, MentionLabClient, api_key_from_env
from runner.clock import Clock, SystemClock
from runner.endpoints import BASE_URL_ENV, DEFAULT_BASE_URL, SANDBOX_URL
from runner.engine import EngineOptions, Gateway, RunProgress
from runner.errors import AuthError, BudgetExceeded, ConfigError, UsageError
from runner.follow import FollowOptions
from runner.ledger import Ledger, RunStatus, default_ledger_path
from runner.limiter import RateLimiter, Window
from runner.manifest.model import Settings, settings_from_json
from runner.plan import Plan, Selection
from runner.planfile import read_saved_plan, verify_saved_plan
from runner.planning import local_plan
from runner.progress import ProgressView, ViewOptions, outage_text
from runner.remote import ProjectProblem, RemoteFacts, resolve_query_counts
from runner.report import Report, build_report, write_reports
from runner.run import RunOptions, RunSummary, execute, run_metadata, start_run
from runner.shard import Shard, shard_settings, split_for_shard

SANDBOX_KEY = "ml_live_sandbox"
PLANNING_PROGRESS_EVERY = 5.0  # seconds between the planning's progress lines
SANDBOX_TIME_SCALE = 60.0  # a ten-minute job takes ten seconds in the quickstart


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
    wait: bool | None = None
    timeout: float | None = None
    fail_fast: bool = False
    max_failures: int | None = None
    retry_ambiguous: bool = False
    allow_stacking: bool = False
    settle_grace: float | None = None
    ledger_path: Path | None = None
    lock_timeout: float = 0.0
    report_dir: Path | None = None
    formats: tuple[str, ...] = ()  # empty: the manifest's settings.reports.formats
    max_plan_age: float | None = None  # a saved plan's; None: MLRUN_MAX_PLAN_AGE or 24 h
    changed_since: str | None = None  # a git ref: only the projects changed since (runner.changes)
    shard: Shard | None = None  # this CI job's part of the plan and of the rate budget


@dataclass(frozen=True)
class ApplyResult:
    """What happened: the run (None for a dry run), its report, what the remote plan found."""

    plan: Plan
    settings: Settings
    run: RunSummary | None  # None: a dry run, or interrupted (the report says which)
    problems: tuple[ProjectProblem, ...]
    ledger_path: Path
    report: Report | None = None
    report_files: tuple[Path, ...] = ()


Say = Callable[[str], None]


def load_plan(request: ApplyRequest) -> tuple[Plan, Settings]:
    """The manifest's plan, before any remote facts."""
    return local_plan(
        request.paths, request.selection, changed_since=request.changed_since, shard=request.shard
    )


def make_limiter(settings: Settings, clock: Clock, concurrency: int | None) -> RateLimiter:
    """The run's limiter: the manifest's windows, ``concurrency`` requests at once, a slow start."""
    windows = [Window(limit, seconds) for limit, seconds in settings.rate_limits.windows()]
    on_the_wire = concurrency or settings.concurrency
    return RateLimiter(windows, clock=clock, concurrency=on_the_wire, probe_first=True)


def make_client(
    request: ApplyRequest, settings: Settings, env: Mapping[str, str]
) -> MentionLabClient:
    options = ClientOptions(
        request_timeout=settings.timeouts.request,
        connect_timeout=settings.timeouts.connect,
        max_connections=max(request.concurrency or settings.concurrency, 1),
    )
    if request.sandbox:
        from runner.sandbox import Sandbox, SandboxConfig  # noqa: PLC0415 - only with --sandbox

        sandbox = Sandbox(SandboxConfig(time_scale=request.sandbox_time_scale))
        transport: httpx.AsyncBaseTransport | None = sandbox.transport()
        key = env.get("MENTIONLAB_API_KEY") or SANDBOX_KEY
        base_url = SANDBOX_URL
    else:
        transport = None
        key = api_key_from_env(env)
        base_url = request.base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return MentionLabClient(api_key=key, base_url=base_url, transport=transport, options=options)


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
class Output:
    """Where a run reports as it goes: messages, and the progress view (None: no view)."""

    say: Say
    view: ViewOptions | None = None
    stream: TextIO | None = None


def apply(
    request: ApplyRequest,
    *,
    say: Say,
    env: Mapping[str, str] | None = None,
    view: ViewOptions | None = None,
    stream: TextIO | None = None,
) -> ApplyResult:
    """Run ``mlrun apply``; raises the typed errors the CLI renders."""
    env = os.environ if env is None else env
    if request.resume is not None:
        return _resume(request, out=Output(say, view, stream), env=env)
    saved = read_saved_plan(request.paths)
    if saved is not None:  # run exactly the saved plan: checked fresh and unchanged, not re-planned
        target = SANDBOX_URL if request.sandbox else request.base_url or env.get(BASE_URL_ENV)
        plan, settings = verify_saved_plan(
            saved,
            selection=request.selection,
            base_url=target or DEFAULT_BASE_URL,
            env=env,
            max_age=request.max_plan_age,
        )
        if request.changed_since is not None:
            raise UsageError("a saved plan runs exactly as planned; --changed-since goes to `plan`")
        plan, settings = split_for_shard(plan, settings, request.shard)
        out = Output(say, view, stream)
        result = anyio.run(_apply_new, replace(request, offline=True), plan, settings, out, env)
        return replace(result, problems=saved.problems)  # what planning found, said again
    plan, settings = load_plan(request)
    return anyio.run(_apply_new, request, plan, settings, Output(say, view, stream), env)


async def _apply_new(
    request: ApplyRequest, plan: Plan, settings: Settings, out: Output, env: Mapping[str, str]
) -> ApplyResult:
    clock = SystemClock()
    ledger_path = request.ledger_path or default_ledger_path()
    async with make_client(request, settings, env) as client:
        limiter = make_limiter(settings, clock, request.concurrency)
        plan, facts = await _prepare(request, plan, client, limiter, clock, out.say)
        verdict = plan.budget()
        if verdict.refused:
            raise BudgetExceeded(verdict.message())
        if request.dry_run:
            return ApplyResult(plan, settings, None, facts.problems, ledger_path)
        with Ledger.open(ledger_path, background_sync=True) as ledger:
            ledger.lock(wait=request.lock_timeout)
            options = run_options(request, settings)
            meta = run_metadata(
                env,
                wait=options.wait,
                rate_limits=[(w.limit, w.seconds) for w in limiter.windows],
                settings=settings,
            )
            run_id = start_run(ledger, plan, clock=clock, base_url=client.base_url, meta=meta)
            out.say(f"run {run_id}: {len(plan.actions)} actions, ledger {ledger_path}")
            summary = await _execute_with_signals(
                run_id, client, limiter, ledger, clock, options, out
            )
            report, files = write_run_report(ledger, run_id, request, settings, env)
    return ApplyResult(plan, settings, summary, facts.problems, ledger_path, report, files)


def write_run_report(
    ledger: Ledger,
    run_id: str,
    request: ApplyRequest,
    settings: Settings,
    env: Mapping[str, str],
) -> tuple[Report, tuple[Path, ...]]:
    """Build the run's report from the ledger and write it where the manifest or flags say."""
    report = build_report(ledger, run_id, env=env)
    directory = request.report_dir or Path(settings.reports.directory)
    formats = request.formats or settings.reports.formats
    files = write_reports(report, directory / run_id, formats)
    return report, tuple(files)


async def _prepare(
    request: ApplyRequest,
    plan: Plan,
    client: MentionLabClient,
    limiter: RateLimiter,
    clock: Clock,
    say: Say | None = None,
) -> tuple[Plan, RemoteFacts]:
    """The plan completed with what only the API knows (unless --offline)."""
    if request.offline:
        return plan, RemoteFacts({}, (), 0)
    facts = await _remote_facts(plan, client, limiter, clock, say)
    plan = plan.with_query_counts(facts.query_counts)
    return _without_unreachable(plan, facts.problems), facts


def plan_only(
    request: ApplyRequest, *, env: Mapping[str, str] | None = None, say: Say | None = None
) -> ApplyResult:
    """``mlrun plan``: the plan, completed remotely unless --offline. Sends no trigger.

    ``say`` gets the progress lines of a long remote plan."""
    env = os.environ if env is None else env
    plan, settings = load_plan(request)
    ledger_path = request.ledger_path or default_ledger_path()
    if request.offline:
        return ApplyResult(plan, settings, None, (), ledger_path)

    async def remote() -> ApplyResult:
        clock = SystemClock()
        async with make_client(request, settings, env) as client:
            limiter = make_limiter(settings, clock, request.concurrency)
            planned, facts = await _prepare(request, plan, client, limiter, clock, say)
        return ApplyResult(planned, settings, None, facts.problems, ledger_path)

    return anyio.run(remote)


def _resume(request: ApplyRequest, *, out: Output, env: Mapping[str, str]) -> ApplyResult:
    if request.sandbox:
        raise UsageError(
            "--resume cannot use --sandbox: the in-process sandbox forgets its jobs when mlrun "
            "exits. To try resuming, run `mlrun sandbox serve` and point --base-url at it."
        )
    ledger_path = request.ledger_path or default_ledger_path()
    if not ledger_path.exists():
        raise ConfigError(f"nothing to resume: no ledger at {ledger_path}")
    with Ledger.open(ledger_path, background_sync=True) as ledger:
        ledger.lock(wait=request.lock_timeout)
        run_id = ledger.resolve_run_id(request.resume or "last")
        record = ledger.run(run_id)
        if request.paths:
            _, settings = load_plan(request)
        elif "settings" in record.meta:  # what the run was started with (already sharded)
            settings = settings_from_json(record.meta["settings"])
        else:
            settings = shard_settings(Settings(), request.shard) if request.shard else Settings()
        out.say(f"resuming run {run_id}")
        summary = anyio.run(_resume_async, request, settings, ledger, run_id, out, env)
        report, files = write_run_report(ledger, run_id, request, settings, env)
        return ApplyResult(record.plan, settings, summary, (), ledger_path, report, files)


async def _resume_async(
    request: ApplyRequest,
    settings: Settings,
    ledger: Ledger,
    run_id: str,
    out: Output,
    env: Mapping[str, str],
) -> RunSummary | None:
    clock = SystemClock()
    async with make_client(request, settings, env) as client:
        limiter = make_limiter(settings, clock, request.concurrency)
        return await _execute_with_signals(
            run_id, client, limiter, ledger, clock, run_options(request, settings), out
        )


async def _remote_facts(
    plan: Plan, client: MentionLabClient, limiter: RateLimiter, clock: Clock, say: Say | None
) -> RemoteFacts:
    progress = RunProgress()
    gateway = Gateway(
        limiter=limiter,
        clock=clock,
        rng=random_module.Random(),
        options=EngineOptions(),
        progress=progress,
        on_event=None if say is None else _planning_outage(say, progress, clock),
    )
    on_read = None if say is None else _planning_progress(say, clock)
    facts = await resolve_query_counts(plan, client=client, request=gateway.read, on_read=on_read)
    refused = [p for p in facts.problems if p.kind == "unauthorized"]
    if refused:
        raise AuthError(refused[0].message, status=401)
    return facts


def _planning_progress(say: Say, clock: Clock) -> Callable[[int, int], None]:
    """A line every ``PLANNING_PROGRESS_EVERY`` seconds while the projects are read; a plan that
    reads in less time says nothing."""
    started = last = clock.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = clock.monotonic()
        if now - last < PLANNING_PROGRESS_EVERY and (done < total or last == started):
            return
        last = now
        took = f" in {now - started:,.0f} s" if done == total else ""
        say(f"planning: {done:,} of {total:,} projects read{took}")

    return report


def _planning_outage(say: Say, progress: RunProgress, clock: Clock) -> Callable[..., None]:
    """A line each time the reads wait for an outage: the breaker opened, or opened again."""

    def on_event(kind: str, **_: object) -> None:
        if kind == "outage_pause" and progress.outage is not None:
            say(f"planning: {outage_text(progress.outage, clock.wall())}")

    return on_event


def _without_unreachable(plan: Plan, problems: Sequence[ProjectProblem]) -> Plan:
    bad = {p.project for p in problems}
    if not bad:
        return plan
    from runner.plan import Skip  # noqa: PLC0415

    kept = tuple(a for a in plan.actions if a.project not in bad)
    skipped = plan.skipped + tuple(Skip(p.project, p.message, error=True) for p in problems)
    return replace(plan, actions=kept, skipped=skipped)


async def _execute_with_signals(
    run_id: str,
    client: MentionLabClient,
    limiter: RateLimiter,
    ledger: Ledger,
    clock: Clock,
    options: RunOptions,
    out: Output,
) -> RunSummary | None:
    """The run, stopped cleanly by SIGINT/SIGTERM (then None: the ledger says interrupted)."""
    progress = RunProgress()
    interrupted = False
    result: RunSummary | None = None
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    interrupted = True
                    out.say(f"{signal.Signals(signum).name}: stopping; nothing new is sent")
                    group.cancel_scope.cancel()
                    return

        async def show_progress() -> None:
            if out.view is None or out.stream is None:
                return
            view = ProgressView(progress, out.stream, out.view, pause=limiter.current_pause)
            await view.run()

        async def run() -> None:
            nonlocal result
            result = await execute(
                run_id=run_id,
                client=client,
                limiter=limiter,
                ledger=ledger,
                clock=clock,
                options=options,
                progress=progress,
            )
            group.cancel_scope.cancel()

        group.start_soon(watch_signals)
        group.start_soon(show_progress)
        group.start_soon(run)
    if interrupted or result is None:
        ledger.set_run_status(run_id, RunStatus.INTERRUPTED, now=clock.wall())
        return None
    return result
