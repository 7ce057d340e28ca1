"""``apply`` of a plan: exactly the saved plan, and nothing sent when it must be refused.

The sandbox is served on loopback in a thread (a strict world), so the real ``plan_only`` and
``apply`` run unchanged against it while the test reads the sandbox's ground truth directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runner.errors import BudgetExceeded, PlanError
from runner.plan.planfile import PlanFile, write_plan_file
from runner.report import render_text
from runner.report.merge import schema_problem
from runner.report.model import Outcome
from runner.run.apply import ApplyRequest, ApplyResult, apply, plan_only
from runner.sandbox import Sandbox
from runner.store import SqliteStore

from .plan_support import (
    KEY,
    REACHABLE_TOTAL,
    served,
    strict_served_config,
    trigger_requests,
    write_manifest,
)

ENV = {"MENTIONLAB_API_KEY": KEY}


@pytest.fixture
def api() -> Iterator[tuple[str, Sandbox]]:
    with served(strict_served_config()) as pair:
        yield pair


def save(result: ApplyResult, url: str, path: Path, manifest: Path) -> PlanFile:
    saved = PlanFile(
        result.plan, datetime.now(UTC), (str(manifest),), url, problems=result.problems
    )
    write_plan_file(path, saved)
    return saved


def request(tmp_path: Path, url: str, *paths: Path) -> ApplyRequest:
    return ApplyRequest(
        paths=tuple(str(p) for p in paths),
        base_url=url,
        wait=False,
        state=str(tmp_path / "state" / "ledger.sqlite"),
        report_dir=tmp_path / "reports",
    )


@pytest.mark.slow
def test_apply_runs_exactly_the_saved_plan_without_planning_again(
    tmp_path: Path, api: tuple[str, Sandbox]
) -> None:
    url, sandbox = api
    manifest = write_manifest(tmp_path, unreachable=True)
    result = plan_only(request(tmp_path, url, manifest), env=ENV)
    saved = save(result, url, tmp_path / "plan.json", manifest)
    planning = sandbox.truth()["paths"]
    assert planning == {"POST /api/queries/list": 4}

    applied = apply(request(tmp_path, url, tmp_path / "plan.json"), say=lambda _: None, env=ENV)

    assert applied.plan == saved.plan
    truth = sandbox.truth()
    assert truth["paths"]["POST /api/queries/list"] == 4  # not planned again
    assert sum(t["totalExecutions"] for t in truth["triggers"]) == REACHABLE_TOTAL
    assert len(truth["triggers"]) == len(saved.plan.actions) == 3
    assert applied.report is not None
    # Reachable projects went as asked (--no-wait: running); the two unreachable ones exit 1.
    assert {a.outcome for a in applied.report.actions} <= {Outcome.OK, Outcome.RUNNING}
    assert [p for p, _why in applied.report.run.unreachable_projects] == ["initech", "ghost"]
    assert applied.problems == saved.problems  # the CLI warns of them, as after planning
    assert applied.report.exit_code() == 1
    data = applied.report.to_json()
    assert schema_problem(data) is None
    assert [p["project"] for p in data["run"]["unreachableProjects"]] == ["initech", "ghost"]
    assert "Unreachable initech (" in render_text(applied.report, color=False)


@pytest.mark.slow
def test_apply_refuses_a_plan_over_budget_before_any_trigger(
    tmp_path: Path, api: tuple[str, Sandbox]
) -> None:
    url, sandbox = api
    manifest = write_manifest(tmp_path, budget=20)
    with pytest.raises(BudgetExceeded) as caught:
        apply(request(tmp_path, url, manifest), say=lambda _: None, env=ENV)
    message = str(caught.value)
    assert f"needs {REACHABLE_TOTAL} executions, {REACHABLE_TOTAL - 20} over the budget of 20" in (
        message
    )
    assert "heaviest projects: acme (30), globex (9)" in message
    truth = sandbox.truth()
    assert trigger_requests(truth) == 0
    assert truth["triggers"] == []
    with SqliteStore.open(tmp_path / "state" / "ledger.sqlite") as ledger:
        assert ledger.runs() == []  # not even a run was recorded


@pytest.mark.slow
def test_apply_refuses_a_saved_plan_over_budget_sending_nothing_at_all(
    tmp_path: Path, api: tuple[str, Sandbox]
) -> None:
    url, sandbox = api
    manifest = write_manifest(tmp_path, budget=20)
    save(plan_only(request(tmp_path, url, manifest), env=ENV), url, tmp_path / "p.json", manifest)
    before = sandbox.truth()["requests"]
    with pytest.raises(BudgetExceeded, match="over the budget of 20"):
        apply(request(tmp_path, url, tmp_path / "p.json"), say=lambda _: None, env=ENV)
    assert sandbox.truth()["requests"] == before
    assert sandbox.truth()["triggers"] == []


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["stale", "changed"])
def test_apply_refuses_a_stale_or_outdated_plan_sending_nothing(
    tmp_path: Path, api: tuple[str, Sandbox], problem: str
) -> None:
    url, sandbox = api
    manifest = write_manifest(tmp_path)
    saved = save(
        plan_only(request(tmp_path, url, manifest), env=ENV), url, tmp_path / "p.json", manifest
    )
    if problem == "stale":
        old = replace(saved, created_at=saved.created_at - timedelta(hours=24, seconds=5))
        write_plan_file(tmp_path / "p.json", old)
    else:
        manifest.write_text(manifest.read_text().replace("[sonar]", "[sonar, gpt-5-mini]"))
    before = sandbox.truth()["requests"]
    with pytest.raises(PlanError, match=problem):
        apply(request(tmp_path, url, tmp_path / "p.json"), say=lambda _: None, env=ENV)
    assert sandbox.truth()["requests"] == before
    assert not (tmp_path / "state").exists()
