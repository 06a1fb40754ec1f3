"""The Redshift engine (REQ-012 to REQ-018), against a Redshift wire-protocol peer, dbt-redshift and dbt.

redshift_connector cannot log in to a stock PostgreSQL, and no Redshift runs here, so the peer
(:mod:`tests.support.redshift_peer`) is a scripted server on 127.0.0.1 speaking the PostgreSQL v3
protocol the way Redshift does for redshift_connector: TLS on ``SSLRequest`` (test CA), MD5 password
authentication checked for real, Redshift's ``server_version``, the extended query protocol with
binary results, SQL run by DuckDB. For method ``iam`` a fake AWS endpoint answers boto3's
``GetClusterCredentials`` / Serverless ``GetCredentials`` after checking the SigV4 signature, and
registers the temporary user on the peer, as Redshift does.

Everything on the client side is real: redshift_connector, boto3 (pointed at the fake endpoint with
``AWS_ENDPOINT_URL_REDSHIFT``), dbt-redshift's credentials classes and in-process ``dbt debug`` /
``dbt run`` / ``dbt build`` (twice, incrementally).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redshift_connector
import yaml

from floe.engines.redshift import RedshiftEngine, plugin
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.testing import BaseComputePluginTests, Endpoint
from tests.support.redshift_peer import FakeRedshiftApi, RedshiftPeer
from tests.support.trino_peer import CertificateFiles, make_pki

pytestmark = [
    # redshift_connector builds its TLS context with the deprecated SSLContext() default protocol
    pytest.mark.filterwarnings("ignore:ssl.SSLContext\\(\\) without protocol argument:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning"),
]

PASSWORD = "canary-pw-" + secrets.token_hex(8)
"""alice's password on the peer, and a canary that must never appear in any output."""
ACCESS_KEY = "AKIAFLOETEST0000001"
SECRET_KEY = "canary-aws-" + secrets.token_hex(12)
CLUSTER, WORKGROUP, REGION = "floe-cluster", "floe-wg", "eu-west-1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def peer(pki: CertificateFiles) -> Iterator[RedshiftPeer]:
    """MD5 password authentication; TLS when the client asks for it (SSLRequest)."""
    with RedshiftPeer({"alice": PASSWORD}, ("dev",), tls=pki) as server:
        yield server


@pytest.fixture(scope="module")
def plain_peer() -> Iterator[RedshiftPeer]:
    """A peer without TLS (answers ``N`` to SSLRequest)."""
    with RedshiftPeer({"alice": PASSWORD}, ("dev",)) as server:
        yield server


@pytest.fixture(scope="module")
def aws(peer: RedshiftPeer) -> Iterator[FakeRedshiftApi]:
    with FakeRedshiftApi(peer, {ACCESS_KEY: SECRET_KEY}, clusters={CLUSTER}, workgroups={WORKGROUP}) as api:
        yield api


@pytest.fixture(scope="module")
def aws_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pod's AWS config: profile floe (valid keys) and profile stale (a wrong secret)."""
    directory = tmp_path_factory.mktemp("aws")
    (directory / "credentials").write_text(
        f"[floe]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        f"[stale]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = not-the-secret\n"
    )
    (directory / "config").write_text(
        f"[profile floe]\nregion = {REGION}\n[profile stale]\nregion = {REGION}\n"
    )
    return directory


@pytest.fixture(autouse=True)
def environment(
    monkeypatch: pytest.MonkeyPatch, pki: CertificateFiles, aws: FakeRedshiftApi, aws_files: Path
) -> None:
    """TLS trusts the test CA (redshift_connector loads the default CA paths, which follow
    SSL_CERT_FILE); boto3 reads the test AWS files and calls the fake endpoint; no metadata service."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_files / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_files / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_REDSHIFT", aws.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS", aws.url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDSHIFT_PASSWORD", PASSWORD)
    monkeypatch.setenv("AWS_SECRET", SECRET_KEY)


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "shop", tmp_path / "product", tmp_path / "product" / ".floe")


def compute(name: str = "redshift", **config: Any) -> ComputeConfig:
    return ComputeConfig(name, "redshift", config)


def database(server: RedshiftPeer, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": server.port,
            "user": "alice",
            "password": SecretReference("REDSHIFT_PASSWORD"),
            "dbname": "dev",
            "schema": "analytics",
            "sslmode": "disable",
            **extra,
        }
    )


def iam(server: RedshiftPeer, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": server.port,
            "method": "iam",
            "user": "alice",
            "iam_profile": "floe",
            "cluster_id": CLUSTER,
            "region": REGION,
            "dbname": "dev",
            "schema": "analytics",
            "sslmode": "verify-ca",
            **extra,
        }
    )


def serverless(server: RedshiftPeer, **extra: Any) -> ComputeConfig:
    return compute(
        **{
            "host": "127.0.0.1",
            "port": server.port,
            "user": "alice",
            "region": REGION,
            "serverless_work_group": WORKGROUP,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SecretReference("AWS_SECRET"),
            "dbname": "dev",
            "schema": "analytics",
            **extra,
        }
    )


# -- REQ-012: the dbt profile ----------------------------------------------------------------------


def _credentials(profile: dict[str, Any]) -> Any:
    """dbt's own path from a profile output to credentials: aliases, JSON Schema, from_dict."""
    from dbt.adapters.factory import load_plugin

    from floe.testing.compliance import render_env_vars

    data = render_env_vars(dict(profile), {"REDSHIFT_PASSWORD": "x", "AWS_SECRET": "y"})
    data.pop("type")
    data.pop("threads")
    credentials_class = load_plugin("redshift")
    data = credentials_class.translate_aliases(data)
    credentials_class.validate(data)
    return credentials_class.from_dict(data)


@pytest.mark.req("REQ-012")
def test_profiles_of_every_method_pass_dbt_redshifts_validation(
    target: ProfileTarget, peer: RedshiftPeer
) -> None:
    host = {
        "host": "examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com",
        "user": "dbt",
        "dbname": "dev",
        "schema": "analytics",
    }
    db = plugin.generate_dbt_profile(
        compute(
            **host,
            password=SecretReference("REDSHIFT_PASSWORD"),
            connect_timeout=10,
            autocommit=False,
            ra3_node=True,
        ),
        target,
    )
    assert db["password"] == "{{ env_var('REDSHIFT_PASSWORD') }}" and db["port"] == 5439
    credentials = _credentials(db)
    assert (credentials.method, credentials.database, credentials.schema) == ("database", "dev", "analytics")
    assert (credentials.connect_timeout, credentials.autocommit, credentials.ra3_node) == (10, False, True)
    assert credentials.sslmode == "prefer"  # dbt-redshift's default: TLS

    provisioned = plugin.generate_dbt_profile(
        compute(
            **host,
            cluster_id="examplecluster",
            iam_profile="etl",
            region="us-west-2",
            db_groups=["etl"],
            autocreate=True,
        ),
        target,
    )
    credentials = _credentials(provisioned)
    assert credentials.method == "iam" and credentials.password is None
    assert (credentials.cluster_id, credentials.iam_profile, credentials.region) == (
        "examplecluster",
        "etl",
        "us-west-2",
    )
    assert credentials.db_groups == ["etl"] and credentials.autocreate is True

    work_group = plugin.generate_dbt_profile(serverless(peer), target)
    assert work_group["secret_access_key"] == "{{ env_var('AWS_SECRET') }}"
    credentials = _credentials(work_group)
    assert credentials.is_serverless is True and credentials.serverless_work_group == WORKGROUP
    assert credentials.access_key_id == ACCESS_KEY and credentials.secret_access_key == "y"


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "no credential is configured"),
        ({"password": "literal"}, "must be a secret reference"),
        ({"password": SecretReference("P"), "cluster_id": "c"}, "only apply to method iam"),
        ({"method": "iam", "iam_profile": "p"}, "needs cluster_id"),
        ({"cluster_id": "c", "serverless_work_group": "w"}, "both set"),
        ({"cluster_id": "c", "access_key_id": "AKIAFLOETEST0000001"}, "go together"),
        ({"cluster_id": "c", "sslmode": "disable"}, "method iam needs TLS"),
        ({"method": "iam_role", "cluster_id": "c"}, "use one of database, iam"),
    ],
)
def test_inconsistent_settings_are_refused_with_a_fix(
    target: ProfileTarget, config: dict[str, Any], expected: str
) -> None:
    with pytest.raises(PluginExecutionError) as info:
        plugin.generate_dbt_profile(compute(host="h", user="u", dbname="dev", schema="s", **config), target)
    assert expected in info.value.render() and "fix:" in info.value.render()


@pytest.mark.req("REQ-012")
def test_config_schema_accepts_each_method_and_rejects_mixtures() -> None:
    from floe.schemas import store

    validator = store().validator(store().add(plugin.config_schema()))
    base = {"host": "c.abc.us-east-1.redshift.amazonaws.com", "user": "dbt", "dbname": "dev", "schema": "s"}
    ref = {"secret_ref": "REDSHIFT_SECRET"}
    good = [
        {**base, "password": ref, "sslmode": "verify-full", "connect_timeout": 10},
        {**base, "method": "iam", "cluster_id": "c", "iam_profile": "etl", "region": "us-east-1"},
        {**base, "serverless_work_group": "wg", "access_key_id": ACCESS_KEY, "secret_access_key": ref},
        {**base, "cluster_id": "c", "db_groups": ["etl"], "autocreate": True},
    ]
    bad = [
        {**base, "password": "plain"},
        base,
        {**base, "method": "database"},
        {**base, "cluster_id": "c", "access_key_id": ACCESS_KEY},
        {**base, "cluster_id": "c", "sslmode": "disable"},
        {**base, "password": ref, "sslmode": "maybe"},
        {**base, "password": ref, "dbnmae": "typo"},
    ]
    for config in good:
        assert not list(validator.iter_errors(config)), config
    for config in bad:
        assert list(validator.iter_errors(config)), config
    for key in ("password", "secret_access_key"):
        assert plugin.config_schema()["properties"][key]["$ref"].endswith("secretRef")


MANIFEST = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme}
plugins:
  compute:
    approved:
      - name: warehouse
        engine: redshift
        config:
          host: examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com
          port: 5439
          user: dbt
          dbname: dev
          schema: analytics
          cluster_id: examplecluster
          region: us-west-2
          db_groups: [etl]
          autocreate: false
          sslmode: verify-full
    default: warehouse
"""


@pytest.mark.req("REQ-012")
def test_a_manifest_compiles_to_a_dbt_redshift_profile(write: Callable[[str, str], Path]) -> None:
    """The schema types the YAML (port, autocreate, db_groups) and floe builds the IAM profile."""
    from floe.compiler import compile_path
    from floe.errors import FloeError
    from tests.conftest import product

    write("platform/enterprise.yaml", MANIFEST)
    compiled = compile_path(product(write, "  - {type: dbt, path: models/}\n"))
    config = compiled.governance.registry.approved["warehouse"].config
    assert config["port"] == 5439 and config["autocreate"] is False and config["db_groups"] == ["etl"]
    (output,) = compiled.profiles["floe_warehouse"]["outputs"].values()
    assert output["method"] == "iam" and output["cluster_id"] == "examplecluster" and "password" not in output
    assert _credentials(output).sslmode == "verify-full"
    write("platform/enterprise.yaml", MANIFEST.replace("sslmode: verify-full", "password: hunter2"))
    with pytest.raises(FloeError) as info:
        compile_path(product(write, "  - {type: dbt, path: models/}\n"))
    assert "{secret_ref: NAME}" in info.value.render() and "hunter2" not in info.value.render()
    # mixing methods: the schema passes it, floe refuses it when it builds the profile, with a fix
    write("platform/enterprise.yaml", MANIFEST.replace("sslmode: verify-full", "password: {secret_ref: PW}"))
    with pytest.raises(FloeError) as info:
        compile_path(product(write, "  - {type: dbt, path: models/}\n"))
    assert "only apply to method iam" in info.value.render() and "fix:" in info.value.render()


@pytest.mark.req("REQ-012")
def test_importing_the_engine_is_cheap() -> None:
    code = (
        "import sys, floe.engines.redshift as m\n"
        "heavy = sorted(n for n in sys.modules if n == 'importlib.metadata' "
        "or n.split('.')[0] in ('redshift_connector', 'boto3', 'botocore', 'dbt', 'jsonschema'))\n"
        "print(m.plugin.name, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "redshift []"
    assert isinstance(plugin, RedshiftEngine) and plugin.floe_engine_info().dbt_adapter == "redshift"


# -- dbt through the generated profile -------------------------------------------------------------

MODELS = {
    "first.sql": "select 1 as id, 'a' as name union all select 2 as id, 'b' as name",
    "second.sql": "select f.id, f.name, nvl(f.name, 'none') as label from {{ ref('first') }} as f",
}


@pytest.fixture
def dbt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
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
        "name: floe_redshift\nversion: '1.0'\nconfig-version: 2\nprofile: floe_redshift\n"
        "models:\n  floe_redshift:\n    +materialized: table\n"
    )
    for name, sql in MODELS.items():
        (project / "models" / name).write_text(sql)
    (project / "profiles.yml").write_text(
        yaml.safe_dump({"floe_redshift": {"target": "dev", "outputs": {"dev": profile}}})
    )
    results = []
    for command in commands:
        result = dbtRunner().invoke([*command, "--project-dir", str(project), "--profiles-dir", str(project)])
        assert result.success, f"dbt {command[0]} failed: {result.exception}"
        results.append(result)
    return results


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_with_a_password_over_tls(
    tmp_path: Path, target: ProfileTarget, peer: RedshiftPeer, dbt_env: Path
) -> None:
    profile = plugin.generate_dbt_profile(
        database(peer, sslmode="require", schema="dbt_run", threads=2), target
    )
    logged, started = len(peer.log), len(peer.startups)
    _, run, again = _dbt(tmp_path, profile, ["debug"], ["run"], ["run"])
    assert sorted(r.node.name for r in run.result.results) == ["first", "second"]
    assert all(r.status == "success" for r in again.result.results)  # the rename-and-swap path too
    assert peer.sql("select id, name, label from dev.dbt_run.second order by id") == [
        (1, "a", "a"),
        (2, "b", "b"),
    ]
    startups = peer.startups[started:]
    assert startups and all(s.ssl and s.authenticated for s in startups)
    assert {s.parameters["driver_version"].split(" ")[0] for s in startups} == {"Redshift"}
    assert {e.user for e in peer.log[logged:]} == {"alice"}
    logs = "".join(p.read_text(errors="replace") for p in dbt_env.rglob("*") if p.is_file())
    assert (
        logs and PASSWORD not in logs and PASSWORD not in (tmp_path / "project" / "profiles.yml").read_text()
    )


@pytest.mark.req("REQ-012")
def test_dbt_debug_with_iam_provisioned_and_serverless(
    tmp_path: Path, target: ProfileTarget, peer: RedshiftPeer, aws: FakeRedshiftApi, dbt_env: Path
) -> None:
    calls = len(aws.calls)
    _dbt(
        tmp_path / "provisioned",
        plugin.generate_dbt_profile(iam(peer, schema="iam_debug"), target),
        ["debug"],
    )
    _dbt(tmp_path / "serverless", plugin.generate_dbt_profile(serverless(peer), target), ["debug"])
    answered = [(c.service, c.action, c.access_key) for c in aws.calls[calls:] if c.error is None]
    assert ("redshift", "GetClusterCredentials", ACCESS_KEY) in answered
    assert ("redshift-serverless", "GetCredentials", ACCESS_KEY) in answered
    users = {s.parameters["user"] for s in peer.startups if s.authenticated}
    assert {"IAM:alice", "IAMR:floe-role"} <= users
    logs = "".join(p.read_text(errors="replace") for p in dbt_env.rglob("*") if p.is_file())
    assert SECRET_KEY not in logs


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
    assert names == {"dbt-core", "dbt-redshift", "redshift-connector"}


# -- REQ-014: validate_connection ------------------------------------------------------------------


@pytest.mark.req("REQ-014")
def test_validate_succeeds_with_each_method(target: ProfileTarget, peer: RedshiftPeer) -> None:
    peer.sql("CREATE SCHEMA IF NOT EXISTS dev.validated")
    for config, user in [
        (database(peer, schema="validated"), "alice"),
        (database(peer, sslmode="verify-full"), "alice"),
        (iam(peer), "IAM:alice"),
        (serverless(peer), "IAMR:floe-role"),
    ]:
        result = plugin.validate_connection(config, target, timeout=10)
        assert result.success, result.message
        assert result.details["current_user"] == user and result.details["current_database"] == "dev"
        assert result.details["server_version"].startswith("Redshift 1.0")
        assert PASSWORD not in repr(result) and SECRET_KEY not in repr(result)
    ok = plugin.validate_connection(database(peer, schema="validated"), target, timeout=10)
    assert ok.details["schema_exists"] is True and "schema validated exists" in ok.message
    fresh = plugin.validate_connection(database(peer, schema="brand_new"), target, timeout=10)
    assert fresh.success and "dbt creates it" in fresh.message


@pytest.mark.req("REQ-014")
def test_validate_reports_a_wrong_password(
    target: ProfileTarget, peer: RedshiftPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "canary-wrong-" + secrets.token_hex(6)
    monkeypatch.setenv("REDSHIFT_PASSWORD", wrong)
    started = len(peer.startups)
    result = plugin.validate_connection(database(peer), target, timeout=10)
    assert not result.success
    assert "authentication failed" in result.message
    assert 'password authentication failed for user "alice"' in result.message
    assert "check user and the password in the secret REDSHIFT_PASSWORD" in result.message
    assert wrong not in repr(result)
    assert [s.authenticated for s in peer.startups[started:]] == [False]  # the peer checked the MD5 answer


@pytest.mark.req("REQ-014")
def test_validate_reports_iam_problems(
    target: ProfileTarget, peer: RedshiftPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [
        (iam(peer, iam_profile="stale"), "AWS rejected the credentials", "credentials of iam_profile"),
        (iam(peer, cluster_id="nope"), "ClusterNotFound", "check cluster_id and region"),
        (iam(peer, iam_profile="missing"), "could not be found", "set iam_profile"),
        (
            serverless(peer, serverless_work_group="other"),
            "ResourceNotFoundException",
            "serverless_work_group",
        ),
    ]
    for config, in_message, in_fix in cases:
        result = plugin.validate_connection(config, target, timeout=10)
        assert not result.success, config
        assert in_message in result.message and in_fix in result.message, result.message
    monkeypatch.setenv("AWS_SECRET", "canary-wrong-" + secrets.token_hex(6))
    result = plugin.validate_connection(serverless(peer), target, timeout=10)
    assert not result.success and "access_key_id and the secret AWS_SECRET" in result.message
    assert "canary-wrong-" not in result.message


@pytest.mark.req("REQ-014")
def test_validate_reports_database_and_tls_problems(
    target: ProfileTarget, peer: RedshiftPeer, plain_peer: RedshiftPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = plugin.validate_connection(database(peer, dbname="analytics"), target, timeout=10)
    assert not missing.success and 'database "analytics" does not exist' in missing.message
    assert "set dbname" in missing.message
    no_tls = plugin.validate_connection(database(plain_peer, sslmode="require"), target, timeout=10)
    assert not no_tls.success and "refused TLS" in no_tls.message
    monkeypatch.delenv("SSL_CERT_FILE")  # the test CA is no longer trusted
    untrusted = plugin.validate_connection(database(peer, sslmode="verify-ca"), target, timeout=10)
    assert not untrusted.success and "TLS certificate" in untrusted.message
    assert "SSL_CERT_FILE" in untrusted.message


@pytest.mark.req("REQ-014")
def test_validate_names_an_unset_secret_without_connecting(
    target: ProfileTarget, peer: RedshiftPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDSHIFT_PASSWORD")
    started = len(peer.startups)
    result = plugin.validate_connection(database(peer), target, timeout=10)
    assert not result.success and "REDSHIFT_PASSWORD (password) is not set" in result.message
    assert len(peer.startups) == started


@pytest.mark.req("REQ-014")
def test_validate_names_the_package_when_the_driver_is_missing(
    target: ProfileTarget, peer: RedshiftPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redshift_connector", None)  # import fails as if not installed
    result = plugin.validate_connection(database(peer), target, timeout=10)
    assert not result.success and "redshift_connector is not installed" in result.message
    assert "pip install 'dbt-redshift>=1.11,<1.12' 'redshift-connector>=2.1,<3'" in result.message


# -- REQ-015 / REQ-013 -----------------------------------------------------------------------------


@pytest.mark.req("REQ-015")
def test_resources_of_a_client_pod() -> None:
    assert plugin.get_resource_requirements(compute(threads=4)) == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert plugin.get_resource_requirements(compute(threads=12))["limits"]["memory"] == "1Gi"


@pytest.mark.req("REQ-013")
def test_no_attachment_sql_because_redshift_reads_iceberg_through_glue() -> None:
    catalog = CatalogConfig(type="rest", name="lake", uri="https://catalog.example/api", warehouse="wh")
    assert plugin.get_catalog_attachment_sql(compute(), catalog) is None


# -- REQ-018: errors -------------------------------------------------------------------------------


def _raised(run: Callable[[], Any]) -> BaseException:
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - the error under test
        return exc
    raise AssertionError("no error was raised")


def _connect(server: RedshiftPeer, password: str = PASSWORD, **kwargs: Any) -> Any:
    return redshift_connector.connect(
        **{
            "host": "127.0.0.1",
            "port": server.port,
            "user": "alice",
            "password": password,
            "database": "dev",
            "ssl": False,
            "timeout": 5,
            **kwargs,
        }
    )


@pytest.mark.req("REQ-018")
def test_translate_real_client_errors(
    peer: RedshiftPeer, refused_address: tuple[str, int], silent_server: tuple[str, int]
) -> None:
    import boto3
    from dbt.adapters.exceptions import FailedToConnectError
    from dbt_common.exceptions import DbtDatabaseError

    connection = _connect(peer)
    connection.autocommit = True
    missing_table = _raised(lambda: connection.cursor().execute("select * from no_such_table"))
    syntax = _raised(lambda: connection.cursor().execute("selec 1"))
    connection.close()
    wrong_password = _raised(lambda: _connect(peer, password="nope"))
    refused = _raised(
        lambda: redshift_connector.connect(
            host=refused_address[0], port=refused_address[1], user="u", password="p", ssl=False
        )
    )
    silent = _raised(
        lambda: redshift_connector.connect(
            host=silent_server[0], port=silent_server[1], user="u", password="p", ssl=False, timeout=0.5
        )
    )
    client = boto3.Session(profile_name="floe").client("redshift")
    no_cluster = _raised(
        lambda: client.get_cluster_credentials(DbUser="alice", DbName="dev", ClusterIdentifier="x")
    )
    config = database(peer)
    cases = [
        (
            missing_table,
            "ProgrammingError",
            "run SQL",
            'relation "no_such_table" does not exist',
            "dbt run --select",
        ),
        (syntax, "ProgrammingError", "parse SQL", "42601", "Redshift's SQL dialect"),
        (
            wrong_password,
            "InterfaceError",
            "authentication",
            "password authentication failed",
            "REDSHIFT_PASSWORD",
        ),
        (refused, "InterfaceError", "connect", "connection refused", "check host and port"),
        (silent, "TimeoutError", "connect", "did not answer in time", "security group"),
        (no_cluster, "ClusterNotFoundFault", "get IAM credentials", "ClusterNotFound", "cluster_id"),
        # dbt-redshift keeps only the server's message (DbtDatabaseError) or the driver's text
        (
            DbtDatabaseError('relation "no_such_table" does not exist'),
            "DbtDatabaseError",
            "run SQL",
            "42P01",
            "dbt run",
        ),
        (
            FailedToConnectError(str(wrong_password)),
            "FailedToConnectError",
            "authentication",
            "refused the login",
            "password",
        ),
    ]
    for exc, class_name, operation, in_message, in_fix in cases:
        assert type(exc).__name__ == class_name, exc
        error = plugin.translate_error(exc, config)
        assert isinstance(error, PluginExecutionError), exc
        problem = error.problems[0]
        assert error.operation == operation and in_message in problem.message, (exc, problem)
        assert problem.fix and in_fix in problem.fix, (exc, problem.fix)
        assert "Traceback" not in error.render()


@pytest.mark.req("REQ-018")
def test_translate_unknown_errors_to_none() -> None:
    assert plugin.translate_error(ValueError("password authentication failed"), None) is None
    unknown_code = redshift_connector.ProgrammingError({"S": "ERROR", "C": "22012", "M": "division by zero"})
    assert plugin.translate_error(unknown_code, None) is None


# -- REQ-020: the compliance suite -----------------------------------------------------------------


class TestRedshiftCompliance(BaseComputePluginTests):
    """Redshift through floe's compliance suite; the live endpoint is the peer with a password."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "redshift"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # Glue-backed external schemas are created once by the platform team

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {
            "host": "examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com",
            "user": "floe",
            "password": SecretReference("REDSHIFT_PASSWORD"),
            "dbname": "dev",
            "schema": "analytics",
        }

    @pytest.fixture
    def engine_endpoint(self, peer: RedshiftPeer) -> Endpoint:
        config = dict(database(peer, sslmode="verify-ca", schema="compliance").config)
        return Endpoint(config, {"REDSHIFT_PASSWORD": PASSWORD})

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]]:
        # dbt-redshift's default sslmode (TLS) and a password that is set: the check really connects
        return lambda host, port: {
            "host": host,
            "port": port,
            "user": "alice",
            "dbname": "dev",
            "schema": "analytics",
            "password": SecretReference("REDSHIFT_PASSWORD"),
        }

    @pytest.fixture
    def client_error(self, peer: RedshiftPeer) -> BaseException:
        return _raised(lambda: _connect(peer, password="wrong"))


def test_peer_speaks_the_extended_protocol(peer: RedshiftPeer) -> None:
    """Parameters in binary and text, binary results, transactions and errors inside them."""
    import datetime

    connection = _connect(peer)
    cursor = connection.cursor()
    cursor.execute("create table dev.public.peer_check (id int, ts timestamp, ok boolean, x float8)")
    connection.commit()
    cursor.execute(
        "insert into dev.public.peer_check values (%s, %s, %s, %s)",
        (7, datetime.datetime(2024, 5, 6, 7, 8, 9), True, 2.5),
    )
    assert cursor.rowcount == 1
    cursor.execute("select * from dev.public.peer_check where id = %s", (7,))
    assert cursor.fetchall() == ([7, datetime.datetime(2024, 5, 6, 7, 8, 9), True, 2.5],)
    with pytest.raises(redshift_connector.ProgrammingError):
        cursor.execute("select * from missing")
    with pytest.raises(redshift_connector.ProgrammingError, match="25P02"):
        cursor.execute("select 1")  # the transaction is aborted until rollback
    connection.rollback()
    cursor.execute("select count(*) from dev.public.peer_check")
    assert cursor.fetchone() == [0]  # the insert was rolled back with the transaction
    connection.close()
    with socket.create_connection(("127.0.0.1", peer.port)) as raw:
        raw.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
        assert raw.recv(1) == b"S"


# -- a real `dbt build` through the profile `floe compile` writes --------------------------------------


@pytest.mark.req("REQ-012")
def test_dbt_build_twice_through_the_compiled_profile(
    tmp_path: Path, peer: RedshiftPeer, pki: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds, a view, a table, generic tests and an incremental model (dbt-redshift's default with a
    unique key, ``delete+insert``) built twice over TLS; rows read back from the peer's database."""
    from tests.support import dbt_build

    target = dbt_build.on_redshift(
        peer,
        ca=pki.ca,
        user="alice",
        password_var="REDSHIFT_PASSWORD",
        password=PASSWORD,
        schema="orders_build",
    )
    started = len(peer.startups)
    dbt_build.build_twice(tmp_path, target, monkeypatch)
    assert peer.startups[started:] and all(s.ssl and s.authenticated for s in peer.startups[started:])
