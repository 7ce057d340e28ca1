"""``mlrun validate`` and ``mlrun schema`` end to end, through the real command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runner.cli.diagnostics import github_annotation
from runner.cli.github import escape_data, escape_property
from runner.errors import Diagnostic
from runner.exitcodes import ExitCode

Write = Callable[..., Path]
Run = Callable[..., Any]
REPO = Path(__file__).resolve().parents[2]

THREE_MISTAKES = """\
version: 1
modelSets:
  core: [gpt-5-mini, claude-haiku-4-5]
projects:
  - name: acme
    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b
    jobs:
      - models: [gpt-5-mini, anthropic]
        exectionCount: 3
      - models: cor
"""


@pytest.fixture
def invalid(write: Write) -> Path:
    return write(THREE_MISTAKES, "three.yaml")


@pytest.mark.slow
def test_valid_manifest_exits_0_with_a_summary(mlrun: Run) -> None:
    result = mlrun("validate", REPO / "examples" / "quickstart.yaml")
    assert result.code == ExitCode.OK
    assert result.stdout.strip() == "valid: 3 projects, 4 triggers in 1 file"


@pytest.mark.slow
def test_text_format_gives_three_precise_messages(mlrun: Run, invalid: Path) -> None:
    result = mlrun("validate", invalid)
    assert result.code == ExitCode.INVALID
    anthropic = (
        f"{invalid}:8:30: error: 'anthropic' is a provider key, valid under cachedJobs; under jobs"
        " use a model id such as claude-haiku-4-5 (at $.projects[0].jobs[0].models[1], value"
        " 'anthropic')"
    )
    typo = (
        f"{invalid}:9:9: error: unknown key 'exectionCount' in jobs[0]"
        " (at $.projects[0].jobs[0].exectionCount, value 'exectionCount')"
    )
    undefined = (
        f"{invalid}:10:17: error: undefined model set 'cor'"
        " (at $.projects[0].jobs[1].models, value 'cor')"
    )
    assert result.stdout.splitlines() == [
        anthropic,
        "  hint: model ids served by anthropic: claude-haiku-4-5",
        typo,
        "  hint: did you mean 'executionCount'?",
        undefined,
        "  hint: did you mean 'core'?",
        "invalid: 3 errors in 1 file",
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_json_format(mlrun: Run, invalid: Path) -> None:
    result = mlrun("validate", "--format", "json", invalid)
    assert result.code == ExitCode.INVALID
    report = json.loads(result.stdout)
    assert (report["valid"], report["errorCount"], report["warningCount"]) == (False, 3, 0)
    assert report["diagnostics"][0] == {
        "file": str(invalid),
        "line": 8,
        "column": 30,
        "jsonPath": "$.projects[0].jobs[0].models[1]",
        "message": "'anthropic' is a provider key, valid under cachedJobs; under jobs use a model"
        " id such as claude-haiku-4-5",
        "value": "anthropic",
        "hint": "model ids served by anthropic: claude-haiku-4-5",
        "severity": "error",
        "code": "model-kind",
    }


@pytest.mark.slow
def test_json_format_of_a_valid_manifest(mlrun: Run) -> None:
    result = mlrun("validate", "--format", "json", REPO / "examples" / "multi")
    report = json.loads(result.stdout)
    assert result.code == ExitCode.OK
    assert report["valid"] is True
    assert report["projectCount"] == 4
    assert len(report["digest"]) == 64
    assert len(report["files"]) == 4


@pytest.mark.slow
def test_github_format(mlrun: Run, invalid: Path) -> None:
    result = mlrun("validate", "--format", "github", invalid)
    assert result.code == ExitCode.INVALID
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert lines[1] == (
        f"::error file={invalid},line=9,col=9,title=mlrun validate::unknown key 'exectionCount'"
        " in jobs[0] (at $.projects[0].jobs[0].exectionCount, value 'exectionCount')"
        "%0Ahint: did you mean 'executionCount'?"
    )
    assert lines[-1] == "invalid: 3 errors in 1 file"


@pytest.mark.slow
def test_warnings_are_printed_and_still_exit_0(mlrun: Run, write: Write) -> None:
    path = write(
        THREE_MISTAKES.replace("[gpt-5-mini, anthropic]", "[gpt-5-mini]").replace(
            "        exectionCount: 3\n      - models: cor\n", ""
        )
    )
    result = mlrun("validate", path)
    assert result.code == ExitCode.OK
    assert f"{path}:3:3: warning: model set 'core' is never used" in result.stdout
    assert result.stdout.splitlines()[-1] == "valid: 1 project, 1 trigger in 1 file, 1 warning"


@pytest.mark.slow
def test_secrets_never_reach_the_output(mlrun: Run, write: Write) -> None:
    secret = "ml_live_" + "Zz9" * 6
    path = write(THREE_MISTAKES.replace("version: 1", f"version: 1  # {secret}"))
    for output_format in ("text", "json", "github"):
        result = mlrun("validate", "--format", output_format, path)
        assert result.code == ExitCode.INVALID
        assert "MentionLab API key" in result.stdout
        assert secret not in result.stdout + result.stderr


@pytest.mark.slow
def test_missing_file_is_a_diagnostic(mlrun: Run, tmp_path: Path) -> None:
    result = mlrun("validate", tmp_path / "missing.yaml")
    assert result.code == ExitCode.INVALID
    assert "missing.yaml: error: no such file or directory" in result.stdout


@pytest.mark.slow
def test_usage_errors_exit_2(mlrun: Run) -> None:
    assert mlrun("validate").code == ExitCode.INVALID
    assert mlrun("validate", "--format", "xml", "x.yaml").code == ExitCode.INVALID


@pytest.mark.slow
def test_schema_prints_the_manifest_schema(mlrun: Run) -> None:
    result = mlrun("schema")
    assert result.code == ExitCode.OK
    assert result.stdout == (REPO / "schemas" / "manifest.schema.json").read_text()
    assert mlrun("schema", "manifest.schema.json").stdout == result.stdout


@pytest.mark.slow
def test_schema_of_an_unknown_name_is_a_usage_error(mlrun: Run) -> None:
    result = mlrun("schema", "nope")
    assert result.code == ExitCode.INVALID
    assert "no schema named 'nope'" in result.stderr


@pytest.mark.slow
def test_help_ends_with_examples(mlrun: Run) -> None:
    for command in ("validate", "schema"):
        help_text = mlrun(command, "--help").stdout
        assert "Examples:" in help_text
        assert help_text.rstrip().splitlines()[-1].strip().startswith(("mlrun", "-h"))


def test_github_escaping() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    diagnostic = Diagnostic(message="bad", file="dir,x:y.yaml", severity="warning")
    assert github_annotation(diagnostic) == (
        "::warning file=dir%2Cx%3Ay.yaml,title=mlrun validate::bad"
    )
