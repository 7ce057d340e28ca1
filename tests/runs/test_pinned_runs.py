"""A run stays on its API and its key; the state and its lock come before any request.

Real ``mlrun`` processes against served sandboxes: what each server received is its own truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner.run.target import SANDBOX, Target, key_fingerprint, pinned_target
from runner.store import ActionState, SqliteStore

from chaos.chaos_support import write_manifest
from subprocesses import (
    CANARY_KEY,
    ServedSandbox,
    clean_env,
    mlrun_command,
    start_served_sandbox,
)
from subprocesses import run_mlrun as mlrun

OTHER_KEY = "ml_live_" + "anotherKEY0123456789abcdef"
STATE = ("--state-dir", "state")


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServedSandbox, ServedSandbox]]:
    with (
        start_served_sandbox(tmp_path / "a", seed=1) as first,
        start_served_sandbox(tmp_path / "b", seed=2) as second,
    ):
        yield first, second


def _finished_run(served: ServedSandbox, workdir: Path) -> None:
    write_manifest(workdir / "manifest.yaml", projects=3, salt="pin")
    done = mlrun("apply", "manifest.yaml", *STATE, "--no-wait", cwd=workdir, env=served.env())
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_resume_and_status_refuse_another_base_url_and_send_nothing_there(
    tmp_path: Path, two_servers: tuple[ServedSandbox, ServedSandbox]
) -> None:
    first, second = two_servers
    _finished_run(first, tmp_path)
    for command in (("apply", "--resume"), ("status", "last")):
        result = mlrun(*command, *STATE, cwd=tmp_path, env=second.env())
        assert result.returncode == 2, (command, result.stderr)
        assert f"ran against {first.url}, not {second.url}" in result.stderr
        assert "Traceback" not in result.stderr
    assert second.truth()["requests"] == 0


@pytest.mark.slow
def test_resume_refuses_another_key_naming_fingerprints_never_keys(
    tmp_path: Path, two_servers: tuple[ServedSandbox, ServedSandbox]
) -> None:
    first, _ = two_servers
    _finished_run(first, tmp_path)
    before = first.truth()["requests"]
    result = mlrun("apply", "--resume", *STATE, cwd=tmp_path, env=first.env(OTHER_KEY))
    assert result.returncode == 2, result.stderr
    assert key_fingerprint(CANARY_KEY) in result.stderr
    assert key_fingerprint(OTHER_KEY) in result.stderr
    assert CANARY_KEY not in result.stderr + result.stdout
    assert OTHER_KEY not in result.stderr + result.stdout
    assert first.truth()["requests"] == before


@pytest.mark.slow
def test_resume_with_no_url_given_goes_back_to_the_runs_own_api(
    tmp_path: Path, two_servers: tuple[ServedSandbox, ServedSandbox]
) -> None:
    first, _ = two_servers
    _finished_run(first, tmp_path)
    before = first.truth()["requests"]
    result = mlrun(
        "apply", "--resume", *STATE, cwd=tmp_path, env={"MENTIONLAB_API_KEY": CANARY_KEY}
    )
    assert result.returncode == 0, result.stderr
    assert f"against {first.url}" in result.stderr
    assert first.truth()["requests"] > before  # it followed the run's jobs there


@pytest.mark.slow
def test_a_second_apply_on_a_locked_state_refuses_before_any_request(
    tmp_path: Path, two_servers: tuple[ServedSandbox, ServedSandbox]
) -> None:
    first, _ = two_servers
    write_manifest(tmp_path / "manifest.yaml", projects=20, salt="lock")
    with SqliteStore.open(tmp_path / "state" / "ledger.sqlite") as holder:
        holder.lock("run:r")
        result = mlrun("apply", "manifest.yaml", *STATE, cwd=tmp_path, env=first.env())
    assert result.returncode == 2, result.stderr
    assert "another mlrun run holds the ledger" in result.stderr
    assert first.truth()["requests"] == 0


def test_pinned_target_rules() -> None:
    class Run:
        def __init__(self, url: str, fingerprint: str | None) -> None:
            self.run_id, self.base_url, self.key_fingerprint = "r1", url, fingerprint

    env = {"MENTIONLAB_API_KEY": CANARY_KEY}
    run = Run("https://api.example.com", key_fingerprint(CANARY_KEY))
    assert pinned_target(run, sandbox=False, base_url=None, env=env) == Target(
        "https://api.example.com", CANARY_KEY
    )
    same = pinned_target(run, sandbox=False, base_url="HTTPS://API.example.com/", env=env)
    assert same.base_url.lower() == run.base_url
    sandbox_run = Run(SANDBOX.base_url, None)
    assert pinned_target(sandbox_run, sandbox=False, base_url=None, env={}) == SANDBOX
    assert pinned_target(sandbox_run, sandbox=True, base_url=None, env={}) == SANDBOX


def _wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _triggered(ledger_path: Path) -> int:
    if not ledger_path.exists():
        return 0
    with SqliteStore.open(ledger_path) as ledger:
        runs = ledger.runs()
        if not runs:
            return 0
        states = [r.state for r in ledger.actions(runs[0].run_id)]
        return sum(state == ActionState.TRIGGERED for state in states)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sandbox_run_resumes_on_the_sandbox_with_no_key_and_no_url(
    tmp_path: Path, signum: signal.Signals
) -> None:
    quickstart = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
    args = ("apply", str(quickstart), "--sandbox", "--no-progress")
    process = subprocess.Popen(
        mlrun_command(*args),
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _triggered(tmp_path / ".mlrun" / "ledger.sqlite") >= 2, timeout=60)
    os.kill(process.pid, signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert "Traceback" not in err
    assert "`mlrun apply --resume` continues the run" in out  # the hint, used as written
    resumed = mlrun("apply", "--resume", cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "against the in-process sandbox" in resumed.stderr
    assert "everything completed as asked" in resumed.stdout
    status = mlrun("status", "last", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    (state,) = (tmp_path / ".mlrun" / "sandbox").iterdir()  # what the sandbox really created
    created = Counter(t["project_id"] for t in json.loads(state.read_text())["triggers"])
    with SqliteStore.open(tmp_path / ".mlrun" / "ledger.sqlite") as ledger:
        (run,) = ledger.runs()
        asked = Counter(action.project_id for action in run.plan.actions)
    assert created == asked  # each action triggered once: nothing lost, nothing sent twice
