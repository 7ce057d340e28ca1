"""Parsing the fault spec, durations and schedules; the CLI's option errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from runner.cli import main
from runner.sandbox import Change, Faults, Latency, RateLimitPolicy, SandboxConfig
from runner.sandbox.faults import parse_duration


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("40s") == 40.0
    assert parse_duration("2min") == 120.0
    assert parse_duration(3) == 3.0
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration("soon")


def test_fault_spec() -> None:
    faults = Faults.parse(
        "error_503=0.05,error_502=0.1@0.8,latency=20ms..250ms,spike=0.01:2s,"
        "list_lag=20s,commit_delay=1min,retry_after=mixed,target=triggers"
    )
    assert faults.error_503 == 0.05
    assert (faults.error_502, faults.processed_502) == (0.1, 0.8)
    assert faults.latency == Latency(20.0, 250.0, 0.01, 2000.0)
    assert (faults.list_lag, faults.commit_delay) == (20.0, 60.0)
    assert faults.retry_after == "mixed"
    assert faults.target == "triggers"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("error_500=2", "outside 0..1"),
        ("teapot=0.1", "unknown fault"),
        ("retry_after=later", "retry_after"),
        ("error_500", "expected name=value"),
    ],
)
def test_bad_fault_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.parse(spec)


def test_fault_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("error_503: 0.2\nlatency: {median: 10ms, p99: 100ms}\n", encoding="utf-8")
    faults = Faults.from_spec(str(path))
    assert faults.error_503 == 0.2
    assert faults.latency.p99_ms == 100.0


def test_config_accepts_strings_and_tuples() -> None:
    config = SandboxConfig(
        rate_limits="v2",  # type: ignore[arg-type]
        faults="error_500=0.5",  # type: ignore[arg-type]
        schedule=((10, {"rate_limits": "1/s", "faults": {"error_503": 1}, "credits": 5}),),  # type: ignore[arg-type]
    )
    assert config.rate_limits == RateLimitPolicy.named("v2")
    assert config.faults.error_500 == 0.5
    (change,) = config.schedule
    assert change == Change(
        after_requests=10,
        rate_limits=RateLimitPolicy.parse("1/s"),
        faults=Faults(error_503=1.0),
        credits=5,
    )
    with pytest.raises(ValueError, match="time_scale"):
        SandboxConfig(time_scale=0)


def test_serve_rejects_bad_options() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["sandbox", "serve", "--faults", "teapot=1"])
    assert result.exit_code == 2
    assert "unknown fault" in result.output
    result = runner.invoke(main, ["sandbox", "serve", "--rate-limits", "fast"])
    assert result.exit_code == 2
