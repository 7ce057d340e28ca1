"""The figures the reliability tests measure (kills, lost, duplicated, leaks), gathered per session.

A test calls :func:`record`; the row travels with the test's report (so it reaches the session
from an xdist worker too), is printed in a "chaos figures" section at the end of the session, and
``--chaos-figures FILE`` writes the rows as JSON lines. ``docs/reliability.md`` quotes a full run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIGURES_PROPERTY = "figures"

_recorded: list[dict[str, Any]] = []  # by the tests of this process, not yet reported


def record(scenario: str, **figures: Any) -> None:
    """Keep one scenario's figures for the session summary."""
    _recorded.append({"scenario": scenario, **figures})


def attach(report: pytest.TestReport) -> None:
    """Move the rows recorded during a test's call into its report's properties."""
    while _recorded:
        report.user_properties.append((FIGURES_PROPERTY, _recorded.pop(0)))


def reported(report: pytest.TestReport) -> list[dict[str, Any]]:
    """The rows a test's call report carries (from this process or from a worker)."""
    if report.when != "call":
        return []
    rows: list[dict[str, Any]] = []
    for name, value in report.user_properties:
        if name == FIGURES_PROPERTY and isinstance(value, dict):
            rows.append(value)
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    """The rows as JSON lines."""
    lines = (json.dumps(row, sort_keys=True) for row in rows)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
