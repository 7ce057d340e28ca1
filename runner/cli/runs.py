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
from runner.cli.options import (
    lock_timeout_option,
    output_option,
    quiet_option,
    report_dir_option,
    report_formats_option,
    report_stdout_option,
    state_dir_option,
    state_option,
    state_spec,
    stdout_format_option,
)
from runner.report.words import plural

F = TypeVar("F", bound=Callable[..., Any])


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


# -- mlrun runs ----------------------------------------------------------------------------------


@click.command(
    epilog="\b\nExamples:\n  mlrun runs\n  mlrun runs --format json --limit 5 | jq '.[0].runId'"
)
@state_option
@state_dir_option
@stdout_format_option(("text", "json"), "A table for people, or JSON for tools.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Runs to list."
)
@exit_on_error
def runs(state: str | None, state_dir: Path | None, output_format: str, limit: int) -> None:
    """List past runs from the ledger, newest first.

    For each: run id and key, start, who or which CI job started it, commit, status, the
    actions' outcomes, the executions the API counted (of those expected), and the exit code.
    """
    from runner.run.status import list_runs  # noqa: PLC0415
    from runner.store import ledger_file, state_location  # noqa: PLC0415 - fast --help

    spec = state_spec(state, state_dir)
    path = ledger_file(spec)
    missing = path is not None and not path.exists()
    lines = [] if missing else list_runs(spec, limit=limit, env=os.environ)
    if output_format == "json":
        click.echo(json.dumps([line.to_json() for line in lines], indent=2))
    elif not lines:
        click.echo(f"No runs yet (no run in {state_location(spec)}).")
    else:
        click.echo(_runs_table([line.to_json() for line in lines]))


def _runs_table(rows: list[dict[str, Any]]) -> str:
    table = [("RUN", "KEY", "STARTED", "BY", "COMMIT", "STATUS", "OUTCOMES", "EXECUTIONS", "EXIT")]
    table += [
        (
            row["runId"],
            row["runKey"] or "-",
            str(row["startedAt"]).replace("T", " ")[:19],
            row["startedBy"] or "-",
            (row["commit"] or "-")[:10],
            row["status"],
            ", ".join(f"{count} {name}" for name, count in row["outcomes"].items()) or "-",
            _executions(row["executions"]),
            str(row["exitCode"]),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def _executions(executions: dict[str, int | None]) -> str:
    """``88 of 88``: the executions the API counted, of those the plan expected."""
    expected = "?" if executions["expected"] is None else f"{executions['expected']:,}"
    return f"{executions['total'] or 0:,} of {expected}"


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
    epilog="\b\nExamples:\n  mlrun report last\n  mlrun report last --format json | jq .exitCode"
    "\n  mlrun report merge shard-*/report.json -o merged.json --format markdown",
)
def report() -> None:
    """Re-render a past run's report (`report [show] RUN`), or merge shard reports.

    Succeeds (exit 0) whenever the report could be rendered, whatever the run's outcome; add
    --exit-code to exit with the run's own code instead.
    """


@report.command(
    epilog="\b\nExamples:\n  mlrun report last\n  mlrun report last --format json | jq .exitCode"
    "\n  mlrun report 2025 --report-format html --report-dir out/"
)
@click.argument("run", default="last")
@report_stdout_option
@report_formats_option("with --report-dir, the formats the run wrote")
@report_dir_option("the directory the run wrote its reports to")
@state_option
@state_dir_option
@click.option("--exit-code", is_flag=True, help="Exit with the run's exit code, not 0.")
@exit_on_error
def show(
    run: str,
    output_format: str,
    report_formats: tuple[str, ...],
    report_dir: Path | None,
    state: str | None,
    state_dir: Path | None,
    exit_code: bool,
) -> None:
    """Render the report of RUN (an id, a unique prefix, or `last`) from the ledger.

    Prints the report on stdout (--format; the text summary by default). With --report-format
    or --report-dir it also writes the report files to <report dir>/<run id>/, and the summary
    names them.
    """
    from runner.report import write_reports  # noqa: PLC0415 - fast --help
    from runner.report.render import render_report  # noqa: PLC0415
    from runner.run.status import (  # noqa: PLC0415
        existing_ledger,
        formats_present,
        past_report,
        report_directory,
    )

    spec = existing_ledger(state_spec(state, state_dir))
    rendered, record = past_report(spec, run, env=os.environ)
    files: list[Path] = []
    if report_formats or report_dir is not None:
        formats = report_formats or formats_present(report_directory(record)) or ("json",)
        files = write_reports(rendered, report_directory(record, report_dir), formats)
    shown = render_report(rendered, output_format, color=_use_color(), files=files)
    click.echo(shown, nl=False)
    sys.exit(rendered.exit_code() if exit_code else 0)


@report.command(
    epilog="\b\nExamples:\n  mlrun report merge shard-*/report.json -o merged/report.json "
    "--report-format markdown --report-format html\n"
    "  mlrun report merge shard-*/report.json --format json | jq .exitCode"
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@output_option("The merged report (JSON) to write; other --report-format files go beside it.")
@report_formats_option("none but -o")
@report_stdout_option
@click.option("--exit-code", is_flag=True, help="Exit with the merged report's exit code, not 0.")
@exit_on_error
def merge(
    inputs: tuple[Path, ...],
    output: Path | None,
    report_formats: tuple[str, ...],
    output_format: str,
    exit_code: bool,
) -> None:
    """Merge shard reports (report.json files) into one report of the whole run.

    Actions are concatenated (an action in two shards is an error), totals and the exit code
    recomputed; the run id names every merged run. The merged JSON goes to -o/--output, other
    --report-format files beside it with their usual names (report.md, junit.xml, report.html);
    stdout gets the merged report in --format (the text summary by default).
    """
    from runner.errors import UsageError  # noqa: PLC0415 - fast --help
    from runner.report.merge import (  # noqa: PLC0415
        load_report,
        merge_reports,
        validated_json,
        write_merged,
    )
    from runner.report.render import render_report  # noqa: PLC0415

    if report_formats and output is None:
        raise UsageError("--report-format files are written beside the merged report: give -o FILE")
    shards = [load_report(path) for path in inputs]
    merged = merge_reports(shards, now=time.time(), names=[str(path) for path in inputs])
    validated_json(merged)
    files = [] if output is None else write_merged(merged, output, report_formats)
    where = "" if output is None else f", into {output}"
    echo_err(
        f"merged {plural(len(inputs), 'report')}, {plural(len(merged.actions), 'action')}{where}"
    )
    click.echo(render_report(merged, output_format, color=_use_color(), files=files), nl=False)
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
@state_option
@state_dir_option
@lock_timeout_option
@report_dir_option("where the run wrote its reports")
@report_formats_option("the formats the run wrote")
@report_stdout_option
@quiet_option
@exit_on_error
def status(
    run: str,
    wait: bool,
    timeout: float | None,
    sandbox: bool,
    base_url: str | None,
    state: str | None,
    state_dir: Path | None,
    lock_timeout: float,
    report_dir: Path | None,
    report_formats: tuple[str, ...],
    output_format: str,
    quiet: bool,
) -> None:
    """Refresh the job statuses of a past RUN through the API; never triggers anything.

    Asks about every job of RUN (id, unique prefix, or `last`) not yet seen terminal, records
    what it learns in the ledger, rewrites the run's report (the formats already there, or
    --report-format) and prints it (--format). Exits with the run's exit code.
    """
    from runner.report.render import render_report  # noqa: PLC0415 - fast --help
    from runner.run.status import StatusRequest, refresh_status  # noqa: PLC0415

    request = StatusRequest(
        run=run,
        wait=wait,
        timeout=timeout,
        sandbox=sandbox,
        base_url=base_url,
        state=state_spec(state, state_dir),
        lock_timeout=lock_timeout,
        report_dir=report_dir,
        formats=report_formats,
    )
    result = refresh_status(request, say=(lambda _line: None) if quiet else echo_err)
    if not quiet:
        jobs, requests = plural(result.refreshed, "job"), plural(result.status_requests, "request")
        echo_err(f"{jobs} refreshed with {requests}")
    shown = render_report(
        result.report,
        output_format,
        color=_use_color(),
        files=result.report_files,
        summary_only=quiet,
    )
    click.echo(shown, nl=False)
    sys.exit(result.report.exit_code())
