"""floe.fastschema against jsonschema, the reference: every ``True`` or ``False`` it answers must be
jsonschema's answer (``None`` hands the question to jsonschema, so it is always safe).

Three sources of schemas and data, all property-tested with hypothesis:

- generated schemas over every keyword fastschema implements (and some it does not), with
  generated JSON values;
- floe's manifest and data product schemas, with the example manifests mutated;
- every built-in engine's config schema, with generated configs.

And the point of it: valid manifests are found valid without asking jsonschema, so an ordinary
compile does not import it (tests/test_cli.py checks that on the real CLI).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floe import fastschema
from floe.documents import read_document
from floe.plugins import EngineRegistry
from floe.schemas import KIND_SCHEMAS, SCHEMA_BASE, SchemaStore, store, validator_class

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").rglob("*.yaml")
    if p.name not in ("dbt_project.yml", "profiles.yml") and "models" not in p.parts
)
BASE = "https://floe.dev/schemas/v1/generated.schema.json"
KEYS = ("a", "b", "c")
CASES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(schema: Any, value: Any) -> bool:
    """jsonschema's verdict, with floe's ECMA-262 ``pattern`` (the validator floe reports with)."""
    return bool(validator_class()(schema).is_valid(value))


def agrees(verdict: bool | None, schema: Any, value: Any) -> None:
    if verdict is not None:
        assert verdict == reference(schema, value), (schema, value, verdict)


# -- generated schemas -----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 2.5, -1.5, math.inf]),
    st.sampled_from(["", "a", "ab", "b", "1", "a\n", "abc$", "Z9"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
sizes = st.integers(0, 3)
numbers = st.one_of(st.integers(-2, 2), st.sampled_from([0.5, 1.0, -1.5]))
TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]


def keyword_schemas(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    keyword = st.one_of(
        st.tuples(
            st.just("type"),
            st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), min_size=1, max_size=2)),
        ),
        st.tuples(st.just("const"), values),
        st.tuples(st.just("enum"), st.lists(values, min_size=1, max_size=3)),
        st.tuples(
            st.sampled_from(
                ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"]
            ),
            sizes,
        ),
        st.tuples(st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]), numbers),
        st.tuples(st.just("pattern"), st.sampled_from(["^a", "a$", "^[a-z]+$", "\\d", "^$", "b"])),
        st.tuples(st.just("required"), st.lists(st.sampled_from(KEYS), unique=True, max_size=2)),
        st.tuples(
            st.just("dependentRequired"),
            st.dictionaries(
                st.sampled_from(KEYS), st.lists(st.sampled_from(KEYS), unique=True, max_size=2), max_size=2
            ),
        ),
        st.tuples(st.just("properties"), st.dictionaries(st.sampled_from(KEYS), children, max_size=2)),
        st.tuples(st.just("additionalProperties"), st.one_of(st.booleans(), children)),
        st.tuples(st.just("propertyNames"), children),
        st.tuples(st.just("items"), st.one_of(st.booleans(), children)),
        st.tuples(st.sampled_from(["allOf", "anyOf", "oneOf"]), st.lists(children, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["not", "if", "then", "else"]), children),
        st.tuples(st.sampled_from(["description", "title", "$comment", "format", "default"]), st.just("x")),
        # keywords fastschema leaves to jsonschema
        st.tuples(st.sampled_from(["uniqueItems", "x-floe-extension"]), st.booleans()),
        st.tuples(
            st.just("patternProperties"), st.dictionaries(st.sampled_from(["^a", "b"]), children, max_size=1)
        ),
        st.tuples(st.just("prefixItems"), st.lists(children, min_size=1, max_size=2)),
    )
    return st.lists(keyword, max_size=4).map(dict)


schemas = st.recursive(st.one_of(st.booleans(), st.just({})), keyword_schemas, max_leaves=6)


@CASES
@given(schema=schemas, value=values)
def test_generated_schemas_agree_with_jsonschema(schema: Any, value: Any) -> None:
    agrees(fastschema.check(SchemaStore(), value, schema, BASE), schema, value)


@given(value=values)
@settings(max_examples=200, deadline=None)
def test_json_equality_is_jsonschemas(value: Any) -> None:
    """``const`` and ``enum`` compare as JSON does: ``True`` is not ``1``, ``1`` is ``1.0``."""
    for other in (value, copy.deepcopy(value), True, 1, 1.0, 0, False, None, [value], {"a": value}):
        agrees(fastschema.equal(value, other), {"const": other}, value)


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"type": "integer"}, 2.0, True),  # a float with no fraction is an integer in JSON Schema
        ({"type": "integer"}, True, False),  # a boolean is not
        ({"const": 1}, True, False),
        ({"enum": [1, 2]}, 2.0, True),
        ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 3, False),  # valid under both
        ({"pattern": "^[a-z]+$"}, "lake\n", False),  # ECMA-262's `$`: the end of the text
        ({"if": {"type": "string"}, "then": {"minLength": 2}}, "a", False),
        ({"then": {"minLength": 2}}, "a", True),  # `then` without `if` is ignored
        ({"uniqueItems": True}, [1, 1], None),  # not implemented: jsonschema decides
        ({"type": "string", "x-extension": 1}, 5, False),  # an unknown keyword does not hide a failure
        ({"type": "string"}, (1, 2), None),  # not a JSON value
    ],
)
def test_edges(schema: dict[str, Any], value: Any, expected: bool | None) -> None:
    verdict = fastschema.check(SchemaStore(), value, schema, BASE)
    assert verdict == expected
    agrees(verdict, schema, value)


# -- floe's own schemas ----------------------------------------------------------------------------


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    the_store = store()
    out = []
    for path in EXAMPLES:
        doc = read_document(path, the_store)
        out.append((SCHEMA_BASE + KIND_SCHEMAS[doc.kind], doc.data))
    return out


DOCUMENTS = example_documents()


def test_the_examples_are_found_valid_without_jsonschema() -> None:
    assert len(DOCUMENTS) >= 5
    the_store = store()
    for uri, data in DOCUMENTS:
        assert fastschema.check(the_store, data, the_store.get(uri), uri) is True, uri
        assert the_store.validator(uri).is_valid(data)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[str, Any]:
    uri, data = draw(st.sampled_from(DOCUMENTS))
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        if not path:
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(
                st.one_of(values, st.sampled_from(["duckdb", "spark", "prod", "x" * 300]))
            )
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "name", "default", "engine", "config"]))] = draw(values)
        else:
            parent.append(draw(values))
    return uri, data


@CASES
@given(document=mutated_documents())
def test_mutated_manifests_agree_with_jsonschema(document: tuple[str, Any]) -> None:
    uri, data = document
    the_store = store()
    verdict = fastschema.check(the_store, data, the_store.get(uri), uri)
    if verdict is not None:
        assert verdict == the_store.validator(uri).is_valid(data), data


# -- the engines' config schemas -------------------------------------------------------------------

ENGINES = EngineRegistry.discover()
ENGINE_URIS = {name: engine.schema_uri(store()) for name, engine in sorted(ENGINES.engines.items())}


PLAUSIBLE = st.sampled_from(
    [
        "localhost",
        "oauth",
        "token",
        "password",
        "service-account",
        "ldap",
        "jwt",
        "iam",
        "abc.def",
        "https://x.example",
        "analytics",
        "/tmp/x.duckdb",
        "",
    ]
)


def from_schema(schema: Any, base: str, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by ``schema`` (its properties, types, enums, bounds), often valid, never always."""
    the_store = store()
    if not isinstance(schema, dict) or depth > 4:
        return values
    schema, base = the_store.deref(schema, base)
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            return st.one_of(*(from_schema(alt, base, depth + 1) for alt in schema[keyword]))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = [k for k in schema.get("required", []) if k in properties]
        optional = [k for k in properties if k not in required]
        return st.tuples(
            st.fixed_dictionaries({k: from_schema(properties[k], base, depth + 1) for k in required}),
            st.dictionaries(st.sampled_from(optional), values, max_size=3) if optional else st.just({}),
            st.lists(st.sampled_from(optional), unique=True, max_size=3).flatmap(
                lambda keys: st.fixed_dictionaries(
                    {k: from_schema(properties[k], base, depth + 1) for k in keys}
                )
            )
            if optional
            else st.just({}),
        ).map(
            lambda parts: {**parts[0], **parts[2]} if parts[1] == {} else {**parts[0], **parts[1], **parts[2]}
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), base, depth + 1), max_size=3)
    if kind == "integer":
        return st.integers(int(schema.get("minimum", -5)) - 1, int(schema.get("maximum", 70000)) + 1)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return PLAUSIBLE
    return values


@st.composite
def engine_configs(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(ENGINE_URIS)))
    uri = ENGINE_URIS[name]
    config = draw(from_schema(store().get(uri), uri))
    if isinstance(config, dict) and config and draw(st.booleans()):  # now and then, break it
        key = draw(st.sampled_from(sorted(config)))
        if draw(st.booleans()):
            del config[key]
        else:
            config[key] = draw(st.one_of(values, PLAUSIBLE))
    return name, config


@CASES
@given(config=engine_configs())
def test_engine_configs_agree_with_jsonschema(config: tuple[str, Any]) -> None:
    name, data = config
    the_store, uri = store(), ENGINE_URIS[name]
    verdict = fastschema.check(the_store, data, the_store.get(uri), uri)
    if verdict is not None:
        assert verdict == the_store.validator(uri).is_valid(data), (name, data)
