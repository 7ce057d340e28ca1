"""Fixtures of the chaos suite: its size switch and a served sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.chaos_support import ServedSandbox, full_counts, start_served_sandbox


@pytest.fixture
def chaos_full(request: pytest.FixtureRequest) -> bool:
    """Whether the full counts were asked for (``--chaos-full`` or ``MLRUN_CHAOS_FULL=1``)."""
    return full_counts(request.config)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSandbox]:
    """A sandbox served on loopback (seed 0), always terminated: jobs end within a second, and
    no rate limits (headers in whole seconds would pace the runner at 10 requests/s; limits are
    proven in test_scenarios.py and tests/limiter)."""
    extra = ("--rate-limits", "off")
    with start_served_sandbox(
        tmp_path / "sandbox", seed=0, time_scale=1000, extra=extra
    ) as sandbox:
        yield sandbox
