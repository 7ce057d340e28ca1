"""Summaries that agree with themselves, end to end: the text, Markdown, JUnit and JSON of one run
tell the same story as its exit code, and the plan and the report count alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import JUnitXml
from runner.store import RunStatus

from report.report_support import job_action, open_scenario
from runs.runs_support import QUICKSTART, mlrun

SANDBOX = ("--sandbox", "--time-scale", "600", "--no-progress")
EVERY_FILE = tuple(
    arg for fmt in ("json", "markdown", "junit", "html") for arg in ("--report-format", fmt)
)
# The quickstart's figures: its jobs expect 12×3×2 + 8×2×1 executions; its cached jobs, one per
# query of acme-us (6) and globex (8), run 2 provider keys once each per round.
QUICKSTART_EXPECTED = 12 * 3 * 2 + 8 * 2 * 1
QUICKSTART_CACHED_ROUND = (6 + 8) * 2


def flat(text: str) -> str:
    """``text`` with its line breaks and runs of spaces as single spaces (lines wrap)."""
    return " ".join(text.split())


def run_dir(cwd: Path) -> Path:
    (directory,) = (cwd / "mlrun-reports").iterdir()
    return directory


@pytest.mark.slow
def test_a_no_wait_run_is_information_not_problems_in_every_format(tmp_path: Path) -> None:
    result = mlrun("apply", str(QUICKSTART), *SANDBOX, "--no-wait", *EVERY_FILE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    directory = run_dir(tmp_path)
    run_id = directory.name
    text = flat(result.stdout)
    meaning = "exit 0: every trigger was accepted; the jobs were not followed (--no-wait)"
    assert meaning in text
    assert (
        f"Running 2 jobs triggered, not followed: `mlrun status {run_id} --wait` follows them"
        in (text)
    )
    assert "Problems" not in text
    assert "acme-eu 1 0 0 72 72 0 0" in text  # no problem counted for the project either

    markdown = (directory / "report.md").read_text()
    assert f"### ✅ mlrun run `{run_id}`: 2 jobs triggered, not followed" in markdown
    assert "need attention" not in markdown
    assert "Problems, worst first" not in markdown
    assert meaning in markdown

    junit = JUnitXml.fromfile(str(directory / "junit.xml"))
    assert (junit.tests, junit.failures, junit.errors, junit.skipped) == (4, 0, 0, 0)
    assert "triggered, not followed (--no-wait)" in (directory / "junit.xml").read_text()

    report = json.loads((directory / "report.json").read_text())
    assert report["exitCode"] == 0
    assert report["run"]["followed"] is False
    assert report["totals"]["run"]["outcomes"] == {"RUNNING": 2, "OK": 2}
    assert meaning in (directory / "report.html").read_text()


@pytest.mark.slow
def test_plan_and_report_count_the_same_expected_executions(tmp_path: Path) -> None:
    planned = mlrun("plan", str(QUICKSTART), "--sandbox", "--format", "json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    summary = json.loads(planned.stdout)["summary"]
    assert summary["expectedExecutions"] == QUICKSTART_EXPECTED
    assert summary["cachedJobs"]["executionsPerRound"] == QUICKSTART_CACHED_ROUND
    shown = mlrun("plan", str(QUICKSTART), "--sandbox", cwd=tmp_path)
    assert f"Plan: 4 actions in 3 projects, {QUICKSTART_EXPECTED} expected executions" in (
        shown.stdout
    )
    assert f"14 cached jobs from 2 triggers, {QUICKSTART_CACHED_ROUND} executions per round" in (
        shown.stdout
    )
    dry = mlrun("apply", str(QUICKSTART), *SANDBOX, "--dry-run", "--format", "json", cwd=tmp_path)
    assert json.loads(dry.stdout)["summary"]["expectedExecutions"] == QUICKSTART_EXPECTED

    applied = mlrun("apply", str(QUICKSTART), *SANDBOX, *EVERY_FILE, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    assert f"plan: 4 actions in 3 projects, {QUICKSTART_EXPECTED} expected executions" in (
        applied.stderr
    )
    assert f"Executions expected {QUICKSTART_EXPECTED} · total {QUICKSTART_EXPECTED}" in (
        flat(applied.stdout)
    )
    directory = run_dir(tmp_path)
    report = json.loads((directory / "report.json").read_text())
    assert report["totals"]["run"]["expected"] == QUICKSTART_EXPECTED
    markdown = (directory / "report.md").read_text()
    assert f"| Executions | expected {QUICKSTART_EXPECTED} · total" in markdown
    assert f"{QUICKSTART_CACHED_ROUND} executions per round" in markdown


def interrupted_run(state: Path, *, never_sent: int, running: int) -> str:
    """A run interrupted after triggering ``running`` jobs, with ``never_sent`` actions left."""
    actions = [job_action(f"p{i:03d}", 0) for i in range(never_sent + running)]
    scenario = open_scenario(state, actions)
    for action in actions[:running]:
        scenario.trigger(action.key, f"job-{action.project}")
    scenario.end(RunStatus.INTERRUPTED)
    scenario.ledger.close()
    return scenario.run_id


@pytest.mark.slow
def test_an_interrupted_run_collapses_what_it_never_sent(tmp_path: Path) -> None:
    run_id = interrupted_run(tmp_path / "state", never_sent=37, running=3)
    result = mlrun("report", "last", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    problems = result.stdout.split("Problems (40), worst first:\n")[1].split("\n\n")[0]
    assert [line.split()[:3] for line in problems.splitlines() if not line.startswith(" " * 4)] == [
        ["NOT_ATTEMPTED", "37", "actions"],
        ["RUNNING", "3", "actions"],
    ]
    text = flat(problems)
    resume = f"`mlrun apply --resume {run_id}`"
    assert f"37 actions not attempted: the run was interrupted; {resume} continues" in text
    assert (
        "3 actions jobs not followed to the end (p000/jobs/0, p001/jobs/0, p002/jobs/0): the run "
        f"was interrupted; {resume} follows them"
    ) in text
    markdown = mlrun("report", "last", "--state-dir", str(tmp_path / "state"), "--format",
                     "markdown", cwd=tmp_path).stdout  # fmt: skip
    assert markdown.count("| **NOT_ATTEMPTED** |") == 1
    assert "| **NOT_ATTEMPTED** | 37 actions | 1,110 | - | - | - |" in markdown


@pytest.mark.slow
def test_quiet_prints_the_summary_only(tmp_path: Path) -> None:
    result = mlrun("apply", str(QUICKSTART), *SANDBOX, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("mlrun run ")
    assert lines[1].startswith("Actions     4: 4 OK")
    assert lines[-1].startswith("Reports: ")
    assert "Per project:" not in result.stdout
    assert "Every action completed as asked." not in result.stdout
    assert result.stderr == ""  # no plan line, no progress


@pytest.mark.slow
def test_a_reason_is_wrapped_and_never_cut_before_its_fix(tmp_path: Path) -> None:
    state = tmp_path / "state"
    actions = [job_action("acme", 0), job_action("acme-with-a-long-name", 1)]
    scenario = open_scenario(state, actions)
    scenario.ambiguous("acme/jobs/0")  # never settled: the fix is `mlrun apply --resume`
    long_error = "the gateway said: " + "upstream trouble, " * 40 + "retry later"
    scenario.fail("acme-with-a-long-name/jobs/1", status=400, error=f"{long_error}; ask support")
    scenario.end(RunStatus.FAILED)
    scenario.ledger.close()

    result = mlrun("report", "last", "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    problems = result.stdout.split("worst first:\n")[1].split("\n\n")[0]
    assert all(len(line) <= 100 for line in problems.splitlines()), problems
    text = flat(problems)
    assert (
        "attempt 1 was sent but its outcome was never settled; `mlrun apply --resume` settles it "
        "from the job list"
    ) in text
    assert "…; ask support" in text  # the middle of an overlong reason goes, its end stays


@pytest.mark.slow
def test_counts_read_as_words(tmp_path: Path) -> None:
    state = tmp_path / "state"
    scenario = open_scenario(state, [job_action("acme", 0)], meta={"wait": False})
    scenario.trigger("acme/jobs/0", "job-1")
    scenario.end()
    scenario.ledger.close()
    result = mlrun("report", "last", "--state-dir", str(state), cwd=tmp_path)
    assert "Running 1 job triggered, not followed: `mlrun status" in flat(result.stdout)
    assert "--wait` follows it" in flat(result.stdout)

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nprojects:\n  - name: a\n    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
        "    jobs:\n      - models: core\n"
    )
    invalid = mlrun("validate", str(manifest), cwd=tmp_path)
    assert invalid.returncode == 2
    assert "no model sets are defined" in invalid.stdout + invalid.stderr


@pytest.mark.slow
def test_actions_sent_without_effect_keep_their_own_reason(tmp_path: Path) -> None:
    """Actions sent but not taken (a 429, then the run stopped) are not 'never sent'."""
    state = tmp_path / "state"
    actions = [job_action(f"p{i}", 0) for i in range(3)]
    scenario = open_scenario(state, actions)
    for action in actions:
        scenario.rate_limited(action.key)
    scenario.end(RunStatus.INTERRUPTED)
    scenario.ledger.close()
    result = mlrun("report", "last", "--state-dir", str(state), cwd=tmp_path)
    text = flat(result.stdout)
    assert text.count("not triggered: sent once, none took effect, the run ended") == 3
    assert "actions not attempted" not in text
