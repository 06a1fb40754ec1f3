"""``floe run`` with a bridged compute: Snowflake (on fakesnow) between two DuckDB transforms.

``lake`` (DuckDB) builds in the catalog; ``vault`` (Snowflake) refs it — floe loads it into
Snowflake before ``vault`` builds — and builds a table and an incremental model in Snowflake;
``report`` (DuckDB) refs ``vault``'s table — floe publishes it into the catalog after ``vault``
built. Run through the real CLI: the plan names each crossing and its kind, ``--json`` gives rows,
bytes and seconds for each bridge, the values arrive, a second run carries changed data, and the
password of the Snowflake compute (a canary) appears in nothing floe prints or writes. A model
whose column has no Iceberg type fails its transform, naming the column, and skips the readers.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.snowflake_peer import FakesnowServer
from tests.test_run import rows, write

DATABASE = "analytics"
PRODUCT = "vaulted"
NAMESPACE = f"{PRODUCT}_dev"


@pytest.fixture(scope="module")
def fakesnow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    with FakesnowServer(tmp_path_factory.mktemp("fakesnow")).start() as server:
        server.create_database(DATABASE)
        yield server


def manifest(server: FakesnowServer) -> str:
    return f"""
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {{name: acme}}
        plugins:
          compute:
            approved:
              - name: duckdb
                config: {{threads: 2}}
              - name: sf
                engine: snowflake
                config:
                  account: fakesnow
                  user: floe
                  password: {{secret_ref: FLOE_TEST_SF_PASSWORD}}
                  database: {DATABASE}
                  warehouse: compute_wh
                  host: {server.host}
                  port: {server.port}
                  protocol: http
                  threads: 2
            default: duckdb
        environments:
          - name: dev
        """


FILES = {
    "floe.yaml": f"""
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {{name: {PRODUCT}}}
        platform: platform/enterprise.yaml
        transforms:
          - {{type: dbt, name: lake, path: models/lake/}}
          - {{type: dbt, name: vault, path: models/vault/, compute: sf}}
          - {{type: dbt, name: report, path: models/report/}}
        """,
    "dbt_project.yml": f"name: {PRODUCT}\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\n"
    f"models:\n  {PRODUCT}:\n    +materialized: table\n",
    "seeds/payments.csv": "id,customer,amount,paid_on\n1,ada,10.50,2024-01-02\n2,bob,20.25,2024-01-03\n3,ada,5.00,2024-02-01\n",
    "models/lake/payments_clean.sql": """
        select id, customer, cast(amount as decimal(10, 2)) as amount, cast(paid_on as date) as paid_on,
               cast(paid_on as timestamp) + interval 12 hour as paid_at
        from {{ ref('payments') }}
        """,
    "models/vault/ledger.sql": """
        select customer, sum(amount) as total, count(*) as payments, max(paid_at) as last_paid_at
        from {{ ref('payments_clean') }}
        group by customer
        """,
    "models/vault/ledger_log.sql": """
        {{ config(materialized='incremental', unique_key='id', incremental_strategy='delete+insert',
                  tmp_relation_type='transient') }}
        select id, customer, amount from {{ ref('payments_clean') }}
        {% if is_incremental() %} where id > (select max(id) from {{ this }}) {% endif %}
        """,
    "models/report/top_customer.sql": """
        select customer, total, payments from {{ ref('ledger') }} order by total desc limit 1
        """,
}


@pytest.fixture
def product(tmp_path: Path, fakesnow: FakesnowServer) -> Path:
    return write(tmp_path / PRODUCT, {**FILES, "platform/enterprise.yaml": manifest(fakesnow)})


def floe_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=600, env=env
    )


def snowflake_rows(server: FakesnowServer, sql: str) -> list[tuple[Any, ...]]:
    import snowflake.connector

    with snowflake.connector.connect(
        account="fakesnow",
        user="reader",
        password="any",
        host=server.host,
        port=server.port,
        protocol="http",
        database=DATABASE,
        platform_detection_timeout_seconds=0.0,
    ) as connection:
        return [tuple(r) for r in connection.cursor().execute(sql).fetchall()]


def test_a_snowflake_transform_between_two_duckdb_transforms(product: Path, fakesnow: FakesnowServer) -> None:
    canary = "canary-sf-" + secrets.token_hex(8)
    env = {**os.environ, "FLOE_TEST_SF_PASSWORD": canary, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    planned = floe_cli("plan", str(product), "--env", "dev", env=env)
    assert planned.returncode == 0, planned.stderr
    assert (
        "sf: engine snowflake" in planned.stdout
        and "builds in its own warehouse; its tables are published" in planned.stdout
    )
    assert "lake (duckdb) → vault (sf), bridged: payments_clean" in planned.stdout
    assert "vault (sf) → report (duckdb), bridged: ledger" in planned.stdout

    outputs = []
    for run in ("first", "second"):
        if run == "second":
            (product / "seeds/payments.csv").write_text(
                FILES["seeds/payments.csv"] + "4,cy,100.00,2024-03-01\n"
            )
        done = floe_cli("run", str(product), "--env", "dev", "--json", env=env)
        outputs += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        bridges = {(b["kind"], b["model"].rsplit(".", 1)[-1]): b for b in report["bridges"]}
        assert set(bridges) == {("load", "payments_clean"), ("publish", "ledger")}, report["bridges"]
        load, publish = bridges[("load", "payments_clean")], bridges[("publish", "ledger")]
        assert (load["transform"], load["from_compute"], load["to_compute"]) == ("vault", "catalog", "sf")
        assert load["target"] == f"sf {DATABASE}.{NAMESPACE}.payments_clean"
        assert (publish["transform"], publish["from_compute"], publish["to_compute"]) == (
            "vault",
            "sf",
            "catalog",
        )
        assert publish["target"] == f"catalog floe.{NAMESPACE}.ledger"
        assert load["rows"] == (3 if run == "first" else 4) and publish["rows"] == (
            2 if run == "first" else 3
        )
        assert all(b["bytes"] > 0 and b["seconds"] > 0 and b["status"] == "success" for b in bridges.values())
        assert (
            "[vault] loaded payments_clean: catalog floe." in done.stderr
            and "[vault] published ledger:" in done.stderr
        )
        assert "BRIDGE" in done.stderr and "ROWS" in done.stderr  # the summary's table of bridges
    # values, read by each engine's own client
    assert snowflake_rows(
        fakesnow, f"select id, customer, amount from {NAMESPACE}.ledger_log order by id"
    ) == [
        (1, "ada", Decimal("10.50")),
        (2, "bob", Decimal("20.25")),
        (3, "ada", Decimal("5.00")),
        (4, "cy", Decimal("100.00")),
    ]
    assert rows(product, NAMESPACE, "ledger", "customer") == [
        {"customer": "ada", "total": Decimal("15.50"), "payments": 2, "last_paid_at": _at(2024, 2, 1)},
        {"customer": "bob", "total": Decimal("20.25"), "payments": 1, "last_paid_at": _at(2024, 1, 3)},
        {"customer": "cy", "total": Decimal("100.00"), "payments": 1, "last_paid_at": _at(2024, 3, 1)},
    ]
    assert rows(product, NAMESPACE, "top_customer", "customer") == [
        {"customer": "cy", "total": Decimal("100.00"), "payments": 1}
    ]
    written = [p.read_text(errors="replace") for p in (product / "target").rglob("*") if p.is_file()]
    assert not [text[:100] for text in [*outputs, *written] if canary in text]


def _at(year: int, month: int, day: int) -> Any:
    import datetime

    return datetime.datetime(year, month, day, 12)


def test_a_column_without_an_iceberg_type_fails_the_publish_and_skips_the_readers(product: Path) -> None:
    (product / "models/vault/ledger.sql").write_text(
        "select customer, parse_json('{\"n\": 1}') as doc from {{ ref('payments_clean') }}\n"
    )
    env = {**os.environ, "FLOE_TEST_SF_PASSWORD": "unused-" + secrets.token_hex(4)}
    done = floe_cli("run", str(product), "--env", "dev", "--json", env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    report = json.loads(done.stdout)
    states = {t["name"]: (t["status"], t["message"]) for t in report["transforms"]}
    assert states["lake"][0] == "success" and states["report"][0] == "skipped"
    status, message = states["vault"]
    assert status == "failed" and "could not be published into the catalog" in message
    assert "column 'doc'" in message and "Snowflake VARIANT cannot become an Iceberg type" in message
    (failed,) = [b for b in report["bridges"] if b["status"] == "failed"]
    assert failed["kind"] == "publish" and "column 'doc'" in failed["message"]
    assert "[vault] publish FAILED: ledger" in done.stderr and "Traceback" not in done.stderr
