"""``mlrun plan``: thin edge over :mod:`runner.run.apply` (planning),
:mod:`runner.plan.planfile` (the saved plan) and :mod:`runner.report.plan` (rendering)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from runner.cli._common import echo_err, exit_on_error
from runner.cli.options import (
    concurrency_option,
    github_options,
    output_option,
    selection_options,
    stdout_format_option,
    target_options,
)
from runner.endpoints import BASE_URL_ENV, DEFAULT_BASE_URL, SANDBOX_URL

if TYPE_CHECKING:  # imported when the command runs, so `mlrun --help` stays fast
    from runner.plan import Plan, Selection
    from runner.plan.planfile import PlanFile
    from runner.plan.remote import ProjectProblem
    from runner.plan.shard import Shard


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=True, path_type=str))
@target_options
@selection_options
@concurrency_option
@stdout_format_option(
    ("text", "json", "markdown"),
    "The plan to print on stdout (markdown: a pull-request comment, under 65,535 chars).",
)
@output_option("Save the plan here (JSON); `mlrun apply FILE` then runs exactly this plan.")
@click.option("--offline", is_flag=True, help="Do not ask the API: query counts stay unknown.")
@github_options
@exit_on_error
def plan(
    paths: tuple[str, ...],
    output_format: str,
    output: Path | None,
    offline: bool,
    sandbox: bool,
    base_url: str | None,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    concurrency: int | None,
    changed_since: str | None,
    shard_spec: str | None,
    annotations: str,
    step_summary: bool,
) -> None:
    """Show what `mlrun apply` would trigger and what it would cost; send no trigger.

    Validates PATHS (files or directories forming one manifest) and asks the API, one request per
    project, whether each project is reachable with the key and how many queries it has. Prints
    every action with its expected executions (queries × models × executionCount), totals per
    project, per model and for the run, what is skipped and why, and the budget verdict. Given a
    saved plan file instead of a manifest, prints that plan.

    \b
    Exit codes: 0 plan OK · 1 some project unreachable · 2 invalid manifest or usage
                4 refused by the budget · 5 the key is refused
    \b
    Examples:
      mlrun plan manifests/ -o plan.json --format markdown > plan.md
      mlrun apply plan.json
      mlrun plan examples/quickstart.yaml --offline
      mlrun plan manifests/ --changed-since origin/main --format markdown > plan.md
    """
    from runner.cli.github import GitHubOutput  # noqa: PLC0415 - keep `mlrun --help` fast
    from runner.errors import UsageError  # noqa: PLC0415
    from runner.plan import Selection  # noqa: PLC0415
    from runner.plan.planfile import read_saved_plan, write_plan_file  # noqa: PLC0415
    from runner.plan.shard import Shard  # noqa: PLC0415
    from runner.report.plan import render_plan  # noqa: PLC0415

    if not paths:
        raise UsageError("give the manifest PATHs to plan")
    asked = _Asked(
        paths=paths,
        selection=Selection(include=select, exclude=exclude),
        changed_since=changed_since,
        shard=None if shard_spec is None else Shard.parse(shard_spec),
        target=plan_target(sandbox, base_url, os.environ),
    )
    with _collector_paused(offline):
        plan_file = read_saved_plan(paths) or (
            _offline_plan(asked)
            if offline
            else _remote_plan(asked, sandbox, base_url, concurrency, os.environ)
        )
        if output is not None:
            write_plan_file(output, plan_file)
        text = render_plan(plan_file, output_format, full_plan_hint=_hint(output))
    click.echo(text, nl=False)
    for note in plan_file.plan.notes:
        echo_err(f"note: {note}")
    if output_format != "text":
        _warn(plan_file)
    github = GitHubOutput.from_options(annotations, step_summary, os.environ)
    for line in github.after_plan(plan_file, full_plan_hint=_hint(output)):
        echo_err(line)
    sys.exit(plan_file.exit_code())


@dataclass(frozen=True)
class _Asked:
    """What to plan, whether offline or not."""

    paths: tuple[str, ...]
    selection: Selection
    changed_since: str | None
    shard: Shard | None
    target: str  # the API the plan is for

    def plan_file(
        self, plan: Plan, *, offline: bool, problems: tuple[ProjectProblem, ...] = ()
    ) -> PlanFile:
        from runner.plan.planfile import PlanFile  # noqa: PLC0415

        return PlanFile(
            plan=plan,
            created_at=datetime.now(UTC),
            manifest_files=self.paths,
            base_url=self.target,
            offline=offline,
            problems=problems,
        )


def _offline_plan(asked: _Asked) -> PlanFile:
    """The manifest's plan, without importing the API client that an offline plan never uses."""
    from runner.plan.local import local_plan  # noqa: PLC0415

    plan, _settings = local_plan(
        asked.paths, asked.selection, changed_since=asked.changed_since, shard=asked.shard
    )
    return asked.plan_file(plan, offline=True)


def _remote_plan(
    asked: _Asked,
    sandbox: bool,
    base_url: str | None,
    concurrency: int | None,
    env: Mapping[str, str],
) -> PlanFile:
    from runner.run.apply import ApplyRequest, plan_only  # noqa: PLC0415

    request = ApplyRequest(
        paths=asked.paths,
        sandbox=sandbox,
        base_url=base_url,
        selection=asked.selection,
        concurrency=concurrency,
        changed_since=asked.changed_since,
        shard=asked.shard,
    )
    result = plan_only(request, env=env, say=echo_err)
    return asked.plan_file(result.plan, offline=False, problems=result.problems)


def plan_target(sandbox: bool, base_url: str | None, env: Mapping[str, str]) -> str:
    """The API the plan is for, as ``runner.run.apply.make_client`` picks it."""
    from runner.redact import safe_url  # noqa: PLC0415

    if sandbox:
        return SANDBOX_URL
    return safe_url(base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL)


@contextmanager
def _collector_paused(paused: bool) -> Iterator[None]:
    """No cyclic garbage collection while an offline plan is made, rendered and saved.

    The manifest and the plan are about a million small objects without reference cycles, alive
    until the command ends; each collection would rescan them all (a fifth of the command's time
    at 5,000 projects). Afterwards they go to the oldest generation unscanned (``freeze`` then
    ``unfreeze``), so the collector works as before. Not for a remote plan, whose HTTP client
    makes cyclic garbage for as long as it runs.
    """
    if not paused or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
        gc.unfreeze()


def _hint(output: Path | None) -> str | None:
    return str(output) if output is not None else None


def _warn(plan_file: PlanFile) -> None:
    """Problems and a refusal on stderr too, when stdout carries JSON or Markdown."""
    from runner.report.plan import problem_line  # noqa: PLC0415

    for problem in plan_file.problems:
        echo_err(f"warning: {problem_line(problem)}; not planned")
    verdict = plan_file.plan.budget()
    if verdict.refused:
        echo_err(f"error: refused by the budget: {verdict.message()}")
