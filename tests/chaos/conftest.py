"""Options and fixtures of the chaos suite: reduced counts by default, full with --chaos-full."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.chaos_support import (
    FIGURES,
    ServedSandbox,
    full_counts,
    start_served_sandbox,
    write_figures,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-full",
        action="store_true",
        default=False,
        help="Run the chaos suite at full size (100 kills, 500-action fault mix, ...).",
    )
    parser.addoption(
        "--chaos-figures",
        default=None,
        metavar="FILE",
        help="Write the chaos suite's figures (kills, duplicates, lost, ...) to FILE as JSON.",
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the figures the chaos tests recorded (the numbers docs/reliability.md quotes)."""
    if not FIGURES:
        return
    terminalreporter.section("chaos figures")
    for row in FIGURES:
        terminalreporter.write_line(json.dumps(row, sort_keys=True))
    target = config.getoption("--chaos-figures")
    if target:
        write_figures(Path(target))


@pytest.fixture
def chaos_full(request: pytest.FixtureRequest) -> bool:
    """Whether the full counts were asked for (``pytest tests/chaos --chaos-full``)."""
    return full_counts(request.config)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSandbox]:
    """A sandbox served on loopback (seed 0, time scale 50); always terminated."""
    with start_served_sandbox(tmp_path / "sandbox", seed=0) as sandbox:
        yield sandbox
