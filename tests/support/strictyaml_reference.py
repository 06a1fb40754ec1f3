"""strictyaml schemas derived from floe's JSON Schemas: the reference floe's typing is checked against.

floe types a parsed manifest with :meth:`floe.schemas.SchemaStore.apply_types`. strictyaml stays the
reference for what a manifest means, so the differential tests derive the typed strictyaml schema
from the same JSON Schema, parse the text with it, and compare.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import strictyaml as sy

from floe.schemas import Schema, SchemaStore, schema_type

_SCALARS = {"string": sy.Str, "integer": sy.Int, "number": sy.Float, "boolean": sy.Bool}


@functools.cache
def typed_schema(store: SchemaStore, uri: str) -> tuple[sy.Validator, bool]:
    """The strictyaml validator for the schema at ``uri``, and whether its result must still go
    through ``apply_types`` (nodes strictyaml cannot express: two mapping or two list alternatives)."""
    untyped: list[int] = []
    validator = strictyaml_schema(store, store.get(uri), uri, untyped)
    return validator, bool(untyped)


def strictyaml_schema(
    store: SchemaStore, schema: Schema, base: str, untyped: list[int] | None = None
) -> sy.Validator:
    """The strictyaml validator that types a YAML node the way ``schema`` describes it.

    Every mapping key is optional: strictyaml decides types and rejects unknown keys; jsonschema
    checks required keys and every other constraint. Nodes left untyped are counted in ``untyped``.
    """
    schema, base = store.deref(schema, base)
    untyped = [] if untyped is None else untyped

    def derive(sub: Schema) -> sy.Validator:
        return strictyaml_schema(store, sub, base, untyped)

    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        # mappings and sequences before scalars: the order apply_types tries them in
        ordered = sorted(alternatives, key=lambda a: 0 if store.is_compound(a, base) else 1)
        kinds = [schema_type(store.deref(alt, base)[0]) for alt in ordered]
        if kinds.count("object") > 1 or kinds.count("array") > 1:
            untyped.append(1)  # strictyaml cannot `|` two Map (or two Seq) validators
            return sy.Any()
        return functools.reduce(lambda a, b: a | b, [derive(alt) for alt in ordered])
    kind = schema_type(schema)
    if kind == "object":
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        extra_validator = derive(extra) if isinstance(extra, Mapping) else sy.Any()
        if properties:
            fields = {sy.Optional(key): derive(sub) for key, sub in properties.items()}
            if extra is False:
                return sy.Map(fields) | sy.EmptyDict()
            return sy.MapCombined(fields, sy.Str(), extra_validator) | sy.EmptyDict()
        return sy.MapPattern(sy.Str(), extra_validator) | sy.EmptyDict()
    if kind == "array":
        return sy.Seq(derive(schema.get("items", {}))) | sy.EmptyList()
    return _SCALARS.get(kind or "", sy.Any)()
