"""One run, end to end: a plan in, the ledger filled, the trigger phase and the following.

This is the use case behind ``mlrun apply``; the CLI only parses options and renders. A new run
writes its plan to the ledger before anything is sent; a resumed run continues from the ledger:
it settles what was in flight, triggers what was not attempted and follows what is running.
"""

from __future__ import annotations

import os
import platform
import random as random_module
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from runner import __version__
from runner.api import Job, MentionLabClient
from runner.clock import Clock
from runner.manifest.model import Settings, settings_to_json
from runner.plan import Action, Plan
from runner.ratelimit import RateLimiter
from runner.run.engine import Engine
from runner.run.follow import Follower, FollowOptions
from runner.run.gateway import Gateway
from runner.run.journal import Journal
from runner.run.options import EngineOptions
from runner.run.progress import RunProgress
from runner.run.target import Target
from runner.store import ActionState, RunStatus, Store


@dataclass(frozen=True)
class RunOptions:
    engine: EngineOptions = field(default_factory=EngineOptions)
    follow: FollowOptions = field(default_factory=FollowOptions)
    wait: bool = True  # follow the jobs to a terminal status


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: RunStatus
    stop_reason: str | None
    timed_out: tuple[str, ...]
    status_requests: int


def new_run_id(clock: Clock) -> str:
    """Sortable and unique: UTC time of the start plus random hex."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.wall()))
    return f"{stamp}-{secrets.token_hex(3)}"


def run_metadata(
    env: Mapping[str, str],
    *,
    wait: bool = True,
    rate_limits: Sequence[tuple[int, float]] = (),
    settings: Settings | None = None,
) -> dict[str, object]:
    """What the report says about where and how the run happened (never a secret)."""
    from runner.report.environment import ci_info  # noqa: PLC0415 - report is a leaf package

    return {
        "mlrunVersion": __version__,
        "python": platform.python_version(),
        "ci": ci_info(env).to_json(),
        "wait": wait,
        "rateLimits": [[limit, seconds] for limit, seconds in rate_limits],
        "settings": settings_to_json(settings or Settings()),
    }


def start_run(
    ledger: Store,
    plan: Plan,
    *,
    clock: Clock,
    target: Target,
    meta: Mapping[str, object] | None = None,
    run_id: str | None = None,
) -> str:
    """Record a new run, its whole plan and its target before anything is sent.

    ``meta``: what :func:`run_metadata` says about the run (default: from ``os.environ``).
    ``run_id``: the id chosen when its lock was taken (default: a new one).
    """
    run_id = run_id or new_run_id(clock)
    meta = run_metadata(os.environ) if meta is None else meta
    ledger.create_run(
        run_id,
        plan,
        base_url=target.base_url,
        key_fingerprint=None if target.sandbox else target.fingerprint,
        meta=meta,
        now=clock.wall(),
    )
    return run_id


async def execute(  # noqa: PLR0913 - the run's collaborators are injected
    *,
    run_id: str,
    client: MentionLabClient,
    limiter: RateLimiter,
    ledger: Store,
    clock: Clock,
    rng: random_module.Random | None = None,
    options: RunOptions | None = None,
    progress: RunProgress | None = None,
) -> RunSummary:
    """Trigger what is left of a run and follow its jobs; the ledger records everything."""
    options = options or RunOptions()
    rng = rng or random_module.Random()
    progress = progress or RunProgress()
    journal = Journal(
        ledger=ledger, run_id=run_id, clock=clock, options=options.engine, progress=progress
    )
    gateway = Gateway(
        limiter=limiter,
        clock=clock,
        rng=rng,
        options=options.engine,
        progress=progress,
        on_event=journal.event,
    )
    engine = Engine(
        client=client,
        gateway=gateway,
        journal=journal,
        clock=clock,
        options=options.engine,
        concurrency=limiter.concurrency,
    )
    follower = Follower(
        client=client,
        request=gateway.request,
        ledger=ledger,
        run_id=run_id,
        clock=clock,
        rng=rng,
        options=options.follow,
        progress=progress,
        on_fatal=journal.stop,
    )
    if options.wait:
        journal.on_job = follower.add
        _follow_running_jobs(ledger, run_id, follower)
    plan = ledger.run(run_id).plan
    ledger.set_run_status(run_id, RunStatus.RUNNING, now=clock.wall())
    status = RunStatus.INTERRUPTED
    try:
        triggers_done = anyio.Event()
        async with anyio.create_task_group() as group:
            if options.wait:
                group.start_soon(follower.run, triggers_done)
            await engine.trigger(plan.actions)
            triggers_done.set()
        status = RunStatus.FAILED if engine.stop_reason else RunStatus.FINISHED
        if follower.timed_out:
            status = RunStatus.INTERRUPTED
    finally:
        with anyio.CancelScope(shield=True):  # noqa: ASYNC100 - shields a sync write
            ledger.set_run_status(run_id, status, now=clock.wall())
    return RunSummary(
        run_id=run_id,
        status=status,
        stop_reason=engine.stop_reason,
        timed_out=tuple(follower.timed_out),
        status_requests=follower.status_requests,
    )


def _follow_running_jobs(ledger: Store, run_id: str, follower: Follower) -> None:
    """On resume: keep following the jobs the ledger saw but not yet as terminal."""
    actions: dict[str, Action] = {
        r.action.key: r.action for r in ledger.actions(run_id) if r.state == ActionState.TRIGGERED
    }
    for job in ledger.jobs(run_id):
        if job.terminal_at is None and job.kind == "job" and job.key in actions:
            follower.add(actions[job.key], _job_from_record(job.job_id, job.status, job.counters))


def _job_from_record(job_id: str, status: str, counters: dict[str, int]) -> Job:
    return Job(
        id=job_id,
        project_id=None,
        status=status,
        total=counters.get("total", 0),
        pending=counters.get("pending", 0),
        retrying=counters.get("retrying", 0),
        success=counters.get("success", 0),
        failed=counters.get("failed", 0),
        created_at="",
        updated_at=None,
        created_by=None,
    )
