"""The checks the schema cannot express.

* model names: a model id where a provider key is needed (or the reverse) is said plainly, unknown
  names get a did-you-mean, and a model set must be all one kind;
* model-set references: undefined sets (did-you-mean), a set of the wrong kind, a set named
  inside a models list, unused sets;
* a trigger with no models and no default; cached jobs without an organisation;
* duplicate project names and ids, across all files;
* declared extra models (accepted, with a warning).

The checks read the raw documents defensively: a value of the wrong shape was already reported by
the schema and is skipped here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from runner.catalog import Catalog, ModelKind, default_catalog
from runner.manifest.assemble import Assembled, Origin
from runner.manifest.document import JsonPath, PosMap
from runner.manifest.findings import Findings
from runner.manifest.suggest import did_you_mean

SetKind = Literal["modelId", "providerKey", "both"]
_WHERE: dict[ModelKind, str] = {"modelId": "jobs", "providerKey": "cachedJobs"}
_NOUN: dict[ModelKind, str] = {"modelId": "model id", "providerKey": "provider key"}
_EXTRA_KEY: dict[ModelKind, str] = {"modelId": "modelIds", "providerKey": "providerKeys"}


def manifest_catalog(assembled: Assembled) -> Catalog:
    """The shipped catalog plus the manifest's declared extra identifiers."""
    extra = assembled.section("extraModels")
    return default_catalog().with_extra(
        _strings(extra.get("modelIds")), _strings(extra.get("providerKeys"))
    )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


@dataclass
class _Checker:
    assembled: Assembled
    findings: Findings
    catalog: Catalog
    set_kinds: dict[str, SetKind] = field(default_factory=dict)
    used_sets: set[str] = field(default_factory=set)
    undefined_sets: bool = False  # a misspelt reference may have meant an "unused" set

    def report(self, origin: Origin, message: str, **details: Any) -> None:
        self.findings.add(
            origin.document.file, origin.path, message, root=origin.document.root, **details
        )


def check_semantics(assembled: Assembled, findings: Findings) -> None:
    """Add a finding for every problem the schema cannot see."""
    checker = _Checker(assembled, findings, manifest_catalog(assembled))
    _check_extra_models(checker)
    for name, (models, origin) in assembled.model_sets.items():
        _check_model_set(checker, name, models, origin)
    _check_defaults(checker)
    for project, origin in assembled.projects:
        _check_project(checker, project, origin)
    _check_unique_projects(checker)
    _check_unused_sets(checker)
    _check_has_projects(checker)


# -- extra models ------------------------------------------------------------------------------


def _check_extra_models(checker: _Checker) -> None:
    entry = checker.assembled.sections.get("extraModels")
    if entry is None:
        return
    extra, origin = entry
    shipped = default_catalog()
    for kind in ("modelId", "providerKey"):
        key = _EXTRA_KEY[kind]
        names = extra.get(key)
        for index, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str):
                at = Origin(origin.document, (*origin.path, key, index))
                _warn_extra(checker, at, name, kind, known=name in shipped.names(kind))


def _warn_extra(checker: _Checker, at: Origin, name: str, kind: ModelKind, *, known: bool) -> None:
    if known:
        message = f"{name!r} is already a {_NOUN[kind]} of this release"
        hint = "remove it from extraModels"
    else:
        message = f"{name!r} is not a {_NOUN[kind]} this release knows; accepted from extraModels"
        hint = "if the API does not accept it, the trigger fails; upgrade mlrun to check it"
    checker.report(at, message, hint=hint, value=name, severity="warning", code="extra-model")


# -- model names and sets ----------------------------------------------------------------------


def _kinds_of(catalog: Catalog, name: str) -> set[ModelKind]:
    kinds: set[ModelKind] = set()
    if catalog.is_model_id(name):
        kinds.add("modelId")
    if catalog.is_provider_key(name):
        kinds.add("providerKey")
    return kinds


def _check_model_set(checker: _Checker, name: str, models: Any, origin: Origin) -> None:
    if not isinstance(models, list):
        return
    names = [(index, item) for index, item in enumerate(models) if isinstance(item, str)]
    kinds = {index: _kinds_of(checker.catalog, item) for index, item in names}
    id_only = [i for i, k in kinds.items() if k == {"modelId"}]
    key_only = [i for i, k in kinds.items() if k == {"providerKey"}]
    kind: SetKind = "modelId" if len(id_only) >= len(key_only) else "providerKey"
    if not id_only and not key_only and all(kinds.values()):
        kind = "both"
    checker.set_kinds[name] = kind
    odd = key_only if kind == "modelId" else id_only if kind == "providerKey" else []
    for index in odd:
        _report_mixed(checker, name, models[index], Origin(origin.document, (*origin.path, index)))
    for index, item in names:
        if not kinds[index]:
            at = Origin(origin.document, (*origin.path, index))
            _report_unknown(
                checker, item, "providerKey" if kind == "providerKey" else "modelId", at
            )


def _report_mixed(checker: _Checker, set_name: str, item: str, at: Origin) -> None:
    item_kind: ModelKind = "modelId" if checker.catalog.is_model_id(item) else "providerKey"
    other: ModelKind = "providerKey" if item_kind == "modelId" else "modelId"
    checker.report(
        at,
        f"model set {set_name!r} mixes kinds: {item!r} is a {_NOUN[item_kind]} while the others"
        f" are {_NOUN[other]}s",
        hint="a set holds model ids (for jobs) or provider keys (for cachedJobs); split it in two",
        value=item,
        code="model-kind",
    )


def _check_model_name(checker: _Checker, name: str, kind: ModelKind, at: Origin) -> None:
    catalog = checker.catalog
    if name in catalog.names(kind):
        return
    other: ModelKind = "providerKey" if kind == "modelId" else "modelId"
    if name in catalog.names(other):
        checker.report(
            at,
            f"{name!r} is a {_NOUN[other]}, valid under {_WHERE[other]}; under {_WHERE[kind]}"
            f" use a {_NOUN[kind]} such as {_counterpart(catalog, name, kind)}",
            hint=_counterpart_hint(catalog, name, kind),
            value=name,
            code="model-kind",
        )
        return
    _report_unknown(checker, name, kind, at)


def _counterpart(catalog: Catalog, name: str, kind: ModelKind) -> str:
    """The name of ``kind`` that stands for ``name`` (a key's first model, a model's key)."""
    if kind == "modelId":
        return catalog.provider_models.get(name, ("",))[0] or catalog.model_ids[0]
    return catalog.provider_of(name) or catalog.provider_keys[0]


def _counterpart_hint(catalog: Catalog, name: str, kind: ModelKind) -> str:
    if kind == "modelId":
        served = [m for m, provider in catalog.model_provider.items() if provider == name]
        return f"model ids served by {name}: {', '.join(served)}"
    return f"{name} is served under the provider key {catalog.provider_of(name)}"


def _report_unknown(checker: _Checker, name: str, kind: ModelKind, at: Origin) -> None:
    suggestion = checker.catalog.suggest(name, kind)
    if suggestion is not None:
        hint = f"did you mean {suggestion!r}?"
    else:
        hint = (
            f"valid {_NOUN[kind]}s: {', '.join(checker.catalog.names(kind))}; if the API added"
            f" it after this release, declare it under extraModels.{_EXTRA_KEY[kind]}"
        )
    checker.report(at, f"unknown {_NOUN[kind]} {name!r}", hint=hint, value=name, code="model")


def _check_models(checker: _Checker, models: Any, kind: ModelKind, at: Origin) -> None:
    """A ``models`` value: a set name, or an inline list of names of ``kind``."""
    if isinstance(models, str):
        _check_set_reference(checker, models, kind, at)
    elif isinstance(models, list):
        for index, name in enumerate(models):
            if not isinstance(name, str):
                continue
            item = Origin(at.document, (*at.path, index))
            if name in checker.assembled.model_sets and name not in checker.catalog.names(kind):
                _report_set_in_list(checker, name, kind, item)
            else:
                _check_model_name(checker, name, kind, item)


def _report_set_in_list(checker: _Checker, name: str, kind: ModelKind, at: Origin) -> None:
    checker.used_sets.add(name)
    checker.report(
        at,
        f"{name!r} is a model set: write `models: {name}`",
        hint=f"a models list holds {_NOUN[kind]}s; a set is named on its own, not in a list"
        " (a set and a list do not combine)",
        value=name,
        code="set-in-list",
    )


def _check_set_reference(checker: _Checker, name: str, kind: ModelKind, at: Origin) -> None:
    sets = checker.assembled.model_sets
    if name not in sets:
        checker.undefined_sets = True
        checker.report(
            at,
            f"undefined model set {name!r}",
            hint=_undefined_set_hint(checker, name),
            value=name,
            code="undefined-set",
        )
        return
    checker.used_sets.add(name)
    found = checker.set_kinds.get(name)
    if found is None or found in (kind, "both"):
        return
    set_kind: ModelKind = "providerKey" if found == "providerKey" else "modelId"
    checker.report(
        at,
        f"model set {name!r} holds {_NOUN[set_kind]}s, valid under {_WHERE[set_kind]};"
        f" under {_WHERE[kind]} use {_NOUN[kind]}s",
        hint=_right_kind_hint(checker, kind),
        value=name,
        code="model-kind",
    )


def _undefined_set_hint(checker: _Checker, name: str) -> str:
    if _kinds_of(checker.catalog, name):
        return f"to use the model itself, write a list: [{name}]"
    return did_you_mean(name, checker.assembled.model_sets, noun="model sets")


def _right_kind_hint(checker: _Checker, kind: ModelKind) -> str:
    fitting = [name for name, k in checker.set_kinds.items() if k in (kind, "both")]
    if fitting:
        return f"sets of {_NOUN[kind]}s: {', '.join(sorted(fitting))}"
    return f"write an inline list of {_NOUN[kind]}s, such as [{checker.catalog.names(kind)[0]}]"


# -- defaults and projects ---------------------------------------------------------------------


def _check_defaults(checker: _Checker) -> None:
    entry = checker.assembled.sections.get("defaults")
    if entry is None:
        return
    defaults, origin = entry
    for key, kind in (("models", "modelId"), ("cachedModels", "providerKey")):
        if key in defaults:
            at = Origin(origin.document, (*origin.path, key))
            _check_models(checker, defaults[key], kind, at)  # type: ignore[arg-type]


def _check_project(checker: _Checker, project: PosMap, origin: Origin) -> None:
    defaults = checker.assembled.section("defaults")
    jobs = project.get("jobs")
    for index, entry in enumerate(jobs if isinstance(jobs, list) else []):
        at = Origin(origin.document, (*origin.path, "jobs", index))
        _check_trigger(checker, entry, "modelId", at, has_default="models" in defaults)
    cached = project.get("cachedJobs")
    if cached is not None:
        at = Origin(origin.document, (*origin.path, "cachedJobs"))
        _check_trigger(checker, cached, "providerKey", at, has_default="cachedModels" in defaults)
        if "organisation" not in project and "organisation" not in defaults:
            _report_no_organisation(checker, project, at)


def _check_trigger(
    checker: _Checker, entry: Any, kind: ModelKind, at: Origin, *, has_default: bool
) -> None:
    if not isinstance(entry, PosMap):
        return
    if "models" in entry:
        _check_models(checker, entry["models"], kind, Origin(at.document, (*at.path, "models")))
        return
    if not has_default:
        default_key = "defaults.models" if kind == "modelId" else "defaults.cachedModels"
        checker.report(
            at,
            f"{_describe_trigger(at.path)} has no models and {default_key} is not set",
            hint=f"add 'models: <set name or list>' here, or set {default_key}",
            code="no-models",
            covers=False,
        )


def _describe_trigger(path: JsonPath) -> str:
    return f"jobs[{path[-1]}]" if isinstance(path[-1], int) else str(path[-1])


def _report_no_organisation(checker: _Checker, project: PosMap, at: Origin) -> None:
    name = project.get("name")
    checker.report(
        at,
        f"cachedJobs need an organisation, and project {name!r} has none"
        " (defaults.organisation is not set either)",
        hint="add 'organisation: <uuid>' to the project or to defaults,"
        " e.g. organisation: ${MENTIONLAB_ORG_ID}",
        at_key=True,
        code="no-organisation",
        covers=False,
    )


def _check_unique_projects(checker: _Checker) -> None:
    for key, normalise in (("name", str), ("id", str.lower)):
        first: dict[str, Origin] = {}  # the project's origin; its key's only for a message
        for project, origin in checker.assembled.projects:
            value = project.get(key)
            if not isinstance(value, str):
                continue
            earlier = first.setdefault(normalise(value), origin)
            if earlier is not origin:
                at = Origin(origin.document, (*origin.path, key))
                earlier_at = Origin(earlier.document, (*earlier.path, key))
                checker.report(
                    at,
                    f"duplicate project {key} {value!r} (first at {earlier_at.where()})",
                    hint=f"each project needs its own {key}",
                    value=value,
                    code="duplicate",
                )


def _check_unused_sets(checker: _Checker) -> None:
    if checker.undefined_sets:
        return
    for name, (_models, origin) in checker.assembled.model_sets.items():
        if name not in checker.used_sets:
            checker.report(
                origin,
                f"model set {name!r} is never used",
                hint=f"remove it, or use it with 'models: {name}'",
                value=name,
                severity="warning",
                at_key=True,
                code="unused-set",
            )


def _check_has_projects(checker: _Checker) -> None:
    documents = checker.assembled.documents
    if not documents or any(_has_key(d.root, "projects") for d in documents):
        return
    document = checker.assembled.documents[0]
    checker.report(
        Origin(document, ()),
        "the manifest declares no projects",
        hint="add a 'projects:' list with at least one project",
        code="no-projects",
        covers=False,
    )


def _has_key(root: Any, key: str) -> bool:
    return isinstance(root, dict) and key in root
