"""load_manifest: the typed model, defaults, interpolation, several files, warnings, the digest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runner.errors import Diagnostic, ManifestError
from runner.manifest import LoadedManifest, load_manifest
from runner.manifest.model import Settings

Write = Callable[..., Path]
Load = Callable[..., LoadedManifest]
Errors = Callable[..., list[Diagnostic]]
Env = dict[str, str]

ORG = "01234567-89ab-cdef-0123-456789abcdef"
FULL = f"""\
version: 1
defaults:
  organisation: {ORG}
  executionCount: 2
  models: core
  cachedModels: providers
modelSets:
  core: [gpt-5-mini, claude-haiku-4-5]
  providers: [openai, anthropic]
settings:
  concurrency: 3
  rateLimits: {{perSecond: 5, perMinute: null}}
  timeouts: {{request: 12.5}}
  follow: false
  budget: {{maxExecutions: 1000}}
  reports: {{dir: out, formats: [text]}}
projects:
  - name: acme
    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b
    labels: {{team: growth}}
    jobs:
      - {{}}
      - models: [sonar]
        executionCount: 5
    cachedJobs: {{}}
"""


def test_full_manifest_is_typed_with_defaults_applied(write: Write, load: Load) -> None:
    manifest = load(write(FULL)).manifest
    (project,) = manifest.projects
    assert project.organisation == ORG
    assert project.labels == {"team": "growth"}
    assert [(j.models, j.execution_count, j.model_set) for j in project.jobs] == [
        (("gpt-5-mini", "claude-haiku-4-5"), 2, "core"),
        (("sonar",), 5, None),
    ]
    assert project.cached_jobs is not None
    assert project.cached_jobs.models == ("openai", "anthropic")
    assert project.source is not None
    assert (project.source.line, project.source.column) == (18, 5)
    settings = manifest.settings
    assert settings.concurrency == 3
    assert settings.rate_limits.windows() == ((5, 1.0), (10_000, 3600.0))
    assert settings.timeouts.request == 12.5
    assert settings.timeouts.connect == 10.0
    assert settings.follow is False
    assert settings.max_executions == 1000
    assert settings.reports.directory == "out"
    assert settings.reports.formats == ("text",)
    assert manifest.model_sets["core"] == ("gpt-5-mini", "claude-haiku-4-5")


def test_settings_default_to_the_documented_values(
    write: Write, load: Load, valid_text: str
) -> None:
    manifest = load(write(valid_text)).manifest
    assert manifest.settings == Settings()
    assert manifest.projects[0].organisation is None
    assert manifest.projects[0].jobs[0].execution_count == 1


def test_env_defaults_to_os_environ(
    write: Write, valid_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLRUN_TEST_ORG", ORG)
    text = valid_text.replace("    jobs:", "    organisation: ${MLRUN_TEST_ORG}\n    jobs:")
    assert load_manifest([write(text)]).manifest.projects[0].organisation == ORG


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${RUNS}", {"RUNS": "4"}, 4),
        ("${RUNS:-3}", {}, 3),
        ("${RUNS:-3}", {"RUNS": ""}, 3),
        ("${RUNS:-3}", {"RUNS": "7"}, 7),
    ],
)
def test_unquoted_interpolation_is_typed(
    write: Write, load: Load, valid_text: str, value: str, env: dict[str, str], expected: int
) -> None:
    text = valid_text.replace("[gpt-5-mini]", f"[gpt-5-mini]\n        executionCount: {value}")
    assert load(write(text), env=env).manifest.projects[0].jobs[0].execution_count == expected


@pytest.mark.parametrize(
    ("key", "written", "env", "message"),
    [
        ("executionCount", "${RUNS}", {"RUNS": "0"}, "execution count must be >= 1, got 0"),
        ("executionCount", "'${RUNS}'", {"RUNS": "4"}, "expected an integer, got '4'"),
        ("executionCount", "$${RUNS}", {}, "expected an integer, got '${RUNS}'"),
        ("executionCount", "${RUNS}", {"RUNS": "${MORE}"}, "expected an integer, got '${MORE}'"),
        ("models", "${SET}", {"SET": "Core Set"}, "'Core Set' is not a valid name"),
    ],
)
def test_the_interpolated_value_is_checked_against_its_type(
    write: Write, errors_of: Errors, valid_text: str, key: str, written: str, env: Env, message: str
) -> None:
    """The schema accepts ``${...}`` where a value is written; the value it gives must fit."""
    trigger = "models: [gpt-5-mini]\n        " if key == "executionCount" else ""
    text = valid_text.replace("models: [gpt-5-mini]", f"{trigger}{key}: {written}")
    errors = errors_of(write(text), env=env)
    assert [d.message for d in errors] == [message]
    line = 7 if key == "executionCount" else 6
    assert (errors[0].line, errors[0].column) == (line, 9 + len(key) + 2)


def test_quoted_interpolation_stays_a_string_and_dollars_escape(
    write: Write, load: Load, valid_text: str
) -> None:
    text = valid_text.replace(
        "    jobs:", "    labels: {cost: '$$5 ${UNIT:-each}', n: '${N}'}\n    jobs:"
    )
    labels = load(write(text), env={"N": "12"}).manifest.projects[0].labels
    assert labels == {"cost": "$5 each", "n": "12"}


def test_a_directory_is_one_manifest(write: Write, load: Load, tmp_path: Path) -> None:
    write("version: 1\nmodelSets:\n  core: [gpt-5-mini]\n", "dir/a.yaml")
    write(
        "version: 1\nprojects:\n  - name: b\n    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
        "    jobs: [{models: core}]\n",
        "dir/b.yml",
    )
    write("not: a manifest\n", "dir/notes.txt")
    write("version: 2\n", "dir/nested/c.yaml")  # not read: directories are not recursive
    manifest = load(tmp_path / "dir").manifest
    assert manifest.files == (str(tmp_path / "dir" / "a.yaml"), str(tmp_path / "dir" / "b.yml"))
    assert manifest.projects[0].jobs[0].models == ("gpt-5-mini",)


def test_a_null_document_among_the_files_is_an_error(
    write: Write, errors_of: Errors, tmp_path: Path
) -> None:
    """A file holding only null is read (not skipped), so the other files are checked in full."""
    write("~\n", "dir/a.yaml")
    write(
        "version: 1\nprojects:\n  - name: b\n    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
        "    jobs: [{models: core}]\n",
        "dir/b.yaml",
    )
    errors = errors_of(tmp_path / "dir")
    assert [(d.message, d.line, d.column) for d in errors] == [
        ("expected a mapping, got null", 1, 1),
        ("undefined model set 'core'", 5, 21),
    ]


def test_a_set_named_in_a_models_list_counts_as_used(
    write: Write, diagnostics_of: Callable[..., list[Diagnostic]], valid_text: str
) -> None:
    text = valid_text.replace("[gpt-5-mini]", "[core]") + "modelSets:\n  core: [gpt-5-mini]\n"
    (diagnostic,) = diagnostics_of(write(text))
    assert diagnostic.code == "set-in-list"
    assert diagnostic.hint is not None
    assert "a models list holds model ids" in diagnostic.hint


def test_duplicates_across_files_point_at_both_places(
    write: Write, errors_of: Errors, valid_text: str
) -> None:
    first = write(valid_text + "modelSets:\n  core: [gpt-5-mini]\n", "a.yaml")
    second = write(valid_text + "modelSets:\n  core: [sonar]\n", "b.yaml")
    errors = errors_of(first, second)
    assert [(d.line, d.column, d.code) for d in errors] == [
        (3, 11, "duplicate"),
        (4, 9, "duplicate"),
        (8, 3, "duplicate"),
    ]
    messages = " | ".join(d.message for d in errors)
    assert f"model set 'core' is defined twice (first at {first}:8:3)" in messages
    assert f"duplicate project name 'acme' (first at {first}:3:5)" in messages
    assert (
        f"duplicate project id '3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b' (first at {first}:4:5)"
        in (messages)
    )
    assert all(d.file == str(second) for d in errors)


def test_settings_in_two_files_is_an_error(
    write: Write, errors_of: Errors, valid_text: str
) -> None:
    first = write(valid_text + "settings: {concurrency: 2}\n", "a.yaml")
    second = write("version: 1\nsettings: {concurrency: 3}\n", "b.yaml")
    (error,) = errors_of(first, second)
    assert error.message == f"settings is defined in more than one file (first at {first}:7:1)"
    assert (error.file, error.line, error.column) == (str(second), 2, 1)


def test_missing_paths_are_reported(errors_of: Errors, tmp_path: Path) -> None:
    (missing,) = errors_of(tmp_path / "nope.yaml")
    assert missing.message == "no such file or directory"
    (empty_dir,) = errors_of(tmp_path)
    assert "no *.yaml or *.yml" in empty_dir.message
    with pytest.raises(ManifestError, match="no manifest file given"):
        load_manifest([], env={})


def test_extra_models_are_accepted_with_a_warning(write: Write, load: Load) -> None:
    text = (
        "version: 1\nextraModels:\n  modelIds: [gpt-7]\n  providerKeys: [openai, mistral]\n"
        "projects:\n  - name: a\n    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
        f"    organisation: {ORG}\n"
        "    jobs: [{models: [gpt-7]}]\n    cachedJobs: {models: [mistral]}\n"
    )
    loaded = load(write(text))
    assert loaded.manifest.extra_model_ids == ("gpt-7",)
    assert [(w.severity, w.line, w.column, w.value) for w in loaded.warnings] == [
        ("warning", 3, 14, "gpt-7"),
        ("warning", 4, 18, "openai"),
        ("warning", 4, 26, "mistral"),
    ]
    assert "already a provider key" in loaded.warnings[1].message


def test_unused_model_set_is_a_warning(write: Write, load: Load, valid_text: str) -> None:
    (warning,) = load(write(valid_text + "modelSets:\n  spare: [sonar]\n")).warnings
    assert warning.message == "model set 'spare' is never used"
    assert (warning.line, warning.column, warning.severity) == (8, 3, "warning")


def test_errors_carry_warnings_too(write: Write, valid_text: str) -> None:
    text = valid_text.replace("[gpt-5-mini]", "[gpt-5-mni]") + "modelSets:\n  spare: [sonar]\n"
    with pytest.raises(ManifestError) as caught:
        load_manifest([write(text)], env={})
    assert [d.severity for d in caught.value.diagnostics] == ["error", "warning"]


def test_three_mistakes_get_three_precise_messages(write: Write, errors_of: Errors) -> None:
    text = (
        "version: 1\n"
        "modelSets:\n"
        "  core: [gpt-5-mini, claude-haiku-4-5]\n"
        "projects:\n"
        "  - name: acme\n"
        "    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
        "    jobs:\n"
        "      - models: [gpt-5-mini, anthropic]\n"
        "        exectionCount: 3\n"
        "      - models: cor\n"
    )
    errors = errors_of(write(text))
    assert [(d.line, d.column, d.json_path, d.value) for d in errors] == [
        (8, 30, "$.projects[0].jobs[0].models[1]", "anthropic"),
        (9, 9, "$.projects[0].jobs[0].exectionCount", "exectionCount"),
        (10, 17, "$.projects[0].jobs[1].models", "cor"),
    ]
    assert errors[0].message == (
        "'anthropic' is a provider key, valid under cachedJobs; under jobs use a model id such as"
        " claude-haiku-4-5"
    )
    assert errors[1].hint == "did you mean 'executionCount'?"
    assert errors[2].hint == "did you mean 'core'?"


def test_digest_ignores_formatting_order_and_spelling(write: Write, load: Load) -> None:
    block = load(write(FULL, "a.yaml")).manifest
    reordered = FULL.replace("  concurrency: 3\n", "").replace(
        "settings:\n", "settings:\n  concurrency:   3   # same value, other place\n"
    )
    inline_sets = reordered.replace(
        "      - {}\n", "      - {models: [gpt-5-mini, claude-haiku-4-5]}\n"
    )
    other = load(write(inline_sets, "b.yaml")).manifest
    assert len(block.digest) == 64
    assert other.digest == block.digest
    changed = load(write(FULL.replace("executionCount: 5", "executionCount: 6"), "c.yaml"))
    assert changed.manifest.digest != block.digest


def test_manifest_error_summary(write: Write, valid_text: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest([write(valid_text.replace("version: 1", "version: 3"))], env={})
    assert str(caught.value).endswith("unsupported manifest version 3; expected 1")
