"""The declared REST catalog (SeaweedFS, vended credentials) killed in the middle of a real run.

The robustness product (:mod:`tests.test_run_robustness`: ``gated`` on ``duckdb-b`` reads the
test's gate, ``after`` on ``duckdb`` builds on it) runs against ``weed mini``'s Iceberg REST
catalog, which vends the S3 credentials. While ``gated``'s build is held on the gate, the test
kills ``weed`` (SIGKILL), then opens the gate: the build must fail naming the catalog's URI and the
transform, the run exits non-zero, ``after`` is skipped. SeaweedFS restarted on the same data and
ports, pyiceberg finds no table half-committed, and the next run succeeds with nothing cleaned up.
"""

from __future__ import annotations

import os
import secrets
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.seaweed import Seaweed, seaweed_mini, weed_binary
from tests.test_run_robustness import ROWS, Gate, run_again, start_run, wait_for

# the ``gate`` fixture, shared with the robustness tests
from tests.test_run_robustness import gate as gate

SECRET_ENV = "FLOE_TEST_LAKE_SECRET"
NAMESPACE = "faults_dev"

pytestmark = pytest.mark.skipif(not weed_binary().exists(), reason="no weed binary")


@pytest.fixture
def client_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)  # only vended credentials reach S3
    secret = secrets.token_urlsafe(18)
    monkeypatch.setenv(SECRET_ENV, secret)
    yield secret


def write_product(root: Path, server: Seaweed) -> Path:
    files = {
        "platform.yaml": f"""\
            apiVersion: floe.dev/v1
            kind: Manifest
            scope: enterprise
            metadata: {{name: acme}}
            catalog:
              type: rest
              name: lake
              uri: {server.iceberg_uri}
              warehouse: {server.table_bucket}
              client_id: {server.client_id}
              client_secret: {{secret_ref: {SECRET_ENV}}}
              access_delegation: vended-credentials
            plugins:
              compute:
                approved:
                  - name: duckdb
                    config: {{threads: 2, extensions: [iceberg, httpfs]}}
                  - name: duckdb-b
                    engine: duckdb
                    config: {{threads: 2}}
                default: duckdb
            environments:
              - name: dev
            """,
        "floe.yaml": """\
            apiVersion: floe.dev/v1
            kind: DataProduct
            metadata: {name: faults}
            platform: platform.yaml
            transforms:
              - {type: dbt, name: gated, path: models/gated/, compute: duckdb-b}
              - {type: dbt, name: after, path: models/after/, compute: duckdb}
            """,
        "dbt_project.yml": "name: faults\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\n"
        "models:\n  faults:\n    +materialized: table\n",
        "models/gated/gated.sql": "select n from read_csv('{{ env_var('FLOE_TEST_GATE') }}', header=true)\n",
        "models/after/doubled.sql": "select n * 2 as n2 from {{ ref('gated') }}\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def catalog(server: Seaweed) -> Any:
    from pyiceberg.catalog import rest

    from floe.catalog.vending import pyiceberg_rest_properties
    from floe.model import CatalogConfig, SecretReference

    config = CatalogConfig(
        type="rest",
        name="lake",
        uri=server.iceberg_uri,
        warehouse=server.table_bucket,
        client_id=server.client_id,
        client_secret=SecretReference(SECRET_ENV),
        access_delegation="vended-credentials",
    )
    return rest.RestCatalog("lake", **pyiceberg_rest_properties(config, os.environ))


def tables(server: Seaweed) -> dict[str, list[dict[str, Any]]]:
    """Every table of the product's namespace, read whole (a half-committed one fails to load or scan)."""
    lake = catalog(server)
    if (NAMESPACE,) not in lake.list_namespaces():
        return {}
    return {
        name: lake.load_table((NAMESPACE, name)).scan().to_arrow().to_pylist()
        for _, name in lake.list_tables(NAMESPACE)
    }


def test_the_rest_catalog_killed_mid_run_is_named_and_the_next_run_succeeds(
    tmp_path: Path, gate: Gate, client_secret: str
) -> None:
    weed_root = tmp_path / "seaweed"
    with seaweed_mini(weed_root, client_secret=client_secret) as server:
        root = write_product(tmp_path / "faults", server)
        proc, output = start_run(root, gate)
        wait_for(output, r"\[gated\] started on duckdb-b", proc)
        deadline = time.monotonic() + 180
        while gate.requests == 0 and time.monotonic() < deadline:  # inside the build, held on the gate
            time.sleep(0.05)
        assert gate.requests, output.read_text()
        os.kill(server.pid, signal.SIGKILL)
        gate.opened.set()  # the build goes on, and needs the catalog to commit its table
        assert proc.wait(timeout=180) == 1, output.read_text()
    text = output.read_text()
    assert "[gated] FAILED on duckdb-b" in text, text
    assert f"the catalog 'lake' at {server.iceberg_uri} does not answer" in text, text
    assert "[after] SKIPPED" in text, text
    assert "Traceback" not in text and client_secret not in text, text

    with seaweed_mini(weed_root, client_secret=client_secret, restart=server) as again:
        assert again.iceberg_uri == server.iceberg_uri
        before = tables(again)
        assert "doubled" not in before, before
        assert before.get("gated") in (None, [], [{"n": ROWS}]), before  # never between
        done = run_again(root, gate)
        assert done.returncode == 0, done.stdout + done.stderr
        assert tables(again) == {"gated": [{"n": ROWS}], "doubled": [{"n2": 2 * ROWS}]}
