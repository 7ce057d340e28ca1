"""The shipped schema: its two forms agree, defaults as documented, the fast path exact."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from runner import schemas
from runner.manifest.document import Document
from runner.manifest.findings import Findings
from runner.manifest.interpolate import interpolate
from runner.manifest.model import Settings
from runner.manifest.schemacheck import check_document, key_homes, manifest_validator
from runner.manifest.strictschema import (
    INTERPOLATION,
    INTERPOLATION_REF,
    strict_manifest_schema,
    without_interpolation,
)

HERE = Path(__file__).parent
SCHEMA = schemas.load_schema("manifest.schema.json")
STRICT = strict_manifest_schema()
PATTERN = SCHEMA["$defs"][INTERPOLATION]["pattern"]
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment"})
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean", "null"})


def test_both_forms_are_valid_against_the_metaschema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(STRICT)
    assert manifest_validator() is manifest_validator()


# -- the published form and the strict form ---------------------------------------------------


def with_interpolation(strict: dict[str, Any]) -> dict[str, Any]:
    """The published form that ``strict`` implies: every scalar value also takes ``${...}``.

    A value is what a property, an array item or an additional property holds (never a key):
    when it can be a scalar, its annotations stay and its assertions become the first branch of
    ``anyOf: [typed, interpolation]``.
    """
    published = _values_within(strict, strict)
    published["$defs"] = {**published["$defs"], INTERPOLATION: SCHEMA["$defs"][INTERPOLATION]}
    return published


def _values_within(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    inside: dict[str, Any] = {}
    for keyword, sub in schema.items():
        if keyword == "properties":
            inside[keyword] = {name: _value(root, item) for name, item in sub.items()}
        elif keyword in ("items", "additionalProperties") and isinstance(sub, dict):
            inside[keyword] = _value(root, sub)
        elif keyword == "anyOf":
            inside[keyword] = [_values_within(root, branch) for branch in sub]
        elif keyword == "$defs":
            inside[keyword] = {name: _values_within(root, item) for name, item in sub.items()}
        else:
            inside[keyword] = sub
    return inside


def _value(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    schema = _values_within(root, schema)
    if not _may_be_scalar(root, schema):
        return schema
    annotations = {k: v for k, v in schema.items() if k in _ANNOTATIONS}
    typed = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    return {**annotations, "anyOf": [typed, INTERPOLATION_REF]}


def _may_be_scalar(root: dict[str, Any], schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _may_be_scalar(root, root["$defs"][schema["$ref"].removeprefix("#/$defs/")])
    types = schema.get("type")
    if types is not None and not _SCALAR_TYPES.intersection(
        [types] if isinstance(types, str) else types
    ):
        return False
    return "anyOf" not in schema or any(_may_be_scalar(root, b) for b in schema["anyOf"])


def test_the_published_schema_is_the_strict_one_with_interpolation_at_every_scalar_value() -> None:
    assert with_interpolation(STRICT) == SCHEMA
    assert without_interpolation(with_interpolation(STRICT)) == STRICT


def test_the_strict_schema_has_no_interpolation_left() -> None:
    assert INTERPOLATION not in repr(STRICT)
    assert "${" not in repr(STRICT)
    executions = STRICT["$defs"]["trigger"]["properties"]["executionCount"]
    assert executions == {"$ref": "#/$defs/executionCount"}


def test_without_interpolation_keeps_several_typed_branches_and_copies() -> None:
    schema = {"anyOf": [{"type": "integer"}, {"type": "null"}, INTERPOLATION_REF]}
    assert without_interpolation(schema) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert INTERPOLATION_REF in schema["anyOf"]


class _EveryVariableSet(Mapping[str, str]):
    def __getitem__(self, name: str) -> str:
        return "value"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_INTERPOLATION_TEXT = st.text(alphabet="${}:-_aZ9 .\n", max_size=24)


@settings(max_examples=500, deadline=None)
@given(_INTERPOLATION_TEXT)
def test_the_interpolation_pattern_is_the_loader_syntax(text: str) -> None:
    """The pattern holds exactly the text the loader resolves, and reads a variable from."""
    resolved = interpolate(text, _EveryVariableSet())
    assert (re.search(PATTERN, text) is not None) == bool(
        resolved.variables and not resolved.problems
    )


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("${RUNS}", True),
        ("${RUNS:-1}", True),
        ("${MENTIONLAB_ORG_ID:-01234567-89ab-cdef-0123-456789abcdef}", True),
        ("eu-${REGION}-$$5 $x", True),
        ("${A:-}", True),
        ("$${RUNS}", False),  # a literal ${RUNS}: nothing comes from the environment
        ("${RUNS", False),
        ("${1RUNS}", False),
        ("${RUNS:1}", False),
        ("cost $5", False),
        ("3", False),
    ],
)
def test_the_interpolation_pattern_on_examples(text: str, *, matches: bool) -> None:
    assert (re.search(PATTERN, text) is not None) is matches


def test_load_schema_is_cached_and_names_are_listed() -> None:
    assert schemas.load_schema("manifest") is schemas.load_schema("manifest")
    assert "manifest.schema.json" in schemas.schema_names()
    with pytest.raises(FileNotFoundError, match="no schema named"):
        schemas.schema_text("../pyproject")


def test_schema_defaults_are_the_model_defaults() -> None:
    settings_schema = SCHEMA["$defs"]["settings"]["properties"]
    defaults = Settings()
    assert settings_schema["concurrency"]["default"] == defaults.concurrency
    assert settings_schema["follow"]["default"] == defaults.follow
    rates = settings_schema["rateLimits"]["properties"]
    assert [rates[k]["default"] for k in ("perSecond", "perMinute", "perHour")] == [
        defaults.rate_limits.per_second,
        defaults.rate_limits.per_minute,
        defaults.rate_limits.per_hour,
    ]
    timeouts = settings_schema["timeouts"]["properties"]
    assert [timeouts[k]["default"] for k in ("request", "connect", "follow")] == [
        defaults.timeouts.request,
        defaults.timeouts.connect,
        defaults.timeouts.follow,
    ]
    reports = settings_schema["reports"]["properties"]
    assert reports["dir"]["default"] == defaults.reports.directory
    assert tuple(reports["formats"]["default"]) == defaults.reports.formats
    budget = settings_schema["budget"]["properties"]["maxExecutions"]
    assert budget["default"] == defaults.max_executions


def test_every_key_has_a_home_for_hints() -> None:
    homes = key_homes()
    assert homes["concurrency"] == ("settings",)
    assert homes["executionCount"] == (
        "defaults",
        "projects[].cachedJobs",
        "projects[].jobs[]",
    ) or ("defaults" in homes["executionCount"])


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["", "core", "gpt-5-mini", "anthropic", "Bad Name", "json", "pdf", "a" * 120]),
    st.sampled_from(
        ["3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "a1b2c3d4-e5f6-g7h8-i9j0-k1l2m3n4o5p6"]
    ),
)
_keys = st.sampled_from(
    [
        "version",
        "projects",
        "name",
        "id",
        "jobs",
        "cachedJobs",
        "models",
        "executionCount",
        "settings",
        "concurrency",
        "labels",
        "team",
        "defaults",
        "modelSets",
        "core",
        "extra",
        "rateLimits",
        "perSecond",
        "reports",
        "formats",
        "budget",
        "maxExecutions",
        "organisation",
    ]
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=25,
)


def _corpus() -> list[Any]:
    files = sorted((HERE / "valid").glob("*.yaml")) + sorted((HERE / "invalid").glob("*.yaml"))
    documents = []
    for path in files:
        try:
            documents.append(yaml.safe_load(path.read_text()))
        except yaml.YAMLError:
            continue
    return documents


def _passes_the_schema_check(document: Any) -> bool:
    findings = Findings()
    check_document(Document("manifest.yaml", document), findings)
    return not findings.diagnostics


@settings(max_examples=300, deadline=None)
@given(_documents | st.fixed_dictionaries({"version": st.just(1), "projects": _documents}))
def test_the_fast_check_agrees_with_jsonschema(document: Any) -> None:
    assert _passes_the_schema_check(document) == manifest_validator().is_valid(document)


@pytest.mark.parametrize("index", range(len(_corpus())))
def test_the_fast_check_agrees_on_the_corpus(index: int) -> None:
    document = _corpus()[index]
    assert _passes_the_schema_check(document) == manifest_validator().is_valid(document)


def test_the_fast_check_changes_neither_the_document_nor_the_schema() -> None:
    document = {"version": 1, "settings": {"rateLimits": {}}, "projects": []}
    assert _passes_the_schema_check(document)
    assert document == {"version": 1, "settings": {"rateLimits": {}}, "projects": []}
    assert without_interpolation(schemas.load_schema("manifest")) == STRICT
