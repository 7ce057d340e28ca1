"""The apply use case: manifest (or saved plan, or resumed run) in, a finished run out.

Wires the pieces for one invocation, in an order that spends nothing before it must: the local
plan (no request), the target (URL and key, checked), the ledger and its lock, then the remote
planning, the budget guard, the run itself and its report. SIGINT and SIGTERM stop whichever
phase is under way cleanly. The CLI parses options into :class:`ApplyRequest` and renders what
comes back; nothing here prints except through the ``say`` callback.
"""

from __future__ import annotations

import os
import random as random_module
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import anyio

from runner.api import ClientOptions, MentionLabClient
from runner.clock import Clock, SystemClock
from runner.errors import (
    AuthError,
    BudgetExceeded,
    ConfigError,
    LedgerError,
    MlrunError,
    RunInterrupted,
    UsageError,
    collapse,
)
from runner.manifest.model import Settings, settings_from_json
from runner.plan import Plan, Selection
from runner.plan.changes import nothing_to_apply
from runner.plan.local import local_plan
from runner.plan.planfile import read_saved_plan, verify_saved_plan
from runner.plan.remote import ProjectProblem, RemoteFacts, resolve_query_counts
from runner.plan.shard import Shard, shard_settings, split_for_shard
from runner.ratelimit import RateLimiter, Window
from runner.report import Report, build_report, write_reports
from runner.report.words import plural
from runner.run.engine import EngineOptions, Gateway, RunProgress
from runner.run.execute import RunOptions, RunSummary, execute, run_metadata, start_run
from runner.run.follow import FollowOptions
from runner.run.progress import ProgressView, ViewOptions, outage_text
from runner.run.target import SANDBOX, Target, new_target, pinned_target
from runner.store import Ledger, RunRecord, RunStatus, default_ledger_path

if TYPE_CHECKING:
    from runner.sandbox import Sandbox

PLANNING_PROGRESS_EVERY = 5.0  # seconds between the planning's progress lines
SANDBOX_TIME_SCALE = 60.0  # a ten-minute job takes ten seconds in the quickstart

T = TypeVar("T")


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
    ledger_path: Path | None = None
    lock_timeout: float = 0.0
    report_dir: Path | None = None
    formats: tuple[str, ...] = ()  # empty: the manifest's settings.reports.formats
    max_plan_age: float | None = None  # a saved plan's; None: MLRUN_MAX_PLAN_AGE or 24 h
    changed_since: str | None = None  # a git ref: only what changed since (runner.plan.changes)
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
    interrupted: str | None = None  # the signal that stopped it (SIGINT, SIGTERM), if one did


Say = Callable[[str], None]


@dataclass(frozen=True)
class Output:
    """Where a run reports as it goes: messages, the progress view (None: no view), and the
    question asked before the first trigger (None: ask nothing, as in CI or with ``--yes``)."""

    say: Say
    view: ViewOptions | None = None
    stream: TextIO | None = None
    confirm: Confirm | None = None


Confirm = Callable[[str], bool]  # blocking: shows the question, True to go on


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
    target: Target,
    settings: Settings,
    *,
    concurrency: int | None = None,
    sandbox: Sandbox | None = None,
) -> MentionLabClient:
    """The client for ``target``: the API over HTTP, or ``sandbox`` (a new one by default)."""
    options = ClientOptions(
        request_timeout=settings.timeouts.request,
        connect_timeout=settings.timeouts.connect,
        max_connections=max(concurrency or settings.concurrency, 1),
    )
    transport = None
    if target.sandbox:
        transport = (sandbox or new_sandbox(SANDBOX_TIME_SCALE)).transport()
    return MentionLabClient(
        api_key=target.api_key, base_url=target.base_url, transport=transport, options=options
    )


def new_sandbox(time_scale: float) -> Sandbox:
    """An in-process sandbox for ``--sandbox``: its jobs run ``time_scale`` times faster."""
    from runner.sandbox import Sandbox, SandboxConfig  # noqa: PLC0415 - only with --sandbox

    return Sandbox(SandboxConfig(time_scale=time_scale))


def sandbox_state_file(ledger: Ledger, run_id: str) -> Path:
    """Where a sandbox run keeps its in-process sandbox's state, beside the ledger."""
    return ledger.path.parent / "sandbox" / f"{run_id}.json"


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


# -- signals -------------------------------------------------------------------------------------


class Interrupt:
    """SIGINT and SIGTERM for one command: the phase under way is cancelled, the signal kept.

    A phase is a :meth:`phase` block; a signal that comes between phases cancels the next one
    as it begins. Code after a phase asks :attr:`signal` whether it was cut short.
    """

    def __init__(self, say: Say) -> None:
        self.signal: str | None = None
        self._say = say
        self._scope: anyio.CancelScope | None = None

    @contextmanager
    def phase(self) -> Iterator[None]:
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.signal is not None:
                scope.cancel()
            try:
                yield
            finally:
                self._scope = None

    async def watch(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.signal is None:
                    self.signal = name
                    self._say(f"{name}: stopping; nothing new is sent")
                else:
                    self._say(f"{name}: already stopping; the run's state is being recorded")
                if self._scope is not None:
                    self._scope.cancel()


def interruptible(body: Callable[[Interrupt], Awaitable[T]], say: Say) -> T:
    """Run ``body`` on a new event loop, with SIGINT and SIGTERM stopping it cleanly.

    A task group's failure is raised as the one error it stands for (a ledger that cannot be
    written, a refused key), not as a group.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    async def main() -> None:
        interrupt = Interrupt(say)
        async with anyio.create_task_group() as group:

            async def run_body() -> None:
                try:
                    result.append(await body(interrupt))
                except BaseExceptionGroup as group_error:
                    failure.append(collapse(group_error))
                except Exception as error:  # noqa: BLE001 - re-raised outside the task group
                    failure.append(error)
                finally:
                    group.cancel_scope.cancel()

            group.start_soon(interrupt.watch)
            group.start_soon(run_body)

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        anyio.run(main)
    finally:
        for signum, handler in handlers.items():  # asyncio leaves the defaults behind
            signal.signal(signum, handler)
    if failure:
        raise failure[0]
    return result[0]


# -- apply ---------------------------------------------------------------------------------------


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
    request, plan, settings, problems = _new_plan(request, target, env)
    if (nothing := nothing_to_apply(plan)) is not None:  # --changed-since: no run, no ledger
        say(nothing)
        return ApplyResult(
            plan, settings, None, problems, request.ledger_path or default_ledger_path()
        )
    if request.dry_run:
        result = interruptible(lambda i: _dry_run(request, plan, settings, target, out, i), say)
    else:
        ledger_path = request.ledger_path or default_ledger_path()
        with Ledger.open(ledger_path) as ledger:  # the state and its lock before any request
            ledger.lock(wait=request.lock_timeout)
            result = interruptible(
                lambda i: _apply_new(
                    request=request,
                    plan=plan,
                    settings=settings,
                    target=target,
                    ledger=ledger,
                    out=out,
                    env=env,
                    interrupt=i,
                ),
                say,
            )
    return replace(result, problems=problems + result.problems)


def _new_plan(
    request: ApplyRequest, target: Target, env: Mapping[str, str]
) -> tuple[ApplyRequest, Plan, Settings, tuple[ProjectProblem, ...]]:
    """The plan of a new run, from the manifest or a saved plan: nothing is asked of the API.

    A saved plan runs exactly as planned (checked fresh, unchanged and for this API), so it is
    not planned again: the request becomes ``offline``, and the problems its planning found are
    said again.
    """
    saved = read_saved_plan(request.paths)
    if saved is None:
        plan, settings = load_plan(request)
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
    plan, settings = split_for_shard(plan, settings, request.shard)
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
    ledger_path = request.ledger_path or default_ledger_path()
    async with make_client(target, settings, concurrency=request.concurrency) as client:
        limiter = make_limiter(settings, clock, request.concurrency)
        plan, facts = await _planned(request, plan, client, limiter, clock, out, interrupt)
    check_budget(plan, request)
    return ApplyResult(plan, settings, None, facts.problems, ledger_path)


async def _apply_new(  # noqa: PLR0913 - one run's collaborators
    *,
    request: ApplyRequest,
    plan: Plan,
    settings: Settings,
    target: Target,
    ledger: Ledger,
    out: Output,
    env: Mapping[str, str],
    interrupt: Interrupt,
) -> ApplyResult:
    clock = SystemClock()
    sandbox = new_sandbox(request.sandbox_time_scale) if target.sandbox else None
    client = make_client(target, settings, concurrency=request.concurrency, sandbox=sandbox)
    async with client:
        limiter = make_limiter(settings, clock, request.concurrency)
        plan, facts = await _planned(request, plan, client, limiter, clock, out, interrupt)
        check_budget(plan, request)
        out.say(f"plan: {plan_line(plan, offline=request.offline)}")
        await _confirmed(out, interrupt)
        options = run_options(request, settings)
        meta = run_metadata(
            env,
            wait=options.wait,
            rate_limits=[(w.limit, w.seconds) for w in limiter.windows],
            settings=settings,
        )
        meta["reportDir"] = str(report_directory_base(request, settings))
        if sandbox is not None:
            meta["sandboxTimeScale"] = request.sandbox_time_scale
        run_id = start_run(ledger, plan, clock=clock, target=target, meta=meta)
        actions = plural(len(plan.actions), "action")
        out.say(f"run {run_id}: {actions}, ledger {ledger.path}")
        with (
            _reported_on_failure(ledger, run_id, request, settings, env),
            _sandbox_kept(sandbox, sandbox_state_file(ledger, run_id), out.say),
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
        plan, settings, summary, facts.problems, ledger.path, report, files, interrupt.signal
    )


def report_directory_base(request: ApplyRequest, settings: Settings) -> Path:
    """Where a run's reports go: ``--report-dir``, else the manifest's ``settings.reports.dir``."""
    return request.report_dir or Path(settings.reports.directory)


async def _planned(
    request: ApplyRequest,
    plan: Plan,
    client: MentionLabClient,
    limiter: RateLimiter,
    clock: Clock,
    out: Output,
    interrupt: Interrupt,
) -> tuple[Plan, RemoteFacts]:
    """:func:`_prepare` as a phase: a signal during it ends the command with nothing sent."""
    planned: tuple[Plan, RemoteFacts] | None = None
    with interrupt.phase():
        planned = await _prepare(request, plan, client, limiter, clock, out.say)
    if interrupt.signal is not None or planned is None:
        raise RunInterrupted(
            f"{interrupt.signal or 'interrupted'} while planning: no trigger was sent"
        )
    return planned


def plan_line(plan: Plan, *, offline: bool) -> str:
    """The plan's cost on one line: actions, projects, expected executions, budget verdict."""
    from runner.report.plan import one_line  # noqa: PLC0415 - rendering on demand

    return one_line(plan, offline=offline)


async def _confirmed(out: Output, interrupt: Interrupt) -> None:
    """Ask ``out.confirm`` whether to go on; RunInterrupted (nothing sent) unless it says yes.

    The question waits on a daemon thread (a blocking read of the terminal), so a signal still
    stops the command at once, and a thread left waiting never keeps the process alive.
    """
    if out.confirm is None:
        return
    confirm = out.confirm
    answers: list[bool] = []
    thread = threading.Thread(
        target=lambda: answers.append(confirm("Apply this plan?")),
        name="mlrun-confirm",
        daemon=True,
    )
    with interrupt.phase():
        thread.start()
        while thread.is_alive():  # noqa: ASYNC110 - a thread has no event to wait on
            await anyio.sleep(0.05)
    if interrupt.signal is not None:
        raise RunInterrupted(f"{interrupt.signal} at the confirmation: no trigger was sent")
    if answers != [True]:
        raise RunInterrupted("apply cancelled at the confirmation: no trigger was sent")


def check_budget(plan: Plan, request: ApplyRequest) -> None:
    """Refuse a plan over ``settings.budget.maxExecutions``, or whose cost is unknown and could be.

    Without the query counts (``--offline``, or a saved plan made offline) the plan is checked
    at its lower bound, one query per project; beyond that the unknown cost needs the counts or
    ``--allow-unknown-cost``.
    """
    from runner.report.plan import budget_breakdown  # noqa: PLC0415 - rendering on demand

    verdict = plan.budget()
    if verdict.refused:
        raise BudgetExceeded(verdict.message() + budget_breakdown(plan))
    if verdict.uncertain and not request.allow_unknown_cost:
        raise BudgetExceeded(
            f"{verdict.message()}: the query counts are unknown without asking the API; drop "
            "--offline (or plan without it) so mlrun reads them, or pass --allow-unknown-cost"
        )


def write_run_report(
    ledger: Ledger,
    run_id: str,
    request: ApplyRequest,
    settings: Settings,
    env: Mapping[str, str],
) -> tuple[Report, tuple[Path, ...]]:
    """Build the run's report from the ledger and write it where the manifest or flags say."""
    report = build_report(ledger, run_id, env=env)
    formats = request.formats or settings.reports.formats
    files = write_reports(report, report_directory_base(request, settings) / run_id, formats)
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
    target = new_target(sandbox=request.sandbox, base_url=request.base_url, env=env)

    async def remote(interrupt: Interrupt) -> ApplyResult:
        clock = SystemClock()
        async with make_client(target, settings, concurrency=request.concurrency) as client:
            limiter = make_limiter(settings, clock, request.concurrency)
            out = Output(say or (lambda _line: None))
            planned, facts = await _planned(request, plan, client, limiter, clock, out, interrupt)
        return ApplyResult(planned, settings, None, facts.problems, ledger_path)

    return interruptible(remote, say or (lambda _line: None))


# -- resume --------------------------------------------------------------------------------------


def _resume(request: ApplyRequest, *, out: Output, env: Mapping[str, str]) -> ApplyResult:
    ledger_path = request.ledger_path or default_ledger_path()
    if not ledger_path.exists():
        raise ConfigError(f"nothing to resume: no ledger at {ledger_path}")
    with Ledger.open(ledger_path) as ledger:
        ledger.lock(wait=request.lock_timeout)
        run_id = ledger.resolve_run_id(request.resume or "last")
        record = ledger.run(run_id)
        target = pinned_target(record, sandbox=request.sandbox, base_url=request.base_url, env=env)
        settings = _resumed_settings(request, record)
        request = _resumed_request(request, record)
        out.say(f"resuming run {run_id} against {target.describe()}")
        state_file = sandbox_state_file(ledger, run_id)

        async def body(interrupt: Interrupt) -> ApplyResult:
            clock = SystemClock()
            sandbox = _resumed_sandbox(record, state_file, out.say) if target.sandbox else None
            client = make_client(target, settings, concurrency=request.concurrency, sandbox=sandbox)
            with _sandbox_kept(sandbox, state_file, out.say):
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
                record.plan, settings, summary, (), ledger_path, report, files, interrupt.signal
            )

        with _reported_on_failure(ledger, run_id, request, settings, env):
            return interruptible(body, out.say)


def _resumed_sandbox(record: RunRecord, state_file: Path, say: Say) -> Sandbox:
    """The in-process sandbox of a sandbox run, with what it had created when it stopped."""
    scale = record.meta.get("sandboxTimeScale", SANDBOX_TIME_SCALE)
    sandbox = new_sandbox(float(scale))
    if not sandbox.load(state_file, api_key=SANDBOX.api_key):
        say(
            f"note: the sandbox's state of run {record.run_id} was not saved (the process was "
            "killed): this sandbox knows none of its jobs; unsettled triggers are sent again "
            "(free on the sandbox) and jobs in flight are reported as gone"
        )
    return sandbox


@contextmanager
def _sandbox_kept(sandbox: Sandbox | None, state_file: Path, say: Say) -> Iterator[None]:
    """Save ``sandbox``'s state when the run stops, however it stops, for ``--resume``.

    On the event loop: the sandbox's times are the loop's.
    """
    try:
        yield
    finally:
        if sandbox is not None:
            try:
                sandbox.save(state_file)
            except OSError as error:
                say(f"note: the sandbox's state could not be saved to {state_file}: {error}")


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


# -- the phases ----------------------------------------------------------------------------------


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


async def _run_phase(  # noqa: PLR0913 - one run's collaborators
    *,
    run_id: str,
    client: MentionLabClient,
    limiter: RateLimiter,
    ledger: Ledger,
    clock: Clock,
    options: RunOptions,
    out: Output,
    interrupt: Interrupt,
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
                )
                group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        raise collapse(group_error) from group_error
    if interrupt.signal is not None or result is None:
        ledger.set_run_status(run_id, RunStatus.INTERRUPTED, now=clock.wall())
        return None
    return result


@contextmanager
def _reported_on_failure(
    ledger: Ledger,
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
