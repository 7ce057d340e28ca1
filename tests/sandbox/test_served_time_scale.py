"""`mlrun sandbox serve` runs jobs as fast as `mlrun apply --sandbox` unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from subprocesses import start_served_sandbox


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "scale", "banner"),
    [
        (None, 60.0, "time scale 60: jobs run 60x faster than real time"),
        (1.0, 1.0, "time scale 1: real time"),
    ],
)
def test_the_served_time_scale_is_60_by_default_and_1_on_request(
    tmp_path: Path, flag: float | None, scale: float, banner: str
) -> None:
    with start_served_sandbox(tmp_path, time_scale=flag) as served:
        config = httpx.get(f"{served.url}/_sandbox/config", timeout=10.0).json()
        assert config["timeScale"] == scale
    assert banner in served.log.read_text(encoding="utf-8")
