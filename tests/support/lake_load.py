"""Data products for the load tests and benchmarks: many products, one shared REST catalog.

Each product ``pNN`` has two transforms on two DuckDB computes (two dbt workers):

- ``make`` (compute ``duckdb``) builds ``events``: ``rows`` rows, ids ``0 … rows-1``;
- ``check`` (compute ``duckdb-b``) builds ``summary`` from ``ref('events')`` (count and sum, which
  say whether it saw the whole table) and ``peek``, which reads *another* product's ``events``
  by its catalog name: what that product's concurrent run had committed at that moment.

With ``ledger_writers``, the product also has a transform ``publish`` (compute ``duckdb``) of
that many tiny models, each of which appends one row to the shared table ``shared.ledger`` in a
post-hook: two products doing so at once commit to one Iceberg table concurrently.

Everything is written as plain files: the tests run ``floe run`` on them in subprocesses, as a user
does, and the benchmarks import this module from a checkout.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.seaweed import Seaweed

CATALOG_NAME = "lake"
"""The catalog's name in the platform manifest: DuckDB attaches it under this alias."""
LEDGER = "shared.ledger"
"""The table every publishing product appends to (``namespace.table``)."""
SECRET_ENV = "FLOE_TEST_LOAD_CLIENT_SECRET"
"""The variable the platform manifest's ``client_secret`` names."""


def platform_yaml(uri: str, warehouse: str, client_id: str) -> str:
    """An enterprise manifest: the REST catalog with vended credentials, two DuckDB computes."""
    return textwrap.dedent(f"""\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {{name: load, owner: platform-team}}
        catalog:
          type: rest
          name: {CATALOG_NAME}
          uri: {uri}
          warehouse: {warehouse}
          client_id: {client_id}
          client_secret: {{secret_ref: {SECRET_ENV}}}
          access_delegation: vended-credentials
        plugins:
          compute:
            approved:
              - name: duckdb
                config: {{threads: 2}}
              - name: duckdb-b
                engine: duckdb
                config: {{threads: 2}}
            default: duckdb
        environments:
          - name: dev
        """)


def events_sql(rows: int) -> str:
    return f"select range as id, range % 7 as k from range({rows})\n"


def write_load_product(
    root: Path, name: str, rows: int, *, peek: str | None = None, ledger_writers: int = 0
) -> Path:
    """Write product ``name`` under ``root`` (the platform manifest is ``root/platform.yaml``).

    :param peek: another product's name: ``peek`` counts the rows of its ``events`` table.
    :param ledger_writers: models that each append one row to :data:`LEDGER` (none: no ``publish``).
    """
    product = root / name
    files = {
        "dbt_project.yml": f"name: {name}\nversion: '1.0'\nconfig-version: 2\nprofile: {name}\n"
        f"models:\n  {name}:\n    +materialized: table\n",
        "models/make/events.sql": events_sql(rows),
        "models/check/summary.sql": "select count(*) as n, sum(id) as total from {{ ref('events') }}\n",
    }
    transforms = [
        "  - {type: dbt, name: make, path: models/make/, compute: duckdb}",
        "  - {type: dbt, name: check, path: models/check/, compute: duckdb-b}",
    ]
    if peek is not None:
        files["models/check/peek.sql"] = (
            f"select count(*) as n from {CATALOG_NAME}.{namespace(peek)}.events\n"
        )
    for i in range(ledger_writers):
        files[f"models/publish/w{i:02d}.sql"] = (
            '{{ config(post_hook="insert into '
            + f"{CATALOG_NAME}.{LEDGER} values ('{name}', {i})"
            + '") }}\n'
            f"select {i} as writer\n"
        )
    if ledger_writers:
        transforms.append("  - {type: dbt, name: publish, path: models/publish/, compute: duckdb}")
    files["floe.yaml"] = (
        "\n".join(
            [
                "apiVersion: floe.dev/v1",
                "kind: DataProduct",
                f"metadata: {{name: {name}, owner: load}}",
                "platform: ../platform.yaml",
                "transforms:",
                *transforms,
            ]
        )
        + "\n"
    )
    for relative, text in files.items():
        path = product / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return product


def namespace(product: str, environment: str = "dev") -> str:
    """The catalog namespace floe publishes ``product``'s models to in ``environment``."""
    return f"{product}_{environment}"


def expected_summary(rows: int) -> tuple[int, int]:
    """``summary``'s one row when it read all of ``events``: ``(count, sum of ids)``."""
    return rows, rows * (rows - 1) // 2


def client_environ(secret: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``floe run`` against the lake: the catalog client's secret, and no
    static AWS credentials or region (S3 is reached with vended credentials only)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")}
    env[SECRET_ENV] = secret
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def rest_catalog(server: Seaweed, secret: str) -> Any:
    """pyiceberg's client of the lake's REST catalog, asking for vended credentials (the properties
    floe's own reads use: :func:`floe.catalog.vending.pyiceberg_rest_properties`)."""
    from pyiceberg.catalog import rest

    from floe.catalog.vending import pyiceberg_rest_properties
    from floe.model import CatalogConfig, SecretReference

    config = CatalogConfig(
        type="rest",
        name=CATALOG_NAME,
        uri=server.iceberg_uri,
        warehouse=server.table_bucket,
        client_id=server.client_id,
        client_secret=SecretReference(SECRET_ENV),
        access_delegation="vended-credentials",
    )
    return rest.RestCatalog(CATALOG_NAME, **pyiceberg_rest_properties(config, {SECRET_ENV: secret}))


@dataclass
class Finished:
    """One ``floe run --json``: its exit status, its report (``None`` if it printed none), its output's tail."""

    product: str
    returncode: int
    report: dict[str, Any] | None
    output: str
    seconds: float


def run_at_once(
    root: Path, products: Sequence[str], env: Mapping[str, str], timeout: float
) -> dict[str, Finished]:
    """``floe run PRODUCT --env dev --json`` for every product under ``root``, all started before any
    is awaited."""
    start = time.perf_counter()
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "floe", "run", str(root / name), "--env", "dev", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
            cwd=root / name,
        )
        for name in products
    }
    done: dict[str, Finished] = {}
    for name, proc in started.items():
        try:
            out, err = proc.communicate(timeout=max(1.0, timeout - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n(killed: still running after {timeout:g} s)"
        try:
            report = json.loads(out)
        except ValueError:
            report = None
        done[name] = Finished(
            name, proc.returncode, report, out[-3000:] + err[-3000:], time.perf_counter() - start
        )
    return done


def snapshot_chain(table: Any) -> list[Any]:
    """The table's snapshots, oldest first, checked to form one line of history: each the parent of
    the next, the last one current. A commit written over another (a lost update) breaks it."""
    chain = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
    for parent, child in itertools.pairwise(chain):
        if child.parent_snapshot_id != parent.snapshot_id:
            raise AssertionError(
                f"{table.name()}: snapshot {child.snapshot_id} does not follow {parent.snapshot_id}"
            )
    current = table.current_snapshot()
    if chain and (current is None or current.snapshot_id != chain[-1].snapshot_id):
        raise AssertionError(f"{table.name()}: the current snapshot is not the last one committed")
    return chain
