"""``--changed-since REF`` against a temporary git repository with scripted commits."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner.errors import UsageError
from runner.manifest import load_manifest
from runner.manifest.model import Project, SourceRef, TriggerSpec
from runner.plan.changes import ChangeSet, changes_since, compare
from runner.store import SqliteStore

from subprocesses import ServedSandbox, start_served_sandbox

from .gitops_support import ORG, commit_all, init_repo, manifest, mlrun, project


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
    assert change.planned == frozenset({"eta/jobs/0"})


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


def test_labels_positions_set_names_and_the_order_of_models_are_not_changes() -> None:
    spec = TriggerSpec(("a", "b"), 1, model_set="core", source=SourceRef("f", 1, 1))
    one = Project("p", "id", None, {"team": "x"}, (spec,), source=SourceRef("f", 3, 3))
    moved = TriggerSpec(("b", "a"), 1, model_set="renamed", source=SourceRef("g", 9, 9))
    two = Project("p", "id", None, {"team": "y"}, (moved,), source=SourceRef("g", 8, 3))
    change = compare("r", [one], [two])
    assert change.unchanged == ("p",)
    assert not change.changes
    assert not change.planned


@pytest.mark.slow
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


@pytest.mark.slow
def test_apply_on_the_sandbox_triggers_only_the_changed_projects(repo: Path) -> None:
    (repo / "manifests" / "10-main.yaml").write_text(
        manifest(project("alpha", 1, count=2), project("beta", 2), project("delta", 4))
    )
    commit_all(repo, "edit")
    result = mlrun(
        "apply",
        "manifests",
        "--sandbox",
        "--time-scale",
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


@pytest.mark.slow
def test_changed_since_with_a_saved_plan_or_resume_is_refused(repo: Path) -> None:
    planned = mlrun("plan", "manifests", "--sandbox", "-o", "plan.json", cwd=repo)
    assert planned.returncode == 0, planned.stderr
    saved = mlrun("apply", "plan.json", "--sandbox", "--changed-since", "HEAD", cwd=repo)
    assert saved.returncode == 2
    assert "--changed-since goes to `plan`" in saved.stderr
    resumed = mlrun("apply", "--resume", "--changed-since", "HEAD", cwd=repo)
    assert resumed.returncode == 2
    assert "not with --resume" in resumed.stderr


# -- matched by id, compared per trigger, shown like terraform -----------------------------------


def _id(index: int) -> str:
    return f"3f1c2a4e-5b6d-4e7f-8a9b-{index:012d}"


def _spec(*models: str, count: int = 1) -> TriggerSpec:
    return TriggerSpec(models, count)


def _project(
    name: str,
    index: int,
    *jobs: TriggerSpec,
    cached: TriggerSpec | None = None,
    organisation: str = ORG,
) -> Project:
    return Project(name, _id(index), organisation, jobs=jobs, cached_jobs=cached)


def _lines(change: ChangeSet) -> list[str]:
    return [c.line() for c in change.changes]


def _runs(repo: Path) -> list[str]:
    """The run ids in the repository's ledger; none when no ledger was ever opened."""
    path = repo / ".mlrun" / "ledger.sqlite"
    if not path.exists():
        return []
    with SqliteStore.open(path) as ledger:
        return [run.run_id for run in ledger.runs()]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSandbox]:
    with start_served_sandbox(tmp_path / "sandbox", time_scale=600) as sandbox:
        yield sandbox


def _apply_served(repo: Path, served: ServedSandbox) -> subprocess.CompletedProcess[str]:
    return mlrun(
        "apply", "manifests", "--changed-since", "HEAD~1", "--no-progress", "--no-wait",
        cwd=repo, env=served.env(),
    )  # fmt: skip


@pytest.mark.slow
def test_a_rename_alone_is_no_change_and_apply_sends_nothing(
    repo: Path, served: ServedSandbox
) -> None:
    text = (repo / "manifests" / "10-main.yaml").read_text()
    (repo / "manifests" / "10-main.yaml").write_text(text.replace("name: beta", "name: beta-eu"))
    commit_all(repo, "rename beta")

    planned = mlrun("plan", "manifests", "--offline", "--changed-since", "HEAD~1", cwd=repo)
    assert planned.returncode == 0, planned.stderr
    assert "~ beta-eu renamed from beta (no trigger changed)" in planned.stdout
    assert "Plan: no changes since HEAD~1: nothing to apply" in planned.stdout
    assert "exit 0: no changes; apply would send nothing" in planned.stdout
    assert "Actions" not in planned.stdout

    applied = _apply_served(repo, served)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    assert "no changes since HEAD~1: nothing to apply" in applied.stderr
    truth = served.truth()
    assert truth["triggers"] == []
    assert truth["requests"] == 0  # not even a planning read
    assert _runs(repo) == []  # no empty run in the ledger


@pytest.mark.slow
def test_changing_one_trigger_sends_only_that_trigger(repo: Path, served: ServedSandbox) -> None:
    two = (
        "  - name: omega\n"
        f"    id: {_id(9)}\n"
        "    jobs:\n"
        "      - {models: core, executionCount: 1}\n"
        "      - {models: [sonar], executionCount: 1}\n"
        "    cachedJobs: {models: [openai]}\n"
    )
    (repo / "manifests" / "30-omega.yaml").write_text("version: 1\nprojects:\n" + two)
    commit_all(repo, "omega")
    changed = two.replace("[sonar], executionCount: 1", "[sonar], executionCount: 2")
    (repo / "manifests" / "30-omega.yaml").write_text("version: 1\nprojects:\n" + changed)
    commit_all(repo, "omega's second trigger twice")

    planned = mlrun(
        "plan", "manifests", "--offline", "--changed-since", "HEAD~1", "--format", "json", cwd=repo
    )
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    assert [a["key"] for a in document["plan"]["actions"]] == ["omega/jobs/1"]
    (change,) = document["plan"]["changedSince"]["changes"]
    assert change == {
        "op": "~",
        "kind": "executionCount",
        "project": "omega",
        "projectId": _id(9),
        "trigger": "jobs[1]",
        "before": 1,
        "after": 2,
        "line": "~ omega jobs[1].executionCount: 1 → 2",
    }

    applied = _apply_served(repo, served)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    (trigger,) = served.truth()["triggers"]
    assert (trigger["projectId"], trigger["aiModels"], trigger["executionCount"]) == (
        _id(9),
        ["sonar"],
        2,
    )
    assert len(_runs(repo)) == 1


@pytest.mark.slow
def test_a_model_added_to_a_trigger_is_shown_as_plus_model(repo: Path) -> None:
    text = (repo / "manifests" / "20-more.yaml").read_text()
    edited = text.replace("[sonar]", "[sonar, gemini-2.5-flash]")
    (repo / "manifests" / "20-more.yaml").write_text(edited)
    commit_all(repo, "epsilon asks gemini too")
    for fmt in ("text", "markdown"):
        result = mlrun(
            "plan", "manifests", "--offline", "--changed-since", "HEAD~1", "--format", fmt, cwd=repo
        )
        assert result.returncode == 0, result.stderr
        assert "+ epsilon jobs[0] model gemini-2.5-flash" in result.stdout
    assert "```diff\n+ epsilon jobs[0] model gemini-2.5-flash\n```" in result.stdout


@pytest.mark.slow
def test_projects_added_and_removed_are_shown(repo: Path) -> None:
    (repo / "manifests" / "10-main.yaml").write_text(
        manifest(project("alpha", 1), project("beta", 2), project("delta", 4), project("zeta", 6))
    )
    commit_all(repo, "gamma out, zeta in")
    result = mlrun("plan", "manifests", "--offline", "--changed-since", "HEAD~1", cwd=repo)
    assert result.returncode == 0, result.stderr
    block = result.stdout.split("\n\n")[0]
    assert block == "Changes since HEAD~1\n  + project zeta\n  - project gamma"
    assert "Changes: since HEAD~1, projects: 1 added, 0 changed, 4 unchanged, 1 removed" in (
        result.stdout
    )
    assert "unchanged since" not in result.stdout  # counted, not listed one by one


def test_a_rename_with_a_changed_trigger_plans_the_trigger_under_its_new_name() -> None:
    before = [_project("acme-europe", 1, _spec("gpt-5-mini", count=3))]
    after = [_project("acme-eu", 1, _spec("gpt-5-mini", count=4))]
    change = compare("main", before, after)
    assert _lines(change) == [
        "~ acme-eu renamed from acme-europe",
        "~ acme-eu jobs[0].executionCount: 3 → 4",
    ]
    assert change.planned == frozenset({"acme-eu/jobs/0"})
    assert change.changed == ("acme-eu",)
    assert change.renamed == ("acme-eu",)


def test_a_new_id_under_the_same_name_is_a_removal_and_an_addition() -> None:
    before = [_project("acme", 1, _spec("sonar"))]
    after = [_project("acme", 2, _spec("sonar"))]
    change = compare("main", before, after)
    assert _lines(change) == [f"+ project acme (id {_id(2)})", f"- project acme (id {_id(1)})"]
    assert (change.added, change.removed) == (("acme",), ("acme",))
    assert change.planned == frozenset({"acme/jobs/0"})


def test_removing_the_first_trigger_leaves_the_others_unchanged() -> None:
    first, second, third = _spec("sonar"), _spec("gpt-5-mini", count=2), _spec("o3")
    change = compare(
        "main", [_project("p", 1, first, second, third)], [_project("p", 1, second, third)]
    )
    assert _lines(change) == ["- p jobs[0]: sonar ×1"]
    assert not change.planned
    (skip,) = change.skips
    assert skip.reason == "only triggers removed since main; nothing to trigger"


def test_a_trigger_inserted_first_is_the_only_one_planned() -> None:
    old, new = _spec("sonar"), _spec("o3", "gpt-5-mini", count=2)
    change = compare("main", [_project("p", 1, old)], [_project("p", 1, new, old)])
    assert _lines(change) == ["+ p jobs[0]: o3, gpt-5-mini ×2"]
    assert change.planned == frozenset({"p/jobs/0"})


def test_models_added_and_removed_and_the_cached_trigger() -> None:
    before = [_project("p", 1, _spec("sonar", "o3"), cached=_spec("openai"))]
    after = [_project("p", 1, _spec("o3", "gemini-2.5-flash"), cached=_spec("openai", count=2))]
    change = compare("main", before, after)
    assert _lines(change) == [
        "+ p jobs[0] model gemini-2.5-flash",
        "- p jobs[0] model sonar",
        "~ p cachedJobs.executionCount: 1 → 2",
    ]
    assert change.planned == frozenset({"p/jobs/0", "p/cachedJobs"})
    dropped = compare("main", before, [_project("p", 1, _spec("sonar", "o3"))])
    assert _lines(dropped) == ["- p cachedJobs: openai ×1"]
    assert not dropped.planned


def test_another_organisation_replans_every_trigger_of_the_project() -> None:
    other = "fedcba98-7654-3210-fedc-ba9876543210"
    jobs = (_spec("sonar"), _spec("o3"))
    before = [_project("p", 1, *jobs, cached=_spec("openai"))]
    after = [_project("p", 1, *jobs, cached=_spec("openai"), organisation=other)]
    change = compare("main", before, after)
    assert _lines(change) == [f"~ p organisation: {ORG} → {other}"]
    assert change.planned == frozenset({"p/jobs/0", "p/jobs/1", "p/cachedJobs"})
