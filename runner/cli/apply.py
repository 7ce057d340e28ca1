"""``mlrun apply``: thin edge over :mod:`runner.run.apply`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from runner.plan.planfile import PlanFile
    from runner.plan.shard import Shard
    from runner.run.apply import ApplyResult
    from runner.run.progress import ViewOptions

from runner.cli._common import echo_err, exit_on_error
from runner.cli.options import (
    concurrency_option,
    github_options,
    lock_timeout_option,
    quiet_option,
    report_dir_option,
    report_formats_option,
    report_stdout_option,
    selection_options,
    state_dir_option,
    state_option,
    state_spec,
    target_options,
    time_scale_option,
)

PLAN_FORMATS = ("text", "json", "markdown")  # what a dry run can print: the plan's formats


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=True, path_type=str))
@target_options
@selection_options
@concurrency_option
@time_scale_option(when="With --sandbox")
@click.option("--dry-run", is_flag=True, help="Plan (remotely) and stop before sending triggers.")
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Do not ask before sending (asked only on a terminal, never in CI or without one).",
)
@click.option("--offline", is_flag=True, help="Do not ask the API for query counts first.")
@click.option(
    "--run-key",
    metavar="KEY",
    help="Name the run: the same key later (another machine, a re-run of the CI job) continues "
    "it instead of starting a new run; shards with one key share one run. Default: "
    "$MLRUN_RUN_KEY, or in GitHub Actions and GitLab CI the job's own (see docs/state.md); "
    "'' for none.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Start a new run under the run key even though a run with it exists (it is kept).",
)
@click.option(
    "--allow-unknown-cost",
    is_flag=True,
    help="With --offline and a budget: apply although the query counts, and so the cost, are "
    "unknown (the budget is still checked at one query per project).",
)
@click.option(
    "--resume",
    is_flag=False,
    flag_value="last",
    default=None,
    metavar="[RUN]",
    help="Continue an interrupted run (the last one, or RUN id/prefix) from the ledger.",
)
@click.option("--wait/--no-wait", default=None, help="Follow jobs to the end (manifest default).")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds to follow jobs at most.")
@click.option("--fail-fast", is_flag=True, help="Stop sending after the first failed action.")
@click.option("--max-failures", type=click.IntRange(min=1), help="Stop sending after N failures.")
@click.option(
    "--retry-ambiguous",
    is_flag=True,
    help="Resend triggers whose outcome could not be settled (may pay twice).",
)
@click.option(
    "--allow-stacking",
    is_flag=True,
    help="Trigger a project even if its last job is still pending or processing.",
)
@click.option(
    "--settle-grace",
    type=click.FloatRange(min=0),
    help="Seconds a created job may take to appear in the job list (default max(60, 2×timeout)).",
)
@state_option
@state_dir_option
@lock_timeout_option
@report_dir_option("the manifest's settings.reports.dir, mlrun-reports")
@report_formats_option("the manifest's settings.reports.formats")
@report_stdout_option
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress display (default: on a terminal); --no-progress prints plain lines.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="More frequent progress lines, and which reads the state saved (query counts, in-flight "
    "checks) and why.",
)
@quiet_option
@github_options
@exit_on_error
def apply(
    paths: tuple[str, ...],
    sandbox: bool,
    time_scale: float,
    base_url: str | None,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    concurrency: int | None,
    dry_run: bool,
    yes: bool,
    offline: bool,
    run_key: str | None,
    new_run: bool,
    allow_unknown_cost: bool,
    resume: str | None,
    wait: bool | None,
    timeout: float | None,
    fail_fast: bool,
    max_failures: int | None,
    retry_ambiguous: bool,
    allow_stacking: bool,
    settle_grace: float | None,
    state: str | None,
    state_dir: Path | None,
    lock_timeout: float,
    report_dir: Path | None,
    report_formats: tuple[str, ...],
    output_format: str,
    progress: bool | None,
    verbose: bool,
    changed_since: str | None,
    shard_spec: str | None,
    annotations: str,
    step_summary: bool,
    quiet: bool,
) -> None:
    """Trigger every job the manifest declares, follow them, and report.

    Validates PATHS (files or directories forming one manifest), asks the API how many queries each
    project has, refuses a plan over the budget, prints the plan's cost (and on a terminal asks
    before going on, unless --yes), then sends the triggers under the rate limits, journaled in
    the ledger so that a killed run resumes without paying twice. The report is written to
    --report-dir/<run id>/ (--report-format) and printed on stdout (--format).

    \b
    Examples:
      mlrun apply examples/quickstart.yaml --sandbox
      mlrun apply manifests/ --select team=growth --concurrency 4
      mlrun apply manifests/ --report-format junit --format json | jq .exitCode
      mlrun apply --resume
    """
    from runner.cli.github import GitHubOutput  # noqa: PLC0415 - keep `mlrun --help` fast
    from runner.errors import BudgetExceeded, UsageError  # noqa: PLC0415
    from runner.exitcodes import ExitCode  # noqa: PLC0415
    from runner.plan import Selection  # noqa: PLC0415
    from runner.run.apply import ApplyRequest  # noqa: PLC0415
    from runner.run.apply import apply as run_apply  # noqa: PLC0415

    if not paths and resume is None:
        raise UsageError("give the manifest PATHs to apply, or --resume")
    if changed_since is not None and resume is not None:
        raise UsageError("--changed-since selects what a new run triggers; not with --resume")
    if dry_run and output_format not in PLAN_FORMATS:
        raise UsageError(f"a dry run prints the plan: --format {', '.join(PLAN_FORMATS)}")
    request = ApplyRequest(
        paths=paths,
        resume=resume,
        sandbox=sandbox,
        sandbox_time_scale=time_scale,
        base_url=base_url,
        selection=Selection(include=select, exclude=exclude),
        concurrency=concurrency,
        dry_run=dry_run,
        offline=offline,
        allow_unknown_cost=allow_unknown_cost,
        run_key=run_key,
        new_run=new_run,
        wait=wait,
        timeout=timeout,
        fail_fast=fail_fast,
        max_failures=max_failures,
        retry_ambiguous=retry_ambiguous,
        allow_stacking=allow_stacking,
        settle_grace=settle_grace,
        state=state_spec(state, state_dir),
        lock_timeout=lock_timeout,
        report_dir=report_dir,
        formats=report_formats,
        changed_since=changed_since,
        shard=_shard(shard_spec),
    )
    github = GitHubOutput.from_options(annotations, step_summary, os.environ)
    try:
        result = run_apply(
            request,
            say=(lambda _line: None) if quiet else echo_err,
            view=None if quiet else _view_options(progress, verbose),
            stream=sys.stderr,
            confirm=None if yes or not _interactive() else _confirm,
        )
    except BudgetExceeded as error:
        _echo_lines(github.after_refusal(str(error), paths, "apply"))
        raise
    for note in () if quiet else result.plan.notes:
        echo_err(f"note: {note}")
    for problem in result.problems:
        echo_err(f"warning: {problem.project}: {problem.message}; not triggered")
    _echo_lines(github.after_apply(result, paths, result.report_files))
    if result.report is None:  # a dry run, or nothing changed since --changed-since's ref
        from runner.report.plan import render_plan  # noqa: PLC0415

        plan_file = _planned(result, paths, (sandbox, base_url, offline))
        if output_format != "text" or result.plan.actions or result.plan.changes is None:
            click.echo(render_plan(plan_file, output_format), nl=False)
        sys.exit(plan_file.exit_code())  # as `mlrun plan` exits with the plan it prints
    from runner.report.render import render_report  # noqa: PLC0415

    shown = render_report(
        result.report,
        output_format,
        color=_use_color(),
        files=result.report_files,
        summary_only=quiet,
    )
    click.echo(shown, nl=False)
    if result.interrupted and result.run is not None:  # the run had ended: its report says so
        echo_err(f"{result.interrupted} while reporting: the report was written; exit 3")
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(result.report.exit_code())


def _interactive() -> bool:
    """Someone at a terminal can answer: stdin is a TTY and no CI system runs the command."""
    return sys.stdin.isatty() and not os.environ.get("CI")


def _confirm(question: str) -> bool:
    """Terraform's question: only ``yes`` applies; anything else, or no answer, does not."""
    try:
        answer = click.prompt(
            f"{question} Only 'yes' applies", default="", show_default=False, err=True
        )
    except click.Abort:
        return False
    return str(answer).strip().lower() == "yes"


def _shard(spec: str | None) -> Shard | None:
    """``--shard I/N`` parsed; None without the option."""
    from runner.plan.shard import Shard  # noqa: PLC0415

    return None if spec is None else Shard.parse(spec)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        echo_err(line)


def _view_options(progress: bool | None, verbose: bool) -> ViewOptions:
    from runner.run.progress import ViewOptions  # noqa: PLC0415

    live = sys.stderr.isatty() if progress is None else progress
    return ViewOptions(live=live, color=live and _colors_allowed(), verbose=verbose)


def _colors_allowed() -> bool:
    import os  # noqa: PLC0415

    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _use_color() -> bool:
    return sys.stdout.isatty() and _colors_allowed()


def _planned(
    result: ApplyResult, paths: tuple[str, ...], target: tuple[bool, str | None, bool]
) -> PlanFile:
    """The plan of a run that sent nothing, as ``mlrun plan`` shows it; ``target``: sandbox,
    base URL and offline, as the command line gave them."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from runner.cli.plan import plan_target  # noqa: PLC0415
    from runner.plan.planfile import PlanFile  # noqa: PLC0415

    sandbox, base_url, offline = target
    return PlanFile(
        plan=result.plan,
        created_at=datetime.now(UTC),
        manifest_files=paths,
        base_url=plan_target(sandbox, base_url, os.environ),
        offline=offline,
        problems=result.problems,
    )
