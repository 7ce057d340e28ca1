"""Every manifest under examples/ is valid and tells editors where its schema is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runner.manifest import LoadedManifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCHEMA_LINE = "# yaml-language-server: $schema="


def _example_files() -> list[Path]:
    files = sorted(EXAMPLES.rglob("*.yaml")) + sorted(EXAMPLES.rglob("*.yml"))
    return [p for p in files if "ci" not in p.relative_to(EXAMPLES).parts[:1]]


def _manifests() -> list[Path]:
    """Top-level example files, and each sub-directory as one manifest."""
    singles = [p for p in _example_files() if p.parent == EXAMPLES]
    directories = sorted({p.parent for p in _example_files() if p.parent != EXAMPLES})
    return singles + directories


def test_there_are_examples() -> None:
    assert (EXAMPLES / "quickstart.yaml") in _example_files()
    assert (EXAMPLES / "multi") in _manifests()


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_is_valid(path: Path, load: Callable[..., LoadedManifest]) -> None:
    loaded = load(path)
    assert loaded.manifest.projects
    assert not loaded.warnings


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_points_editors_at_the_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(SCHEMA_LINE)
    schema = (path.parent / first_line.removeprefix(SCHEMA_LINE)).resolve()
    assert schema == REPO / "schemas" / "manifest.schema.json"


def test_quickstart_works_without_environment(load: Callable[..., LoadedManifest]) -> None:
    manifest = load(EXAMPLES / "quickstart.yaml").manifest
    assert {p.organisation for p in manifest.projects} == {"01234567-89ab-cdef-0123-456789abcdef"}
    assert any(p.jobs for p in manifest.projects)
    assert any(p.cached_jobs for p in manifest.projects)
    assert all(t.execution_count <= 3 for p in manifest.projects for t in p.jobs)
