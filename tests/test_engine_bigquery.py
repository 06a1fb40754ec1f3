"""The BigQuery engine against bqemulator and a scripted Google OAuth/BigQuery peer, on 127.0.0.1.

The BigQuery API the computes name (``api_endpoint``) is ``bqemulator`` (tests/support/bqemulator.py),
a real BigQuery REST server running GoogleSQL on DuckDB: floe's check (google-cloud-bigquery) and
dbt-bigquery in-process (``dbt debug``, ``dbt build`` of seeds, a view, a table, tests and an
incremental ``merge``) run against it. The emulator accepts any access token, so the methods that
fetch one (service accounts, refresh tokens, Application Default Credentials) get it from the
scripted peer's OAuth token endpoint (tests/support/bigquery_peer.py), which checks the RS256-signed
assertion or the refresh token and client secret for real; the scripted peer's BigQuery API is
used only for what the emulator cannot show: a refused access token (401), a denied dataset (403)
and BigQuery's exact not-found wording.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe.engines.bigquery import plugin
from floe.errors import PluginExecutionError
from floe.model import ComputeConfig, ProfileTarget, SecretReference
from floe.testing import BaseComputePluginTests, Endpoint
from tests.support.bigquery_peer import BigQueryPeer, serve, service_account_key
from tests.support.bqemulator import BigQueryEmulator, running_bqemulator
from tests.support.timing import assert_not_hung, record_deadlines

PROJECT = "floe-test"
DATASET = "analytics"
CLIENT_ID = "floe-client.apps.googleusercontent.com"
ENV = {
    "keyfile": "FLOE_BQ_KEYFILE",
    "keyfile_json": "FLOE_BQ_KEYFILE_JSON",
    "token": "FLOE_BQ_TOKEN",
    "refresh_token": "FLOE_BQ_REFRESH_TOKEN",
    "client_secret": "FLOE_BQ_CLIENT_SECRET",
}
METHODS = ["oauth", "service-account", "service-account-json", "oauth-secrets-refresh", "oauth-secrets-token"]


@pytest.fixture(scope="module", autouse=True)
def _no_metadata_server() -> Iterator[None]:
    """google-auth must never probe the GCE metadata server (169.254.169.254) from a test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_GCE_CHECK", "true")
        mp.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
        mp.setenv("GCE_METADATA_IP", "127.0.0.1:9")
        from google.auth.compute_engine import _metadata

        mp.setattr(_metadata, "_NO_GCE_CHECK", True)
        yield


class Peer:
    """The scripted peer (token endpoint) and the credentials it knows; ``api`` is the BigQuery API."""

    def __init__(self, peer: BigQueryPeer, folder: Path, api: str) -> None:
        self.peer = peer
        self.api = api
        self.key, public = service_account_key(
            f"floe-dbt@{PROJECT}.iam.gserviceaccount.com", peer.token_uri, PROJECT
        )
        peer.add_service_account(self.key["client_email"], public)
        self.keyfile = folder / "key.json"
        self.keyfile.write_text(json.dumps(self.key))
        self.client_secret = "GOCSPX-" + secrets.token_urlsafe(12)
        self.refresh_token = peer.add_oauth_client(CLIENT_ID, self.client_secret)
        self.token = peer.issue_token()

    def environ(self) -> dict[str, str]:
        return {
            ENV["keyfile"]: str(self.keyfile),
            ENV["keyfile_json"]: json.dumps(self.key),
            ENV["token"]: self.token,
            ENV["refresh_token"]: self.refresh_token,
            ENV["client_secret"]: self.client_secret,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.keyfile),
        }

    def config(self, method: str, **extra: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "project": PROJECT,
            "dataset": DATASET,
            "api_endpoint": self.api,
            "location": "US",
        }
        if method == "oauth":
            config["method"] = "oauth"
        elif method == "service-account":
            config.update(method="service-account", keyfile=SecretReference(ENV["keyfile"]))
        elif method == "service-account-json":
            config.update(method="service-account-json", keyfile_json=SecretReference(ENV["keyfile_json"]))
        elif method == "oauth-secrets-refresh":
            config.update(
                method="oauth-secrets",
                refresh_token=SecretReference(ENV["refresh_token"]),
                client_id=CLIENT_ID,
                client_secret=SecretReference(ENV["client_secret"]),
                token_uri=self.peer.token_uri,
            )
        else:
            config.update(method="oauth-secrets", token=SecretReference(ENV["token"]))
        config.update(extra)
        return config


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """One bqemulator for the module, with the dataset ``analytics`` created."""
    with running_bqemulator(tmp_path_factory.mktemp("bqemulator"), PROJECT, (DATASET,)) as running:
        yield running


@pytest.fixture(scope="module")
def bq(tmp_path_factory: pytest.TempPathFactory, emulator: BigQueryEmulator) -> Iterator[Peer]:
    with serve() as peer:
        yield Peer(peer, tmp_path_factory.mktemp("bq-keys"), emulator.url)


def query_jobs(emulator: BigQueryEmulator, sql: str) -> int:
    """How many query jobs with exactly ``sql`` the emulator has run."""
    return sum(
        1
        for job in emulator.client().list_jobs(all_users=True)
        if job.job_type == "query" and job.query.strip() == sql
    )


@pytest.fixture
def env(bq: Peer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = bq.environ()
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "orders", tmp_path / "product", tmp_path / "product" / ".floe")


def compute(config: dict[str, Any], name: str = "warehouse") -> ComputeConfig:
    return ComputeConfig(name, "bigquery", config)


def dbt(
    args: list[str],
    profile: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    models: dict[str, str] | None = None,
) -> Any:
    """Run dbt in-process with ``profile`` in a fresh project; logs and target under ``tmp_path``."""
    from dbt.cli.main import dbtRunner

    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: floe_bq\nversion: '1.0'\nconfig-version: 2\nprofile: floe_bq\n"
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump({"floe_bq": {"target": "dev", "outputs": {"dev": profile}}})
    )
    for name, sql in (models or {}).items():
        (project / "models" / f"{name}.sql").write_text(sql)
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])


def credentials_from(profile: dict[str, Any]) -> Any:
    """The profile rendered by dbt's own profile renderer, then loaded by dbt-bigquery's Credentials."""
    from dbt.adapters.factory import load_plugin
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(os.environ)
    rendered = ProfileRenderer({}).render_data(dict(profile))
    credentials_class = load_plugin("bigquery")
    data = credentials_class.translate_aliases(rendered)
    data.pop("type")
    data.pop("threads")
    credentials_class.validate(data)
    return credentials_class.from_dict(data)


# -- REQ-012: profiles -------------------------------------------------------------------------


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("method", METHODS)
def test_each_method_makes_a_profile_dbt_bigquery_loads(
    method: str, bq: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    profile = plugin.generate_dbt_profile(compute(bq.config(method)), target)
    dumped = json.dumps(profile)
    for value in (bq.token, bq.refresh_token, bq.client_secret, bq.key["private_key"][40:80]):
        assert value not in dumped
    credentials = credentials_from(profile)
    assert (credentials.database, credentials.schema, credentials.api_endpoint) == (PROJECT, DATASET, bq.api)
    assert credentials.method == method.removesuffix("-refresh").removesuffix("-token")
    if method == "service-account-json":
        # dbt renders env_var to text; fromjson turns the key back into the mapping dbt-bigquery needs
        assert profile["keyfile_json"] == "{{ fromjson(env_var('FLOE_BQ_KEYFILE_JSON')) }}"
        assert credentials.keyfile_json == bq.key
    if method == "service-account":
        assert credentials.keyfile == str(bq.keyfile)
    if method == "oauth-secrets-refresh":
        assert (credentials.refresh_token, credentials.client_id, credentials.client_secret) == (
            bq.refresh_token,
            CLIENT_ID,
            bq.client_secret,
        )
    if method == "oauth-secrets-token":
        assert credentials.token == bq.token


@pytest.mark.req("REQ-012")
def test_profile_carries_job_settings(bq: Peer, target: ProfileTarget, env: dict[str, str]) -> None:
    settings = {
        "threads": 8,
        "priority": "batch",
        "maximum_bytes_billed": 10**9,
        "job_execution_timeout_seconds": 600,
        "job_creation_timeout_seconds": 30,
        "job_retries": 2,
        "job_retry_deadline_seconds": 900,
        "execution_project": "floe-billing",
        "location": "EU",
    }
    profile = plugin.generate_dbt_profile(compute(bq.config("oauth", **settings)), target)
    assert profile["threads"] == 8 and profile["dataset"] == DATASET and profile["project"] == PROJECT
    credentials = credentials_from(profile)
    assert (
        credentials.priority,
        credentials.maximum_bytes_billed,
        credentials.job_execution_timeout_seconds,
        credentials.job_retries,
        credentials.execution_project,
        credentials.location,
    ) == ("batch", 10**9, 600, 2, "floe-billing", "EU")


@pytest.mark.req("REQ-012")
@pytest.mark.parametrize("method", METHODS)
def test_dbt_debug_passes_with_each_method(
    method: str,
    bq: Peer,
    env: dict[str, str],
    target: ProfileTarget,
    emulator: BigQueryEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before, jobs = len(bq.peer.requests), query_jobs(emulator, "select 1 as id")
    profile = plugin.generate_dbt_profile(compute(bq.config(method)), target)
    result = dbt(["debug"], profile, tmp_path, monkeypatch)
    assert result.success, f"dbt debug failed for {method}"
    assert query_jobs(emulator, "select 1 as id") == jobs + 1  # dbt's connection test ran on the emulator
    seen = bq.peer.requests[before:]
    if method != "oauth-secrets-token":  # every other method fetched its token from the token endpoint
        assert seen == [("POST", "/token", "")]
    else:
        assert seen == []


# -- REQ-014: validation -----------------------------------------------------------------------


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize("method", METHODS)
def test_validate_connection_succeeds_with_each_method(
    method: str, bq: Peer, env: dict[str, str], target: ProfileTarget, emulator: BigQueryEmulator
) -> None:
    before = query_jobs(emulator, "select 1 as floe_check")
    result = plugin.validate_connection(compute(bq.config(method)), target, 10)
    assert result.success, result.message
    assert (
        result.details["location"] == "US"
        and result.details["method"] == method.split("-refresh")[0].split("-token")[0]
    )
    assert query_jobs(emulator, "select 1 as floe_check") == before + 1


@pytest.mark.req("REQ-014")
def test_validate_connection_names_a_missing_dataset(
    bq: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    result = plugin.validate_connection(
        compute(bq.config("oauth-secrets-token", dataset="missing")), target, 10
    )
    assert not result.success  # the emulator's words: "Not found: dataset:floe-test.missing"
    assert "not found (HTTP 404)" in result.message and "floe-test.missing" in result.message
    # BigQuery's own wording (the scripted peer's) also gets the command that creates the dataset
    config = bq.config("oauth-secrets-token", dataset="missing", api_endpoint=bq.peer.url)
    result = plugin.validate_connection(compute(config), target, 10)
    assert not result.success
    assert "Not found: Dataset floe-test:missing" in result.message
    assert "bq mk --dataset floe-test:missing" in result.message


@pytest.mark.req("REQ-014")
def test_validate_connection_names_a_missing_permission(
    bq: Peer, env: dict[str, str], target: ProfileTarget
) -> None:
    bq.peer.add_dataset(PROJECT, "restricted")
    bq.peer.denied.add((PROJECT, "restricted"))
    config = bq.config(
        "service-account", dataset="restricted", api_endpoint=bq.peer.url
    )  # no IAM in the emulator
    result = plugin.validate_connection(compute(config), target, 10)
    assert not result.success and "HTTP 403" in result.message and "Access Denied" in result.message
    assert "roles/bigquery.dataEditor on the dataset floe-test.restricted" in result.message


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize(
    ("method", "variable", "wrong", "expected"),
    [
        ("oauth-secrets-refresh", "FLOE_BQ_CLIENT_SECRET", "GOCSPX-wrong", "invalid_client"),
        ("oauth-secrets-refresh", "FLOE_BQ_REFRESH_TOKEN", "1//revoked", "invalid_grant"),
        ("oauth-secrets-token", "FLOE_BQ_TOKEN", "ya29.expired", "renew it"),
    ],
)
def test_validate_connection_reports_rejected_credentials(
    method: str,
    variable: str,
    wrong: str,
    expected: str,
    bq: Peer,
    env: dict[str, str],
    target: ProfileTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, wrong)
    config = bq.config(method, api_endpoint=bq.peer.url)  # the emulator takes any access token
    result = plugin.validate_connection(compute(config), target, 10)
    assert not result.success
    assert expected in result.message and "authenticate failed" in result.message
    assert wrong not in result.message and wrong not in json.dumps(dict(result.details))


@pytest.mark.req("REQ-014")
def test_validate_connection_reports_an_unknown_service_account_key(
    bq: Peer, env: dict[str, str], target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger, _ = service_account_key(
        f"stranger@{PROJECT}.iam.gserviceaccount.com", bq.peer.token_uri, PROJECT
    )
    monkeypatch.setenv(ENV["keyfile_json"], json.dumps(stranger))
    result = plugin.validate_connection(compute(bq.config("service-account-json")), target, 10)
    assert not result.success and "invalid_grant" in result.message
    assert "FLOE_BQ_KEYFILE_JSON holds a current key" in result.message
    assert stranger["private_key"][30:90] not in result.message


@pytest.mark.req("REQ-014")
@pytest.mark.parametrize(
    ("method", "variable", "value", "expected"),
    [
        (
            "service-account-json",
            "FLOE_BQ_KEYFILE_JSON",
            None,
            "FLOE_BQ_KEYFILE_JSON (keyfile_json) is not set",
        ),
        ("service-account-json", "FLOE_BQ_KEYFILE_JSON", "{not json", "does not hold JSON"),
        (
            "service-account-json",
            "FLOE_BQ_KEYFILE_JSON",
            '{"type": "service_account"}',
            "is not a service-account key",
        ),
        ("service-account", "FLOE_BQ_KEYFILE", "/nonexistent/key.json", "cannot be read"),
        (
            "oauth",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/adc.json",
            "no Application Default Credentials",
        ),
    ],
)
def test_validate_connection_reports_unusable_secrets(
    method: str,
    variable: str,
    value: str | None,
    expected: str,
    bq: Peer,
    env: dict[str, str],
    target: ProfileTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    result = plugin.validate_connection(compute(bq.config(method)), target, 10)
    assert not result.success and expected in result.message, result.message
    assert "Traceback" not in result.message


@pytest.mark.req("REQ-014")
def test_validate_connection_to_a_refused_port_says_refused(
    bq: Peer, env: dict[str, str], target: ProfileTarget, refused_address: tuple[str, int]
) -> None:
    host, port = refused_address
    start = time.monotonic()
    result = plugin.validate_connection(
        compute(bq.config("oauth-secrets-token", api_endpoint=f"http://{host}:{port}")), target, 10
    )
    assert time.monotonic() - start < 3, "a refused port must fail at once, not after retries"
    assert not result.success and "was refused" in result.message and "api_endpoint" in result.message


@pytest.mark.req("REQ-014")
def test_validate_connection_to_a_silent_server_times_out(
    bq: Peer,
    env: dict[str, str],
    target: ProfileTarget,
    silent_server: tuple[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = silent_server
    deadlines = record_deadlines(monkeypatch)
    start = time.monotonic()
    result = plugin.validate_connection(
        compute(bq.config("oauth-secrets-token", api_endpoint=f"http://{host}:{port}")), target, 2
    )
    assert_not_hung(time.monotonic() - start, 2)
    assert deadlines and max(deadlines) <= 2  # every deadline the check set is within its timeout
    # the engine's own deadline answered (floe's wrapper is not involved: the plugin is called directly)
    assert not result.success and ("in time" in result.message or "no answer" in result.message)


# -- settings checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"method": "oauth", "token": SecretReference("T")}, "token is set but method is oauth"),
        ({"method": "service-account"}, "method service-account needs keyfile"),
        (
            {"method": "oauth-secrets", "refresh_token": SecretReference("R")},
            "missing: client_id, client_secret",
        ),
        ({"method": "oauth-secrets", "token": "ya29.literal"}, "token must be a secret reference"),
        (
            {"method": "service-account-json", "keyfile_json": SecretReference("DBT_ENV_SECRET_KEY")},
            "DBT_ENV_SECRET_",
        ),
        ({"method": "magic"}, "unknown method 'magic'"),
    ],
)
def test_inconsistent_settings_are_refused_with_a_fix(
    config: dict[str, Any], expected: str, target: ProfileTarget
) -> None:
    with pytest.raises(PluginExecutionError) as raised:
        plugin.generate_dbt_profile(compute({"project": PROJECT, "dataset": DATASET, **config}), target)
    assert expected in raised.value.render() and raised.value.problems[0].fix


def test_schema_requires_each_methods_credentials() -> None:
    from jsonschema import Draft202012Validator

    from floe.schemas import store

    uri = store().add(plugin.config_schema())
    validator = store().validator(uri)
    ref = {"secret_ref": "NAME"}

    def valid(config: dict[str, Any]) -> bool:
        return not list(validator.iter_errors({"project": PROJECT, "dataset": DATASET, **config}))

    Draft202012Validator.check_schema(plugin.config_schema())
    assert valid({}) and valid({"method": "service-account-json", "keyfile_json": ref})
    assert valid({"method": "oauth-secrets", "refresh_token": ref, "client_id": "c", "client_secret": ref})
    assert not valid({"method": "service-account-json"})
    assert not valid({"method": "oauth-secrets", "refresh_token": ref})
    assert not valid({"method": "oauth-secrets", "token": "literal"})
    assert not valid({"method": "oauth", "api_endpoint": "not a url"})
    assert list(validator.iter_errors({"dataset": DATASET})), "project is required"


# -- REQ-018: errors of the real client ------------------------------------------------------


def _raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the exception under test
        return exc
    raise AssertionError("the call did not fail")


@pytest.mark.req("REQ-018")
def test_real_client_errors_are_translated(
    bq: Peer, emulator: BigQueryEmulator, refused_address: tuple[str, int]
) -> None:
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery
    from google.oauth2 import credentials as oauth2

    def client(token: str | None, endpoint: str = bq.peer.url, **kwargs: Any) -> Any:
        return bigquery.Client(
            PROJECT, oauth2.Credentials(token, **kwargs), client_options=ClientOptions(api_endpoint=endpoint)
        )

    good = emulator.client()
    cases = {
        "not found (HTTP 404)": _raised(lambda: good.get_dataset(f"{PROJECT}.nowhere", retry=None)),
        "HTTP 400": _raised(lambda: good.query("selec 1", retry=None, job_retry=None).result()),
        "refused the credentials": _raised(
            lambda: client(
                None,
                refresh_token="1//bad",
                client_id=CLIENT_ID,
                client_secret="x",
                token_uri=bq.peer.token_uri,
            ).get_dataset(f"{PROJECT}.{DATASET}", retry=None)
        ),
        "was refused": _raised(
            lambda: client("t", f"http://{refused_address[0]}:{refused_address[1]}").get_dataset(
                f"{PROJECT}.{DATASET}", retry=None, timeout=2
            )
        ),
    }
    config = compute(bq.config("oauth-secrets-token"))
    for expected, error in cases.items():
        translated = plugin.translate_error(error, config)
        assert translated is not None, f"{type(error).__name__} was not translated"
        assert expected in translated.render() and translated.problems[0].fix
    assert plugin.translate_error(ValueError("unrelated"), config) is None


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.req("REQ-012")
@pytest.mark.req("REQ-014")
def test_canary_credentials_never_leave_the_environment(
    bq: Peer, env: dict[str, str], target: ProfileTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "canary-" + secrets.token_hex(8)
    bq.peer.oauth_clients[CLIENT_ID + ".canary"] = canary
    refresh = "1//canary-" + secrets.token_hex(8)
    bq.peer.refresh_tokens[refresh] = CLIENT_ID + ".canary"
    monkeypatch.setenv("FLOE_BQ_CANARY_SECRET", canary)
    monkeypatch.setenv("FLOE_BQ_CANARY_REFRESH", refresh)
    config = bq.config(
        "oauth-secrets-refresh",
        client_id=CLIENT_ID + ".canary",
        client_secret=SecretReference("FLOE_BQ_CANARY_SECRET"),
        refresh_token=SecretReference("FLOE_BQ_CANARY_REFRESH"),
    )
    profile = plugin.generate_dbt_profile(compute(config), target)
    ok = plugin.validate_connection(compute(config), target, 10)
    assert ok.success, ok.message
    result = dbt(["debug"], profile, tmp_path, monkeypatch)
    assert result.success
    monkeypatch.setenv("FLOE_BQ_CANARY_SECRET", canary + "-wrong")
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
    for secret in (canary, refresh):
        assert not [o for o in outputs if secret in o]


# -- REQ-011/019: a cheap import -----------------------------------------------------------------


def test_importing_the_engine_loads_no_client() -> None:
    code = (
        "import sys, floe.engines.bigquery as m; assert m.plugin.name == 'bigquery';"
        "bad = [n for n in sys.modules if n.startswith(('dbt', 'google.cloud.bigquery', 'google.auth', 'jsonschema',"
        " 'importlib.metadata'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# -- REQ-020: the compliance suite ---------------------------------------------------------------


class TestBigQueryCompliance(BaseComputePluginTests):
    """BigQuery through floe's compliance suite; bqemulator is its live endpoint (tokens from the peer)."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "bigquery"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # BigLake tables are created once in the project; a dbt session names them

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {
            "project": PROJECT,
            "dataset": DATASET,
            "method": "oauth-secrets",
            "token": SecretReference("FLOE_BQ_TOKEN"),
        }

    @pytest.fixture
    def engine_endpoint(self, bq: Peer) -> Endpoint:
        return Endpoint(bq.config("service-account-json"), bq.environ())

    @pytest.fixture
    def address_settings(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], dict[str, Any]]:
        monkeypatch.setenv("FLOE_BQ_ADDRESS_TOKEN", "ya29.address-check")

        def settings(host: str, port: int) -> dict[str, Any]:
            return {
                "project": PROJECT,
                "dataset": DATASET,
                "method": "oauth-secrets",
                "token": SecretReference("FLOE_BQ_ADDRESS_TOKEN"),
                "api_endpoint": f"http://{host}:{port}",
            }

        return settings

    @pytest.fixture
    def client_error(self, emulator: BigQueryEmulator) -> BaseException:
        client = emulator.client()
        return _raised(lambda: client.get_dataset(f"{PROJECT}.nowhere", retry=None))


# -- a real `dbt build` through the profile `floe compile` writes, on bqemulator -----------------------


@pytest.mark.req("REQ-012")
def test_dbt_build_twice_through_the_compiled_profile(
    emulator: BigQueryEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds, a view, a table, generic tests and an incremental model (dbt-bigquery's default
    ``merge``) built twice by dbt-bigquery on bqemulator; rows read back with google-cloud-bigquery."""
    from tests.support import dbt_build

    target = dbt_build.on_bqemulator(
        emulator, dataset="orders_build", token_var=ENV["token"], token="ya29.canary-" + secrets.token_hex(8)
    )
    dbt_build.build_twice(tmp_path, target, monkeypatch)
    assert emulator.client().get_table(f"{PROJECT}.orders_build.stg_orders").table_type == "VIEW"
    assert emulator.client().get_table(f"{PROJECT}.orders_build.customer_totals").table_type == "TABLE"
