"""The JSON Schemas mlrun publishes (manifest, report), read as package data.

In a wheel the top-level ``schemas/`` directory is shipped as ``runner/schemas/``; in an editable
install (or a source checkout) that directory is absent and the repository's ``schemas/`` is read
instead. This module does no validation: callers pick the validator they need.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = "manifest.schema.json"
_SUFFIX = ".schema.json"
_REPOSITORY_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def _schema_dir() -> Traversable:
    packaged = resources.files("runner").joinpath("schemas")
    if packaged.is_dir():
        return packaged
    return _REPOSITORY_SCHEMAS


def schema_names() -> tuple[str, ...]:
    """The file names of every shipped schema, sorted."""
    directory = _schema_dir()
    if not directory.is_dir():
        return ()
    return tuple(sorted(p.name for p in directory.iterdir() if p.name.endswith(_SUFFIX)))


def _file_name(name: str) -> str:
    """``manifest`` and ``manifest.schema.json`` both name the manifest schema."""
    return name if name.endswith(_SUFFIX) else f"{name}{_SUFFIX}"


def schema_text(name: str = MANIFEST_SCHEMA) -> str:
    """The text of the schema ``name``; FileNotFoundError when no such schema is shipped."""
    file_name = _file_name(name)
    if file_name not in schema_names():
        available = ", ".join(schema_names()) or "none"
        raise FileNotFoundError(f"no schema named {name!r} (available: {available})")
    return _schema_dir().joinpath(file_name).read_text("utf-8")


@cache
def load_schema(name: str = MANIFEST_SCHEMA) -> dict[str, Any]:
    """The schema ``name`` as a dict, parsed once. Callers must not mutate it."""
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema
