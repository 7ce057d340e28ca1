"""The command line: the only place that prints or exits.

Each subcommand lives in its own module and is imported only when it runs, so ``mlrun --version``
and ``mlrun --help`` stay fast (no httpx, jsonschema or yaml import).
"""

from __future__ import annotations

import importlib
import io
import signal
import sys
from types import FrameType
from typing import Any

import click

from runner import __version__

# name -> "module:attribute"; imported on first use.
_COMMANDS: dict[str, str] = {
    "validate": "runner.cli.validate:validate",
    "schema": "runner.cli.validate:schema",
    "sandbox": "runner.cli.sandbox:sandbox",
    "apply": "runner.cli.apply:apply",
    "plan": "runner.cli.plan:plan",
    "runs": "runner.cli.runs:runs",
    "report": "runner.cli.runs:report",
    "status": "runner.cli.runs:status",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when they are invoked.

    Its ``main`` renders click's own usage errors through the same mask as every other message
    (``mlrun apply --ml_live_…`` must not print the key back).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.ClickException as error:
            from runner.cli._common import mask  # noqa: PLC0415 - only when there is an error

            shown = io.StringIO()
            error.show(file=shown)
            sys.stderr.write(mask(shown.getvalue()))
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if isinstance(result, int):
            sys.exit(result)
        sys.exit(0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module_name, attr = _COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)


CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mlrun")
def main() -> None:
    """mlrun: declarative batch runs for the MentionLab API.

    \b
    Typical flow (GitOps):
      mlrun validate manifests/        # on every pull request
      mlrun plan manifests/            # what will be triggered, and what it costs
      mlrun apply manifests/           # on merge
    Try it without an account:
      mlrun apply examples/quickstart.yaml --sandbox
    """
    # SIGINT and SIGTERM (a CI job cancelled) stop a command cleanly, with exit 3.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, raise_signal_interrupt)


def raise_signal_interrupt(signum: int, _frame: FrameType | None) -> None:
    """The command's handler of SIGINT and SIGTERM: raise, to be rendered as exit 3."""
    from runner.errors import SignalInterrupt  # noqa: PLC0415 - a signal is rare

    raise SignalInterrupt(signal.Signals(signum).name)
