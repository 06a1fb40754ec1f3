"""The Trino engine (REQ-012 to REQ-018), against a Trino coordinator peer, dbt-trino and dbt.

No Trino server can be installed here, so the peer (:mod:`tests.support.trino_peer`) is a scripted
coordinator on 127.0.0.1 that speaks Trino's real client protocol (``POST /v1/statement``, paging
through ``nextUri``, ``X-Trino-*`` headers, ``{"error": …}`` results), serves HTTPS with a test CA,
checks HTTP Basic passwords (what Trino's LDAP/file password authenticators see), JWT bearer tokens
and TLS client certificates, and runs the SQL in DuckDB. Everything on the client side is real: the
``trino`` client, dbt-trino's credentials classes, and in-process ``dbt debug``/``dbt run``/``dbt build``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trino
import yaml

from floe.engines.trino import TrinoEngine, plugin
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.testing import BaseComputePluginTests, Endpoint
from tests.support.trino_peer import CertificateFiles, TrinoPeer, make_pki

pytestmark = pytest.mark.filterwarnings(  # jinja2 compiling dbt-trino's macros
    "ignore:invalid escape sequence:DeprecationWarning"
)

PASSWORD = "canary-pw-" + secrets.token_hex(8)
"""alice's password on the peer, and the canary that must never appear in any output."""
JWT = "canary-jwt-" + secrets.token_hex(12)
CATALOG = "lake"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_peer(pki: CertificateFiles) -> Iterator[TrinoPeer]:
    """HTTPS, password (alice), JWT (user jwt-user) and client certificates (CN alice)."""
    with TrinoPeer(
        (CATALOG,),
        passwords={"alice": PASSWORD},
        jwt_tokens={JWT: "jwt-user"},
        tls=pki,
        client_certificates=True,
    ) as peer:
        yield peer


@pytest.fixture(scope="module")
def plain_peer() -> Iterator[TrinoPeer]:
    """Plain HTTP, no authentication (method none)."""
    with TrinoPeer((CATALOG,)) as peer:
        yield peer


@pytest.fixture(autouse=True)
def _no_global_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's verify (see the test)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "shop", tmp_path / "product", tmp_path / "product" / ".floe")


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRINO_PASSWORD", PASSWORD)
    monkeypatch.setenv("TRINO_JWT", JWT)


def compute(name: str = "trino", **config: Any) -> ComputeConfig:
    return ComputeConfig(name, "trino", config)


def ldap(peer: TrinoPeer, pki: CertificateFiles, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": peer.port,
            "user": "alice",
            "password": SecretReference("TRINO_PASSWORD"),
            "database": CATALOG,
            "schema": "analytics",
            "verify": str(pki.ca),
            **extra,
        }
    )


def jwt(peer: TrinoPeer, pki: CertificateFiles, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": peer.port,
            "method": "jwt",
            "jwt_token": SecretReference("TRINO_JWT"),
            "database": CATALOG,
            "schema": "analytics",
            "verify": str(pki.ca),
            **extra,
        }
    )


def certificate(peer: TrinoPeer, pki: CertificateFiles, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": peer.port,
            "method": "certificate",
            "database": CATALOG,
            "schema": "analytics",
            "verify": str(pki.ca),
            "client_certificate_file": str(pki.client_cert),
            "client_private_key_file": str(pki.client_key),
            **extra,
        }
    )


def none(peer: TrinoPeer, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": peer.port,
            "user": "bob",
            "database": CATALOG,
            "schema": "analytics",
            **extra,
        }
    )


# -- REQ-012: the dbt profile ----------------------------------------------------------------------


def _credentials(profile: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    """dbt's own path from a profile output to credentials: aliases, JSON Schema, from_dict."""
    from dbt.adapters.factory import load_plugin

    from floe.testing.compliance import render_env_vars

    data = render_env_vars(dict(profile), environ or {})
    data.pop("type")
    data.pop("threads")
    credentials_class = load_plugin("trino")
    data = credentials_class.translate_aliases(data)
    credentials_class.validate(data)
    return credentials_class.from_dict(data)


@pytest.mark.req("REQ-012")
def test_profiles_of_every_method_pass_dbt_trinos_validation(
    target: ProfileTarget, pki: CertificateFiles
) -> None:
    base = {"host": "trino.example.com", "database": CATALOG, "schema": "analytics"}
    cases = {
        "none": (compute(**base, user="bob"), "TrinoNoneCredentials", "http", 8080),
        "ldap": (
            compute(**base, user="alice", password=SecretReference("TRINO_PASSWORD"), verify=str(pki.ca)),
            "TrinoLdapCredentials",
            "https",
            443,
        ),
        "jwt": (
            compute(**base, method="jwt", jwt_token=SecretReference("TRINO_JWT"), port=8443),
            "TrinoJwtCredentials",
            "https",
            8443,
        ),
        "certificate": (
            compute(
                **base,
                client_certificate_file=str(pki.client_cert),
                client_private_key_file=str(pki.client_key),
                verify=False,
            ),
            "TrinoCertificateCredentials",
            "https",
            443,
        ),
    }
    for method, (config, credentials_type, scheme, port) in cases.items():
        profile = plugin.generate_dbt_profile(config, target)
        assert profile["type"] == "trino" and profile["method"] == method
        assert (profile["database"], profile["schema"], profile["threads"]) == (CATALOG, "analytics", 4)
        credentials = _credentials(profile, {"TRINO_PASSWORD": "x", "TRINO_JWT": "y"})
        assert type(credentials).__name__ == credentials_type, method
        assert credentials.http_scheme.value == scheme and credentials.port == port, method
        assert credentials.database == CATALOG and credentials.schema == "analytics"
    ldap_profile = plugin.generate_dbt_profile(cases["ldap"][0], target)
    assert ldap_profile["password"] == "{{ env_var('TRINO_PASSWORD') }}"
    assert ldap_profile["cert"] == str(pki.ca) and "http_scheme" not in ldap_profile
    assert plugin.generate_dbt_profile(cases["jwt"][0], target)["jwt_token"] == "{{ env_var('TRINO_JWT') }}"
    cert_profile = plugin.generate_dbt_profile(cases["certificate"][0], target)
    assert cert_profile["client_private_key"] == str(pki.client_key) and cert_profile["cert"] is False


@pytest.mark.req("REQ-012")
def test_profile_options(target: ProfileTarget) -> None:
    config = compute(
        host="h",
        user="u",
        database="c",
        schema="s",
        threads=8,
        http_scheme="https",
        session_properties={"query_max_run_time": "2h", "iceberg.compression_codec": "ZSTD"},
    )
    profile = plugin.generate_dbt_profile(config, target)
    assert profile["http_scheme"] == "https" and profile["port"] == 443 and profile["threads"] == 8
    credentials = _credentials(profile)
    assert credentials.session_properties == {"query_max_run_time": "2h", "iceberg.compression_codec": "ZSTD"}
    impersonating = compute(
        host="h",
        user="svc",
        password=SecretReference("P"),
        impersonation_user="alice",
        database="c",
        schema="s",
    )
    assert (
        _credentials(plugin.generate_dbt_profile(impersonating, target), {"P": "x"}).impersonation_user
        == "alice"
    )


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"user": "u", "password": SecretReference("P"), "method": "none"}, "set method: ldap"),
        ({"user": "u", "password": SecretReference("P"), "http_scheme": "http"}, "only over HTTPS"),
        ({"user": "u", "password": "literal"}, "must be a secret reference"),
        ({"method": "jwt"}, "needs a jwt_token"),
        ({"password": SecretReference("P")}, "needs a user"),
        ({"method": "certificate", "client_certificate_file": "/c.pem"}, "client_private_key_file"),
        ({"user": "u", "password": SecretReference("P"), "jwt_token": SecretReference("J")}, "method is"),
        ({"user": "u", "method": "oauth"}, "use one of none, ldap, jwt, certificate"),
    ],
)
def test_inconsistent_settings_are_refused_with_a_fix(
    target: ProfileTarget, config: dict[str, Any], expected: str
) -> None:
    with pytest.raises(PluginExecutionError) as info:
        plugin.generate_dbt_profile(compute(host="h", database="c", schema="s", **config), target)
    assert expected in info.value.render() and "fix:" in info.value.render()


@pytest.mark.req("REQ-012")
def test_config_schema_accepts_each_method_and_rejects_mixtures() -> None:
    from floe.schemas import store

    validator = store().validator(store().add(plugin.config_schema()))
    base = {"host": "trino.example.com", "database": "lake", "schema": "analytics"}
    ref = {"secret_ref": "TRINO_SECRET"}
    good = [
        {**base, "user": "bob"},
        {**base, "method": "ldap", "user": "alice", "password": ref, "verify": "/etc/ca.pem", "port": 8443},
        {**base, "method": "jwt", "jwt_token": ref, "verify": False},
        {**base, "method": "certificate", "client_certificate_file": "/c", "client_private_key_file": "/k"},
        {**base, "user": "bob", "http_scheme": "https", "session_properties": {"query_max_run_time": "1h"}},
    ]
    bad = [
        {**base, "user": "alice", "password": "plain-text"},
        {**base, "method": "ldap", "user": "alice"},
        {**base, "user": "alice", "password": ref, "http_scheme": "http"},
        {**base, "method": "oauth"},
        {"host": "h", "schema": "s"},
        {**base, "user": "bob", "hots": "typo"},
    ]
    for config in good:
        assert not list(validator.iter_errors(config)), config
    for config in bad:
        assert list(validator.iter_errors(config)), config
    for key in ("password", "jwt_token"):
        assert plugin.config_schema()["properties"][key]["$ref"].endswith("secretRef")


MANIFEST = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme}
plugins:
  compute:
    approved:
      - name: trino
        config:
          host: trino.example.com
          port: 8443
          user: alice
          password: {secret_ref: TRINO_PASSWORD}
          database: lake
          schema: analytics
          verify: true
          session_properties: {query_max_run_time: 2h}
    default: trino
"""


@pytest.mark.req("REQ-012")
def test_a_manifest_compiles_to_a_dbt_trino_profile(write: Callable[[str, str], Path]) -> None:
    """The schema types the YAML (port, verify), keeps the password a reference, and floe builds the profile."""
    from floe.compiler import compile_path
    from floe.errors import FloeError
    from tests.conftest import product

    write("platform/enterprise.yaml", MANIFEST)
    compiled = compile_path(product(write, "  - {type: dbt, path: models/}\n"))
    config = compiled.governance.registry.approved["trino"].config
    assert config["port"] == 8443 and config["verify"] is True
    assert config["password"] == SecretReference("TRINO_PASSWORD")
    (output,) = compiled.profiles["floe_trino"]["outputs"].values()
    assert output["method"] == "ldap" and output["password"] == "{{ env_var('TRINO_PASSWORD') }}"
    assert output["cert"] is True and output["session_properties"] == {"query_max_run_time": "2h"}
    write("platform/enterprise.yaml", MANIFEST.replace("{secret_ref: TRINO_PASSWORD}", "hunter2"))
    with pytest.raises(FloeError) as info:
        compile_path(product(write, "  - {type: dbt, path: models/}\n"))
    assert "{secret_ref: NAME}" in info.value.render() and "hunter2" not in info.value.render()


@pytest.mark.req("REQ-012")
def test_importing_the_engine_is_cheap() -> None:
    code = (
        "import sys, floe.engines.trino as m\n"
        "heavy = sorted(n for n in sys.modules if n == 'importlib.metadata' "
        "or n.split('.')[0] in ('trino', 'dbt', 'jsonschema', 'requests'))\n"
        "print(m.plugin.name, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "trino []"
    assert isinstance(plugin, TrinoEngine) and plugin.floe_engine_info().dbt_adapter == "trino"


# -- dbt through the generated profile -------------------------------------------------------------

MODELS = {
    "first.sql": "select 1 as id, 'a' as name union all select 2 as id, 'b' as name",
    "second.sql": "select f.id, cast(f.name as varchar) as name, current_catalog as catalog_name\n"
    "from {{ ref('first') }} as f",
}


@pytest.fixture
def dbt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No usage statistics or version check, dbt's logs and target/ in tmp_path."""
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return tmp_path / "dbt-logs"


def _dbt(tmp_path: Path, profile: dict[str, Any], *commands: list[str]) -> list[Any]:
    from dbt.cli.main import dbtRunner

    project = tmp_path / "project"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: floe_trino\nversion: '1.0'\nconfig-version: 2\nprofile: floe_trino\n"
        "models:\n  floe_trino:\n    +materialized: table\n"
    )
    for name, sql in MODELS.items():
        (project / "models" / name).write_text(sql)
    (project / "profiles.yml").write_text(
        yaml.safe_dump({"floe_trino": {"target": "dev", "outputs": {"dev": profile}}})
    )
    results = []
    for command in commands:
        result = dbtRunner().invoke([*command, "--project-dir", str(project), "--profiles-dir", str(project)])
        assert result.success, f"dbt {command[0]} failed: {result.exception}"
        results.append(result)
    return results


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_with_ldap_over_https(
    tmp_path: Path,
    target: ProfileTarget,
    secure_peer: TrinoPeer,
    pki: CertificateFiles,
    secrets_env: None,
    dbt_env: Path,
) -> None:
    profile = plugin.generate_dbt_profile(ldap(secure_peer, pki, schema="ldap_run", threads=2), target)
    start = len(secure_peer.log)
    _, run = _dbt(tmp_path, profile, ["debug"], ["run"])
    assert sorted(r.node.name for r in run.result.results) == ["first", "second"]
    assert secure_peer.sql("select * from lake.ldap_run.second order by id") == [
        (1, "a", CATALOG),
        (2, "b", CATALOG),
    ]
    seen = secure_peer.log[start:]
    assert {entry.user for entry in seen} == {"alice"}
    assert all(e.headers.get("Authorization", "").startswith("Basic ") for e in seen)
    assert any("create table" in e.sql.lower() for e in seen)
    logs = "".join(p.read_text(errors="replace") for p in dbt_env.rglob("*") if p.is_file())
    assert (
        logs and PASSWORD not in logs and PASSWORD not in (tmp_path / "project" / "profiles.yml").read_text()
    )


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_with_jwt_and_certificate(
    tmp_path: Path,
    target: ProfileTarget,
    secure_peer: TrinoPeer,
    pki: CertificateFiles,
    secrets_env: None,
    dbt_env: Path,
) -> None:
    start = len(secure_peer.log)
    _dbt(
        tmp_path / "jwt",
        plugin.generate_dbt_profile(jwt(secure_peer, pki, schema="jwt_run"), target),
        ["debug"],
        ["run"],
    )
    assert {e.user for e in secure_peer.log[start:]} == {"jwt-user"}
    assert all(e.headers.get("Authorization") == f"Bearer {JWT}" for e in secure_peer.log[start:])
    start = len(secure_peer.log)
    _dbt(tmp_path / "cert", plugin.generate_dbt_profile(certificate(secure_peer, pki), target), ["debug"])
    assert {e.user for e in secure_peer.log[start:]} == {"alice"}  # the certificate's CN
    assert not any("Authorization" in e.headers for e in secure_peer.log[start:])
    assert secure_peer.sql("select count(*) from lake.jwt_run.second") == [(2,)]


@pytest.mark.req("REQ-012")
def test_dbt_debug_with_method_none_over_http(
    tmp_path: Path, target: ProfileTarget, plain_peer: TrinoPeer, dbt_env: Path
) -> None:
    start = len(plain_peer.log)
    _dbt(tmp_path, plugin.generate_dbt_profile(none(plain_peer), target), ["debug"])
    assert plain_peer.log[start:] and {e.user for e in plain_peer.log[start:]} == {"bob"}


# -- REQ-017: packages -----------------------------------------------------------------------------


@pytest.mark.req("REQ-017")
def test_required_packages() -> None:
    from importlib import metadata

    from packaging.requirements import Requirement

    names = set()
    for text in plugin.get_required_dbt_packages():
        requirement = Requirement(text)
        names.add(requirement.name)
        assert requirement.specifier.contains(metadata.version(requirement.name), prereleases=True)
    assert names == {"dbt-core", "dbt-trino", "trino"}


# -- REQ-014: validate_connection ------------------------------------------------------------------


@pytest.mark.req("REQ-014")
def test_validate_succeeds_with_each_method(
    target: ProfileTarget,
    secure_peer: TrinoPeer,
    plain_peer: TrinoPeer,
    pki: CertificateFiles,
    secrets_env: None,
) -> None:
    secure_peer.sql("CREATE SCHEMA IF NOT EXISTS lake.validated")
    for config, user in [
        (ldap(secure_peer, pki, schema="validated"), "alice"),
        (jwt(secure_peer, pki), "jwt-user"),
        (certificate(secure_peer, pki), "alice"),
        (none(plain_peer), "bob"),
    ]:
        result = plugin.validate_connection(config, target, timeout=10)
        assert result.success, result.message
        assert result.details["current_user"] == user and result.details["trino_version"] == "476"
        assert result.details["catalog"] == CATALOG
        assert PASSWORD not in repr(result) and JWT not in repr(result)
    ok = plugin.validate_connection(ldap(secure_peer, pki, schema="validated"), target, timeout=10)
    assert ok.details["schema_exists"] is True and "schema validated exists" in ok.message
    fresh = plugin.validate_connection(ldap(secure_peer, pki, schema="brand_new"), target, timeout=10)
    assert fresh.success and fresh.details["schema_exists"] is False
    assert "dbt creates it" in fresh.message


@pytest.mark.req("REQ-014")
def test_validate_reports_a_wrong_password_or_token(
    target: ProfileTarget, secure_peer: TrinoPeer, pki: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_password = "canary-wrong-" + secrets.token_hex(6)
    monkeypatch.setenv("TRINO_PASSWORD", wrong_password)
    monkeypatch.setenv("TRINO_JWT", "canary-bad-token-" + secrets.token_hex(6))
    rejected = len(secure_peer.rejected)
    result = plugin.validate_connection(ldap(secure_peer, pki), target, timeout=10)
    assert not result.success
    assert "authentication failed" in result.message and "HTTP 401" in result.message
    assert "check user and the password in the secret TRINO_PASSWORD" in result.message
    assert wrong_password not in repr(result)
    result = plugin.validate_connection(jwt(secure_peer, pki), target, timeout=10)
    assert not result.success and "authentication failed" in result.message
    assert "token in the secret TRINO_JWT" in result.message
    assert [reason for _, reason in secure_peer.rejected[rejected:]] == [
        "Access Denied: Invalid credentials",
        "Unauthorized: invalid JWT",
    ]


@pytest.mark.req("REQ-014")
def test_validate_lists_the_catalogs_when_the_catalog_is_missing(
    target: ProfileTarget, secure_peer: TrinoPeer, pki: CertificateFiles, secrets_env: None
) -> None:
    result = plugin.validate_connection(ldap(secure_peer, pki, database="iceberg"), target, timeout=10)
    assert not result.success
    assert "no catalog 'iceberg'" in result.message and "(it has: lake, system)" in result.message
    assert result.details["catalogs"] == ["lake", "system"]


@pytest.mark.req("REQ-014")
def test_validate_explains_tls_problems(
    target: ProfileTarget,
    secure_peer: TrinoPeer,
    plain_peer: TrinoPeer,
    pki: CertificateFiles,
    secrets_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    untrusted = plugin.validate_connection(ldap(secure_peer, pki, verify=True), target, timeout=10)
    assert not untrusted.success
    assert (
        "TLS certificate" in untrusted.message
        and "set verify to the path of the CA bundle" in untrusted.message
    )
    # requests lets REQUESTS_CA_BUNDLE win over the client's verify: the message says so
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.server_cert))
    overridden = plugin.validate_connection(ldap(secure_peer, pki), target, timeout=10)
    assert not overridden.success and "REQUESTS_CA_BUNDLE is set" in overridden.message
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    https_to_http = plugin.validate_connection(ldap(plain_peer, pki), target, timeout=10)
    assert not https_to_http.success and "does not speak HTTPS" in https_to_http.message
    http_to_https = plugin.validate_connection(none(secure_peer), target, timeout=10)
    assert not http_to_https.success and "closed the connection" in http_to_https.message
    assert "check http_scheme" in http_to_https.message


@pytest.mark.req("REQ-014")
def test_validate_names_an_unset_secret_without_connecting(
    target: ProfileTarget, secure_peer: TrinoPeer, pki: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRINO_PASSWORD", raising=False)
    before = len(secure_peer.log) + len(secure_peer.rejected)
    result = plugin.validate_connection(ldap(secure_peer, pki), target, timeout=10)
    assert not result.success and "TRINO_PASSWORD (password) is not set" in result.message
    assert len(secure_peer.log) + len(secure_peer.rejected) == before


@pytest.mark.req("REQ-014")
def test_validate_names_the_package_when_the_client_is_missing(
    target: ProfileTarget, plain_peer: TrinoPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "trino", None)  # import fails as if not installed
    result = plugin.validate_connection(none(plain_peer), target, timeout=10)
    assert not result.success and "the trino client is not installed" in result.message
    assert "pip install 'dbt-trino>=1.11,<1.12' 'trino>=0.330,<1'" in result.message


# -- REQ-015 / REQ-013 -----------------------------------------------------------------------------


@pytest.mark.req("REQ-015")
def test_resources_of_a_client_pod() -> None:
    assert plugin.get_resource_requirements(compute(threads=4)) == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert plugin.get_resource_requirements(compute(threads=16))["limits"]["memory"] == "1Gi"


@pytest.mark.req("REQ-013")
def test_no_attachment_sql_because_catalogs_are_coordinator_configuration() -> None:
    catalog = CatalogConfig(type="rest", name="lake", uri="https://catalog.example/api", warehouse="wh")
    assert plugin.get_catalog_attachment_sql(compute(), catalog) is None


# -- REQ-018: errors -------------------------------------------------------------------------------


def _client(peer: TrinoPeer, pki: CertificateFiles | None = None, **kwargs: Any) -> Any:
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=peer.port,
        user="alice",
        catalog=CATALOG,
        schema="analytics",
        max_attempts=1,
        request_timeout=5,
        http_scheme="https" if pki else "http",
        verify=str(pki.ca) if pki else True,
        **kwargs,
    )


def _raised(run: Callable[[], Any]) -> BaseException:
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - the error under test
        return exc
    raise AssertionError("no error was raised")


@pytest.mark.req("REQ-018")
def test_translate_real_client_errors(
    secure_peer: TrinoPeer, plain_peer: TrinoPeer, pki: CertificateFiles, refused_address: tuple[str, int]
) -> None:
    from dbt_common.exceptions import DbtDatabaseError

    plain_peer.sql("CREATE SCHEMA IF NOT EXISTS lake.analytics")
    cursor = _client(plain_peer).cursor()
    missing_table = _raised(lambda: cursor.execute("select * from no_such_table"))
    syntax = _raised(lambda: cursor.execute("selec 1"))
    wrong_password = _raised(
        lambda: (
            _client(secure_peer, pki, auth=trino.auth.BasicAuthentication("alice", "nope"))
            .cursor()
            .execute("select 1")
        )
    )
    refused = _raised(
        lambda: (
            trino.dbapi.connect(host=refused_address[0], port=refused_address[1], user="u", max_attempts=1)
            .cursor()
            .execute("select 1")
        )
    )
    config = ldap(secure_peer, pki)
    cases = [
        (missing_table, "TrinoUserError", "run SQL", "TABLE_NOT_FOUND", "dbt run --select"),
        (syntax, "TrinoUserError", "parse SQL", "SYNTAX_ERROR", "Trino's SQL dialect"),
        (
            wrong_password,
            "HttpError",
            "authentication",
            "rejected the credentials of user alice",
            "TRINO_PASSWORD",
        ),
        (refused, "TrinoConnectionError", "connect", "connection refused", "check host and port"),
        # dbt-trino re-raises client errors as DbtDatabaseError(str(error)): only the text survives
        (DbtDatabaseError(str(missing_table)), "DbtDatabaseError", "run SQL", "TABLE_NOT_FOUND", "dbt run"),
    ]
    for exc, class_name, operation, in_message, in_fix in cases:
        assert type(exc).__name__ == class_name
        error = plugin.translate_error(exc, config)
        assert isinstance(error, PluginExecutionError), exc
        problem = error.problems[0]
        assert error.operation == operation and in_message in problem.message, (exc, problem)
        assert problem.fix and in_fix in problem.fix, (exc, problem.fix)
        assert error.compute == "trino" and "Traceback" not in error.render()


@pytest.mark.req("REQ-018")
def test_translate_unknown_errors_to_none() -> None:
    assert plugin.translate_error(ValueError("error 401: not from trino"), None) is None
    assert plugin.translate_error(trino.exceptions.NotSupportedError("parameter type"), None) is None


# -- REQ-020: the compliance suite -----------------------------------------------------------------


class TestTrinoCompliance(BaseComputePluginTests):
    """Trino through floe's compliance suite; the live endpoint is the HTTPS peer with LDAP."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "trino"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # a Trino catalog is server configuration

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {"host": "trino.example.com", "user": "floe", "database": CATALOG, "schema": "analytics"}

    @pytest.fixture
    def engine_endpoint(self, secure_peer: TrinoPeer, pki: CertificateFiles) -> Endpoint:
        return Endpoint(
            {
                "host": "127.0.0.1",
                "port": secure_peer.port,
                "method": "ldap",
                "user": "alice",
                "password": SecretReference("TRINO_PASSWORD"),
                "database": CATALOG,
                "schema": "compliance",
                "verify": str(pki.ca),
            },
            {"TRINO_PASSWORD": PASSWORD},
        )

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]]:
        return lambda host, port: {
            "host": host,
            "port": port,
            "user": "floe",
            "database": CATALOG,
            "schema": "analytics",
        }

    @pytest.fixture
    def client_error(self, plain_peer: TrinoPeer) -> BaseException:
        plain_peer.sql("CREATE SCHEMA IF NOT EXISTS lake.analytics")
        return _raised(lambda: _client(plain_peer).cursor().execute("select * from no_such_table"))


def test_peer_speaks_the_protocol_details(plain_peer: TrinoPeer) -> None:
    """The peer pages results, keeps prepared statements and session state like Trino."""
    connection = _client(plain_peer, legacy_prepared_statements=True)
    cursor = connection.cursor()
    cursor.execute("select * from (values 1, 2, 3, 4, 5) as t(x) where x > ?", [1])
    assert [r[0] for r in cursor.fetchall()] == [2, 3, 4, 5]
    assert any(e.sql.startswith("PREPARE ") for e in plain_peer.log)
    cursor.execute("show catalogs")
    assert cursor.fetchall() == [["lake"], ["system"]]
    payload = json.dumps(plain_peer.log[-1].headers)
    assert "X-Trino-User" in payload and "X-Trino-Catalog" in payload


# -- a real `dbt build` through the profile `floe compile` writes --------------------------------------


@pytest.mark.req("REQ-012")
def test_dbt_build_twice_through_the_compiled_profile(
    tmp_path: Path, secure_peer: TrinoPeer, pki: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds, a view, a table, generic tests and an incremental model (``merge``) built twice by
    dbt-trino over HTTPS with an LDAP password; rows read back from the peer's database."""
    from tests.support import dbt_build

    target = dbt_build.on_trino(
        secure_peer,
        ca=pki.ca,
        catalog=CATALOG,
        user="alice",
        password_var="TRINO_PASSWORD",
        password=PASSWORD,
        schema="orders_build",
    )
    logged = len(secure_peer.log)
    dbt_build.build_twice(tmp_path, target, monkeypatch)
    assert {entry.user for entry in secure_peer.log[logged:]} == {"alice"}
