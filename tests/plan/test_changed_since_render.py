"""A ``--changed-since`` plan rendered: its changes first, bounded; unchanged projects counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from runner.manifest.model import Manifest, Project, TriggerSpec
from runner.plan import Plan, Selection, build_plan
from runner.plan.changes import compare
from runner.plan.planfile import PlanFile
from runner.report.plan import (
    SHOWN_CHANGES,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
)

ORG = "01234567-89ab-cdef-0123-456789abcdef"
GITHUB_LIMIT = 65_535


def _projects(count: int, *, executions: int = 1, prefix: str = "project") -> list[Project]:
    return [
        Project(
            f"{prefix}-{index:05d}",
            f"00000000-0000-4000-8000-{index:012d}",
            ORG,
            jobs=(TriggerSpec(("gpt-5-mini", "sonar"), executions),),
        )
        for index in range(count)
    ]


def _plan_file(
    before: list[Project], after: list[Project], selection: Selection | None = None
) -> PlanFile:
    plan = compare("main", before, after).narrow(
        build_plan(Manifest(1, tuple(after), digest="ab" * 32), selection)
    )
    return PlanFile(plan, datetime.now(UTC), ("manifests/",), None, offline=True)


def test_a_thousand_changes_show_the_first_and_count_the_rest() -> None:
    plan_file = _plan_file(_projects(1_000), _projects(1_000, executions=2))
    text = render_plan_text(plan_file)
    changes = text.split("\n\n")[0].splitlines()
    assert changes[0] == "Changes since main"
    assert changes[1] == "  ~ project-00000 jobs[0].executionCount: 1 → 2"
    assert len(changes) == 1 + SHOWN_CHANGES + 1
    more = 1_000 - SHOWN_CHANGES
    assert changes[-1] == f"  … and {more:,} more (`mlrun plan --format json` lists them all)"
    markdown = render_plan_markdown(plan_file, full_plan_hint="plan.json")
    assert len(markdown) < GITHUB_LIMIT
    assert f"_… and {more:,} more changes; the full plan is in `plan.json`_" in markdown
    document = json.loads(render_plan_json(plan_file))
    assert len(document["plan"]["changedSince"]["changes"]) == 1_000


def test_unchanged_projects_are_counted_not_listed() -> None:
    before = _projects(1_000)
    after = [*_projects(1_000), *_projects(1, prefix="fresh")]
    after[-1] = Project("fresh", "00000000-0000-4000-9000-000000000001", ORG, jobs=after[0].jobs)
    plan_file = _plan_file(before, after, Selection(exclude=("project-00001",)))
    text = render_plan_text(plan_file)
    assert "unchanged since" not in text
    assert "Changes: since main, projects: 1 added, 0 changed, 1,000 unchanged, 0 removed" in text
    assert "  project-00001  not selected" in text  # other skips are listed as before
    markdown = render_plan_markdown(plan_file)
    assert "unchanged since" not in markdown
    assert "| Changes | since main, projects: 1 added, 0 changed, 1,000 unchanged" in markdown
    assert "```diff\n+ project fresh\n```" in markdown
    skipped = json.loads(render_plan_json(plan_file))["plan"]["skipped"]
    assert len(skipped) == 1_000  # 999 unchanged, and the one not selected (said once)


def test_no_changes_is_said_in_every_format() -> None:
    plan_file = _plan_file(_projects(3), _projects(3))
    assert "Plan: no changes since main: nothing to apply" in render_plan_text(plan_file)
    assert "mlrun plan: no changes since main: nothing to apply" in render_plan_markdown(plan_file)
    changed_since = json.loads(render_plan_json(plan_file))["plan"]["changedSince"]
    assert changed_since == {
        "ref": "main",
        "projects": {"added": 0, "changed": 0, "unchanged": 3, "removed": 0, "renamed": 0},
        "changes": [],
    }


def test_a_saved_plan_keeps_its_changes() -> None:
    before = _projects(2)
    after = [_projects(2)[0], Project("renamed", before[1].id, ORG, jobs=before[1].jobs)]
    plan_file = _plan_file(before, after)
    saved = PlanFile.from_json(json.loads(render_plan_json(plan_file)))
    assert saved.plan.changes == plan_file.plan.changes
    assert Plan.from_json(plan_file.plan.to_json()) == plan_file.plan
    assert "~ renamed renamed from project-00001 (no trigger changed)" in render_plan_text(saved)
