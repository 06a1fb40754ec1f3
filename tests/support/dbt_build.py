"""A small data product built for real by ``dbt build`` through the profile ``floe compile`` writes.

The engines' ``dbt build`` tests (one per engine module) share it: :func:`write_product` writes an
enterprise manifest approving one compute (``warehouse``) of the engine under test and a data product
that is also a dbt project:

- a seed ``raw_orders`` (``id, customer, amount, version``);
- a view ``stg_orders`` over it, a table ``customer_totals`` (a ``group by``) and an incremental
  model ``orders_incremental`` (``unique_key: id``) that selects, on an incremental run, only the
  rows whose ``version`` is newer than what it holds, and stamps each row with the run's ``batch``
  (a var of the project, 1 and then 2);
- generic tests: ``unique`` and ``not_null`` on ids, ``not_null`` and ``accepted_values``.

:func:`compile_product` runs ``floe compile`` as a user would (a subprocess); :func:`build` runs
``dbt build`` in-process (``dbtRunner``) with ``--profiles-dir target/floe``, so dbt connects with
the profile exactly as generated, its secrets read from the environment. The second build comes
after :func:`change_source`: row 2 changed (version 2), row 4 added and the project's ``batch`` set
to 2, so an incremental run merges one row and inserts one, and rows 1 and 3 keep batch 1 — which
a full rebuild would not. Nothing is passed on dbt's command line, so ``floe run`` twice (with
:func:`change_source` between) must leave the same rows.
:data:`EXPECTED_*` are the rows each relation must then hold, for the tests to read back through
the peer (never through dbt's own output).

Each engine's peer is described once, as a :class:`Target` (``on_fakesnow``, ``on_bqemulator``,
``on_databricks``, ``on_redshift``, ``on_trino``): the approved compute's settings, the environment
the CLI and dbt need (secrets, trust), how to read a relation back through the peer, and what the
incremental model must set on that peer. :func:`build_twice` is the whole check of a ``dbt
build``. For ``floe run``, :func:`in_catalog` describes DuckDB and Spark (they build in the run's
embedded Iceberg catalog, read back with pyiceberg), and :func:`write_run_product` writes one
product with a transform per target, each target's relations named with its ``prefix``
(``tests/test_run_all_engines.py`` runs it twice and reads the same :data:`EXPECTED_SECOND`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from floe.model import SecretReference

COMPUTE = "warehouse"
PROFILE = f"floe_{COMPUTE}"
SEED_V1 = "id,customer,amount,version\n1,alice,10,1\n2,bob,20,1\n3,alice,30,1\n"
SEED_V2 = "id,customer,amount,version\n1,alice,10,1\n2,bob,25,2\n3,alice,30,1\n4,carol,40,2\n"

EXPECTED_FIRST = {
    "raw_orders": [(1, "alice", 10, 1), (2, "bob", 20, 1), (3, "alice", 30, 1)],
    "stg_orders": [(1, "alice", 10), (2, "bob", 20), (3, "alice", 30)],
    "customer_totals": [("alice", 40, 2), ("bob", 20, 1)],
    "orders_incremental": [(1, "alice", 10, 1, 1), (2, "bob", 20, 1, 1), (3, "alice", 30, 1, 1)],
}
"""Rows after the first build (ordered by the first column)."""
EXPECTED_SECOND = {
    "raw_orders": [(1, "alice", 10, 1), (2, "bob", 25, 2), (3, "alice", 30, 1), (4, "carol", 40, 2)],
    "stg_orders": [(1, "alice", 10), (2, "bob", 25), (3, "alice", 30), (4, "carol", 40)],
    "customer_totals": [("alice", 40, 2), ("bob", 25, 1), ("carol", 40, 1)],
    # (id, customer, amount, version, batch): 2 merged and 4 inserted by batch 2; 1 and 3 untouched
    "orders_incremental": [
        (1, "alice", 10, 1, 1),
        (2, "bob", 25, 2, 2),
        (3, "alice", 30, 1, 1),
        (4, "carol", 40, 2, 2),
    ],
}
COLUMNS = {
    "raw_orders": "id, customer, amount, version",
    "stg_orders": "id, customer, amount",
    "customer_totals": "customer, total, orders",
    "orders_incremental": "id, customer, amount, version, batch",
}
"""The columns the expected rows list, in order."""
NODES = {
    "seed": ["raw_orders"],
    "model": ["customer_totals", "orders_incremental", "stg_orders"],
    "test": [
        "accepted_values_customer_totals_customer__alice__bob__carol",
        "not_null_customer_totals_customer",
        "not_null_orders_incremental_id",
        "not_null_stg_orders_id",
        "unique_orders_incremental_id",
        "unique_stg_orders_id",
    ],
}
"""The nodes one ``dbt build`` runs, by resource type."""


def _yaml_value(value: Any) -> Any:
    """A setting as a manifest spells it: a secret as ``{secret_ref: NAME}``."""
    if isinstance(value, SecretReference):
        return {"secret_ref": value.name}
    if isinstance(value, Mapping):
        return {k: _yaml_value(v) for k, v in value.items()}
    return value


def write_product(
    root: Path, engine: str, config: Mapping[str, Any], *, incremental: Mapping[str, Any] | None = None
) -> Path:
    """The platform manifest and the product (a dbt project) under ``root``; returns the product.

    :param config: the compute's settings (secrets as :class:`SecretReference`).
    :param incremental: extra configs of the incremental model (e.g. an ``incremental_strategy``).
    """
    _write_manifest(root, [{"name": COMPUTE, "engine": engine, "config": _yaml_value(config)}])
    product = root / "orders"
    _write(
        product,
        {
            **_product_files(f"  - {{type: dbt, path: models/, compute: {COMPUTE}}}\n", PROFILE),
            **_model_files("", "models", incremental or {}),
        },
    )
    return product


def write_run_product(root: Path, targets: Sequence[Target]) -> Path:
    """One product whose transforms run on every target's engine: the manifest approves a compute
    per target, named after its engine; transform ``<engine>`` (``models/<engine>/``) runs there
    and builds the relations of :func:`write_product`, each named with the target's ``prefix``
    (distinct names, as computes that share the catalog need). Returns the product."""
    _write_manifest(
        root, [{"name": t.engine, "engine": t.engine, "config": _yaml_value(t.config)} for t in targets]
    )
    product = root / "orders"
    transforms = "".join(
        f"  - {{type: dbt, name: {t.engine}, path: models/{t.engine}/, compute: {t.engine}}}\n"
        for t in targets
    )
    files = _product_files(transforms, "unused")  # floe run names each compute's profile itself
    for target in targets:
        files.update(_model_files(target.prefix, f"models/{target.engine}", target.incremental))
    _write(product, files)
    return product


def _write_manifest(root: Path, approved: list[dict[str, Any]]) -> None:
    manifest = {
        "apiVersion": "floe.dev/v1",
        "kind": "Manifest",
        "scope": "enterprise",
        "metadata": {"name": "acme"},
        "plugins": {"compute": {"approved": approved, "default": approved[0]["name"]}},
        "environments": [{"name": "dev"}],
    }
    (root / "platform").mkdir(parents=True, exist_ok=True)
    (root / "platform" / "enterprise.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _product_files(transforms: str, profile: str) -> dict[str, str]:
    """``floe.yaml`` with ``transforms`` (YAML list items), and ``dbt_project.yml``."""
    return {
        "floe.yaml": "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: orders}\n"
        f"platform: ../platform/enterprise.yaml\ntransforms:\n{transforms}",
        "dbt_project.yml": f'name: orders\nversion: "1.0"\nconfig-version: 2\nprofile: {profile}\nvars: {{batch: 1}}\n',
    }


def _model_files(prefix: str, folder: str, incremental: Mapping[str, Any]) -> dict[str, str]:
    """The seed, models and tests of the product, their names starting with ``prefix``."""
    p = prefix
    return {
        f"seeds/{p}raw_orders.csv": SEED_V1,
        f"{folder}/{p}stg_orders.sql": f"""\
            {{{{ config(materialized='view') }}}}
            select id, customer, amount, version from {{{{ ref('{p}raw_orders') }}}}
            """,
        f"{folder}/{p}customer_totals.sql": f"""\
            {{{{ config(materialized='table') }}}}
            select customer, sum(amount) as total, count(*) as orders
            from {{{{ ref('{p}stg_orders') }}}}
            group by customer
            """,
        f"{folder}/{p}orders_incremental.sql": f"""\
            {{{{ config({_config_args({"materialized": "incremental", "unique_key": "id", **incremental})}) }}}}
            select id, customer, amount, version, {{{{ var('batch') }}}} as batch
            from {{{{ ref('{p}stg_orders') }}}}
            {{% if is_incremental() %}}
            where version > (select max(version) from {{{{ this }}}})
            {{% endif %}}
            """,
        f"{folder}/{p}schema.yml": f"""\
            version: 2
            models:
              - name: {p}stg_orders
                columns:
                  - name: id
                    data_tests: [unique, not_null]
              - name: {p}customer_totals
                columns:
                  - name: customer
                    data_tests:
                      - not_null
                      - accepted_values:
                          arguments: {{values: [alice, bob, carol]}}
              - name: {p}orders_incremental
                columns:
                  - name: id
                    data_tests: [unique, not_null]
            """,
    }


def _write(product: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = product / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _config_args(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in config.items())


def change_source(product: Path) -> None:
    """Between the builds: row 2 updated (version 2) and row 4 added to the seed (to every engine's
    seed of a :func:`write_run_product`); ``batch`` is 2."""
    for seed in (product / "seeds").glob("*raw_orders.csv"):
        seed.write_text(SEED_V2)
    project = product / "dbt_project.yml"
    project.write_text(project.read_text().replace("vars: {batch: 1}", "vars: {batch: 2}"))


def compile_product(product: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """``floe compile`` in a subprocess; returns the profile it wrote for the compute."""
    proc = subprocess.run(
        [sys.executable, "-m", "floe", "compile", str(product)],
        capture_output=True,
        text=True,
        env=dict(environ),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    profiles = yaml.safe_load((product / "target" / "floe" / "profiles.yml").read_text())
    profile: dict[str, Any] = profiles[PROFILE]
    return profile


def build(product: Path, *extra: str) -> Any:
    """``dbt build`` in-process with the compiled profiles; returns dbt's result."""
    from dbt.cli.main import dbtRunner

    profiles = product / "target" / "floe"
    return dbtRunner().invoke(
        ["build", "--project-dir", str(product), "--profiles-dir", str(profiles), *extra]
    )


def statuses(result: Any) -> dict[str, list[tuple[str, str]]]:
    """The nodes dbt ran, by resource type, with their status (for a readable assertion)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for node_result in result.result.results:
        node = node_result.node
        found.setdefault(str(node.resource_type), []).append((node.name, str(node_result.status)))
    return {kind: sorted(items) for kind, items in sorted(found.items())}


def all_passed(prefix: str = "") -> dict[str, list[tuple[str, str]]]:
    """What :func:`statuses` shows for a build where every node succeeded (the nodes named with
    ``prefix``, as :func:`write_run_product` names a target's)."""
    ok = {"seed": "success", "model": "success", "test": "pass"}
    return {
        kind: sorted((prefixed(name, prefix), ok[kind]) for name in names) for kind, names in NODES.items()
    }


def prefixed(node: str, prefix: str) -> str:
    """The name of the node ``node`` of :data:`NODES` when the relations' names start with ``prefix``."""
    for relation in COLUMNS:
        if relation in node:
            return node.replace(relation, prefix + relation, 1)
    return node


def dbt_environ(folder: Path) -> dict[str, str]:
    """dbt's logs and target/ under ``folder``; no usage statistics; no version check."""
    return {
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
        "DBT_LOG_PATH": str(folder / "dbt-logs"),
        "DBT_TARGET_PATH": str(folder / "dbt-target"),
        "DBT_PARTIAL_PARSE": "false",
    }


def written_text(folder: Path, product: Path) -> list[str]:
    """Everything dbt and floe wrote (logs, artifacts, compiled profiles), to search for secrets."""
    paths = [p for p in (folder / "dbt-logs").rglob("*") if p.is_file()]
    paths += [p for p in (folder / "dbt-target").rglob("*") if p.is_file()]
    paths += [p for p in (product / "target").rglob("*") if p.is_file()]
    return [p.read_text(errors="replace") for p in paths]


# -- the peers, as targets of a build -------------------------------------------------------------------


@attrs.frozen
class Target:
    """A compute on a running peer, as a build of the product needs it."""

    engine: str
    config: Mapping[str, Any]
    """The approved compute's settings (secrets as :class:`SecretReference`)."""
    environ: Mapping[str, str]
    """What the CLI and dbt need in their environment: the secrets' values, the peer's CA…"""
    read: Callable[[str], list[tuple[Any, ...]]]
    """The rows of a relation of the product (its :data:`COLUMNS`, ordered), read through the peer."""
    secret: str
    """A secret's value, which must appear in nothing dbt or floe writes."""
    incremental: Mapping[str, Any] = attrs.field(factory=dict)
    """Configs the incremental model needs on this peer (none on a real service)."""
    prefix: str = ""
    """How the names of the product's relations start on this target (:func:`write_run_product`)."""


def on_fakesnow(
    server: Any, *, database: str, schema: str, password_var: str, password: str, prefix: str = ""
) -> Target:
    """fakesnow (:class:`tests.support.snowflake_peer.FakesnowServer`), ``database`` already created.

    Two of dbt-snowflake's incremental statements do not survive fakesnow's translation to DuckDB,
    so the model uses dbt-snowflake's documented configs around them:

    - the new rows are first put in a temporary view or table (``create temporary …``), which DuckDB
      allows only in its ``temp`` catalog (``TEMPORARY table names can *only* use the "temp"
      catalog``): ``tmp_relation_type: transient`` makes it a transient table in the model's schema;
    - fakesnow emulates ``MERGE`` with a helper table of its own, which DuckDB refuses inside the
      ``begin … commit`` dbt-snowflake wraps it in (a transaction may write one database only):
      ``incremental_strategy: delete+insert`` replaces the rows of the changed keys instead, with
      the same result.
    """
    from floe.model import SecretReference

    def read(relation: str) -> list[tuple[Any, ...]]:
        import snowflake.connector

        with snowflake.connector.connect(
            account="fakesnow",
            user="reader",
            password="any",
            host=server.host,
            port=server.port,
            protocol="http",
            platform_detection_timeout_seconds=0.0,
        ) as conn:
            cursor = conn.cursor()
            cursor.execute(
                f"select {COLUMNS[relation]} from {database}.{schema}.{prefix}{relation} order by 1"
            )
            return [tuple(row) for row in cursor.fetchall()]

    config = {
        "account": "fakesnow",
        "user": "floe",
        "password": SecretReference(password_var),
        "database": database,
        "warehouse": "compute_wh",
        "schema": schema,
        "role": "transformer",
        "host": server.host,
        "port": server.port,
        "protocol": "http",
    }
    return Target(
        "snowflake",
        config,
        {password_var: password},
        read,
        password,
        {"incremental_strategy": "delete+insert", "tmp_relation_type": "transient"},
        prefix,
    )


def on_bqemulator(emulator: Any, *, dataset: str, token_var: str, token: str, prefix: str = "") -> Target:
    """bqemulator (:class:`tests.support.bqemulator.BigQueryEmulator`), an access token (any is accepted).

    dbt-bigquery's default incremental strategy, ``merge``, runs as on BigQuery.
    """
    from floe.model import SecretReference

    def read(relation: str) -> list[tuple[Any, ...]]:
        sql = f"select {COLUMNS[relation]} from `{emulator.project}.{dataset}.{prefix}{relation}` order by 1"
        return [tuple(row.values()) for row in emulator.client().query(sql).result()]

    config = {
        "project": emulator.project,
        "dataset": dataset,
        "location": "US",
        "method": "oauth-secrets",
        "token": SecretReference(token_var),
        "api_endpoint": emulator.url,
    }
    return Target("bigquery", config, {token_var: token}, read, token, prefix=prefix)


def on_databricks(
    peer: Any, *, schema: str, token_var: str, token: str, catalog: str = "main", prefix: str = ""
) -> Target:
    """The Databricks SQL warehouse peer (:mod:`tests.support.databricks_peer`), a token it issued.

    dbt-databricks' default incremental strategy, ``merge``, runs as on Databricks.
    """
    from floe.model import SecretReference

    def read(relation: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = peer.query(
            f"select {COLUMNS[relation]} from {catalog}.{schema}.{prefix}{relation} order by 1"
        )
        return rows

    config = {
        "host": peer.host,
        "http_path": peer.http_path,
        "catalog": catalog,
        "schema": schema,
        "use_sea": True,
        "token": SecretReference(token_var),
    }
    environ = {token_var: token, "SSL_CERT_FILE": peer.ca_file, "REQUESTS_CA_BUNDLE": peer.ca_file}
    return Target("databricks", config, environ, read, token, prefix=prefix)


def on_redshift(
    peer: Any,
    *,
    ca: Path,
    user: str,
    password_var: str,
    password: str,
    schema: str,
    database: str = "dev",
    prefix: str = "",
) -> Target:
    """The Redshift peer (:class:`tests.support.redshift_peer.RedshiftPeer`) over TLS, its CA trusted.

    dbt-redshift's default incremental strategy with a ``unique_key`` is ``delete+insert``.
    """
    from floe.model import SecretReference

    def read(relation: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = peer.sql(
            f"select {COLUMNS[relation]} from {database}.{schema}.{prefix}{relation} order by 1"
        )
        return rows

    config = {
        "host": "127.0.0.1",
        "port": peer.port,
        "user": user,
        "password": SecretReference(password_var),
        "dbname": database,
        "schema": schema,
        "sslmode": "verify-ca",
    }
    return Target(
        "redshift", config, {password_var: password, "SSL_CERT_FILE": str(ca)}, read, password, prefix=prefix
    )


def on_trino(
    peer: Any,
    *,
    ca: Path,
    catalog: str,
    user: str,
    password_var: str,
    password: str,
    schema: str,
    prefix: str = "",
) -> Target:
    """The Trino coordinator peer (:class:`tests.support.trino_peer.TrinoPeer`) over HTTPS with a password.

    The model asks for ``merge`` (dbt-trino's default is ``append``, which would add row 2 again).
    """
    from floe.model import SecretReference

    def read(relation: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = peer.sql(
            f"select {COLUMNS[relation]} from {catalog}.{schema}.{prefix}{relation} order by 1"
        )
        return rows

    config = {
        "host": "127.0.0.1",
        "port": peer.port,
        "user": user,
        "password": SecretReference(password_var),
        "database": catalog,
        "schema": schema,
        "verify": str(ca),
    }
    return Target(
        "trino", config, {password_var: password}, read, password, {"incremental_strategy": "merge"}, prefix
    )


def in_catalog(
    engine: str,
    config: Mapping[str, Any],
    *,
    product: Path,
    namespace: str,
    prefix: str = "",
    incremental: Mapping[str, Any] | None = None,
) -> Target:
    """An engine whose worker builds in ``floe run``'s embedded Iceberg catalog (DuckDB, Spark):
    rows are read with pyiceberg from the catalog's own SQLite file and warehouse under
    ``<product>/.floe/iceberg/``, a reader that shares nothing with the run."""

    def read(relation: str) -> list[tuple[Any, ...]]:
        from pyiceberg.catalog.sql import SqlCatalog

        root = product / ".floe" / "iceberg" / "floe"
        catalog = SqlCatalog(
            "floe", uri=f"sqlite:///{root / 'catalog.sqlite'}", warehouse=f"file://{root / 'warehouse'}"
        )
        data = catalog.load_table((namespace, prefix + relation)).scan().to_arrow()
        columns = [c.strip() for c in COLUMNS[relation].split(",")]
        rows = list(zip(*(data.column(c).to_pylist() for c in columns), strict=True))
        return sorted(rows, key=lambda row: row[0])

    return Target(engine, config, {}, read, "", incremental or {}, prefix)


def build_twice(root: Path, target: Target, monkeypatch: Any) -> Path:
    """Compile the product for ``target``, ``dbt build`` it, change the seed, build again; check each
    build's nodes and every relation's rows (read through the peer) and that ``target.secret``
    appears in nothing written. Returns the product."""
    for key, value in {**dbt_environ(root), "HOME": str(root), **target.environ}.items():
        monkeypatch.setenv(key, value)
    product = write_product(root, target.engine, target.config, incremental=target.incremental)
    profile = compile_product(product, os.environ)
    rendered = yaml.safe_dump(profile)
    assert target.secret not in rendered and "env_var(" in rendered, rendered
    for batch, expected in ((1, EXPECTED_FIRST), (2, EXPECTED_SECOND)):
        if batch == 2:
            change_source(product)
        result = build(product)
        assert result.success, result.exception
        assert statuses(result) == all_passed()
        assert {name: target.read(name) for name in expected} == expected
    assert not [text[:200] for text in written_text(root, product) if target.secret in text]
    return product
