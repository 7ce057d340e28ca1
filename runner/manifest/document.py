"""The JSON data model of a manifest file, with the source position of every value.

YAML is read into plain JSON values (str, int, float, bool, None, dict, list) so the schema and
the checks see exactly what a JSON document would hold. Mappings and sequences are dict and list
subclasses that also remember where each key and item was written, so a JSON path found by any
check maps back to ``file:line:column``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Mark = tuple[int, int]  # (line, column), both 1-based
PathItem = str | int
JsonPath = tuple[PathItem, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class PosMap(dict[str, Any]):
    """A mapping that knows where it, each of its keys and each of its values were written."""

    __slots__ = ("key_marks", "mark", "value_marks")

    def __init__(self, mark: Mark) -> None:  # no super().__init__(): a new dict is already empty
        self.mark = mark
        self.key_marks: dict[str, Mark] = {}
        self.value_marks: dict[str, Mark] = {}


class PosList(list[Any]):
    """A sequence that knows where it and each of its items were written."""

    __slots__ = ("item_marks", "mark")

    def __init__(self, mark: Mark) -> None:  # no super().__init__(): a new list is already empty
        self.mark = mark
        self.item_marks: list[Mark] = []


@dataclass(frozen=True)
class Document:
    """One parsed file: its name as the user gave it, its root value and where that starts.

    A mapping or a sequence knows its own position; ``mark`` also places a root that is a
    scalar (a file holding just ``42``).
    """

    file: str
    root: Any
    mark: Mark | None = None


@dataclass(frozen=True)
class Located:
    """The value at a JSON path, where it was written, and where its key was written."""

    value: Any
    mark: Mark | None
    key_mark: Mark | None


_MISSING = Located(None, None, None)


def locate(root: Any, path: Iterable[PathItem]) -> Located:
    """Follow ``path`` from ``root``; the deepest position reached when the path is broken."""
    value, mark, key_mark = root, getattr(root, "mark", None), None
    for item in path:
        step = _step(value, item)
        if step is _MISSING:
            return Located(None, mark, key_mark)
        value, mark, key_mark = step.value, step.mark, step.key_mark
    return Located(value, mark, key_mark)


def _step(container: Any, item: PathItem) -> Located:
    if isinstance(container, PosMap) and isinstance(item, str) and item in container:
        return Located(container[item], container.value_marks[item], container.key_marks[item])
    if isinstance(container, PosList) and isinstance(item, int) and 0 <= item < len(container):
        return Located(container[item], container.item_marks[item], None)
    return _MISSING


def format_path(path: Iterable[PathItem]) -> str:
    """``$.projects[0].jobs[1]``; keys that are not identifiers use ``$['a key']``."""
    parts = ["$"]
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _IDENTIFIER.match(item):
            parts.append(f".{item}")
        else:
            parts.append("[" + repr(item) + "]")
    return "".join(parts)


def to_plain(value: Any) -> Any:
    """A copy made of plain dicts and lists (for output and canonical JSON)."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value
