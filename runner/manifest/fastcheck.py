"""A yes/no validator compiled from the manifest schema, for the common case: a valid manifest.

jsonschema explains errors well but walks a 5,000-project manifest in about two seconds. This
module compiles the schema (the same file, still the single source of truth) into plain Python
predicates for the few keywords it uses; a document that passes needs no jsonschema at all, and
one that fails is explained by jsonschema, project by project. A keyword this compiler does not
know makes :func:`compile_schema` return None, so jsonschema is used for everything: a schema
change can make validation slower, never wrong. The test suite checks both agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "$defs"}
)
_OBJECT_KEYWORDS = frozenset({"properties", "additionalProperties", "required", "propertyNames"})


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not implement."""


def compile_schema(root: dict[str, Any]) -> Check | None:
    """A predicate equivalent to validating against ``root``, or None if it cannot be built."""
    try:
        return _Compiler(root).build(root)
    except Unsupported:
        return None


def is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "integer": is_integer,
    "number": is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON Schema defines it: true is not 1, 1 is 1.0, containers compare deeply."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if is_number(left) and is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def all_unique(items: list[Any]) -> bool:
    return not any(json_equal(items[i], items[j]) for i in range(len(items)) for j in range(i))


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def build(self, schema: dict[str, Any]) -> Check:
        checks: list[Check] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword in _OBJECT_KEYWORDS:
                continue
            checks.append(self._keyword(keyword, value))
        if _OBJECT_KEYWORDS.intersection(schema):
            checks.append(self._object(schema))
        return _all(checks)

    def _keyword(self, keyword: str, value: Any) -> Check:  # noqa: C901, PLR0911 - a dispatch table
        if keyword == "type":
            return _any([_TYPES[t] for t in ([value] if isinstance(value, str) else value)])
        if keyword == "const":
            return lambda v: json_equal(v, value)
        if keyword == "enum":
            return lambda v: any(json_equal(v, option) for option in value)
        if keyword in _BOUNDS:
            compare = _BOUNDS[keyword]
            return lambda v: not is_number(v) or compare(v, value)
        if keyword in ("minLength", "maxLength"):
            longest = keyword == "maxLength"
            return lambda v: (
                not isinstance(v, str) or (len(v) <= value if longest else len(v) >= value)
            )
        if keyword == "pattern":
            search = re.compile(value).search
            return lambda v: not isinstance(v, str) or search(v) is not None
        if keyword == "items":
            item = self.build(value)
            return lambda v: not isinstance(v, list) or all(map(item, v))
        if keyword == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= value
        if keyword == "uniqueItems":
            return lambda v: not value or not isinstance(v, list) or all_unique(v)
        if keyword == "anyOf":
            return _any([self.build(branch) for branch in value])
        if keyword == "$ref":
            return self._ref(value)
        raise Unsupported(keyword)

    def _ref(self, ref: str) -> Check:
        if not ref.startswith("#/$defs/"):
            raise Unsupported(ref)
        name = ref.removeprefix("#/$defs/")
        if name not in self.refs:
            compiled: list[Check] = []
            # A forwarder while the definition compiles, in case it refers to itself.
            self.refs[name] = lambda v: compiled[0](v)  # noqa: PLW0108 - compiled[0] is not set yet
            compiled.append(self.build(self.root["$defs"][name]))
            self.refs[name] = compiled[0]
        return self.refs[name]

    def _object(self, schema: dict[str, Any]) -> Check:
        properties = {key: self.build(sub) for key, sub in schema.get("properties", {}).items()}
        additional = schema.get("additionalProperties", True)
        extra: Check | None = None if additional is True else self.build_or_false(additional)
        required = tuple(schema.get("required", ()))
        names = self.build(schema["propertyNames"]) if "propertyNames" in schema else None

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            if any(key not in value for key in required):
                return False
            for key, item in value.items():
                rule = properties.get(key, extra)
                if rule is not None and not rule(item):
                    return False
                if names is not None and not names(key):
                    return False
            return True

        return check

    def build_or_false(self, schema: Any) -> Check:
        if schema is False:
            return _never
        if isinstance(schema, dict):
            return self.build(schema)
        raise Unsupported("additionalProperties")


def _never(_value: Any) -> bool:
    return False


def _all(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)

    def every(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a plain loop is faster than all() with a generator
            if not check(value):
                return False
        return True

    return every


def _any(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) or second(v)

    def some(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a plain loop is faster than any() with a generator
            if check(value):
                return True
        return False

    return some


_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda v, bound: v >= bound,
    "maximum": lambda v, bound: v <= bound,
    "exclusiveMinimum": lambda v, bound: v > bound,
    "exclusiveMaximum": lambda v, bound: v < bound,
}
