"""The built-in engines' run hooks, without a server: how each one's worker reaches the catalog, and
a run profile that builds into the run's namespace and passes the dbt adapter's own validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.plugins import EngineRegistry
from floe.testing.compliance import render_env_vars

CATALOG = CatalogConfig(type="rest", name="lake", uri="http://127.0.0.1:9", warehouse="file:///tmp/w")
SETTINGS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "duckdb": ("duckdb", {}, True),
    "spark-session": ("spark", {"master": "local[1]"}, True),
    "spark-thrift": ("spark", {"method": "thrift", "host": "spark.internal"}, False),
    "snowflake": (
        "snowflake",
        {
            "account": "org-acct",
            "database": "DB",
            "warehouse": "WH",
            "user": "u",
            "password": SecretReference("SF_PASSWORD"),
        },
        False,
    ),
    "bigquery": ("bigquery", {"project": "p", "dataset": "d", "method": "oauth"}, False),
    "databricks": (
        "databricks",
        {
            "host": "dbc.example.com",
            "http_path": "/sql/1.0/warehouses/abc",
            "schema": "s",
            "token": SecretReference("DBX_TOKEN"),
        },
        False,
    ),
    "redshift": (
        "redshift",
        {
            "host": "rs.example.com",
            "user": "u",
            "dbname": "dev",
            "schema": "s",
            "password": SecretReference("RS_PASSWORD"),
        },
        False,
    ),
    "trino": (
        "trino",
        {"host": "trino.example.com", "database": "iceberg", "schema": "s", "user": "u"},
        False,
    ),
}


@pytest.mark.parametrize("case", SETTINGS)
def test_each_engine_says_how_it_runs(case: str, tmp_path: Path) -> None:
    from dbt.adapters.factory import load_plugin

    name, config, in_place = SETTINGS[case]
    engine = EngineRegistry.discover().engines[name]
    compute = ComputeConfig(case, name, config)
    access = engine.catalog_access(compute, CATALOG)
    assert access.in_place is in_place and access.how
    target = ProfileTarget("dev", "shop", tmp_path, tmp_path / ".floe")
    if name == "spark" and in_place:
        pytest.importorskip("snowpark_connect_deps_iceberg")
    profile = engine.run_profile(compute, engine.generate_dbt_profile(compute, target), CATALOG, "shop_dev")
    credentials = load_plugin(engine.info.dbt_adapter)
    data = credentials.translate_aliases(dict(render_env_vars(profile, {})))
    data.pop("type", None)
    data.pop("threads", None)
    credentials.validate(data)
    assert data["schema"] == "shop_dev"  # every engine builds into the run's namespace
    if case != "spark-thrift":  # dbt-spark's thrift method needs PyHive, which does not install here
        assert credentials.from_dict(data).schema == "shop_dev"
    setup = engine.run_worker(compute, profile, CATALOG, {"PATH": "/usr/bin"})
    assert setup.forkable is (name != "spark")
