"""One meaning per flag, end to end: ``--format`` is stdout for every command, files are
``-o/--output`` or ``--report-dir``, the CLI reference lists every option, completion works."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import pytest
from runner.cli import main
from runner.schemas import load_schema

from runs.runs_support import QUICKSTART, mlrun
from subprocesses import clean_env

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ("--sandbox", "--time-scale", "600", "--no-progress")


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the quickstart ran once on the sandbox, its jobs not followed."""
    cwd = tmp_path_factory.mktemp("one-run")
    applied = mlrun("apply", str(QUICKSTART), *SANDBOX, "--no-wait", "-q", cwd=cwd)
    assert applied.returncode == 0, applied.stderr
    return cwd


@pytest.mark.slow
def test_report_last_as_json_pipes_into_json_tool(one_run: Path) -> None:
    shown = mlrun("report", "last", "--format", "json", cwd=one_run)
    assert shown.returncode == 0, shown.stderr
    piped = subprocess.run(
        [sys.executable, "-m", "json.tool"],
        input=shown.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    jsonschema.validate(json.loads(shown.stdout), load_schema("report.schema.json"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("validate", str(QUICKSTART)),
        ("plan", str(QUICKSTART), "--offline"),
        ("apply", str(QUICKSTART), *SANDBOX, "--dry-run"),
        ("apply", str(QUICKSTART), *SANDBOX, "--no-wait"),
        ("runs",),
        ("report", "last"),
        ("report", "show", "last"),
        ("status", "last"),
    ],
    ids=lambda args: " ".join(args[:1] + tuple(a for a in args[1:] if a.startswith("--d"))),
)
def test_format_json_puts_json_on_stdout_for_every_command(
    one_run: Path, args: tuple[str, ...]
) -> None:
    result = mlrun(*args, "--format", "json", cwd=one_run)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)


@pytest.mark.slow
def test_report_merge_prints_json_and_writes_output(one_run: Path) -> None:
    report = min((one_run / "mlrun-reports").glob("*/report.json"))
    merged = one_run / "merged" / "report.json"
    result = mlrun(
        "report", "merge", str(report), "--output", str(merged), "--report-format", "markdown",
        "--format", "json", cwd=one_run,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(merged.read_text())
    assert (merged.parent / "report.md").exists()
    alone = mlrun("report", "merge", str(report), "--report-format", "html", cwd=one_run)
    assert alone.returncode == 2
    assert "give -o FILE" in alone.stderr


@pytest.mark.slow
def test_files_go_to_output_or_report_dir(one_run: Path, tmp_path: Path) -> None:
    planned = mlrun("plan", str(QUICKSTART), "--offline", "--output", "p.json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert json.loads((tmp_path / "p.json").read_text())["kind"] == "mlrun-plan"
    assert planned.stdout.startswith("Actions")  # stdout keeps its --format, text

    out = tmp_path / "out"
    shown = mlrun(
        "report", "last", "--report-dir", str(out), "--report-format", "junit", cwd=one_run
    )
    assert shown.returncode == 0, shown.stderr
    (run_dir,) = out.iterdir()  # DIR/<run id>/, as apply and status write it
    assert [p.name for p in run_dir.iterdir()] == ["junit.xml"]
    assert f"Reports: {run_dir / 'junit.xml'}" in shown.stdout


@pytest.mark.slow
def test_format_twice_is_refused_and_names_report_format(tmp_path: Path) -> None:
    result = mlrun(
        "apply", str(QUICKSTART), *SANDBOX, "--format", "junit", "--format", "json", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "write report files with --report-format" in result.stderr
    assert not (tmp_path / ".mlrun").exists()  # refused before anything ran


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("apply", str(QUICKSTART), "--sandbox", "--sandbox-time-scale", "600"),
        ("plan", str(QUICKSTART), "--offline", "--out", "plan.json"),
        ("report", "show", "last", "--output-dir", "out"),
    ],
)
def test_the_old_names_are_gone(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = mlrun(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "No such option" in result.stderr


def commands() -> dict[str, click.Command]:
    """Every command of the CLI by its full name (``report merge``)."""
    found: dict[str, click.Command] = {}
    context = click.Context(main)

    def walk(group: click.Group, prefix: str) -> None:
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None
            full = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                walk(command, full)
            else:
                found[full] = command

    walk(main, "")
    return found


def options_in_code() -> set[tuple[str, str]]:
    """(long option, command) for every option of every command but --help."""
    return {
        (next(o for o in param.opts if o.startswith("--")), name)
        for name, command in commands().items()
        for param in command.params
        if isinstance(param, click.Option) and param.name != "help"
    }


def options_in_reference() -> set[tuple[str, str]]:
    """(long option, command) as docs/cli.md's table of every option lists them."""
    text = (ROOT / "docs" / "cli.md").read_text()
    table = text.split("## Every option")[1].split("\n\n")[1]
    pairs = set()
    for row in table.splitlines()[2:]:
        option_cell, command_cell = row.split(" | ")[:2]
        long_name = re.findall(r"--[a-z][a-z-]*", option_cell)[0]
        pairs |= {(long_name, command.strip()) for command in command_cell.split(",")}
    return pairs


def test_the_cli_reference_lists_every_option_of_every_command() -> None:
    assert options_in_reference() == options_in_code()


def test_one_name_one_meaning() -> None:
    for name, command in commands().items():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            if "--format" in param.opts:  # stdout, once: never files
                assert param.name == "output_format", name
            if "-o" in param.opts:
                assert param.opts == ["-o", "--output"], name
            assert not {"--out", "--output-dir", "--sandbox-time-scale"} & set(param.opts), name


@pytest.mark.slow
def test_shell_completion_produces_a_script_and_completes_lazy_commands() -> None:
    mlrun_script = Path(sys.executable).parent / "mlrun"  # the installed entry point
    source = subprocess.run(
        [str(mlrun_script)],
        env=clean_env(_MLRUN_COMPLETE="bash_source"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert source.returncode == 0, source.stderr
    assert "_mlrun_completion()" in source.stdout
    assert "complete -o nosort -F _mlrun_completion mlrun" in source.stdout
    completed = subprocess.run(
        [str(mlrun_script)],
        env=clean_env(
            _MLRUN_COMPLETE="bash_complete", COMP_WORDS="mlrun apply --report-f", COMP_CWORD="2"
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.stdout.split() == ["plain,--report-format"]
