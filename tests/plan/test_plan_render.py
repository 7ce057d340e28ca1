"""The plan's renderers, checked by real consumers (json, markdown-it) and at scale."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from markdown_it import MarkdownIt
from runner.exitcodes import ExitCode
from runner.plan import Skip
from runner.plan.planfile import PlanFile
from runner.plan.remote import ProjectProblem
from runner.report.plan import (
    render_plan,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
)

from .plan_support import synthetic_plan_file

GITHUB_LIMIT = 65_535


def with_budget(plan_file: PlanFile, limit: int) -> PlanFile:
    return replace(plan_file, plan=replace(plan_file.plan, max_executions=limit))


def table_rows(markdown: str) -> int:
    tokens = MarkdownIt().enable("table").parse(markdown)
    return sum(1 for token in tokens if token.type == "tr_open")


def test_a_small_plan_shows_every_row_and_the_summary_first() -> None:
    plan_file = synthetic_plan_file(3, problems=1)
    text = render_plan_markdown(plan_file, full_plan_hint="plan.json")
    assert text.startswith("### ⚠️ mlrun plan: 6 actions in 3 projects, ")
    summary, _, tables = text.partition("\n#### ")
    assert "| Budget | no budget set" in summary
    assert "| Unreachable | 1 project, not planned (below) |" in summary
    assert "Unreachable projects (not planned)" in tables.split("\n", 1)[0]
    assert "… and" not in text
    assert "lost-0 (id 00000000-0000-4000-9000-000000000000) does not exist for this key" in text
    # summary rows (with Cached jobs) + unreachable + per project + per model + actions, each
    # with its header row
    assert table_rows(text) == (7 + 1) + (1 + 1) + (3 + 1) + (5 + 1) + (6 + 1)


@pytest.mark.parametrize(("projects", "problems"), [(5_000, 0), (5_000, 5_000), (20_000, 100)])
def test_markdown_stays_under_githubs_limit_however_many_projects(
    projects: int, problems: int
) -> None:
    plan_file = synthetic_plan_file(projects, problems=problems)
    text = render_plan_markdown(plan_file, full_plan_hint="out/plan.json")
    assert len(text) <= GITHUB_LIMIT
    assert len(text) > GITHUB_LIMIT * 0.8  # the space is used, not wasted
    assert "more; the full plan is in `out/plan.json`_" in text
    assert text.index("| Budget |") < text.index("#### ")
    assert table_rows(text) > 100


def test_without_an_output_file_the_cut_points_at_the_json_plan() -> None:
    text = render_plan_markdown(synthetic_plan_file(5_000))
    assert "the full plan is in `mlrun plan --format json`" in text


@pytest.mark.parametrize("limit", [3_000, 10_000, 30_000])
def test_markdown_honours_any_limit(limit: int) -> None:
    text = render_plan_markdown(synthetic_plan_file(1_000, problems=10), limit=limit)
    assert len(text) <= limit
    assert table_rows(text) > 0


def test_a_refused_plan_says_by_how_much_and_which_projects_weigh_most() -> None:
    plan_file = with_budget(synthetic_plan_file(10), 100)
    assert plan_file.exit_code() == ExitCode.BUDGET_REFUSED
    total = plan_file.plan.total_expected
    assert total is not None
    for text in (render_plan_markdown(plan_file), render_plan_text(plan_file)):
        assert f"REFUSED: the plan needs {total:,} executions, {total - 100:,} over" in text
        assert "heaviest projects: project-00008 (135), project-00005 (90)" in text
        assert "refused by the budget; apply would send nothing" in text
    assert render_plan_markdown(plan_file).startswith("### ⛔")


def test_a_plan_within_budget_shows_its_share() -> None:
    plan_file = with_budget(synthetic_plan_file(2), 1_000)
    assert "within budget: 25 of 1,000 executions (2%)" in render_plan_text(plan_file)
    assert plan_file.exit_code() == ExitCode.OK


def test_offline_says_plainly_that_counts_are_unknown() -> None:
    plan_file = with_budget(synthetic_plan_file(2, offline=True), 1_000)
    text = render_plan_text(plan_file)
    assert "Plan: 4 actions in 2 projects, expected executions unknown" in text
    assert "Query counts: unknown: planned with --offline, the API was not asked" in text
    assert (
        "Budget: not checked: planned with --offline; at least 15 executions, budget 1,000" in text
    )
    markdown = render_plan_markdown(plan_file)
    assert "| API | not asked (offline) |" in markdown
    assert "| Query counts | unknown: planned with --offline" in markdown
    summary = json.loads(render_plan_json(plan_file))["summary"]
    assert summary["expectedExecutions"] is None
    assert summary["queryCountsKnown"] is False
    assert summary["budget"]["refused"] is False


def test_text_lists_actions_totals_skips_and_problems() -> None:
    base = synthetic_plan_file(2, problems=1)
    plan = replace(base.plan, skipped=(*base.plan.skipped, Skip("omega", "not selected")))
    text = render_plan_text(replace(base, plan=plan))
    lines = text.splitlines()
    assert lines[0] == "Actions"
    head = ["PROJECT", "ENDPOINT", "MODELS", "COUNT", "QUERIES", "EXPECTED", "PER", "ROUND"]
    assert lines[1].split() == head
    assert lines[2].split() == [
        "project-00000",
        "jobs",
        "gpt-5-mini,claude-haiku-4-5,gemini-2.5-flash",
        "1",
        "1",
        "3",
        "—",
    ]
    assert lines[3].split() == [
        "project-00000",
        "cachedJobs",
        "openai,anthropic",
        "1",
        "1",
        "—",
        "2",
    ]
    assert "Per project" in lines
    assert "Per model" in lines
    assert any(line.split() == ["omega", "not", "selected"] for line in lines)
    assert "Unreachable, not planned" in lines
    assert lines[-1] == "exit 1: some projects are unreachable with this key; apply skips them"
    # expected executions are the jobs' (3 + 12); cached jobs are a round apart (2 + 8)
    assert "Plan: 4 actions in 2 projects, 15 expected executions" in lines
    assert (
        "Cached jobs: 3 cached jobs from 2 triggers, 10 executions per round; they recur on each "
        "project's schedule: not in the expected executions"
    ) in lines


def test_json_carries_the_totals_and_the_exit_code() -> None:
    plan_file = synthetic_plan_file(3)
    document = json.loads(render_plan(plan_file, "json"))
    summary = document["summary"]
    assert summary["actions"] == 6
    assert summary["projects"] == 3
    assert summary["expectedExecutions"] == sum(summary["perProject"].values())
    assert summary["perModel"]["gpt-5-mini"] == 1 * 1 + 2 * 2 + 3 * 3
    cached = summary["cachedJobs"]
    assert "openai" not in summary["perModel"]
    assert cached["perProviderKey"]["openai"] == 1 * 1 + 2 * 2 + 3 * 3
    assert cached["executionsPerRound"] == sum(cached["perProject"].values())
    assert cached["triggers"] == 3
    assert cached["cachedJobs"] == 1 + 2 + 3  # one per query
    assert summary["exitCode"] == 0
    assert document["plan"]["actions"][0]["expectedExecutions"] == 3


def test_api_keys_never_reach_the_output() -> None:
    leak = ProjectProblem("p", "id", "error", "POST /x: HTTP 500: bad key ml_live_abcdef123")
    plan_file = replace(synthetic_plan_file(1), problems=(leak,))
    for fmt in ("text", "json", "markdown"):
        rendered = render_plan(plan_file, fmt)
        assert "ml_live_abcdef123" not in rendered
        assert "ml_live_***" in rendered


@pytest.mark.parametrize("limit", [40, 400, 1_000, 2_345, 10_000, GITHUB_LIMIT])
def test_markdown_masks_keys_and_fits_every_limit(limit: int) -> None:
    plan_file = synthetic_plan_file(400, problems=3)
    actions = list(plan_file.plan.actions)
    actions[0] = replace(actions[0], project="ml_live_abcdefghijklmnop", models=("ml_test_x",))
    plan = replace(plan_file.plan, actions=tuple(actions))
    hint = "plans/ml_live_0123456789abcdef.json"
    text = render_plan_markdown(replace(plan_file, plan=plan), limit=limit, full_plan_hint=hint)
    assert len(text) <= limit
    assert "abcdefghijklmnop" not in text
    assert "0123456789abcdef" not in text
    assert "ml_test_x" not in text
