"""SIGKILL, SIGINT or SIGTERM at random moments, then ``mlrun apply --resume``: exactly once.

SIGINT and SIGTERM must also stop the process cleanly wherever they land: exit 3, no
traceback, and the report written once a run exists.

A real ``mlrun apply`` subprocess runs against a real served sandbox (uvicorn on loopback), and is
killed with SIGKILL (no handler, no cleanup: the kernel closes its sockets and releases the ledger
lock) at seeded random moments: while planning, while triggering, while following, while writing
the report. Each kill is followed by ``mlrun apply --resume``, itself killed again until the
run's kills are used up; the last resume runs to the end. The oracle is the sandbox's ground
truth: each planned trigger (project id, models, execution count) processed exactly once, and
the final report.json listing every action OK, with the job ids the sandbox created.

Reduced (CI): 1 run x 5 kills. Full (``--chaos-full``): 10 runs x 10 kills.

The served sandbox runs with ``--rate-limits off`` and ``--time-scale 1000``: with limits on, its
``X-RateLimit-Reset`` (whole unix seconds, as the API's) outlasts its time-scaled windows, and the
runner rightly slows to the headers, which only makes this test slower. The runner keeps its own
8/s limit; limits and headers are proven in virtual time (test_scenarios.py, tests/limiter).
Every request takes 0.2-0.4 s (``latency=200s..400s`` simulated), jobs end within seconds, and
the runner sends at most 8/s, so a kill usually finds triggers in flight: sent or about to be,
their outcome not journaled.
Most kills aim at the first 2 s of a process (planning, settling, triggering), some later
(following, reporting).
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from chaos.chaos_support import (
    PlannedJob,
    ServedSandbox,
    compare_triggers,
    mlrun_command,
    read_report,
    run_mlrun,
    start_served_sandbox,
    write_manifest,
)
from figures import record

pytestmark = pytest.mark.chaos

PROJECTS = 30
SETTLE_GRACE = "0.5"
ANCHOR_WAIT = 5.0  # seconds


@dataclass
class KillLog:
    """Where each kill landed, judged from the ledger right after it."""

    phases: Counter[str] = field(default_factory=Counter)
    in_flight_at_kill: int = 0
    missed: int = 0  # the process ended before its kill came

    def classify(self, ledger: Path) -> None:
        phase, in_flight = _phase(ledger)
        self.phases[phase] += 1
        self.in_flight_at_kill += in_flight


def _phase(ledger: Path) -> tuple[str, int]:
    if not ledger.exists():
        return "before the ledger", 0
    uri = f"file:{ledger}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as db:
            states = Counter(state for (state,) in db.execute("SELECT state FROM actions"))
            jobs = db.execute("SELECT COUNT(*), COUNT(terminal_at) FROM jobs").fetchone()
    except sqlite3.Error:
        return "before the run was recorded", 0
    if not states:
        return "before the run was recorded", 0
    in_flight = states["in_flight"] + states["ambiguous"]
    if states["pending"] or in_flight:
        return "triggering", in_flight
    if jobs[1] < jobs[0]:
        return "following", 0
    return "reporting", 0


def _kill_after(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    delay: float,
    *,
    anchor: Callable[[], bool] | None,
) -> int | None:
    """Start the command, SIGKILL it ``delay`` s later (counted from the moment ``anchor`` holds,
    if given); None if it was killed, else its exit code."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if anchor is not None:
        # An anchor that never comes (a resume with nothing left to send) waits 5 s at most.
        deadline = time.monotonic() + ANCHOR_WAIT
        while not anchor() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return None
    return process.returncode


def _has_run(ledger: Path) -> bool:
    return _count(ledger, "runs") > 0


def _more_rows(ledger: Path, table: str, before: int) -> bool:
    return _count(ledger, table) > before


def _count(ledger: Path, table: str) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


def _killed_run(
    sandbox: ServedSandbox,
    workdir: Path,
    planned: list[PlannedJob],
    manifest: Path,
    kills: int,
    rng: random.Random,
    log: KillLog,
) -> None:
    """Apply, kill ``kills`` times at random moments (resuming after each), then finish."""
    state, reports = workdir / "state", workdir / "reports"
    common = ["--state-dir", str(state), "--report-dir", str(reports)]
    common += ["--settle-grace", SETTLE_GRACE, "-q"]
    fresh = mlrun_command("apply", str(manifest), *common)
    resume = mlrun_command("apply", "--resume", *common)
    env = sandbox.env()
    done = 0
    longest = 5.0
    while done < kills:
        ledger = state / "ledger.sqlite"
        fresh_run = not _has_run(ledger)
        # Half the kills count from the process's first new trigger intent and land while
        # triggers are on the wire; of a fresh apply, three in ten count from the moment its run
        # is recorded (the in-flight guard's reads come first) and one in five from the start
        # (planning); the others from the start.
        draw = rng.random()
        anchor: Callable[[], bool] | None = None
        delay = rng.uniform(0.05, 2.0) if rng.random() < 0.8 else rng.uniform(2.0, 5.0)
        if draw < 0.5:
            anchor = partial(_more_rows, ledger, "attempts", _count(ledger, "attempts"))
            delay = rng.uniform(0.0, 0.3)
        elif fresh_run and draw < 0.8:
            anchor = partial(_has_run, ledger)
        code = _kill_after(
            fresh if fresh_run else resume, workdir, env, min(delay, longest), anchor=anchor
        )
        if code is None:
            log.classify(state / "ledger.sqlite")
            done += 1
            continue
        # It ended before the kill: the run is complete, so aim the next kills at the short
        # resume (settling nothing, rewriting the report) instead.
        assert code == 0, f"an uninterrupted apply ended with {code}"
        log.missed += 1
        longest = 0.5
    command = resume if _has_run(state / "ledger.sqlite") else fresh
    final = run_mlrun(*command[3:], cwd=workdir, env=env, timeout=120)
    assert final.returncode == 0, final.stderr + final.stdout
    assert "Traceback" not in final.stderr


def _check(sandbox: ServedSandbox, planned: list[PlannedJob], reports: Path) -> tuple[int, int]:
    truth = sandbox.truth()
    tally = compare_triggers(planned, truth["triggers"])
    report = read_report(reports)
    outcomes = Counter(action["outcome"] for action in report["actions"])
    assert outcomes == {"OK": len(planned)}, outcomes
    report_ids = sorted(i for action in report["actions"] for i in action["done"]["jobIds"])
    truth_ids = sorted(t["jobId"] for t in truth["triggers"])
    assert report_ids == truth_ids
    assert tally.unexpected == 0
    return tally.lost, tally.duplicates


def test_sigkill_at_random_moments_then_resume_triggers_each_action_exactly_once(
    tmp_path: Path, chaos_full: bool
) -> None:
    runs, kills = (10, 10) if chaos_full else (1, 5)
    log = KillLog()
    lost = duplicates = actions = 0
    started = time.monotonic()
    for run in range(runs):
        workdir = tmp_path / f"run-{run}"
        workdir.mkdir()
        manifest = workdir / "manifest.yaml"
        planned = write_manifest(manifest, projects=PROJECTS, salt=f"kill-{run}", per_second=8)
        rng = random.Random(1000 + run)
        served = start_served_sandbox(
            workdir / "sandbox",
            seed=run,
            time_scale=1000.0,
            extra=("--rate-limits", "off", "--faults", "latency=200s..400s"),
        )
        with served as sandbox:
            _killed_run(sandbox, workdir, planned, manifest, kills, rng, log)
            run_lost, run_duplicates = _check(sandbox, planned, workdir / "reports")
        lost += run_lost
        duplicates += run_duplicates
        actions += len(planned)
    record(
        "sigkill-resume",
        runs=runs,
        kills=sum(log.phases.values()),
        kill_phases=dict(log.phases),
        triggers_in_doubt_at_kills=log.in_flight_at_kill,
        ended_before_kill=log.missed,
        actions=actions,
        lost=lost,
        duplicates=duplicates,
        seconds=round(time.monotonic() - started, 1),
    )
    assert (lost, duplicates) == (0, 0)
    assert sum(log.phases.values()) == runs * kills


@dataclass
class SignalLog:
    """What each SIGINT or SIGTERM led to."""

    phases: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[int] = field(default_factory=Counter)
    reports_written: int = 0
    missed: int = 0


def _signal_after(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    delay: float,
    signum: signal.Signals,
    *,
    anchor: Callable[[], bool] | None,
) -> tuple[int, str, bool]:
    """Start the command, send ``signum`` ``delay`` s later (from ``anchor``, if given); its exit
    code, its stderr, and whether the signal was sent before it ended."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if anchor is not None:
        # An anchor that never comes (a resume with nothing left to send) waits 5 s at most.
        deadline = time.monotonic() + ANCHOR_WAIT
        while not anchor() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        _, err = process.communicate(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signum)
        _, err = process.communicate(timeout=90)
        return process.returncode, err, True
    return process.returncode, err, False


def _report_mtime(reports: Path) -> float:
    return max((p.stat().st_mtime for p in reports.glob("*/report.json")), default=0.0)


def _signalled_run(
    sandbox: ServedSandbox,
    workdir: Path,
    manifest: Path,
    signals: int,
    rng: random.Random,
    log: SignalLog,
) -> None:
    """Apply, stop it with SIGINT or SIGTERM ``signals`` times (resuming after each), finish."""
    state, reports = workdir / "state", workdir / "reports"
    common = ["--state-dir", str(state), "--report-dir", str(reports), "--settle-grace", "0.5"]
    fresh = mlrun_command("apply", str(manifest), *common, "--no-progress")
    resume = mlrun_command("apply", "--resume", *common, "--no-progress")
    ledger = state / "ledger.sqlite"
    done = 0
    while done < signals:
        fresh_run = not _has_run(ledger)
        signum = rng.choice([signal.SIGINT, signal.SIGTERM])
        anchor: Callable[[], bool] | None = None
        delay = rng.uniform(0.05, 2.0) if rng.random() < 0.8 else rng.uniform(2.0, 5.0)
        if rng.random() < 0.5:
            anchor = partial(_more_rows, ledger, "attempts", _count(ledger, "attempts"))
            delay = rng.uniform(0.0, 0.3)
        before = time.time()
        command = fresh if fresh_run else resume
        code, err, sent = _signal_after(
            command, workdir, sandbox.env(), delay, signum, anchor=anchor
        )
        assert "Traceback" not in err, err
        assert "internal error" not in err, err
        if not sent:
            assert code == 0, err
            log.missed += 1
            continue
        phase, _ = _phase(ledger)
        log.phases[phase] += 1
        log.exit_codes[code] += 1
        assert code == 3, f"{signum.name} during {phase}: exit {code}\n{err}"
        if _has_run(ledger):
            assert _report_mtime(reports) >= before - 1, f"no report after {phase}: {err}"
            log.reports_written += 1
        else:
            assert "no trigger was sent" in err or "interrupted" in err, err
        done += 1
    final = run_mlrun(*(resume if _has_run(ledger) else fresh)[3:], cwd=workdir, env=sandbox.env())
    assert final.returncode == 0, final.stderr + final.stdout


def test_sigint_and_sigterm_anywhere_exit_3_report_and_resume_exactly_once(
    tmp_path: Path, chaos_full: bool
) -> None:
    runs, signals = (10, 10) if chaos_full else (1, 5)
    log = SignalLog()
    lost = duplicates = actions = 0
    for run in range(runs):
        workdir = tmp_path / f"run-{run}"
        workdir.mkdir()
        manifest = workdir / "manifest.yaml"
        planned = write_manifest(manifest, projects=PROJECTS, salt=f"signal-{run}", per_second=8)
        served = start_served_sandbox(
            workdir / "sandbox",
            seed=run,
            time_scale=1000.0,
            extra=("--rate-limits", "off", "--faults", "latency=200s..400s"),
        )
        with served as sandbox:
            _signalled_run(sandbox, workdir, manifest, signals, random.Random(2000 + run), log)
            run_lost, run_duplicates = _check(sandbox, planned, workdir / "reports")
        lost += run_lost
        duplicates += run_duplicates
        actions += len(planned)
    record(
        "signal-resume",
        runs=runs,
        signals=sum(log.phases.values()),
        phases=dict(log.phases),
        exit_codes={str(code): n for code, n in log.exit_codes.items()},
        reports_written=log.reports_written,
        ended_before_signal=log.missed,
        actions=actions,
        lost=lost,
        duplicates=duplicates,
    )
    assert (lost, duplicates) == (0, 0)
