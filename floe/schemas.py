"""The JSON Schema files under ``floe/jsonschema``: loading, resolving, and deriving from them.

The schema files are the single source of truth for every manifest. From them floe types the
untyped tree of a parsed file (:meth:`SchemaStore.apply_types`, by strictyaml's rules: the tests
derive strictyaml schemas from the same files and check the two agree) and validates the typed data
with jsonschema.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin

from floe import fastschema
from floe.fastschema import ecma_pattern

if TYPE_CHECKING:  # jsonschema is imported only for data that fastschema does not find valid
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_BASE = "https://floe.dev/schemas/v1/"
KIND_SCHEMAS = {"Manifest": "manifest.schema.json", "DataProduct": "dataproduct.schema.json"}

Schema = Mapping[str, Any]


@functools.cache
def schema_file(relative: str) -> dict[str, Any]:
    """A schema file shipped in ``floe/jsonschema`` (``engines/duckdb.schema.json``…)."""
    shipped = Path(__file__).with_name("jsonschema") / relative
    if shipped.is_file():  # floe installed as files: no importlib.resources (tempfile, zipfile) at start-up
        text = shipped.read_text(encoding="utf-8")
    else:
        from importlib import resources

        text = resources.files("floe.jsonschema").joinpath(relative).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class BrokenSchema(Exception):
    """A schema in the store is not a valid JSON Schema (an engine's, since floe's own are tested):
    what it breaks is found when data is first checked against it, so that the check of every
    schema (tens of milliseconds each) is not paid on every start."""

    def __init__(self, uri: str, detail: str) -> None:
        super().__init__(f"{uri}: {detail}")
        self.uri = uri
        self.detail = detail


class SchemaStore:
    """All schemas known by URI: floe's own files plus the engines' config schemas."""

    def __init__(self) -> None:
        self._by_uri: dict[str, Schema] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        self._resolved: dict[tuple[str, str], tuple[Schema, str]] = {}
        for name in ("definitions.schema.json", *KIND_SCHEMAS.values()):
            self.add(schema_file(name))

    def add(self, schema: Schema, uri: str | None = None) -> str:
        """Register ``schema`` under its ``$id`` (or ``uri``) and return that URI."""
        key = str(schema.get("$id") or uri)
        if self._by_uri.get(key) != schema:  # engines re-add theirs on every compile
            self._by_uri[key] = schema
            self._validators.clear()
            self._resolved.clear()
        return key

    def errors(self, uri: str, data: Any) -> Iterable[ValidationError]:
        """Every error of ``data`` under the schema at ``uri``, as jsonschema reports them; none,
        without importing jsonschema, for data :func:`floe.fastschema.check` finds valid."""
        if fastschema.check(self, data, self._by_uri[uri], uri) is True:
            return ()
        from jsonschema.exceptions import SchemaError, UnknownType
        from referencing.exceptions import Unresolvable

        try:
            return list(self.validator(uri).iter_errors(data))
        except UnknownType as exc:
            raise BrokenSchema(
                uri,
                f"it names a type JSON Schema does not have, {exc.type!r} "
                "(the types are string, integer, number, boolean, object, array, null)",
            ) from None
        except (SchemaError, Unresolvable, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrokenSchema(uri, f"it is not a valid JSON Schema ({first})") from None

    def validator(self, uri: str) -> Draft202012Validator:
        """A jsonschema validator for the schema at ``uri``; ``$ref`` resolves within the store."""
        validator = self._validators.get(uri)
        if validator is None:
            from referencing import Registry, Resource
            from referencing.jsonschema import DRAFT202012

            registry: Registry[Any] = Registry().with_resources(
                (u, Resource.from_contents(s, default_specification=DRAFT202012))
                for u, s in self._by_uri.items()
            )
            validator = validator_class()(self._by_uri[uri], registry=registry)
            self._validators[uri] = validator
        return validator

    def get(self, uri: str) -> Schema:
        return self._by_uri[uri]

    def resolve(self, ref: str, base: str) -> tuple[Schema, str]:
        """The schema a ``$ref`` points at, and the base URI to resolve further refs against."""
        found = self._resolved.get((ref, base))
        if found is None:
            found = self._resolved[(ref, base)] = self._resolve(ref, base)
        return found

    def _resolve(self, ref: str, base: str) -> tuple[Schema, str]:
        absolute = urljoin(base, ref)
        document_uri, fragment = urldefrag(absolute)
        node: Any = self._by_uri[document_uri or base]
        for part in (p for p in fragment.split("/") if p):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, document_uri or base

    def deref(self, schema: Schema, base: str) -> tuple[Schema, str]:
        """Follow ``$ref`` chains to a concrete schema."""
        while "$ref" in schema:
            schema, base = self.resolve(schema["$ref"], base)
        return schema, base

    # -- where a misplaced key belongs -----------------------------------------------------------

    def subschema_at(self, uri: str, path: tuple[str | int, ...]) -> tuple[Schema, str] | None:
        """The schema of the value at ``path`` of a document under the schema at ``uri``; among
        alternatives (``oneOf``/``anyOf``), the first shaped like the path's next step."""
        schema, base = self.deref(self.get(uri), uri)
        for part in path:
            schema, base = self._shaped(schema, base, "array" if isinstance(part, int) else "object")
            if isinstance(part, int):
                child = schema.get("items")
            else:
                child = schema.get("properties", {}).get(part)
                if child is None and isinstance(schema.get("additionalProperties"), Mapping):
                    child = schema["additionalProperties"]
            if not isinstance(child, Mapping):
                return None
            schema, base = self.deref(child, base)
        return self._shaped(schema, base, "object")

    def _shaped(self, schema: Schema, base: str, kind: str) -> tuple[Schema, str]:
        for alternative in schema.get("oneOf") or schema.get("anyOf") or ():
            candidate, where = self.deref(alternative, base)
            if schema_type(candidate) == kind:
                return candidate, where
        return schema, base

    def where_key_belongs(
        self, uri: str, path: tuple[str | int, ...], key: str
    ) -> tuple[str | int, ...] | None:
        """Where ``key``, unknown in the mapping at ``path``, is known: under one of that mapping's
        keys (``plugins: {default: x}`` → ``plugins.compute.default``) or in the mapping that holds
        it (``approved: [{name: a, default: a}]`` → ``….compute.default``). ``None`` if nowhere near."""
        found = self.subschema_at(uri, path)
        if found is None:
            return None
        schema, base = found
        for name, child in schema.get("properties", {}).items():
            sub, _ = self._shaped(*self.deref(child, base), "object")
            if key in sub.get("properties", {}):
                return (*path, name, key)
        parent = (
            path[:-2] if path and isinstance(path[-1], int) else path[:-1]
        )  # a list item: the list's holder
        if path:
            above = self.subschema_at(uri, parent)
            if above is not None and key in above[0].get("properties", {}):
                return (*parent, key)
        return None

    # -- the same typing, applied to an untyped tree --------------------------------------------

    def apply_types(self, value: Any, schema: Schema, base: str) -> Any:
        """Type an untyped tree (strings, dicts, lists) by the rules of the strictyaml schema the tests derive from the same schema.

        Used to collect every error of a file: a scalar that does not fit its type stays a string
        and jsonschema reports it. Differential tests check this agrees with strictyaml.
        """
        schema, base = self.deref(schema, base)
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if alternatives:
            for alt in sorted(alternatives, key=lambda a: 0 if self.is_compound(a, base) else 1):
                typed = self.apply_types(value, alt, base)
                if _fits(typed, self.deref(alt, base)[0]):
                    return typed
            return value
        kind = schema_type(schema)
        if value == "" and kind in ("object", "array"):  # strictyaml's EmptyDict / EmptyList
            return {} if kind == "object" else []
        if kind == "object" and isinstance(value, dict):
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            extra_schema = extra if isinstance(extra, Mapping) else {}
            return {k: self.apply_types(v, properties.get(k, extra_schema), base) for k, v in value.items()}
        if kind == "array" and isinstance(value, list):
            items = schema.get("items", {})
            return [self.apply_types(v, items, base) for v in value]
        if isinstance(value, str) and kind in _SCALAR_TYPERS:
            return _SCALAR_TYPERS[kind](value)
        return value

    def is_compound(self, schema: Schema, base: str) -> bool:
        return schema_type(self.deref(schema, base)[0]) in ("object", "array")


def schema_type(schema: Schema) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        return "string" if "string" in kind else (kind[0] if kind else None)
    if kind is None and "const" in schema:
        return _json_type(schema["const"])
    if kind is None and "enum" in schema:
        kinds = {_json_type(v) for v in schema["enum"]}
        return kinds.pop() if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def _json_type(value: Any) -> str:
    """The JSON type typing treats ``value`` as: strictyaml has no null, and text is a string."""
    return "string" if value is None else fastschema.kind(value) or "string"


def _fits(value: Any, schema: Schema) -> bool:
    kind = schema_type(schema)
    if kind is None:
        return True
    actual = _json_type(value)
    return actual == kind or (kind == "number" and actual == "integer")


# strictyaml 1.7's scalar grammar (its ``utils`` and ``constants``), restated here so that typing a
# manifest does not import strictyaml; tests/test_typing_differential.py checks they agree. Like
# strictyaml's, the patterns use ``$``, which also matches before a final newline.
_INTEGER = re.compile(r"[-+]?[0-9_]+$")
_DECIMAL = re.compile(r"[-+]?[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9_]+)?$")
_INFINITY = re.compile(r"[-+]?\.?(?:inf|Inf|INF)$")
_NOT_A_NUMBER = re.compile(r"\.?(?:nan|NaN|NAN)$")
_TRUE = frozenset(("yes", "true", "on", "1", "y"))
_BOOLEANS = _TRUE | frozenset(("no", "false", "off", "0", "n"))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Schema) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def validator_class() -> type[Draft202012Validator]:
    """Draft 2020-12 with ECMA-262's ``$`` in ``pattern`` (also used by ``propertyNames``)."""
    from jsonschema import Draft202012Validator, validators

    extended: type[Draft202012Validator] = validators.extend(Draft202012Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]
    return extended


def _to_int(text: str) -> int | str:
    # strictyaml's pattern admits degenerate numerals ("_", "-_") that int() refuses: those stay
    # text, and jsonschema reports them as not an integer.
    try:
        return int(text.replace("_", "")) if _INTEGER.match(text) else text
    except ValueError:
        return text


def _to_float(text: str) -> float | str:
    try:
        if _INFINITY.match(text) or _NOT_A_NUMBER.match(text):
            return float(text.replace(".", ""))
        return float(text.replace("_", "")) if _DECIMAL.match(text) else text
    except ValueError:
        return text


def _to_bool(text: str) -> bool | str:
    lowered = text.lower()
    if lowered not in _BOOLEANS:
        return text
    return lowered in _TRUE


_SCALAR_TYPERS: dict[str, Callable[[str], Any]] = {
    "integer": _to_int,
    "number": _to_float,
    "boolean": _to_bool,
}


@functools.cache
def store() -> SchemaStore:
    """The process-wide schema store (engines add their config schemas to it)."""
    return SchemaStore()
