"""Tried as a new user would: a fresh repository, the example workflows' steps run locally in order.

Each workflow step that uses mlrun's action runs the action's own script (from ``action.yml``)
with the step's inputs, as the runner would: ``bash -e -o pipefail``, ``GITHUB_OUTPUT``,
``GITHUB_STEP_SUMMARY`` and ``GITHUB_ACTIONS=true``, but with ``sandbox: "true"``: no account.
The sticky-comment step's script runs under Node.js against a fake GitHub API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from .gitops_support import ROOT, commit_all, git, init_repo, manifest, project

ACTION_REF = "mentionlab/mlrun@v1"
EXAMPLES = ROOT / "examples" / "ci" / "github"
COMMENT_LIMIT = 65_536

FAKE_GITHUB = """
const fs = require("fs");
const [scriptFile, stateFile] = process.argv.slice(2);
const comments = JSON.parse(fs.readFileSync(stateFile, "utf8"));
const github = {
  paginate: async () => comments,
  rest: { issues: {
    listComments: "listComments",
    updateComment: async ({ comment_id, body }) => {
      comments.find((c) => c.id === comment_id).body = body;
    },
    createComment: async ({ body }) => {
      comments.push({ id: comments.length + 1, user: { type: "Bot" }, body });
    },
  } },
};
const context = { repo: { owner: "o", repo: "r" }, issue: { number: 7 } };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const run = new AsyncFunction("require", "github", "context", fs.readFileSync(scriptFile, "utf8"));
run(require, github, context).then(() => fs.writeFileSync(stateFile, JSON.stringify(comments)));
"""


class Runner:
    """The parts of a GitHub runner the action needs, in a local directory."""

    def __init__(self, workspace: Path, tmp: Path) -> None:
        self.workspace = workspace
        self.tmp = tmp
        self.summary = tmp / "step-summary.md"
        self.summary.touch()
        action = yaml.safe_load((ROOT / "action.yml").read_text())
        self.defaults = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
        self.script = next(s for s in action["runs"]["steps"] if s.get("id") == "run")["run"]

    def env(self, output: Path) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("MENTIONLAB_", "MLRUN_"))}
        bin_dir = str(Path(sys.executable).parent)  # where `mlrun` is installed
        return {
            **keep,
            "PATH": f"{bin_dir}{os.pathsep}{keep.get('PATH', '')}",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
        }

    def uses_action(
        self, step: dict[str, Any], expressions: dict[str, str]
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        """Run the action's script with the step's inputs; the result and the step's outputs."""
        inputs = {**self.defaults, **step.get("with", {}), "sandbox": "true"}
        inputs = {k: substitute(str(v), expressions) for k, v in inputs.items()}
        output = self.tmp / f"output-{len(list(self.tmp.glob('output-*')))}"
        output.touch()
        env = self.env(output) | {
            "MLRUN_COMMAND": inputs["command"],
            "MLRUN_PATHS": inputs["paths"],
            "MLRUN_ARGS": inputs["args"],
            "MLRUN_SANDBOX": inputs["sandbox"],
            "MLRUN_REPORT_DIR": inputs["report-dir"],
        }
        script = self.tmp / "step.sh"
        script.write_text(self.script)
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
        return result, outputs


def substitute(text: str, expressions: dict[str, str]) -> str:
    """Replace the workflow expressions this test knows; fail on any other."""
    for expression, value in expressions.items():
        text = text.replace(expression, value)
    assert "${{" not in text, f"unhandled expression in {text!r}"
    return text


def action_steps(workflow: str, job: str) -> list[dict[str, Any]]:
    document = yaml.safe_load((EXAMPLES / workflow).read_text())
    return list(document["jobs"][job]["steps"])


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """origin: main with three projects; the clone: a branch that changes one and breaks it."""
    origin = init_repo(tmp_path / "origin")
    (origin / "manifests").mkdir()
    (origin / "manifests" / "projects.yaml").write_text(
        manifest(project("alpha", 1), project("beta", 2), project("gamma", 3))
    )
    commit_all(origin, "three projects")
    git(tmp_path, "clone", "-q", str(origin), "work")
    work = tmp_path / "work"
    git(work, "checkout", "-q", "-b", "more-beta")
    return work


@pytest.mark.slow
def test_the_example_workflows_locally_validate_plan_comment_apply(
    workspace: Path, tmp_path: Path
) -> None:
    (tmp_path / "runner").mkdir()
    runner = Runner(workspace, tmp_path / "runner")
    expressions = {"${{ github.base_ref }}": "main"}
    validate_step, plan_step = [
        s for s in action_steps("mlrun-pull-request.yml", "plan") if s.get("uses") == ACTION_REF
    ]
    manifest_file = workspace / "manifests" / "projects.yaml"

    # 1. The user's first try has a typo in a model id: validate annotates it on the diff.
    manifest_file.write_text(
        manifest(
            project("alpha", 1),
            project("beta", 2, models="[gpt-5-mni]", count=3),
            project("gamma", 3),
        )
    )
    commit_all(workspace, "beta: three runs")
    result, _ = runner.uses_action(validate_step, expressions)
    assert result.returncode == 2
    annotation = next(line for line in result.stdout.splitlines() if line.startswith("::error"))
    assert re.match(r"::error file=manifests/projects\.yaml,line=\d+,col=\d+,title=", annotation)
    assert "gpt-5-mni" in annotation

    # 2. Fixed: validate passes; the plan covers only what changed against main.
    manifest_file.write_text(
        manifest(project("alpha", 1), project("beta", 2, count=3), project("gamma", 3))
    )
    commit_all(workspace, "beta: fix the model id")
    result, _ = runner.uses_action(validate_step, expressions)
    assert result.returncode == 0, result.stdout + result.stderr
    result, outputs = runner.uses_action(plan_step, expressions)
    assert result.returncode == 0, result.stderr
    assert outputs["exit-code"] == "0"
    plan_md = workspace / outputs["plan-markdown"]
    comment = plan_md.read_text()
    assert comment.startswith("### ✅ mlrun plan: 1 action in 1 project")
    assert "| beta |" in comment
    assert "```diff\n~ beta jobs[0].executionCount: 1 → 3\n```" in comment
    assert "| Changes | since origin/main, projects: 0 added, 1 changed, 2 unchanged" in comment
    assert len(comment) < COMMENT_LIMIT
    assert MarkdownIt("commonmark").enable("table").parse(comment)  # parses as GitHub would
    assert (workspace / "mlrun-reports" / "plan.json").exists()
    assert "mlrun plan" in runner.summary.read_text()

    # 3. The sticky comment: created once, then updated in place.
    comment_step = next(
        s
        for s in action_steps("mlrun-pull-request.yml", "plan")
        if "github-script" in s.get("uses", "")
    )
    comments = _sticky_comment(comment_step, plan_md, tmp_path, runs=2)
    mine = [c for c in comments if c["body"].startswith("<!-- mlrun-plan -->")]
    assert len(mine) == 1
    assert "| beta |" in mine[0]["body"]
    assert comments[0]["body"] == "a reviewer's comment"

    # 4. Merged: the apply workflow applies what the merge changed, on the sandbox.
    before = git(workspace, "rev-parse", "origin/main").strip()
    on_push = "github.event_name == 'push' && format('--changed-since {0}', github.event.before)"
    expressions["${{ " + on_push + " || '' }}"] = f"--changed-since {before}"
    expressions["${{ github.run_id }}"] = "1"
    expressions["${{ secrets.MLRUN_STATE }}"] = ""  # no database: the state in .mlrun/
    (apply_step,) = [
        s for s in action_steps("mlrun-apply.yml", "apply") if s.get("uses") == ACTION_REF
    ]
    result, outputs = runner.uses_action(apply_step, expressions)
    assert result.returncode == 0, result.stderr + result.stdout
    assert outputs["exit-code"] == "0"
    (report_file,) = (workspace / "mlrun-reports").glob("*/report.json")
    report = json.loads(report_file.read_text())
    assert [a["key"] for a in report["actions"]] == ["beta/jobs/0"]
    assert {p.name for p in report_file.parent.iterdir()} >= {"report.md", "junit.xml"}
    assert "### ✅ mlrun run" in runner.summary.read_text()


def _sticky_comment(
    step: dict[str, Any], plan_md: Path, tmp_path: Path, *, runs: int
) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the github-script step cannot be tried")
    script = tmp_path / "comment.js"
    script.write_text(step["with"]["script"])
    harness = tmp_path / "fake-github.cjs"
    harness.write_text(FAKE_GITHUB)
    state = tmp_path / "comments.json"
    state.write_text(
        json.dumps([{"id": 0, "user": {"type": "User"}, "body": "a reviewer's comment"}])
    )
    env = {**os.environ, "PLAN_MARKDOWN": str(plan_md)}
    for _ in range(runs):
        subprocess.run(
            [node, str(harness), str(script), str(state)],
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
        )
    comments: list[dict[str, Any]] = json.loads(state.read_text())
    return comments
