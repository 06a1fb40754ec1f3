"""``floe explain``: why a product can (not) use a compute, and where each setting comes from."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import floe
from floe.errors import FloeError
from floe.explanation import Explanation
from tests.support.engines import registry_with

ENTERPRISE = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 8 }
      - name: snowflake
        config: { warehouse: wh, password: {secret_ref: SNOW_PW} }
      - spark
    default: duckdb
catalog:
  type: rest
  uri: https://polaris.acme.example/api/catalog
  warehouse: lake
environments:
  - name: dev
  - name: prod
    overrides:
      duckdb: { schema: analytics }
"""
SALES = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {name: sales}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 3 }
      - spark
environments:
  - name: prod
    overrides:
      duckdb: { schema: sales_prod }
"""
PRODUCT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: orders}
platform: ../platform/domains/sales.yaml
transforms:
  - type: dbt
    path: models/staging/
    compute: spark
  - type: dbt
    path: models/marts/
  - type: dbt
    path: models/finance/
    compute: snowflake
"""


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for relative, text in (
        ("platform/enterprise.yaml", ENTERPRISE),
        ("platform/domains/sales.yaml", SALES),
        ("orders/floe.yaml", PRODUCT),
    ):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in ("staging", "marts", "finance"):
        (tmp_path / "orders/models" / folder).mkdir(parents=True)
    return tmp_path


@pytest.fixture(scope="module")
def engines():  # type: ignore[no-untyped-def]
    return registry_with("spark", "snowflake")


@pytest.mark.req("REQ-023")
def test_why_a_product_cannot_use_a_compute(platform: Path, engines) -> None:  # type: ignore[no-untyped-def]
    explanation = floe.explain("orders", engines=engines)
    assert isinstance(explanation, Explanation) and explanation.name == "orders"
    assert [level.name for level in explanation.chain] == ["acme", "sales", "orders"]
    snowflake = next(c for c in explanation.computes if c.name == "snowflake")
    assert not snowflake.available
    assert [(d.level, d.action) for d in snowflake.decisions] == [("acme", "approved"), ("sales", "removed")]
    assert snowflake.reason == (
        "approved by acme at platform/enterprise.yaml:10; removed by sales at platform/domains/sales.yaml:8"
    )
    duckdb = next(c for c in explanation.computes if c.name == "duckdb")
    assert duckdb.available and duckdb.reason == (
        "approved by acme at platform/enterprise.yaml:8; kept by sales at "
        "platform/domains/sales.yaml:9; inherited by orders"
    )
    assert (explanation.default.compute, str(explanation.default.where)) == (
        "duckdb",
        "acme at platform/enterprise.yaml:13",
    )


def test_each_transforms_compute_and_why(platform: Path, engines) -> None:  # type: ignore[no-untyped-def]
    transforms = {t.name: t for t in floe.explain("orders", engines=engines).transforms}
    assert transforms["staging"].reason == "explicit at orders/floe.yaml:8"
    assert transforms["marts"].compute == "duckdb" and not transforms["marts"].explicit
    assert transforms["marts"].reason == "the default, set by acme at platform/enterprise.yaml:13"
    assert not transforms["finance"].available  # compile refuses it; explain says why
    assert transforms["finance"].reason == "explicit at orders/floe.yaml:13; NOT AVAILABLE to this product"


def test_each_setting_with_the_file_and_line_that_set_it_in_order(platform: Path, engines) -> None:  # type: ignore[no-untyped-def]
    explanation = floe.explain("orders", environment="prod", compute="duckdb", engines=engines)
    assert [c.name for c in explanation.computes] == ["duckdb"]
    (block,) = explanation.settings
    assert (block.compute, block.environment) == ("duckdb", "prod")
    settings = {s.key: s for s in block.settings}
    threads = settings["threads"]
    assert threads.value == 3 and str(threads.where) == "sales at platform/domains/sales.yaml:10"
    assert [(w.value, str(w.where)) for w in threads.replaced] == [
        ("8", "acme at platform/enterprise.yaml:9")
    ]
    assert threads.rule == "merged, lower level refines"
    schema = settings["schema"]
    assert schema.value == "sales_prod" and str(schema.where) == "sales at platform/domains/sales.yaml:15"
    assert [str(w.where) for w in schema.replaced] == ["acme at platform/enterprise.yaml:22"]
    assert (
        schema.rule == "per-environment override"
        and schema.where
        and schema.where.path == "$.environments[0].overrides.duckdb.schema"
    )
    cpu = next(r for r in block.resources if r.key == "resources.limits.cpu")
    assert cpu.where is None and cpu.rule == "lower only"  # the engine's default
    dev = floe.explain("orders", environment="dev", compute="duckdb", engines=engines).settings[0]
    assert {s.key: s.value for s in dev.settings} == {"threads": 3}


def test_secrets_are_shown_as_references_and_the_catalog_with_its_origin(platform: Path, engines) -> None:  # type: ignore[no-untyped-def]
    explanation = floe.explain(
        "platform/enterprise.yaml", environment="dev", compute="snowflake", engines=engines
    )
    (block,) = explanation.settings
    assert {s.key: s.value for s in block.settings}["password"] == {"secret_ref": "SNOW_PW"}
    assert str(explanation.catalog.declared_by) == "acme at platform/enterprise.yaml:14"
    fields = {f.key: f for f in explanation.catalog.fields}
    assert fields["catalog.uri"].value == "https://polaris.acme.example/api/catalog"
    assert fields["catalog.uri"].where and fields["catalog.uri"].where.line == 16
    assert fields["catalog.warehouse"].rule == "fixed by the level that declares it"
    assert explanation.transforms == ()


def test_the_cli_prints_the_same_answers_as_text_and_json(platform: Path, engines) -> None:  # type: ignore[no-untyped-def]
    expected = floe.explain("orders", environment="prod", engines=floe.EngineRegistry.discover())
    done = subprocess.run(
        [sys.executable, "-m", "floe", "explain", "orders", "--env", "prod", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(done.stdout)
    assert data == json.loads(json.dumps(expected.to_json()))
    assert data["computes"][1]["reason"].startswith(
        "approved by acme at platform/enterprise.yaml:10; removed by sales"
    )
    text = subprocess.run(
        [sys.executable, "-m", "floe", "explain", "orders", "--compute", "snowflake"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert (
        textwrap.dedent("""\
        computes
          snowflake  NOT AVAILABLE  approved by acme at platform/enterprise.yaml:10; removed by sales at platform/domains/sales.yaml:8
        """)
        in text
    )
    assert "finance  snowflake  explicit at orders/floe.yaml:13; NOT AVAILABLE to this product" in text
    assert "catalog: declared by acme at platform/enterprise.yaml:14; fixed for every level below" in text


def test_the_lineage_is_shown_where_its_declarer_set_it() -> None:
    root = Path(__file__).resolve().parents[1] / "examples/lineage"
    explanation = floe.explain(root / "domains/sales.yaml", environment="dev")
    assert explanation.lineage.declared_by is not None
    assert (explanation.lineage.declared_by.level, explanation.lineage.declared_by.line) == ("acme", 12)
    fields = {f.key: f for f in explanation.lineage.fields}
    assert fields["lineage.transport.url"].value == "https://marquez.acme.example"
    assert fields["lineage.transport.url"].where and fields["lineage.transport.url"].where.line == 16
    assert fields["lineage.transport.auth.api_key"].value == {"secret_ref": "OPENLINEAGE_API_KEY"}
    assert fields["lineage.namespace"].rule == "fixed by the level that declares it"
    text = explanation.render()
    assert (
        "lineage: declared by acme at " in text and "enterprise.yaml:12; fixed for every level below" in text
    )
    assert "lineage.transport.auth.api_key = {secret_ref: OPENLINEAGE_API_KEY}" in text
    assert json.loads(json.dumps(explanation.to_json()))["lineage"]["declared_by"]["line"] == 12
    unset = floe.explain(root.parent / "platform/enterprise.yaml").lineage
    assert unset.declared_by is None and "OPENLINEAGE_URL" in unset.summary


def test_an_unknown_environment_or_compute_is_said(platform: Path, engines) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FloeError, match="unknown environment 'production'; the chain declares dev, prod"):
        floe.explain("orders", environment="production", engines=engines)
    (never,) = floe.explain("orders", compute="trino", engines=engines).computes
    assert not never.available and never.reason == "no manifest of the chain approves it"
