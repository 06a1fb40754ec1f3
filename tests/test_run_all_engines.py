"""``floe run`` of one product whose transforms use each of the seven built-in engines, twice.

Each engine runs on the best peer this machine has: DuckDB and Spark (a local SparkSession) for
real, both attaching the run's embedded Iceberg catalog in place; Snowflake on the fakesnow
server; BigQuery on bqemulator; Databricks, Redshift and Trino on their wire peers
(``tests/support/*_peer.py``). The product (:func:`tests.support.dbt_build.write_run_product`)
has one transform per engine, each the product of the engines' ``dbt build`` tests with its
relations' names prefixed: a seed, a view, a table, an incremental model (``unique_key``) and
generic tests. The seven transforms are independent, so they run at once, each in its engine's
worker.

One module-scoped fixture starts the peers, runs ``floe plan --json``, then ``floe run --json``,
changes the seeds and the project's ``batch`` var (:func:`tests.support.dbt_build.change_source`),
and runs again; every relation's rows are read back through the peer after each run (never from
dbt's or floe's output). The tests then check, per engine, that the first run built what
:data:`EXPECTED_FIRST` says and the second, an incremental run, :data:`EXPECTED_SECOND` (rows 1
and 3 keep batch 1: a full rebuild would stamp them 2); that the run did what ``floe plan``
said; and that no secret's value appears in any output.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.support import dbt_build
from tests.support.all_engines import cli_environ
from tests.support.dbt_build import EXPECTED_FIRST, EXPECTED_SECOND, Target
from tests.support.spark_peer import QUICK_JVM

pytestmark = [
    pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning"),
]

ENGINES = ("duckdb", "spark", "snowflake", "bigquery", "databricks", "redshift", "trino")
PREFIX = {
    "duckdb": "dk_",
    "spark": "sp_",
    "snowflake": "sf_",
    "bigquery": "bq_",
    "databricks": "db_",
    "redshift": "rs_",
    "trino": "tr_",
}
"""Short, so that dbt's names of the generic tests stay whole (it hashes names of 64+ characters)."""
NAMESPACE = "orders_dev"
"""Where ``floe run`` builds the product ``orders`` in environment ``dev``, on every engine."""
SNOWFLAKE_DATABASE, BQ_PROJECT, TRINO_CATALOG = "analytics", "floe-test", "lake"


@dataclass
class Attempt:
    """One ``floe run --json`` and what the peers held afterwards."""

    done: subprocess.CompletedProcess[str]
    seconds: float
    rows: dict[str, dict[str, list[tuple[Any, ...]]]] = field(default_factory=dict)
    """Per engine, per relation of :data:`EXPECTED_FIRST`: the rows read through its peer."""

    @property
    def report(self) -> dict[str, Any]:
        assert self.done.stdout.strip(), self.done.stderr[-3000:]
        report: dict[str, Any] = json.loads(self.done.stdout)
        return report

    def transform(self, engine: str) -> dict[str, Any]:
        (found,) = [t for t in self.report["transforms"] if t["name"] == engine]
        return found


@dataclass
class Runs:
    root: Path
    product: Path
    targets: dict[str, Target]
    environ: dict[str, str]
    plan: subprocess.CompletedProcess[str]
    attempts: list[Attempt]


def floe(*args: str, environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, env=dict(environ), timeout=900
    )


def read_all(targets: Mapping[str, Target]) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Every relation of every engine, read through its peer (a relation missing reads as the error)."""
    found: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for engine, target in targets.items():
        found[engine] = {}
        for relation in EXPECTED_FIRST:
            try:
                found[engine][relation] = target.read(relation)
            except Exception as exc:  # noqa: BLE001 - shown in the per-engine assertion
                found[engine][relation] = [("could not read", type(exc).__name__, str(exc)[:300])]
    return found


@contextlib.contextmanager
def running(folder: Path, product: Path) -> Iterator[tuple[dict[str, Target], dict[str, str]]]:
    """Every engine's peer, as a build target read in ``floe run``'s namespace (its settings name
    another schema, which the run's profile must replace); and the CLI's environment."""
    from tests.support.bqemulator import running_bqemulator
    from tests.support.databricks_peer import serve as serve_databricks
    from tests.support.redshift_peer import RedshiftPeer
    from tests.support.snowflake_peer import FakesnowServer
    from tests.support.trino_peer import TrinoPeer, make_pki

    folder.mkdir(parents=True, exist_ok=True)
    pki = make_pki(folder / "pki")  # Redshift's and Trino's server certificates for 127.0.0.1
    with contextlib.ExitStack() as stack:
        fakesnow = stack.enter_context(FakesnowServer(folder))
        fakesnow.create_database(SNOWFLAKE_DATABASE)
        emulator = stack.enter_context(running_bqemulator(folder / "bqemulator", BQ_PROJECT))
        databricks = stack.enter_context(serve_databricks())
        redshift_password = "canary-rs-" + secrets.token_hex(8)
        redshift = stack.enter_context(RedshiftPeer({"alice": redshift_password}, ("dev",), tls=pki))
        trino_password = "canary-trino-" + secrets.token_hex(8)
        trino = stack.enter_context(TrinoPeer((TRINO_CATALOG,), passwords={"alice": trino_password}, tls=pki))
        spark_conf = {
            "spark.sql.shuffle.partitions": "1",
            "spark.ui.enabled": "false",
            "spark.driver.extraJavaOptions": QUICK_JVM,
        }
        targets = {
            "duckdb": dbt_build.in_catalog(
                "duckdb", {"threads": 1}, product=product, namespace=NAMESPACE, prefix=PREFIX["duckdb"]
            ),
            "spark": dbt_build.in_catalog(
                "spark",
                {
                    "method": "session",
                    "master": "local[1]",
                    "driver_memory": "768m",
                    "iceberg": True,
                    "spark_conf": spark_conf,
                },
                product=product,
                namespace=NAMESPACE,
                prefix=PREFIX["spark"],
                incremental={"incremental_strategy": "merge"},
            ),
            "snowflake": dbt_build.on_fakesnow(
                fakesnow,
                database=SNOWFLAKE_DATABASE,
                schema=NAMESPACE,
                password_var="FLOE_RUN_SF_PASSWORD",
                password="canary-sf-" + secrets.token_hex(8),
                prefix=PREFIX["snowflake"],
            ),
            "bigquery": dbt_build.on_bqemulator(
                emulator,
                dataset=NAMESPACE,
                token_var="FLOE_RUN_BQ_TOKEN",
                token="ya29.canary-" + secrets.token_hex(8),
                prefix=PREFIX["bigquery"],
            ),
            "databricks": dbt_build.on_databricks(
                databricks,
                schema=NAMESPACE,
                token_var="FLOE_RUN_DBX_TOKEN",
                token=databricks.add_token(),
                prefix=PREFIX["databricks"],
            ),
            "redshift": dbt_build.on_redshift(
                redshift,
                ca=pki.ca,
                user="alice",
                password_var="FLOE_RUN_RS_PASSWORD",
                password=redshift_password,
                schema=NAMESPACE,
                prefix=PREFIX["redshift"],
            ),
            "trino": dbt_build.on_trino(
                trino,
                ca=pki.ca,
                catalog=TRINO_CATALOG,
                user="alice",
                password_var="FLOE_RUN_TRINO_PASSWORD",
                password=trino_password,
                schema=NAMESPACE,
                prefix=PREFIX["trino"],
            ),
        }
        for engine, target in targets.items():  # the compiled profiles build elsewhere: the run moves them
            moved = {key: "compiled_elsewhere" for key in ("schema", "dataset") if key in target.config}
            targets[engine] = attrs.evolve(target, config={**target.config, **moved})
        bundle = folder / "ca-bundle.pem"  # one process trusts Databricks' CA and Redshift's and Trino's
        bundle.write_text(Path(databricks.ca_file).read_text() + pki.ca.read_text())
        home = folder / "home"  # the connectors' caches and dbt's files go here, not to ~
        home.mkdir()
        environ: dict[str, str] = {}
        for target in targets.values():
            environ.update(target.environ)
        environ.update(
            {
                "SSL_CERT_FILE": str(bundle),
                "REQUESTS_CA_BUNDLE": str(bundle),
                "HOME": str(home),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_VERSION_CHECK": "false",
                "NO_GCE_CHECK": "true",
                "GCE_METADATA_HOST": "127.0.0.1:9",
                "GCE_METADATA_IP": "127.0.0.1:9",
            }
        )
        yield targets, cli_environ(environ)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("all-engines")
    product = root / "work" / "orders"
    with running(root / "peers", product) as (targets, environ):
        dbt_build.write_run_product(root / "work", [targets[engine] for engine in ENGINES])
        planned = floe("plan", str(product), "--env", "dev", "--json", environ=environ)
        attempts = []
        for batch in (1, 2):
            if batch == 2:
                dbt_build.change_source(product)
            started = time.monotonic()
            done = floe("run", str(product), "--env", "dev", "--json", environ=environ)
            attempts.append(Attempt(done, time.monotonic() - started, read_all(targets)))
        yield Runs(root, product, targets, environ, planned, attempts)


def test_both_runs_succeed(runs: Runs) -> None:
    for attempt in runs.attempts:
        assert attempt.done.returncode == 0, attempt.done.stderr[-4000:]
        assert attempt.report["status"] == "success"


@pytest.mark.req("REQ-013")
@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_builds_its_transform_and_then_an_incremental_run(runs: Runs, engine: str) -> None:
    """The engine's seed, models and tests ran in both runs; the peer holds the expected rows after
    each, the second run having merged one changed row and inserted one new into the
    incremental model while rows 1 and 3 kept batch 1."""
    prefix = PREFIX[engine]
    for attempt, expected in zip(runs.attempts, (EXPECTED_FIRST, EXPECTED_SECOND), strict=True):
        transform = attempt.transform(engine)
        assert (transform["compute"], transform["engine"]) == (engine, engine)
        assert transform["status"] == "success", transform.get("message")
        ran: dict[str, list[tuple[str, str]]] = {}
        for node in transform["nodes"]:
            ran.setdefault(node["resource_type"], []).append((node["name"], node["status"]))
        assert {kind: sorted(items) for kind, items in ran.items()} == dbt_build.all_passed(prefix)
        assert attempt.rows[engine] == expected


def test_the_run_does_what_the_plan_said(runs: Runs) -> None:
    """``floe plan --json`` (which started nothing) and the first run's ``--json``: the same
    transforms, computes, engines, dependencies and nodes; how each compute reaches the catalog."""
    assert runs.plan.returncode == 0, runs.plan.stderr[-3000:]
    plan = json.loads(runs.plan.stdout)
    report = runs.attempts[0].report
    assert plan["namespace"] == report["namespace"] == NAMESPACE
    assert [t["name"] for t in plan["transforms"]] == [t["name"] for t in report["transforms"]]
    assert sorted(t["name"] for t in plan["transforms"]) == sorted(ENGINES)
    for planned, ran in zip(plan["transforms"], report["transforms"], strict=True):
        for key in ("name", "path", "compute", "engine", "depends_on", "tests"):
            assert planned[key] == ran[key], (planned["name"], key)
        built = [n["unique_id"] for n in ran["nodes"] if n["resource_type"] in ("model", "seed", "snapshot")]
        assert sorted(built) == sorted(planned["nodes"])
    assert plan["crossings"] == []
    in_place = {c["name"] for c in plan["computes"] if c["catalog_access"]["in_place"]}
    assert in_place == {"duckdb", "spark"}
    for transform in report["transforms"]:  # in place: the catalog's table; else the engine's own warehouse's
        relations = {n["relation"] for n in transform["nodes"] if n["resource_type"] == "model"}
        assert all(r.startswith(f"floe.{NAMESPACE}.") for r in relations) is (
            transform["name"] in in_place
        ), relations
    assert report["catalog"]["started"] is True and report["catalog"]["embedded"] is True


def test_the_transforms_ran_at_once(runs: Runs) -> None:
    """Independent transforms on seven computes overlap: each started before the first finished."""
    transforms = runs.attempts[0].report["transforms"]
    first_finish = min(t["finished_at"] for t in transforms)
    assert all(t["started_at"] < first_finish for t in transforms), [
        (t["name"], t["started_at"]) for t in transforms
    ]


def test_no_secret_appears_in_any_output(runs: Runs) -> None:
    """No secret's value is in what the plan and the runs printed, nor in any file under the
    product (floe's artifacts, the run projects and profiles, dbt's logs and target folders, the
    catalog) or the HOME the connectors and dbt wrote to."""
    values = [t.secret for t in runs.targets.values() if t.secret]
    assert len(values) == 5
    printed = [runs.plan.stdout + runs.plan.stderr] + [a.done.stdout + a.done.stderr for a in runs.attempts]
    files = [
        p
        for folder in (runs.product, Path(runs.environ["HOME"]))
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    assert len(files) > 50  # the runs wrote (logs, projects, catalog files)
    for value in values:
        assert not [text[:200] for text in printed if value in text]
        assert not [str(p) for p in files if value.encode() in p.read_bytes()]
