"""``mlrun runs`` and ``mlrun report RUN`` over a ledger, end to end with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from report.report_support import T0
from runs.runs_support import mlrun, ok_run, standard_report

STANDARD_RUN = "20250615T000000Z-abcdef"
LATER_RUN = "20250615T010000Z-c0ffee"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A ledger with two runs: the standard one (every outcome), then a later all-OK run."""
    directory = tmp_path / "state"
    standard_report(directory)
    ok_run(directory, LATER_RUN, ("zeta",), start=T0 + 3600)
    return directory


@pytest.mark.slow
def test_runs_lists_newest_first(state: Path, tmp_path: Path) -> None:
    result = mlrun("runs", "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = ["RUN", "KEY", "STARTED", "BY", "COMMIT", "STATUS", "OUTCOMES", "EXECUTIONS", "EXIT"]
    assert lines[0].split() == header
    assert lines[1].startswith(LATER_RUN)
    assert lines[2].startswith(STANDARD_RUN)
    assert lines[1].split()[-1] == "0"
    assert "1 FAILED, 2 UNKNOWN, 1 TIMEOUT" in lines[2]
    assert lines[2].split()[-1] == "3"


@pytest.mark.slow
def test_runs_as_json_with_a_limit(state: Path, tmp_path: Path) -> None:
    result = mlrun(
        "runs",
        "--format",
        "json",
        "--limit",
        "1",
        cwd=tmp_path,
        env={"MLRUN_STATE_DIR": str(state)},
    )
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [run["runId"] for run in runs] == [LATER_RUN]
    assert runs[0]["outcomes"] == {"OK": 1}
    assert runs[0]["exitCode"] == 0


@pytest.mark.slow
def test_runs_without_a_ledger_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = mlrun("runs", cwd=tmp_path)
    assert result.returncode == 0
    assert "No runs yet" in result.stdout
    assert not (tmp_path / ".mlrun").exists()


@pytest.mark.slow
@pytest.mark.parametrize("run", ["20250615T0000", STANDARD_RUN])
def test_report_renders_a_past_run_and_exits_0(state: Path, tmp_path: Path, run: str) -> None:
    result = mlrun("report", run, "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"mlrun run {STANDARD_RUN}")
    assert "Problems (9)" in result.stdout


@pytest.mark.slow
def test_report_writes_the_formats_asked(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = mlrun(
        "report", "show", "last", "--state-dir", str(state), "--report-format", "html",
        "--report-format", "junit", "--report-dir", str(out), "--exit-code", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr  # the last run is all OK
    run_dir = out / LATER_RUN  # --report-dir means DIR/<run id>/, as for apply and status
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "junit.xml"}
    assert f"Reports: {run_dir / 'junit.xml'}, {run_dir / 'report.html'}" in result.stdout


@pytest.mark.slow
def test_report_exit_code_flag_gives_the_runs_code(state: Path, tmp_path: Path) -> None:
    result = mlrun("report", STANDARD_RUN, "--state-dir", str(state), "--exit-code", cwd=tmp_path)
    assert result.returncode == 3


@pytest.mark.slow
def test_report_default_directory_is_per_run(state: Path, tmp_path: Path) -> None:
    result = mlrun("report", "--report-format", "json", "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mlrun-reports" / LATER_RUN / "report.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "no run in the ledger match"),
        (("20250615",), "2 runs in the ledger match"),
    ],
)
def test_report_of_an_unknown_run_is_a_usage_error(
    state: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = mlrun("report", *args, "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.slow
def test_report_without_a_ledger_is_a_usage_error(tmp_path: Path) -> None:
    result = mlrun("report", "last", cwd=tmp_path)
    assert result.returncode == 2
    assert "no ledger at" in result.stderr
    assert not (tmp_path / ".mlrun").exists()


@pytest.mark.slow
def test_report_help_lists_show_and_merge(tmp_path: Path) -> None:
    result = mlrun("report", "-h", cwd=tmp_path)
    assert result.returncode == 0
    assert "merge" in result.stdout
    assert "show" in result.stdout
