"""Every invalid manifest of the corpus fails with the expected message at the expected place."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from runner.errors import Diagnostic
from runner.manifest import LoadedManifest

HERE = Path(__file__).parent
INVALID = HERE / "invalid"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((INVALID / "expected.yaml").read_text())
CASES = sorted(p.stem for p in INVALID.glob("*.yaml") if p.name != "expected.yaml")


def test_the_corpus_is_complete() -> None:
    assert len(CASES) >= 25
    assert sorted(EXPECTED) == CASES


@pytest.mark.parametrize("case", CASES)
def test_invalid_case(case: str, errors_of: Callable[..., list[Diagnostic]]) -> None:
    expected = EXPECTED[case]
    started = time.perf_counter()
    errors = errors_of(INVALID / f"{case}.yaml")
    assert time.perf_counter() - started < 1.0
    first = errors[0]
    assert expected["message"] in first.message
    assert (first.line, first.column) == (expected["line"], expected["column"])
    assert first.json_path == expected["path"]
    assert len(errors) == expected["errors"], [d.message for d in errors]
    assert all(d.hint for d in errors), "every error has a hint"
    assert all(d.file.endswith(f"{case}.yaml") for d in errors)


@pytest.mark.parametrize("path", sorted((HERE / "valid").glob("*.yaml")), ids=lambda p: p.stem)
def test_valid_case(path: Path, load: Callable[..., LoadedManifest]) -> None:
    assert load(path).manifest.projects
