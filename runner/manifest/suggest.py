""" "Did you mean ...?" for keys, set names and enum values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _normal(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option ``name`` most likely meant: same letters ignoring case and _/-, else nearest."""
    choices = list(options)
    for option in choices:
        if _normal(option) == _normal(name):
            return option
    matches = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, options: Iterable[str], *, noun: str = "") -> str:
    """A hint naming the closest option, or listing the options when none is close.

    ``noun`` names the options in the plural (``model sets``).
    """
    choices = sorted(options)
    match = closest(name, choices)
    if match is not None:
        return f"did you mean {match!r}?"
    if not choices:
        return f"no {noun} are defined" if noun else "no value is defined"
    listed = ", ".join(choices[:20]) + (", ..." if len(choices) > 20 else "")
    return f"valid {noun or 'values'}: {listed}"
