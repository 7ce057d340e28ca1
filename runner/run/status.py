"""Past runs, from the ledger: list them, re-render their report, refresh their jobs' statuses.

The use cases behind ``mlrun runs``, ``mlrun report RUN`` and ``mlrun status RUN``; the CLI parses
options and prints. Listing and re-rendering only read the ledger (a run in progress can be
looked at). Refreshing takes the ledger's lock, then asks the API about the run's jobs that are
not terminal yet, through the same :class:`~runner.run.follow.Follower` and rate limiter as
``mlrun apply``: job reads only, never a trigger. One pass by default; ``wait`` follows them to
the end. The run's status is then brought up to date (see :func:`refreshed_status`) and its
report rewritten.
"""

from __future__ import annotations

import os
import random as random_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from runner.api import Job
from runner.clock import SystemClock
from runner.errors import ConfigError, LedgerError, RunInterrupted, SignalInterrupt, UsageError
from runner.manifest.model import Settings
from runner.plan import Action
from runner.report import Report, build_report, write_reports
from runner.report.reconcile import CACHED_ENDPOINT
from runner.report.render import FILE_NAMES
from runner.report.words import plural
from runner.run.follow import Follower, FollowOptions
from runner.run.gateway import Gateway
from runner.run.lease import under_lease
from runner.run.options import EngineOptions
from runner.run.progress import RunProgress
from runner.run.shared import lock_run
from runner.run.target import Target, pinned_target
from runner.run.wiring import kept_sandbox, make_client, make_limiter, sandbox_state_file
from runner.store import (
    ActionRecord,
    ActionState,
    JobRecord,
    RunRecord,
    RunStatus,
    Store,
    ledger_file,
    open_store,
)

if TYPE_CHECKING:
    from runner.sandbox import Sandbox

ONE_PASS_SECONDS = 60.0  # a refresh without --wait gives up on unanswered jobs after this
_UNSETTLED = frozenset({ActionState.PENDING, ActionState.IN_FLIGHT, ActionState.AMBIGUOUS})
_GONE_MARK = "404"

Say = Callable[[str], None]


# -- reading past runs ---------------------------------------------------------------------------


def existing_ledger(state: str | None) -> str | None:
    """``state``, checked: ConfigError for a SQLite ledger (``.mlrun/`` by default) not there."""
    ledger_path = ledger_file(state)
    if ledger_path is not None and not ledger_path.exists():
        raise ConfigError(f"no ledger at {ledger_path}: no run has been recorded here yet")
    return state


def resolve_run(ledger: Store, run: str) -> str:
    """The full id of ``run`` (a run key, an id, a unique prefix, or ``last``); UsageError
    otherwise."""
    named = ledger.run_by_key(run)
    if named is not None:
        return named.run_id
    try:
        return ledger.resolve_run_id(run)
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc


@dataclass(frozen=True)
class RunLine:
    """One past run as ``mlrun runs`` lists it."""

    record: RunRecord
    report: Report

    def to_json(self) -> dict[str, object]:
        """``{runId, runKey, startedAt, finishedAt, status, commit, startedBy, actions, outcomes,
        executions: {expected, total}, exitCode}``."""
        run, tally = self.report.run, self.report.totals.run
        return {
            "runId": run.run_id,
            "runKey": self.record.run_key,
            "startedAt": run.started_at,
            "finishedAt": run.finished_at,
            "status": run.status,
            "commit": run.ci.commit,
            "startedBy": run.ci.started_by(),
            "actions": tally.actions,
            "outcomes": {str(outcome): count for outcome, count in tally.outcomes},
            "executions": {"expected": tally.expected, "total": tally.counters.total},
            "exitCode": int(self.report.exit_code()),
        }


def list_runs(state: str | None, *, limit: int | None, env: Mapping[str, str]) -> list[RunLine]:
    """The ``limit`` most recent runs, newest first, each with its reconciled report."""
    with open_store(state) as ledger:
        records = ledger.runs()[:limit]
        return [RunLine(r, build_report(ledger, r.run_id, env=env)) for r in records]


def past_report(state: str | None, run: str, *, env: Mapping[str, str]) -> tuple[Report, RunRecord]:
    """The report of ``run``, rebuilt from the ledger as it stands, and the run's record."""
    with open_store(state) as ledger:
        run_id = resolve_run(ledger, run)
        return build_report(ledger, run_id, env=env), ledger.run(run_id)


def report_directory(run: RunRecord, base: Path | None = None) -> Path:
    """Where a run's reports live: ``<base>/<run id>``, base the directory the run used.

    ``base``: another directory asked for; a run recorded without one uses ``mlrun-reports``.
    """
    recorded = run.meta.get("reportDir")
    default = Path(recorded) if isinstance(recorded, str) else Path(Settings().reports.directory)
    return (base or default) / run.run_id


def formats_present(directory: Path) -> tuple[str, ...]:
    """The report formats already written in ``directory`` (to rewrite the same ones)."""
    return tuple(name for name, file in FILE_NAMES.items() if (directory / file).exists())


# -- refreshing a run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRequest:
    """Everything ``mlrun status`` was asked to do."""

    run: str = "last"
    wait: bool = False
    timeout: float | None = None  # --wait: following; else the one pass (ONE_PASS_SECONDS)
    sandbox: bool = False
    base_url: str | None = None
    state: str | None = None  # a PostgreSQL URL or a SQLite ledger's path; None: the default
    lock_timeout: float = 0.0
    report_dir: Path | None = None
    formats: tuple[str, ...] = ()  # empty: those already written for the run, else the defaults


@dataclass(frozen=True)
class StatusResult:
    """The refreshed run: how many jobs were asked about, and its rewritten report."""

    run_id: str
    refreshed: int
    status_requests: int
    report: Report
    report_files: tuple[Path, ...]


def refresh_status(
    request: StatusRequest, *, say: Say, env: Mapping[str, str] | None = None
) -> StatusResult:
    """Run ``mlrun status``; raises the typed errors the CLI renders."""
    env = os.environ if env is None else env
    with open_store(existing_ledger(request.state)) as ledger:
        run_id = resolve_run(ledger, request.run)
        lock_run(ledger, ledger.run(run_id), wait=request.lock_timeout)
        jobs = outstanding_jobs(ledger.actions(run_id), ledger.jobs(run_id))
        requests, interrupted = 0, False
        if jobs:
            target = pinned_target(
                ledger.run(run_id), sandbox=request.sandbox, base_url=request.base_url, env=env
            )
            count = plural(len(jobs), "job")
            say(f"run {run_id}: asking {target.describe()} about {count} not yet terminal")
            try:
                requests = anyio.run(
                    under_lease, ledger, lambda: _follow(request, target, ledger, run_id, jobs)
                )
            except (SignalInterrupt, KeyboardInterrupt):
                interrupted = True
        _update_run_status(ledger, run_id)
        report, files = _rewrite_report(ledger, run_id, request, env)
    if interrupted:
        raise RunInterrupted(f"interrupted; the report of {run_id} was rewritten: {files[0]}")
    return StatusResult(run_id, len(jobs), requests, report, files)


def outstanding_jobs(
    actions: Sequence[ActionRecord], jobs: Sequence[JobRecord]
) -> list[tuple[Action, Job]]:
    """The triggered jobs of a run not seen terminal (nor gone: 404), as the follower takes them.

    A job id recorded on an action but never seen is included, as ``pending``.
    """
    by_id = {job.job_id: job for job in jobs}
    found: list[tuple[Action, Job]] = []
    for record in actions:
        if record.state != ActionState.TRIGGERED or str(record.action.endpoint) == CACHED_ENDPOINT:
            continue
        filed = [job.job_id for job in jobs if job.key == record.action.key]
        for job_id in dict.fromkeys([*record.job_ids, *filed]):
            job = by_id.get(job_id)
            if job is None or _still_running(job):
                found.append((record.action, _as_job(job_id, job)))
    return found


def _still_running(job: JobRecord) -> bool:
    return job.terminal_at is None and not any(_GONE_MARK in a for a in job.anomalies)


def _as_job(job_id: str, record: JobRecord | None) -> Job:
    counters = {} if record is None else record.counters
    return Job(
        id=job_id,
        project_id=None,
        status="pending" if record is None else record.status,
        total=counters.get("total", 0),
        pending=counters.get("pending", 0),
        retrying=counters.get("retrying", 0),
        success=counters.get("success", 0),
        failed=counters.get("failed", 0),
        created_at="" if record is None else record.created_at or "",
        updated_at=None,
        created_by=None,
    )


def _kept_sandbox(ledger: Store, run_id: str) -> Sandbox:
    """The in-process sandbox a sandbox run saved when it stopped; UsageError without one."""
    state_file = sandbox_state_file(ledger, run_id)
    sandbox, found = kept_sandbox(ledger.run(run_id), state_file)
    if not found:
        raise UsageError(
            f"run {run_id} ran on the in-process sandbox, whose state was not saved (the process "
            f"was killed: no {state_file}); its jobs cannot be asked about"
        )
    return sandbox


async def _follow(
    request: StatusRequest,
    target: Target,
    ledger: Store,
    run_id: str,
    jobs: Sequence[tuple[Action, Job]],
) -> int:
    """Follow ``jobs`` (one pass, or to the end with ``wait``); the status requests sent."""
    clock, settings = SystemClock(), Settings()
    sandbox = _kept_sandbox(ledger, run_id) if target.sandbox else None  # on the loop's clock
    async with make_client(target, settings, sandbox=sandbox) as client:
        gateway = Gateway(
            limiter=make_limiter(settings, clock, None),
            clock=clock,
            rng=random_module.Random(),
            options=EngineOptions(),
            progress=RunProgress(),
        )
        follower = Follower(
            client=client,
            request=gateway.request,
            ledger=ledger,
            run_id=run_id,
            clock=clock,
            options=_follow_options(request, settings),
        )
        for action, job in jobs:
            follower.add(action, job)
        nothing_to_trigger = anyio.Event()
        nothing_to_trigger.set()
        if request.wait:
            await follower.run(nothing_to_trigger)
        else:
            await _one_pass(follower, nothing_to_trigger, request.timeout or ONE_PASS_SECONDS)
        return follower.status_requests


def _follow_options(request: StatusRequest, settings: Settings) -> FollowOptions:
    if request.wait:
        return FollowOptions(timeout=request.timeout or settings.timeouts.follow)
    # One look at each job, soon: the pass ends before any timeout could be recorded.
    return FollowOptions(min_interval=0.1, max_interval=5.0, timeout=float("inf"))


async def _one_pass(follower: Follower, triggers_done: anyio.Event, limit: float) -> None:
    """Let the follower look at every job once (or until ``limit`` seconds), then stop it."""
    before = {job_id: tracked.polls for job_id, tracked in follower.jobs.items()}

    def everyone_seen() -> bool:
        return all(t.polls > before[i] or t.gone for i, t in follower.jobs.items())

    async with anyio.create_task_group() as group:
        group.start_soon(follower.run, triggers_done)
        with anyio.move_on_after(limit):
            while not everyone_seen():  # noqa: ASYNC110 - the follower has no per-poll event
                await anyio.sleep(0.05)  # local state only: no request is made here
        group.cancel_scope.cancel()


def refreshed_status(
    status: RunStatus, actions: Sequence[ActionRecord], jobs: Sequence[JobRecord]
) -> RunStatus:
    """The run's status once its jobs were refreshed.

    Called under the ledger's lock, so no process is running it: a ``running`` run was killed.
    A killed or interrupted run whose every action is settled and whose every job has ended is
    ``finished`` (its following was only cut short); one with work left is ``interrupted``
    (``mlrun apply --resume`` continues it). ``finished`` and ``failed`` runs keep their status.
    """
    if status not in {RunStatus.RUNNING, RunStatus.INTERRUPTED}:
        return status
    unsettled = any(record.state in _UNSETTLED for record in actions)
    if unsettled or outstanding_jobs(actions, jobs):
        return RunStatus.INTERRUPTED
    return RunStatus.FINISHED


def _update_run_status(ledger: Store, run_id: str) -> None:
    record = ledger.run(run_id)
    status = refreshed_status(record.status, ledger.actions(run_id), ledger.jobs(run_id))
    if status != record.status:
        ledger.set_run_status(run_id, status, now=SystemClock().wall())


def _rewrite_report(
    ledger: Store, run_id: str, request: StatusRequest, env: Mapping[str, str]
) -> tuple[Report, tuple[Path, ...]]:
    report = build_report(ledger, run_id, env=env)
    directory = report_directory(ledger.run(run_id), request.report_dir)
    formats = request.formats or formats_present(directory) or Settings().reports.formats
    return report, tuple(write_reports(report, directory, formats))
