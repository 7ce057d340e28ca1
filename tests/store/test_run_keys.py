"""Run keys, shards sharing one run, and the reads a state saves: real processes, real sandbox.

``mlrun apply`` runs as CI runs it, against the served sandbox, whose ground truth counts every
request by endpoint and every trigger; the state is SQLite or PostgreSQL (both where it
matters). Each test's manifest has its own projects, so the sandbox's truth is the test's own.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from runner.run.runkey import ci_run_key, run_key
from runner.run.status import list_runs

from chaos.chaos_support import PlannedJob, compare_triggers, write_manifest
from subprocesses import ServedSandbox, mlrun_command, run_mlrun, start_served_sandbox

COUNTS = "POST /api/queries/list"
JOB_LISTS = "POST /api/jobs/list"
TRIGGERS = "POST /api/jobs/trigger"
NO_LIMITS = ("--rate-limits", "off")

# -- the key --------------------------------------------------------------------------------------

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/brand",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_JOB": "apply",
}
GITLAB = {
    "GITLAB_CI": "true",
    "CI_PROJECT_PATH": "acme/brand",
    "CI_PIPELINE_ID": "77",
    "CI_JOB_NAME": "apply 2/4",
}


@pytest.mark.parametrize(
    ("given", "env", "expected"),
    [
        ("nightly", {**GITHUB, "MLRUN_RUN_KEY": "env"}, "nightly"),  # the option wins
        (None, {**GITHUB, "MLRUN_RUN_KEY": "env"}, "env"),  # then the variable
        (None, GITHUB, "github:acme/brand:4242:apply"),  # a re-run's attempt is not in it
        (None, GITLAB, "gitlab:acme/brand:77:apply"),  # parallel jobs share it
        ("", GITHUB, None),  # '' asks for no key, even in CI
        (None, {"GITHUB_ACTIONS": "true", "GITHUB_JOB": "apply"}, None),  # not enough to name
        (None, {"CI": "true"}, None),  # a CI the runner does not know
    ],
)
def test_the_run_key_comes_from_the_option_the_variable_or_the_ci_job(
    given: str | None, env: dict[str, str], expected: str | None
) -> None:
    assert run_key(given, env) == expected


def test_a_re_run_of_the_same_job_has_the_same_key_another_workflow_run_another() -> None:
    rerun = {**GITHUB, "GITHUB_RUN_ATTEMPT": "3"}
    assert ci_run_key(rerun) == ci_run_key(GITHUB)
    assert ci_run_key({**GITHUB, "GITHUB_RUN_ID": "4243"}) != ci_run_key(GITHUB)


# -- real runs ------------------------------------------------------------------------------------


def _served(directory: Path, seed: int) -> contextlib.AbstractContextManager[ServedSandbox]:
    """A served sandbox whose jobs end within a second, with no rate limits: what these tests
    count is requests and triggers, and limits are proven elsewhere (tests/limiter, the chaos
    scenarios), while headers in whole seconds would pace every run here at 10 requests/s."""
    return start_served_sandbox(directory, seed=seed, time_scale=1000, extra=NO_LIMITS)


def _apply(cwd: Path, sandbox: ServedSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return run_mlrun("apply", "manifest.yaml", *args, cwd=cwd, env=sandbox.env(), timeout=120)


def _paths(sandbox: ServedSandbox) -> Counter[str]:
    return Counter(sandbox.truth()["paths"])


def _manifest(directory: Path, salt: str, projects: int = 12, **extra: str) -> list[PlannedJob]:
    directory.mkdir(parents=True, exist_ok=True)
    planned = write_manifest(directory / "manifest.yaml", projects=projects, salt=salt)
    if extra:
        text = (directory / "manifest.yaml").read_text()
        settings = "".join(f"  {line}\n" for line in extra.values())
        (directory / "manifest.yaml").write_text(
            text.replace("settings:\n", f"settings:\n{settings}")
        )
    return planned


@pytest.mark.slow
def test_the_second_apply_with_the_state_makes_one_request_per_trigger_before_following(
    state: str, tmp_path: Path
) -> None:
    planned = _manifest(tmp_path, "economy")
    projects = len({job.project_id for job in planned})
    args = ("--state", state, "--settle-grace", "0.5", "-v")
    with _served(tmp_path / "sandbox", 11) as sandbox:
        first = _apply(tmp_path, sandbox, *args)
        assert first.returncode == 0, first.stderr
        after_first = _paths(sandbox)
        assert after_first[COUNTS] == projects
        assert after_first[JOB_LISTS] >= projects  # the guard reads each project
        second = _apply(tmp_path, sandbox, *args, "--no-wait")  # nothing but the sending
        assert second.returncode == 0, second.stderr
        spent = _paths(sandbox) - after_first
    assert (spent[COUNTS], spent[JOB_LISTS]) == (0, 0)
    assert spent[TRIGGERS] == len(planned)
    assert spent.total() == len(planned)  # one request per trigger
    assert f"planning: {projects} query counts from the state" in second.stderr
    assert f"in-flight guard: {projects} reads skipped" in second.stderr


@pytest.mark.slow
def test_max_count_age_zero_reads_every_count_again(tmp_path: Path) -> None:
    planned = _manifest(tmp_path, "age", plan="plan: {maxCountAge: 0}")
    projects = len({job.project_id for job in planned})
    args = ("--state-dir", str(tmp_path / "state"), "--settle-grace", "0.5")
    with _served(tmp_path / "sandbox", 12) as sandbox:
        for _ in range(2):
            assert _apply(tmp_path, sandbox, *args).returncode == 0
        assert _paths(sandbox)[COUNTS] == 2 * projects


@pytest.mark.slow
def test_shards_run_one_after_another_share_one_run_and_read_each_count_once(
    tmp_path: Path,
) -> None:
    planned = _manifest(tmp_path, "sequential-shards")
    projects = len({job.project_id for job in planned})
    state = str(tmp_path / "cache" / "ledger.sqlite")
    args = ("--state", state, "--run-key", "nightly", "--settle-grace", "0.5")
    with _served(tmp_path / "sandbox", 13) as sandbox:
        for shard in ("1/2", "2/2"):
            applied = _apply(tmp_path, sandbox, *args, "--shard", shard)
            assert applied.returncode == 0, applied.stderr
            assert "waiting" not in applied.stderr
        truth = sandbox.truth()
    tally = compare_triggers(planned, truth["triggers"])
    assert (tally.lost, tally.duplicates, tally.unexpected) == (0, 0, 0)
    assert truth["paths"][COUNTS] == projects  # the first shard read them all, once
    (line,) = list_runs(state, limit=None, env={})
    assert (line.record.run_key, line.record.status) == ("nightly", "finished")
    assert line.report.totals.run.actions == len(planned)


def _start_shards(
    cwd: Path, sandbox: ServedSandbox, state: str, key: str, count: int
) -> list[subprocess.Popen[str]]:
    args = ("--state", state, "--run-key", key, "--settle-grace", "0.5", "-q")
    return [
        subprocess.Popen(
            mlrun_command("apply", "manifest.yaml", *args, "--shard", f"{i}/{count}"),
            cwd=cwd,
            env=sandbox.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(1, count + 1)
    ]


def _finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    done = []
    for process in processes:
        _out, err = process.communicate(timeout=180)
        done.append((process.returncode, err))
    return done


def _expected_executions(cwd: Path, sandbox: ServedSandbox) -> int:
    planned = run_mlrun("plan", "manifest.yaml", "--format", "json", cwd=cwd, env=sandbox.env())
    assert planned.returncode == 0, planned.stderr
    plan: dict[str, Any] = json.loads(planned.stdout)
    total: int = plan["summary"]["expectedExecutions"]
    return total


@pytest.mark.slow
def test_four_shards_on_postgres_write_one_run_and_one_report(
    postgres_url: str, tmp_path: Path
) -> None:
    planned = _manifest(tmp_path, "four-shards", projects=24)
    with _served(tmp_path / "sandbox", 14) as sandbox:
        done = _finish(_start_shards(tmp_path, sandbox, postgres_url, "four", 4))
        assert [code for code, _err in done] == [0, 0, 0, 0], done
        truth = sandbox.truth()
        tally = compare_triggers(planned, truth["triggers"])
        assert (tally.lost, tally.duplicates, tally.unexpected) == (0, 0, 0)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        listed = run_mlrun("runs", "--format", "json", "--state", postgres_url, cwd=elsewhere)
        reported = run_mlrun(
            "report", "last", "--format", "json", "--state", postgres_url, cwd=elsewhere
        )
    (run,) = json.loads(listed.stdout)
    assert (run["runKey"], run["status"], run["actions"]) == ("four", "finished", len(planned))
    report = json.loads(reported.stdout)
    assert report["exitCode"] == 0
    assert len(report["actions"]) == len(planned)
    projects = len({job.project_id for job in planned})
    assert truth["paths"][COUNTS] < 2 * projects  # each count read about once, not 4 times


@pytest.mark.slow
def test_four_shards_over_the_whole_budget_all_refuse_and_send_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    _manifest(tmp_path, "four-shards-budget", projects=24)
    with _served(tmp_path / "sandbox", 15) as sandbox:
        whole = _expected_executions(tmp_path, sandbox)
        text = (tmp_path / "manifest.yaml").read_text()
        budget = f"settings:\n  budget: {{maxExecutions: {whole - 1}}}\n"
        (tmp_path / "manifest.yaml").write_text(text.replace("settings:\n", budget))
        done = _finish(_start_shards(tmp_path, sandbox, postgres_url, "over", 4))
        triggers = sandbox.truth()["triggers"]
    assert [code for code, _err in done] == [4, 4, 4, 4], done
    assert triggers == []


@pytest.mark.slow
def test_two_applies_of_one_key_at_once_on_postgres_trigger_each_action_once(
    postgres_url: str, tmp_path: Path
) -> None:
    planned = _manifest(tmp_path, "same-key", projects=20)
    args = ("--state", postgres_url, "--run-key", "same", "--settle-grace", "0.5", "-q")
    with _served(tmp_path / "sandbox", 16) as sandbox:
        processes = [
            subprocess.Popen(
                mlrun_command("apply", "manifest.yaml", *args),
                cwd=tmp_path,
                env=sandbox.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        done = _finish(processes)
        tally = compare_triggers(planned, sandbox.truth()["triggers"])
    assert (tally.lost, tally.duplicates, tally.unexpected) == (0, 0, 0)
    codes = sorted(code for code, _err in done)
    assert codes in ([0, 0], [0, 2]), done  # one runs; the other refuses, or finds it ended
    if codes == [0, 2]:
        refused = next(err for code, err in done if code == 2)
        assert "Traceback" not in refused


@pytest.mark.slow
def test_a_re_run_by_key_against_another_api_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    _manifest(tmp_path, "pinned-key")
    args = ("--state-dir", str(tmp_path / "state"), "--run-key", "pinned", "--no-wait")
    with _served(tmp_path / "first", 17) as first:
        assert _apply(tmp_path, first, *args).returncode == 0
    with _served(tmp_path / "second", 17) as second:
        elsewhere = _apply(tmp_path, second, *args)
        assert second.truth()["requests"] == 0
    assert elsewhere.returncode == 2, elsewhere.stderr
    assert f"ran against {first.url}, not {second.url}" in elsewhere.stderr
