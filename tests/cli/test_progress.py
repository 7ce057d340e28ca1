"""Progress: a live block on a terminal, a few plain lines in a pipe, quiet when asked."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from runner.run.progress import Outage, ProgressView, ProjectProgress, RunProgress, ViewOptions

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def _progress() -> RunProgress:
    progress = RunProgress(total=4, projects={"acme": ProjectProgress(actions=4)})
    progress.note("acme", sent=2, in_flight=1, triggered=1)
    progress.requests = 7
    return progress


def test_the_live_view_redraws_in_place_and_lists_busy_projects() -> None:
    stream = io.StringIO()
    view = ProgressView(_progress(), stream, ViewOptions(live=True))
    view._draw()
    view._draw()
    text = stream.getvalue()
    assert "\x1b[2K" in text  # lines cleared and redrawn
    assert "\x1b[2F" in text  # the second draw moved back over the two-line block
    assert "acme: 1/4 done · 1 in flight" in text
    assert "triggers 1/4 done" in text


def test_the_plain_view_prints_timestamped_lines_without_escape_codes() -> None:
    stream = io.StringIO()
    view = ProgressView(_progress(), stream, ViewOptions(live=False))
    view._draw()
    line = stream.getvalue()
    assert line.startswith("[")
    assert "\x1b" not in line
    assert line.count("\n") == 1


def test_a_pause_is_shown_as_what_the_run_waits_for() -> None:
    stream = io.StringIO()
    view = ProgressView(
        _progress(), stream, ViewOptions(live=False), pause=lambda: (42.0, "HTTP 429: Retry-After")
    )
    view._draw()
    assert "waiting 42s (HTTP 429: Retry-After)" in stream.getvalue()


def test_an_outage_is_shown_with_when_it_began_why_and_when_the_next_probe_goes() -> None:
    since = time.mktime(time.strptime("2026-12-07 12:03:10", "%Y-%m-%d %H:%M:%S"))  # local
    progress = _progress()
    progress.outage = Outage(since=since, why="HTTP 503", next_probe=since + 50.0)
    stream = io.StringIO()
    view = ProgressView(
        progress,
        stream,
        ViewOptions(live=False),
        pause=lambda: (42.0, "HTTP 429: Retry-After"),
        wall=lambda: since + 30.0,
    )
    view._draw()
    assert "API unavailable since 12:03:10 (HTTP 503); next probe in 20s" in stream.getvalue()
    assert "waiting 42s" not in stream.getvalue()  # the outage is what holds the run
    progress.outage = replace(progress.outage, why="no answer to the probe", next_probe=None)
    assert view.summary_line().endswith(
        "API unavailable since 12:03:10 (no answer to the probe); probing"
    )
    progress.outage = None
    assert view.summary_line().endswith("waiting 42s (HTTP 429: Retry-After)")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MENTIONLAB_", "MLRUN_"))}
    env.pop("NO_COLOR", None)
    return env


@pytest.mark.slow
def test_a_terminal_gets_the_live_display(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "runner", "apply", str(QUICKSTART), "--sandbox", "--yes"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal on stdin/stdout/stderr
        os.chdir(tmp_path)
        os.execve(sys.executable, command, _env())
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    output = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert "\x1b[2K" in output
    assert "mlrun " in output
    assert "triggers" in output


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True])
def test_a_pipe_gets_plain_lines_or_nothing_when_quiet(tmp_path: Path, quiet: bool) -> None:
    args = ["apply", str(QUICKSTART), "--sandbox", "--time-scale", "600"]
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args, *(["-q"] if quiet else [])],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert "\x1b" not in result.stdout
    progress_lines = [line for line in result.stderr.splitlines() if "triggers" in line]
    if quiet:
        assert progress_lines == []
        assert result.stderr == ""
    else:
        assert 1 <= len(progress_lines) <= 3
        assert all(line.startswith("[") for line in progress_lines)
