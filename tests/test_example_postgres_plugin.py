"""The third-party example engine ``examples/floe-engine-postgres``, as a user of floe meets it.

It must be installed in the test environment (``pip install -e examples/floe-engine-postgres``):
floe then finds it through its entry point like any other distribution. These tests show that
``floe engines`` lists it, that ``floe compile`` validates a manifest against the engine's own
schema and writes its dbt profile, and that dbt runs with that profile against a real PostgreSQL
server (``floe_engine_postgres.testing.running_postgres``, the same server the example's own
tests use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

try:
    from floe_engine_postgres.testing import PostgresServer, running_postgres
except ImportError as exc:  # pragma: no cover - a broken test environment, said plainly
    raise ImportError(
        "the example engine is not installed: pip install -e examples/floe-engine-postgres"
    ) from exc

DISTRIBUTION = "floe-engine-postgres"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def floe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def platform(tmp_path: Path, postgres_config: str) -> Path:
    """An enterprise manifest approving duckdb (the default) and ``postgres`` with ``postgres_config``."""
    config = textwrap.indent(textwrap.dedent(postgres_config), " " * 10)
    text = (
        "apiVersion: floe.dev/v1\n"
        "kind: Manifest\n"
        "scope: enterprise\n"
        "metadata: {name: acme}\n"
        "plugins:\n"
        "  compute:\n"
        "    approved:\n"
        "      - duckdb\n"
        "      - name: postgres\n"
        "        config:\n"
        f"{config}"
        "    default: duckdb\n"
        "environments:\n"
        "  - name: dev\n"
        "  - name: prod\n"
        "    overrides:\n"
        "      postgres: { schema: analytics_prod }\n"
    )
    return write(tmp_path / "platform/enterprise.yaml", text)


def product(tmp_path: Path) -> Path:
    """A data product whose one transform selects ``postgres``; also a dbt project of two models."""
    root = tmp_path / "orders"
    write(
        root / "floe.yaml",
        """\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: orders}
        platform: ../platform/enterprise.yaml
        transforms:
          - {type: dbt, path: models/, compute: postgres}
        """,
    )
    write(
        root / "dbt_project.yml",
        """\
        name: orders
        version: "1.0.0"
        config-version: 2
        profile: floe_postgres
        models:
          orders:
            +materialized: table
        """,
    )
    write(
        root / "models/raw_orders.sql",
        "select * from (values (1, 'alice', 30.00), (2, 'bob', 12.50), (3, 'alice', 7.25))"
        " as t(id, customer, amount)\n",
    )
    write(
        root / "models/customer_totals.sql",
        "select customer, count(*) as orders, sum(amount) as total\n"
        "from {{ ref('raw_orders') }} group by customer\n",
    )
    return root


@pytest.mark.req("REQ-020")
def test_floe_engines_lists_the_plugin_with_its_distribution() -> None:
    listed = floe("engines", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["engine"]: row for row in json.loads(listed.stdout)["engines"]}
    assert rows["postgres"]["distribution"] == DISTRIBUTION
    assert rows["postgres"]["dbt_adapter"] == "postgres"
    assert "dbt-postgres>=1.11,<1.12" in rows["postgres"]["packages"]
    table = floe("engines").stdout
    line = next(line for line in table.splitlines() if line.startswith("postgres "))
    assert DISTRIBUTION in line.split()
    schema = floe("schema", "--engine", "postgres")
    assert json.loads(schema.stdout)["properties"]["password"]["$ref"].endswith("#/$defs/secretRef")


@pytest.mark.req("REQ-012")
@pytest.mark.req("REQ-022")
def test_compile_then_dbt_run_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform(
        tmp_path,
        f"""\
        host: {postgres.host}
        port: {postgres.port}
        user: {postgres.user}
        password: {{secret_ref: ORDERS_PG_PASSWORD}}
        dbname: {postgres.dbname}
        schema: analytics
        sslmode: disable
        threads: 2
        """,
    )
    root = product(tmp_path)
    compiled = floe("compile", str(root))
    assert compiled.returncode == 0, compiled.stderr
    assert "1 transform(s) on postgres" in compiled.stdout

    profiles_dir = root / "target/floe"
    text = (profiles_dir / "profiles.yml").read_text()
    outputs = yaml.safe_load(text)["floe_postgres"]["outputs"]
    assert set(outputs) == {"dev", "prod"}
    dev = outputs["dev"]
    assert dev["type"] == "postgres" and dev["password"] == "{{ env_var('ORDERS_PG_PASSWORD') }}"
    assert (dev["host"], dev["port"], dev["dbname"], dev["schema"]) == (
        postgres.host,
        postgres.port,
        postgres.dbname,
        "analytics",
    )
    assert outputs["prod"]["schema"] == "analytics_prod"
    manifest = json.loads((profiles_dir / "compiled.json").read_text())
    assert manifest["computes"]["postgres"]["config"]["password"] == {"secret_ref": "ORDERS_PG_PASSWORD"}
    assert postgres.password not in text + json.dumps(manifest)

    from dbt.cli.main import dbtRunner

    logs = tmp_path / "dbt-logs"
    monkeypatch.setenv("ORDERS_PG_PASSWORD", postgres.password)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(logs))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    run = dbtRunner().invoke(["run", "--project-dir", str(root), "--profiles-dir", str(profiles_dir)])
    assert run.success, run.exception
    assert sorted(r.node.name for r in run.result.results) == ["customer_totals", "raw_orders"]

    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select customer, orders, total from analytics.customer_totals order by customer")
        assert cursor.fetchall() == [("alice", 2, Decimal("37.25")), ("bob", 1, Decimal("12.50"))]
        cursor.execute("select count(*) from analytics.raw_orders")
        assert cursor.fetchone() == (3,)
    connection.close()
    assert postgres.password not in "".join(
        p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()
    )


def test_floe_run_show_of_postgres_alone_starts_no_catalog(postgres: PostgresServer, tmp_path: Path) -> None:
    """The example engine builds in its own database: a run of its transforms alone starts no
    Iceberg catalog, and ``--show`` (which reads the run's tables through the catalog) has nothing
    to read there and says nothing of it."""
    platform(
        tmp_path,
        f"""\
        host: {postgres.host}
        port: {postgres.port}
        user: {postgres.user}
        password: {{secret_ref: ORDERS_PG_PASSWORD}}
        dbname: {postgres.dbname}
        sslmode: disable
        """,
    )
    root = product(tmp_path)
    done = floe("run", str(root), "--env", "dev", "--show", env={"ORDERS_PG_PASSWORD": postgres.password})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not started: no compute of this run attaches it" in done.stdout
    assert "could not read the tables" not in done.stdout + done.stderr
    assert not (root / ".floe" / "iceberg").exists()
    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select customer, orders from orders_dev.customer_totals order by customer")
        assert cursor.fetchall() == [("alice", 2), ("bob", 1)]
    connection.close()


@pytest.mark.req("REQ-014")
def test_floe_validate_reaches_the_server(postgres: PostgresServer, tmp_path: Path) -> None:
    platform(
        tmp_path,
        f"""\
        host: {postgres.host}
        port: {postgres.port}
        user: {postgres.user}
        password: {{secret_ref: ORDERS_PG_PASSWORD}}
        dbname: {postgres.dbname}
        sslmode: disable
        """,
    )
    root = product(tmp_path)
    checked = floe("validate", str(root), "--json", env={"ORDERS_PG_PASSWORD": postgres.password})
    rows = {row["compute"]: row for row in json.loads(checked.stdout)["computes"]}
    assert rows["postgres"]["status"] == "ok", rows["postgres"]["message"]
    assert "PostgreSQL 18" in rows["postgres"]["message"]

    wrong = floe("validate", str(root), "--json", env={"ORDERS_PG_PASSWORD": "not-the-password"})
    assert wrong.returncode == 1
    message = {row["compute"]: row for row in json.loads(wrong.stdout)["computes"]}["postgres"]["message"]
    assert "refused the password of user 'floe'" in message and "ORDERS_PG_PASSWORD" in message
    assert "not-the-password" not in wrong.stdout + wrong.stderr


@pytest.mark.req("REQ-012")
def test_compile_checks_settings_against_the_plugins_schema(tmp_path: Path) -> None:
    manifest = platform(
        tmp_path,
        """\
        host: db.internal
        hostname: typo.internal
        user: floe
        password: hunter2
        dbname: floe
        sslmode: sometimes
        """,
    )
    root = product(tmp_path)
    failed = floe("compile", str(root))
    assert failed.returncode == 1
    lines = manifest.read_text().splitlines()
    for key, fragment in (
        ("password", "literal credential"),
        ("sslmode", "sometimes"),
        ("hostname", "hostname"),
    ):
        line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith(f"{key}:"))
        located = [m for m in failed.stderr.splitlines() if f"enterprise.yaml:{line}:" in m]
        assert located and any(fragment in m for m in located), (key, failed.stderr)
    assert "hunter2" not in failed.stderr
    assert not (root / "target").exists()
