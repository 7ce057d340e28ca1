"""``mlrun validate`` and ``mlrun schema``.

PyYAML and jsonschema are imported inside the commands, since click imports this module to list
the commands in ``mlrun --help``.
"""

from __future__ import annotations

import click

from runner.cli._common import exit_on_error
from runner.cli.diagnostics import FORMATS, Outcome, render
from runner.cli.options import stdout_format_option
from runner.errors import ManifestError, UsageError
from runner.exitcodes import ExitCode


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@stdout_format_option(FORMATS, "text for people, json for tools, github for workflow annotations.")
@exit_on_error
def validate(paths: tuple[str, ...], output_format: str) -> None:
    """Check manifests and report every problem at once.

    PATH is a manifest file or a directory (its *.yaml and *.yml files, not recursive); several
    paths form one manifest. ${VAR} values are resolved from the environment. Each problem is
    reported with file, line, column, JSON path, the offending value and a hint.

    Exit status: 0 valid (warnings are printed), 2 invalid.

    \b
    Examples:
      mlrun validate examples/quickstart.yaml
      mlrun validate manifests/ --format github    # annotations in a GitHub workflow
      mlrun validate manifests/ --format json | jq '.diagnostics[]'
    """
    from runner.manifest.loader import load_manifest  # noqa: PLC0415 - lazy: yaml, jsonschema

    try:
        loaded = load_manifest(paths)
    except ManifestError as error:
        files = sorted({d.file for d in error.diagnostics})
        click.echo(render(Outcome(error.diagnostics, files), output_format))
        raise SystemExit(ExitCode.INVALID) from None
    manifest = loaded.manifest
    outcome = Outcome(
        loaded.warnings,
        manifest.files,
        projects=len(manifest.projects),
        triggers=sum(len(p.jobs) + (p.cached_jobs is not None) for p in manifest.projects),
        digest=manifest.digest,
    )
    click.echo(render(outcome, output_format))


@click.command("schema")
@click.argument("name", default="manifest")
@exit_on_error
def schema(name: str) -> None:
    """Print a JSON Schema shipped with mlrun (default: the manifest schema).

    NAME is a schema such as "manifest" (manifest.schema.json). Editors use the schema through
    a first line in the manifest: # yaml-language-server: $schema=<path or URL>

    \b
    Examples:
      mlrun schema > manifest.schema.json
      mlrun schema manifest | jq '.properties | keys'
    """
    from runner.schemas import schema_text  # noqa: PLC0415 - lazy, like every command

    try:
        click.echo(schema_text(name), nl=False)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
