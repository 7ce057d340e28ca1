"""Whatever the input, load_manifest raises ManifestError or returns a manifest: nothing else."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runner.catalog import default_catalog
from runner.errors import ManifestError
from runner.manifest import load_manifest

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "manifest.yaml"


def _load_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    diagnostics = []
    try:
        load_manifest([path], env={"SET": "value"})
    except ManifestError as error:
        diagnostics = error.diagnostics
        assert diagnostics
    assert all(d.severity in ("error", "warning") for d in diagnostics)


_yaml_alphabet = st.sampled_from(
    [
        *"[]{}:,-?&*!|>'\"%@`#\n\t $<~",
        "version: 1\n",
        "projects:\n",
        "  - ",
        "&a ",
        "*a",
        "<<: ",
        "${SET}",
        "${UNSET}",
        "ml_live_12345678",
        "!!python/object ",
        "0x1",
        "yes",
    ]
)


@_FUZZ
@given(data=st.text(max_size=300))
def test_arbitrary_text(scratch: Path, data: str) -> None:
    _load_bytes(scratch, data.encode("utf-8", "surrogatepass"))


@_FUZZ
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes(scratch: Path, data: bytes) -> None:
    _load_bytes(scratch, data)


@_FUZZ
@given(pieces=st.lists(_yaml_alphabet | st.text(string.ascii_letters, max_size=5), max_size=60))
def test_yaml_ish_text(scratch: Path, pieces: list[str]) -> None:
    _load_bytes(scratch, "".join(pieces).encode())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@_FUZZ
@given(document=_json)
def test_arbitrary_yaml_documents(scratch: Path, document: Any) -> None:
    _load_bytes(scratch, yaml.safe_dump(document).encode())


_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
_uuids = st.uuids().map(str)
_catalog = default_catalog()
_model_lists = st.lists(st.sampled_from(_catalog.model_ids), min_size=1, max_size=4, unique=True)
_key_lists = st.lists(st.sampled_from(_catalog.provider_keys), min_size=1, max_size=4, unique=True)
_projects = st.fixed_dictionaries(
    {
        "id": _uuids,
        "organisation": _uuids,
        "jobs": st.lists(
            st.fixed_dictionaries({"models": _model_lists, "executionCount": st.integers(1, 50)}),
            min_size=1,
            max_size=3,
        ),
        "cachedJobs": st.fixed_dictionaries(
            {"models": _key_lists, "executionCount": st.integers(1, 50)}
        ),
    }
)


@_FUZZ
@given(
    projects=st.dictionaries(_names, _projects, min_size=1, max_size=5),
    flow=st.booleans(),
)
def test_valid_generated_manifests_load(
    scratch: Path, projects: dict[str, dict[str, Any]], flow: bool
) -> None:
    ids = [p["id"] for p in projects.values()]
    if len({i.lower() for i in ids}) != len(ids):
        return
    document = {"version": 1, "projects": [{"name": n, **p} for n, p in projects.items()]}
    scratch.write_text(yaml.safe_dump(document, default_flow_style=flow, sort_keys=False))
    manifest = load_manifest([scratch], env={}).manifest
    assert [p.name for p in manifest.projects] == list(projects)
    for project, source in zip(manifest.projects, projects.values(), strict=True):
        assert project.id == source["id"]
        assert [list(j.models) for j in project.jobs] == [j["models"] for j in source["jobs"]]
        assert project.cached_jobs is not None
        assert project.cached_jobs.execution_count == source["cachedJobs"]["executionCount"]
