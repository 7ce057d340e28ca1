"""The strict form of the manifest schema: the published one without its ``${VAR}`` branches.

``schemas/manifest.schema.json`` describes a manifest as it is written, so that editors and JSON
Schema tools accept ``executionCount: ${RUNS:-1}``: every scalar value is ``anyOf`` its typed form
and ``$defs/interpolation`` (a string holding at least one well-formed ``${...}``). The loader
checks the document after interpolation, against the typed forms alone; that strict schema is
derived here by removing the interpolation branches, so the published file stays the one source
of truth.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from runner.schemas import MANIFEST_SCHEMA, load_schema

INTERPOLATION = "interpolation"
INTERPOLATION_REF = {"$ref": f"#/$defs/{INTERPOLATION}"}


@cache
def strict_manifest_schema() -> dict[str, Any]:
    """The manifest schema an interpolated document must satisfy. Callers must not mutate it."""
    return without_interpolation(load_schema(MANIFEST_SCHEMA))


def without_interpolation(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a new copy) with every interpolation branch and ``$defs/interpolation`` removed.

    ``{"description": d, "anyOf": [typed, interpolation]}`` becomes ``{"description": d, **typed}``;
    an ``anyOf`` of several typed branches keeps them.
    """
    strict: dict[str, Any] = _strip(schema)
    definitions = strict.get("$defs")
    if isinstance(definitions, dict):
        definitions.pop(INTERPOLATION, None)
    return strict


def _strip(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    stripped = {key: _strip(value) for key, value in node.items()}
    branches = stripped.get("anyOf")
    if not isinstance(branches, list) or INTERPOLATION_REF not in branches:
        return stripped
    typed = [branch for branch in branches if branch != INTERPOLATION_REF]
    del stripped["anyOf"]
    if len(typed) == 1 and not stripped.keys() & typed[0].keys():
        return {**stripped, **typed[0]}
    return {**stripped, "anyOf": typed}
