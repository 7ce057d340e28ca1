"""The HTML report in a real browser: headless Chromium renders it, screenshot and DOM checked."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from runner.report import write_reports

from report.report_support import STANDARD_OUTCOMES
from runs.runs_support import standard_report

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
WIDTH, HEIGHT = 1280, 2000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium is not installed (Debian: apt-get install chromium)",
    ),
]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, isolated: its own profile, no network services, no updates."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    report = standard_report(tmp_path / "state")
    (path,) = write_reports(report, tmp_path / "out", ["html"])
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
def test_the_report_renders_in_chromium(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = chromium(
        f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri(),
        profile=tmp_path / "profile",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 30_000  # a drawn page, not a blank one


@pytest.mark.slow
def test_the_dom_holds_the_table_and_the_charts(page: Path, tmp_path: Path) -> None:
    result = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr
    dom = result.stdout
    for chart in ("timeline-chart", "projects-chart", "models-chart"):
        assert f'<svg id="{chart}"' in dom
    assert dom.count('<tr class="problem') == 9
    assert dom.count('<tr class="ok') == 3
    for key in STANDARD_OUTCOMES:
        assert f'<th scope="row">{key}</th>' in dom
    assert 'class="rate-limited"' in dom
    assert dom.index("outcome-FAILED") < dom.index("outcome-OK")
