"""``mlrun runs``, ``mlrun report [show] RUN``, ``mlrun report merge``, ``mlrun status RUN``.

Thin edges over :mod:`runner.run.status` (past runs in the ledger) and :mod:`runner.report.merge`.
``report`` is a group whose default command is ``show``: ``mlrun report last`` and
``mlrun report show last`` are the same; ``mlrun report merge`` combines shard reports.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from runner.cli._common import echo_err, exit_on_error
from runner.cli.options import formats_option, lock_timeout_option, state_dir_option

F = TypeVar("F", bound=Callable[..., Any])


def _ledger_path(state_dir: Path | None) -> Path | None:
    return state_dir / "ledger.sqlite" if state_dir else None


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


# -- mlrun runs ----------------------------------------------------------------------------------


@click.command(
    epilog="\b\nExamples:\n  mlrun runs\n  mlrun runs --format json --limit 5 | jq '.[0].runId'"
)
@state_dir_option
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A table for people, or JSON for tools.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Runs to list."
)
@exit_on_error
def runs(state_dir: Path | None, output: str, limit: int) -> None:
    """List past runs from the ledger, newest first.

    For each: run id, start, status, actions and their outcomes, and the run's exit code.
    """
    from runner.run.status import list_runs  # noqa: PLC0415
    from runner.store import default_ledger_path  # noqa: PLC0415 - fast --help

    path = _ledger_path(state_dir) or default_ledger_path()
    lines = list_runs(path, limit=limit, env=os.environ) if path.exists() else []
    if output == "json":
        click.echo(json.dumps([line.to_json() for line in lines], indent=2))
    elif not lines:
        click.echo(f"No runs yet (no run in {path}).")
    else:
        click.echo(_runs_table([line.to_json() for line in lines]))


def _runs_table(rows: list[dict[str, Any]]) -> str:
    table = [("RUN", "STARTED", "STATUS", "ACTIONS", "OUTCOMES", "EXIT")]
    table += [
        (
            row["runId"],
            str(row["startedAt"]).replace("T", " ")[:19],
            row["status"],
            str(row["actions"]),
            ", ".join(f"{count} {name}" for name, count in row["outcomes"].items()) or "-",
            str(row["exitCode"]),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


# -- mlrun report ---------------------------------------------------------------------------------


class DefaultCommandGroup(click.Group):
    """A group that runs ``default_command`` when the first word is not one of its commands."""

    default_command = "show"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_words = set(ctx.help_option_names)
        if args and args[0] not in self.commands and not help_words & {args[0]}:
            args = [self.default_command, *args]
        elif not args:
            args = [self.default_command]
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultCommandGroup,
    epilog="\b\nExamples:\n  mlrun report last\n  mlrun report 20250615 --format html"
    "\n  mlrun report merge shard-*/report.json -o merged.json --format markdown",
)
def report() -> None:
    """Re-render a past run's report (`report [show] RUN`), or merge shard reports.

    Succeeds (exit 0) whenever the report could be rendered, whatever the run's outcome; add
    --exit-code to exit with the run's own code instead.
    """


@report.command(
    epilog="\b\nExamples:\n  mlrun report last\n  mlrun report 2025 --format html --format json"
)
@click.argument("run", default="last")
@formats_option
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --format files go (default: <the run's report directory>/<run id>).",
)
@state_dir_option
@click.option("--exit-code", is_flag=True, help="Exit with the run's exit code, not 0.")
@exit_on_error
def show(
    run: str,
    formats: tuple[str, ...],
    output_dir: Path | None,
    state_dir: Path | None,
    exit_code: bool,
) -> None:
    """Render the report of RUN (an id, a unique prefix, or `last`) from the ledger.

    With no --format the text summary goes to stdout; with --format each file is written to
    --output-dir and the summary names them.
    """
    from runner.report import render_text, write_reports  # noqa: PLC0415 - fast --help
    from runner.run.status import existing_ledger, past_report, report_directory  # noqa: PLC0415

    rendered, record = past_report(existing_ledger(_ledger_path(state_dir)), run, env=os.environ)
    files: list[Path] = []
    if formats:
        directory = output_dir or report_directory(record)
        files = write_reports(rendered, directory, formats)
    click.echo(render_text(rendered, color=_use_color(), files=files), nl=False)
    sys.exit(rendered.exit_code() if exit_code else 0)


@report.command(
    epilog="\b\nExample:\n  mlrun report merge shard-*/report.json -o merged/report.json "
    "--format markdown --format html"
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The merged JSON report to write.",
)
@formats_option
@click.option("--exit-code", is_flag=True, help="Exit with the merged report's exit code, not 0.")
@exit_on_error
def merge(
    inputs: tuple[Path, ...], output: Path, formats: tuple[str, ...], exit_code: bool
) -> None:
    """Merge shard reports (report.json files) into one report of the whole run.

    Actions are concatenated (an action in two shards is an error), totals and the exit code
    recomputed; the run id names every merged run. The JSON goes to --output; other --format
    files are written beside it with their usual names (report.md, junit.xml, report.html ...).
    """
    from runner.report import render_text  # noqa: PLC0415 - fast --help
    from runner.report.merge import load_report, merge_reports, write_merged  # noqa: PLC0415

    shards = [load_report(path) for path in inputs]
    merged = merge_reports(shards, now=time.time(), names=[str(path) for path in inputs])
    files = write_merged(merged, output, formats)
    echo_err(f"merged {len(inputs)} report(s), {len(merged.actions):,} actions, into {output}")
    click.echo(render_text(merged, color=_use_color(), files=files), nl=False)
    sys.exit(merged.exit_code() if exit_code else 0)


# -- mlrun status ---------------------------------------------------------------------------------


@click.command(
    epilog="\b\nExamples:\n  mlrun status last\n  mlrun status 20250615T1200 --wait --timeout 600"
)
@click.argument("run", default="last")
@click.option(
    "--wait/--no-wait",
    default=False,
    show_default=True,
    help="Follow the jobs until they end (else: one look at each).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    help="Seconds to follow at most (--wait; default 3600), or to spend on the one pass (60).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="The run ran on the in-process sandbox (it is known from the run; kept for scripts).",
)
@click.option(
    "--base-url",
    envvar="MENTIONLAB_BASE_URL",
    help="API base URL (default: the one the run used).",
)
@state_dir_option
@lock_timeout_option
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the run's reports are rewritten (default: where the run wrote them; "
    "<dir>/<run id>).",
)
@formats_option
@click.option("-q", "--quiet", is_flag=True, help="Only the summary and errors.")
@exit_on_error
def status(
    run: str,
    wait: bool,
    timeout: float | None,
    sandbox: bool,
    base_url: str | None,
    state_dir: Path | None,
    lock_timeout: float,
    report_dir: Path | None,
    formats: tuple[str, ...],
    quiet: bool,
) -> None:
    """Refresh the job statuses of a past RUN through the API; never triggers anything.

    Asks about every job of RUN (id, unique prefix, or `last`) not yet seen terminal, records
    what it learns in the ledger, rewrites the run's report (the formats already there, or
    --format) and prints the summary. Exits with the run's exit code.
    """
    from runner.report import render_text  # noqa: PLC0415 - fast --help
    from runner.run.status import StatusRequest, refresh_status  # noqa: PLC0415

    request = StatusRequest(
        run=run,
        wait=wait,
        timeout=timeout,
        sandbox=sandbox,
        base_url=base_url,
        ledger_path=_ledger_path(state_dir),
        lock_timeout=lock_timeout,
        report_dir=report_dir,
        formats=formats,
    )
    result = refresh_status(request, say=(lambda _line: None) if quiet else echo_err)
    if not quiet:
        echo_err(f"{result.refreshed} job(s) refreshed with {result.status_requests} request(s)")
    click.echo(render_text(result.report, color=_use_color(), files=result.report_files), nl=False)
    sys.exit(result.report.exit_code())
