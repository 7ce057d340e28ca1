"""Fixtures of the manifest tests: writing manifests, loading them, running the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from runner.errors import Diagnostic, ManifestError
from runner.manifest import LoadedManifest, load_manifest

from subprocesses import run_mlrun

REPO = Path(__file__).resolve().parents[2]
HEADER = "version: 1\n"
PROJECT = (
    "projects:\n"
    "  - name: acme\n"
    "    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
    "    jobs:\n"
    "      - models: [gpt-5-mini]\n"
)
VALID = HEADER + PROJECT


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write a manifest file (text or bytes) under tmp_path and return its path."""

    def _write(content: str | bytes, name: str = "manifest.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


def _load(*paths: Path, env: dict[str, str] | None = None) -> LoadedManifest:
    return load_manifest(list(paths), env=env if env is not None else {})


def _diagnostics(*paths: Path, env: dict[str, str] | None = None) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as caught:
        _load(*paths, env=env)
    return caught.value.diagnostics


def _errors(*paths: Path, env: dict[str, str] | None = None) -> list[Diagnostic]:
    return [d for d in _diagnostics(*paths, env=env) if d.severity == "error"]


@pytest.fixture
def load() -> Callable[..., LoadedManifest]:
    """Load a manifest with an empty environment unless one is given."""
    return _load


@pytest.fixture
def errors_of() -> Callable[..., list[Diagnostic]]:
    """The error diagnostics of an invalid manifest (fails the test if it is valid)."""
    return _errors


@pytest.fixture
def diagnostics_of() -> Callable[..., list[Diagnostic]]:
    """Every diagnostic (errors and warnings) of an invalid manifest."""
    return _diagnostics


@pytest.fixture
def valid_text() -> str:
    """A small valid manifest."""
    return VALID


@pytest.fixture
def mlrun() -> Callable[..., CliResult]:
    """Run the real command, as a user does: ``python -m runner ARGS``."""

    def _run(*args: str | Path, env: dict[str, str] | None = None) -> CliResult:
        result = run_mlrun(*args, env=env, timeout=60)
        return CliResult(result.returncode, result.stdout, result.stderr)

    return _run
