"""``mlrun sandbox serve``: the simulated MentionLab API on loopback."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from runner.cli.options import time_scale_option

T = TypeVar("T")

_EXAMPLE = """\
\b
Example:
  mlrun sandbox serve --port 8765 --seed 7 --rate-limits v2 \\
      --faults 'error_503=0.05,lost_response=0.01,latency=20ms..250ms'
"""


def _parsed(parse: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, Any], T | None]:
    def callback(_ctx: click.Context, param: click.Parameter, value: Any) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise click.BadParameter(str(exc), param=param) from exc

    return callback


def _policy(value: str) -> Any:
    from runner.sandbox import RateLimitPolicy  # noqa: PLC0415 - keep `mlrun --help` fast

    return RateLimitPolicy.parse(value)


def _faults(value: str) -> Any:
    from runner.sandbox import Faults  # noqa: PLC0415 - keep `mlrun --help` fast

    return Faults.from_spec(value)


def _world(value: str) -> Any:
    from runner.sandbox import World  # noqa: PLC0415 - keep `mlrun --help` fast

    return World.load(Path(value))


def _pace(time_scale: float) -> str:
    """``jobs run 60x faster than real time``, or ``real time``."""
    if time_scale == 1:
        return "real time"
    return f"jobs run {time_scale:g}x {'faster' if time_scale > 1 else 'slower'} than real time"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def sandbox() -> None:
    """The simulated MentionLab API (deterministic, with rate limits and fault injection)."""


@sandbox.command(epilog=_EXAMPLE)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option("--seed", default=0, show_default=True, type=int, help="World and fault seed.")
@time_scale_option()
@click.option(
    "--rate-limits",
    "rate_limits",
    default="documented",
    show_default=True,
    callback=_parsed(_policy),
    help="documented | v2 | enterprise | off | windows such as '5/s,100/min,1000/h'.",
)
@click.option(
    "--faults",
    default=None,
    callback=_parsed(_faults),
    help="Inline spec 'error_503=0.05,latency=20ms..250ms' or a YAML/JSON file.",
)
@click.option(
    "--world",
    default=None,
    callback=_parsed(_world),
    help="A world file (YAML/JSON): only its organisations, projects, keys exist.",
)
@click.option("--credits", "credit_total", type=int, default=None, help="Executions allowed.")
@click.option(
    "--honour-idempotency-key",
    is_flag=True,
    help="The same Idempotency-Key returns the same job (the documented API ignores it).",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    host: str,
    port: int,
    seed: int,
    time_scale: float,
    rate_limits: Any,
    faults: Any,
    world: Any,
    credit_total: int | None,
    honour_idempotency_key: bool,
    log_level: str,
) -> None:
    """Serve the sandbox API over HTTP until interrupted (Ctrl-C)."""
    from runner.sandbox import Faults, SandboxConfig  # noqa: PLC0415 - keep `mlrun --help` fast
    from runner.sandbox.serve import serve as run_server  # noqa: PLC0415

    config = SandboxConfig(
        seed=seed,
        time_scale=time_scale,
        rate_limits=rate_limits,
        faults=faults or Faults(),
        credits=credit_total,
        world=world,
        honour_idempotency_key=honour_idempotency_key,
    )
    url = f"http://{host}:{port}"
    click.echo(
        f"MentionLab sandbox on {url} (seed {seed}, limits {rate_limits.name}, "
        f"time scale {time_scale:g}: {_pace(time_scale)})"
    )
    click.echo("Try:")
    click.echo(
        f"  curl -s -X POST {url}/api/jobs/trigger -H 'Content-Type: application/json' \\\n"
        "    -H 'x-api-key: ml_live_sandbox' "
        "-H 'x-project-id: fedcba98-7654-3210-fedc-ba9876543210' \\\n"
        """    --data '{"aiModels":["gpt-4.1-mini"],"executionCount":1}'"""
    )
    click.echo(f"  curl -s {url}/_sandbox/truth")
    # uvicorn stops on SIGINT/SIGTERM itself, then raises the signal again for the process's
    # own handler: the default one, so a stopped server ends quietly, as servers do.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    run_server(config, host, port, log_level=log_level)
