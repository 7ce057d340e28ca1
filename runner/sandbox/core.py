"""The sandbox's mutable runtime: current limits and faults, the stores, the request counter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from runner.catalog import Catalog, default_catalog
from runner.clock import Clock
from runner.sandbox.config import UNSET, Change, SandboxConfig, coerce_faults, coerce_policy
from runner.sandbox.faults import Faults
from runner.sandbox.ratelimit import RateLimitPolicy, SlidingLog
from runner.sandbox.state import Store
from runner.sandbox.truth import Truth, key_fingerprint
from runner.sandbox.world import Directory


class Core:
    """State shared by every request; changed only synchronously (never across an await)."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.catalog: Catalog = default_catalog()
        self.truth = Truth()
        self.directory = Directory(config.world, config.seed)
        self.store = Store(config.seed, config.time_scale, config.credits, self.truth)
        self.limiter = SlidingLog(config.rate_limits.scaled(config.time_scale))
        self.sequence = 0
        self.started_at: float | None = None
        self._pending = list(config.schedule)

    @property
    def faults(self) -> Faults:
        return self.config.faults

    @property
    def seed(self) -> int:
        return self.config.seed

    def scaled(self, seconds: float) -> float:
        """Simulated seconds as sandbox-clock seconds."""
        return seconds / self.config.time_scale

    def next_request(self, now: float) -> int:
        """Number the request (from 1) and apply any scheduled change that is now due."""
        if self.started_at is None:
            self.started_at = now
        self.sequence += 1
        self.truth.requests = self.sequence
        if self._pending:
            self._apply_due(now)
        return self.sequence

    def _apply_due(self, now: float) -> None:
        elapsed = now - (now if self.started_at is None else self.started_at)
        due = [c for c in self._pending if self._is_due(c, elapsed)]
        for change in due:
            self._pending.remove(change)
            self.apply(change)

    def _is_due(self, change: Change, elapsed: float) -> bool:
        if change.after_requests is not None and self.sequence > change.after_requests:
            return True
        return change.after_seconds is not None and elapsed >= self.scaled(change.after_seconds)

    def apply(self, change: Change) -> None:
        """Apply one change of limits, faults or credits now."""
        if change.rate_limits is not None:
            self.set_rate_limits(change.rate_limits)
        if change.faults is not None:
            self.config = replace(self.config, faults=change.faults)
        if change.credits is not UNSET:
            self.set_credits(change.credits)

    def set_rate_limits(self, policy: RateLimitPolicy) -> None:
        self.config = replace(self.config, rate_limits=policy)
        self.limiter.set_windows(policy.scaled(self.config.time_scale))

    def set_credits(self, total: int | None) -> None:
        self.config = replace(self.config, credits=total)
        self.store.credits = total

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change limits, faults (or ``faults_update``: merged), credits, idempotency."""
        for name, value in changes.items():
            if name == "rate_limits":
                self.set_rate_limits(coerce_policy(value))
            elif name == "faults":
                self.config = replace(self.config, faults=coerce_faults(value))
            elif name == "faults_update":
                self.config = replace(self.config, faults=Faults.from_mapping(value, self.faults))
            elif name == "credits":
                self.set_credits(None if value is None else int(value))
            elif name == "honour_idempotency_key":
                self.config = replace(self.config, honour_idempotency_key=bool(value))
            else:
                raise ValueError(f"cannot configure {name!r} on a running sandbox")

    def truth_json(self) -> dict[str, Any]:
        """The ground truth, as ``GET /_sandbox/truth`` shows it."""
        data = self.truth.to_json()
        data["seed"] = self.config.seed
        data["arrivals"] = {
            key_fingerprint(key): times for key, times in self.limiter.arrivals().items()
        }
        data["windows"] = [{"limit": w.limit, "seconds": w.seconds} for w in self.limiter.windows]
        data["credits"] = self.store.summary()
        return data

    def describe(self) -> dict[str, Any]:
        """The current settings, as ``GET /_sandbox/config`` shows them."""
        return {
            "seed": self.config.seed,
            "timeScale": self.config.time_scale,
            "rateLimits": [str(w) for w in self.config.rate_limits.windows],
            "faults": _faults_json(self.faults),
            "credits": self.store.summary(),
            "honourIdempotencyKey": self.config.honour_idempotency_key,
            "strictWorld": self.config.world is not None,
        }


def _faults_json(faults: Faults) -> dict[str, Any]:
    data = {k: v for k, v in vars(faults).items() if k != "request_faults"}
    latency = faults.latency
    data["latency"] = {
        "median_ms": latency.median_ms,
        "p99_ms": latency.p99_ms,
        "spike_rate": latency.spike_rate,
        "spike_ms": latency.spike_ms,
    }
    return data
