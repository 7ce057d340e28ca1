"""The manifest's plan for a command, before the API is asked: load, select, narrow, shard.

Shared by ``mlrun plan`` (offline, without importing the API client) and ``mlrun apply``.
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.manifest.model import Settings
from runner.plan import Plan, Selection, build_plan
from runner.plan.shard import Shard, split_for_shard


def local_plan(
    paths: Sequence[str],
    selection: Selection | None = None,
    *,
    changed_since: str | None = None,
    shard: Shard | None = None,
) -> tuple[Plan, Settings]:
    """The plan of the manifest at ``paths`` and its settings (both divided for ``shard``)."""
    from runner.manifest import load_manifest  # noqa: PLC0415 - the loader only when it runs

    loaded = load_manifest(paths)
    plan = build_plan(loaded.manifest, selection)
    if changed_since is not None:
        from runner.plan.changes import changes_since  # noqa: PLC0415 - git only when asked

        plan = changes_since(changed_since, loaded.manifest, paths).narrow(plan)
    return split_for_shard(plan, loaded.manifest.settings, shard)
