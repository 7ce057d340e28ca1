"""Where a run's requests go: one base URL and one API key, pinned to the run.

A new run takes its target from the command line and the environment (``--sandbox``,
``--base-url``, ``MENTIONLAB_BASE_URL``, ``MENTIONLAB_API_KEY``) and records the base URL and a
fingerprint of the key (never the key). Everything that later talks to the API about that run
(``apply --resume``, ``status``) goes back to the same target: with no URL given, the run's own;
another URL, or a key with another fingerprint, is refused before anything is sent. A trigger
whose answer was lost on one server would otherwise be "settled" against another as never
created, and paid twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from runner.api import api_key_from_env, check_base_url
from runner.endpoints import BASE_URL_ENV, DEFAULT_BASE_URL, SANDBOX_URL
from runner.errors import ConfigError

SANDBOX_KEY = "ml_live_sandbox"  # the in-process sandbox accepts any ml_live_ key
_FINGERPRINT_SALT = b"mentionlab-runner api key\x00"


def key_fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible name for an API key, safe to store and print."""
    digest = hashlib.sha256(_FINGERPRINT_SALT + api_key.encode()).hexdigest()
    return f"sha256:{digest[:16]}"


@dataclass(frozen=True)
class Target:
    """The API a run talks to: its base URL and key, or the in-process sandbox."""

    base_url: str
    api_key: str = field(repr=False)
    sandbox: bool = False

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.api_key)

    def describe(self) -> str:
        """The target for a message: the URL, or the sandbox."""
        return "the in-process sandbox (--sandbox)" if self.sandbox else self.base_url


SANDBOX = Target(SANDBOX_URL, SANDBOX_KEY, sandbox=True)


def new_target(*, sandbox: bool, base_url: str | None, env: Mapping[str, str]) -> Target:
    """The target of a new run: the sandbox, or the given (or default) URL with the env's key."""
    if sandbox:
        if base_url is not None:
            raise ConfigError("--sandbox and --base-url name two different APIs: choose one")
        return SANDBOX
    url = check_base_url(base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
    return Target(url, api_key_from_env(env))


class PinnedRun(Protocol):
    """What a run recorded about its target (a ledger's ``RunRecord``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def key_fingerprint(self) -> str | None: ...


def pinned_target(
    run: PinnedRun, *, sandbox: bool, base_url: str | None, env: Mapping[str, str]
) -> Target:
    """The target of a command about an existing run: the run's own, or a refusal (exit 2).

    With no URL given (no ``--base-url``, no ``MENTIONLAB_BASE_URL``), the run's URL is used; a
    sandbox run needs neither a URL nor a key.
    """
    if run.base_url == SANDBOX_URL:
        given = base_url or (None if sandbox else env.get(BASE_URL_ENV))
        if given is not None:
            raise ConfigError(
                f"run {run.run_id} ran on the in-process sandbox, not {_shown(given)}: a run "
                "stays on its API; drop --base-url (and unset MENTIONLAB_BASE_URL) to continue it"
            )
        return SANDBOX
    if sandbox:
        raise ConfigError(
            f"run {run.run_id} ran against {run.base_url}, not the sandbox: a run stays on its "
            "API; drop --sandbox to continue it there"
        )
    url = check_base_url(base_url or env.get(BASE_URL_ENV) or run.base_url)
    if _comparable(url) != _comparable(run.base_url):
        raise ConfigError(
            f"run {run.run_id} ran against {run.base_url}, not {_shown(url)}: a run stays on "
            f"its API; drop --base-url (and unset {BASE_URL_ENV}) to continue it there"
        )
    target = Target(url, api_key_from_env(env))
    if run.key_fingerprint is not None and target.fingerprint != run.key_fingerprint:
        raise ConfigError(
            f"run {run.run_id} was started with another API key (fingerprint "
            f"{run.key_fingerprint}; MENTIONLAB_API_KEY has {target.fingerprint}): a run stays "
            "with its key; export the key it was started with"
        )
    return target


def _comparable(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")


def _shown(url: str) -> str:
    from runner.redact import safe_url  # noqa: PLC0415 - report is a leaf package

    return safe_url(url)
