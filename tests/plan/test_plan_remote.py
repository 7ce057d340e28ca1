"""Remote planning against a strict sandbox world, in process and in virtual time."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from runner.clock import LoopClock
from runner.errors import AuthError
from runner.exitcodes import ExitCode
from runner.manifest import load_manifest
from runner.plan import Selection, build_plan
from runner.plan.planfile import PlanFile
from runner.ratelimit import RateLimiter
from runner.report.plan import problem_line, render_plan_text
from runner.run import preflight
from runner.run.options import EngineOptions
from runner.sandbox import Faults, Sandbox, SandboxConfig

from .plan_support import (
    ACME,
    DOCUMENTED,
    GHOST,
    GLOBEX,
    INITECH,
    ORG,
    OTHER_KEY,
    OTHER_ORG,
    REACHABLE_TOTAL,
    client,
    remote_plan,
    run_plan,
    strict_sandbox,
    trigger_requests,
    write_manifest,
)

pytestmark = pytest.mark.anyio


async def test_unknown_and_foreign_projects_are_reported_precisely_and_nothing_is_triggered(
    tmp_path: Path,
) -> None:
    sandbox = strict_sandbox()
    plan_file = await remote_plan(sandbox, write_manifest(tmp_path, unreachable=True))

    lines = [problem_line(p) for p in plan_file.problems]
    assert lines == [
        f"project initech (id {INITECH}) is not reachable with this key in organisation "
        + OTHER_ORG,
        f"project ghost (id {GHOST}) does not exist for this key",
    ]
    assert [p.kind for p in plan_file.problems] == ["forbidden", "not_found"]
    assert {a.project for a in plan_file.plan.actions} == {"acme", "globex"}
    assert {s.project for s in plan_file.plan.skipped} == {"initech", "ghost"}
    assert plan_file.exit_code() == ExitCode.ACTION_FAILED
    text = render_plan_text(plan_file)
    assert lines[0] in text
    assert lines[1] in text
    truth = sandbox.truth()
    assert truth["triggers"] == []
    assert trigger_requests(truth) == 0


async def test_one_request_per_project_and_the_counts_come_from_the_queries_list(
    tmp_path: Path,
) -> None:
    sandbox = strict_sandbox()
    plan_file = await remote_plan(sandbox, write_manifest(tmp_path, unreachable=True))
    truth = sandbox.truth()
    assert truth["paths"] == {"POST /api/queries/list": 4}
    queries = {a.project: a.queries for a in plan_file.plan.actions}
    assert queries == {"acme": 5, "globex": 3}
    assert plan_file.plan.total_expected == REACHABLE_TOTAL


async def test_a_bad_key_is_refused_as_a_whole_and_nothing_is_triggered(tmp_path: Path) -> None:
    sandbox = strict_sandbox()
    with pytest.raises(AuthError) as caught:
        await remote_plan(sandbox, write_manifest(tmp_path), api_key="ml_live_" + "unknownkey42")
    assert caught.value.status == 401
    assert "HTTP 401" in str(caught.value)
    assert trigger_requests(sandbox.truth()) == 0
    assert sandbox.truth()["triggers"] == []


async def test_the_key_of_another_organisation_cannot_reach_any_project(tmp_path: Path) -> None:
    sandbox = strict_sandbox()
    plan_file = await remote_plan(sandbox, write_manifest(tmp_path), api_key=OTHER_KEY)
    assert [p.project_id for p in plan_file.problems] == [ACME, GLOBEX]
    assert all(p.kind == "forbidden" for p in plan_file.problems)
    assert plan_file.plan.actions == ()
    assert sandbox.truth()["triggers"] == []


async def test_expected_executions_equal_the_sandbox_totals_once_applied(tmp_path: Path) -> None:
    sandbox = strict_sandbox()
    plan_file = await remote_plan(sandbox, write_manifest(tmp_path, unreachable=True))
    await run_plan(sandbox, plan_file.plan, tmp_path / "ledger.sqlite")

    triggers = sandbox.truth()["triggers"]
    kinds = {"jobs": "job", "cachedJobs": "cached"}
    for action in plan_file.plan.actions:
        [record] = [
            t
            for t in triggers
            if t["projectId"] == action.project_id and t["kind"] == kinds[str(action.endpoint)]
        ]
        assert record["totalExecutions"] == action.expected_executions, action.key
    assert sum(t["totalExecutions"] for t in triggers) == plan_file.plan.total_expected
    assert {t["projectId"] for t in triggers} == {ACME, GLOBEX}  # the unreachable: never


async def test_selection_plans_only_the_selected_projects_and_says_why_others_are_left(
    tmp_path: Path,
) -> None:
    sandbox = strict_sandbox()
    manifest = write_manifest(tmp_path)
    plan_file = await remote_plan(sandbox, manifest, selection=Selection(include=("team=brand",)))
    assert {a.project for a in plan_file.plan.actions} == {"globex"}
    assert [(s.project, s.reason) for s in plan_file.plan.skipped] == [("acme", "not selected")]
    assert sandbox.truth()["paths"] == {"POST /api/queries/list": 1}
    assert re.search(r"\n  acme +not selected\n", render_plan_text(plan_file))


def _many_projects(directory: Path, count: int) -> Path:
    projects = "".join(
        f"  - name: p{i}\n    id: {uuid.uuid5(uuid.NAMESPACE_URL, f'plan-{i}')}\n"
        "    jobs:\n      - models: [gpt-5-mini]\n"
        for i in range(count)
    )
    path = directory / "many.yaml"
    path.write_text(f"version: 1\ndefaults:\n  organisation: {ORG}\nprojects:\n{projects}")
    return path


def _counts(plan_file: PlanFile) -> dict[str, int | None]:
    return {a.project: a.queries for a in plan_file.plan.actions}


async def test_planning_reads_are_resent_through_5xx_and_dropped_connections(
    tmp_path: Path,
) -> None:
    manifest = _many_projects(tmp_path, 40)
    healthy = await remote_plan(Sandbox(SandboxConfig(seed=11), clock=LoopClock()), manifest)
    faults = Faults(error_503=0.1, error_502=0.05, drop_before=0.05, lost_response=0.05)
    sandbox = Sandbox(SandboxConfig(seed=11, faults=faults), clock=LoopClock())

    planned = await remote_plan(sandbox, manifest)

    assert planned.problems == ()
    assert len(planned.plan.actions) == 40
    assert _counts(planned) == _counts(healthy)
    assert None not in _counts(planned).values()
    statuses = sandbox.truth()["statuses"]
    assert statuses.get("503", 0) > 0
    assert statuses.get("502", 0) > 0
    assert trigger_requests(sandbox.truth()) == 0


async def test_a_project_the_api_never_answers_for_is_left_out_as_an_error_after_retries(
    tmp_path: Path,
) -> None:
    sandbox = strict_sandbox(faults=Faults(error_502=1.0))

    planned = await remote_plan(sandbox, write_manifest(tmp_path))

    assert [p.kind for p in planned.problems] == ["error", "error"]
    assert all("could not read the project's queries" in p.message for p in planned.problems)
    assert all(s.error for s in planned.plan.skipped)
    assert planned.plan.actions == ()
    assert sandbox.truth()["paths"]["POST /api/queries/list"] == 2 * EngineOptions().max_attempts


async def test_a_long_remote_plan_says_how_far_it_has_read(tmp_path: Path) -> None:
    # 60 projects under the documented limits (10/s after the slow start): several seconds of
    # reads, so progress lines every 5 s and a last one with the total time.
    manifest = _many_projects(tmp_path, 60)
    lines: list[str] = []
    plan = build_plan(load_manifest([manifest], env={}).manifest)
    clock = LoopClock()
    limiter = RateLimiter(list(DOCUMENTED), clock=clock, concurrency=8, probe_first=True)
    sandbox = Sandbox(SandboxConfig(seed=11), clock=LoopClock())
    async with client(sandbox) as api:
        await preflight.remote_plan(
            plan, offline=False, client=api, limiter=limiter, clock=clock, say=lines.append
        )

    assert lines, "no progress was said"
    pattern = re.compile(r"planning: \d+ of 60 projects read( in \d+ s)?")
    assert all(pattern.fullmatch(line) for line in lines), lines
    assert lines[-1].startswith("planning: 60 of 60 projects read in ")
    done = [int(line.split()[1]) for line in lines]
    assert done == sorted(done)


async def test_a_quick_remote_plan_says_nothing_of_its_progress(tmp_path: Path) -> None:
    lines: list[str] = []
    plan = build_plan(load_manifest([write_manifest(tmp_path)], env={}).manifest)
    clock = LoopClock()
    limiter = RateLimiter(list(DOCUMENTED), clock=clock, concurrency=8)
    async with client(strict_sandbox()) as api:
        await preflight.remote_plan(
            plan, offline=False, client=api, limiter=limiter, clock=clock, say=lines.append
        )
    assert lines == []
