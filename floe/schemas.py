"""The JSON Schema files under ``floe/jsonschema``: loading, resolving, and deriving from them.

The schema files are the single source of truth for every manifest. From them floe derives the
typed strictyaml schema that parses a file (:func:`strictyaml_schema`), and the same typing rules
applied to an untyped tree (:func:`apply_types`) when a file has errors and floe must still collect
all of them. jsonschema then validates the typed data.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import urldefrag, urljoin

import strictyaml as sy
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from strictyaml import constants as sy_constants
from strictyaml import utils as sy_utils

SCHEMA_BASE = "https://floe.dev/schemas/v1/"
KIND_SCHEMAS = {"Manifest": "manifest.schema.json", "DataProduct": "dataproduct.schema.json"}

Schema = Mapping[str, Any]


@functools.cache
def schema_file(relative: str) -> dict[str, Any]:
    """A schema file shipped in ``floe/jsonschema`` (``engines/duckdb.schema.json``…)."""
    text = resources.files("floe.jsonschema").joinpath(relative).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class SchemaStore:
    """All schemas known by URI: floe's own files plus the engines' config schemas."""

    def __init__(self) -> None:
        self._by_uri: dict[str, Schema] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        self._typed: dict[str, tuple[sy.Validator, bool]] = {}
        self._untyped_nodes = 0
        for name in ("definitions.schema.json", *KIND_SCHEMAS.values()):
            self.add(schema_file(name))

    def add(self, schema: Schema, uri: str | None = None) -> str:
        """Register ``schema`` under its ``$id`` (or ``uri``) and return that URI."""
        key = str(schema.get("$id") or uri)
        self._by_uri[key] = schema
        self._validators.clear()
        self._typed.clear()
        return key

    def validator(self, uri: str) -> Draft202012Validator:
        """A jsonschema validator for the schema at ``uri``; ``$ref`` resolves within the store."""
        validator = self._validators.get(uri)
        if validator is None:
            registry: Registry[Any] = Registry().with_resources(
                (u, Resource.from_contents(s, default_specification=DRAFT202012))
                for u, s in self._by_uri.items()
            )
            validator = Draft202012Validator(self._by_uri[uri], registry=registry)
            self._validators[uri] = validator
        return validator

    def get(self, uri: str) -> Schema:
        return self._by_uri[uri]


    def resolve(self, ref: str, base: str) -> tuple[Schema, str]:
        """The schema a ``$ref`` points at, and the base URI to resolve further refs against."""
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

    # -- strictyaml -----------------------------------------------------------------------------

    def typed_schema(self, uri: str) -> tuple[sy.Validator, bool]:
        """The strictyaml validator for the schema at ``uri``, and whether its result must still
        go through :meth:`apply_types` (where strictyaml cannot express a node, see below)."""
        cached = self._typed.get(uri)
        if cached is None:
            before = self._untyped_nodes
            validator = self.strictyaml_schema(self._by_uri[uri], uri)
            cached = (validator, self._untyped_nodes != before)
            self._typed[uri] = cached
        return cached

    def strictyaml_schema(self, schema: Schema, base: str) -> sy.Validator:
        """The strictyaml validator that types a YAML node the way ``schema`` describes it.

        Every mapping key is optional: strictyaml decides types and rejects unknown keys, and
        jsonschema then checks required keys and every other constraint.
        """
        schema, base = self.deref(schema, base)
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if alternatives:
            # Alternatives are tried in order: mappings and sequences before scalars, the same order
            # apply_types uses.
            ordered = sorted(alternatives, key=lambda a: 0 if self._is_compound(a, base) else 1)
            kinds = [_schema_type(self.deref(alt, base)[0]) for alt in ordered]
            if kinds.count("object") > 1 or kinds.count("array") > 1:
                # strictyaml cannot combine two mappings (or two lists) with `|`: leave the node
                # untyped here and let apply_types type it after parsing.
                self._untyped_nodes += 1
                return sy.Any()
            validators = [self.strictyaml_schema(alt, base) for alt in ordered]
            return functools.reduce(lambda a, b: a | b, validators)
        kind = _schema_type(schema)
        if kind == "object":
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            extra_validator = (
                self.strictyaml_schema(extra, base) if isinstance(extra, Mapping) else sy.Any()
            )
            if properties:
                fields = {
                    sy.Optional(key): self.strictyaml_schema(sub, base) for key, sub in properties.items()
                }
                if extra is False:
                    return sy.Map(fields) | sy.EmptyDict()
                return sy.MapCombined(fields, sy.Str(), extra_validator) | sy.EmptyDict()
            return sy.MapPattern(sy.Str(), extra_validator) | sy.EmptyDict()
        if kind == "array":
            return sy.Seq(self.strictyaml_schema(schema.get("items", {}), base)) | sy.EmptyList()
        return _SCALARS.get(kind, sy.Any)()

    # -- the same typing, applied to an untyped tree --------------------------------------------

    def apply_types(self, value: Any, schema: Schema, base: str) -> Any:
        """Type an untyped tree (strings, dicts, lists) by the rules of :meth:`strictyaml_schema`.

        Used to collect every error of a file: a scalar that does not fit its type stays a string
        and jsonschema reports it. Differential tests check this agrees with strictyaml.
        """
        schema, base = self.deref(schema, base)
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if alternatives:
            for alt in sorted(alternatives, key=lambda a: 0 if self._is_compound(a, base) else 1):
                typed = self.apply_types(value, alt, base)
                if _fits(typed, self.deref(alt, base)[0]):
                    return typed
            return value
        kind = _schema_type(schema)
        if value == "" and kind in ("object", "array"):  # strictyaml's EmptyDict / EmptyList
            return {} if kind == "object" else []
        if kind == "object" and isinstance(value, dict):
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            extra_schema = extra if isinstance(extra, Mapping) else {}
            return {
                k: self.apply_types(v, properties.get(k, extra_schema), base) for k, v in value.items()
            }
        if kind == "array" and isinstance(value, list):
            items = schema.get("items", {})
            return [self.apply_types(v, items, base) for v in value]
        if isinstance(value, str) and kind in _SCALAR_TYPERS:
            return _SCALAR_TYPERS[kind](value)
        return value

    def _is_compound(self, schema: Schema, base: str) -> bool:
        return _schema_type(self.deref(schema, base)[0]) in ("object", "array")


def _schema_type(schema: Schema) -> str | None:
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
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "string"


def _fits(value: Any, schema: Schema) -> bool:
    kind = _schema_type(schema)
    if kind is None:
        return True
    actual = _json_type(value)
    return actual == kind or (kind == "number" and actual == "integer")


def _to_int(text: str) -> int | str:
    # strictyaml's pattern admits degenerate numerals ("_", "-_") that int() refuses: those stay
    # text, and jsonschema reports them as not an integer.
    try:
        return int(text.replace("_", "")) if sy_utils.is_integer(text) else text
    except ValueError:
        return text


def _to_float(text: str) -> float | str:
    try:
        if sy_utils.is_infinity(text) or sy_utils.is_not_a_number(text):
            return float(text.replace(".", ""))
        return float(text.replace("_", "")) if sy_utils.is_decimal(text) else text
    except ValueError:
        return text


def _to_bool(text: str) -> bool | str:
    lowered = text.lower()
    if lowered not in sy_constants.BOOL_VALUES:
        return text
    return lowered in sy_constants.TRUE_VALUES


_SCALARS: dict[str | None, Callable[[], sy.Validator]] = {
    "string": sy.Str, "integer": sy.Int, "number": sy.Float, "boolean": sy.Bool,
}  # fmt: skip
_SCALAR_TYPERS: dict[str, Callable[[str], Any]] = {
    "integer": _to_int, "number": _to_float, "boolean": _to_bool,
}  # fmt: skip


@functools.cache
def store() -> SchemaStore:
    """The process-wide schema store (engines add their config schemas to it)."""
    return SchemaStore()
