"""Organisations, projects and queries: lenient by default, strict from a world file.

Lenient (no world): any well-formed project UUID exists, in whatever organisation the request
names, with 1 to 12 queries derived from ``(seed, project id)``. Strict (a :class:`World`): only
the listed organisations, projects and queries exist; unknown projects get 404, projects of
another organisation 403, and, when the world lists API keys, any other key 401.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.sandbox._rng import derived_uuid, hash_parts, rng
from runner.sandbox.errors import HttpError
from runner.sandbox.timefmt import iso

KEY_PREFIX = "ml_live_"
_WORLD_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: world objects were last updated before it
_LOCALES = (
    ("en", "US"),
    ("en", "GB"),
    ("fr", "FR"),
    ("de", "DE"),
    ("es", "ES"),
    ("it", "IT"),
    ("nl", "BE"),
    ("fr", "BE"),
    ("pt", "BR"),
    ("ja", "JP"),
)
_TOPICS = ("crm", "running shoes", "vpn", "coffee machine", "project management tool", "bank")
_ANGLES = ("best {} for small business", "{} reviews", "cheapest {}", "top rated {} 2026")
_FIRST = ("Jane", "John", "Amira", "Kenji", "Lucia", "Noah", "Priya", "Tomás", "Ines", "Omar")
_LAST = ("Doe", "Martin", "Okafor", "Sato", "García", "Novak", "Dubois", "Rossi", "Khan", "Berg")
_PROVIDERS = ("openai", "anthropic", "google-generative-ai", "perplexity", "ai-overview")


@dataclass(frozen=True)
class User:
    """The creator shown on jobs: derived from the API key alone."""

    id: str
    first_name: str
    last_name: str
    email: str

    @classmethod
    def for_key(cls, api_key: str) -> User:
        value = hash_parts("user", api_key)
        first, last = _FIRST[value % len(_FIRST)], _LAST[(value >> 8) % len(_LAST)]
        email = f"{first.lower()}.{last.lower()}@example.com"
        return cls(derived_uuid("user", api_key), first, last, email)

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
        }


@dataclass(frozen=True)
class Query:
    """One query row (a language/country variant counts as its own query)."""

    id: str
    text: str
    language: str
    country: str
    tags: tuple[int, ...] = ()


@dataclass(frozen=True)
class Project:
    """A project and its queries, as the sandbox serves it."""

    id: str
    name: str
    organisation_id: str
    queries: tuple[Query, ...]
    llm_providers: tuple[str, ...] = ("openai", "anthropic")
    execution_count: int = 3


@dataclass(frozen=True)
class ProjectSpec:
    """A project of a world file: ``queries`` is a count (generated from the seed) or a list."""

    id: str
    name: str
    queries: int | tuple[Query, ...]


@dataclass(frozen=True)
class Organisation:
    """An organisation of a world file, with its projects and (optionally) its API keys."""

    id: str
    name: str
    projects: tuple[ProjectSpec, ...] = ()
    api_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class World:
    """A strict world: only these organisations, projects, queries (and keys, if any) exist."""

    organisations: tuple[Organisation, ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read a world file (YAML, or JSON when it ends in ``.json``)."""
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith(".json"):
            return cls.from_mapping(json.loads(text))
        import yaml  # noqa: PLC0415 - only when a world file is used

        return cls.from_mapping(yaml.safe_load(text) or {})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> World:
        """``{"organisations": [{"id", "name", "apiKeys", "projects": [...]}]}``."""
        return cls(tuple(_organisation(item) for item in data.get("organisations", ())))

    @property
    def api_keys(self) -> dict[str, str]:
        return {key: org.id for org in self.organisations for key in org.api_keys}


def _organisation(data: Mapping[str, Any]) -> Organisation:
    return Organisation(
        id=str(data["id"]),
        name=str(data.get("name", "Organisation")),
        projects=tuple(_project(item) for item in data.get("projects", ())),
        api_keys=tuple(str(k) for k in data.get("apiKeys", data.get("api_keys", ()))),
    )


def _project(data: Mapping[str, Any]) -> ProjectSpec:
    raw = data.get("queries", 3)
    project_id = str(data["id"])
    if isinstance(raw, int):
        queries: int | tuple[Query, ...] = raw
    else:
        queries = tuple(_query(project_id, index, item) for index, item in enumerate(raw))
    return ProjectSpec(project_id, str(data.get("name", "Project")), queries)


def _query(project_id: str, index: int, data: str | Mapping[str, Any]) -> Query:
    if isinstance(data, str):
        data = {"query": data}
    return Query(
        id=str(data.get("id") or derived_uuid("query", project_id, index)),
        text=str(data.get("query", f"query {index + 1}")),
        language=str(data.get("language", "en")),
        country=str(data.get("country", "US")),
        tags=tuple(int(t) for t in data.get("tags", ())),
    )


def generate_queries(seed: int, project_id: str, count: int | None = None) -> tuple[Query, ...]:
    """The queries of a project the world does not list: a pure function of seed and id."""
    draw = rng(seed, "queries", project_id)
    total = count if count is not None else draw.randint(1, 12)
    queries = []
    for index in range(total):
        language, country = _LOCALES[draw.randrange(len(_LOCALES))]
        text = _ANGLES[draw.randrange(len(_ANGLES))].format(_TOPICS[draw.randrange(len(_TOPICS))])
        tags = tuple(sorted({draw.randint(1, 20) for _ in range(draw.randint(0, 2))}))
        query_id = derived_uuid(seed, "query", project_id, index)
        queries.append(Query(query_id, text, language, country, tags))
    return tuple(queries)


def project_name(seed: int, project_id: str) -> str:
    draw = rng(seed, "project-name", project_id)
    return f"{_TOPICS[draw.randrange(len(_TOPICS))].title()} watch"


def updated_wall(*parts: int | str) -> float:
    """A stable 'last updated' time before the sandbox's epoch."""
    return _WORLD_EPOCH - (hash_parts(*parts) % (90 * 86_400))


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its organisation when the world knows it, its user."""

    api_key: str
    organisation_id: str | None
    user: User


class Directory:
    """Answers "who is this key" and "which project is this" for a world (or none)."""

    def __init__(self, world: World | None, seed: int) -> None:
        self.world = world
        self.seed = seed
        self._keys = world.api_keys if world else {}
        self._projects: dict[str, Project] = {}
        self._orgs = {org.id: org for org in world.organisations} if world else {}
        self._touched: dict[str, dict[str, None]] = {}
        self._principals: dict[str, Principal] = {}
        if world:
            for org in world.organisations:
                for spec in org.projects:
                    self._projects[spec.id] = self._materialise(spec, org.id)

    def authenticate(self, api_key: str | None) -> Principal:
        """The caller, or 401 for a missing key, a non-``ml_live_`` key or an unlisted key."""
        if api_key is not None and (principal := self._principals.get(api_key)) is not None:
            return principal
        if not api_key:
            raise HttpError(401, "Missing API key")
        if not api_key.startswith(KEY_PREFIX) or len(api_key) == len(KEY_PREFIX):
            raise HttpError(401, "Invalid API key")
        if self._keys and api_key not in self._keys:
            raise HttpError(401, "Invalid API key")
        principal = Principal(api_key, self._keys.get(api_key), User.for_key(api_key))
        self._principals[api_key] = principal
        return principal

    def project(self, project_id: str, organisation_id: str | None, who: Principal) -> Project:
        """The project a request names, or 404/403 in a strict world."""
        if self.world is None:
            return self._lenient(project_id, organisation_id or self._default_org(who))
        project = self._projects.get(project_id)
        if project is None:
            raise HttpError(404, "Project not found")
        owners = {organisation_id or project.organisation_id, who.organisation_id}
        if owners - {None, project.organisation_id}:
            raise HttpError(403, "Forbidden resource")
        return project

    def projects(self, organisation_id: str, who: Principal) -> list[Project]:
        """The projects of an organisation (403 for another organisation than the key's)."""
        if self.world is None:
            seeded = [derived_uuid(self.seed, "project", organisation_id, i) for i in range(2)]
            ids = dict.fromkeys([*seeded, *self._touched.get(organisation_id, {})])
            return [self._lenient(pid, organisation_id) for pid in ids]
        if organisation_id not in self._orgs or who.organisation_id not in {None, organisation_id}:
            raise HttpError(403, "Forbidden resource")
        return [self._projects[spec.id] for spec in self._orgs[organisation_id].projects]

    def _default_org(self, who: Principal) -> str:
        return who.organisation_id or derived_uuid("organisation", who.api_key)

    def _lenient(self, project_id: str, organisation_id: str) -> Project:
        cache_key = f"{organisation_id}/{project_id}"
        project = self._projects.get(cache_key)
        if project is None:
            spec = ProjectSpec(project_id, project_name(self.seed, project_id), -1)
            project = self._projects[cache_key] = self._materialise(spec, organisation_id)
            self._touched.setdefault(organisation_id, {})[project_id] = None
        return project

    def _materialise(self, spec: ProjectSpec, organisation_id: str) -> Project:
        if isinstance(spec.queries, tuple):
            queries = spec.queries
        else:
            count = None if spec.queries < 0 else spec.queries
            queries = generate_queries(self.seed, spec.id, count)
        draw = rng(self.seed, "project", spec.id)
        providers = tuple(sorted(draw.sample(_PROVIDERS, draw.randint(1, 3))))
        return Project(spec.id, spec.name, organisation_id, queries, providers, draw.randint(1, 5))


def query_json(query: Query, project: str) -> dict[str, Any]:
    """A Query object as the API returns it."""
    return {
        "id": query.id,
        "project": project,
        "tags": list(query.tags),
        "query": query.text,
        "language": query.language,
        "country": query.country,
        "updatedAt": iso(updated_wall("query", query.id)),
    }


def project_json(project: Project) -> dict[str, Any]:
    """A Project object as the API returns it."""
    return {
        "id": project.id,
        "name": project.name,
        "slug": project.name.lower().replace(" ", "-"),
        "recurrence": "manual",
        "recurrenceStatus": "active",
        "llmProviders": list(project.llm_providers),
        "executionCount": project.execution_count,
        "organisation": project.organisation_id,
        "updatedAt": iso(updated_wall("project", project.id)),
    }
