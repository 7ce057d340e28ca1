"""``mlrun report merge``: shard reports into one, valid, with totals and exit code recomputed."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from runner.errors import UsageError
from runner.report.merge import load_report, merge_reports, report_from_json
from runner.report.reconcile import compute_totals
from runner.schemas import load_schema

from report.report_support import T0
from runs.runs_support import mlrun, ok_run, read_json, report_of, standard_report, write_report


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    """Two shard reports: one with every outcome, one where everything completed."""
    standard = standard_report(tmp_path / "a")
    ok_run(tmp_path / "b", "20250615T000100Z-b00b00", ("zeta", "eta"), start=T0 + 60)
    return [
        write_report(tmp_path / "shard-1" / "report.json", standard),
        write_report(
            tmp_path / "shard-2" / "report.json",
            report_of(tmp_path / "b", "20250615T000100Z-b00b00"),
        ),
    ]


def test_a_report_reads_back_as_it_was_written(tmp_path: Path) -> None:
    report = standard_report(tmp_path)
    assert report_from_json(report.to_json()).to_json() == report.to_json()


def test_merging_concatenates_actions_and_recomputes_totals(shards: list[Path]) -> None:
    reports = [load_report(path) for path in shards]
    merged = merge_reports(reports, now=T0 + 600)
    assert len(merged.actions) == sum(len(r.actions) for r in reports)
    ranks = [a.outcome.rank for a in merged.actions]
    assert ranks == sorted(ranks)
    assert merged.totals.run == compute_totals(merged.actions).run
    assert [t.name for t in merged.totals.projects] == [
        "acme",
        "beta",
        "gamma",
        "delta",
        "zeta",
        "eta",
    ]
    assert merged.totals.run.actions == len(merged.actions)
    assert merged.run.run_id == "+".join(r.run.run_id for r in reports)
    assert merged.run.started_at == reports[0].run.started_at
    assert merged.exit_code() == reports[0].exit_code()
    jsonschema.validate(merged.to_json(), load_schema("report.schema.json"))


def test_overlapping_shards_are_refused(shards: list[Path]) -> None:
    report = load_report(shards[0])
    with pytest.raises(UsageError, match="is in both a and b"):
        merge_reports([report, report], now=T0, names=["a", "b"])


@pytest.mark.slow
def test_the_command_writes_a_valid_merged_report(shards: list[Path], tmp_path: Path) -> None:
    output = tmp_path / "merged" / "report.json"
    result = mlrun(
        "report", "merge", *map(str, shards), "-o", str(output), "--report-format", "html",
        "--report-format", "markdown", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    merged = read_json(output)
    jsonschema.validate(merged, load_schema("report.schema.json"))
    assert len(merged["actions"]) == 12 + 2
    assert merged["exitCode"] == 3  # the standard shard has a TIMEOUT: resumable
    assert "+20250615T000100Z-b00b00" in merged["run"]["runId"]
    assert {p.name for p in output.parent.iterdir()} == {"report.json", "report.md", "report.html"}
    assert "merged 2 reports, 14 actions" in result.stderr
    with_code = mlrun(
        "report", "merge", *map(str, shards), "-o", str(output), "--exit-code", cwd=tmp_path
    )
    assert with_code.returncode == 3


@pytest.mark.slow
def test_the_command_refuses_overlap_and_garbage(shards: list[Path], tmp_path: Path) -> None:
    output = str(tmp_path / "m.json")
    overlap = mlrun("report", "merge", str(shards[0]), str(shards[0]), "-o", output, cwd=tmp_path)
    assert overlap.returncode == 2
    assert "must not overlap" in overlap.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"formatVersion": 2}', encoding="utf-8")
    bad = mlrun("report", "merge", str(garbage), "-o", output, cwd=tmp_path)
    assert bad.returncode == 2
    assert "is not an mlrun report" in bad.stderr
    missing = mlrun("report", "merge", str(tmp_path / "nope.json"), "-o", output, cwd=tmp_path)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr + bad.stderr + overlap.stderr
    assert not Path(output).exists()
