"""Everything before the first trigger: the remote plan, the budget, the cost, the question.

The plan is completed with what only the API knows (each project's query count, one request per
project, unless ``--offline``), checked against ``settings.budget.maxExecutions``, shown on one
line, and, at a terminal, put to the user as ``terraform apply`` does. A signal during any of it
ends the command with nothing sent.
"""

from __future__ import annotations

import random as random_module
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import anyio

from runner.api import MentionLabClient
from runner.clock import Clock
from runner.errors import AuthError, BudgetExceeded, RunInterrupted
from runner.plan import Action, Plan
from runner.plan.remote import ProjectProblem, RemoteFacts, resolve_query_counts
from runner.ratelimit import RateLimiter
from runner.run.gateway import Gateway
from runner.run.options import EngineOptions
from runner.run.progress import RunProgress, outage_text
from runner.run.signals import Interrupt, Say

PLANNING_PROGRESS_EVERY = 5.0  # seconds between the planning's progress lines

Confirm = Callable[[str], bool]  # blocking: shows the question, True to go on
OnCount = Callable[[Action, int], None]  # told each query count as it is read


async def planned(  # noqa: PLR0913 - the planning's collaborators, by name
    plan: Plan,
    *,
    offline: bool,
    client: MentionLabClient,
    limiter: RateLimiter,
    clock: Clock,
    say: Say,
    interrupt: Interrupt,
    known: Mapping[str, int] | None = None,
    on_count: OnCount | None = None,
) -> tuple[Plan, RemoteFacts]:
    """:func:`remote_plan` as a phase: a signal during it ends the command with nothing sent."""
    done: tuple[Plan, RemoteFacts] | None = None
    with interrupt.phase():
        done = await remote_plan(
            plan,
            offline=offline,
            client=client,
            limiter=limiter,
            clock=clock,
            say=say,
            known=known,
            on_count=on_count,
        )
    if interrupt.signal is not None or done is None:
        raise RunInterrupted(
            f"{interrupt.signal or 'interrupted'} while planning: no trigger was sent"
        )
    return done


async def remote_plan(  # noqa: PLR0913 - the planning's collaborators, by name
    plan: Plan,
    *,
    offline: bool,
    client: MentionLabClient,
    limiter: RateLimiter,
    clock: Clock,
    say: Say | None = None,
    known: Mapping[str, int] | None = None,
    on_count: OnCount | None = None,
) -> tuple[Plan, RemoteFacts]:
    """The plan completed with what only the API knows (unless ``offline``).

    ``known``: query counts by project name that need not be read (recorded by an earlier run);
    ``on_count(action, count)`` is told each count as it is read.
    """
    if offline:
        return plan, RemoteFacts({}, (), 0)
    facts = await _remote_facts(plan, client, limiter, clock, say, known=known, on_count=on_count)
    plan = plan.with_query_counts(facts.query_counts)
    return without_unreachable(plan, facts.problems), facts


def check_budget(plan: Plan, *, allow_unknown_cost: bool) -> None:
    """Refuse a plan over ``settings.budget.maxExecutions``, or whose cost is unknown and could be.

    Without the query counts (``--offline``, or a saved plan made offline) the plan is checked
    at its lower bound, one query per project; beyond that the unknown cost needs the counts or
    ``--allow-unknown-cost``.
    """
    from runner.report.plan import budget_breakdown  # noqa: PLC0415 - rendering on demand

    verdict = plan.budget()
    if verdict.refused:
        raise BudgetExceeded(verdict.message() + budget_breakdown(plan))
    if verdict.uncertain and not allow_unknown_cost:
        raise BudgetExceeded(
            f"{verdict.message()}: the query counts are unknown without asking the API; drop "
            "--offline (or plan without it) so mlrun reads them, or pass --allow-unknown-cost"
        )


def plan_line(plan: Plan, *, offline: bool) -> str:
    """The plan's cost on one line: actions, projects, expected executions, budget verdict."""
    from runner.report.plan import one_line  # noqa: PLC0415 - rendering on demand

    return one_line(plan, offline=offline)


async def confirmed(confirm: Confirm | None, interrupt: Interrupt) -> None:
    """Ask ``confirm`` whether to go on; RunInterrupted (nothing sent) unless it says yes.

    The question waits on a daemon thread (a blocking read of the terminal), so a signal still
    stops the command at once, and a thread left waiting never keeps the process alive.
    """
    if confirm is None:
        return
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


async def _remote_facts(
    plan: Plan,
    client: MentionLabClient,
    limiter: RateLimiter,
    clock: Clock,
    say: Say | None,
    *,
    known: Mapping[str, int] | None,
    on_count: OnCount | None,
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
    facts = await resolve_query_counts(
        plan, client=client, request=gateway.read, on_read=on_read, known=known, on_count=on_count
    )
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


def without_unreachable(plan: Plan, problems: Sequence[ProjectProblem]) -> Plan:
    """``plan`` without the projects the API could not reach, each a skip with its reason."""
    bad = {p.project for p in problems}
    if not bad:
        return plan
    from runner.plan import Skip  # noqa: PLC0415

    kept = tuple(a for a in plan.actions if a.project not in bad)
    skipped = plan.skipped + tuple(Skip(p.project, p.message, error=True) for p in problems)
    return replace(plan, actions=kept, skipped=skipped)
