"""Errors never show a JSON Schema keyword: every rule that ties settings together says, in a
sentence, which settings go together and why (the description of its ``then``/``else`` branch)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floe.diagnostics import problems_from_errors
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore, schema_file

KEYWORD = re.compile(
    r"`(not|if|then|else|oneOf|anyOf|allOf|const|enum|required|pattern|propertyNames)`"
    r"|\b(oneOf|anyOf|allOf|additionalProperties|propertyNames|exclusiveMinimum|exclusiveMaximum|minItems"
    r"|minLength|maxLength|dependentRequired)\b|schema's"
)
BUILT_IN = ("duckdb", "spark", "snowflake", "bigquery", "databricks", "redshift", "trino")


def problems(engine: str, config: dict[str, Any]) -> list[Any]:
    store = SchemaStore()
    uri = store.add(schema_file(f"engines/{engine}.schema.json"))
    return problems_from_errors(store.errors(uri, config), "m.yaml", lambda path: 1)


def branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``then``/``else`` of a schema's rules."""
    return [rule[key] for rule in schema.get("allOf", ()) for key in ("then", "else") if key in rule]


@pytest.mark.parametrize("engine", BUILT_IN)
def test_every_rule_of_a_built_in_engine_says_why(engine: str) -> None:
    """A branch that constrains settings has a sentence (on the branch, or on the property it constrains)."""
    for branch in branches(schema_file(f"engines/{engine}.schema.json")):
        properties = branch.get("properties", {})
        described = branch.get("description") or (
            properties and all(sub.get("description") for sub in properties.values())
        )
        assert described, f"{engine}: a rule without a sentence: {json.dumps(branch)[:200]}"


REQUIRED = {"account": "a", "database": "d", "warehouse": "w"}
CASES = [
    (
        "spark",
        {"cluster": "spark.svc", "master": "local[1]"},
        "$.master",
        "master cannot be set here",
        "write one of cluster and master",
    ),
    (
        "spark",
        {"method": "thrift", "host": "h", "iceberg": True},
        "$.iceberg",
        "iceberg cannot be set here",
        "reach a Spark server that runs elsewhere",
    ),
    ("spark", {"host": "h"}, "$.host", "host cannot be set here", "runs Spark in the dbt process"),
    (
        "spark",
        {"method": "thrift", "host": "h", "token": {"secret_ref": "T"}},
        "$.token",
        "token cannot be set here",
        "belong to method http",
    ),
    (
        "spark",
        {"method": "http", "host": "h", "token": {"secret_ref": "T"}},
        "$",
        "missing required key 'cluster'",
        "with an access token",
    ),
    (
        "snowflake",
        {
            **REQUIRED,
            "method": "keypair",
            "user": "u",
            "private_key_path": "k",
            "private_key": {"secret_ref": "K"},
        },
        "$",
        "only one of private_key_path or private_key",
        "exactly one",
    ),
    (
        "snowflake",
        {**REQUIRED, "method": "keypair", "user": "u"},
        "$",
        "one of these settings is needed: private_key_path or private_key",
        "RSA private key",
    ),
    (
        "snowflake",
        {
            **REQUIRED,
            "method": "password",
            "user": "u",
            "password": {"secret_ref": "P"},
            "token": {"secret_ref": "T"},
        },
        "$.token",
        "token cannot be set here",
        "method password",
    ),
    (
        "snowflake",
        {**REQUIRED, "method": "externalbrowser", "user": "u", "password": {"secret_ref": "P"}},
        "$.password",
        "password cannot be set here",
        "through a browser",
    ),
    (
        "redshift",
        {"host": "h", "user": "u", "dbname": "d", "schema": "s", "method": "iam"},
        "$",
        "cluster_id or serverless_work_group",
        "temporary credentials",
    ),
    (
        "redshift",
        {
            "host": "h",
            "user": "u",
            "dbname": "d",
            "schema": "s",
            "password": {"secret_ref": "P"},
            "access_key_id": "AKIA",
        },
        "$",
        "missing required key 'secret_access_key'",
        "one AWS credential",
    ),
    (
        "trino",
        {
            "host": "h",
            "database": "d",
            "schema": "s",
            "method": "ldap",
            "user": "u",
            "password": {"secret_ref": "P"},
            "http_scheme": "http",
        },
        "$.http_scheme",
        "'http' is not allowed here",
        "must travel over TLS",
    ),
    (
        "trino",
        {"host": "h", "database": "d", "schema": "s", "user": "u", "impersonation_user": "x"},
        "$",
        "missing required key 'password'",
        "impersonation_user",
    ),
    (
        "bigquery",
        {"project": "p", "dataset": "d", "method": "oauth-secrets"},
        "$",
        "one of these settings is needed: token or refresh_token and client_id and client_secret",
        "refresh_token",
    ),
    (
        "databricks",
        {"host": "h", "http_path": "/p", "schema": "s", "auth_type": "oauth"},
        "$",
        "missing required key 'client_id'",
        "service principal",
    ),
]


@pytest.mark.parametrize(("engine", "config", "path", "message", "sentence"), CASES)
def test_a_broken_rule_is_explained_in_words(
    engine: str, config: dict[str, Any], path: str, message: str, sentence: str
) -> None:
    found = problems(engine, config)
    assert found, config
    matching = [p for p in found if p.path == path and message in p.message]
    assert matching, "\n".join(p.render() for p in found)
    assert any(sentence in p.render() for p in matching), "\n".join(p.render() for p in found)
    for problem in found:
        assert not KEYWORD.search(problem.render()), problem.render()


VALUES = st.sampled_from(
    [
        "x",
        "spark.svc",
        "local[1]",
        "https",
        "http",
        "thrift",
        "session",
        "oauth",
        "iam",
        "keypair",
        "password",
        "ldap",
        "jwt",
        "none",
        "database",
        0,
        1,
        70000,
        True,
        {"secret_ref": "S"},
        {"secret_ref": "bad name"},
        {"a": "b"},
        ["x"],
        "",
    ]
)


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    engine = draw(st.sampled_from(BUILT_IN))
    names = [*schema_file(f"engines/{engine}.schema.json")["properties"], "pasword", "method", "bogus"]
    keys = draw(st.lists(st.sampled_from(names), max_size=8, unique=True))
    return engine, {key: draw(VALUES) for key in keys}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_no_error_of_any_engine_setting_names_a_schema_keyword(case: tuple[str, dict[str, Any]]) -> None:
    engine, config = case
    for problem in problems(engine, config):
        assert not KEYWORD.search(problem.render()), problem.render()
        assert problem.message and problem.path


def test_the_manifest_schemas_words_name_no_keyword_either(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from floe.compiler import compile_path
    from floe.errors import FloeError

    path = tmp_path / "m.yaml"
    path.write_text(
        "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata: {name: A}\n"
        "plugins: {compute: {approved: [{name: 1}, [x]], default: ''}}\n"
        "catalog: {type: hive, access_delegation: yes}\nenvironments: {dev: {}}\n"
    )
    with pytest.raises(FloeError) as exc:
        compile_path(path, EngineRegistry.discover())
    assert len(exc.value.problems) >= 5
    assert not KEYWORD.search(exc.value.render()), exc.value.render()
