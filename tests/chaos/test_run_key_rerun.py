"""A CI job killed mid-run, re-run on a fresh machine with the same run key: exactly once.

``mlrun apply`` runs in one working directory with a run key and a state outside it (a
PostgreSQL database, or a SQLite ledger standing for a persisted cache), and is killed with
SIGKILL at a random moment (planning, triggering, settling). The same command then runs in a
fresh directory with no ``.mlrun/``, as a re-run of the CI job on a new runner does. The oracle
is the served sandbox's ground truth: each planned trigger processed exactly once. A third
apply with the key finds the run finished and sends nothing.

Reduced (CI): 3 kill points per backend. Full (``--chaos-full``): 20 per backend.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from chaos.chaos_support import (
    ServedSandbox,
    compare_triggers,
    full_counts,
    mlrun_command,
    run_mlrun,
    start_served_sandbox,
    write_manifest,
)
from figures import record

pytestmark = pytest.mark.chaos

PROJECTS = 16
RUN_KEY = "github:acme/brand-monitoring:4242:apply"
LEASE_SECONDS = "3"  # a killed process's lease on PostgreSQL ends within this


def _kill_points(config: pytest.Config) -> int:
    return 20 if full_counts(config) else 3


def _apply(state: str, key: str, *extra: str) -> tuple[str, ...]:
    common = ("--state", state, "--run-key", key, "--no-wait", "--settle-grace", "0.5")
    return ("apply", "manifest.yaml", *common, *extra)


def test_a_killed_job_rerun_in_a_fresh_directory_with_its_run_key_pays_once(
    state: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    backend = "postgresql" if "://" in state else "sqlite"
    rng = random.Random(f"run-key-{backend}")
    points = _kill_points(request.config)
    lost = duplicates = mid_run = 0
    for point in range(points):
        lost_here, duplicates_here, sent_before = _killed_then_rerun(
            tmp_path / f"k{point}", state, point, rng=rng
        )
        lost += lost_here
        duplicates += duplicates_here
        mid_run += sent_before > 0
    figures = {"kills": points, "after_a_trigger": mid_run, "lost": lost, "duplicated": duplicates}
    record(f"run key re-run after SIGKILL ({backend})", **figures)
    assert (lost, duplicates) == (0, 0)


def _killed_then_rerun(
    root: Path, state: str, point: int, *, rng: random.Random
) -> tuple[int, int, int]:
    """Lost and duplicated triggers, and how many the killed process had sent."""
    first, second = root / "first", root / "second"
    first.mkdir(parents=True)
    second.mkdir()
    salt = f"rk{point}"
    planned = write_manifest(first / "manifest.yaml", projects=PROJECTS, salt=salt, per_second=20)
    (second / "manifest.yaml").write_bytes((first / "manifest.yaml").read_bytes())
    state_here = state if "://" in state else str(root / "cache" / "ledger.sqlite")
    # No rate limits (the runner keeps its own 20/s) and jobs that end within a second: what
    # is judged here is the triggers, and headers in whole seconds would only slow the runs.
    served = start_served_sandbox(
        root / "sandbox", seed=point, time_scale=1000, extra=("--rate-limits", "off")
    )
    with served as sandbox:
        env = {**sandbox.env(), "MLRUN_LEASE_SECONDS": LEASE_SECONDS}
        key = f"{RUN_KEY}:{point}"
        process = subprocess.Popen(
            mlrun_command(*_apply(state_here, key, "-q")),
            cwd=first,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_triggers(sandbox, process, rng.randint(0, len(planned) - 1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        sent_before = len(sandbox.truth()["triggers"])
        again = _apply(state_here, key, "--lock-timeout", "30")
        rerun = run_mlrun(*again, cwd=second, env=env, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        before = len(sandbox.truth()["triggers"])
        finished = run_mlrun(*again, cwd=second, env=env, timeout=60)
        assert finished.returncode == 0, finished.stderr
        assert "nothing is applied again" in finished.stderr
        truth = sandbox.truth()
        assert len(truth["triggers"]) == before  # the finished run was not applied again
        tally = compare_triggers(planned, truth["triggers"])
    return tally.lost, tally.duplicates + tally.unexpected, sent_before


def _wait_for_triggers(
    sandbox: ServedSandbox, process: subprocess.Popen[bytes], count: int
) -> None:
    """Until the sandbox processed ``count`` triggers (0: kill while planning, or just after)."""
    deadline = time.monotonic() + 30.0
    while len(sandbox.truth()["triggers"]) < count and process.poll() is None:
        assert time.monotonic() < deadline, "the run did not get there in time"
        time.sleep(0.01)
