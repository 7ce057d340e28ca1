"""Helpers for the past-runs tests: the real command, ledgers with runs, report files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from runner.plan import Plan
from runner.report import build_report, render_json
from runner.report.model import Report
from runner.store import SqliteStore

from report.report_support import (
    BASE_URL,
    T0,
    Scenario,
    counters,
    job_action,
    standard_scenario,
)
from subprocesses import run_mlrun

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
ENV: dict[str, str] = {}


def mlrun(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``mlrun ARGS`` as a user runs it, in ``cwd``, without the caller's MENTIONLAB_/MLRUN_."""
    return run_mlrun(*args, cwd=cwd, env={"NO_COLOR": "1", **(env or {})}, timeout=timeout)


def standard_report(state_dir: Path) -> Report:
    """The report of tests/report's standard scenario (every outcome), its ledger in state_dir."""
    scenario = standard_scenario(state_dir)
    try:
        return build_report(scenario.ledger, scenario.run_id, env=ENV, now=scenario.clock)
    finally:
        scenario.ledger.close()


def ok_run(state_dir: Path, run_id: str, projects: tuple[str, ...], *, start: float = T0) -> None:
    """A finished run in ``state_dir``'s ledger where every job of ``projects`` completed."""
    actions = [job_action(project, 0) for project in projects]
    ledger = SqliteStore.open(state_dir / "ledger.sqlite")
    plan = Plan(actions=tuple(actions), manifest_digest="sha256:" + "ef" * 32)
    ledger.create_run(run_id, plan, base_url=BASE_URL, meta={"mlrunVersion": "9.9.9"}, now=start)
    scenario = Scenario(ledger, run_id, clock=start, actions={a.key: a for a in actions})
    try:
        _complete(scenario, start)
    finally:
        scenario.ledger.close()


def _complete(scenario: Scenario, start: float) -> None:
    scenario.clock = start
    for key, action in scenario.actions.items():
        job_id = f"job-{key.replace('/', '-')}"
        scenario.trigger(key, job_id)
        total = action.expected_executions or 0
        scenario.finish(key, job_id, "completed", counters(total, total))
    scenario.end()


def write_report(path: Path, report: Report) -> Path:
    """``report`` as a report.json at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_json(report), encoding="utf-8")
    return path


def report_of(state_dir: Path, run_id: str) -> Report:
    """The report of ``run_id`` in ``state_dir``'s ledger."""
    with SqliteStore.open(state_dir / "ledger.sqlite") as ledger:
        return build_report(ledger, run_id, env=ENV)


def read_json(path: Path) -> Any:
    """The JSON in ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))
