"""Ground truth: what the sandbox really did, for tests to prove nothing was lost or sent twice."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from runner.sandbox.timefmt import iso


def key_fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible name for an API key."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass
class TriggerRecord:
    """One trigger the sandbox processed (a job, or the cached jobs of one call)."""

    kind: str
    sequence: int
    ids: tuple[str, ...]
    project_id: str
    organisation_id: str
    api_key: str
    ai_models: tuple[str, ...]
    execution_count: int
    total_executions: int
    idempotency_key: str | None
    created_wall: float
    created_monotonic: float
    response: str = "pending"
    status: int | None = None
    replays: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sequence": self.sequence,
            "jobId": self.ids[0] if self.kind == "job" else None,
            "cachedJobIds": list(self.ids) if self.kind == "cached" else None,
            "projectId": self.project_id,
            "organisationId": self.organisation_id,
            # Never the key itself: the truth is printed and saved by tests and tools.
            "apiKeyFingerprint": key_fingerprint(self.api_key),
            "aiModels": list(self.ai_models),
            "executionCount": self.execution_count,
            "totalExecutions": self.total_executions,
            "idempotencyKey": self.idempotency_key,
            "createdAt": iso(self.created_wall),
            "createdWall": self.created_wall,
            "createdMonotonic": self.created_monotonic,
            "response": self.response,
            "responseStatus": self.status,
            "replays": self.replays,
        }


@dataclass
class Truth:
    """Counters and records kept as requests are served."""

    triggers: list[TriggerRecord] = field(default_factory=list)
    requests: int = 0
    paths: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def to_json(self) -> dict[str, Any]:
        by_project: dict[str, list[str]] = {}
        for record in self.triggers:
            by_project.setdefault(record.project_id, []).extend(record.ids)
        return {
            "requests": self.requests,
            "triggers": [record.to_json() for record in self.triggers],
            "byProject": by_project,
            "paths": dict(self.paths),
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
            "faults": dict(self.faults),
            "rateLimited": dict(self.rate_limited),
            "rateLimitedTotal": sum(self.rate_limited.values()),
        }
