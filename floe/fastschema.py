"""Whether data is valid under a schema of the store, decided without jsonschema where it can be.

jsonschema stays the reference for what a schema accepts and the source of every error a person
reads. But importing it costs about 60 ms of every ``floe`` start (``referencing``, the
meta-schemas, the format checkers), which is most of a warm platform compile, and almost every
file floe reads is valid. :func:`check` walks the schema and the data once and answers:

- ``True``: valid, exactly as jsonschema's Draft 2020-12 (with floe's ECMA-262 ``pattern``) would
  find it;
- ``False``: invalid, as jsonschema would find it;
- ``None``: it cannot vouch either way: a keyword whose meaning it does not implement (for instance
  ``patternProperties``, ``uniqueItems``, ``$dynamicRef``, an extension keyword), a value of a type
  JSON does not have, a ``$ref`` it cannot resolve.

:meth:`floe.schemas.SchemaStore.errors` asks jsonschema whenever the answer is not ``True``, so
only data found valid skips it. ``tests/test_fastschema_differential.py`` checks with property tests, over
floe's own schemas and over generated ones, that every ``True`` and ``False`` agrees with
jsonschema.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

Verdict = bool | None


class Resolver(Protocol):
    """What :func:`check` needs of the schemas it walks: a ``$ref`` resolved (the
    :class:`floe.schemas.SchemaStore` that calls it)."""

    def resolve(self, ref: str, base: str) -> tuple[Mapping[str, Any], str]:
        """The schema ``ref`` points at from ``base``, and the base to resolve its own refs against."""
        ...


Rule = Callable[[Resolver, Any, Any, Mapping[str, Any], str], Verdict]

ANNOTATIONS = frozenset(
    {
        "$schema",
        "$defs",
        "definitions",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
        # floe's validators have no format checker: ``format`` is an annotation there too
        "format",
        # applied by ``if``; alone, jsonschema ignores them
        "then",
        "else",
    }
)
"""Keywords that never make data invalid."""


def check(store: Resolver, value: Any, schema: Any, base: str) -> Verdict:
    """Whether ``value`` is valid under ``schema`` (found at ``base``): ``True``, ``False`` or ``None``
    when this module cannot tell (then only jsonschema can)."""
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        return None
    if "$id" in schema and _join(base, schema["$id"]) != base:
        return None  # a nested resource with a base of its own
    verdict: Verdict = True
    for keyword, argument in schema.items():
        if keyword in ANNOTATIONS or keyword == "$id":
            continue
        rule = RULES.get(keyword)
        try:
            result = rule(store, value, argument, schema, base) if rule is not None else None
        except (TypeError, ValueError, LookupError, AttributeError, RecursionError, re.error):
            result = None  # a schema jsonschema itself would choke on, or report
        if result is False:
            return False
        if result is None:
            verdict = None
    return verdict


def _join(base: str, reference: Any) -> str:
    from urllib.parse import urljoin

    return urljoin(base, str(reference))


def _all(verdicts: Any) -> Verdict:
    """``False`` as soon as one is, else ``None`` if one is, else ``True``."""
    verdict: Verdict = True
    for result in verdicts:
        if result is False:
            return False
        if result is None:
            verdict = None
    return verdict


# -- types, as jsonschema's Draft 2020-12 type checker --------------------------------------------


def kind(value: Any) -> str | None:
    """The JSON type of a Python value, or None when JSON has no such type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def _is_type(value: Any, actual: str, wanted: Any) -> Verdict:
    if wanted == actual:
        return True
    if wanted == "number":
        return actual == "integer"
    if wanted == "integer":
        return actual == "number" and float(value).is_integer()
    if wanted in ("null", "boolean", "string", "array", "object"):
        return False
    return None  # a type name jsonschema does not know: it raises


def _type(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    actual = kind(value)
    if actual is None:
        return None
    results = [
        _is_type(value, actual, wanted) for wanted in (argument if isinstance(argument, list) else [argument])
    ]
    if True in results:
        return True
    return None if None in results else False


def _number(value: Any) -> bool:
    return kind(value) in ("integer", "number")


def equal(one: Any, two: Any) -> Verdict:
    """JSON equality (``True`` is not ``1``), as jsonschema's ``const`` and ``enum`` compare."""
    one_kind, two_kind = kind(one), kind(two)
    if one_kind is None or two_kind is None:
        return None
    if one_kind in ("array", "object") or two_kind in ("array", "object"):
        if one_kind != two_kind or len(one) != len(two):
            return False
        if one_kind == "array":
            return _all(equal(a, b) for a, b in zip(one, two, strict=True))
        return _all(equal(v, two[k]) if k in two else False for k, v in one.items())
    if (one_kind == "boolean") != (two_kind == "boolean") or (one_kind == "string") != (two_kind == "string"):
        return False
    return bool(one == two)


# -- patterns, as JSON Schema means them ---------------------------------------------------------


@functools.lru_cache(maxsize=512)
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with JSON Schema's meaning of ``$``: the end of the text.

    JSON Schema patterns are ECMA-262 regular expressions, where ``$`` (without the multiline
    flag) matches only at the end of the input; Python's ``$`` also matches before a final newline,
    so ``^[a-z]+$`` would accept ``"lake\\n"`` as a catalog name, and the newline would reach SQL
    and file names. Every ``$`` outside a character class becomes ``\\Z``.
    """
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


# -- keywords --------------------------------------------------------------------------------------


def _ref(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    target, target_base = store.resolve(str(argument), base)
    return check(store, value, target, target_base)


def _properties(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    if not isinstance(value, dict):
        return True
    return _all(check(store, value[k], sub, base) for k, sub in argument.items() if k in value)


def _additional(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    if not isinstance(value, dict):
        return True
    if "patternProperties" in schema:
        return None
    known = schema.get("properties", {})
    extras = [k for k in value if k not in known]
    if isinstance(argument, dict):
        return _all(check(store, value[k], argument, base) for k in extras)
    if argument is True or argument is False:
        return argument or not extras
    return None


def _required(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    return not isinstance(value, dict) or all(name in value for name in argument)


def _property_names(
    store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str
) -> Verdict:
    if not isinstance(value, dict):
        return True
    return _all(check(store, name, argument, base) for name in value)


def _dependent_required(
    store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str
) -> Verdict:
    if not isinstance(value, dict):
        return True
    return all(each in value for name, needed in argument.items() if name in value for each in needed)


def _items(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    if not isinstance(value, list):
        return True
    if "prefixItems" in schema:
        return None
    return _all(check(store, item, argument, base) for item in value)


def _sized(fits: Callable[[int, Any], bool], json_kind: str) -> Rule:
    def rule(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
        if kind(value) != json_kind:
            return True
        if kind(argument) not in ("integer", "number"):
            return None
        return fits(len(value), argument)

    return rule


def _bound(fits: Callable[[Any, Any], bool]) -> Rule:
    def rule(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
        if not _number(value):
            return True
        if not _number(argument):
            return None
        return bool(fits(value, argument))

    return rule


def _pattern(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    if not isinstance(value, str):
        return True
    return ecma_pattern(str(argument)).search(value) is not None


def _const(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    return equal(value, argument)


def _enum(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    results = [equal(value, each) for each in argument]
    if True in results:
        return True
    return None if None in results else False


def _all_of(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    return _all(check(store, value, sub, base) for sub in argument)


def _any_of(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    results = [check(store, value, sub, base) for sub in argument]
    if True in results:
        return True
    return None if None in results else False


def _one_of(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    results = [check(store, value, sub, base) for sub in argument]
    if results.count(True) > 1:
        return False
    if None in results:
        return None
    return results.count(True) == 1


def _not(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    result = check(store, value, argument, base)
    return None if result is None else not result


def _if(store: Resolver, value: Any, argument: Any, schema: Mapping[str, Any], base: str) -> Verdict:
    condition = check(store, value, argument, base)
    if condition is None:
        return None
    branch = "then" if condition else "else"
    return check(store, value, schema[branch], base) if branch in schema else True


RULES: dict[str, Rule] = {
    "$ref": _ref,
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "propertyNames": _property_names,
    "dependentRequired": _dependent_required,
    "minProperties": _sized(lambda size, limit: size >= limit, "object"),
    "maxProperties": _sized(lambda size, limit: size <= limit, "object"),
    "items": _items,
    "minItems": _sized(lambda size, limit: size >= limit, "array"),
    "maxItems": _sized(lambda size, limit: size <= limit, "array"),
    "minLength": _sized(lambda size, limit: size >= limit, "string"),
    "maxLength": _sized(lambda size, limit: size <= limit, "string"),
    "pattern": _pattern,
    "minimum": _bound(lambda value, limit: value >= limit),
    "maximum": _bound(lambda value, limit: value <= limit),
    "exclusiveMinimum": _bound(lambda value, limit: value > limit),
    "exclusiveMaximum": _bound(lambda value, limit: value < limit),
    "const": _const,
    "enum": _enum,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "if": _if,
}
"""The keywords :func:`check` implements, each as jsonschema's Draft 2020-12 does."""
