"""SIGINT and SIGTERM stop ``mlrun apply`` cleanly wherever they land: exit 3, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from runner.exitcodes import ExitCode
from runner.store import SqliteStore

from chaos.chaos_support import clean_env, mlrun_command, start_served_sandbox, write_manifest

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_planning_exits_3_saying_nothing_was_sent(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # 40 projects to read at 2 requests/s: planning takes about 20 s, the signal comes at once.
    write_manifest(tmp_path / "manifest.yaml", projects=40, salt="signal", per_second=2)
    with start_served_sandbox(tmp_path / "sb", extra=("--rate-limits", "2/s")) as served:
        process = subprocess.Popen(
            mlrun_command("apply", "manifest.yaml", "--state-dir", "state", "--no-progress"),
            cwd=tmp_path,
            env={**clean_env(), **served.env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while served.truth()["requests"] < 3:
            assert time.monotonic() < deadline, "planning never started"
            time.sleep(0.05)
        os.kill(process.pid, signum)
        _, err = process.communicate(timeout=30)
        assert served.truth()["triggers"] == []
    assert process.returncode == ExitCode.INTERRUPTED, err
    assert f"{signum.name} while planning: no trigger was sent" in err
    assert "Traceback" not in err
    with SqliteStore.open(tmp_path / "state" / "ledger.sqlite") as ledger:
        assert ledger.runs() == []
