"""Every format of the report, and writing them to a directory atomically.

``write_reports`` writes each file beside its final name and renames it into place
(``os.replace``), so a reader (CI uploading artifacts, a human tailing the directory) never sees
a half-written report, even when the run is killed while writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from runner.errors import ConfigError, UsageError
from runner.redact import redact
from runner.report.html import render_html
from runner.report.junit import render_junit
from runner.report.markdown import render_markdown
from runner.report.model import Report
from runner.report.text import render_text

__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "normalise_formats",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_report",
    "render_text",
    "write_reports",
]

FORMATS = ("json", "markdown", "junit", "text", "html")
FILE_NAMES = {
    "json": "report.json",
    "markdown": "report.md",
    "junit": "junit.xml",
    "text": "report.txt",
    "html": "report.html",
}
_ALIASES = {"md": "markdown", "xml": "junit", "txt": "text", "htm": "html"}


INDENTED_JSON_ACTIONS = 2_000


def render_json(report: Report) -> str:
    """The report as JSON text, valid against ``schemas/report.schema.json``.

    Indented for reading up to :data:`INDENTED_JSON_ACTIONS` actions; compact beyond, where
    only the compact form has the fast (C) encoder and the file is read by tools anyway.
    """
    indent = 2 if len(report.actions) <= INDENTED_JSON_ACTIONS else None
    return redact(json.dumps(report.to_json(), indent=indent, ensure_ascii=False) + "\n")


def render_report(
    report: Report,
    fmt: str,
    *,
    color: bool = False,
    files: Sequence[Path] = (),
    summary_only: bool = False,
) -> str:
    """``report`` in ``fmt``, as a command prints it on stdout (``--format``).

    ``files`` are the report files written (named by the text summary, and the JSON one by the
    Markdown as the full report); ``color`` and ``summary_only`` (``-q``) shape the text.
    """
    if fmt == "text":
        return render_text(report, color=color, files=files, summary_only=summary_only)
    json_file = next((str(path) for path in files if path.name == FILE_NAMES["json"]), None)
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: render_json(report),
        "markdown": lambda: render_markdown(report, full_report_hint=json_file),
        "junit": lambda: render_junit(report),
        "html": lambda: render_html(report, rate_limit=report.run.rate_limit_per_second),
    }
    name = normalise_formats([fmt])[0]
    return renderers[name]()


def normalise_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """Canonical format names in :data:`FORMATS` order; UsageError names an unknown one."""
    wanted = set()
    for name in formats:
        canonical = _ALIASES.get(name.strip().lower(), name.strip().lower())
        if canonical not in FORMATS:
            raise UsageError(f"unknown report format {name!r} (choose from {', '.join(FORMATS)})")
        wanted.add(canonical)
    return tuple(name for name in FORMATS if name in wanted)


def write_reports(
    report: Report,
    directory: Path | str,
    formats: Iterable[str],
    *,
    full_report_hint: str | None = None,
) -> list[Path]:
    """Write ``report`` in each of ``formats`` into ``directory``; return the paths written.

    Names: report.json, report.md, junit.xml, report.txt, report.html. The Markdown points to
    ``full_report_hint``, by default the JSON report when one is written.
    ConfigError when the directory or a file cannot be written.
    """
    directory = Path(directory)
    chosen = normalise_formats(formats)
    paths = [directory / FILE_NAMES[name] for name in chosen]
    if full_report_hint is None and "json" in chosen:
        full_report_hint = str(directory / FILE_NAMES["json"])
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: render_json(report),
        "markdown": lambda: render_markdown(report, full_report_hint=full_report_hint),
        "junit": lambda: render_junit(report),
        "text": lambda: render_text(report, color=False, files=paths),
        "html": lambda: render_html(report, rate_limit=report.run.rate_limit_per_second),
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, path in zip(chosen, paths, strict=True):
            atomic_write(path, renderers[name]())
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {directory}: {exc}") from exc
    return paths


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
