"""The model identifiers and provider keys the MentionLab API accepts.

The data lives in ``runner/data/catalog.json`` (one line per model) so that a model the API adds
is a one-line change; a manifest may also declare extra ids for models added after a release.
Job triggers take *model ids*; cached-job triggers take *provider keys*. Many names are close
(``openai`` vs ``gpt-4.1-mini``, ``ai-overview`` is both), so this module also says which kind a
name is and suggests the nearest valid one.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

ModelKind = Literal["modelId", "providerKey"]


@dataclass(frozen=True)
class Catalog:
    """The accepted identifiers, with the mapping of provider keys to model names."""

    model_ids: tuple[str, ...]
    provider_keys: tuple[str, ...]
    provider_models: dict[str, tuple[str, ...]] = field(hash=False, compare=False)
    model_provider: dict[str, str] = field(hash=False, compare=False)

    def is_model_id(self, name: str) -> bool:
        return name in self.model_ids

    def is_provider_key(self, name: str) -> bool:
        return name in self.provider_keys

    def names(self, kind: ModelKind) -> tuple[str, ...]:
        return self.model_ids if kind == "modelId" else self.provider_keys

    def suggest(self, name: str, kind: ModelKind) -> str | None:
        """The closest valid name of ``kind``, or None when nothing is close."""
        matches = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.6)
        return matches[0] if matches else None

    def models_for_keys(self, keys: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The model names the server maps ``keys`` to, in order, without repeats."""
        seen: dict[str, None] = {}
        for key in keys:
            for model in self.provider_models.get(key, (key,)):
                seen.setdefault(model, None)
        return tuple(seen)

    def provider_of(self, model_id: str) -> str | None:
        return self.model_provider.get(model_id)

    def with_extra(self, model_ids: tuple[str, ...], provider_keys: tuple[str, ...]) -> Catalog:
        """A catalog that also accepts a manifest's declared extra identifiers."""
        if not model_ids and not provider_keys:
            return self
        return Catalog(
            model_ids=self.model_ids + tuple(m for m in model_ids if m not in self.model_ids),
            provider_keys=self.provider_keys
            + tuple(k for k in provider_keys if k not in self.provider_keys),
            provider_models=self.provider_models,
            model_provider=self.model_provider,
        )


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with this release."""
    raw = json.loads(resources.files("runner").joinpath("data/catalog.json").read_text("utf-8"))
    models = raw["modelIds"]
    keys = raw["providerKeys"]
    return Catalog(
        model_ids=tuple(m["id"] for m in models),
        provider_keys=tuple(k["key"] for k in keys),
        provider_models={k["key"]: tuple(k["models"]) for k in keys},
        model_provider={m["id"]: m["provider"] for m in models},
    )
