"""The schema an editor uses offline (``floe schema --bundle``): self-contained, every approved
compute's settings typed by its engine, the README's manifests valid, typos and literal secrets flagged.

(Checked by hand with yaml-language-server 1.x in VS Code's set-up, in a network namespace without
network: the README's manifests gave no diagnostic; ``pasword:``, a literal password and an
override's ``treads:`` were each flagged at their line.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry

from floe.plugins import EngineRegistry
from floe.schema_bundle import bundle
from floe.schemas import SchemaStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return bundle(EngineRegistry.discover(), SchemaStore())


def offline(schema: dict[str, Any]) -> Draft7Validator:
    """A validator that fails on any reference it would have to fetch."""

    def refuse(uri: str) -> Any:
        raise AssertionError(f"the bundle refers outside itself: {uri}")

    return Draft7Validator(schema, registry=Registry(retrieve=refuse))  # type: ignore[call-arg]


def leaves(errors: list[ValidationError]) -> set[tuple[str, str]]:
    """``($.path, message)`` of the innermost errors (an editor shows those of the matching branch)."""
    found: set[tuple[str, str]] = set()
    for error in errors:
        if error.context:
            found |= leaves(list(error.context))
        else:
            found.add(("$." + ".".join(str(p) for p in error.absolute_path), error.message))
    return found


def readme_manifests() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_the_bundle_is_self_contained_draft_07(schema: dict[str, Any]) -> None:
    Draft7Validator.check_schema(schema)
    refs = re.findall(r'"\$ref": "([^"]*)"', json.dumps(schema))
    assert refs and all(ref.startswith("#/definitions/") for ref in refs)
    assert "https://floe.dev/schemas" not in json.dumps(schema) and "$defs" not in json.dumps(schema)
    assert {f"engine-{name}" for name in EngineRegistry.discover().names()} <= set(schema["definitions"])


def test_the_readme_and_example_manifests_are_valid(schema: dict[str, Any]) -> None:
    validator = offline(schema)
    documents = readme_manifests()
    assert len(documents) >= 3
    documents += [
        yaml.safe_load(p.read_text())
        for p in sorted((ROOT / "examples").rglob("*.yaml"))
        if "kind:" in p.read_text() and "target" not in p.parts
    ]
    for document in documents:
        assert not list(validator.iter_errors(document)), document


def test_typos_and_literal_secrets_in_engine_settings_are_flagged(schema: dict[str, Any]) -> None:
    enterprise = readme_manifests()[0]
    enterprise["plugins"]["compute"]["approved"][0]["config"]["pasword"] = "x"
    enterprise["plugins"]["compute"]["approved"][1]["config"]["memory_limit"] = "lots"
    enterprise["plugins"]["compute"]["approved"].append(
        {
            "name": "snowflake",
            "config": {
                "account": "acme",
                "database": "d",
                "warehouse": "w",
                "user": "u",
                "password": "S3cr3t",
            },
        }
    )
    enterprise["environments"][1]["overrides"]["duckdb"]["treads"] = 4
    found = leaves(list(offline(schema).iter_errors(enterprise)))
    paths = {path for path, _ in found}
    assert "$.plugins.compute.approved.0.config" in paths  # pasword: not a DuckDB setting
    assert any("'pasword' was unexpected" in message for _, message in found), found
    assert "$.plugins.compute.approved.1.config.memory_limit" in paths  # engine: duckdb, typed by name
    assert ("$.plugins.compute.approved.2.config.password", "'S3cr3t' is not of type 'object'") in found
    assert any(
        path == "$.environments.1.overrides.duckdb" and "'treads' was unexpected" in message
        for path, message in found
    ), found


def test_floe_schema_bundle_prints_it(schema: dict[str, Any]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "floe", "schema", "--bundle"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == schema
