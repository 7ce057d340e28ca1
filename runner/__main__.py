"""``python -m runner`` and the ``mlrun`` command: signals first, then the command line.

A signal that arrives while the command line is still being imported ends the process at once
with exit 3 (nothing has started); from then on, :mod:`runner.cli` handles it.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

EXIT_INTERRUPTED = 3  # runner.exitcodes.ExitCode.INTERRUPTED, without importing it yet


def _exit_at_once(signum: int, _frame: FrameType | None) -> None:
    os.write(2, f"interrupted ({signal.Signals(signum).name}) before anything started\n".encode())
    os._exit(EXIT_INTERRUPTED)


def main() -> None:
    """Run ``mlrun``."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_at_once)
    from runner.cli import main as command_line  # noqa: PLC0415 - after the signals are set

    command_line()


if __name__ == "__main__":
    main()
