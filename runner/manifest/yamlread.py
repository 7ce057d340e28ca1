"""YAML text to the positioned JSON data model: the only module that calls PyYAML.

The document is built from the parser's *events*, iteratively, instead of ``yaml.load``:

* nothing recurses, so 5,000 nested brackets hit the depth cap instead of ``RecursionError``;
* every alias adds the expanded size of its anchor to a running count that is checked against a
  cap as the document is read, so alias and merge-key bombs stop within milliseconds, before any
  expansion (reliability-anchors §6: count a shared node once per reference, never expand it);
* duplicate keys are compared after typing, as JSON keys (``a``/``'a'``, ``1``/``0x1``), merge
  keys are applied but never count as duplicates, and complex keys are refused cleanly;
* only JSON-shaped tags are accepted (str, int, float, bool, null, seq, map; timestamps stay as
  text), so no tag can construct an object;
* string values are interpolated (``${VAR}``) as they are read; an unquoted value is typed after
  interpolation, so ``executionCount: ${RUNS:-3}`` is the integer 3.

Problems that leave the rest of the file readable (a duplicate key, a refused tag, an unset
variable) are recorded and reading goes on, so every one is reported; problems that make the rest
meaningless (syntax, caps, bad aliases) stop this file. PyYAML exceptions are translated here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from runner.manifest.document import JsonPath, Mark, PathItem, PosList, PosMap
from runner.manifest.excerpt import source_excerpt
from runner.manifest.findings import Findings
from runner.manifest.interpolate import interpolate
from runner.manifest.limits import Limits
from runner.manifest.secrets import API_KEY_HINT, contains_secret
from runner.manifest.source import SourceText

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
# First characters for which a plain scalar may resolve to something other than a string.
_RESOLVER_FIRST_CHARACTERS = frozenset(k for k in _RESOLVER.yaml_implicit_resolvers if k)

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = f"{_T}str", f"{_T}int", f"{_T}float", f"{_T}bool", f"{_T}null"
TIMESTAMP, MERGE, SEQ, MAP = f"{_T}timestamp", f"{_T}merge", f"{_T}seq", f"{_T}map"
_TEXT_TAGS = frozenset({STR, TIMESTAMP, MERGE, f"{_T}value"})
_PLAIN: Final = (True, False)

# What becomes of the value that follows a key.
_STORE, _MERGE, _DISCARD = 0, 1, 2
_COMPLEX_KEY: Final = "?"
_SLOW: Final = (
    object()
)  # the scalar needs the full treatment  # path item of a complex key's subtree (always discarded)


class _Abort(Exception):
    """The rest of the file cannot be read meaningfully."""

    def __init__(self, message: str, hint: str, mark: Mark | None, code: str = "yaml") -> None:
        super().__init__(message)
        self.message, self.hint, self.mark, self.code = message, hint, mark, code


class _Refused(Exception):
    """A value that cannot be part of the JSON data model; the file is still readable."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(slots=True)
class _Frame:
    """An open mapping or sequence."""

    container: PosMap | PosList
    where: PathItem | None  # its key or index in the parent
    anchor: str | None
    is_map: bool
    size: int = 1  # expanded node count so far
    key: str | None = None  # mappings: the key whose value comes next
    key_mark: Mark = (0, 0)
    mode: int = _STORE
    merges: list[tuple[Any, Mark]] | None = None  # created by the first '<<' value
    has_merge: bool = False


@dataclass(frozen=True)
class ParsedYaml:
    """The root value and where it starts (None when reading stopped), and where scalars holding
    a key-like string start (line -> [(col, path)]).
    """

    root: Any
    secret_scalars: dict[int, list[tuple[int, JsonPath]]]
    root_mark: Mark | None = None

    @property
    def complete(self) -> bool:
        """Whether the document was read to its end (its root may still be null)."""
        return self.root_mark is not None


def parse_yaml(
    source: SourceText, env: Mapping[str, str], limits: Limits, findings: Findings
) -> ParsedYaml:
    """Read ``source``; problems go to ``findings``. Not ``complete`` when reading stopped."""
    builder = _Builder(source.file, env, limits, findings)
    loader = _Loader(source.text)
    try:
        builder.read_stream(loader)
    except _Abort as abort:
        findings.add(
            source.file,
            () if abort.code == "yaml-depth" else builder.path(),
            abort.message,
            hint=abort.hint,
            mark=abort.mark,
            code=abort.code,
        )
        return ParsedYaml(None, builder.secret_scalars)
    except yaml.YAMLError as exc:
        message, hint, mark = _describe_yaml_error(exc, source.text)
        findings.add(source.file, (), message, hint=hint, mark=mark, code="yaml-syntax")
        return ParsedYaml(None, builder.secret_scalars)
    except (
        RecursionError
    ) as exc:  # pragma: no cover - the builder does not recurse; belt and braces
        message = f"nesting deeper than {limits.max_depth} levels"
        findings.add(source.file, (), message, hint="flatten the document", code="yaml-depth")
        del exc
        return ParsedYaml(None, builder.secret_scalars)
    finally:
        loader.dispose()
    return ParsedYaml(builder.root, builder.secret_scalars, builder.root_mark)


class _Builder:
    """Builds the positioned JSON value of one document from parser events."""

    def __init__(
        self, file: str, env: Mapping[str, str], limits: Limits, findings: Findings
    ) -> None:
        self.file, self.env, self.limits, self.findings = file, env, limits, findings
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.alias_nodes = 0
        self.root: Any = None
        self.root_mark: Mark | None = None
        self.secret_scalars: dict[int, list[tuple[int, JsonPath]]] = {}
        self.typed: dict[str, tuple[str, Any]] = {}

    # -- the event loop ----------------------------------------------------------------------

    def read_stream(self, loader: Any) -> None:
        loader.get_event()  # StreamStart
        event = loader.get_event()
        if isinstance(event, yaml.StreamEndEvent):
            raise _Abort("the file is empty", "a manifest starts with 'version: 1'", None, "empty")
        self._read_document(loader)
        event = loader.get_event()
        if not isinstance(event, yaml.StreamEndEvent):
            raise _Abort(
                "the file holds more than one YAML document ('---')",
                "put each document in its own file; a directory of files forms one manifest",
                _mark(event),
            )

    def _read_document(self, loader: Any) -> None:
        handlers: dict[type, Callable[[Any], None]] = {
            yaml.ScalarEvent: self._on_scalar,
            yaml.MappingStartEvent: self._on_start,
            yaml.SequenceStartEvent: self._on_start,
            yaml.MappingEndEvent: self._on_end,
            yaml.SequenceEndEvent: self._on_end,
            yaml.AliasEvent: self._on_alias,
        }
        get_event, document_end = loader.get_event, yaml.DocumentEndEvent
        while (event := get_event()).__class__ is not document_end:
            handlers[event.__class__](event)

    # -- paths and findings ------------------------------------------------------------------

    def path(self) -> JsonPath:
        """The JSON path of the innermost open container."""
        return tuple(frame.where for frame in self.stack[1:] if frame.where is not None)

    def _child_where(self) -> PathItem:
        frame = self.stack[-1]
        if isinstance(frame.container, PosList):
            return len(frame.container)
        return frame.key if frame.key is not None else _COMPLEX_KEY

    def _value_path(self) -> JsonPath:
        """The JSON path of the node being read now."""
        return (*self.path(), self._child_where()) if self.stack else ()

    def _refuse(
        self, message: str, hint: str, mark: Mark, value: Any = None, code: str = "yaml"
    ) -> None:
        path = self._value_path()
        self.findings.add(self.file, path, message, hint=hint, mark=mark, value=value, code=code)

    def _expecting_key(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is None

    # -- events ------------------------------------------------------------------------------

    def _on_scalar(self, event: Any) -> None:
        # The hot path (100,000 scalars in a 5,000-project manifest), hence the inlined calls.
        start = event.start_mark
        mark = (start.line + 1, start.column + 1)
        text: str = event.value
        quick: tuple[str, Any] | None = None
        plain = event.tag is None and event.anchor is None
        if plain and "$" not in text and "ml_live_" not in text:
            implicit = event.implicit
            quick = (STR, text) if not implicit[0] else self.typed.get(text)
            if quick is None:
                quick = self._plain(text, implicit)
        if quick is None or not self.stack:
            if self._expecting_key():
                self._on_key(event, mark)
            else:
                self._on_value(event, mark, quick)
            return
        frame, value = self.stack[-1], quick[1]
        container = frame.container
        if isinstance(container, PosList):
            frame.size += 1
            container.append(value)
            container.item_marks.append(mark)
        elif frame.key is None:
            if quick[0] == MERGE:
                self._on_key(event, mark)
                return
            key = value if value.__class__ is str else _json_key(value)
            if key in container:
                self._set_key(frame, key, mark)
            else:
                frame.key, frame.key_mark = key, mark
        elif frame.mode == _STORE:
            key = frame.key
            frame.size += 1
            container[key] = value
            container.key_marks[key] = frame.key_mark
            container.value_marks[key] = mark
            frame.key = None
        else:
            self._attach(value, mark, 1)

    def _on_value(self, event: Any, mark: Mark, quick: tuple[str, Any] | None) -> None:
        value = self._scalar_value(event, mark) if quick is None else quick[1]
        if event.anchor is not None:
            self._define_anchor(event.anchor, value, 1, mark)
        self._attach(value, mark, 1)

    def _plain(self, text: str, implicit: tuple[bool, bool]) -> tuple[str, Any] | None:
        """(tag, value) of a plain scalar that needs no interpolation, checks or refusal; else
        None. Plain scalars repeat a lot (keys, counts, set names), so their typing is memoised
        in ``self.typed`` (looked up by the caller).
        """
        if text and text[0] not in _RESOLVER_FIRST_CHARACTERS:
            known = self.typed[text] = (STR, text)
            return known
        tag = _resolve(text, implicit)
        try:
            known = self.typed[text] = (tag, _typed(text, tag))
        except _Refused:
            return None
        return known

    def _on_key(self, event: yaml.ScalarEvent, mark: Mark) -> None:
        frame = self.stack[-1]
        tag = _resolved_tag(event, event.value)
        if event.anchor is not None:
            self._define_anchor(event.anchor, event.value, 1, mark)
        if tag == MERGE:
            self._start_merge(frame, mark)
            return
        try:
            key = _json_key(_typed(event.value, tag))
        except _Refused as refused:
            frame.key, frame.key_mark, frame.mode = _COMPLEX_KEY, mark, _DISCARD
            self._refuse(refused.message, refused.hint, mark)
            return
        self._set_key(frame, key, mark)

    def _set_key(self, frame: _Frame, key: str, mark: Mark) -> None:
        frame.key, frame.key_mark = key, mark
        if key in frame.container:
            frame.mode = _DISCARD
            first_line, first_column = frame.container.key_marks[key]  # type: ignore[union-attr]
            self._refuse(
                f"duplicate key {key!r} (first written at line {first_line},"
                f" column {first_column})",
                "YAML keeps only one of them; remove or rename one",
                mark,
                value=key,
                code="duplicate-key",
            )
        else:
            self._track_secret_key(key, mark)

    def _start_merge(self, frame: _Frame, mark: Mark) -> None:
        frame.key, frame.key_mark = "<<", mark
        if frame.has_merge:
            frame.mode = _DISCARD
            self._refuse(
                "a second '<<' merge key in the same mapping",
                "merge several mappings with one key: '<<: [*first, *second]'",
                mark,
                code="duplicate-key",
            )
            return
        frame.mode, frame.has_merge = _MERGE, True

    def _on_start(self, event: Any) -> None:
        """A mapping or a sequence starts."""
        start, stack = event.start_mark, self.stack
        mark = (start.line + 1, start.column + 1)
        is_map = event.__class__ is yaml.MappingStartEvent
        container, kind = (PosMap(mark), MAP) if is_map else (PosList(mark), SEQ)
        if len(stack) >= self.limits.max_depth:
            raise _Abort(
                f"the document nests deeper than {self.limits.max_depth} levels",
                "a manifest needs only a few levels; is this the right file?",
                mark,
                "yaml-depth",
            )
        if event.tag is not None and event.tag not in ("!", kind):
            self._refuse(*_tag_refusal(event.tag), mark)
        where: PathItem | None = None
        if stack:
            parent = stack[-1]
            if not parent.is_map:
                where = len(parent.container)
            elif parent.key is not None:
                where = parent.key
            else:
                where = _COMPLEX_KEY
                self._refuse(
                    "a mapping or sequence used as a key (complex key) is not supported",
                    "keys must be plain strings",
                    mark,
                )
        if event.anchor is not None:
            self._check_new_anchor(event.anchor, mark)
            self.open_anchors.add(event.anchor)
        stack.append(_Frame(container, where, event.anchor, is_map))

    def _on_end(self, _event: Any) -> None:
        frame = self.stack[-1]
        if frame.merges:
            self._apply_merges(frame.container, frame.merges, self.path())  # type: ignore[arg-type]
        self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (frame.container, frame.size)
        if frame.where == _COMPLEX_KEY:
            parent = self.stack[-1]
            parent.key, parent.key_mark, parent.mode = _COMPLEX_KEY, frame.container.mark, _DISCARD
            parent.size += frame.size
            return
        self._attach(frame.container, frame.container.mark, frame.size)

    def _on_alias(self, event: yaml.AliasEvent) -> None:
        mark, name = _mark(event), event.anchor
        if name in self.open_anchors:
            raise _Abort(
                f"alias *{name} refers to the node that contains it (a cycle)",
                "an alias must point to a node that is complete",
                mark,
                "yaml-alias",
            )
        if name not in self.anchors:
            raise _Abort(
                f"alias *{name} has no anchor &{name} before it",
                f"define '&{name}' before using '*{name}'",
                mark,
                "yaml-alias",
            )
        value, size = self.anchors[name]
        self.alias_nodes += size
        if self.alias_nodes > self.limits.max_alias_nodes:
            raise _Abort(
                f"aliases expand to more than {self.limits.max_alias_nodes:,} nodes",
                "this looks like an alias bomb; write the values out or use fewer aliases",
                mark,
                "yaml-alias",
            )
        if self._expecting_key():
            self._alias_key(value, mark)
            return
        self._attach(value, mark, size)

    def _alias_key(self, value: Any, mark: Mark) -> None:
        frame = self.stack[-1]
        if isinstance(value, dict | list):
            frame.key, frame.key_mark, frame.mode = _COMPLEX_KEY, mark, _DISCARD
            self._refuse("an alias to a mapping or sequence used as a key", "use a string", mark)
            return
        self._set_key(frame, _json_key(value), mark)

    # -- building ----------------------------------------------------------------------------

    def _attach(self, value: Any, mark: Mark, size: int) -> None:
        if not self.stack:
            self.root, self.root_mark = value, mark
            return
        frame = self.stack[-1]
        frame.size += size
        container = frame.container
        if isinstance(container, PosList):
            container.append(value)
            container.item_marks.append(mark)
            return
        if frame.mode == _MERGE:
            if frame.merges is None:
                frame.merges = []
            frame.merges.append((value, mark))
        elif frame.mode == _STORE and frame.key is not None:
            container[frame.key] = value
            container.key_marks[frame.key] = frame.key_mark
            container.value_marks[frame.key] = mark
        frame.key, frame.mode = None, _STORE

    def _apply_merges(
        self, target: PosMap, merges: list[tuple[Any, Mark]], own_path: JsonPath
    ) -> None:
        """Merge-key semantics: explicit keys win, then earlier sources win over later ones."""
        for value, mark in merges:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, PosMap):
                    self.findings.add(
                        self.file,
                        (*own_path, "<<"),
                        "'<<' (merge key) needs a mapping or a list of mappings",
                        hint="write '<<: *anchor' where &anchor is a mapping",
                        mark=mark,
                        code="yaml",
                    )
                    continue
                for key, item in source.items():
                    if key not in target:
                        target[key] = item
                        target.key_marks[key] = source.key_marks[key]
                        target.value_marks[key] = source.value_marks[key]

    def _scalar_value(self, event: yaml.ScalarEvent, mark: Mark) -> Any:
        text = event.value
        if "$" in text:
            text = self._interpolate(text, mark)
        self._track_secret_value(event.value, text, mark)
        tag = _resolved_tag(event, text)
        try:
            return _typed(text, tag)
        except _Refused as refused:
            self._refuse(refused.message, refused.hint, mark, value=_short(text))
            return None

    def _interpolate(self, text: str, mark: Mark) -> str:
        result = interpolate(text, self.env)
        for problem in result.problems:
            self._refuse(problem.message, problem.hint, mark, value=text, code="env")
        return result.text

    def _track_secret_value(self, raw: str, resolved: str, mark: Mark) -> None:
        if contains_secret(raw):
            self._track_secret_at(mark, self._value_path())
        elif resolved is not raw and contains_secret(resolved):
            self._refuse(
                "an environment variable put something that looks like an API key here",
                API_KEY_HINT,
                mark,
                code="secret",
            )

    def _track_secret_key(self, key: str, mark: Mark) -> None:
        if contains_secret(key):
            self._track_secret_at(mark, (*self.path(), key))

    def _track_secret_at(self, mark: Mark, path: JsonPath) -> None:
        self.secret_scalars.setdefault(mark[0], []).append((mark[1], path))

    def _define_anchor(self, name: str, value: Any, size: int, mark: Mark) -> None:
        self._check_new_anchor(name, mark)
        self.anchors[name] = (value, size)

    def _check_new_anchor(self, name: str, mark: Mark) -> None:
        if name in self.anchors or name in self.open_anchors:
            raise _Abort(
                f"anchor &{name} is defined twice",
                "give each anchor its own name",
                mark,
                "yaml-alias",
            )


def _mark(event: Any) -> Mark:
    start = event.start_mark
    return (start.line + 1, start.column + 1)


def _resolved_tag(event: yaml.ScalarEvent, text: str) -> str:
    tag: str | None = event.tag
    if tag is None or tag == "!":
        return _resolve(text, event.implicit)
    return tag


def _resolve(text: str, implicit: tuple[bool, bool]) -> str:
    """The tag YAML 1.1 gives an untagged scalar (int, bool, null, timestamp, str...)."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, implicit)  # type: ignore[no-untyped-call]
    return tag


def _typed(text: str, tag: str) -> Any:
    """The JSON value of a scalar; _Refused when its tag has no JSON meaning."""
    if tag in _TEXT_TAGS:
        return text  # timestamps stay as written
    if tag == NULL:
        return None
    try:
        if tag == BOOL:
            return _CONSTRUCTOR.bool_values[text.lower()]
        if tag == INT:
            return _CONSTRUCTOR.construct_yaml_int(yaml.ScalarNode(tag, text))
        if tag == FLOAT:
            number: float = _CONSTRUCTOR.construct_yaml_float(yaml.ScalarNode(tag, text))
    except (KeyError, ValueError) as exc:
        raise _Refused(f"{text!r} is not a valid {tag.removeprefix(_T)}", "fix the value") from exc
    if tag == FLOAT:
        if not math.isfinite(number):
            raise _Refused("infinite and NaN numbers are not supported", "write a finite number")
        return number
    raise _Refused(*_tag_refusal(tag))


def _tag_refusal(tag: str) -> tuple[str, str]:
    shown = "!!" + tag.removeprefix(_T) if tag.startswith(_T) else tag
    return (
        f"the YAML tag {shown} is not allowed",
        (
            "a manifest holds only strings, numbers, booleans, null, lists and mappings;"
            " remove the tag"
        ),
    )


def _json_key(value: Any) -> str:
    """The JSON key a YAML key becomes: 1 and 0x1 are both "1", true is "true"."""
    return value if isinstance(value, str) else json.dumps(value)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TAB_HINT = "indent with spaces; YAML does not allow tabs for indentation"
_SYNTAX_HINTS = (
    ("mapping values are not allowed", "quote values that contain ': ', or check the indentation"),
    ("expected <block end>", "check the indentation of this line against the lines above"),
    ("maximum nesting depth", "the document nests too deeply; a manifest needs a few levels"),
    ("did not find expected key", "check the indentation of this line against the lines above"),
    ("did not find expected ','", "close the [ or { of this list or mapping, or quote the item"),
    ("could not find expected ':'", "a key needs ': ' after it; quote values containing ':'"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
    ("unacceptable character", "remove the control character; a manifest is plain text"),
    ("control characters are not allowed", "remove the control character"),
)


def _describe_yaml_error(exc: yaml.YAMLError, text: str) -> tuple[str, str, Mark | None]:
    """A message, hint and position for a PyYAML error.

    The message names both of PyYAML's marks, where the enclosing block began (``context_mark``)
    and where reading broke (``problem_mark``, the position reported), and shows their source
    lines under a caret.
    """
    if isinstance(exc, yaml.MarkedYAMLError):
        message, pointers = _marked_error(exc)
    else:  # ReaderError: a character the YAML reader refuses
        position = getattr(exc, "position", 0)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        message = f"YAML syntax error: {getattr(exc, 'reason', 'unreadable character')}"
        pointers = [((line, column), "here")]
    mark = pointers[0][0] if pointers else None
    hint = next((h for needle, h in _SYNTAX_HINTS if needle in message), "fix the YAML syntax")
    if mark is not None and _char_at(text, mark) == "\t":
        hint = _TAB_HINT
    return "\n".join([message, *source_excerpt(text, pointers)]), hint, mark


def _marked_error(exc: yaml.MarkedYAMLError) -> tuple[str, list[tuple[Mark, str]]]:
    """The message of a scanner or parser error, and its marks (where it broke first)."""
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    mark = _one_based(exc.problem_mark) or _one_based(exc.context_mark)
    began = _one_based(exc.context_mark) if context else None
    pointers = [(mark, problem)] if mark else []
    if began is None or began == mark:
        where = f" ({context})" if context else ""
    else:
        where = f" ({context} that starts at line {began[0]}, column {began[1]})"
        pointers.append((began, f"{_block_of(context)} starts here"))
    return f"YAML syntax error: {problem}{where}", pointers


def _one_based(mark: Any) -> Mark | None:
    """A PyYAML mark as (line, column), both 1-based."""
    return None if mark is None else (mark.line + 1, mark.column + 1)


def _block_of(context: str) -> str:
    """What a PyYAML context is reading: 'while parsing a block mapping' -> 'a block mapping'."""
    for prefix in ("while parsing ", "while scanning "):
        if context.startswith(prefix):
            return context.removeprefix(prefix)
    return "the enclosing block"


def _char_at(text: str, mark: Mark) -> str:
    lines = text.split("\n", mark[0])
    if len(lines) < mark[0]:
        return ""
    line = lines[mark[0] - 1]
    return line[mark[1] - 1] if 0 < mark[1] <= len(line) else ""
