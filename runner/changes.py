"""``--changed-since REF``: only the projects whose manifest entries changed against a git ref.

What "changed" means
====================
Projects are matched by name between the manifest at ``REF`` and the manifest now, each loaded
and resolved the same way (defaults applied, ``${VAR}`` resolved from the same environment,
model-set names expanded). A project is

* **added** when its name is absent at ``REF``;
* **changed** when what it would *trigger* differs: its id, its organisation, or any of its
  triggers' resolved models or execution counts (in order). Editing a model set changes every
  project that uses it; changing ``defaults.executionCount`` changes every project that relies on
  it;
* **removed** when its name is gone now: listed in the plan and the report, never triggered
  (there is nothing to trigger);
* **unchanged** otherwise. Labels, comments, the name of a model set whose models stay the same,
  moving an entry to another line or file, and settings do not make a project changed: none of
  them changes a single trigger request, so none of them is worth paying for a run.

Reading the old manifest
========================
The same PATHs are read at ``REF`` with ``git`` (``git ls-tree`` for a directory's ``*.yaml`` and
``*.yml`` files, ``git show REF:path`` for each file), copied to a temporary directory and loaded
with :func:`runner.manifest.load_manifest`. A file absent at ``REF`` is simply not there (every
project in it is added). A manifest that does not load at ``REF`` stops the command with exit 2:
what changed cannot be told, and guessing would either miss a project or pay for all of them.

Git failures are translated here, the one module that runs git, into :class:`UsageError`
(not a repository, unknown ref) and :class:`ConfigError` (git missing).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from runner.errors import ConfigError, ManifestError, UsageError
from runner.manifest.model import Manifest, Project, TriggerSpec
from runner.plan import Plan, Skip

MANIFEST_SUFFIXES = (".yaml", ".yml")
_GIT_TIMEOUT = 60.0
_NAMED = 10  # removed projects named in the summary line
FETCH_HINT = (
    "in CI, fetch the history first (actions/checkout with fetch-depth: 0, "
    "or `git fetch origin main`)"
)

Fingerprint = tuple[object, ...]


@dataclass(frozen=True)
class ChangeSet:
    """How the manifest's projects differ from those at ``ref``, by name."""

    ref: str
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def selected(self) -> frozenset[str]:
        """The projects to trigger: added or changed."""
        return frozenset((*self.added, *self.changed))

    def summary(self) -> str:
        """One line: ``--changed-since main: 1 added, 2 changed, 7 unchanged, 1 removed (…)``."""
        removed = ""
        if self.removed:
            names = ", ".join(self.removed[:_NAMED])
            more = f" and {len(self.removed) - _NAMED} more" if len(self.removed) > _NAMED else ""
            removed = f" (not triggered: {names}{more})"
        return (
            f"--changed-since {self.ref}: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed{removed}"
        )

    def narrow(self, plan: Plan) -> Plan:
        """``plan`` with only the added and changed projects; the others listed as skipped."""
        keep = self.selected
        actions = tuple(a for a in plan.actions if a.project in keep)
        skips = (
            *(Skip(name, f"unchanged since {self.ref}") for name in self.unchanged),
            *(Skip(name, f"removed since {self.ref}; not triggered") for name in self.removed),
        )
        return replace(
            plan,
            actions=actions,
            skipped=(*plan.skipped, *skips),
            notes=(*plan.notes, self.summary()),
        )


def trigger_fingerprint(project: Project) -> Fingerprint:
    """What a project would trigger: id, organisation, and each trigger's models and count."""

    def spec(trigger: TriggerSpec | None) -> Fingerprint | None:
        return None if trigger is None else (trigger.models, trigger.execution_count)

    return (
        project.id,
        project.organisation,
        tuple(spec(job) for job in project.jobs),
        spec(project.cached_jobs),
    )


def compare(ref: str, before: Sequence[Project], after: Sequence[Project]) -> ChangeSet:
    """The change set from ``before`` (the projects at ``ref``) to ``after``, in manifest order."""
    old = {p.name: trigger_fingerprint(p) for p in before}
    now = {p.name for p in after}
    added = tuple(p.name for p in after if p.name not in old)
    changed = tuple(
        p.name for p in after if p.name in old and old[p.name] != trigger_fingerprint(p)
    )
    unchanged = tuple(
        p.name for p in after if p.name in old and old[p.name] == trigger_fingerprint(p)
    )
    removed = tuple(p.name for p in before if p.name not in now)
    return ChangeSet(ref, added, changed, removed, unchanged)


def changes_since(
    ref: str,
    manifest: Manifest,
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
) -> ChangeSet:
    """How ``manifest`` (loaded from ``paths`` now) differs from the same paths at ``ref``."""
    before = manifest_at(ref, paths, env=env)
    return compare(ref, () if before is None else before.projects, manifest.projects)


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
