"""Fault knobs and the per-request fault decision.

Request-level faults (5xx, 429, refused or dropped connections, lost responses, malformed bodies,
latency) are drawn from ``(seed, request number, fault kind)``; job-level faults (failed
executions, jobs that never finish, vanish or flap) from ``(seed, job id, fault kind)``. The same
seed and the same request sequence therefore always give the same faults.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, get_args

from runner.sandbox._rng import chance, unit

RetryAfterStyle = Literal["seconds", "http-date", "missing", "garbage", "huge", "mixed"]
LostKind = Literal["mixed", "reset", "timeout"]
FaultTarget = Literal["all", "triggers", "reads"]

_DURATION_RE = re.compile(r"^\s*(\d*\.?\d+)\s*(ms|s|sec|min|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_Z99 = NormalDist().inv_cdf(0.99)
_GATEWAYS = (503, 502, 504, 500)
_STYLES: tuple[str, ...] = ("seconds", "http-date", "missing", "garbage", "huge")


def parse_duration(value: object) -> float:
    """Seconds from ``2.5``, ``"250ms"``, ``"40s"``, ``"2min"`` or ``"1h"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if match is None:
        raise ValueError(f"bad duration {value!r}; expected e.g. 250ms, 40s, 2min")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


@dataclass(frozen=True)
class Latency:
    """Log-normal added latency (median and 99th percentile), plus rare spikes."""

    median_ms: float = 0.0
    p99_ms: float = 0.0
    spike_rate: float = 0.0
    spike_ms: float = 0.0

    @property
    def active(self) -> bool:
        return self.median_ms > 0 or (self.spike_rate > 0 and self.spike_ms > 0)

    def sample(self, draw: float, spike_draw: float) -> float:
        """Seconds of added latency for two uniform draws in [0, 1)."""
        seconds = 0.0
        if self.median_ms > 0:
            p99 = max(self.p99_ms, self.median_ms)
            sigma = math.log(p99 / self.median_ms) / _Z99
            z = NormalDist().inv_cdf(min(max(draw, 1e-12), 1 - 1e-12))
            seconds = self.median_ms * math.exp(sigma * z) / 1000.0
        if spike_draw < self.spike_rate:
            seconds += self.spike_ms / 1000.0
        return seconds

    @classmethod
    def parse(cls, value: object) -> Latency:
        """``"20ms..250ms"`` (median..p99), ``"50ms"`` (constant) or a mapping."""
        if isinstance(value, Mapping):
            return cls(
                median_ms=parse_duration(value.get("median", 0)) * 1000,
                p99_ms=parse_duration(value.get("p99", value.get("median", 0))) * 1000,
                spike_rate=float(value.get("spike_rate", 0.0)),
                spike_ms=parse_duration(value.get("spike", 0)) * 1000,
            )
        median, _, p99 = str(value).partition("..")
        return cls(parse_duration(median) * 1000, parse_duration(p99 or median) * 1000)


@dataclass(frozen=True)
class Faults:
    """Fault rates (0..1) and delays; all zero by default (a healthy API).

    Durations (``list_lag``, ``commit_delay``, latency) are simulated seconds, divided by the
    sandbox's ``time_scale``; ``hang_seconds`` is real time (it must outlast a real client's
    timeout in served mode).
    """

    error_500: float = 0.0
    error_502: float = 0.0
    error_503: float = 0.0
    error_504: float = 0.0
    processed_500: float = 0.5
    processed_502: float = 0.5
    processed_504: float = 0.5
    error_429: float = 0.0
    error_400: float = 0.0
    echo_key: float = 0.0
    retry_after: RetryAfterStyle = "seconds"
    refuse: float = 0.0
    drop_before: float = 0.0
    lost_response: float = 0.0
    lost_response_kind: LostKind = "mixed"
    hang_seconds: float = 120.0
    malformed: float = 0.0
    latency: Latency = Latency()
    list_lag: float = 0.0
    commit_delay: float = 0.0
    execution_failure: float = 0.0
    job_failure: float = 0.0
    never_finish: float = 0.0
    vanish: float = 0.0
    flap: float = 0.0
    target: FaultTarget = "all"

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "float" and item.name not in _DELAYS and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {item.name}={value} is outside 0..1")
        _check_choice("retry_after", self.retry_after, RetryAfterStyle)
        _check_choice("lost_response_kind", self.lost_response_kind, LostKind)
        _check_choice("target", self.target, FaultTarget)

    @cached_property
    def request_faults(self) -> bool:
        """Whether any request-level fault can fire (a fast path when none can)."""
        rates = (self.error_500, self.error_502, self.error_503, self.error_504, self.error_429)
        more = (self.refuse, self.drop_before, self.lost_response, self.malformed, self.error_400)
        return any((*rates, *more, self.echo_key)) or self.latency.active

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``"error_503=0.05,error_502=0.1@0.8,latency=20ms..250ms,list_lag=20s"``."""
        items: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"bad fault {part!r}; expected name=value")
            items[name.strip()] = value.strip()
        return cls.from_mapping(items)

    @classmethod
    def load(cls, path: str | Path) -> Faults:
        """A YAML or JSON file holding a mapping of the same names as :meth:`parse`."""
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith(".json"):
            data = json.loads(text)
        else:
            import yaml  # noqa: PLC0415 - only when a fault file is used

            data = yaml.safe_load(text) or {}
        if not isinstance(data, Mapping):
            raise TypeError(f"{path}: a fault file holds a mapping of fault names to values")
        return cls.from_mapping(data)

    @classmethod
    def from_spec(cls, spec: str) -> Faults:
        """A file path if one exists by that name, else an inline spec."""
        candidate = Path(spec)
        if spec and candidate.suffix in {".yaml", ".yml", ".json"} and candidate.is_file():
            return cls.load(candidate)
        return cls.parse(spec)

    @classmethod
    def from_mapping(cls, items: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """Faults from names and values (numbers or strings as in :meth:`parse`)."""
        values: dict[str, Any] = {}
        known = {item.name: item.type for item in fields(cls)}
        for name, raw in items.items():
            _convert(name, raw, known, values)
        return replace(base or cls(), **values)


_DELAYS = frozenset({"hang_seconds", "list_lag", "commit_delay"})


def _check_choice(name: str, value: str, kind: Any) -> None:
    if value not in get_args(kind):
        raise ValueError(f"{name}={value!r}: use one of {', '.join(get_args(kind))}")


def _convert(name: str, raw: Any, known: Mapping[str, Any], values: dict[str, Any]) -> None:
    if name == "spike":
        rate, _, size = str(raw).partition(":")
        values["latency"] = replace(
            values.get("latency", Latency()),
            spike_rate=float(rate),
            spike_ms=parse_duration(size or 0) * 1000,
        )
    elif name == "latency":
        parsed = Latency.parse(raw)
        previous = values.get("latency", Latency())
        values["latency"] = replace(parsed, spike_rate=previous.spike_rate or parsed.spike_rate)
        if previous.spike_ms:
            values["latency"] = replace(values["latency"], spike_ms=previous.spike_ms)
    elif name not in known:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}, spike")
    elif name in _DELAYS:
        values[name] = parse_duration(raw)
    elif known[name] == "float":
        rate, _, processed = str(raw).partition("@")
        values[name] = float(rate)
        if processed and name == "error_503":
            raise ValueError("error_503 is never processed (documented: safe to retry); drop '@'")
        if processed:
            values[f"processed_{name.removeprefix('error_')}"] = float(processed)
    else:
        values[name] = str(raw)


@dataclass(frozen=True)
class Decision:
    """The faults that fire for one request."""

    refuse: bool = False
    drop_before: bool = False
    latency: float = 0.0
    error_429: bool = False
    error_400: bool = False
    echo_key: bool = False
    retry_after: str = "seconds"
    gateway: int | None = None
    gateway_processed: bool = False
    lost: Literal["reset", "timeout"] | None = None
    malformed: bool = False
    variant: float = 0.0


NO_FAULTS = Decision()


def decide(faults: Faults, seed: int, seq: int, *, trigger: bool) -> Decision:
    """The faults of request number ``seq``: a pure function of its arguments."""
    style = _retry_after_style(faults.retry_after, seed, seq)
    if not faults.request_faults:
        return NO_FAULTS if style == "seconds" else Decision(retry_after=style)
    latency = faults.latency.sample(unit(seed, seq, "latency"), unit(seed, seq, "spike"))
    if not _targeted(faults.target, trigger=trigger):
        return Decision(latency=latency, retry_after=style)
    gateway = next((c for c in _GATEWAYS if chance(_rate(faults, c), seed, seq, f"e{c}")), None)
    return Decision(
        refuse=chance(faults.refuse, seed, seq, "refuse"),
        drop_before=chance(faults.drop_before, seed, seq, "drop"),
        latency=latency,
        error_429=chance(faults.error_429, seed, seq, "429"),
        error_400=chance(faults.error_400, seed, seq, "400"),
        echo_key=chance(faults.echo_key, seed, seq, "echo"),
        retry_after=style,
        gateway=gateway,
        gateway_processed=gateway is not None
        and chance(_processed(faults, gateway), seed, seq, "processed"),
        lost=_lost_kind(faults, seed, seq),
        malformed=chance(faults.malformed, seed, seq, "malformed"),
        variant=unit(seed, seq, "variant"),
    )


def _targeted(target: FaultTarget, *, trigger: bool) -> bool:
    return target == "all" or (target == "triggers") == trigger


def _rate(faults: Faults, code: int) -> float:
    rate: float = getattr(faults, f"error_{code}")
    return rate


def _processed(faults: Faults, code: int) -> float:
    if code == 503:
        return 0.0  # documented: 503 means "not processed, retry"
    rate: float = getattr(faults, f"processed_{code}")
    return rate


def _lost_kind(faults: Faults, seed: int, seq: int) -> Literal["reset", "timeout"] | None:
    if not chance(faults.lost_response, seed, seq, "lost"):
        return None
    if faults.lost_response_kind != "mixed":
        return faults.lost_response_kind
    return "reset" if unit(seed, seq, "lost-kind") < 0.5 else "timeout"


def _retry_after_style(style: RetryAfterStyle, seed: int, seq: int) -> str:
    if style != "mixed":
        return style
    return _STYLES[int(unit(seed, seq, "retry-after") * len(_STYLES))]
