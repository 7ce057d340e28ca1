"""Building what talks to the API, in one place for plan, apply and status.

The client for a target (the API over HTTP, or an in-process sandbox), the run's limiter from
the manifest's settings, and the in-process sandbox of a ``--sandbox`` run, whose state is kept
beside the ledger so that ``--resume`` and ``status`` find its jobs again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from runner.api import ClientOptions, MentionLabClient
from runner.clock import Clock
from runner.manifest.model import Settings
from runner.ratelimit import RateLimiter, Window
from runner.run.signals import Say
from runner.run.target import SANDBOX, Target
from runner.store import RunRecord, Store

if TYPE_CHECKING:
    from runner.sandbox import Sandbox

SANDBOX_TIME_SCALE = 60.0  # a ten-minute job takes ten seconds in the quickstart


def make_limiter(settings: Settings, clock: Clock, concurrency: int | None) -> RateLimiter:
    """The run's limiter: the manifest's windows, ``concurrency`` requests at once, a slow start."""
    windows = [Window(limit, seconds) for limit, seconds in settings.rate_limits.windows()]
    on_the_wire = concurrency or settings.concurrency
    return RateLimiter(windows, clock=clock, concurrency=on_the_wire, probe_first=True)


def make_client(
    target: Target,
    settings: Settings,
    *,
    concurrency: int | None = None,
    sandbox: Sandbox | None = None,
) -> MentionLabClient:
    """The client for ``target``: the API over HTTP, or ``sandbox`` (a new one by default)."""
    options = ClientOptions(
        request_timeout=settings.timeouts.request,
        connect_timeout=settings.timeouts.connect,
        max_connections=max(concurrency or settings.concurrency, 1),
    )
    transport = None
    if target.sandbox:
        transport = (sandbox or new_sandbox(SANDBOX_TIME_SCALE)).transport()
    return MentionLabClient(
        api_key=target.api_key, base_url=target.base_url, transport=transport, options=options
    )


def new_sandbox(time_scale: float) -> Sandbox:
    """An in-process sandbox for ``--sandbox``: its jobs run ``time_scale`` times faster."""
    from runner.sandbox import Sandbox, SandboxConfig  # noqa: PLC0415 - only with --sandbox

    return Sandbox(SandboxConfig(time_scale=time_scale))


def sandbox_state_file(ledger: Store, run_id: str) -> Path:
    """Where a sandbox run keeps its in-process sandbox's state, beside the ledger."""
    return ledger.local_dir / "sandbox" / f"{run_id}.json"


def kept_sandbox(record: RunRecord, state_file: Path) -> tuple[Sandbox, bool]:
    """The in-process sandbox of a sandbox run, loaded with what it had created when it stopped;
    and whether that state was found (a killed process saved none).

    On the event loop: the sandbox's times are the loop's.
    """
    sandbox = new_sandbox(float(record.meta.get("sandboxTimeScale", SANDBOX_TIME_SCALE)))
    return sandbox, sandbox.load(state_file, api_key=SANDBOX.api_key)


def resumed_sandbox(record: RunRecord, state_file: Path, say: Say) -> Sandbox:
    """:func:`kept_sandbox` for ``--resume``: without its state, a note, and a new sandbox."""
    sandbox, found = kept_sandbox(record, state_file)
    if not found:
        say(
            f"note: the sandbox's state of run {record.run_id} was not saved (the process was "
            "killed): this sandbox knows none of its jobs; unsettled triggers are sent again "
            "(free on the sandbox) and jobs in flight are reported as gone"
        )
    return sandbox


@contextmanager
def sandbox_saved(sandbox: Sandbox | None, state_file: Path, say: Say) -> Iterator[None]:
    """Save ``sandbox``'s state when the run stops, however it stops, for ``--resume``.

    On the event loop: the sandbox's times are the loop's.
    """
    try:
        yield
    finally:
        if sandbox is not None:
            try:
                sandbox.save(state_file)
            except OSError as error:
                say(f"note: the sandbox's state could not be saved to {state_file}: {error}")
