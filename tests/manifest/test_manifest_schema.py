"""The shipped schema: valid against its metaschema, defaults as documented, fast path exact."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from runner import schemas
from runner.manifest.fastcheck import compile_schema, json_equal
from runner.manifest.model import Settings
from runner.manifest.schemacheck import key_homes, manifest_validator

HERE = Path(__file__).parent
SCHEMA = schemas.load_schema("manifest.schema.json")


def test_schema_is_valid_against_its_metaschema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert manifest_validator() is manifest_validator()


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


def test_the_fast_check_compiles_the_shipped_schema() -> None:
    assert compile_schema(SCHEMA) is not None
    unsupported = copy.deepcopy(SCHEMA)
    unsupported["properties"]["version"]["multipleOf"] = 1
    assert compile_schema(unsupported) is None


def test_json_equality() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(1, True)  # noqa: FBT003
    assert not json_equal([1], [True])
    assert json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not json_equal("1", 1)


_FAST = compile_schema(SCHEMA)
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


@settings(max_examples=300, deadline=None)
@given(_documents | st.fixed_dictionaries({"version": st.just(1), "projects": _documents}))
def test_the_fast_check_agrees_with_jsonschema(document: Any) -> None:
    assert _FAST is not None
    assert _FAST(document) == manifest_validator().is_valid(document)


@pytest.mark.parametrize("index", range(len(_corpus())))
def test_the_fast_check_agrees_on_the_corpus(index: int) -> None:
    document = _corpus()[index]
    assert _FAST is not None
    assert _FAST(document) == manifest_validator().is_valid(document)
