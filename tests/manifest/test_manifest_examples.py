"""Every file under examples/ is valid: for mlrun, and for check-jsonschema as editors see it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from runner.errors import Diagnostic
from runner.manifest import LoadedManifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCHEMA_LINE = "# yaml-language-server: $schema="
# The CI examples, with the schemas check-jsonschema ships for them.
CI_SCHEMAS = {
    "ci/github/*.yml": "vendor.github-workflows",
    "ci/gitlab-ci.yml": "vendor.gitlab-ci",
}


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


def _check_jsonschema(
    schema: Sequence[str], files: Sequence[Path]
) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema, a real consumer of the schema, as a user or CI runs it."""
    command = [sys.executable, "-m", "check_jsonschema", "--no-cache", *schema, *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _schema_named_by(path: Path) -> Path:
    """The schema a manifest's yaml-language-server line points editors at."""
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    return (path.parent / first_line.removeprefix(SCHEMA_LINE)).resolve()


@pytest.mark.slow
def test_check_jsonschema_accepts_every_file_under_examples() -> None:
    """Each file against its schema: a manifest (partial files of a directory included) against
    the one its first line names, a CI file against the schema check-jsonschema ships for it.
    """
    ci_files = {pattern: sorted(EXAMPLES.glob(pattern)) for pattern in CI_SCHEMAS}
    manifests = _example_files()
    everything = sorted(p for p in EXAMPLES.rglob("*") if p.is_file())
    assert sorted(manifests + [f for files in ci_files.values() for f in files]) == everything
    runs = [
        (["--schemafile", str(schema)], [p for p in manifests if _schema_named_by(p) == schema])
        for schema in sorted({_schema_named_by(p) for p in manifests})
    ]
    runs += [
        (["--builtin-schema", CI_SCHEMAS[pattern]], files) for pattern, files in ci_files.items()
    ]
    for schema, files in runs:
        result = _check_jsonschema(schema, files)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ok -- validation done" in result.stdout


@pytest.mark.slow
def test_check_jsonschema_accepts_the_examples_with_the_schema_mlrun_prints(
    tmp_path: Path, mlrun: Callable[..., Any]
) -> None:
    printed = tmp_path / "manifest.schema.json"
    printed.write_text(mlrun("schema").stdout, encoding="utf-8")
    assert printed.read_text(encoding="utf-8") == (
        REPO / "schemas" / "manifest.schema.json"
    ).read_text(encoding="utf-8")
    result = _check_jsonschema(["--schemafile", str(printed)], _example_files())
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INTERPOLATION = {
    "unterminated.yaml": "version: 1\ndefaults:\n  executionCount: ${RUNS\n",
    "bad-name.yaml": "version: 1\ndefaults:\n  executionCount: ${1RUNS}\n",
    "escaped.yaml": "version: 1\ndefaults:\n  organisation: $${ORG}\n",
    "key.yaml": "version: 1\nmodelSets:\n  ${SET}: [gpt-5-mini]\n",
}


@pytest.mark.slow
def test_check_jsonschema_refuses_what_the_loader_refuses(
    write: Callable[..., Path], errors_of: Callable[..., list[Diagnostic]]
) -> None:
    """Not any string passes for ${...}: only what the loader resolves, and only in values."""
    files = [write(text, name) for name, text in BAD_INTERPOLATION.items()]
    result = _check_jsonschema(
        ["--schemafile", str(REPO / "schemas" / "manifest.schema.json")], files
    )
    assert result.returncode == 1
    assert sorted(name for name in BAD_INTERPOLATION if f"{name}::" in result.stdout) == sorted(
        BAD_INTERPOLATION
    )
    assert all(errors_of(path) for path in files)
