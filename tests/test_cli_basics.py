from __future__ import annotations

import subprocess
import sys

import pytest
import runner
from runner.catalog import default_catalog


@pytest.mark.slow
def test_version_is_printed_by_the_installed_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert runner.__version__ in result.stdout


def test_catalog_separates_model_ids_from_provider_keys() -> None:
    catalog = default_catalog()
    assert catalog.is_model_id("claude-haiku-4-5")
    assert not catalog.is_model_id("anthropic")
    assert catalog.is_provider_key("anthropic")
    assert len(catalog.model_ids) == 17
    assert len(catalog.provider_keys) == 14
    assert catalog.suggest("claude-haiku-45", "modelId") == "claude-haiku-4-5"
    assert catalog.models_for_keys(["anthropic", "openai"]) == ("claude-haiku-4-5", "gpt-4.1-mini")
