"""A corrupt ledger through the real CLI: a clear error, a documented exit code, no trigger.

(A full disk and a read-only ledger mid-run are in test_scenarios.py, in process: as root, a
read-only directory stops nobody, so SQLite itself is made to fail the way a disk would.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runner.exitcodes import ExitCode

from chaos.chaos_support import ServedSandbox, run_mlrun, write_manifest

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
