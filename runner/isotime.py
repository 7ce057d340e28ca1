"""ISO 8601 instants: one parser, and a time without a zone is an error, never local time.

The API's timestamps (``createdAt``, ``updatedAt``) and mlrun's own files carry a zone (``Z`` or
an offset). A time without one could be any of 24 hours: reading it as this machine's local time
would shift a settle window or a forecast silently, so it is refused.
"""

from __future__ import annotations

from datetime import datetime


class ZonelessTime(ValueError):
    """An ISO 8601 time without a zone: it names no instant."""


def parse_instant(text: str) -> datetime:
    """The instant ``text`` names; ValueError if it is not ISO 8601, ZonelessTime if no zone."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ZonelessTime(f"{text!r} has no time zone")
    return moment


def epoch_seconds(text: str | None) -> float | None:
    """Unix seconds of ``text``, or None when it is missing, not ISO 8601 or has no zone."""
    if not text:
        return None
    try:
        return parse_instant(text).timestamp()
    except ValueError:
        return None
