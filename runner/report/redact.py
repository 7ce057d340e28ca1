"""Keeping secrets out of every report: API keys masked, URLs stripped of credentials.

The renderers pass their final text through :func:`redact`, and the report model is built from
already-redacted strings, so a key that slipped into an error message or a URL never reaches a
file, a terminal or a pull-request comment.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Production keys begin with ``ml_live_`` (the API reference); test keys are masked the same way.
_API_KEY = re.compile(r"ml_(?:live|test)_[A-Za-z0-9_-]+")
MASK = "ml_live_***"


def redact(text: str) -> str:
    """``text`` with every MentionLab API key replaced by a mask."""
    return _API_KEY.sub(MASK, text)


def redact_optional(text: str | None) -> str | None:
    """:func:`redact`, passing None through."""
    return None if text is None else redact(text)


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment (where credentials hide), keys masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # an unparsable URL is kept only as far as the first '?' or '#'
        return redact(re.split(r"[?#]", url, maxsplit=1)[0])
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
