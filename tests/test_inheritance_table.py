"""The one table of how each manifest field is inherited: complete against the schemas, and the
README shows exactly it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from floe.diagnostics import JsonPath
from floe.inheritance import FIELDS, MANIFEST, PRODUCT, Rule, fields_with, markdown_table, rule_for
from floe.schemas import KIND_SCHEMAS, SCHEMA_BASE, SchemaStore

ROOT = Path(__file__).resolve().parents[1]
LEAVES = ("config", "overrides", "resources", "metadata", "token", "client_secret")
"""Fields whose inside is not inherited field by field here (engine settings, quantities, a name)."""


def schema_fields(store: SchemaStore, uri: str, path: JsonPath = ()) -> Iterator[JsonPath]:
    """Every field a file of the schema at ``uri`` may write, lists as index 0, down to LEAVES."""
    found = store.subschema_at(uri, path)
    if found is None:
        return
    schema, base = found
    for name in schema.get("properties", {}):
        child = (*path, name)
        yield child
        if name in LEAVES and path != ("plugins", "compute", "approved", 0):
            continue
        sub, _ = store.deref(schema["properties"][name], base)
        if sub.get("type") == "array" or "items" in sub:
            yield from schema_fields(store, uri, (*child, 0))
        else:
            yield from schema_fields(store, uri, child)


@pytest.mark.parametrize("kind", [MANIFEST, PRODUCT])
def test_every_field_of_the_schemas_has_a_rule(kind: str) -> None:
    store = SchemaStore()
    uri = SCHEMA_BASE + KIND_SCHEMAS[kind]
    fields = list(schema_fields(store, uri))
    assert ("plugins", "compute", "approved", 0, "resources", "limits") in fields
    containers = {path[:end] for path in fields for end in range(len(path))}
    for path in (p for p in fields if p not in containers):  # plugins, plugins.compute…: structure only
        row = rule_for(path)
        assert row is not None, f"{kind}: {path} has no inheritance rule"
        assert kind in row.kinds, f"{path}: the table says {row.field} is not written in a {kind}"


def test_every_row_names_a_field_of_the_schemas() -> None:
    store = SchemaStore()
    for row in FIELDS:
        path: JsonPath = tuple(0 if part == "[]" else part for part in row.parts)
        for kind in row.kinds:
            assert store.subschema_at(SCHEMA_BASE + KIND_SCHEMAS[kind], path) is not None, (row.field, kind)


def test_the_checks_take_their_fields_from_the_table() -> None:
    assert [row.field for row in fields_with(Rule.LOWER_ONLY, "plugins.compute.approved[].resources")] == [
        "plugins.compute.approved[].resources.requests",
        "plugins.compute.approved[].resources.limits",
    ]
    catalog = {row.field.removeprefix("catalog.") for row in fields_with(Rule.FIXED_BY_DECLARER, "catalog")}
    store = SchemaStore()
    declared = store.subschema_at(SCHEMA_BASE + KIND_SCHEMAS[MANIFEST], ("catalog",))
    assert declared is not None and catalog == set(declared[0]["properties"])


def test_the_readme_shows_the_table() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text(encoding="utf-8")
