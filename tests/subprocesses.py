"""mlrun as a user runs it, in a subprocess: a command, and the served sandbox.

One place for running ``python -m runner ARGS`` with a clean environment, and for starting
``mlrun sandbox serve`` on loopback, waiting until it answers, and always stopping it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CANARY_KEY = "ml_live_" + "chaosCANARY0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# What the caller's environment must not lend a command: its key, its state, its CI job (a
# CI provider's variables name a run key of their own).
PRIVATE = ("MENTIONLAB_", "MLRUN_", "GITHUB_", "GITLAB_", "CI_")


def clean_env(*, drop: tuple[str, ...] = PRIVATE, **extra: str) -> dict[str, str]:
    """The current environment without the variables ``drop`` starts, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**base, **extra}


def mlrun_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def run_mlrun(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    drop: tuple[str, ...] = PRIVATE,
) -> subprocess.CompletedProcess[str]:
    """``mlrun ARGS`` as a user runs it, in ``cwd``: a clean environment plus ``env``."""
    return subprocess.run(
        mlrun_command(*map(str, args)),
        cwd=cwd,
        env={**clean_env(drop=drop), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ServedSandbox:
    """``mlrun sandbox serve`` in a subprocess, and its ground truth over HTTP."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def truth(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sandbox/truth", timeout=10.0)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def configure(self, **changes: Any) -> None:
        response = httpx.post(f"{self.url}/_sandbox/config", json=changes, timeout=10.0)
        response.raise_for_status()

    def env(self, api_key: str = CANARY_KEY) -> dict[str, str]:
        return clean_env(MENTIONLAB_BASE_URL=self.url, MENTIONLAB_API_KEY=api_key)


@contextlib.contextmanager
def start_served_sandbox(
    directory: Path,
    *,
    seed: int = 0,
    time_scale: float | None = 50.0,
    extra: Sequence[str] = (),
) -> Iterator[ServedSandbox]:
    """Serve a sandbox on a free loopback port until the block ends; always terminated.

    ``time_scale`` None: the command's default.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / f"serve-{port}.log"
    args = ["sandbox", "serve", "--port", str(port), "--seed", str(seed), *extra]
    if time_scale is not None:
        args += ["--time-scale", str(time_scale)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            mlrun_command(*args), stdout=out, stderr=subprocess.STDOUT, env=clean_env()
        )
    served = ServedSandbox(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_up(served)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(served: ServedSandbox) -> None:
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"the sandbox exited: {served.log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            served.truth()
            return
        time.sleep(0.05)
    raise RuntimeError("the sandbox did not come up within 15 s")
