"""How each manifest field is inherited down the hierarchy: one table, used by compile, explain and docs.

A chain runs from the enterprise manifest through domain manifests to a data product. Each field a
file may write follows exactly one :class:`Rule`; :data:`FIELDS` says which. Governance looks rules
up here (:func:`fields_with`, :func:`rule_for`) instead of deciding them where it checks them,
``floe explain`` labels every value it shows with its field's rule, and the README's inheritance
table is :func:`markdown_table` (a test holds the two equal, and holds the table complete against
the JSON Schemas).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from floe.diagnostics import JsonPath


class Rule(enum.Enum):
    """The ways a field passes from a level to the levels below it."""

    OWN = "own"
    """Each file's own: not inherited (its name, its parent, its kind)."""
    NARROW_ONLY = "narrow-only set"
    """A lower level keeps a subset of its parent's set; writing nothing keeps the whole set."""
    FIXED_BY_FIRST = "fixed by the level that first writes it"
    """The first level that writes the field decides it; a lower level may only repeat it."""
    FIXED_BY_DECLARER = "fixed by the level that declares it"
    """The highest level that writes the enclosing block decides every field of it; a lower level
    may only repeat a field with the same value."""
    MERGED = "merged, lower level refines"
    """Mappings merged key by key down the chain; the lowest level that writes a key wins."""
    LOWER_ONLY = "lower only"
    """A quantity a lower level may only lower (compared as Kubernetes quantities)."""
    REPLACEABLE = "inherited, replaceable"
    """Inherited; a lower level may replace it within what it still allows."""
    UNION_DECLARED = "declared by manifests"
    """Manifests declare the names (the union along the chain); a data product may only use them."""
    PER_ENVIRONMENT = "per-environment override"
    """Settings for one environment, merged over the base settings in chain order."""
    PRODUCT_ONLY = "data product only"
    """Written only in a data product's floe.yaml."""


MANIFEST, PRODUCT = "Manifest", "DataProduct"
BOTH = (MANIFEST, PRODUCT)


@attrs.frozen
class FieldRule:
    """One row of the table: a field (``[]`` stands for any list item), the files that may write
    it, its rule and what that means for it."""

    field: str
    kinds: tuple[str, ...]
    rule: Rule
    meaning: str

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.field.replace("[]", ".[]").split("."))


FIELDS: tuple[FieldRule, ...] = (
    FieldRule("apiVersion", BOTH, Rule.OWN, "always floe.dev/v1"),
    FieldRule("kind", BOTH, Rule.OWN, "Manifest or DataProduct"),
    FieldRule(
        "metadata",
        BOTH,
        Rule.OWN,
        "the file's name (how errors and `floe explain` name the level), description and owner",
    ),
    FieldRule("scope", (MANIFEST,), Rule.OWN, "enterprise (the root, no parent) or domain (has a parent)"),
    FieldRule("parent", (MANIFEST,), Rule.OWN, "a domain's parent manifest, relative to this file"),
    FieldRule("platform", (PRODUCT,), Rule.OWN, "the product's governing manifest, relative to floe.yaml"),
    FieldRule(
        "plugins.compute.approved",
        BOTH,
        Rule.NARROW_ONLY,
        "a level may only keep computes its parent approves; a level that writes no list keeps its parent's",
    ),
    FieldRule("plugins.compute.approved[].name", BOTH, Rule.OWN, "which compute the entry is about"),
    FieldRule(
        "plugins.compute.approved[].engine",
        BOTH,
        Rule.FIXED_BY_FIRST,
        "set where the compute is first approved (default: its name); lower levels may repeat it, never change it",
    ),
    FieldRule(
        "plugins.compute.approved[].config",
        BOTH,
        Rule.MERGED,
        "engine settings merged down the chain, the lowest level's value winning; each level's result must be valid for the engine",
    ),
    FieldRule(
        "plugins.compute.approved[].resources.requests",
        BOTH,
        Rule.LOWER_ONLY,
        "a lower level may only lower a request an ancestor set; requests no ancestor set take the engine's default",
    ),
    FieldRule(
        "plugins.compute.approved[].resources.limits",
        BOTH,
        Rule.LOWER_ONLY,
        "a lower level may only lower a limit an ancestor set; limits no ancestor set take the engine's default",
    ),
    FieldRule(
        "plugins.compute.approved[].timeout",
        BOTH,
        Rule.LOWER_ONLY,
        "the longest one build on the compute may run before floe kills its worker and fails the build; "
        "a lower level may only lower it; none set: no limit",
    ),
    FieldRule(
        "plugins.compute.default",
        BOTH,
        Rule.REPLACEABLE,
        "inherited; a lower level may name another compute it still approves, and must when it removes the inherited one",
    ),
    FieldRule(
        "environments[].name",
        BOTH,
        Rule.UNION_DECLARED,
        "manifests declare environments (their union along the chain); a data product may only name declared ones",
    ),
    FieldRule(
        "environments[].overrides",
        BOTH,
        Rule.PER_ENVIRONMENT,
        "by compute: its connection settings in this environment, merged over its settings root first, the product last; never its compute or engine",
    ),
    FieldRule(
        "catalog",
        (MANIFEST,),
        Rule.FIXED_BY_DECLARER,
        "where data goes: the highest manifest that declares a catalog fixes it for every level below",
    ),
    *(
        FieldRule(f"catalog.{name}", (MANIFEST,), Rule.FIXED_BY_DECLARER, meaning)
        for name, meaning in (
            ("type", "rest or sql"),
            ("name", "the name every engine attaches the catalog under"),
            ("uri", "the catalog's endpoint"),
            ("warehouse", "the warehouse (location) data is written to"),
            ("token", "the catalog credential (a secret reference)"),
            ("client_id", "the OAuth2 client the catalog is used as"),
            ("client_secret", "the OAuth2 client's secret (a secret reference)"),
            ("oauth2_server_uri", "where OAuth2 tokens for the catalog come from"),
            ("access_delegation", "whether the catalog vends storage credentials"),
        )
    ),
    FieldRule(
        "lineage",
        (MANIFEST,),
        Rule.FIXED_BY_DECLARER,
        "where every product's OpenLineage events go: the highest manifest that declares lineage fixes it for every level below",
    ),
    *(
        FieldRule(f"lineage.{name}", (MANIFEST,), Rule.FIXED_BY_DECLARER, meaning)
        for name, meaning in (
            ("namespace", "the OpenLineage namespace of the runs' jobs"),
            ("transport", "the OpenLineage client's transport, with its keys"),
            ("transport.type", "http, console or file"),
            ("transport.url", "the lineage back end's URL (http)"),
            ("transport.endpoint", "the path events are posted to (http)"),
            ("transport.timeout", "the seconds each request may take (http)"),
            ("transport.verify", "whether TLS certificates are checked (http)"),
            ("transport.compression", "request compression, gzip (http)"),
            ("transport.auth", "the API key sent as a Bearer token (http)"),
            ("transport.auth.type", "the kind of credential: api_key"),
            ("transport.auth.api_key", "the lineage credential (a secret reference)"),
            ("transport.log_file_path", "where events are written (file)"),
            ("transport.append", "one file of lines, or one file per event (file)"),
        )
    ),
    FieldRule("transforms", (PRODUCT,), Rule.PRODUCT_ONLY, "the product's dbt transforms"),
    FieldRule("transforms[].type", (PRODUCT,), Rule.PRODUCT_ONLY, "dbt"),
    FieldRule("transforms[].path", (PRODUCT,), Rule.PRODUCT_ONLY, "a folder of models inside the product"),
    FieldRule("transforms[].name", (PRODUCT,), Rule.PRODUCT_ONLY, "default: the path as an identifier"),
    FieldRule(
        "transforms[].compute",
        (PRODUCT,),
        Rule.PRODUCT_ONLY,
        "one compute for every environment, from the effective approved list (default: the effective default)",
    ),
)


def _pattern(path: JsonPath) -> tuple[str, ...]:
    return tuple("[]" if isinstance(part, int) else part for part in path)


_BY_PARTS = {row.parts: row for row in FIELDS}


def rule_for(path: JsonPath) -> FieldRule | None:
    """The row governing the value at ``path`` of a file: the row of the longest field that is
    ``path`` or one of its ancestors (``plugins.compute.approved[2].config.threads`` → ``…config``)."""
    pattern = _pattern(path)
    for end in range(len(pattern), 0, -1):
        row = _BY_PARTS.get(pattern[:end])
        if row is not None:
            return row
    return None


def fields_with(rule: Rule, under: str) -> Iterator[FieldRule]:
    """The rows under ``under`` (a field, itself excluded) that follow ``rule``."""
    prefix = tuple(under.replace("[]", ".[]").split("."))
    for row in FIELDS:
        if row.rule is rule and row.parts[: len(prefix)] == prefix and row.parts != prefix:
            yield row


def leaf(row: FieldRule) -> str:
    """The last name of a row's field (``catalog.uri`` → ``uri``)."""
    return row.parts[-1]


def merge_settings(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The :attr:`Rule.MERGED` rule (and :attr:`Rule.PER_ENVIRONMENT`'s merge): ``override`` over
    ``base``; nested mappings merge key by key, everything else (a secret reference too) is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and "secret_ref" not in value:
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


def markdown_table() -> str:
    """The table as the README shows it."""
    lines = ["| field | written in | rule | meaning |", "| --- | --- | --- | --- |"]
    for row in FIELDS:
        kinds = " and ".join("manifests" if k == MANIFEST else "floe.yaml" for k in row.kinds)
        lines.append(f"| `{row.field}` | {kinds} | {row.rule.value} | {row.meaning} |")
    return "\n".join(lines)
