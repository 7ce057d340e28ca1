"""Options shared by several commands, defined once so their names and help never drift."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from runner.endpoints import BASE_URL_ENV, DEFAULT_BASE_URL

F = TypeVar("F", bound=Callable[..., object])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


target_options = _stack(
    click.option("--sandbox", is_flag=True, help="Use the in-process simulated API."),
    click.option(
        "--base-url",
        envvar=BASE_URL_ENV,
        help=f"API base URL (https; plain http only to loopback). Default {DEFAULT_BASE_URL}.",
    ),
)

selection_options = _stack(
    click.option("--select", multiple=True, help="Only these projects: NAME or label=value."),
    click.option("--exclude", multiple=True, help="Leave out these projects: NAME or label=value."),
    click.option(
        "--changed-since",
        metavar="REF",
        help="Only projects whose triggers changed since git REF (removed ones: listed, "
        "never triggered).",
    ),
    click.option(
        "--shard",
        "shard_spec",
        metavar="I/N",
        help="Shard I of N (1-based): a stable share of the projects on 1/N of the rate limits.",
    ),
)

concurrency_option = click.option(
    "--concurrency", type=click.IntRange(1, 256), help="Requests in flight at most."
)

github_options = _stack(
    click.option(
        "--annotations",
        type=click.Choice(["auto", "github", "none"]),
        default="auto",
        show_default=True,
        help="GitHub annotations for problems, on stderr (auto: when GITHUB_ACTIONS=true).",
    ),
    click.option(
        "--step-summary/--no-step-summary",
        default=True,
        show_default=True,
        help="Append the Markdown summary to $GITHUB_STEP_SUMMARY when that is set.",
    ),
)


REPORT_FORMATS = ("json", "markdown", "junit", "text", "html")
STDOUT_REPORT_FORMATS = ("text", "json", "markdown", "junit", "html")

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MLRUN_STATE_DIR",
    help="Where the ledger lives (default .mlrun).",
)

state_option = click.option(
    "--state",
    metavar="URL|PATH",
    envvar="MLRUN_STATE",
    help="Where runs are recorded: a postgresql:// URL (shared), or a SQLite ledger's path. "
    "Default: ledger.sqlite in --state-dir.",
)


def state_spec(state: str | None, state_dir: Path | None) -> str | None:
    """The state a command uses: ``--state``, else the ledger in ``--state-dir``, else None."""
    if state:
        return state
    return str(state_dir / "ledger.sqlite") if state_dir else None


lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to wait for another run holding the ledger (or the run's lease).",
)


# -- output: --format is stdout, files are -o/--output or --report-dir ---------------------------


def stdout_format_option(choices: tuple[str, ...], help_text: str) -> Callable[[F], F]:
    """``--format``: what the command prints on stdout, one format (default ``text``).

    Given twice it is refused rather than the last one silently winning: ``--format`` once chose
    report files, repeatable, and a script written so must be told of ``--report-format``.
    """
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        multiple=True,
        callback=_one_format,
        metavar=f"[{'|'.join(choices)}]",
        help=f"{help_text}  [default: {choices[0]}]",
    )


def _one_format(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str:
    if len(set(value)) > 1:
        raise click.BadParameter(
            "one format: --format chooses what goes to stdout; write report files with "
            "--report-format (repeatable)",
            ctx=ctx,
            param=param,
        )
    choices = getattr(param.type, "choices", ("text",))
    return value[0] if value else str(choices[0])


report_stdout_option = stdout_format_option(
    STDOUT_REPORT_FORMATS, "The report to print on stdout (text: the summary)."
)


def report_formats_option(default: str) -> Callable[[F], F]:
    """``--report-format FMT``, repeatable: the report files to write; ``default`` says which
    are written without it."""
    return click.option(
        "--report-format",
        "report_formats",
        multiple=True,
        type=click.Choice(REPORT_FORMATS),
        help=f"A report file to write; repeat for several (default: {default}).",
    )


def report_dir_option(default: str) -> Callable[[F], F]:
    """``--report-dir DIR``: run reports go to ``DIR/<run id>/``; ``default`` says where else."""
    return click.option(
        "--report-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help=f"Reports go to DIR/<run id>/ (default: {default}).",
    )


def output_option(help_text: str, *, required: bool = False) -> Callable[[F], F]:
    """``-o/--output FILE``: the one file the command writes, which a later command reads."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        required=required,
        help=help_text,
    )


# The sandbox's pace, served or in-process: a job of minutes ends in seconds, so a demo finishes
# in seconds.
SANDBOX_TIME_SCALE = 60.0


def time_scale_option(*, when: str = "") -> Callable[[F], F]:
    """``--time-scale X``: the sandbox's simulated durations divided by X; 1 is real time."""
    what = "simulated durations (job life, windows, delays) are divided by this; 1 is real time."
    return click.option(
        "--time-scale",
        type=click.FloatRange(min=0, min_open=True),
        default=SANDBOX_TIME_SCALE,
        show_default=True,
        help=f"{when}: {what}" if when else what[0].upper() + what[1:],
    )


quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="Only the summary and errors: no progress, no lists."
)
