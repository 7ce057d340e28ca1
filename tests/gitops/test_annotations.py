"""GitHub annotations and the step summary for plan and apply problems."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from runner.cli.github import (
    MAX_PER_LEVEL,
    Annotation,
    GitHubOutput,
    Sources,
    annotations_wanted,
    append_step_summary,
    capped,
    escape_data,
    escape_property,
    load_sources,
    report_annotations,
)
from runner.errors import ReportError
from runner.manifest.model import SourceRef
from runner.plan import Plan
from runner.plan.planfile import PlanFile
from runner.plan.remote import ProjectProblem
from runner.report.model import (
    ActionResult,
    Asked,
    Difference,
    DifferenceKind,
    Done,
    Outcome,
    Report,
    RunInfo,
    Tally,
    Totals,
)

from .gitops_support import SECRET, manifest, mlrun, project


def _result(key: str, outcome: Outcome, reason: str = "it broke") -> ActionResult:
    name = key.split("/", maxsplit=1)[0]
    asked = Asked(key, name, f"id-{name}", "jobs", ("gpt-5-mini",), 1, 2, 2)
    done = Done(state="failed", job_ids=("job-1",) if outcome != Outcome.FAILED else ())
    differences = (Difference(DifferenceKind.ACTION_FAILED, reason),)
    return ActionResult(asked, done, outcome, differences if outcome != Outcome.OK else ())


def _report(*actions: ActionResult, stop_reason: str | None = None) -> Report:
    run = RunInfo(
        run_id="r1",
        status="finished",
        manifest_digest="d",
        mlrun_version="0",
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:01:00Z",
        duration_seconds=60.0,
        generated_at="2026-01-01T00:01:00Z",
        base_url="https://api.mentionlab.io",
        stop_reason=stop_reason,
    )
    return Report(run, actions, Totals(Tally("run"), (), (), models_exact=True))


SOURCES = Sources(
    projects={"acme": SourceRef("manifests/m.yaml", 10, 5)},
    actions={"acme/jobs/0": SourceRef("manifests/m.yaml", 14, 9)},
    files=("manifests/m.yaml",),
)


def test_escaping_follows_the_actions_toolkit() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_an_annotation_names_the_file_line_and_column_escaped() -> None:
    line = Annotation(
        "error", "mlrun apply: x, y", "two\nlines: 100%", SourceRef("dir,1/m:a.yaml", 3, 7)
    ).render()
    assert line == (
        "::error file=dir%2C1/m%3Aa.yaml,line=3,col=7,title=mlrun apply%3A x%2C y"
        "::two%0Alines: 100%25"
    )


def test_paths_are_made_relative_to_the_workspace(tmp_path: Path) -> None:
    source = SourceRef(str(tmp_path / "manifests" / "m.yaml"), 1, 1)
    line = Annotation("warning", "t", "m", source).render({"GITHUB_WORKSPACE": str(tmp_path)})
    assert line.startswith("::warning file=manifests/m.yaml,line=1,col=1,")


def test_secrets_never_appear_in_annotations() -> None:
    line = Annotation("error", f"title {SECRET}", f"key {SECRET} leaked").render()
    assert SECRET not in line
    assert "ml_live_***" in line


def test_each_problem_outcome_becomes_an_annotation_at_its_trigger() -> None:
    report = _report(
        _result("acme/jobs/0", Outcome.FAILED, "HTTP 422: bad model"),
        _result("other/jobs/0", Outcome.UNKNOWN),
        _result("acme/cachedJobs", Outcome.PARTIAL),
        _result("third/jobs/0", Outcome.TIMEOUT),
        _result("fine/jobs/0", Outcome.OK),
    )
    found = report_annotations(report, SOURCES)
    assert [(a.level, a.title) for a in found] == [
        ("error", "mlrun apply: acme/jobs/0 FAILED"),
        ("error", "mlrun apply: other/jobs/0 UNKNOWN"),
        ("warning", "mlrun apply: acme/cachedJobs PARTIAL"),
        ("warning", "mlrun apply: third/jobs/0 TIMEOUT"),
    ]
    assert found[0].source == SourceRef("manifests/m.yaml", 14, 9)  # the trigger's own entry
    assert found[2].source == SourceRef("manifests/m.yaml", 10, 5)  # falls back to the project
    assert found[1].source is None  # unknown position: an annotation without a file
    assert "HTTP 422: bad model" in found[0].message
    assert "may or may not have created a job" in found[1].message


def test_a_run_the_api_refused_is_one_error() -> None:
    report = _report(stop_reason="AuthError: HTTP 401 invalid key")
    (only,) = report_annotations(report, SOURCES)
    assert only.level == "error"
    assert "refused the run" in only.title


def test_at_most_ten_per_level_the_last_counting_the_rest() -> None:
    many = [Annotation("error", f"e{i}", "m") for i in range(25)]
    many += [Annotation("warning", f"w{i}", "m") for i in range(3)]
    kept = capped(many)
    errors = [a for a in kept if a.level == "error"]
    assert len(errors) == MAX_PER_LEVEL
    assert errors[-1].title == "mlrun: 16 more errors"
    assert len([a for a in kept if a.level == "warning"]) == 3


def test_annotations_auto_detect_github_actions() -> None:
    assert annotations_wanted("auto", {"GITHUB_ACTIONS": "true"})
    assert not annotations_wanted("auto", {})
    assert annotations_wanted("github", {})
    assert not annotations_wanted("none", {"GITHUB_ACTIONS": "true"})


def test_sources_come_from_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(manifest(project("alpha", 1), project("beta", 2)))
    sources = load_sources([str(path)])
    assert sources.projects["beta"].line > sources.projects["alpha"].line
    assert sources.actions["beta/jobs/0"].line > sources.projects["beta"].line
    assert load_sources([str(tmp_path / "missing.yaml")]).projects == {}


def test_the_step_summary_is_appended_not_overwritten(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    assert append_step_summary(f"# run\nkey {SECRET}", env) == summary
    assert summary.read_text() == "earlier step\n# run\nkey ml_live_***\n"
    assert append_step_summary("x", {}) is None
    with pytest.raises(ReportError):
        append_step_summary("x", {"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such")})


def test_plan_problems_and_a_refusal_are_annotated_at_the_project(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(manifest(project("alpha", 1), project("beta", 2)))
    problem = ProjectProblem("beta", "id-beta", "not_found", "does not exist for this key")
    plan_file = PlanFile(
        plan=Plan(actions=(), manifest_digest="d"),
        created_at=datetime.now(UTC),
        manifest_files=(str(path),),
        base_url=None,
        problems=(problem,),
    )
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    lines = GitHubOutput.from_options("auto", step_summary=True, env=env).after_plan(plan_file)
    (line,) = lines
    beta = load_sources([str(path)]).projects["beta"]
    assert line.startswith(f"::error file={escape_property(str(path))},line={beta.line},")
    assert "project beta unreachable" in line
    assert "mlrun plan" in summary.read_text()


def test_a_summary_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    output = GitHubOutput(
        annotate=False, summarise=True, env={"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "x")}
    )
    lines = output.after_refusal("too big", [], "apply")
    assert len(lines) == 1
    assert lines[0].startswith("warning: cannot append to GITHUB_STEP_SUMMARY")


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
def test_apply_over_budget_annotates_and_summarises(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(manifest(project("alpha", 1), budget="1"))
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = mlrun("apply", "m.yaml", "--sandbox", cwd=tmp_path, env=env)
    assert result.returncode == 4, result.stderr
    assert "::error file=m.yaml,title=mlrun apply%3A refused by the budget::" in result.stderr
    assert "refused by the budget" in summary.read_text()


@pytest.mark.slow
def test_plan_over_budget_annotates_on_stderr_and_keeps_stdout_markdown(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(manifest(project("alpha", 1), budget="1"))
    env = {"GITHUB_ACTIONS": "true"}
    result = mlrun("plan", "m.yaml", "--sandbox", "--format", "markdown", cwd=tmp_path, env=env)
    assert result.returncode == 4
    assert result.stdout.startswith("### ⛔ mlrun plan")
    assert "::" not in result.stdout
    assert "::error file=m.yaml,title=mlrun plan%3A refused by the budget::" in result.stderr


@pytest.mark.slow
def test_apply_writes_the_run_markdown_to_the_step_summary_without_the_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.yaml").write_text(manifest(project("alpha", 1)))
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary), "MENTIONLAB_API_KEY": SECRET}
    result = mlrun(
        "apply",
        "m.yaml",
        "--sandbox",
        "--time-scale",
        "600",
        "--no-progress",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("### ✅ mlrun run")
    assert SECRET not in text + result.stdout + result.stderr
    assert "::" not in result.stderr  # not in GitHub Actions: no annotations
    quiet = mlrun(
        "apply",
        "m.yaml",
        "--sandbox",
        "--time-scale",
        "600",
        "--no-step-summary",
        "--no-progress",
        cwd=tmp_path,
        env=env,
    )
    assert quiet.returncode == 0
    assert summary.read_text() == text
