"""``--changed-since REF`` against a temporary git repository with scripted commits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner.changes import changes_since, compare, trigger_fingerprint
from runner.errors import UsageError
from runner.manifest import load_manifest
from runner.manifest.model import Project, SourceRef, TriggerSpec

from .gitops_support import commit_all, init_repo, manifest, mlrun, project


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: alpha, beta, gamma, delta in manifests/ (one file) and epsilon in a second file."""
    repo = init_repo(tmp_path / "repo")
    (repo / "manifests").mkdir()
    (repo / "manifests" / "10-main.yaml").write_text(
        manifest(
            project("alpha", 1),
            project("beta", 2),
            project("gamma", 3, models="[sonar]"),
            project("delta", 4),
        )
    )
    (repo / "manifests" / "20-more.yaml").write_text(
        "version: 1\nprojects:\n" + project("epsilon", 5, models="[sonar]")
    )
    commit_all(repo, "base")
    return repo


def _changes(repo: Path, ref: str = "HEAD~1") -> dict[str, tuple[str, ...]]:
    paths = [str(repo / "manifests")]
    loaded = load_manifest(paths)
    change = changes_since(ref, loaded.manifest, paths)
    return {
        "added": change.added,
        "changed": change.changed,
        "removed": change.removed,
        "unchanged": change.unchanged,
    }


def test_scripted_commits_give_added_changed_removed_and_unchanged(repo: Path) -> None:
    # alpha: execution count changed; beta: labels only; gamma: removed; delta: moved to another
    # file unchanged; zeta: added; epsilon: uses the `core` set now (was [sonar]).
    (repo / "manifests" / "10-main.yaml").write_text(
        manifest(
            project("alpha", 1, count=2),
            project("beta", 2, labels="{team: renamed, extra: more}"),
            project("zeta", 6),
        )
    )
    (repo / "manifests" / "20-more.yaml").write_text(
        "version: 1\nprojects:\n" + project("delta", 4) + project("epsilon", 5)
    )
    commit_all(repo, "edit")
    assert _changes(repo) == {
        "added": ("zeta",),
        "changed": ("alpha", "epsilon"),
        "removed": ("gamma",),
        "unchanged": ("beta", "delta"),
    }


def test_editing_a_model_set_changes_every_project_using_it(repo: Path) -> None:
    text = (repo / "manifests" / "10-main.yaml").read_text()
    core = "[gpt-5-mini, claude-haiku-4-5]"
    (repo / "manifests" / "10-main.yaml").write_text(text.replace(core, "[gpt-5-mini]"))
    commit_all(repo, "narrow core")
    changes = _changes(repo)
    assert changes["changed"] == ("alpha", "beta", "delta")  # gamma and epsilon use [sonar]
    assert changes["unchanged"] == ("gamma", "epsilon")


def test_a_file_absent_at_the_ref_makes_its_projects_added(repo: Path) -> None:
    (repo / "manifests" / "30-new.yaml").write_text(
        "version: 1\nprojects:\n" + project("eta", 7, models="[sonar]")
    )
    commit_all(repo, "new file")
    changes = _changes(repo)
    assert changes["added"] == ("eta",)
    assert not changes["changed"]
    assert not changes["removed"]


def test_a_manifest_file_given_by_name_and_absent_at_the_ref(repo: Path) -> None:
    new = repo / "manifests" / "30-new.yaml"
    new.write_text(
        manifest(project("eta", 7))
        .replace("modelSets:\n  core:", "modelSets:\n  other:")
        .replace("models: core", "models: other")
    )
    commit_all(repo, "standalone file")
    loaded = load_manifest([str(new)])
    change = changes_since("HEAD~1", loaded.manifest, [str(new)])
    assert change.added == ("eta",)
    assert change.selected == frozenset({"eta"})


def test_nothing_changed_selects_nothing(repo: Path) -> None:
    commit_all(repo, "empty")
    changes = _changes(repo)
    assert not changes["added"]
    assert not changes["changed"]
    assert len(changes["unchanged"]) == 5


def test_an_unknown_ref_is_a_usage_error_with_a_fetch_hint(repo: Path) -> None:
    with pytest.raises(UsageError, match=r"no such commit.*fetch-depth: 0"):
        _changes(repo, "origin/nope")


def test_a_manifest_that_does_not_load_at_the_ref_stops_the_command(repo: Path) -> None:
    (repo / "manifests" / "20-more.yaml").write_text("version: 1\nprojects: 3\n")
    commit_all(repo, "broken")
    (repo / "manifests" / "20-more.yaml").write_text(
        "version: 1\nprojects:\n" + project("epsilon", 5, models="[sonar]")
    )
    commit_all(repo, "fixed")
    with pytest.raises(UsageError, match=r"at HEAD~1 does not load \(HEAD~1:manifests/20-more"):
        _changes(repo)


def test_outside_a_git_repository_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(manifest(project("alpha", 1)))
    loaded = load_manifest([str(tmp_path / "m.yaml")])
    with pytest.raises(UsageError, match="git"):
        changes_since("HEAD", loaded.manifest, [str(tmp_path / "m.yaml")])


def test_the_fingerprint_ignores_labels_and_positions() -> None:
    spec = TriggerSpec(("a",), 1, model_set="core", source=SourceRef("f", 1, 1))
    one = Project("p", "id", None, {"team": "x"}, (spec,), source=SourceRef("f", 3, 3))
    moved = TriggerSpec(("a",), 1, model_set="renamed", source=SourceRef("g", 9, 9))
    two = Project("p", "id", None, {"team": "y"}, (moved,), source=SourceRef("g", 8, 3))
    assert trigger_fingerprint(one) == trigger_fingerprint(two)
    assert compare("r", [one], [two]).unchanged == ("p",)


def test_plan_lists_removed_projects_and_plans_only_changed_ones(repo: Path) -> None:
    (repo / "manifests" / "10-main.yaml").write_text(
        manifest(project("alpha", 1, count=3), project("beta", 2), project("delta", 4))
    )
    commit_all(repo, "edit")
    result = mlrun(
        "plan",
        "manifests",
        "--offline",
        "--changed-since",
        "HEAD~1",
        "--format",
        "json",
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {a["project"] for a in document["plan"]["actions"]} == {"alpha"}
    skipped = {s["project"]: s["reason"] for s in document["plan"]["skipped"]}
    assert skipped["gamma"] == "removed since HEAD~1; not triggered"
    assert skipped["beta"] == "unchanged since HEAD~1"
    assert "1 changed, 3 unchanged, 1 removed (not triggered: gamma)" in result.stderr


def test_apply_on_the_sandbox_triggers_only_the_changed_projects(repo: Path) -> None:
    (repo / "manifests" / "10-main.yaml").write_text(
        manifest(project("alpha", 1, count=2), project("beta", 2), project("delta", 4))
    )
    commit_all(repo, "edit")
    result = mlrun(
        "apply",
        "manifests",
        "--sandbox",
        "--sandbox-time-scale",
        "600",
        "--changed-since",
        "HEAD~1",
        "--no-progress",
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    (report_file,) = (repo / "mlrun-reports").glob("*/report.json")
    report = json.loads(report_file.read_text())
    assert [a["key"] for a in report["actions"]] == ["alpha/jobs/0"]
    left_out = {s["project"]: s["reason"] for s in report["run"]["skippedProjects"]}
    assert left_out["gamma"] == "removed since HEAD~1; not triggered"
    assert "1 removed (not triggered: gamma)" in result.stderr


def test_changed_since_with_a_saved_plan_or_resume_is_refused(repo: Path) -> None:
    planned = mlrun("plan", "manifests", "--sandbox", "-o", "plan.json", cwd=repo)
    assert planned.returncode == 0, planned.stderr
    saved = mlrun("apply", "plan.json", "--sandbox", "--changed-since", "HEAD", cwd=repo)
    assert saved.returncode == 2
    assert "--changed-since goes to `plan`" in saved.stderr
    resumed = mlrun("apply", "--resume", "--changed-since", "HEAD", cwd=repo)
    assert resumed.returncode == 2
    assert "not with --resume" in resumed.stderr
