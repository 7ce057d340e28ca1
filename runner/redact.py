"""Keeping secrets out of every text: API keys masked by value and by shape, URLs stripped.

Two kinds of masking. :func:`redact` replaces what looks like a MentionLab key (``ml_live_…``);
the renderers pass their final text through it. :class:`Redactor` also knows the secrets
themselves and removes each one by value, whatever its characters (``.``, ``+``, ``/``, ``=``),
and in the spellings a server may echo it in (percent-encoded, JSON-escaped). The API client
passes every text a server provides through one, so a key that a server echoes never reaches an
error, the ledger or a report; the CLI passes its error lines through one as a last defence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

# Production keys begin with ``ml_live_`` (the API reference); test keys are masked the same way.
# A token runs over the characters of base64 and URL-safe base64 too, ending before a final '.'.
_API_KEY = re.compile(r"ml_(?:live|test)_[A-Za-z0-9_\-+/=.]*[A-Za-z0-9_\-+/=]")
MASK = "ml_live_***"


def redact(text: str) -> str:
    """``text`` with every MentionLab API key replaced by a mask."""
    return _API_KEY.sub(MASK, text)


def redact_optional(text: str | None) -> str | None:
    """:func:`redact`, passing None through."""
    return None if text is None else redact(text)


class Redactor:
    """Removes the given secrets by value, and every ``ml_live_…`` token, from text and JSON data.

    Each secret is matched as itself and as a server may spell it when echoing it back:
    percent-encoded (``quote``, ``quote_plus``) and JSON-escaped. Longer spellings are matched
    first, so one secret containing another is masked whole.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        spellings = {spelling for secret in secrets if secret for spelling in _spellings(secret)}
        ordered = sorted(spellings, key=len, reverse=True)
        alternatives = [re.escape(spelling) for spelling in ordered] + [_API_KEY.pattern]
        self._pattern = re.compile("|".join(alternatives))

    def __repr__(self) -> str:
        return "Redactor(...)"

    def __call__(self, text: str) -> str:
        """``text`` with every secret and every API key replaced by a mask."""
        return self._pattern.sub(MASK, text)

    def optional(self, text: str | None) -> str | None:
        """The redacted ``text``, passing None through."""
        return None if text is None else self(text)

    def data(self, value: Any) -> Any:
        """JSON data (dicts, lists, strings, numbers) with every string redacted, keys too."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(key)): self.data(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.data(item) for item in value]
        return value


def _spellings(secret: str) -> set[str]:
    escaped = json.dumps(secret)[1:-1]
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        escaped,
        escaped.replace("/", "\\/"),  # as servers that escape "/" in JSON write it
    }


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
