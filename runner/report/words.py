"""Counted nouns, for every renderer and command line: ``1 job``, ``2 jobs``.

Imports nothing, so a command imports it at no cost to ``mlrun --help``.
"""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 project``, ``2,000 projects`` (``many``: the plural when it is not ``noun + s``)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
