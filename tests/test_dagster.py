"""``floe.dagster``: the lakehouse example's models as Dagster assets, materialized in process.

``dagster.materialize`` runs every asset (Spark's transform, then DuckDB's, as the plan orders
them) through ``floe run``; the tables are read back from the embedded catalog's own files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from floe.dagster import definitions
from tests.test_run import rows

ROOT = Path(__file__).resolve().parents[1]


def test_every_asset_of_the_lakehouse_materializes_through_floe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    root = tmp_path / "lakehouse"
    shutil.copytree(ROOT / "examples/lakehouse", root, ignore=shutil.ignore_patterns(".floe", "target"))
    defs = definitions(root, "dev")
    graph = defs.resolve_asset_graph()
    specs = {
        key.to_user_string(): graph.get(key)
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    assert set(specs) == {
        "raw_customers",
        "raw_orders",
        "stg_customers",
        "stg_orders",
        "customer_revenue",
        "daily_revenue",
    }
    assert {k: (s.group_name, s.tags["floe/compute"], s.tags["floe/engine"]) for k, s in specs.items()} == {
        "raw_customers": ("staging", "spark-local", "spark"),
        "raw_orders": ("staging", "spark-local", "spark"),
        "stg_customers": ("staging", "spark-local", "spark"),
        "stg_orders": ("staging", "spark-local", "spark"),
        "customer_revenue": ("marts", "duckdb", "duckdb"),
        "daily_revenue": ("marts", "duckdb", "duckdb"),
    }
    # dependencies across transforms, keyed as dagster-dbt keys them
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("customer_revenue")).parent_keys} == {
        "stg_orders",
        "stg_customers",
    }
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(list(defs.assets or []), selection="*", instance=instance)  # type: ignore[arg-type]
    assert result.success
    materialized = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert set(materialized) == set(specs)
    stg = materialized["stg_orders"]
    assert stg["dagster/table_name"].value == "floe.lakehouse_dev.stg_orders"
    assert (stg["floe/compute"].value, stg["floe/engine"].value, stg["floe/status"].value) == (
        "spark-local",
        "spark",
        "success",
    )
    assert materialized["daily_revenue"]["floe/engine"].value == "duckdb"
    revenue = rows(root, "lakehouse_dev", "customer_revenue", "customer_id")
    assert revenue and set(revenue[0]) == {"customer_id", "name", "country", "orders", "revenue"}
    # the progress lines of floe run are in Dagster's log
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("[staging] SUCCESS on spark-local" in line for line in logs)
    assert any("[marts] SUCCESS on duckdb" in line for line in logs)


def test_a_failing_transform_fails_its_materialization_with_floes_message(tmp_path: Path) -> None:
    from tests.test_run import DUO_FILES, product

    root = product(
        tmp_path / "bad",
        "bad",
        "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
        {"models/base/numbers.sql": "select nope from range(3)\n"},
    )
    defs = definitions(root, "dev")
    result = dg.materialize(list(defs.assets or []), raise_on_error=False)  # type: ignore[arg-type]
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "floe transform 'base' failed" in failure.step_failure_data.user_failure_data.description
    assert "nope" in failure.step_failure_data.user_failure_data.description
    assert DUO_FILES  # the helpers come from the run tests
