"""Differential tests: floe's fallback typing (``SchemaStore.apply_types``) against strictyaml's.

floe parses a file untyped and types the tree itself with :meth:`SchemaStore.apply_types`, so that
jsonschema can report every problem at once. strictyaml, parsing with the typed schema derived from
the same JSON Schema (``tests/support/strictyaml_reference.py``), is the reference. The two must
agree: whatever strictyaml accepts, apply_types types identically; whatever strictyaml refuses,
apply_types leaves in a form the JSON Schema rejects (it never quietly accepts it).

Hypothesis generates values shaped by floe's own schemas (and by test schemas with every scalar
type and with alternatives), renders them as YAML with varied spellings and styles, and parses the
text both ways.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import strictyaml as sy
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from strictyaml import utils as sy_utils

from floe.compiler import compile_path
from floe.errors import FloeError
from floe.schemas import KIND_SCHEMAS, SCHEMA_BASE, SchemaStore, schema_file
from tests.support.engines import SCHEMA as HOOKIMPL_ENGINE_SCHEMA
from tests.support.engines import registry_with
from tests.support.strictyaml_reference import strictyaml_schema, typed_schema

SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def budget(examples: int) -> settings:
    """Example counts keep the module well under a minute on two cores."""
    return settings(SETTINGS, max_examples=examples)


# -- the schemas under test --------------------------------------------------------------------------

TYPES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "enabled": {"type": "boolean"},
        "label": {"type": "string"},
        "port": {"$ref": "#/$defs/port"},
        "maybe_int": {"type": ["integer", "null"]},
        "int_or_text": {"type": ["integer", "string"]},
        "mode": {"enum": ["fast", "slow"]},
        "level": {"enum": [1, 2, 3]},
        "version": {"const": 1},
        "anything": {},
        "tags": {"type": "array", "items": {"type": "string"}},
        "sizes": {"type": "array", "items": {"type": "integer"}},
        "switches": {"type": "array", "items": {"type": "boolean"}},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
        "nested": {
            "type": "object",
            "properties": {
                "depth": {"type": "integer"},
                "weight": {"type": "number"},
                "on": {"type": "boolean"},
                "name": {"type": "string"},
            },
            "additionalProperties": {"type": "boolean"},
        },
        "open": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "int_or_bool": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
        "bool_or_number": {"oneOf": [{"type": "boolean"}, {"type": "number"}]},
        "text_or_int": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "entry": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                },
            ]
        },
        "numbers_or_int": {"anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "integer"}]},
    },
    "$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
}

# Alternatives of the same kind: strictyaml takes the first that types the whole node.
ALTERNATIVES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hosts": {
            "oneOf": [
                {"type": "array", "items": {"type": "integer"}},
                {"type": "array", "items": {"type": "string"}},
            ]
        },
        "target": {
            "anyOf": [
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"port": {"type": "integer"}, "tls": {"type": "boolean"}},
                },
                {"type": "object", "properties": {"port": {"type": "string"}}},
            ]
        },
    },
}

TEST_BASE = "https://floe.dev/schemas/v1/test/"


def make_store() -> tuple[SchemaStore, dict[str, str]]:
    store = SchemaStore()
    uris = {kind.lower(): SCHEMA_BASE + name for kind, name in KIND_SCHEMAS.items()}
    uris["duckdb-engine"] = store.add(schema_file("engines/duckdb.schema.json"))
    uris["hookimpl-engine"] = store.add(HOOKIMPL_ENGINE_SCHEMA, TEST_BASE + "engine.schema.json")
    uris["types"] = store.add(TYPES_SCHEMA, TEST_BASE + "x.schema.json")
    uris["alternatives"] = store.add(ALTERNATIVES_SCHEMA, TEST_BASE + "alternatives.schema.json")
    return store, uris


STORE, URIS = make_store()


# -- YAML trees and their rendering ------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    text: str
    quote: int = 0  # 0/1 plain when the text allows it, 2 single-quoted, 3 double-quoted


@dataclass(frozen=True)
class MapNode:
    items: tuple[tuple[str, Node], ...]
    flow: bool = False


@dataclass(frozen=True)
class SeqNode:
    items: tuple[Node, ...]
    flow: bool = False


Node = Leaf | MapNode | SeqNode

PLAIN = re.compile(r"^(?:[A-Za-z0-9_.+~]|-(?=[A-Za-z0-9_.+]))[A-Za-z0-9_.+~/-]*(?: [A-Za-z0-9_.+~/-]+)*$")


def scalar(leaf: Leaf, flow: bool) -> str:
    if leaf.text == "" and not flow and leaf.quote < 2:
        return ""  # `key:` with nothing after it
    if leaf.quote < 2 and PLAIN.match(leaf.text):
        return leaf.text
    if leaf.quote == 2 and "\n" not in leaf.text:
        return "'" + leaf.text.replace("'", "''") + "'"
    return json.dumps(leaf.text)


def flow_text(node: Node) -> str:
    if isinstance(node, Leaf):
        return scalar(node, flow=True)
    if isinstance(node, MapNode):
        return "{" + ", ".join(f"{k}: {flow_text(v)}" for k, v in node.items) + "}"
    return "[" + ", ".join(flow_text(v) for v in node.items) + "]"


def block_lines(node: MapNode | SeqNode, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    pairs: list[tuple[str, Node]] = (
        [(f"{k}:", v) for k, v in node.items] if isinstance(node, MapNode) else [("-", v) for v in node.items]
    )
    for head, value in pairs:
        if isinstance(value, Leaf):
            out.append(f"{pad}{head} {scalar(value, flow=False)}".rstrip())
        elif value.flow or not value.items:
            out.append(f"{pad}{head} {flow_text(value)}")
        elif head == "-":
            inner = block_lines(value, indent + 2)
            out.append(f"{pad}- {inner[0][indent + 2 :]}")
            out.extend(inner[1:])
        else:
            out.append(f"{pad}{head}")
            out.extend(block_lines(value, indent + 2))
    return out


def render(root: MapNode) -> str:
    if not root.items:
        return "{}\n"
    return "\n".join(block_lines(root, 0)) + "\n"


def untyped(node: Node) -> Any:
    """What strictyaml's ``Any()`` should parse the rendering of ``node`` to."""
    if isinstance(node, Leaf):
        return node.text
    if isinstance(node, MapNode):
        return {k: untyped(v) for k, v in node.items}
    return [untyped(v) for v in node.items]


# -- spellings ---------------------------------------------------------------------------------------

INTEGERS = ["0", "8", "-3", "+7", "8_000", "1_000_000", "007", "-0", "42", "1__0", "_1", "1_"]
NUMBERS = [
    "1.5",
    "-2.25",
    ".5",
    "5.",
    "1e3",
    "1E-3",
    "-1.5e+2",
    "1_000.5",
    "3",
    "0.0",
    "-0.0",
    "1e1_0",
    ".inf",
    "-.inf",
    "+.INF",
    "Inf",
    "-INF",
    "inf",
    "nan",
    ".NaN",
    "NAN",
]
BOOLEANS = [
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "on",
    "On",
    "off",
    "OFF",
    "y",
    "Y",
    "n",
    "N",
    "1",
    "0",
    "yEs",
    "oFf",
]
LOOKALIKES = [
    "no",
    "yes",
    "Norway",
    "0x1f",
    "0o17",
    "0b101",
    "1e3",
    "1.2.3",
    "12abc",
    "--1",
    "+-1",
    "1 000",
    "null",
    "~",
    "None",
    "maybe",
    "infinity",
    "-nan",
    "+nan",
    "nan.",
    "yes please",
    "1,000",
    "0x",
    "hello world",
    "a/b",
    "duckdb",
    "spark-large",
    "x",
    "Ⅻ",
    "٣",
    "3.",
    "-.5",
    "1e",
    "e",
    "true!",
]
# Numerals strictyaml's own patterns admit but Python cannot convert ("_" → int("")).
DEGENERATE = ["_", "__", "-_", "+_", "e5", "E3", "_e1", ".", "-", "+", "._", "-.", "+e1", ".e1", "_._"]


def degenerate(text: str) -> bool:
    """A numeral by strictyaml's patterns that Python cannot convert (see ``DEGENERATE``)."""
    if not (sy_utils.is_integer(text) or sy_utils.is_decimal(text)):
        return False
    try:
        float(text.replace("_", ""))
    except ValueError:
        return True
    return False


ordinary_text = st.one_of(
    st.sampled_from(INTEGERS + NUMBERS + BOOLEANS + LOOKALIKES),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(st.sampled_from("abcxyzAZ019_.-+/ :#'\"é"), min_size=1, max_size=8).filter(
        lambda t: not degenerate(t)
    ),
)


def spellings(kind: str | None, edge: bool) -> st.SearchStrategy[str]:
    """Texts for a scalar of JSON type ``kind``: mostly its own spellings, sometimes anything."""
    own = {
        "integer": st.one_of(
            st.sampled_from(INTEGERS),
            st.integers(-(10**9), 10**9).map(str),
            st.integers(0, 10**9).map(lambda i: f"{i:_}"),
        ),
        "number": st.one_of(
            st.sampled_from(NUMBERS + INTEGERS), st.floats(allow_nan=False, allow_infinity=False).map(repr)
        ),
        "boolean": st.sampled_from(BOOLEANS),
    }.get(kind or "", ordinary_text)
    choices = [own, own, own, ordinary_text]
    if edge:
        choices.append(st.sampled_from([*DEGENERATE, ""]))
    return st.one_of(*choices)


def kind_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        return kind[0] if kind else None
    if kind is None and ("const" in schema or "enum" in schema):
        value = schema["const"] if "const" in schema else schema["enum"][0]
        return {bool: "boolean", int: "integer", float: "number"}.get(type(value), "string")
    return kind if isinstance(kind, str) else None


EXTRA_KEYS = ["extra", "k-2", "x_3", "memory", "1", "yes"]
MAX_DEPTH = 5


@st.composite
def leaves(draw: st.DrawFn, kind: str | None, edge: bool) -> Leaf:
    return Leaf(draw(spellings(kind, edge)), draw(st.integers(0, 3)))


@st.composite
def free_nodes(draw: st.DrawFn, depth: int, edge: bool) -> Node:
    """A value a schema says nothing about (or a wrongly shaped one)."""
    shape = draw(st.integers(0, 5)) if depth < MAX_DEPTH else 0
    if shape == 4:
        keys = draw(st.lists(st.sampled_from(EXTRA_KEYS), max_size=2, unique=True))
        return MapNode(tuple((k, draw(free_nodes(depth + 1, edge))) for k in keys), draw(st.booleans()))
    if shape == 5:
        items = draw(st.lists(free_nodes(depth + 1, edge), max_size=2))
        return SeqNode(tuple(items), draw(st.booleans()))
    return draw(leaves(None, edge))


@st.composite
def nodes(draw: st.DrawFn, schema: Mapping[str, Any], base: str, depth: int = 0, edge: bool = False) -> Node:
    """A YAML tree shaped (mostly) like ``schema``."""
    schema, base = STORE.deref(schema, base)
    if depth and draw(st.integers(0, 11)) == 0:
        return draw(free_nodes(depth, edge))  # the wrong shape, now and then
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return draw(nodes(draw(st.sampled_from(alternatives)), base, depth, edge))
    kind = kind_of(schema)
    compound = kind in ("object", "array")
    if compound and edge and depth and draw(st.integers(0, 5)) == 0:
        return Leaf("", draw(st.integers(0, 3)))  # `key:` with no value where a mapping or list belongs
    if compound and depth >= MAX_DEPTH:
        return MapNode((), flow=True) if kind == "object" else SeqNode((), flow=True)
    flow = bool(depth) and draw(st.booleans())
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        keys = (
            draw(st.lists(st.sampled_from(list(properties)), max_size=4, unique=True)) if properties else []
        )
        unknown_allowed = extra is not False or draw(st.integers(0, 7)) == 0
        extras = draw(
            st.lists(st.sampled_from(EXTRA_KEYS), max_size=2 if unknown_allowed else 0, unique=True)
        )
        items = [(k, draw(nodes(properties[k], base, depth + 1, edge))) for k in keys]
        for key in extras:
            if key in properties:
                continue
            value = (
                draw(nodes(extra, base, depth + 1, edge))
                if isinstance(extra, Mapping)
                else draw(free_nodes(depth + 1, edge))
            )
            items.append((key, value))
        return MapNode(tuple(items), flow)
    if kind == "array":
        item_schema = schema.get("items", {})
        items_ = draw(st.lists(nodes(item_schema, base, depth + 1, edge), max_size=3))
        return SeqNode(tuple(items_), flow)
    if kind is None and not {"const", "enum"} & set(schema):
        return draw(free_nodes(depth, edge))
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        known = st.sampled_from([_spell(v) for v in values])
        return Leaf(draw(st.one_of(known, known, spellings(kind, edge))), draw(st.integers(0, 3)))
    return draw(leaves(kind, edge))


def _spell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@st.composite
def documents(draw: st.DrawFn, uri: str, edge: bool) -> MapNode:
    root = draw(nodes(STORE.get(uri), uri, 0, edge))
    assert isinstance(root, MapNode)
    return root


# -- comparing ---------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equality that tells types apart (True ≠ 1 ≠ 1.0 ≠ "1"), keeps order, and equates NaNs."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


@dataclass
class Parsed:
    text: str
    untyped: Any
    typed: Any
    refusal: BaseException | None  # why strictyaml refused the text with the typed schema


def parse_both(text: str, uri: str) -> Parsed:
    raw = sy.dirty_load(text, sy.Any(), allow_flow_style=True).data
    validator, retype = typed_schema(STORE, uri)  # the reference: strictyaml's typed parse
    try:
        typed = sy.dirty_load(text, validator, allow_flow_style=True).data
        if retype:  # nodes strictyaml cannot express (two mapping alternatives) are typed after
            typed = STORE.apply_types(typed, STORE.get(uri), uri)
    except sy.YAMLValidationError as exc:
        return Parsed(text, raw, None, exc)
    except ValueError as exc:  # strictyaml's own patterns admit "_" as an integer, then int("") fails
        return Parsed(text, raw, None, exc)
    return Parsed(text, raw, typed, None)


def check_agreement(text: str, uri: str) -> Parsed:
    """The differential property for one YAML text."""
    parsed = parse_both(text, uri)
    before = copy.deepcopy(parsed.untyped)
    fallback = STORE.apply_types(parsed.untyped, STORE.get(uri), uri)
    assert same(parsed.untyped, before), "apply_types changed its input"
    if currently_in_test_context():
        event(
            "strictyaml accepted"
            if parsed.refusal is None
            else f"strictyaml refused: {type(parsed.refusal).__name__}"
        )
    if parsed.refusal is None:
        assert same(fallback, parsed.typed), (
            f"strictyaml accepted the text, apply_types typed it differently\n{text}\n"
            f"strictyaml:  {parsed.typed!r}\napply_types: {fallback!r}"
        )
    else:
        errors = list(STORE.validator(uri).iter_errors(fallback))
        assert errors, (
            f"strictyaml refused the text ({parsed.refusal}), but the fallback's typing of it passes the "
            f"JSON Schema\n{text}\napply_types: {fallback!r}"
        )
    return parsed


# -- properties --------------------------------------------------------------------------------------

ORDINARY = ["manifest", "dataproduct", "duckdb-engine", "hookimpl-engine", "types"]


@pytest.mark.parametrize("schema", ORDINARY)
@budget(250)
@given(data=st.data())
def test_apply_types_agrees_with_strictyaml(schema: str, data: st.DataObject) -> None:
    """Whatever strictyaml accepts, apply_types types identically; what it refuses, the schema refuses."""
    uri = URIS[schema]
    tree = data.draw(documents(uri, edge=False), label="tree")
    text = render(tree)
    parsed = check_agreement(text, uri)
    assert same(parsed.untyped, untyped(tree)), f"the test rendered the tree wrongly\n{text}"


@pytest.mark.parametrize("schema", ORDINARY)
@budget(100)
@given(data=st.data())
def test_apply_types_agrees_with_strictyaml_on_empty_values_and_degenerate_numerals(
    schema: str, data: st.DataObject
) -> None:
    """The same property, with `key:` left empty where a mapping or list belongs, and numerals
    such as ``_`` or ``e5`` that strictyaml's patterns admit but Python cannot convert."""
    uri = URIS[schema]
    tree = data.draw(documents(uri, edge=True), label="tree")
    text = render(tree)
    parsed = check_agreement(text, uri)
    assert same(parsed.untyped, untyped(tree)), f"the test rendered the tree wrongly\n{text}"


@budget(100)
@given(data=st.data())
def test_apply_types_agrees_with_strictyaml_on_alternatives_of_one_kind(data: st.DataObject) -> None:
    """oneOf/anyOf whose alternatives are both lists (or both mappings), as engine schemas may have."""
    uri = URIS["alternatives"]
    tree = data.draw(documents(uri, edge=False), label="tree")
    check_agreement(render(tree), uri)


SCALAR_SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "string"},
    {"type": "integer", "minimum": 1},
    {"type": ["integer", "null"]},
    {"enum": ["fast", "slow"]},
    {"const": 1},
    {"enum": [True, False]},
    {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
    {"oneOf": [{"type": "boolean"}, {"type": "number"}]},
    {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    {"oneOf": [{"type": "object", "properties": {"n": {"type": "integer"}}}, {"type": "integer"}]},
]
SCALAR_URIS = [
    STORE.add(
        {"type": "object", "additionalProperties": False, "properties": {"v": s}},
        TEST_BASE + f"scalar-{i}.schema.json",
    )
    for i, s in enumerate(SCALAR_SCHEMAS)
]


def check_scalar(uri: str, text: str, quote: int) -> None:
    """One scalar under `v:`: agreement, and a refused scalar stays a string the schema refuses."""
    document = render(MapNode((("v", Leaf(text, quote)),)))
    parsed = check_agreement(document, uri)
    if parsed.refusal is not None:
        fallback = STORE.apply_types(parsed.untyped, STORE.get(uri), uri)
        assert same(fallback, {"v": text}), f"a refused scalar did not stay the string {text!r}: {fallback!r}"
        paths = [tuple(e.absolute_path) for e in STORE.validator(uri).iter_errors(fallback)]
        assert ("v",) in paths, f"the JSON Schema does not refuse {text!r} at $.v: {paths}"


@pytest.mark.parametrize("index", range(len(SCALAR_SCHEMAS)), ids=[json.dumps(s) for s in SCALAR_SCHEMAS])
@budget(150)
@given(
    text=st.one_of(spellings("integer", False), spellings("number", False), spellings("boolean", False)),
    quote=st.integers(0, 3),
)
def test_refused_scalars_stay_strings_the_schema_refuses(index: int, text: str, quote: int) -> None:
    check_scalar(SCALAR_URIS[index], text, quote)


@pytest.mark.parametrize("kind", ["integer", "number"])
@pytest.mark.parametrize("text", DEGENERATE)
def test_degenerate_numerals_stay_strings_the_schema_refuses(kind: str, text: str) -> None:
    """``threads: _`` must be reported like ``threads: abc``, not crash the fallback typing."""
    check_scalar(SCALAR_URIS[SCALAR_SCHEMAS.index({"type": kind})], text, 0)


# -- examples ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["no", "No", "NO", "n", "off", "yes", "on", "y", "true", "False", "0", "1"]
)
def test_norway_stays_a_string_where_a_string_is_expected(spelling: str) -> None:
    """The Norway problem: a country code (or any word) where a string belongs stays that word."""
    uri = URIS["types"]
    for quote in (0, 2, 3):
        text = render(
            MapNode(
                (("label", Leaf(spelling, quote)), ("tags", SeqNode((Leaf(spelling, quote),)))),
            )
        )
        parsed = check_agreement(text, uri)
        assert parsed.refusal is None
        assert same(parsed.typed, {"label": spelling, "tags": [spelling]})


def test_boolean_words_become_booleans_and_maybe_is_refused() -> None:
    uri = URIS["types"]
    parsed = check_agreement("enabled: no\nswitches: [yes, Off, 1]\n", uri)
    assert same(parsed.typed, {"enabled": False, "switches": [True, False, True]})
    parsed = check_agreement("enabled: maybe\n", uri)
    assert isinstance(parsed.refusal, sy.YAMLValidationError)
    fallback = STORE.apply_types(parsed.untyped, STORE.get(uri), uri)
    assert same(fallback, {"enabled": "maybe"})
    assert not STORE.validator(uri).is_valid(fallback)


def test_numbers_keep_their_types() -> None:
    parsed = check_agreement(
        "count: 8_000\nratio: 8\nlevel: 2\nanything: 8\nnested: {depth: -3, weight: .inf}\n", URIS["types"]
    )
    assert same(
        parsed.typed,
        {
            "count": 8000,
            "ratio": 8.0,
            "level": 2,
            "anything": "8",
            "nested": {"depth": -3, "weight": math.inf},
        },
    )


def test_an_empty_mapping_value_types_like_strictyaml() -> None:
    """`environments:` with nothing after it is an empty list to strictyaml; so it must be for the
    fallback, or a file with another error gets a spurious "'' is not of type 'array'"."""
    uri = URIS["manifest"]
    text = "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata:\nenvironments:\n"
    check_agreement(text, uri)


@pytest.mark.parametrize(
    "alternatives",
    [
        [{"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "string"}}],
        [{"type": "object", "properties": {"port": {"type": "integer"}}}, {"type": "object"}],
    ],
)
def test_alternatives_of_one_kind_get_a_strictyaml_schema(alternatives: list[dict[str, Any]]) -> None:
    """An engine's config schema may offer two list (or two mapping) alternatives; floe must still
    derive a strictyaml schema for it (strictyaml refuses to `|` two Seq or two Map validators)."""
    uri = STORE.add(
        {"type": "object", "properties": {"v": {"oneOf": alternatives}}},
        TEST_BASE + f"same-kind-{alternatives[0]['type']}.schema.json",
    )
    strictyaml_schema(STORE, STORE.get(uri), uri)


def test_degenerate_engine_setting_is_a_floe_error(tmp_path: Path) -> None:
    """End to end: `threads: _` in an approved compute's config is a located error, not a traceback."""
    manifest = tmp_path / "enterprise.yaml"
    manifest.write_text(
        "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata: {name: acme}\n"
        "plugins:\n  compute:\n    approved:\n      - name: spark\n        config: {threads: _}\n"
        "    default: spark\n",
        encoding="utf-8",
    )
    with pytest.raises(FloeError) as exc:
        compile_path(manifest, engines=registry_with("spark"))
    assert "threads" in exc.value.render()


SCALAR_ALPHABET = "0123456789_+-.eEinfINFaNnA \n\tyestruofl"


@settings(max_examples=600, deadline=None)
@given(text=st.text(alphabet=SCALAR_ALPHABET, max_size=12))
def test_scalar_grammar_agrees_with_strictyaml(text: str) -> None:
    """floe restates strictyaml's scalar patterns (so typing never imports strictyaml): same verdicts."""
    from strictyaml import constants as sy_constants

    from floe import schemas

    assert bool(schemas._INTEGER.match(text)) == sy_utils.is_integer(text)
    assert bool(schemas._DECIMAL.match(text)) == sy_utils.is_decimal(text)
    assert bool(schemas._INFINITY.match(text)) == sy_utils.is_infinity(text)
    assert bool(schemas._NOT_A_NUMBER.match(text)) == sy_utils.is_not_a_number(text)
    assert (text.lower() in schemas._BOOLEANS) == (text.lower() in sy_constants.BOOL_VALUES)
    assert (text.lower() in schemas._TRUE) == (text.lower() in sy_constants.TRUE_VALUES)
