"""Saved plans: the file format, and the checks before a saved plan is applied."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runner.errors import ConfigError, PlanError, UsageError
from runner.exitcodes import ExitCode
from runner.manifest import load_manifest
from runner.plan import Plan, Selection, build_plan
from runner.plan.planfile import (
    DEFAULT_MAX_PLAN_AGE,
    FORMAT_VERSION,
    PlanFile,
    max_plan_age,
    read_plan_file,
    read_saved_plan,
    verify_saved_plan,
    write_plan_file,
)
from runner.report.plan import render_plan_json

from .plan_support import API, synthetic_plan_file, write_manifest

CREATED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def saved_from_manifest(manifest: Path, *, created: datetime = CREATED) -> PlanFile:
    plan = build_plan(load_manifest([manifest], env={}).manifest)
    counted = plan.with_query_counts({"acme": 5, "globex": 3})
    return PlanFile(counted, created, (str(manifest),), API)


def test_a_saved_plan_round_trips_exactly(tmp_path: Path) -> None:
    saved = replace(synthetic_plan_file(30, problems=2), created_at=CREATED)
    path = tmp_path / "plan.json"
    write_plan_file(path, saved)
    document = json.loads(path.read_text())
    assert document["kind"] == "mlrun-plan"
    assert document["formatVersion"] == FORMAT_VERSION
    assert document["createdAt"] == "2026-05-01T12:00:00Z"
    assert document["manifestDigest"] == saved.plan.manifest_digest
    assert {"manifestFiles", "baseUrl", "plan", "problems"} <= document.keys()
    again = read_plan_file(path)
    assert again == saved
    assert again.plan.total_expected == saved.plan.total_expected
    assert again.exit_code() == ExitCode.ACTION_FAILED


def test_the_json_rendering_is_itself_a_saved_plan(tmp_path: Path) -> None:
    saved = replace(synthetic_plan_file(3), created_at=CREATED)
    path = tmp_path / "shown.json"
    path.write_text(render_plan_json(saved))
    assert read_plan_file(path) == saved
    summary = json.loads(path.read_text())["summary"]
    assert summary["budget"]["executions"] == saved.plan.total_expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"formatVersion": 2}, "formatVersion 2 is not supported"),
        ({"formatVersion": None}, "formatVersion None is not supported"),
        ({"kind": "terraform-plan"}, "not an mlrun plan"),
        ({"createdAt": "2026-05-01T12:00:00"}, "has no time zone"),
        ({"createdAt": "yesterday"}, "not a valid mlrun plan"),
        ({"manifestDigest": "0" * 64}, "does not match"),
        ({"plan": {"actions": [{"key": "x"}]}}, "not a valid mlrun plan (missing"),
    ],
)
def test_a_bad_plan_file_is_a_plan_error(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    document = {**replace(synthetic_plan_file(2), created_at=CREATED).to_json(), **change}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        read_plan_file(path)


def test_unreadable_and_invalid_json_are_plan_errors(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read the plan"):
        read_plan_file(tmp_path / "missing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(PlanError, match="invalid JSON"):
        read_plan_file(garbage)


def test_only_a_single_json_plan_is_taken_for_a_saved_plan(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    other_json = tmp_path / "values.json"
    other_json.write_text('{"version": 1}')
    plan_path = tmp_path / "plan.json"
    write_plan_file(plan_path, saved_from_manifest(manifest))
    assert read_saved_plan([str(manifest)]) is None
    assert read_saved_plan([str(tmp_path)]) is None
    assert read_saved_plan([str(other_json)]) is None
    assert read_saved_plan([str(tmp_path / "absent.json")]) is None
    assert read_saved_plan([str(plan_path), str(manifest)]) is None
    saved = read_saved_plan([str(plan_path)])
    assert saved is not None
    assert saved.source == str(plan_path)
    future = json.loads(plan_path.read_text()) | {"formatVersion": 9}
    plan_path.write_text(json.dumps(future))
    with pytest.raises(PlanError, match="formatVersion 9"):
        read_saved_plan([str(plan_path)])


def test_a_fresh_unchanged_plan_is_applied_as_saved(tmp_path: Path) -> None:
    saved = saved_from_manifest(write_manifest(tmp_path, budget=1000))
    plan, settings = verify_saved_plan(
        saved,
        selection=Selection(),
        base_url=API + "/",
        env={},
        now=CREATED + timedelta(hours=23),
    )
    assert plan == saved.plan
    assert [a.queries for a in plan.actions] == [5, 5, 3]
    assert settings.max_executions == 1000


def test_a_stale_plan_is_refused_with_its_age_and_the_maximum(tmp_path: Path) -> None:
    saved = saved_from_manifest(write_manifest(tmp_path))
    later = CREATED + timedelta(hours=25)
    with pytest.raises(PlanError, match=r"stale: made 25h 00m ago .* maximum age is 24h 00m"):
        verify_saved_plan(saved, selection=Selection(), base_url=API, env={}, now=later)
    plan, _ = verify_saved_plan(
        saved, selection=Selection(), base_url=API, env={"MLRUN_MAX_PLAN_AGE": "93600"}, now=later
    )
    assert plan == saved.plan
    with pytest.raises(PlanError, match="stale: made 2m 00s ago"):
        verify_saved_plan(
            saved,
            selection=Selection(),
            base_url=API,
            env={},
            max_age=60,
            now=CREATED + timedelta(minutes=2),
        )


def test_a_changed_manifest_is_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    saved = saved_from_manifest(manifest)
    manifest.write_text(manifest.read_text().replace("executionCount: 3", "executionCount: 4"))
    with pytest.raises(PlanError, match=r"the manifest \(.*manifest.yaml\) changed since the plan"):
        verify_saved_plan(saved, selection=Selection(), base_url=API, env={}, now=CREATED)


def test_formatting_and_comments_do_not_count_as_a_change(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    saved = saved_from_manifest(manifest)
    manifest.write_text("# reviewed\n" + manifest.read_text() + "\n\n")
    plan, _ = verify_saved_plan(saved, selection=Selection(), base_url=API, env={}, now=CREATED)
    assert plan == saved.plan


def test_a_plan_for_another_api_or_a_selection_is_refused(tmp_path: Path) -> None:
    saved = saved_from_manifest(write_manifest(tmp_path))
    with pytest.raises(PlanError, match=r"made against https://api\.mentionlab\.io, not https://x"):
        verify_saved_plan(saved, selection=Selection(), base_url="https://x", env={}, now=CREATED)
    with pytest.raises(UsageError, match="runs exactly as planned"):
        verify_saved_plan(
            saved, selection=Selection(include=("acme",)), base_url=API, env={}, now=CREATED
        )


@pytest.mark.parametrize("raw", ["0", "-5", "soon", "nan"])
def test_a_bad_max_plan_age_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="MLRUN_MAX_PLAN_AGE"):
        max_plan_age({"MLRUN_MAX_PLAN_AGE": raw})
    assert max_plan_age({}) == DEFAULT_MAX_PLAN_AGE
    assert max_plan_age({"MLRUN_MAX_PLAN_AGE": " 3600 "}) == 3600


def test_an_unwritable_destination_is_a_plan_error(tmp_path: Path) -> None:
    saved = PlanFile(Plan((), "d" * 64), CREATED, (), None)
    with pytest.raises(PlanError, match="cannot write the plan"):
        write_plan_file(tmp_path / "no-such-dir" / "plan.json", saved)


def test_a_plans_totals_are_its_own_after_query_counts_change() -> None:
    plan = synthetic_plan_file(3, offline=True).plan
    assert plan.total_expected is None
    assert plan.budget().total is None
    counted = plan.with_query_counts({"project-00000": 2, "project-00001": 1, "project-00002": 4})
    assert counted.total_expected == sum(a.expected_executions or 0 for a in counted.actions)
    assert counted.budget().total == counted.total_expected
    assert counted.per_project() == {"project-00000": 10, "project-00001": 10, "project-00002": 60}
    counted.per_project().clear()  # a copy: the plan's own totals cannot be changed
    assert len(counted.per_project()) == 3
    assert plan.total_expected is None
