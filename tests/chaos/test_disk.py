"""A corrupt or full ledger through the real CLI: a clear error, a documented exit code.

A corrupt ledger sends no trigger; a disk that fills mid-run stops the sending, writes the
report, and the run resumes from a copy of the ledger on a roomy disk without a duplicate (a
real 400 KB tmpfs in a private mount namespace; skipped where that cannot be made). A read-only
ledger mid-run is in test_scenarios.py, in process: as root, a read-only directory stops nobody.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from runner.exitcodes import ExitCode

from chaos.chaos_support import (
    ServedSandbox,
    compare_triggers,
    mlrun_command,
    read_report,
    run_mlrun,
    write_manifest,
)
from figures import record

pytestmark = pytest.mark.chaos


def _finished_ledger(served: ServedSandbox, workdir: Path) -> Path:
    manifest = workdir / "manifest.yaml"
    write_manifest(manifest, projects=3, salt="disk")
    args = ("apply", str(manifest), "--state-dir", "state", "--no-wait", "--report-dir", "r")
    done = run_mlrun(*args, cwd=workdir, env=served.env())
    assert done.returncode == 0, done.stderr
    return workdir / "state" / "ledger.sqlite"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_ledger_is_a_clear_error_and_sends_no_trigger(
    tmp_path: Path, served: ServedSandbox, damage: str
) -> None:
    ledger = _finished_ledger(served, tmp_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    data = ledger.read_bytes()
    ledger.write_bytes(b"not a database " * 512 if damage == "garbage" else data[: len(data) // 2])
    before = served.truth()
    manifest = tmp_path / "manifest.yaml"
    for args in (("--resume",), (str(manifest),)):
        result = run_mlrun("apply", *args, "--state-dir", "state", cwd=tmp_path, env=served.env())
        assert result.returncode == ExitCode.INVALID, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "ledger" in result.stderr
        assert str(ledger) in result.stderr or "state/ledger.sqlite" in result.stderr
    after = served.truth()
    assert len(after["triggers"]) == len(before["triggers"])  # no trigger without its intent


def _in_a_small_tmpfs(script: str, *, cwd: Path, env: dict[str, str]) -> None:
    """Run ``script`` (sh) in a private mount namespace where ``state`` is a small tmpfs."""
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"no private tmpfs here (unshare --mount, mount): {probe.stderr!r}")
    (cwd / "state").mkdir()
    mounted = f"mount -t tmpfs -o size=400k tmpfs state && {script}"
    subprocess.run(["unshare", "--mount", "sh", "-c", mounted], cwd=cwd, env=env, check=True)


def test_a_disk_full_mid_run_stops_sending_exits_2_reports_and_resumes_without_a_duplicate(
    tmp_path: Path, served: ServedSandbox
) -> None:
    planned = write_manifest(tmp_path / "manifest.yaml", projects=60, salt="full")
    grace = ("--settle-grace", "0.5")  # the sandbox lists a job at once: no need to wait a minute
    command = " ".join(mlrun_command("apply", "manifest.yaml", "--state-dir", "state", *grace))
    # The run's exit code and stderr, then its ledger copied off the full disk before the
    # namespace (and its tmpfs) goes away.
    script = (
        f"{command} --no-wait --report-dir r --no-progress 2> err.txt; echo $? > rc.txt; "
        "mkdir roomy && cp -a state/. roomy/"
    )
    _in_a_small_tmpfs(script, cwd=tmp_path, env=served.env())
    stderr = (tmp_path / "err.txt").read_text()
    assert (tmp_path / "rc.txt").read_text().strip() == str(int(ExitCode.INVALID)), stderr
    assert "database or disk is full; nothing more was sent" in stderr
    assert "Traceback" not in stderr
    assert read_report(tmp_path / "r")["run"]["runId"] in stderr  # written, and named
    sent = len(served.truth()["triggers"])
    assert 0 < sent < len(planned)

    resumed = run_mlrun(
        "apply", "--resume", "--state-dir", "roomy", "--no-wait", *grace, cwd=tmp_path,
        env=served.env(),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    tally = compare_triggers(planned, served.truth()["triggers"])
    assert (tally.lost, tally.duplicates, tally.unexpected) == (0, 0, 0)
    record("disk-full", sent_before_full=sent, planned=len(planned), lost=0, duplicated=0)
