"""``mlrun status RUN``: jobs refreshed through the API (never a trigger), report rewritten."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from runner.run.status import outstanding_jobs, refreshed_status
from runner.store import ActionState, RunStatus, SqliteStore

from report.report_support import standard_scenario
from runs.runs_support import QUICKSTART, mlrun, read_json
from subprocesses import start_served_sandbox

KEY = {"MENTIONLAB_API_KEY": "ml_live_status"}


def test_outstanding_jobs_are_the_running_ones_we_can_still_ask_about(tmp_path: Path) -> None:
    scenario = standard_scenario(tmp_path)
    with scenario.ledger as ledger:
        found = outstanding_jobs(ledger.actions(scenario.run_id), ledger.jobs(scenario.run_id))
    # job-g1 is processing (timed out); job-d1 answered 404 (gone); cached jobs are not followed.
    assert [(action.key, job.id) for action, job in found] == [("gamma/jobs/1", "job-g1")]
    assert found[0][1].status == "processing"


@pytest.mark.parametrize(
    ("status", "states", "running", "expected"),
    [
        (RunStatus.INTERRUPTED, ["triggered"], False, RunStatus.FINISHED),
        (RunStatus.INTERRUPTED, ["triggered"], True, RunStatus.INTERRUPTED),
        (RunStatus.INTERRUPTED, ["triggered", "pending"], False, RunStatus.INTERRUPTED),
        (RunStatus.RUNNING, ["triggered", "ambiguous"], False, RunStatus.INTERRUPTED),
        (RunStatus.RUNNING, ["triggered"], False, RunStatus.FINISHED),
        (RunStatus.FAILED, ["triggered", "pending"], True, RunStatus.FAILED),
        (RunStatus.FINISHED, ["triggered"], True, RunStatus.FINISHED),
    ],
)
def test_the_run_status_after_a_refresh(
    tmp_path: Path, status: RunStatus, states: list[str], running: bool, expected: RunStatus
) -> None:
    from report.report_support import job_action, open_scenario  # noqa: PLC0415

    actions = [job_action("p", i) for i in range(len(states))]
    scenario = open_scenario(tmp_path, actions)
    for action, state in zip(actions, states, strict=True):
        if state == "triggered":
            scenario.trigger(action.key, f"job-{action.key}", status="processing")
            if not running:
                scenario.finish(action.key, f"job-{action.key}", "completed", {"total": 1})
        elif state != "pending":
            scenario.ledger.set_action_state(
                scenario.run_id, action.key, ActionState(state), now=scenario.tick()
            )
    with scenario.ledger as ledger:
        records, jobs = ledger.actions(scenario.run_id), ledger.jobs(scenario.run_id)
    assert refreshed_status(status, records, jobs) == expected


# -- end to end, against a served sandbox ----------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlrun sandbox serve` on loopback, jobs lasting a few seconds."""
    with start_served_sandbox(tmp_path_factory.mktemp("served"), time_scale=300) as sandbox:
        yield sandbox.url


def _triggers(url: str) -> int:
    return len(httpx.get(f"{url}/_sandbox/truth").json()["triggers"])


@pytest.mark.slow
def test_status_follows_a_no_wait_run_to_the_end_without_triggering(
    served: str, tmp_path: Path
) -> None:
    env = {**KEY, "MENTIONLAB_BASE_URL": served}
    applied = mlrun(
        "apply",
        str(QUICKSTART),
        "--no-wait",
        "--report-format",
        "json",
        "-q",
        cwd=tmp_path,
        env=env,
    )
    assert applied.returncode == 0, applied.stderr + applied.stdout
    sent = _triggers(served)
    with SqliteStore.open(tmp_path / ".mlrun" / "ledger.sqlite") as ledger:
        run_id = ledger.resolve_run_id("last")
    report = tmp_path / "mlrun-reports" / run_id / "report.json"
    assert {job["status"] for a in read_json(report)["actions"] for job in a["done"]["jobs"]} & {
        "pending", "processing"
    }  # fmt: skip

    once = mlrun("status", run_id[:12], cwd=tmp_path, env=env)
    assert once.returncode in {0, 1}, once.stderr
    assert f"run {run_id}: asking {served}" in once.stderr

    waited = mlrun("status", "last", "--wait", "--timeout", "60", cwd=tmp_path, env=env)
    assert waited.returncode == 0, waited.stderr + waited.stdout
    assert "everything completed as asked" in waited.stdout
    assert _triggers(served) == sent  # status reads jobs, it never triggers
    rewritten = read_json(report)
    assert rewritten["exitCode"] == 0
    statuses = {job["status"] for a in rewritten["actions"] for job in a["done"]["jobs"]}
    assert statuses <= {"completed", None}
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.json"]

    again = mlrun("status", "last", cwd=tmp_path, env=env)
    assert again.returncode == 0
    assert "0 jobs refreshed with 0 requests" in again.stderr


@pytest.mark.slow
def test_status_of_an_in_process_sandbox_run_follows_the_sandbox_it_saved(tmp_path: Path) -> None:
    applied = mlrun(
        "apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", "--no-wait", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    result = mlrun("status", "last", "--wait", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "asking the in-process sandbox (--sandbox) about 2 jobs" in result.stderr
    assert "everything completed as asked" in result.stdout


@pytest.mark.slow
def test_status_of_a_sandbox_run_whose_sandbox_was_not_saved_explains_why_it_cannot(
    tmp_path: Path,
) -> None:
    applied = mlrun(
        "apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", "--no-wait", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    for state in (tmp_path / ".mlrun" / "sandbox").iterdir():  # as if the process was killed
        state.unlink()
    result = mlrun("status", "last", cwd=tmp_path)
    assert result.returncode == 2
    assert "whose state was not saved (the process was killed" in result.stderr


@pytest.mark.slow
def test_status_of_a_finished_run_rewrites_its_report(tmp_path: Path) -> None:
    applied = mlrun(
        "apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", "-q", cwd=tmp_path
    )
    assert applied.returncode == 0, applied.stderr
    result = mlrun("status", "last", "--report-format", "html", "--sandbox", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 jobs refreshed" in result.stderr
    assert list((tmp_path / "mlrun-reports").glob("*/report.html"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [(("last",), 2, "no ledger at"), (("nope", "--state-dir", "."), 2, "no ledger at")],
)
def test_status_usage_errors(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = mlrun("status", *args, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr


@pytest.mark.slow
def test_a_resumed_run_keeps_the_settings_it_was_started_with(served: str, tmp_path: Path) -> None:
    manifest = tmp_path / "weekly.yaml"
    manifest.write_text(
        "version: 1\n"
        "defaults: {organisation: 01234567-89ab-cdef-0123-456789abcdef}\n"
        "settings:\n"
        "  follow: false\n"
        "  reports: {dir: weekly, formats: [json]}\n"
        "projects:\n"
        "  - name: resumed\n"
        "    id: 5d0c1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f\n"
        "    jobs: [{models: [gpt-5-mini]}]\n"
    )
    env = {**KEY, "MENTIONLAB_BASE_URL": served}
    applied = mlrun("apply", str(manifest), "-q", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    sent = _triggers(served)

    resumed = mlrun("apply", "--resume", "-q", cwd=tmp_path, env=env)  # no manifest given

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert _triggers(served) == sent
    (run_dir,) = (tmp_path / "weekly").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.json"]  # the run's formats
    assert not (tmp_path / "mlrun-reports").exists()  # not the defaults
    assert read_json(run_dir / "report.json")["run"]["followed"] is False  # follow: false kept


@pytest.mark.slow
def test_status_and_report_rewrite_the_reports_where_the_run_wrote_them(tmp_path: Path) -> None:
    applied = mlrun(
        "apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", "--no-wait", "-q",
        "--report-dir", "ci-artifacts", cwd=tmp_path,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    (run_dir,) = (tmp_path / "ci-artifacts").iterdir()
    before = (run_dir / "report.json").read_text()
    refreshed = mlrun("status", "last", "--wait", cwd=tmp_path)
    assert refreshed.returncode == 0, refreshed.stderr
    assert (run_dir / "report.json").read_text() != before  # the jobs have ended since
    shown = mlrun("report", "last", "--report-format", "html", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert (run_dir / "report.html").exists()
    assert not (tmp_path / "mlrun-reports").exists()
