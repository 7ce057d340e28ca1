"""Fixtures of the hostile-input tests: the chaos suite's size switch."""

from __future__ import annotations

import pytest

from chaos.chaos_support import full_counts


@pytest.fixture
def chaos_full(request: pytest.FixtureRequest) -> bool:
    """Whether the full counts were asked for (``--chaos-full`` or ``MLRUN_CHAOS_FULL=1``)."""
    return full_counts(request.config)
