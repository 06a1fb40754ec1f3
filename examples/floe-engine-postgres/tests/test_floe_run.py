"""The engine in ``floe run``, as a data engineer meets it: a product with a transform on PostgreSQL
(this distribution) and one on DuckDB (floe's built-in engine), planned and run by floe.

Nothing is mocked and floe is not changed for this engine: floe finds it through its entry point,
asks it how it runs (its run hooks in ``engine.py``), and runs dbt-postgres against the real
server of the ``postgres`` fixture, next to DuckDB writing into floe's embedded Iceberg catalog.
"""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import floe
import pytest

from floe_engine_postgres.testing import PostgresServer

PRODUCT = "pgrun"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


@pytest.fixture
def product(tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in postgres.environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return write(
        tmp_path / PRODUCT,
        {
            "platform/enterprise.yaml": f"""
            apiVersion: floe.dev/v1
            kind: Manifest
            scope: enterprise
            metadata: {{name: acme}}
            plugins:
              compute:
                approved:
                  - name: duckdb
                    config: {{threads: 1}}
                  - name: pg
                    engine: postgres
                    config:
                      host: {postgres.host}
                      port: {postgres.port}
                      user: {postgres.user}
                      password: {{secret_ref: {postgres.password_env}}}
                      dbname: {postgres.dbname}
                      sslmode: disable
                      threads: 2
                default: duckdb
            environments:
              - name: dev
        """,
            "floe.yaml": f"""
            apiVersion: floe.dev/v1
            kind: DataProduct
            metadata: {{name: {PRODUCT}}}
            platform: platform/enterprise.yaml
            transforms:
              - {{type: dbt, name: stored, path: models/stored/, compute: pg}}
              - {{type: dbt, name: lake, path: models/lake/}}
        """,
            "dbt_project.yml": f"""
            name: {PRODUCT}
            version: '1.0.0'
            config-version: 2
            profile: unused
            models:
              {PRODUCT}:
                +materialized: table
        """,
            "seeds/people.csv": """
            id,name
            1,ada
            2,bob
        """,
            "models/stored/people_upper.sql": "select id, upper(name) as name from {{ ref('people') }}\n",
            "models/stored/people_log.sql": """
            {{ config(materialized='incremental', unique_key='id') }}
            select id, name from {{ ref('people_upper') }}
            {% if is_incremental() %} where id > (select coalesce(max(id), 0) from {{ this }}) {% endif %}
        """,
            "models/stored/schema.yml": """
            version: 2
            models:
              - name: people_log
                columns:
                  - name: id
                    data_tests: [not_null, unique]
        """,
            "models/lake/squares.sql": "select range as n, range * range as square from range(4)\n",
        },
    )


def pg_rows(server: PostgresServer, table: str) -> list[tuple[Any, ...]]:
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'select * from "{PRODUCT}_dev"."{table}" order by 1')
            return list(cursor.fetchall())
    finally:
        connection.close()


def test_a_postgres_transform_runs_in_floe_run_next_to_duckdb(
    product: Path, postgres: PostgresServer
) -> None:
    the_plan = floe.plan(product, env="dev")
    computes = {c.name: c for c in the_plan.preparation.computes.values()}
    assert computes["pg"].engine == "postgres" and computes["pg"].distribution == "floe-engine-postgres"
    assert not computes["pg"].access.in_place and "keeps the tables dbt builds" in computes["pg"].access.how
    assert computes["duckdb"].access.in_place and the_plan.crossings == ()

    first = floe.run(product, env="dev")
    assert first.success, [t.message for t in first.transforms]
    assert [(t.name, t.compute, t.engine) for t in first.transforms] == [
        (t.name, t.compute, t.engine) for t in the_plan.transforms
    ]
    stored = first.get("stored")
    assert stored.engine == "postgres" and stored.counts() == {
        "success": 3,
        "pass": 2,
    }  # seed, 2 models, 2 tests
    assert pg_rows(postgres, "people_log") == [(1, "ADA"), (2, "BOB")]
    assert pg_rows(postgres, "people") == [(1, "ada"), (2, "bob")]
    worker_log = (product / "target/floe/run/.workers/pg.log").read_text()
    assert "forked from fork server" in worker_log  # as the engine's run_worker allows

    from pyiceberg.catalog.sql import SqlCatalog

    root = product / ".floe" / "iceberg" / "floe"
    lake = SqlCatalog(
        "floe", uri=f"sqlite:///{root / 'catalog.sqlite'}", warehouse=f"file://{root / 'warehouse'}"
    )
    squares = lake.load_table((f"{PRODUCT}_dev", "squares")).scan().to_arrow().sort_by("n").to_pylist()
    assert squares[-1] == {"n": 3, "square": 9}

    (product / "seeds/people.csv").write_text("id,name\n1,ada\n2,bob\n3,cy\n")
    second = floe.run(product, env="dev", select=["stored"])
    assert second.success, [t.message for t in second.transforms]
    assert pg_rows(postgres, "people_log") == [(1, "ADA"), (2, "BOB"), (3, "CY")]  # incremental: one new row
    assert not second.get("stored").in_catalog  # its tables are in PostgreSQL, not the catalog
    log = {r.name: r for r in second.get("stored").results}
    assert log["people_log"].status == "success"
    assert log["people_log"].relation == f"{postgres.dbname}.{PRODUCT}_dev.people_log"


def iceberg_rows(product: Path, table: str) -> list[dict[str, Any]]:
    from pyiceberg.catalog.sql import SqlCatalog

    root = product / ".floe" / "iceberg" / "floe"
    lake = SqlCatalog(
        "floe", uri=f"sqlite:///{root / 'catalog.sqlite'}", warehouse=f"file://{root / 'warehouse'}"
    )
    rows: list[dict[str, Any]] = (
        lake.load_table((f"{PRODUCT}_dev", table)).scan().to_arrow().sort_by("n").to_pylist()
    )
    return rows


def test_refs_between_postgres_and_duckdb_are_bridged_both_ways(
    product: Path, postgres: PostgresServer
) -> None:
    """A postgres model reads a DuckDB model (floe loads it into PostgreSQL before the transform
    builds) and a DuckDB model reads a postgres model (floe publishes it into the catalog after the
    postgres transform builds); an incremental postgres model over the loaded table keeps its rows;
    a second run after the DuckDB model changed carries the change all the way through."""
    (product / "models/stored/from_lake.sql").write_text(
        "select n, square, cast(square / 8.0 as numeric(12, 3)) as eighth from {{ ref('squares') }}\n"
    )
    (product / "models/stored/squares_log.sql").write_text(
        "{{ config(materialized='incremental', unique_key='n') }}\n"
        "select n, square from {{ ref('squares') }}\n"
        "{% if is_incremental() %} where n > (select max(n) from {{ this }}) {% endif %}\n"
    )
    (product / "models/back/doubled.sql").parent.mkdir()
    (product / "models/back/doubled.sql").write_text(
        "select n, eighth * 2 as quarter from {{ ref('from_lake') }}\n"
    )
    floe_yaml = product / "floe.yaml"
    floe_yaml.write_text(floe_yaml.read_text() + "  - {type: dbt, name: back, path: models/back/}\n")
    the_plan = floe.plan(product, env="dev")
    kinds = {(c.upstream, c.downstream): (str(c.kind), c.publish, c.load) for c in the_plan.crossings}
    assert kinds == {
        ("lake", "stored"): ("bridged", False, True),
        ("stored", "back"): ("bridged", True, False),
    }

    report = floe.run(product, env="dev")
    assert report.success, [t.message for t in report.transforms] + [b.message for b in report.bridges]
    assert pg_rows(postgres, "squares") == [(0, 0), (1, 1), (2, 4), (3, 9)]  # the copy, loaded
    assert pg_rows(postgres, "from_lake") == [
        (0, 0, Decimal("0.000")),
        (1, 1, Decimal("0.125")),
        (2, 4, Decimal("0.500")),
        (3, 9, Decimal("1.125")),
    ]
    assert iceberg_rows(product, "doubled") == [
        {"n": 0, "quarter": Decimal("0.000")},
        {"n": 1, "quarter": Decimal("0.250")},
        {"n": 2, "quarter": Decimal("1.000")},
        {"n": 3, "quarter": Decimal("2.250")},
    ]
    bridges = {(b.kind, b.name): b for b in report.bridges}
    assert set(bridges) == {("load", "squares"), ("publish", "from_lake")}
    assert all(
        b.status == "success" and b.rows == 4 and b.bytes > 0 and b.seconds > 0 for b in bridges.values()
    )
    assert bridges[("load", "squares")].target == f"pg {postgres.dbname}.{PRODUCT}_dev.squares"

    (product / "models/lake/squares.sql").write_text(
        "select range as n, range * range as square from range(6)\n"
    )
    again = floe.run(product, env="dev")
    assert again.success, [t.message for t in again.transforms] + [b.message for b in again.bridges]
    assert pg_rows(postgres, "squares")[-1] == (5, 25)  # rebuilt from the catalog's current snapshot
    assert pg_rows(postgres, "squares_log") == [(n, n * n) for n in range(6)]  # incremental: two rows added
    assert [r["n"] for r in iceberg_rows(product, "doubled")] == list(range(6))
    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from pg_tables where tablename like '%floe_load%'")
        assert cursor.fetchone() == (0,)  # no staging table is left behind
