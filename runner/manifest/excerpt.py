"""Source lines with a labelled caret under given positions, to show where a problem is.

A line is cut to a window around its caret when it is long, a tab is shown as ``→`` and any
other character that does not print as ``�``, so each caret stands under its column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import groupby

from runner.manifest.document import Mark

# The line breaks YAML knows, so that line numbers agree with the parser's marks.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_WINDOW = 100  # characters of a source line shown at most
_INDENT = "    "


def source_excerpt(text: str, pointers: Sequence[tuple[Mark, str]]) -> list[str]:
    """The lines of ``text`` that hold each ``(line, column)`` mark, each with ``^ label`` under.

    Lines come in order, once each; ``…`` stands for the lines left out between two of them.
    """
    lines = _LINE_BREAK.split(text)
    ordered = sorted(pointers)
    if not ordered:
        return []
    gutter = len(str(ordered[-1][0][0]))
    excerpt: list[str] = []
    previous = 0
    for number, group in groupby(ordered, key=lambda pointer: pointer[0][0]):
        if previous and number > previous + 1:
            excerpt.append(f"{_INDENT}{'…':>{gutter}}")
        marks = list(group)
        source = lines[number - 1] if 0 < number <= len(lines) else ""
        shown, shift = _window(source, marks[0][0][1])
        excerpt.append(f"{_INDENT}{number:>{gutter}} | {shown}".rstrip())
        for (_line, column), label in marks:
            caret = min(max(column - 1 - shift, 0), len(shown))
            excerpt.append(f"{_INDENT}{'':>{gutter}} | {' ' * caret}^ {label}")
        previous = number
    return excerpt


def _window(line: str, column: int) -> tuple[str, int]:
    """The part of ``line`` shown around ``column``, and how many columns it is shifted by."""
    visible = "".join(_visible(character) for character in line)
    if len(visible) <= _WINDOW:
        return visible, 0
    start = max(0, min(column - 1 - _WINDOW // 2, len(visible) - _WINDOW))
    end = start + _WINDOW
    head = "…" if start else ""
    tail = "…" if end < len(visible) else ""
    return f"{head}{visible[start:end]}{tail}", start - len(head)


def _visible(character: str) -> str:
    if character == "\t":
        return "→"
    return character if character.isprintable() else "�"
