"""The Snowflake engine (REQ-012 to REQ-018) against the fakesnow server and the real client stack.

The peer is ``fakesnow -s``, started by this module on 127.0.0.1 with a free port: the unmodified
snowflake-connector-python logs in to it over HTTP and it runs SQL in DuckDB, and dbt-snowflake
runs ``dbt debug``, ``dbt run`` and (twice, incrementally) ``dbt build`` through the generated
profiles. Nothing of floe is patched.

What fakesnow cannot show, and how it is covered:

- it accepts any credentials: a refused login is Snowflake's own JSON answer for error 390100
  served by :func:`scripted_snowflake`, parsed by the real connector (so the wrong-password
  message is proven against that answer, not against a server that checks passwords);
- it has no SSO endpoint: the externalbrowser check is shown failing against fakesnow (404) and
  succeeding against Snowflake's documented ``authenticator-request`` answer;
- it ignores ``USE WAREHOUSE``: a missing warehouse cannot be shown (a missing database can).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe.engines.snowflake import (
    SnowflakeEngine,
    check_settings,
    plugin,
    schema_name,
    sql_identifier,
)
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore
from floe.testing import BaseComputePluginTests, Endpoint
from floe.testing.compliance import render_env_vars
from tests.support.snowflake_peer import (
    LOGIN_REFUSED,
    SSO_URL,
    FakesnowServer,
    free_port,
    scripted_snowflake,
)
from tests.support.timing import assert_not_hung, record_deadlines

CANARY = "canary-5b1e0c7d-never-print-me"
PASSWORD_VAR = "FLOE_TEST_SF_PASSWORD"
TOKEN_VAR = "FLOE_TEST_SF_TOKEN"
KEY_VAR = "FLOE_TEST_SF_PRIVATE_KEY"
PASSPHRASE_VAR = "FLOE_TEST_SF_PASSPHRASE"
DATABASE = "analytics"
"""Created in fakesnow by :func:`fakesnow`, as an administrator would before dbt runs."""


# -- the peer and shared values ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakesnow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    """One fakesnow server for the module, with the database ``analytics`` created."""
    server = FakesnowServer(tmp_path_factory.mktemp("fakesnow")).start()
    try:
        server.create_database(DATABASE)
        yield server
    finally:
        server.stop()
        assert server.process is None


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "orders-eu", tmp_path / "product", tmp_path / "product" / ".floe")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An RSA key as an encrypted PEM file, a plain PEM file, base64 DER, and an EC key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    folder = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = serialization.PrivateFormat.PKCS8
    pem = serialization.Encoding.PEM
    encrypted = folder / "rsa_key.p8"
    encrypted.write_bytes(
        key.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(CANARY.encode()))
    )
    plain = folder / "rsa_key_plain.pem"
    plain.write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    der = key.private_bytes(serialization.Encoding.DER, pkcs8, serialization.NoEncryption())
    ec_file = folder / "ec_key.pem"
    ec_file.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(pem, pkcs8, serialization.NoEncryption())
    )
    return {
        "encrypted": encrypted,
        "plain": plain,
        "der_b64": base64.b64encode(der).decode(),
        "pem_text": plain.read_text(),
        "der": der,
        "ec": ec_file,
        "passphrase": CANARY,
    }


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]) -> None:
    """Every secret the tests reference, the password and passphrase being the canary."""
    monkeypatch.setenv(PASSWORD_VAR, CANARY)
    monkeypatch.setenv(TOKEN_VAR, "oauth-access-token-" + CANARY)
    monkeypatch.setenv(KEY_VAR, keys["der_b64"])
    monkeypatch.setenv(PASSPHRASE_VAR, keys["passphrase"])


def settings(**overrides: Any) -> dict[str, Any]:
    """A password login for the account ``fakesnow`` (host/port added for the peer)."""
    base: dict[str, Any] = {
        "account": "fakesnow",
        "user": "floe",
        "password": SecretReference(PASSWORD_VAR),
        "database": DATABASE,
        "warehouse": "compute_wh",
        "schema": "dev",
        "role": "transformer",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def at(server: FakesnowServer | tuple[str, int], **overrides: Any) -> dict[str, Any]:
    host, port = (server.host, server.port) if isinstance(server, FakesnowServer) else server
    return settings(host=host, port=port, protocol="http", **overrides)


def method_settings(method: str, keys: dict[str, Any]) -> dict[str, Any]:
    """Settings for each login method (without host/port)."""
    no_password = {"password": None}
    return {
        "password": settings(method="password"),
        "keypair-file": settings(
            method="keypair",
            private_key_path=str(keys["encrypted"]),
            private_key_passphrase=SecretReference(PASSPHRASE_VAR),
            **no_password,
        ),
        "keypair-secret": settings(private_key=SecretReference(KEY_VAR), **no_password),
        "oauth": settings(method="oauth", token=SecretReference(TOKEN_VAR), user=None, **no_password),
        "externalbrowser": settings(method="externalbrowser", **no_password),
    }[method]


METHODS = ["password", "keypair-file", "keypair-secret", "oauth", "externalbrowser"]


def compute(config: dict[str, Any], name: str = "warehouse") -> ComputeConfig:
    return ComputeConfig(name, "snowflake", config)


# -- schema ----------------------------------------------------------------------------------------------


def _validator() -> Any:
    store = SchemaStore()
    uri = store.add(plugin.config_schema())
    return store.validator(uri)


def _as_manifest(config: dict[str, Any]) -> dict[str, Any]:
    return {k: {"secret_ref": v.name} if isinstance(v, SecretReference) else v for k, v in config.items()}


@pytest.mark.req("REQ-012")
def test_schema_describes_every_key_and_references_every_credential() -> None:
    from jsonschema import Draft202012Validator

    schema = plugin.config_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "https://floe.dev/schemas/v1/engines/snowflake.schema.json"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"account", "database", "warehouse"}
    for key, sub in schema["properties"].items():
        assert sub.get("description"), f"{key} has no description"
    for key in ("password", "private_key", "private_key_passphrase", "token"):
        assert schema["properties"][key]["$ref"] == "../definitions.schema.json#/$defs/secretRef"
    assert schema["properties"]["method"]["enum"] == ["password", "keypair", "oauth", "externalbrowser"]


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("method", METHODS)
def test_schema_accepts_each_method(method: str, keys: dict[str, Any]) -> None:
    config = _as_manifest(method_settings(method, keys))
    assert not list(_validator().iter_errors(config))
    assert not list(_validator().iter_errors(_as_manifest(at(("127.0.0.1", 8080)))))


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (settings(database=None), "database is required (dbt-snowflake needs it)"),
        (settings(warehouse=None), "warehouse is required"),
        (settings(password="hunter22"), "a credential must be a secret reference"),
        (settings(account="https://xy12345.snowflakecomputing.com"), "account is not a URL"),
        (settings(host="https://x.example.com"), "host has no protocol"),
        (settings(method="password", token=SecretReference("T")), "password does not use token"),
        (settings(method="keypair", password=None), "keypair needs a key"),
        (
            settings(
                method="keypair", password=None, private_key_path="/k.p8", private_key=SecretReference("K")
            ),
            "keypair: one key only",
        ),
        (settings(method="oauth", password=None), "oauth needs token"),
        (settings(method="externalbrowser"), "externalbrowser uses no secret"),
        (settings(method="saml"), "unknown method"),
        (settings(port=70000), "port range"),
        (settings(bogus=1), "unknown key"),
    ],
)
def test_schema_rejects_inconsistent_settings(config: dict[str, Any], reason: str) -> None:
    assert list(_validator().iter_errors(_as_manifest(config))), reason


# -- REQ-012: profiles -------------------------------------------------------------------------------


@pytest.mark.req("REQ-012")
def test_password_profile(target: ProfileTarget) -> None:
    config = settings(
        threads=8,
        query_tag="floe",
        client_session_keep_alive=True,
        connect_timeout=5,
        host="acme.privatelink.snowflakecomputing.com",
        port=443,
        protocol="https",
    )
    profile = plugin.generate_dbt_profile(compute(config), target)
    assert profile == {
        "type": "snowflake",
        "account": "fakesnow",
        "user": "floe",
        "role": "transformer",
        "database": "analytics",
        "warehouse": "compute_wh",
        "schema": "dev",
        "threads": 8,
        "password": "{{ env_var('FLOE_TEST_SF_PASSWORD') }}",
        "query_tag": "floe",
        "client_session_keep_alive": True,
        "connect_timeout": 5,
        "host": "acme.privatelink.snowflakecomputing.com",
        "port": 443,
        "protocol": "https",
    }


@pytest.mark.req("REQ-012")
def test_profile_defaults_schema_to_the_product_name(target: ProfileTarget) -> None:
    profile = plugin.generate_dbt_profile(compute(settings(schema=None)), target)
    assert (profile["schema"], profile["threads"]) == ("orders_eu", 4)
    numeric = ProfileTarget("dev", "2024-sales", target.project_dir, target.state_dir)
    assert schema_name(compute(settings(schema=None)), numeric) == "_2024_sales"


@pytest.mark.req("REQ-012")
def test_keypair_profile_makes_the_key_path_absolute(target: ProfileTarget) -> None:
    config = settings(
        password=None,
        private_key_path="keys/rsa_key.p8",
        private_key_passphrase=SecretReference(PASSPHRASE_VAR),
    )
    profile = plugin.generate_dbt_profile(compute(config), target)
    assert profile["private_key_path"] == str(target.project_dir / "keys" / "rsa_key.p8")
    assert profile["private_key_passphrase"] == "{{ env_var('FLOE_TEST_SF_PASSPHRASE') }}"
    assert "authenticator" not in profile and "password" not in profile


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("method", METHODS)
def test_profile_of_each_method_passes_dbt_snowflakes_own_validation(
    method: str, keys: dict[str, Any], target: ProfileTarget, secrets_env: None
) -> None:
    """translate_aliases, validate and from_dict, then the adapter's own ``auth_args()``."""
    import os

    from dbt.adapters.factory import load_plugin

    profile = plugin.generate_dbt_profile(compute(method_settings(method, keys)), target)
    rendered = render_env_vars(profile, os.environ)
    credentials_class = load_plugin(rendered.pop("type"))
    data = credentials_class.translate_aliases(rendered)
    data.pop("threads")
    credentials_class.validate(data)
    credentials = credentials_class.from_dict(data)
    assert (credentials.database, credentials.schema, credentials.warehouse) == (
        DATABASE,
        "dev",
        "compute_wh",
    )
    auth = credentials.auth_args()  # loads and decrypts the key as dbt-snowflake will
    if method.startswith("keypair"):
        assert auth["private_key"] == keys["der"]
    else:
        assert auth["private_key"] is None
    expected = {"oauth": "oauth", "externalbrowser": "externalbrowser"}.get(method)
    assert auth.get("authenticator") == expected
    if method == "oauth":
        assert auth["token"] == "oauth-access-token-" + CANARY
    for secret in ("password", "token", "private_key", "private_key_passphrase"):
        if secret in profile:
            assert profile[secret].startswith("{{ env_var('FLOE_TEST_SF_"), secret


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (settings(account="https://xy12345.snowflakecomputing.com"), "such as 'xy12345'"),
        (settings(account="xy12345.us-east-1.snowflakecomputing.com"), "such as 'xy12345.us-east-1'"),
        (settings(host="http://127.0.0.1:8080"), "is not a host name"),
        (settings(password="hunter22"), "password must be a secret reference"),
        (settings(token=SecretReference("T")), "method oauth does not use password"),
        (settings(method="password", private_key_path="/k"), "does not use private_key_path"),
        (settings(password=None), "no credential is set"),
        (settings(password=None, user=None, private_key_path="/k"), "method keypair needs user"),
        (settings(password=None, private_key_path="/k", private_key=SecretReference("K")), "(both are set)"),
        (settings(method="oauth", password=None), "method oauth needs token"),
        (settings(method="kerberos"), "is not supported"),
        (settings(database=""), "database is not set"),
        (settings(password=SecretReference("bad-name")), "not an environment variable name"),
    ],
)
def test_inconsistent_settings_are_refused_with_the_fix(
    config: dict[str, Any], expected: str, target: ProfileTarget
) -> None:
    with pytest.raises(PluginExecutionError) as info:
        plugin.generate_dbt_profile(compute(config), target)
    assert expected in info.value.render()
    assert info.value.problems[0].fix
    result = plugin.validate_connection(compute(config), target, timeout=5)
    assert not result.success and expected in result.message


@pytest.mark.req("REQ-012")
def test_identifiers_resolve_like_snowflake() -> None:
    assert sql_identifier("analytics") == '"ANALYTICS"'
    assert sql_identifier("raw_2024$") == '"RAW_2024$"'
    assert sql_identifier("my-db") == '"my-db"'
    assert sql_identifier('"MixedCase"') == '"MixedCase"'
    assert sql_identifier('x"; drop database prod; --') == '"x""; drop database prod; --"'
    assert check_settings(compute(settings()), "t") == "password"


@pytest.mark.req("REQ-012")
def test_importing_the_engine_is_cheap() -> None:
    code = (
        "import sys, floe.engines.snowflake as m\n"
        "heavy = sorted(n for n in sys.modules if n in ('importlib.metadata', 'urllib.request') "
        "or n.split('.')[0] in ('snowflake', 'dbt', 'jsonschema', 'cryptography', 'duckdb'))\n"
        "print(m.plugin.name, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "snowflake []"


@pytest.mark.req("REQ-012")
def test_engine_describes_itself() -> None:
    info = plugin.floe_engine_info()
    assert (info.name, info.dbt_adapter) == ("snowflake", "snowflake")
    assert info.version and info.version[0].isdigit()
    assert isinstance(plugin, SnowflakeEngine)


# -- REQ-012: dbt through the generated profile, against fakesnow ---------------------------------------


@pytest.fixture
def dbt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No usage statistics or version check; dbt's logs and target/ in tmp_path; an empty home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return tmp_path / "dbt-logs"


def _project(tmp_path: Path, profile: dict[str, Any]) -> Path:
    """A dbt project of two table models, ``second`` ref()-ing ``first``, and its profiles.yml."""
    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: floe_sf\nversion: '1.0'\nconfig-version: 2\nprofile: floe_sf\n"
        "models:\n  floe_sf:\n    +materialized: table\n"
    )
    (project / "models" / "first.sql").write_text("select 1 as id, 'a' as name union all select 2, 'b'")
    (project / "models" / "second.sql").write_text("select id, upper(name) as name from {{ ref('first') }}")
    (project / "profiles.yml").write_text(
        yaml.safe_dump({"floe_sf": {"target": "dev", "outputs": {"dev": profile}}})
    )
    return project


def _dbt(args: list[str], project: Path) -> Any:
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_through_the_generated_profile(
    fakesnow: FakesnowServer, tmp_path: Path, target: ProfileTarget, secrets_env: None, dbt_env: Path
) -> None:
    import snowflake.connector

    profile = plugin.generate_dbt_profile(compute(at(fakesnow, schema="floe_run")), target)
    project = _project(tmp_path, profile)
    debug = _dbt(["debug"], project)
    assert debug.success, debug.exception
    run = _dbt(["run"], project)
    assert run.success, run.exception
    assert sorted((r.node.name, str(r.status)) for r in run.result.results) == [
        ("first", "success"),
        ("second", "success"),
    ]
    with snowflake.connector.connect(
        account="fakesnow",
        user="reader",
        password="any",
        host=fakesnow.host,
        port=fakesnow.port,
        protocol="http",
        platform_detection_timeout_seconds=0.0,
    ) as conn:
        cursor = conn.cursor()
        cursor.execute(f"select id, name from {DATABASE}.floe_run.second order by id")
        assert cursor.fetchall() == [(1, "A"), (2, "B")]
    written = [(project / "profiles.yml").read_text()]
    written += [p.read_text(errors="replace") for p in dbt_env.rglob("*") if p.is_file()]
    written += [p.read_text(errors="replace") for p in (tmp_path / "dbt-target").rglob("*.json")]
    assert written[1:], "dbt wrote no logs"
    assert not [text[:200] for text in written if CANARY in text]


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("method", ["keypair-file", "keypair-secret", "oauth"])
def test_dbt_debug_with_keypair_and_oauth_profiles(
    method: str,
    fakesnow: FakesnowServer,
    keys: dict[str, Any],
    tmp_path: Path,
    target: ProfileTarget,
    secrets_env: None,
    dbt_env: Path,
) -> None:
    """dbt-snowflake loads the key (decrypting it) or passes the token, and the connector logs in."""
    config = {
        **method_settings(method, keys),
        "host": fakesnow.host,
        "port": fakesnow.port,
        "protocol": "http",
    }
    project = _project(tmp_path, plugin.generate_dbt_profile(compute(config), target))
    debug = _dbt(["debug"], project)
    assert debug.success, debug.exception
    logs = "".join(p.read_text(errors="replace") for p in dbt_env.rglob("*") if p.is_file())
    assert CANARY not in logs and keys["der_b64"][:40] not in logs


# -- REQ-017: packages -----------------------------------------------------------------------------


@pytest.mark.req("REQ-017")
def test_required_packages_are_bounded_and_satisfied_here() -> None:
    from packaging.requirements import Requirement

    names = set()
    for text in plugin.get_required_dbt_packages():
        requirement = Requirement(text)
        names.add(requirement.name)
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", ">"} and operators & {"<", "<="}, text
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (text, installed)
    assert names == {"dbt-core", "dbt-snowflake", "snowflake-connector-python"}


# -- REQ-014: validate_connection against fakesnow ----------------------------------------------------


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize("method", ["password", "keypair-file", "keypair-secret", "oauth"])
def test_validate_succeeds_for_each_method(
    method: str, fakesnow: FakesnowServer, keys: dict[str, Any], target: ProfileTarget, secrets_env: None
) -> None:
    config = {
        **method_settings(method, keys),
        "host": fakesnow.host,
        "port": fakesnow.port,
        "protocol": "http",
    }
    start = time.monotonic()
    result = plugin.validate_connection(compute(config), target, timeout=10)
    assert time.monotonic() - start < 5
    assert result.success, result.message
    expected_method = method.split("-")[0]
    assert result.details["method"] == expected_method
    assert result.details["version"] == "10.0.0"  # fakesnow's current_version()
    assert (result.details["warehouse"], result.details["database"]) == ("compute_wh", DATABASE)
    assert f"method {expected_method}" in result.message and "warehouse compute_wh" in result.message
    assert CANARY not in repr(result)


@pytest.mark.req("REQ-014")
def test_validate_reports_whether_the_schema_exists(
    fakesnow: FakesnowServer, target: ProfileTarget, secrets_env: None
) -> None:
    import snowflake.connector

    config = compute(at(fakesnow, schema="staging_area"))
    result = plugin.validate_connection(config, target, timeout=10)
    assert result.success and result.details["schema_exists"] is False
    assert "schema staging_area does not exist yet (dbt creates it)" in result.message
    with snowflake.connector.connect(
        account="fakesnow",
        user="admin",
        password="any",
        host=fakesnow.host,
        port=fakesnow.port,
        protocol="http",
        platform_detection_timeout_seconds=0.0,
    ) as admin:
        admin.cursor().execute(f"CREATE SCHEMA {DATABASE}.staging_area")
    result = plugin.validate_connection(config, target, timeout=10)
    assert result.success and result.details["schema_exists"] is True
    assert "schema staging_area exists" in result.message


@pytest.mark.req("REQ-014")
def test_validate_reports_a_missing_database(
    fakesnow: FakesnowServer, target: ProfileTarget, secrets_env: None
) -> None:
    result = plugin.validate_connection(compute(at(fakesnow, database="no_such_db")), target, timeout=10)
    assert not result.success
    assert "the database no_such_db does not exist or role" in result.message
    assert "GRANT USAGE ON DATABASE no_such_db" in result.message
    assert result.details["stage"] == "using the database no_such_db"


@pytest.mark.req("REQ-014")
def test_validate_through_floes_engine_handle(
    fakesnow: FakesnowServer, target: ProfileTarget, secrets_env: None
) -> None:
    engine = EngineRegistry.discover().get("snowflake")
    assert engine is not None
    result = engine.validate_connection(compute(at(fakesnow)), target)
    assert result.success, result.message


@pytest.mark.req("REQ-014")
def test_validate_names_an_unset_secret(target: ProfileTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_VAR, raising=False)
    result = plugin.validate_connection(compute(at(("127.0.0.1", free_port()))), target, timeout=5)
    assert not result.success
    assert f"the secret environment variable {PASSWORD_VAR} is not set" in result.message


@pytest.mark.req("REQ-014")
def test_validate_refused_port_fails_fast(target: ProfileTarget, secrets_env: None) -> None:
    port = free_port()
    start = time.monotonic()
    result = plugin.validate_connection(compute(at(("127.0.0.1", port))), target, timeout=10)
    assert time.monotonic() - start < 4, "the connector's retries must not wait"
    assert not result.success
    assert f"the connection to http://127.0.0.1:{port} was refused" in result.message
    assert "check host and port" in result.message
    assert result.details["stage"] == f"logging in to http://127.0.0.1:{port}"


@pytest.mark.req("REQ-014")
def test_validate_silent_server_answers_within_the_timeout(
    silent_server: tuple[str, int], target: ProfileTarget, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    deadlines = record_deadlines(monkeypatch)
    start = time.monotonic()
    result = plugin.validate_connection(compute(at(silent_server)), target, timeout=3)
    assert_not_hung(time.monotonic() - start, 3)
    assert deadlines and max(deadlines) <= 3  # every deadline the check set is within its timeout
    assert not result.success
    assert "did not answer" in result.message and "firewall" in result.message


@pytest.mark.req("REQ-014")
def test_validate_unknown_host(target: ProfileTarget, secrets_env: None) -> None:
    result = plugin.validate_connection(compute(at(("floe-no-such-host.invalid", 443))), target, timeout=5)
    assert not result.success
    assert "cannot be resolved" in result.message and "check account" in result.message


@pytest.mark.req("REQ-014")
def test_validate_wrong_password_against_snowflakes_login_answer(
    target: ProfileTarget, secrets_env: None
) -> None:
    """fakesnow accepts any password: this is Snowflake's answer (390100), parsed by the connector."""
    with scripted_snowflake({"/session/v1/login-request": LOGIN_REFUSED}) as (host, port, requests):
        result = plugin.validate_connection(compute(at((host, port))), target, timeout=5)
    assert [path for path, _ in requests] == ["/session/v1/login-request"]
    assert not result.success
    assert "Snowflake refused the login: incorrect user name or password for floe" in result.message
    assert "check user and the value of the password secret" in result.message
    assert CANARY not in repr(result)


@pytest.mark.req("REQ-014")
def test_externalbrowser_asks_for_the_sso_url_and_never_opens_a_browser(
    fakesnow: FakesnowServer, keys: dict[str, Any], target: ProfileTarget
) -> None:
    config = method_settings("externalbrowser", keys)
    with scripted_snowflake({"/session/authenticator-request": SSO_URL}) as (host, port, requests):
        result = plugin.validate_connection(
            compute({**config, "host": host, "port": port, "protocol": "http"}), target, timeout=5
        )
    assert result.success, result.message
    assert "not performed" in result.message and result.details["sso_url_host"] == "idp.example.test"
    ((path, body),) = requests
    assert path == "/session/authenticator-request"
    assert body["data"]["AUTHENTICATOR"] == "EXTERNALBROWSER" and body["data"]["LOGIN_NAME"] == "floe"
    # fakesnow has no SSO endpoint: reachable, but no browser login there
    result = plugin.validate_connection(
        compute({**config, "host": fakesnow.host, "port": fakesnow.port, "protocol": "http"}),
        target,
        timeout=5,
    )
    assert not result.success and "answered HTTP 404 to the SSO request" in result.message


@pytest.mark.req("REQ-014")
def test_externalbrowser_refused_port(keys: dict[str, Any], target: ProfileTarget) -> None:
    config = {
        **method_settings("externalbrowser", keys),
        "host": "127.0.0.1",
        "port": free_port(),
        "protocol": "http",
    }
    result = plugin.validate_connection(compute(config), target, timeout=5)
    assert not result.success and "was refused" in result.message


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"private_key_passphrase": SecretReference("FLOE_TEST_SF_WRONG")}, "could not be decrypted"),
        ({"private_key_passphrase": None}, "is encrypted and no passphrase is given"),
        ({"private_key_path": "PLAIN"}, "is not encrypted but private_key_passphrase is set"),
        ({"private_key_path": "missing.p8"}, "cannot read the private key file"),
        ({"private_key_path": "EC", "private_key_passphrase": None}, "not an RSA key"),
        ({"private_key_path": "GARBAGE"}, "is not a private key that can be read"),
        (
            {
                "private_key_path": None,
                "private_key_passphrase": None,
                "private_key": SecretReference("FLOE_TEST_SF_WRONG"),
            },
            "neither PEM nor base64",
        ),
    ],
)
def test_validate_explains_private_key_problems(
    overrides: dict[str, Any],
    expected: str,
    keys: dict[str, Any],
    target: ProfileTarget,
    secrets_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FLOE_TEST_SF_WRONG", "not-the-passphrase!")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    files = {"PLAIN": str(keys["plain"]), "EC": str(keys["ec"]), "GARBAGE": str(garbage)}
    config = method_settings("keypair-file", keys)
    for key, value in overrides.items():
        config[key] = files.get(value, value) if isinstance(value, str) else value
    config = {k: v for k, v in config.items() if v is not None}
    config.update(host="127.0.0.1", port=free_port(), protocol="http")
    result = plugin.validate_connection(compute(config), target, timeout=5)
    assert not result.success
    assert expected in result.message, result.message
    assert result.details["stage"] == "reading the private key"
    assert CANARY not in repr(result) and "not-the-passphrase!" not in repr(result)


@pytest.mark.req("REQ-014")
@pytest.mark.req("REQ-012")
def test_secret_values_never_leave_the_engine(
    fakesnow: FakesnowServer, keys: dict[str, Any], target: ProfileTarget, secrets_env: None
) -> None:
    """The canary is the password and the passphrase; every output of every method is searched."""
    outputs: list[str] = []
    for method in METHODS:
        config = compute(
            {
                **method_settings(method, keys),
                "host": fakesnow.host,
                "port": fakesnow.port,
                "protocol": "http",
            }
        )
        outputs.append(json.dumps(plugin.generate_dbt_profile(config, target)))
        result = plugin.validate_connection(config, target, timeout=10)
        outputs += [repr(result), json.dumps(dict(result.details), default=str), repr(config)]
    with scripted_snowflake({"/session/v1/login-request": LOGIN_REFUSED}) as (host, port, _):
        outputs.append(repr(plugin.validate_connection(compute(at((host, port))), target, timeout=5)))
    leaked = [o[:200] for o in outputs if CANARY in o or keys["der_b64"][:40] in o]
    assert not leaked


# -- REQ-015 and REQ-013 ----------------------------------------------------------------------------------


@pytest.mark.req("REQ-015")
def test_resources_are_small_and_valid_kubernetes() -> None:
    from kubernetes.client import V1ResourceRequirements

    from floe.resources import parse_quantity

    requirements = plugin.get_resource_requirements(compute(settings()))
    assert requirements == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    model = V1ResourceRequirements(**requirements)
    assert model.requests is not None and model.limits is not None
    for key, value in model.requests.items():
        assert parse_quantity(value) <= parse_quantity(model.limits[key])


@pytest.mark.req("REQ-013")
def test_no_attachment_sql_for_any_catalog() -> None:
    for catalog in (
        CatalogConfig(type="rest", name="lake", uri="https://cat/api", warehouse="wh"),
        CatalogConfig(type="sql", name="lake"),
    ):
        assert plugin.get_catalog_attachment_sql(compute(settings()), catalog) is None


# -- REQ-018: error translation of real client errors ----------------------------------------------------


def _instant() -> Iterator[int]:
    while True:
        yield 0


def _connect_error(**arguments: Any) -> BaseException:
    """The connector's own error for ``arguments`` (its retries do not wait, to keep tests quick)."""
    import snowflake.connector

    try:
        snowflake.connector.connect(
            user="floe",
            password="x",
            login_timeout=2,
            network_timeout=2,
            socket_timeout=2,
            platform_detection_timeout_seconds=0.0,
            backoff_policy=_instant,
            **arguments,
        )
    except snowflake.connector.errors.Error as exc:
        return exc
    raise AssertionError(f"the connector connected with {arguments}")


def _sql_error(server: FakesnowServer, sql: str) -> BaseException:
    import snowflake.connector

    with snowflake.connector.connect(
        account="fakesnow",
        user="floe",
        password="any",
        host=server.host,
        port=server.port,
        protocol="http",
        platform_detection_timeout_seconds=0.0,
    ) as conn:
        try:
            conn.cursor().execute(sql)
        except snowflake.connector.errors.Error as exc:
            return exc
    raise AssertionError(f"fakesnow accepted {sql!r}")


@pytest.mark.req("REQ-018")
def test_translate_refused_connection() -> None:
    import snowflake.connector

    port = free_port()
    error = _connect_error(account="fakesnow", host="127.0.0.1", port=port, protocol="http")
    assert isinstance(error, snowflake.connector.errors.OperationalError)
    translated = plugin.translate_error(error, compute(at(("127.0.0.1", port))))
    assert translated is not None and translated.operation == "connect"
    assert f"http://127.0.0.1:{port} was refused" in translated.render()
    assert translated.cause and translated.cause.startswith("250001")


@pytest.mark.req("REQ-018")
def test_translate_unresolvable_account_and_invalid_identifier() -> None:
    import snowflake.connector

    error = _connect_error(account="fakesnow", host="floe-no-such-host.invalid", port=443, protocol="http")
    translated = plugin.translate_error(error, compute(at(("floe-no-such-host.invalid", 443))))
    assert translated is not None and "cannot be resolved" in translated.render()
    error = _connect_error(account="https://xy12345.snowflakecomputing.com")
    assert isinstance(error, snowflake.connector.errors.ProgrammingError) and error.errno == 251001
    translated = plugin.translate_error(error, None)
    assert translated is not None and "without https://" in translated.render()


@pytest.mark.req("REQ-018")
def test_translate_programming_errors_from_fakesnow(fakesnow: FakesnowServer) -> None:
    import snowflake.connector

    error = _sql_error(fakesnow, "select * from no_such_db.no_such_schema.orders")
    assert isinstance(error, snowflake.connector.errors.ProgrammingError)
    translated = plugin.translate_error(error, compute(settings()))
    assert translated is not None and translated.operation == "run SQL"
    assert "role transformer has the privileges" in translated.render()
    error = _sql_error(fakesnow, "select * from orders")  # no current schema
    translated = plugin.translate_error(error, compute(settings()))
    assert translated is not None and "does not have a current" in translated.render()
    assert "set database (and schema)" in translated.render()


@pytest.mark.req("REQ-018")
def test_translate_database_error_of_a_refused_login(secrets_env: None) -> None:
    import snowflake.connector

    with scripted_snowflake({"/session/v1/login-request": LOGIN_REFUSED}) as (host, port, _):
        error = _connect_error(account="acme", host=host, port=port, protocol="http")
    assert type(error) is snowflake.connector.errors.DatabaseError
    translated = plugin.translate_error(error, compute(settings(method="password")))
    assert translated is not None and translated.operation == "log in"
    assert "incorrect user name or password for floe" in translated.render()


@pytest.mark.req("REQ-018")
def test_translate_errors_dbt_wrapped(fakesnow: FakesnowServer) -> None:
    import snowflake.connector
    from dbt.adapters.exceptions.connection import FailedToConnectError
    from dbt_common.exceptions import DbtDatabaseError

    # dbt-snowflake re-raises a ProgrammingError as DbtDatabaseError(message): only the text is left
    text_only = DbtDatabaseError(str(_sql_error(fakesnow, "select * from no_such_db.s.t")))
    translated = plugin.translate_error(text_only, compute(settings()))
    assert translated is not None and translated.operation == "run SQL"
    # dbt's retry_connection raises FailedToConnectError(str(e)) inside ``except``: the chain keeps it
    port = free_port()
    try:
        try:
            raise _connect_error(account="fakesnow", host="127.0.0.1", port=port, protocol="http")
        except snowflake.connector.errors.Error as exc:
            raise FailedToConnectError(str(exc))  # noqa: B904 - as dbt does
    except FailedToConnectError as wrapped:
        translated = plugin.translate_error(wrapped, compute(at(("127.0.0.1", port))))
    assert translated is not None and "was refused" in translated.render()


@pytest.mark.req("REQ-018")
def test_translate_leaves_unknown_errors_alone() -> None:
    assert plugin.translate_error(ValueError("nothing to do with Snowflake"), None) is None
    assert plugin.translate_error(KeyError("database"), compute(settings())) is None


@pytest.mark.req("REQ-018")
def test_translated_errors_hide_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from snowflake.connector.errors import ProgrammingError

    monkeypatch.setenv(PASSWORD_VAR, CANARY)
    error = ProgrammingError(msg=f"SQL compilation error: Object '{CANARY}' does not exist", errno=2003)
    translated = plugin.translate_error(error, compute(settings()))
    assert translated is not None
    assert CANARY not in translated.render() and CANARY not in (translated.cause or "")


# -- the compliance suite ---------------------------------------------------------------------------------


class TestSnowflakeCompliance(BaseComputePluginTests):
    """Snowflake through floe's compliance suite; fakesnow is the live endpoint."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "snowflake"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # a catalog integration is created once by an account administrator

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return settings(account="myorg-myaccount")

    @pytest.fixture
    def engine_endpoint(
        self, fakesnow: FakesnowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Endpoint:
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        return Endpoint(at(fakesnow), {PASSWORD_VAR: CANARY})

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]]:
        return lambda host, port: {"host": host, "port": port, "protocol": "http"}

    @pytest.fixture
    def client_error(self, refused_address: tuple[str, int]) -> BaseException:
        host, port = refused_address
        return _connect_error(account="fakesnow", host=host, port=port, protocol="http")


# -- a real `dbt build` through the profile `floe compile` writes -------------------------------------


@pytest.mark.req("REQ-012")
def test_dbt_build_twice_through_the_compiled_profile(
    fakesnow: FakesnowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds, a view, a table, generic tests and an incremental model built twice by dbt-snowflake
    on fakesnow, rows read back with the connector; the model sets ``tmp_relation_type: transient``
    and ``incremental_strategy: delete+insert`` (see :func:`tests.support.dbt_build.on_fakesnow`)."""
    from tests.support import dbt_build

    target = dbt_build.on_fakesnow(
        fakesnow, database=DATABASE, schema="orders_build", password_var=PASSWORD_VAR, password=CANARY
    )
    dbt_build.build_twice(tmp_path, target, monkeypatch)
