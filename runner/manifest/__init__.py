"""The manifest language: loading, checking and the typed model.

``load_manifest(paths, env=...)`` returns a :class:`LoadedManifest` or raises
:class:`runner.errors.ManifestError` with every problem found. The language is documented in
``docs/manifest.md``; its shape in ``schemas/manifest.schema.json``.

The loader (and with it PyYAML and jsonschema) is imported on first use, so importing the typed
model from here stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runner.manifest.limits import DEFAULT_LIMITS, Limits
from runner.manifest.model import (
    Endpoint,
    Manifest,
    Project,
    RateLimits,
    Reports,
    Settings,
    SourceRef,
    Timeouts,
    TriggerSpec,
)

if TYPE_CHECKING:
    from runner.manifest.loader import LoadedManifest, load_manifest, manifest_files

_LAZY = {"LoadedManifest", "load_manifest", "manifest_files"}

__all__ = [
    "DEFAULT_LIMITS",
    "Endpoint",
    "Limits",
    "LoadedManifest",
    "Manifest",
    "Project",
    "RateLimits",
    "Reports",
    "Settings",
    "SourceRef",
    "Timeouts",
    "TriggerSpec",
    "load_manifest",
    "manifest_files",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("runner.manifest.loader"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
