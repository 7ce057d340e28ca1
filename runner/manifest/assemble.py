"""Several files form one manifest: gather their sections, refusing anything defined twice.

Rules (docs/manifest.md, "Several files"): every file has ``version: 1``; ``projects`` lists are
concatenated in file order; model sets are merged by name; ``defaults``, ``settings`` and
``extraModels`` may each appear in one file only. Anything defined twice is an error at the second
place that names the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from runner.manifest.document import Document, JsonPath, PosList, PosMap, locate
from runner.manifest.findings import Findings

SINGLE_SECTIONS = ("defaults", "settings", "extraModels")


class Origin(NamedTuple):
    """Where a piece of the manifest was written: a document and a JSON path in it.

    A named tuple rather than a frozen dataclass: the checks make one per trigger and per model
    name (50,000 at 5,000 projects), and a tuple is three times cheaper to make.
    """

    document: Document
    path: JsonPath

    def where(self) -> str:
        """``file:line:column`` of the key or value at this origin."""
        located = locate(self.document.root, self.path)
        mark = located.key_mark or located.mark
        return f"{self.document.file}:{mark[0]}:{mark[1]}" if mark else self.document.file


@dataclass
class Assembled:
    """The sections of every file, with their origins."""

    documents: list[Document]
    model_sets: dict[str, tuple[Any, Origin]] = field(default_factory=dict)
    sections: dict[str, tuple[PosMap, Origin]] = field(default_factory=dict)
    projects: list[tuple[PosMap, Origin]] = field(default_factory=list)

    def section(self, name: str) -> PosMap | dict[str, Any]:
        """The mapping of a single section, or an empty dict when no file defines it."""
        entry = self.sections.get(name)
        return entry[0] if entry else {}


def assemble(documents: list[Document], findings: Findings) -> Assembled:
    """Gather the sections of ``documents`` (roots that are not mappings are skipped)."""
    assembled = Assembled(documents)
    for document in documents:
        if isinstance(document.root, PosMap):
            _gather(document, document.root, assembled, findings)
    return assembled


def _gather(document: Document, root: PosMap, assembled: Assembled, findings: Findings) -> None:
    for name in SINGLE_SECTIONS:
        value = root.get(name)
        if isinstance(value, PosMap):
            _add_section(Origin(document, (name,)), name, value, assembled, findings)
    model_sets = root.get("modelSets")
    if isinstance(model_sets, PosMap):
        for set_name, models in model_sets.items():
            origin = Origin(document, ("modelSets", set_name))
            _add_model_set(origin, set_name, models, assembled, findings)
    projects = root.get("projects")
    if isinstance(projects, PosList):
        for index, project in enumerate(projects):
            if isinstance(project, PosMap):
                assembled.projects.append((project, Origin(document, ("projects", index))))


def _add_section(
    origin: Origin, name: str, value: PosMap, assembled: Assembled, findings: Findings
) -> None:
    first = assembled.sections.get(name)
    if first is None:
        assembled.sections[name] = (value, origin)
        return
    findings.add(
        origin.document.file,
        origin.path,
        f"{name} is defined in more than one file (first at {first[1].where()})",
        root=origin.document.root,
        hint=f"keep {name} in one file of the manifest",
        at_key=True,
        code="duplicate",
    )


def _add_model_set(
    origin: Origin, name: str, models: Any, assembled: Assembled, findings: Findings
) -> None:
    first = assembled.model_sets.get(name)
    if first is None:
        assembled.model_sets[name] = (models, origin)
        return
    findings.add(
        origin.document.file,
        origin.path,
        f"model set {name!r} is defined twice (first at {first[1].where()})",
        root=origin.document.root,
        hint="rename one of the sets, or remove one",
        value=name,
        at_key=True,
        code="duplicate",
    )
