"""Helpers of the chaos suite: a served sandbox, manifests, the CLI as a subprocess.

The figures the scenarios measure are recorded with :func:`figures.record`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subprocesses import (
    CANARY_KEY,
    ServedSandbox,
    clean_env,
    free_port,
    mlrun_command,
    run_mlrun,
    start_served_sandbox,
)

__all__ = [  # the served sandbox's helpers, named here too for the chaos suite's imports
    "CANARY_KEY",
    "ServedSandbox",
    "clean_env",
    "free_port",
    "mlrun_command",
    "run_mlrun",
    "start_served_sandbox",
]

REPO = Path(__file__).resolve().parents[2]
ORG = "01234567-89ab-cdef-0123-456789abcdef"
MODEL_SETS: tuple[tuple[str, ...], ...] = (
    ("gpt-5-mini", "claude-haiku-4-5"),
    ("gemini-2.5-flash",),
    ("gpt-5-mini", "claude-haiku-4-5", "gemini-2.5-flash"),
)

FULL_ENV = "MLRUN_CHAOS_FULL"


def full_counts(config: Any) -> bool:
    """Whether ``--chaos-full`` or ``MLRUN_CHAOS_FULL=1`` asks for the full counts."""
    option = bool(config.getoption("--chaos-full", default=False))
    return option or os.environ.get(FULL_ENV, "") not in {"", "0"}


@dataclass(frozen=True)
class PlannedJob:
    """One jobs entry of a generated manifest, as the sandbox should see it triggered."""

    project: str
    project_id: str
    models: tuple[str, ...]
    execution_count: int


def project_uuid(salt: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chaos-{salt}-{index}"))


def write_manifest(
    path: Path,
    *,
    projects: int,
    salt: str,
    per_second: int = 40,
    entries_every: int = 4,
) -> list[PlannedJob]:
    """A manifest of ``projects`` projects with jobs only; every ``entries_every``-th has two.

    Jobs only: an interrupted cached-jobs trigger cannot be settled (no list endpoint), so it
    is UNKNOWN by design, which is tested in tests/engine, not here.
    """
    lines = [
        "version: 1",
        "defaults:",
        f"  organisation: {ORG}",
        "settings:",
        "  concurrency: 8",
        f"  rateLimits: {{perSecond: {per_second}, perMinute: null, perHour: null}}",
        "  timeouts: {request: 5, connect: 2, follow: 600}",
        "  reports: {formats: [json]}",
        "projects:",
    ]
    planned: list[PlannedJob] = []
    for index in range(projects):
        name, pid = f"p{index}", project_uuid(salt, index)
        lines += [f"  - name: {name}", f"    id: {pid}", "    jobs:"]
        entries = 2 if index % entries_every == 0 else 1
        for entry in range(entries):
            models = MODEL_SETS[(index + entry) % len(MODEL_SETS)]
            count = 1 + (index + entry) % 3
            lines += [f"      - models: [{', '.join(models)}]", f"        executionCount: {count}"]
            planned.append(PlannedJob(name, pid, models, count))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return planned


def trigger_signature(trigger: dict[str, Any]) -> tuple[str, tuple[str, ...], int]:
    return (trigger["projectId"], tuple(trigger["aiModels"]), int(trigger["executionCount"]))


def planned_signature(job: PlannedJob) -> tuple[str, tuple[str, ...], int]:
    return (job.project_id, job.models, job.execution_count)


@dataclass(frozen=True)
class Tally:
    """How the sandbox's triggers compare with the plan: missing, duplicated, unexpected."""

    lost: int
    duplicates: int
    unexpected: int


def compare_triggers(planned: Sequence[PlannedJob], triggers: Sequence[dict[str, Any]]) -> Tally:
    want = Counter(planned_signature(job) for job in planned)
    got = Counter(trigger_signature(t) for t in triggers)
    lost = sum(max(0, n - got[sig]) for sig, n in want.items())
    duplicates = sum(max(0, n - want[sig]) for sig, n in got.items() if sig in want)
    unexpected = sum(n for sig, n in got.items() if sig not in want)
    return Tally(lost=lost, duplicates=duplicates, unexpected=unexpected)


def read_report(report_dir: Path) -> dict[str, Any]:
    """The one run's report.json under ``report_dir``."""
    files = sorted(report_dir.glob("*/report.json"))
    assert len(files) == 1, f"want one report.json, found {files}"
    data: dict[str, Any] = json.loads(files[0].read_text(encoding="utf-8"))
    return data
