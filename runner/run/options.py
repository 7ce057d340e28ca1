"""How hard a run tries and how long it waits: the engine's and the gateway's settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineOptions:
    """How hard to try, how long to wait. Seconds."""

    max_attempts: int = 8  # sends of one trigger that provably did not take effect
    max_retry_seconds: float = 900.0  # from the first failure that provably did not take effect
    max_throttled: int = 100  # 429s for one trigger before giving up on it
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    settle_grace: float = 60.0  # how long a created job may take to appear in the list
    settle_lookups: int = 4
    clock_skew: float = 120.0  # allowance when comparing our intent time with createdAt
    retry_ambiguous: bool = False
    allow_stacking: bool = False  # trigger even if the project's last job is still running
    fail_fast: bool = False
    max_failures: int | None = None
    outage_threshold: int = 3  # consecutive unavailable answers that open the breaker
    outage_pause: float = 30.0
    outage_pause_cap: float = 300.0
