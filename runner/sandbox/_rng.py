"""Deterministic randomness: every draw is a pure function of the seed and some identifiers.

The sandbox never uses a global random generator. World facts (query counts, job durations,
outcomes) hash ``(seed, id, salt)``; fault decisions hash ``(seed, request number, salt)``. So the
same seed and the same request sequence always give the same world and the same faults, whatever
the concurrency or the wall clock.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache

_MASK = (1 << 64) - 1
_TWO_64 = float(1 << 64)


def mix64(value: int) -> int:
    """The splitmix64 finaliser: a cheap, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


@cache
def salt(name: str) -> int:
    """A stable 64-bit integer for a name (a fault kind, an id)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def hash_parts(*parts: int | str) -> int:
    """A 64-bit hash of integers and strings, stable across processes and Python versions."""
    state = 0
    for part in parts:
        value = salt(part) if isinstance(part, str) else part & _MASK
        state = mix64(state ^ value)
    return state


def unit(*parts: int | str) -> float:
    """A uniform draw in [0, 1) from the parts."""
    return hash_parts(*parts) / _TWO_64


def chance(rate: float, *parts: int | str) -> bool:
    """True with probability ``rate``; never for 0, always for 1."""
    return rate > 0.0 and (rate >= 1.0 or unit(*parts) < rate)


def rng(*parts: int | str) -> random.Random:
    """A private generator for a sequence of draws about one thing (a project, a job)."""
    return random.Random(hash_parts(*parts))


def derived_uuid(*parts: int | str) -> str:
    """A version-4-shaped UUID derived from the parts (stable, so tests can predict it)."""
    high = hash_parts(*parts, "uuid-high")
    low = hash_parts(*parts, "uuid-low")
    high = (high & ~(0xF << 12)) | (0x4 << 12)
    low = (low & ~(0x3 << 62)) | (0x2 << 62)
    text = f"{high:016x}{low:016x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
