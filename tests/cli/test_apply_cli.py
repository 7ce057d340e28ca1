"""``mlrun apply`` end to end, as a user runs it: the installed command, a fresh directory."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from runner.schemas import load_schema

from subprocesses import run_mlrun as mlrun

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_on_the_sandbox_completes_and_writes_every_report(tmp_path: Path) -> None:
    result = mlrun("apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "everything completed as asked" in result.stdout
    run_dirs = list((tmp_path / "mlrun-reports").iterdir())
    assert len(run_dirs) == 1
    report = json.loads((run_dirs[0] / "report.json").read_text())
    jsonschema.validate(report, load_schema("report.schema.json"))
    assert report["exitCode"] == 0
    assert report["run"]["rateLimits"] == [
        {"limit": 10, "seconds": 1.0},
        {"limit": 300, "seconds": 60.0},
        {"limit": 10000, "seconds": 3600.0},
    ]
    assert {"report.md", "junit.xml"} <= {p.name for p in run_dirs[0].iterdir()}
    assert (tmp_path / ".mlrun" / "ledger.sqlite").exists()
    # acme-us asks for cached jobs only: no execution is counted for it, and the tables say so.
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["acme-us"][4:] == ["—", "—", "—", "—"]
    assert rows["acme-eu"][4:] == ["72", "72", "72", "0"]
    markdown = (run_dirs[0] / "report.md").read_text()
    assert "| acme-us | 1 | 1 | 0 | — | — | — | — |" in markdown


@pytest.mark.slow
def test_without_an_api_key_apply_refuses_before_any_request(tmp_path: Path) -> None:
    result = mlrun("apply", str(QUICKSTART), cwd=tmp_path)
    assert result.returncode == 2
    assert "MENTIONLAB_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".mlrun").exists()


@pytest.mark.slow
def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    env = {"MENTIONLAB_API_KEY": "ml_live_x", "MENTIONLAB_BASE_URL": "http://api.example.com"}
    result = mlrun("apply", str(QUICKSTART), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "plain http is allowed only to loopback" in result.stderr


@pytest.mark.slow
def test_an_invalid_manifest_exits_2_with_its_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprojects:\n  - name: x\n    id: not-a-uuid\n    jobs: []\n")
    result = mlrun("apply", str(bad), "--sandbox", cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.yaml:4" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args", [(), ("--resume",)])
def test_nothing_to_do_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = mlrun("apply", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def _apply_at_a_terminal(tmp_path: Path, answer: str, *extra: str) -> tuple[int, str]:
    """``mlrun apply --sandbox`` with a terminal on stdin (a pty), answering its question."""
    import os  # noqa: PLC0415
    import pty  # noqa: PLC0415
    import select  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import time  # noqa: PLC0415

    from subprocesses import clean_env, mlrun_command  # noqa: PLC0415

    controller, terminal = pty.openpty()
    env = {k: v for k, v in clean_env().items() if k != "CI"}
    args = ("apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", *extra)
    process = subprocess.Popen(
        mlrun_command(*args), cwd=tmp_path, env=env, stdin=terminal, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(terminal)
    assert process.stderr is not None
    seen, deadline = b"", time.monotonic() + 60
    while b"Only 'yes' applies" not in seen and process.poll() is None:
        assert time.monotonic() < deadline, seen
        if select.select([process.stderr], [], [], 0.1)[0]:
            seen += os.read(process.stderr.fileno(), 4096)
    if answer:
        os.write(controller, answer.encode() + b"\n")
    seen += process.stderr.read()
    process.stderr.close()
    process.wait(timeout=60)
    os.close(controller)
    return process.returncode, seen.decode()


@pytest.mark.slow
def test_at_a_terminal_apply_shows_the_cost_and_sends_only_after_yes(tmp_path: Path) -> None:
    code, err = _apply_at_a_terminal(tmp_path, "no")
    assert code == 3, err
    assert "plan: 4 actions in 3 projects" in err
    assert "; budget: no budget set" in err
    assert "apply cancelled at the confirmation: no trigger was sent" in err
    assert not list((tmp_path / ".mlrun").glob("sandbox/*.json"))  # no run was started
    code, err = _apply_at_a_terminal(tmp_path, "yes")
    assert code == 0, err


@pytest.mark.slow
def test_with_yes_or_without_a_terminal_apply_does_not_ask(tmp_path: Path) -> None:
    code, err = _apply_at_a_terminal(tmp_path, "", "--yes")
    assert code == 0, err
    assert "Only 'yes' applies" not in err
    piped = mlrun("apply", str(QUICKSTART), "--sandbox", "--time-scale", "600", cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "plan: 4 actions in 3 projects" in piped.stderr
    assert "Only 'yes' applies" not in piped.stderr
