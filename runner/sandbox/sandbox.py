"""The facade: one object holding the app, its transport, its configuration and its truth."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from runner.clock import Clock, SystemClock
from runner.sandbox import snapshot
from runner.sandbox.app import SandboxApp
from runner.sandbox.config import SandboxConfig
from runner.sandbox.core import Core
from runner.sandbox.faults import Faults
from runner.sandbox.jobs import job_json, job_state
from runner.sandbox.ratelimit import RateLimitPolicy, Window, window_violations
from runner.sandbox.transport import SandboxTransport


class Sandbox:
    """A simulated MentionLab API: deterministic from its seed, on any :class:`Clock`.

    Use :attr:`app` (raw ASGI 3) with uvicorn, or :meth:`transport` with ``httpx.AsyncClient``
    in process. Time is read only through ``clock`` (default :class:`SystemClock`; under a mock
    clock use :class:`~runner.clock.LoopClock`).
    """

    def __init__(self, config: SandboxConfig | None = None, *, clock: Clock | None = None) -> None:
        self._core = Core(config or SandboxConfig(), clock or SystemClock())
        self.app = SandboxApp(self._core)

    @property
    def config(self) -> SandboxConfig:
        """The current configuration (after any scheduled or explicit change)."""
        return self._core.config

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that calls the app in process and maps network faults."""
        return SandboxTransport(self.app)

    def truth(self) -> dict[str, Any]:
        """The ground truth, as ``GET /_sandbox/truth`` returns it."""
        return self._core.truth_json()

    def configure(self, **changes: Any) -> None:
        """Change ``rate_limits``, ``faults``, ``faults_update``, ``credits`` or
        ``honour_idempotency_key`` mid-run (also ``POST /_sandbox/config``)."""
        self._core.configure(changes)

    def set_faults(
        self, faults: Faults | str | Mapping[str, Any] | None = None, **rates: Any
    ) -> None:
        """Replace the faults (``faults``), or update some of them by name (``rates``)."""
        if faults is not None:
            self._core.configure({"faults": faults})
        if rates:
            self._core.configure({"faults_update": rates})

    def set_rate_limits(self, policy: RateLimitPolicy | str) -> None:
        """Replace the rate-limit policy (a :class:`RateLimitPolicy`, a name or a spec)."""
        self._core.configure({"rate_limits": policy})

    def set_credits(self, total: int | None) -> None:
        """Set the total executions allowed (None: unlimited); past use still counts."""
        self._core.configure({"credits": total})

    def occupy(self, api_key: str, count: int) -> None:
        """Take ``count`` rate-limit slots, as a neighbour sharing the key did over the last
        minute (evenly spread, within the per-second window)."""
        self._core.limiter.occupy(api_key, self._core.clock.monotonic(), count)

    def window_violations(self, windows: Sequence[Window] | None = None) -> list[str]:
        """Breaches of ``windows`` (default: the current ones) in the admitted-arrival log."""
        checked = self._core.limiter.windows if windows is None else windows
        return window_violations(self._core.limiter.arrivals(), checked)

    def save(self, path: Path) -> None:
        """Write what this sandbox created to ``path`` (JSON, no API key), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(snapshot.dump(self._core)), encoding="utf-8")
        partial.replace(path)

    def load(self, path: Path, *, api_key: str) -> bool:
        """Load what :meth:`save` wrote into this new sandbox, as created by ``api_key``.

        False, loading nothing, when ``path`` is missing or not a state of this sandbox.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            snapshot.restore(self._core, data, api_key=api_key)
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return True

    def job(self, job_id: str) -> dict[str, Any]:
        """The true current state of a job, ignoring vanish, flap and list lag."""
        job = self._core.store.jobs[job_id]
        now = max(self._core.clock.monotonic(), job.commit_at)
        return job_json(job, job_state(job, now))
