"""The sandbox's configuration: a frozen value, plus the schedule of changes applied mid-run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.sandbox.faults import Faults
from runner.sandbox.ratelimit import RateLimitPolicy
from runner.sandbox.world import World

UNSET: Any = object()


@dataclass(frozen=True)
class Change:
    """A change of limits, faults or credits once ``after_requests`` requests have arrived.

    ``after_seconds`` (simulated seconds since the first request, divided by the time scale)
    is an alternative trigger; a change fires once, when its first condition holds.
    """

    after_requests: int | None = None
    after_seconds: float | None = None
    rate_limits: RateLimitPolicy | None = None
    faults: Faults | None = None
    credits: int | None = UNSET

    @classmethod
    def coerce(cls, item: Change | tuple[int, Mapping[str, Any]]) -> Change:
        """Accept ``(after_n_requests, {"rate_limits": "5/s", "faults": {...}})`` too."""
        if isinstance(item, Change):
            return item
        after, changes = item
        return cls(after_requests=after, **_changes(changes))


def _changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "rate_limits":
            out[name] = coerce_policy(value)
        elif name == "faults":
            out[name] = coerce_faults(value)
        elif name == "credits":
            out[name] = value
        else:
            raise ValueError(f"unknown scheduled change {name!r}; use rate_limits, faults, credits")
    return out


def coerce_policy(value: RateLimitPolicy | str) -> RateLimitPolicy:
    return value if isinstance(value, RateLimitPolicy) else RateLimitPolicy.parse(value)


def coerce_faults(value: Faults | str | Mapping[str, Any]) -> Faults:
    if isinstance(value, Faults):
        return value
    if isinstance(value, str):
        return Faults.parse(value)
    return Faults.from_mapping(value)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that shapes the simulated API; every field has a default.

    ``time_scale`` divides every simulated duration (job life cycles, rate-limit windows,
    latency, commit delays, list lag). ``credits`` is the total number of executions allowed
    (None: unlimited). ``world`` None is the lenient world (any project UUID exists).
    """

    seed: int = 0
    time_scale: float = 1.0
    rate_limits: RateLimitPolicy = field(default_factory=RateLimitPolicy)
    faults: Faults = field(default_factory=Faults)
    credits: int | None = None
    schedule: tuple[Change, ...] = ()
    world: World | None = None
    honour_idempotency_key: bool = False

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if isinstance(self.rate_limits, str):
            object.__setattr__(self, "rate_limits", RateLimitPolicy.parse(self.rate_limits))
        if isinstance(self.faults, str | Mapping):
            object.__setattr__(self, "faults", coerce_faults(self.faults))
        object.__setattr__(self, "schedule", tuple(Change.coerce(c) for c in self.schedule))

    def with_changes(self, **changes: Any) -> SandboxConfig:
        """A copy with some fields replaced (strings accepted for limits and faults)."""
        return replace(self, **changes)
