"""``mlrun plan`` end to end, as a user runs it: every format and every exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runner.plan.planfile import read_plan_file
from runner.sandbox import Sandbox
from runner.store import SqliteStore

from subprocesses import run_mlrun as mlrun

from .plan_support import (
    GHOST,
    INITECH,
    KEY,
    REACHABLE_TOTAL,
    free_port,
    served,
    strict_served_config,
    trigger_requests,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


@pytest.fixture(scope="module")
def strict_api() -> Iterator[tuple[str, Sandbox]]:
    with served(strict_served_config()) as pair:
        yield pair


@pytest.mark.slow
def test_plan_on_the_sandbox_prints_the_table_and_exits_0(tmp_path: Path) -> None:
    result = mlrun("plan", str(QUICKSTART), "--sandbox", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Actions\n  PROJECT  ENDPOINT    MODELS")
    assert "Per project" in out
    assert "Per model" in out
    assert "Plan: 4 actions in 3 projects, " in out
    assert "exit 0: the plan can be applied" in out
    assert not (tmp_path / ".mlrun").exists()  # planning records no run


@pytest.mark.slow
def test_json_is_a_plan_apply_can_read(tmp_path: Path) -> None:
    result = mlrun("plan", str(QUICKSTART), "--sandbox", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "mlrun-plan"
    assert document["baseUrl"] == "https://sandbox.mentionlab.invalid"
    summary = document["summary"]
    actions = document["plan"]["actions"]
    assert summary["expectedExecutions"] == sum(
        a["expectedExecutions"] for a in actions if a["endpoint"] == "jobs"
    )
    assert summary["cachedJobs"]["executionsPerRound"] == sum(
        a["expectedExecutions"] for a in actions if a["endpoint"] == "cachedJobs"
    )
    (tmp_path / "shown.json").write_text(result.stdout)
    assert (  # the budget counts both
        read_plan_file(tmp_path / "shown.json").plan.total_expected
        == summary["expectedExecutions"] + summary["cachedJobs"]["executionsPerRound"]
        == summary["budget"]["executions"]
    )


@pytest.mark.slow
def test_offline_markdown_says_counts_are_unknown_and_needs_no_key(tmp_path: Path) -> None:
    result = mlrun("plan", str(QUICKSTART), "--offline", "--format", "markdown", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("### ✅ mlrun plan: 4 actions in 3 projects, expected")
    assert "| Query counts | unknown: planned with --offline, the API was not asked |" in (
        result.stdout
    )


@pytest.mark.slow
def test_saved_plan_then_apply_of_the_file(tmp_path: Path) -> None:
    planned = mlrun("plan", str(QUICKSTART), "--sandbox", "-o", "plan.json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    saved = read_plan_file(tmp_path / "plan.json")
    assert saved.manifest_files == (str(QUICKSTART),)
    applied = mlrun("apply", "plan.json", "--sandbox", "--no-wait", "-q", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    report_dir = next((tmp_path / "mlrun-reports").iterdir())
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run"]["manifestDigest"] == saved.manifest_digest


@pytest.mark.slow
def test_apply_refuses_a_stale_saved_plan_with_exit_2(tmp_path: Path) -> None:
    mlrun("plan", str(QUICKSTART), "--offline", "--sandbox", "-o", "plan.json", cwd=tmp_path)
    document = json.loads((tmp_path / "plan.json").read_text())
    old = datetime.now(UTC) - timedelta(days=2)
    document["createdAt"] = old.isoformat(timespec="seconds")
    (tmp_path / "plan.json").write_text(json.dumps(document))
    result = mlrun("apply", "plan.json", "--sandbox", cwd=tmp_path)
    assert result.returncode == 2
    assert "the plan is stale: made 48h" in result.stderr
    allowed = mlrun(
        "apply", "plan.json", "--sandbox", "--no-wait", "-q", cwd=tmp_path,
        env={"MLRUN_MAX_PLAN_AGE": str(3 * 86_400)},
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.slow
def test_apply_refuses_a_plan_whose_manifest_changed_with_exit_2(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(QUICKSTART.read_text())
    mlrun("plan", "m.yaml", "--offline", "--sandbox", "-o", "plan.json", cwd=tmp_path)
    manifest.write_text(QUICKSTART.read_text().replace("executionCount: 2", "executionCount: 5"))
    result = mlrun("apply", "plan.json", "--sandbox", cwd=tmp_path)
    assert result.returncode == 2
    assert "the manifest (m.yaml) changed since the plan was made" in result.stderr


@pytest.mark.slow
def test_a_plan_over_budget_exits_4_and_apply_of_it_too(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(QUICKSTART.read_text() + "settings:\n  budget: {maxExecutions: 10}\n")
    args = ("plan", "m.yaml", "--sandbox", "-o", "plan.json", "--format", "markdown")
    result = mlrun(*args, cwd=tmp_path)
    assert result.returncode == 4
    assert result.stdout.startswith("### ⛔")
    assert "over the budget of 10 (settings.budget.maxExecutions); heaviest projects: acme-eu" in (
        result.stderr
    )
    applied = mlrun("apply", "plan.json", "--sandbox", cwd=tmp_path)
    assert applied.returncode == 4
    assert "over the budget of 10" in applied.stderr


@pytest.mark.slow
def test_unreachable_projects_exit_1_with_precise_reasons(
    tmp_path: Path, strict_api: tuple[str, Sandbox]
) -> None:
    url, sandbox = strict_api
    write_manifest(tmp_path, unreachable=True)
    result = mlrun(
        "plan", "manifest.yaml", "--base-url", url, cwd=tmp_path, env={"MENTIONLAB_API_KEY": KEY}
    )
    assert result.returncode == 1, result.stderr
    assert f"project ghost (id {GHOST}) does not exist for this key" in result.stdout
    assert f"project initech (id {INITECH}) is not reachable with this key in organisation" in (
        result.stdout
    )
    # acme's cached jobs (5 queries × 2 keys) are one round apart, counted by the budget only
    cached_round = 5 * 2
    jobs = REACHABLE_TOTAL - cached_round
    assert f"Plan: 3 actions in 2 projects, {jobs} expected executions" in result.stdout
    assert "Cached jobs: 5 cached jobs from 1 trigger, 10 executions per round" in result.stdout
    assert trigger_requests(sandbox.truth()) == 0


@pytest.mark.slow
def test_a_refused_key_exits_5(tmp_path: Path, strict_api: tuple[str, Sandbox]) -> None:
    url, sandbox = strict_api
    write_manifest(tmp_path)
    env = {"MENTIONLAB_API_KEY": "ml_live_" + "nobodyknowsme"}
    args = ("plan", "manifest.yaml", "--base-url", url, "--format", "json")
    result = mlrun(*args, cwd=tmp_path, env=env)
    assert result.returncode == 5
    assert "HTTP 401" in result.stderr
    assert "nobodyknowsme" not in result.stderr + result.stdout
    assert trigger_requests(sandbox.truth()) == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the manifest PATHs to plan"),
        (("bad.yaml", "--offline"), "bad.yaml:4"),
        (("--offline", "missing.yaml"), "no such file or directory"),
        ((str(QUICKSTART), "--offline", "--select", "nobody"), "matches no project"),
        ((str(QUICKSTART), "--format", "html"), "Invalid value for '--format'"),
    ],
)
def test_invalid_manifest_or_usage_exits_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nprojects:\n  - name: x\n    id: not-a-uuid\n")
    result = mlrun("plan", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_saved_plan_given_to_plan_is_shown(tmp_path: Path) -> None:
    mlrun("plan", str(QUICKSTART), "--offline", "-o", "plan.json", cwd=tmp_path)
    result = mlrun("plan", "plan.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Plan: 4 actions in 3 projects, expected executions unknown" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_nothing_listening_at_the_base_url_exits_5_in_seconds(tmp_path: Path, command: str) -> None:
    write_manifest(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"
    state = ("--state-dir", "state") if command == "apply" else ()
    args = (command, "manifest.yaml", "--base-url", closed, *state)
    result = mlrun(*args, cwd=tmp_path, env={"MENTIONLAB_API_KEY": KEY})
    assert result.returncode == 5, result.stderr
    assert f"nothing answered at {closed}" in result.stderr
    assert "(3 attempts); nothing was sent" in result.stderr
    assert "Traceback" not in result.stderr
    if command == "apply":  # the state and its lock come first; no run was started
        with SqliteStore.open(tmp_path / "state" / "ledger.sqlite") as ledger:
            assert ledger.runs() == []


@pytest.mark.slow
def test_an_offline_plan_does_not_load_the_runner_or_the_remote_planner(tmp_path: Path) -> None:
    """`mlrun plan --offline` never asks the API: it must not pay for importing what does."""
    script = (
        "import sys\n"
        "from runner.cli import main\n"
        "try:\n"
        f"    main(['plan', {str(QUICKSTART)!r}, '--offline', '-o', 'plan.json'])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "heavy = ('runner.run.apply', 'runner.plan.remote', 'runner.api', 'runner.store',"
        " 'httpx')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]"), result.stdout[-300:]
    assert read_plan_file(tmp_path / "plan.json").base_url == "https://api.mentionlab.io"
