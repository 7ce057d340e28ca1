"""The apply use case: manifest (or saved plan, or resumed run) in, a finished run out.

Wires the pieces for one invocation, in an order that spends nothing before it must: the local
plan (no request), the target (URL and key, checked), the ledger and its lock, then the remote
planning, the budget guard, the run itself and its report. SIGINT and SIGTERM stop whichever
phase is under way cleanly. The CLI parses options into :class:`ApplyRequest` and renders what
comes back; nothing here prints except through the ``say`` callback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TextIO

from runner.clock import SystemClock
from runner.errors import ConfigError, UsageError
from runner.manifest.model import Settings, settings_from_json
from runner.plan import Plan
from runner.plan.changes import nothing_to_apply
from runner.plan.local import local_plan
from runner.plan.planfile import read_saved_plan, verify_saved_plan
from runner.plan.remote import ProjectProblem
from runner.plan.shard import shard_settings, split_for_shard
from runner.run.execute import new_run_id
from runner.run.keyed import Keyed, apply_keyed
from runner.run.lease import under_lease
from runner.run.preflight import Confirm, check_budget, planned
from runner.run.progress import ViewOptions
from runner.run.runkey import run_key
from runner.run.shared import lock_run
from runner.run.signals import Interrupt, Say, interruptible
from runner.run.steps import (
    ApplyRequest,
    ApplyResult,
    New,
    Output,
    apply_new,
    reported_on_failure,
    resumed_request,
    run_options,
    run_phase,
    write_run_report,
)
from runner.run.target import Target, new_target, pinned_target
from runner.run.wiring import (
    make_client,
    make_limiter,
    resumed_sandbox,
    sandbox_saved,
    sandbox_state_file,
)
from runner.store import RunRecord, ledger_file, open_store, run_lease_key, state_location

__all__ = ["ApplyRequest", "ApplyResult", "apply", "load_plan", "plan_only"]


def load_plan(request: ApplyRequest) -> tuple[Plan, Settings]:
    """The manifest's plan, before any remote facts."""
    return local_plan(
        request.paths, request.selection, changed_since=request.changed_since, shard=request.shard
    )


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
            result = apply_keyed(
                Keyed(key, request, whole, plan, settings, target), ledger, out, env
            )
        else:
            run_id = new_run_id(SystemClock())
            ledger.lock(run_lease_key(run_id), wait=request.lock_timeout)
            new = New(request, plan, settings, target, run_id)
            result = interruptible(
                lambda i: under_lease(ledger, lambda: apply_new(new, ledger, out, env, i)), say
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
        record = ledger.run(run_id)
        lock_run(ledger, record, wait=request.lock_timeout)
        target = pinned_target(record, sandbox=request.sandbox, base_url=request.base_url, env=env)
        settings = _resumed_settings(request, record)
        request = resumed_request(request, record)
        out.say(f"resuming run {run_id} against {target.describe()}")
        state_file = sandbox_state_file(ledger, run_id)

        async def body(interrupt: Interrupt) -> ApplyResult:
            clock = SystemClock()
            sandbox = resumed_sandbox(record, state_file, out.say) if target.sandbox else None
            client = make_client(target, settings, concurrency=request.concurrency, sandbox=sandbox)
            with sandbox_saved(sandbox, state_file, out.say):
                async with client:
                    limiter = make_limiter(settings, clock, request.concurrency)
                    summary = await run_phase(
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

        with reported_on_failure(ledger, run_id, request, settings, env):
            return interruptible(lambda i: under_lease(ledger, lambda: body(i)), out.say)


def _resumed_settings(request: ApplyRequest, record: RunRecord) -> Settings:
    if request.paths:
        return load_plan(request)[1]
    if "settings" in record.meta:  # what the run was started with (already sharded)
        return settings_from_json(record.meta["settings"])
    return shard_settings(Settings(), request.shard) if request.shard else Settings()
