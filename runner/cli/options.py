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

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MLRUN_STATE_DIR",
    help="Where the ledger lives (default .mlrun).",
)

lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to wait for another run holding the ledger.",
)

formats_option = click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(REPORT_FORMATS),
    help="Report formats to write; repeat for several (default: the manifest's).",
)
