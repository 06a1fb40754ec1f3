"""The Databricks engine against a scripted SQL warehouse (tests/support/databricks_peer.py).

The peer speaks the SQL Statement Execution API and Databricks OAuth over TLS on port 443 of a
loopback address, and runs the SQL in DuckDB; the unmodified databricks-sql-connector (``use_sea``),
databricks-sdk and dbt-databricks in-process (``dbt debug``, ``dbt run``, and ``dbt build`` of a
product through the profile ``floe compile`` writes) talk to it by host name, as to a workspace.
"""

from __future__ import annotations

import decimal
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe.engines.databricks import plugin
from floe.errors import PluginExecutionError
from floe.model import ComputeConfig, ProfileTarget, SecretReference
from floe.testing import BaseComputePluginTests, Endpoint
from tests.support.databricks_peer import DatabricksPeer, serve
from tests.support.timing import assert_not_hung, record_deadlines

TOKEN_ENV = "FLOE_DBX_TOKEN"
SECRET_ENV = "FLOE_DBX_CLIENT_SECRET"


class Peer:
    def __init__(self, peer: DatabricksPeer) -> None:
        self.peer = peer
        self.token = peer.add_token()
        self.client_id, self.client_secret = peer.add_service_principal()

    def environ(self) -> dict[str, str]:
        return {
            TOKEN_ENV: self.token,
            SECRET_ENV: self.client_secret,
            "SSL_CERT_FILE": self.peer.ca_file,
            "REQUESTS_CA_BUNDLE": self.peer.ca_file,
        }

    def config(self, auth: str = "token", **extra: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "host": self.peer.host,
            "http_path": self.peer.http_path,
            "catalog": "main",
            "schema": "analytics",
            "use_sea": True,
        }
        if auth == "token":
            config["token"] = SecretReference(TOKEN_ENV)
        else:
            config.update(
                auth_type="oauth", client_id=self.client_id, client_secret=SecretReference(SECRET_ENV)
            )
        config.update(extra)
        return config


@pytest.fixture(scope="module")
def dbx() -> Iterator[Peer]:
    with serve() as peer:
        yield Peer(peer)


@pytest.fixture
def env(dbx: Peer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = dbx.environ()
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "orders", tmp_path / "product", tmp_path / "product" / ".floe")


def compute(config: dict[str, Any]) -> ComputeConfig:
    return ComputeConfig("lakehouse", "databricks", config)


def dbt(
    args: list[str],
    profile: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    models: dict[str, str] | None = None,
) -> Any:
    from dbt.cli.main import dbtRunner

    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: floe_dbx\nversion: '1.0'\nconfig-version: 2\nprofile: floe_dbx\n"
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump({"floe_dbx": {"target": "dev", "outputs": {"dev": profile}}})
    )
    for name, sql in (models or {}).items():
        (project / "models" / f"{name}.sql").write_text(sql)
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])


def credentials_from(profile: dict[str, Any]) -> Any:
    """The profile rendered by dbt's profile renderer, loaded by dbt-databricks' Credentials."""
    from dbt.adapters.factory import load_plugin
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(os.environ)
    rendered = ProfileRenderer({}).render_data(dict(profile))
    credentials_class = load_plugin("databricks")
    data = credentials_class.translate_aliases(rendered)
    data.pop("type")
    data.pop("threads")
    credentials_class.validate(data)
    return credentials_class.from_dict(data)


# -- REQ-012: profiles -------------------------------------------------------------------------


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("auth", ["token", "oauth"])
def test_each_auth_type_makes_a_profile_dbt_databricks_loads(
    auth: str, dbx: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    profile = plugin.generate_dbt_profile(
        compute(dbx.config(auth, threads=6, connect_retries=3, connect_timeout=10)), target
    )
    assert dbx.token not in json.dumps(profile) and dbx.client_secret not in json.dumps(profile)
    credentials = credentials_from(profile)
    credentials.validate_creds()  # the check dbt-databricks runs only when it connects
    assert (credentials.host, credentials.http_path, credentials.database, credentials.schema) == (
        dbx.peer.host,
        dbx.peer.http_path,
        "main",
        "analytics",
    )
    assert (credentials.connect_retries, credentials.connect_timeout, profile["threads"]) == (3, 10, 6)
    assert credentials.connection_parameters["use_sea"] is True
    if auth == "token":
        assert credentials.token == dbx.token and credentials.auth_type is None
    else:
        assert (credentials.auth_type, credentials.client_id, credentials.client_secret) == (
            "oauth",
            dbx.client_id,
            dbx.client_secret,
        )


@pytest.mark.req("REQ-012")
def test_http_path_is_required_by_floe_because_the_adapter_does_not_check_it(
    dbx: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    from floe.schemas import store

    config = dbx.config()
    profile = plugin.generate_dbt_profile(compute(config), target)
    del profile["http_path"]
    credentials = credentials_from(profile)  # dbt-databricks accepts it offline...
    with pytest.raises(Exception, match="http_path"):
        credentials.validate_creds()  # ...and fails only when connecting
    validator = store().validator(store().add(plugin.config_schema()))
    unchecked = {
        k: ({"secret_ref": v.name} if isinstance(v, SecretReference) else v) for k, v in config.items()
    }
    assert not list(validator.iter_errors(unchecked))
    assert any(
        "http_path" in e.message
        for e in validator.iter_errors({k: v for k, v in unchecked.items() if k != "http_path"})
    )
    with pytest.raises(PluginExecutionError, match="http_path is not set"):
        plugin.generate_dbt_profile(compute({k: v for k, v in config.items() if k != "http_path"}), target)


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("auth", ["token", "oauth"])
def test_dbt_debug_passes_with_each_auth_type(
    auth: str,
    dbx: Peer,
    env: dict[str, str],
    target: ProfileTarget,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = len(dbx.peer.requests)
    profile = plugin.generate_dbt_profile(compute(dbx.config(auth)), target)
    result = dbt(["debug"], profile, tmp_path, monkeypatch)
    assert result.success, f"dbt debug failed with auth_type {auth}"
    seen = dbx.peer.requests[before:]
    assert ("POST", "/api/2.0/sql/sessions") in seen and ("POST", "/api/2.0/sql/statements") in seen
    assert (("POST", "/oidc/v1/token") in seen) == (auth == "oauth")


@pytest.mark.req("REQ-012")
def test_dbt_run_builds_a_view(
    dbx: Peer, env: dict[str, str], target: ProfileTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = plugin.generate_dbt_profile(compute(dbx.config()), target)
    result = dbt(
        ["run"],
        profile,
        tmp_path,
        monkeypatch,
        {"orders": "{{ config(materialized='view') }}\nselect 1 as order_id"},
    )
    assert result.success, result.exception
    assert dbx.peer.query(
        "select table_type from system.information_schema.tables where table_catalog = 'main' "
        "and table_schema = 'analytics' and table_name = 'orders'"
    ) == [("VIEW",)]
    assert dbx.peer.query("select * from main.analytics.orders") == [(1,)]


# -- REQ-014: validation -----------------------------------------------------------------------


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize("auth", ["token", "oauth"])
def test_validate_connection_succeeds_with_each_auth_type(
    auth: str, dbx: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    result = plugin.validate_connection(compute(dbx.config(auth)), target, 10)
    assert result.success, result.message
    assert (result.details["current_catalog"], result.details["current_schema"]) == ("main", "analytics")
    assert dbx.peer.queries[-1] == "select 1 as floe_check, current_catalog(), current_schema()"


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"catalog": "nowhere"}, "check that catalog 'nowhere' exists"),
        ({"http_path": "/sql/1.0/warehouses/unknown"}, "check http_path '/sql/1.0/warehouses/unknown'"),
        ({"http_path": "sql/protocolv1/o/1/0123-cluster"}, "use_sea needs a SQL warehouse http_path"),
    ],
)
def test_validate_connection_names_the_wrong_setting(
    change: dict[str, str], expected: str, dbx: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    result = plugin.validate_connection(compute(dbx.config(**change)), target, 10)
    assert not result.success and expected in result.message, result.message


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize(("auth", "variable"), [("token", TOKEN_ENV), ("oauth", SECRET_ENV)])
def test_validate_connection_reports_rejected_credentials(
    auth: str,
    variable: str,
    dbx: Peer,
    env: dict[str, str],
    target: ProfileTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = ("dapi" if auth == "token" else "dose") + secrets.token_hex(8)
    monkeypatch.setenv(variable, wrong)
    start = time.monotonic()
    result = plugin.validate_connection(compute(dbx.config(auth)), target, 10)
    assert time.monotonic() - start < 10.5
    assert not result.success and "authenticate failed" in result.message, result.message
    assert ("client_secret" if auth == "oauth" else "token") in result.message
    assert wrong not in result.message + json.dumps(dict(result.details))


@pytest.mark.req("REQ-014")
def test_validate_connection_names_a_missing_warehouse_permission(
    dbx: Peer, env: dict[str, str], target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    outsider = dbx.peer.add_token()
    dbx.peer.no_access.add(outsider)
    monkeypatch.setenv(TOKEN_ENV, outsider)
    result = plugin.validate_connection(compute(dbx.config()), target, 10)
    assert (
        not result.success
        and "HTTP 403" in result.message
        and "grant CAN USE on the SQL warehouse" in result.message
    )


@pytest.mark.req("REQ-014")
def test_validate_connection_reports_an_unset_secret(
    dbx: Peer, env: dict[str, str], target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    result = plugin.validate_connection(compute(dbx.config()), target, 10)
    assert not result.success and f"{TOKEN_ENV} (token) is not set" in result.message


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize("use_sea", [True, False], ids=["sea", "thrift"])
def test_validate_connection_to_a_refused_port_fails_at_once(
    use_sea: bool, env: dict[str, str], target: ProfileTarget, refused_address: tuple[str, int]
) -> None:
    host, port = refused_address
    config = {
        "host": host,
        "port": port,
        "http_path": "/sql/1.0/warehouses/abc",
        "schema": "s",
        "token": SecretReference(TOKEN_ENV),
        "use_sea": use_sea,
    }
    start = time.monotonic()
    result = plugin.validate_connection(compute(config), target, 10)
    assert time.monotonic() - start < 5, "the connector's retries must be off for the check"
    assert not result.success and "was refused" in result.message, result.message


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize("use_sea", [True, False], ids=["sea", "thrift"])
def test_validate_connection_to_a_silent_server_answers_in_time(
    use_sea: bool,
    env: dict[str, str],
    target: ProfileTarget,
    silent_server: tuple[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = silent_server
    deadlines = record_deadlines(monkeypatch)
    config = {
        "host": host,
        "port": port,
        "http_path": "/sql/1.0/warehouses/abc",
        "schema": "s",
        "token": SecretReference(TOKEN_ENV),
        "use_sea": use_sea,
    }
    start = time.monotonic()
    result = plugin.validate_connection(compute(config), target, 2)
    assert_not_hung(time.monotonic() - start, 2)
    assert deadlines and max(deadlines) <= 2  # every deadline the check set is within its timeout
    # the engine's own deadline answered (floe's wrapper is not involved: the plugin is called directly)
    assert not result.success and ("in time" in result.message or "no answer" in result.message), (
        result.message
    )


# -- settings checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_secret": SecretReference("S")}, "client_secret is set but auth_type is token"),
        ({"token": None, "auth_type": "oauth", "client_id": "c"}, "missing: client_secret"),
        ({"token": "dapi-literal"}, "token must be a secret reference"),
        ({"host": "https://dbc.cloud.databricks.com/sql"}, "must be a host name only"),
        (
            {
                "token": None,
                "auth_type": "oauth",
                "client_id": "c",
                "client_secret": SecretReference("S"),
                "port": 8443,
            },
            "cannot use port 8443",
        ),
    ],
)
def test_inconsistent_settings_are_refused_with_a_fix(
    change: dict[str, Any], expected: str, target: ProfileTarget
) -> None:
    config = {
        "host": "dbc.cloud.databricks.com",
        "http_path": "/sql/1.0/warehouses/a",
        "schema": "s",
        "token": SecretReference("T"),
        **change,
    }
    with pytest.raises(PluginExecutionError) as raised:
        plugin.generate_dbt_profile(compute({k: v for k, v in config.items() if v is not None}), target)
    assert expected in raised.value.render() and raised.value.problems[0].fix


def test_use_sea_reaches_the_connector_through_connection_parameters(target: ProfileTarget) -> None:
    config = {
        "host": "dbc.cloud.databricks.com",
        "port": 443,
        "http_path": "/sql/1.0/warehouses/a",
        "schema": "s",
        "token": SecretReference("T"),
        "use_sea": True,
    }
    profile = plugin.generate_dbt_profile(compute(config), target)
    assert profile["connection_parameters"] == {"use_sea": True}
    assert "connection_parameters" not in plugin.generate_dbt_profile(
        compute({**config, "use_sea": False}), target
    )


def test_a_port_other_than_443_is_refused_at_compile_with_the_reason(tmp_path: Path) -> None:
    """dbt-databricks (through the Databricks SDK) first fetches ``https://<host>/.well-known/databricks-config``
    on port 443 whatever ``port`` says: measured against the peer on port 8443 with 443 closed, ``dbt run``
    was still waiting after 100 s (the SDK retries for 300 s); ``validate``'s connector skips the SDK and
    succeeded. So such a compute cannot run: compile refuses it, and ``floe validate`` says why at once."""
    manifest = tmp_path / "enterprise.yaml"
    manifest.write_text(
        "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata: {name: acme}\nplugins:\n"
        "  compute:\n    approved:\n      - name: lakehouse\n        engine: databricks\n        config:\n"
        "          host: dbc.example.com\n          port: 8443\n          http_path: /sql/1.0/warehouses/a\n"
        "          schema: s\n          token: {secret_ref: T}\n    default: lakehouse\n"
    )
    for command in ("compile", "validate"):
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "floe", command, str(manifest)], capture_output=True, text=True, timeout=60
        )
        assert time.monotonic() - start < 10
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            f"{manifest}:12: $.plugins.compute.approved[0].config.port: 8443 is not allowed here"
            in done.stderr
        )
        assert (
            "/.well-known/databricks-config on port 443" in done.stderr
            and "stalls for 5 minutes" in done.stderr
        )
    config = {
        "host": "h",
        "port": 8443,
        "http_path": "/sql/1.0/warehouses/a",
        "schema": "s",
        "token": SecretReference("T"),
    }
    with pytest.raises(PluginExecutionError, match="dbt-databricks cannot use port 8443"):
        plugin.generate_dbt_profile(compute(config), ProfileTarget("dev", "p", tmp_path, tmp_path / ".floe"))


# -- REQ-018: errors of the real client ------------------------------------------------------


def _raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the exception under test
        return exc
    raise AssertionError("the call did not fail")


def _connect(dbx: Peer, **overrides: Any) -> Any:
    from databricks import sql

    arguments = {
        "server_hostname": dbx.peer.host,
        "http_path": dbx.peer.http_path,
        "access_token": dbx.token,
        "use_sea": True,
        "enable_telemetry": False,
        "catalog": "main",
        "schema": "analytics",
        "_retry_stop_after_attempts_count": 1,
        "_socket_timeout": 5,
        **overrides,
    }
    return sql.connect(**arguments)


@pytest.mark.req("REQ-018")
def test_real_client_errors_are_translated(
    dbx: Peer, env: dict[str, str], refused_address: tuple[str, int]
) -> None:
    def failing_sql() -> None:
        with _connect(dbx) as connection, connection.cursor() as cursor:
            cursor.execute("selec 1")

    cases = {
        "Databricks rejected the credentials (HTTP 401)": _raised(
            lambda: _connect(dbx, access_token="dapi-bad")
        ),
        "Databricks refused the SQL": _raised(failing_sql),
        "was refused": _raised(
            lambda: _connect(dbx, server_hostname=refused_address[0], _port=refused_address[1])
        ),
        "not found (HTTP 404)": _raised(lambda: _connect(dbx, http_path="/sql/1.0/warehouses/nope")),
    }
    config = compute(dbx.config())
    for expected, error in cases.items():
        translated = plugin.translate_error(error, config)
        assert translated is not None, f"{type(error).__name__}: {error} was not translated"
        assert expected in translated.render() and translated.problems[0].fix, translated.render()
    assert plugin.translate_error(ValueError("unrelated"), config) is None


@pytest.mark.req("REQ-018")
def test_a_400_to_a_statement_is_reported_at_the_stage_it_happened(
    dbx: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    """The connector words a 400 the same at every stage; the session opened, the statement was refused."""
    dbx.peer.refuse_statements = (400, "INVALID_PARAMETER_VALUE", "statement format is not supported")
    try:
        result = plugin.validate_connection(compute(dbx.config()), target, 10)

        def statement() -> None:
            with _connect(dbx) as connection, connection.cursor() as cursor:
                cursor.execute("select 1")

        translated = plugin.translate_error(_raised(statement), compute(dbx.config()))
    finally:
        dbx.peer.refuse_statements = None
    assert not result.success and result.details["stage"] == "running select 1"
    assert "run SQL failed: Databricks refused the statement (HTTP 400)" in result.message, result.message
    assert "open a session" not in result.message
    assert (
        translated is not None and "run SQL failed: Databricks refused the statement" in translated.render()
    )
    session = plugin.translate_error(_raised(lambda: _connect(dbx, catalog="nowhere")), compute(dbx.config()))
    assert session is not None and "open a session failed" in session.render()  # a 4xx opening the session


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.req("REQ-012")
@pytest.mark.req("REQ-014")
def test_canary_credentials_never_leave_the_environment(
    dbx: Peer, env: dict[str, str], target: ProfileTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, canary = dbx.peer.add_service_principal()
    monkeypatch.setenv("FLOE_DBX_CANARY", canary)
    config = dbx.config("oauth", client_id=client_id, client_secret=SecretReference("FLOE_DBX_CANARY"))
    profile = plugin.generate_dbt_profile(compute(config), target)
    ok = plugin.validate_connection(compute(config), target, 10)
    assert ok.success, ok.message
    assert dbt(["debug"], profile, tmp_path, monkeypatch).success
    monkeypatch.setenv("FLOE_DBX_CANARY", canary + "x")
    failed = plugin.validate_connection(compute(config), target, 10)
    assert not failed.success
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "dbt-logs").rglob("*") if p.is_file())
    outputs = [
        json.dumps(profile),
        repr(ok),
        repr(failed),
        json.dumps(dict(failed.details)),
        logs,
        repr(compute(config)),
    ]
    assert not [o for o in outputs if canary in o]


def test_importing_the_engine_loads_no_client() -> None:
    code = (
        "import sys, floe.engines.databricks as m; assert m.plugin.name == 'databricks';"
        "bad = [n for n in sys.modules if n.startswith(('dbt', 'databricks', 'jsonschema', 'importlib.metadata'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# -- REQ-020: the compliance suite ---------------------------------------------------------------


class TestDatabricksCompliance(BaseComputePluginTests):
    """Databricks through floe's compliance suite; the scripted SQL warehouse is its live endpoint."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "databricks"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # a foreign catalog is created once in Unity Catalog; a dbt session names it

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {
            "host": "dbc-a1b2c3d4-e5f6.cloud.databricks.com",
            "http_path": "/sql/1.0/warehouses/a1b2c3d4e5f6",
            "catalog": "main",
            "schema": "analytics",
            "token": SecretReference(TOKEN_ENV),
        }

    @pytest.fixture
    def engine_endpoint(self, dbx: Peer) -> Endpoint:
        return Endpoint(dbx.config(), dbx.environ())

    @pytest.fixture
    def address_settings(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], dict[str, Any]]:
        monkeypatch.setenv("FLOE_DBX_ADDRESS_TOKEN", "dapi-address-check")

        def settings(host: str, port: int) -> dict[str, Any]:
            return {
                "host": host,
                "port": port,
                "http_path": "/sql/1.0/warehouses/a1b2c3d4e5f6",
                "schema": "analytics",
                "token": SecretReference("FLOE_DBX_ADDRESS_TOKEN"),
            }

        return settings

    @pytest.fixture
    def client_error(self, dbx: Peer, env: dict[str, str]) -> BaseException:
        return _raised(lambda: _connect(dbx, access_token="dapi-not-a-token"))


# -- a real `dbt build` through the profile `floe compile` writes --------------------------------------


@pytest.mark.req("REQ-012")
def test_dbt_build_twice_through_the_compiled_profile(
    dbx: Peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds, a view, a table, generic tests and an incremental model (dbt-databricks' default
    ``merge``) built twice by dbt-databricks on the SQL warehouse; rows read back from the peer."""
    from tests.support import dbt_build

    target = dbt_build.on_databricks(dbx.peer, schema="orders_build", token_var=TOKEN_ENV, token=dbx.token)
    failures, queries = len(dbx.peer.failures), len(dbx.peer.queries)
    dbt_build.build_twice(tmp_path, target, monkeypatch)
    assert dbx.peer.failures[failures:] == []  # every statement dbt-databricks sent was answered
    assert [q for q in dbx.peer.queries[queries:] if re.search(r"^\s*merge\s+into\b", q, re.M | re.I)]
    assert dbx.peer.query(
        "select table_name, table_type from system.information_schema.tables where "
        "table_schema = 'orders_build' order by 1"
    ) == [
        ("customer_totals", "MANAGED"),
        ("orders_incremental", "MANAGED"),
        ("raw_orders", "MANAGED"),
        ("stg_orders", "VIEW"),
    ]


def test_peer_answers_sql_as_a_warehouse_does(dbx: Peer, env: dict[str, str]) -> None:
    """What dbt-databricks relies on, through the real connector: bound parameters (``?`` and
    ``:name``), ``INSERT OVERWRITE``, ``MERGE … UPDATE SET * / INSERT *`` from a temporary view that
    only its own session sees, Databricks' type names, and error classes."""
    from databricks.sql.exc import ServerOperationError

    with _connect(dbx, schema="peer_sql") as first, first.cursor() as cursor:
        cursor.execute("create schema if not exists main.peer_sql")
        cursor.execute(
            "create or replace table peer_sql.t (id bigint, name string, amount decimal(10,2)) using delta"
        )
        cursor.execute("insert into t values (?, ?, ?), (?, ?, ?)", [1, "it's", 1.5, 2, "b", 2])
        cursor.execute(
            "insert overwrite main.peer_sql.t values (:id, :name, :amount)",
            {"id": 3, "name": "c", "amount": 3},
        )
        cursor.execute(
            "create or replace temporary view changes as select 3 as id, 'C' as name, 30.00 as amount "
            "union all select 4, 'd', 4.00"
        )
        cursor.execute(
            "merge into t as d using changes as s on d.id = s.id "
            "when matched then update set * when not matched then insert *"
        )
        cursor.execute("select id, name, amount, current_catalog(), current_schema() from t order by id")
        assert [tuple(r) for r in cursor.fetchall()] == [
            (3, "C", decimal.Decimal("30.00"), "main", "peer_sql"),
            (4, "d", decimal.Decimal("4.00"), "main", "peer_sql"),
        ]
        assert [d[0] for d in cursor.description][3:] == ["current_catalog()", "current_schema()"]
        cursor.execute("describe table main.peer_sql.t")
        assert [tuple(r)[:2] for r in cursor.fetchall()] == [
            ("id", "bigint"),
            ("name", "string"),
            ("amount", "decimal(10,2)"),
        ]
        with _connect(dbx, schema="peer_sql") as second, second.cursor() as other:
            with pytest.raises(ServerOperationError, match="TABLE_OR_VIEW_NOT_FOUND"):
                other.execute("select * from changes")  # another session's temporary view
        with pytest.raises(ServerOperationError, match="PARSE_SYNTAX_ERROR"):
            cursor.execute("selec 1")
