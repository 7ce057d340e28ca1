"""The caps that keep hostile or accidental input from hanging or exhausting the runner."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-file caps, checked before anything is built. Documented in docs/manifest.md."""

    max_bytes: int = 10 * MIB  # a 5,000-project manifest is about 1 MB
    max_alias_nodes: int = 100_000  # nodes an alias may stand for, all aliases of a file together
    max_depth: int = 64  # nesting of mappings and sequences; a manifest needs about 6


DEFAULT_LIMITS = Limits()
