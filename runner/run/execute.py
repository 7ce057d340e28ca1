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


def start_run(  # noqa: PLR0913 - the fields of a new run, by name
    ledger: Store,
    plan: Plan,
    *,
    clock: Clock,
    target: Target,
    meta: Mapping[str, object] | None = None,
    run_id: str | None = None,
    run_key: str | None = None,
    replacing: str | None = None,
) -> str:
    """Record a new run, its whole plan and its target before anything is sent.

    ``meta``: what :func:`run_metadata` says about the run (default: from ``os.environ``).
    ``run_id``: the id chosen when its lock was taken (default: a new one). With ``run_key``,
    the run is named so, unless another process named one so first: then that run's id is
    returned, and nothing is recorded (``replacing``: see :meth:`Store.create_run`).
    """
    run_id = run_id or new_run_id(clock)
    meta = run_metadata(os.environ) if meta is None else meta
    return ledger.create_run(
        run_id,
        plan,
        base_url=target.base_url,
        key_fingerprint=None if target.sandbox else target.fingerprint,
        meta=meta,
        now=clock.wall(),
        run_key=run_key,
        replacing=replacing,
    )


@dataclass(frozen=True)
class Part:
    """The part of a run one process applies: a shard ``i/n`` of its actions."""

    name: str  # "2/4"
    keys: frozenset[str]  # the actions' keys
    of: int  # how many parts the run has

    def names(self) -> tuple[str, ...]:
        """Every part's name: ``1/n`` to ``n/n``."""
        return tuple(f"{index}/{self.of}" for index in range(1, self.of + 1))


def run_status_of_parts(parts: Mapping[str, RunStatus], expected: Sequence[str]) -> RunStatus:
    """A run's status from its parts': running while one is (or has not begun), else the worst."""
    statuses = [parts.get(name) for name in expected]
    if None in statuses or RunStatus.RUNNING in statuses:
        return RunStatus.RUNNING
    for worst in (RunStatus.INTERRUPTED, RunStatus.FAILED):
        if worst in statuses:
            return worst
    return RunStatus.FINISHED


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
    part: Part | None = None,
) -> RunSummary:
    """Trigger what is left of a run and follow its jobs; the ledger records everything.

    ``part``: only that part's actions and jobs (one shard of a run that several processes
    apply side by side); its status is recorded as the part's, and the run's follows the parts'.
    """
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
    keys = None if part is None else part.keys
    if options.wait:
        journal.on_job = follower.add
        _follow_running_jobs(ledger, run_id, follower, keys)
    actions = [a for a in ledger.run(run_id).plan.actions if keys is None or a.key in keys]
    set_status(ledger, run_id, part, RunStatus.RUNNING, clock.wall())
    status = RunStatus.INTERRUPTED
    try:
        triggers_done = anyio.Event()
        async with anyio.create_task_group() as group:
            if options.wait:
                group.start_soon(follower.run, triggers_done)
            await engine.trigger(actions)
            triggers_done.set()
        status = RunStatus.FAILED if engine.stop_reason else RunStatus.FINISHED
        if follower.timed_out:
            status = RunStatus.INTERRUPTED
    finally:
        with anyio.CancelScope(shield=True):  # noqa: ASYNC100 - shields a sync write
            set_status(ledger, run_id, part, status, clock.wall())
    return RunSummary(
        run_id=run_id,
        status=status,
        stop_reason=engine.stop_reason,
        timed_out=tuple(follower.timed_out),
        status_requests=follower.status_requests,
    )


def set_status(
    ledger: Store, run_id: str, part: Part | None, status: RunStatus, now: float
) -> None:
    """The run's status, or its part's and then the run's as the parts' combine."""
    if part is None:
        ledger.set_run_status(run_id, status, now=now)
        return
    with ledger.transaction():
        ledger.set_part_status(run_id, part.name, status, now=now)
        combined = run_status_of_parts(ledger.parts(run_id), part.names())
        ledger.set_run_status(run_id, combined, now=now)


def _follow_running_jobs(
    ledger: Store, run_id: str, follower: Follower, keys: frozenset[str] | None
) -> None:
    """On resume: keep following the jobs the ledger saw but not yet as terminal."""
    actions: dict[str, Action] = {
        r.action.key: r.action
        for r in ledger.actions(run_id)
        if r.state == ActionState.TRIGGERED and (keys is None or r.action.key in keys)
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
