"""``load_manifest``: files to a typed :class:`Manifest`, or every problem at once.

The stages, each adding to one list of findings:

1. read each file's bytes under the size cap, refusing binary and non-UTF-8 files;
2. read the YAML into the positioned JSON data model (caps on aliases and depth, no duplicate
   keys, no object tags, ``${VAR}`` resolved);
3. find API keys anywhere in the text, comments included;
4. check each file against the JSON Schema;
5. assemble the files into one manifest and run the checks the schema cannot express
   (skipped when a file could not be read at all, since its sets and projects are unknown);
6. build the typed manifest.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from runner.errors import Diagnostic, ManifestError
from runner.manifest.assemble import assemble
from runner.manifest.build import build_manifest
from runner.manifest.document import Document
from runner.manifest.findings import Findings
from runner.manifest.limits import DEFAULT_LIMITS, Limits
from runner.manifest.model import Manifest
from runner.manifest.schemacheck import check_document
from runner.manifest.secrets import API_KEY_HINT, redact_diagnostic, secret_positions
from runner.manifest.semantics import check_semantics
from runner.manifest.source import SourceError, SourceText, read_source
from runner.manifest.yamlread import ParsedYaml, parse_yaml

MANIFEST_SUFFIXES = (".yaml", ".yml")
_COMMAND_LINE = "<command line>"


@dataclass(frozen=True)
class LoadedManifest:
    """A valid manifest and the warnings found while loading it."""

    manifest: Manifest
    warnings: tuple[Diagnostic, ...]


def load_manifest(
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> LoadedManifest:
    """Load the manifest formed by ``paths`` (files, or directories of ``*.yaml``/``*.yml``).

    ``env`` resolves ``${VAR}`` (default: ``os.environ``). Raises :class:`ManifestError` carrying
    every error and warning found, each with file, line, column, JSON path, value and hint.
    """
    findings = Findings()
    files = manifest_files(paths, findings)
    with _collector_paused():
        documents, complete = _read_documents(
            files, os.environ if env is None else env, limits, findings
        )
        assembled = assemble(documents, findings)
        if complete:
            check_semantics(assembled, findings)
        manifest = None if findings.has_errors() else build_manifest(assembled)
    diagnostics = _ordered([redact_diagnostic(d) for d in findings.diagnostics], files)
    if manifest is None:
        raise ManifestError(diagnostics=diagnostics)
    return LoadedManifest(manifest, tuple(diagnostics))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the document's objects are created.

    Loading creates about a million small objects and no cycles (aliases that would make one are
    refused); without the pause the collector rescans them over and over, about 15% of the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def manifest_files(
    paths: Sequence[str | os.PathLike[str]], findings: Findings
) -> list[tuple[Path, str]]:
    """The files named by ``paths`` as (path, display name), directories expanded, no repeats."""
    if not paths:
        findings.add(_COMMAND_LINE, (), "no manifest file given", hint="pass a file or directory")
    files: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for raw in paths:
        for path, name in _expand(Path(raw), os.fspath(raw), findings):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                files.append((path, name))
    return files


def _expand(path: Path, name: str, findings: Findings) -> list[tuple[Path, str]]:
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
        if not entries:
            findings.add(
                name, (), "the directory holds no *.yaml or *.yml file", hint="check the path"
            )
        # The name the user typed, joined as typed, so messages show paths they recognise.
        return [(entry, os.path.join(name, entry.name)) for entry in entries]  # noqa: PTH118
    if not path.exists():
        findings.add(name, (), "no such file or directory", hint="check the path", code="source")
        return []
    return [(path, name)]


def _read_documents(
    files: list[tuple[Path, str]], env: Mapping[str, str], limits: Limits, findings: Findings
) -> tuple[list[Document], bool]:
    """The documents that could be read, and whether every file could be."""
    documents: list[Document] = []
    complete = bool(files)
    for path, name in files:
        try:
            source = read_source(path, name, limits)
        except SourceError as error:
            mark = (error.line, error.column) if error.line and error.column else None
            findings.add(name, (), error.message, hint=error.hint, mark=mark, code="source")
            complete = False
            continue
        parsed = parse_yaml(source, env, limits, findings)
        _report_secrets(source, parsed, findings)
        if not parsed.complete:
            complete = False
            continue
        document = Document(name, parsed.root, parsed.root_mark)
        check_document(document, findings)
        documents.append(document)
    return documents, complete


def _report_secrets(source: SourceText, parsed: ParsedYaml, findings: Findings) -> None:
    """Every key-like string in the text, comments included, never echoing it."""
    for line, column in secret_positions(source.text):
        starts = [s for s in parsed.secret_scalars.get(line, []) if s[0] <= column]
        path = max(starts)[1] if starts else ()
        findings.add(
            source.file,
            path,
            "this looks like a MentionLab API key; a manifest must not contain one",
            hint=API_KEY_HINT,
            mark=(line, column),
            code="secret",
            covers=bool(path),
            always=True,
        )


def _ordered(diagnostics: list[Diagnostic], files: list[tuple[Path, str]]) -> list[Diagnostic]:
    """Diagnostics by file (in the order given), then line and column."""
    rank = {name: index for index, (_path, name) in enumerate(files)}
    return sorted(
        diagnostics,
        key=lambda d: (rank.get(d.file, -1), d.line or 0, d.column or 0),
    )
