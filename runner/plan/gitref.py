"""The manifest as it was at a git ref, for ``--changed-since``: the one module that runs git.

The same PATHs are read at ``REF`` with ``git`` (``git ls-tree`` for a directory's ``*.yaml`` and
``*.yml`` files, ``git cat-file`` for each file), copied to a temporary directory and loaded with
:func:`runner.manifest.load_manifest`. A file absent at ``REF`` is simply not there (every
project in it is added). A manifest that does not load at ``REF`` stops the command with exit 2:
what changed cannot be told, and guessing would either miss a trigger or pay for all of them.

Git's failures are translated here into :class:`UsageError` (not a repository, unknown ref)
and :class:`ConfigError` (git missing).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from runner.errors import ConfigError, ManifestError, UsageError
from runner.manifest.model import Manifest

MANIFEST_SUFFIXES = (".yaml", ".yml")
_GIT_TIMEOUT = 60.0
FETCH_HINT = (
    "in CI, fetch the history first (actions/checkout with fetch-depth: 0, "
    "or `git fetch origin main`)"
)


def manifest_at(
    ref: str, paths: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None
) -> Manifest | None:
    """The manifest the same ``paths`` formed at ``ref``; None when none of its files existed."""
    from runner.manifest import load_manifest  # noqa: PLC0415 - yaml and jsonschema, lazily

    root = repository_root(paths)
    commit = resolve_commit(root, ref)
    with tempfile.TemporaryDirectory(prefix="mlrun-changed-since-") as scratch:
        copies = [copy for path in paths if (copy := _copy_at(root, commit, path, Path(scratch)))]
        if not copies:
            return None
        try:
            return load_manifest(copies, env=env).manifest
        except ManifestError as error:
            raise UsageError(_old_manifest_message(ref, error, scratch)) from error


def repository_root(paths: Sequence[str | os.PathLike[str]]) -> Path:
    """The top of the git work tree holding the first path."""
    first = Path(paths[0]) if paths else Path()
    start = first if first.is_dir() else first.parent
    top = git(start.resolve(), "rev-parse", "--show-toplevel")
    return Path(top.strip())


def resolve_commit(root: Path, ref: str) -> str:
    """The commit ``ref`` names; :class:`UsageError` (with a fetch hint) when it names none."""
    if ref.startswith("-"):
        raise UsageError(f"--changed-since {ref!r}: a git ref cannot start with '-'")
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except UsageError:
        raise UsageError(
            f"--changed-since {ref}: no such commit in this repository; {FETCH_HINT}"
        ) from None


def files_at(root: Path, commit: str, path: Path, *, is_dir: bool) -> list[PurePosixPath]:
    """The manifest files ``path`` (relative to ``root``) named at ``commit``; [] when absent.

    A directory gives its ``*.yaml``/``*.yml`` files (not recursive, as the loader reads it).
    """
    spec = PurePosixPath(path.as_posix())
    pathspec = () if str(spec) == "." else ("--", f"{spec}/" if is_dir else str(spec))
    listing = git(root, "ls-tree", "-z", commit, *pathspec)
    blobs = [
        PurePosixPath(name)
        for meta, _, name in (entry.partition("\t") for entry in listing.split("\0") if entry)
        if meta.split()[1] == "blob"
    ]
    if not is_dir:
        return [blob for blob in blobs if blob == spec]
    return [blob for blob in blobs if blob.suffix in MANIFEST_SUFFIXES and blob.parent == spec]


def _copy_at(root: Path, commit: str, path: str | os.PathLike[str], scratch: Path) -> Path | None:
    """Copy ``path`` as it was at ``commit`` under ``scratch``; the copy, or None if absent."""
    is_dir = Path(path).is_dir()
    relative = _relative(root, Path(path))
    files = files_at(root, commit, relative, is_dir=is_dir)
    for blob in files:
        target = scratch / blob
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(git_bytes(root, "cat-file", "blob", f"{commit}:{blob}"))
    return scratch / relative if files else None


def _relative(root: Path, path: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        raise UsageError(
            f"--changed-since: {path} is outside the git repository at {root}"
        ) from None


def _old_manifest_message(ref: str, error: ManifestError, scratch: str) -> str:
    """The first problem of the manifest at ``ref``, its file named as in the repository."""
    where = ""
    if error.diagnostics:
        first = error.diagnostics[0]
        file = Path(first.file)
        name = file.relative_to(scratch) if file.is_relative_to(scratch) else file
        line = f":{first.line}" if first.line else ""
        where = f" ({ref}:{name.as_posix()}{line}: {first.message})"
    return (
        f"--changed-since {ref}: the manifest at {ref} does not load{where}; what changed "
        "cannot be told (fix it there, or run without --changed-since)"
    )


def git(cwd: Path, *args: str) -> str:
    """``git args`` in ``cwd``, its output as text; typed errors for every failure."""
    return git_bytes(cwd, *args).decode("utf-8", "replace")


def git_bytes(cwd: Path, *args: str) -> bytes:
    """``git args`` in ``cwd``, its output as bytes; typed errors for every failure."""
    try:
        completed = subprocess.run(  # noqa: S603 - fixed program, arguments never go through a shell
            ["git", *args],  # noqa: S607 - git from PATH, as the user runs it
            cwd=cwd,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError("--changed-since needs git, and git is not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"git {args[0]} took longer than {_GIT_TIMEOUT:.0f} s") from exc
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"--changed-since: git {args[0]} failed: {detail[-1] if detail else ''}")
    return completed.stdout
