"""``floe run`` end to end, on real engines: dbt with DuckDB and Spark sharing one Iceberg catalog.

Nothing is mocked. Products are written to a temporary directory; ``floe run`` compiles them,
starts the embedded Iceberg REST catalog (``.floe/iceberg/``), runs dbt in its worker processes,
and the tests read the tables back with pyiceberg straight from the catalog's SQLite file and
warehouse, a reader that shares nothing with the run. Spark is slow to start, so one run of one
product proves both hand-offs (DuckDB → Spark → DuckDB) and the concurrency; failures, re-runs and
locking use DuckDB computes only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe.execution.graph import Node, TransformInput, plan
from floe.execution.lock import RunLock
from floe.execution.runner import RunOptions, run

QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def enterprise(spark: bool) -> str:
    computes = [
        "- name: duckdb\n  config: { threads: 2, extensions: [iceberg, httpfs] }",
        "- name: duckdb-b\n  engine: duckdb\n  config: { threads: 2 }",  # no extensions: floe adds them
    ]
    if spark:
        computes.append(
            "- name: spark\n  engine: spark\n  config:\n    master: local[1]\n    driver_memory: 768m\n"
            "    iceberg: true\n    spark_conf:\n      spark.sql.shuffle.partitions: '1'\n"
            f"      spark.driver.extraJavaOptions: '{QUICK_JVM}'"
        )
    approved = textwrap.indent("\n".join(computes), " " * 6)
    return (
        "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\nmetadata: {name: acme}\n"
        f"plugins:\n  compute:\n    approved:\n{approved}\n    default: duckdb\n"
        "environments:\n  - name: dev\n  - name: prod\n"
    )


def product(root: Path, name: str, transforms: str, files: dict[str, str], spark: bool = False) -> Path:
    entries = textwrap.indent(textwrap.dedent(transforms).strip(), "  ")
    return write(
        root,
        {
            "platform/enterprise.yaml": enterprise(spark),
            "floe.yaml": "apiVersion: floe.dev/v1\nkind: DataProduct\n"
            f"metadata: {{name: {name}}}\nplatform: platform/enterprise.yaml\ntransforms:\n{entries}\n",
            "dbt_project.yml": f"name: {name}\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\n"
            f"models:\n  {name}:\n    +materialized: table\n",
            **files,
        },
    )


def iceberg(product_dir: Path) -> Any:
    """pyiceberg on the embedded catalog's own SQLite file: no server, nothing shared with the run."""
    from pyiceberg.catalog.sql import SqlCatalog

    root = product_dir / ".floe" / "iceberg" / "floe"
    return SqlCatalog(
        "floe", uri=f"sqlite:///{root / 'catalog.sqlite'}", warehouse=f"file://{root / 'warehouse'}"
    )


def rows(product_dir: Path, namespace: str, table: str, order_by: str) -> list[dict[str, Any]]:
    data = iceberg(product_dir).load_table((namespace, table)).scan().to_arrow().sort_by(order_by)
    return data.to_pylist()


def engine_of(product_dir: Path, namespace: str, table: str) -> str | None:
    """The engine that wrote the table's current snapshot (Spark says so; DuckDB writes nothing)."""
    snapshot = iceberg(product_dir).load_table((namespace, table)).current_snapshot()
    return snapshot.summary.additional_properties.get("engine-name") if snapshot else None


def floe(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


# -- one Spark run: DuckDB → Spark → DuckDB, and two computes at once ------------------------------

FLOW_TRANSFORMS = """
    - {type: dbt, name: raw, path: models/raw/, compute: duckdb}
    - {type: dbt, name: spark_stage, path: models/spark/, compute: spark}
    - {type: dbt, name: side, path: models/side/, compute: duckdb}
    - {type: dbt, name: marts, path: models/marts/, compute: duckdb}
"""
FLOW_FILES = {
    "seeds/people.csv": """
        id,name,score
        1,ada,10.5
        2,bob,7.25
        3,cy,1.0
    """,
    # DuckDB writes an Iceberg table …
    "models/raw/people_raw.sql": "select id, name, score from {{ ref('people') }} where score > 0\n",
    # … Spark reads it in place and writes its own …
    "models/spark/spark_people.sql": """
        {{ config(materialized='view') }}
        select id, upper(name) as name, cast(score * 2 as double) as score2, 'spark' as written_by
        from {{ ref('people_raw') }}
    """,
    # … which DuckDB reads in place. `side` needs only `raw`: it runs while Spark does.
    "models/side/side_counts.sql": "select count(*) as people, sum(score) as total from {{ ref('people_raw') }}\n",
    "models/marts/final.sql": """
        select p.id, p.name, p.score2, p.written_by, s.people
        from {{ ref('spark_people') }} p cross join {{ ref('side_counts') }} s
    """,
}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = product(tmp_path_factory.mktemp("flow"), "flow", FLOW_TRANSFORMS, FLOW_FILES, spark=True)
    started = time.monotonic()
    done = floe("run", str(root), "--env", "dev", "--json", cwd=root.parent)
    yield {
        "root": root,
        "done": done,
        "seconds": time.monotonic() - started,
        "report": json.loads(done.stdout) if done.stdout.strip() else None,
    }


@pytest.mark.req("REQ-013")
def test_duckdb_to_spark_to_duckdb_through_one_catalog(flow: dict[str, Any]) -> None:
    done, root = flow["done"], flow["root"]
    assert done.returncode == 0, done.stderr
    ns = "flow_dev"
    assert rows(root, ns, "people_raw", "id") == [
        {"id": 1, "name": "ada", "score": 10.5},
        {"id": 2, "name": "bob", "score": 7.25},
        {"id": 3, "name": "cy", "score": 1.0},
    ]
    assert rows(root, ns, "spark_people", "id") == [  # Spark read DuckDB's table
        {"id": 1, "name": "ADA", "score2": 21.0, "written_by": "spark"},
        {"id": 2, "name": "BOB", "score2": 14.5, "written_by": "spark"},
        {"id": 3, "name": "CY", "score2": 2.0, "written_by": "spark"},
    ]
    assert rows(root, ns, "final", "id") == [  # DuckDB read Spark's table (and its own)
        {"id": 1, "name": "ADA", "score2": 21.0, "written_by": "spark", "people": 3},
        {"id": 2, "name": "BOB", "score2": 14.5, "written_by": "spark", "people": 3},
        {"id": 3, "name": "CY", "score2": 2.0, "written_by": "spark", "people": 3},
    ]
    assert engine_of(root, ns, "spark_people") == "spark"
    assert engine_of(root, ns, "people_raw") is None and engine_of(root, ns, "final") is None
    # one catalog, one warehouse, no copies: every table's files are under the product's .floe/
    warehouse = root / ".floe" / "iceberg" / "floe" / "warehouse" / ns
    assert {p.name for p in warehouse.iterdir()} == {
        "people",
        "people_raw",
        "spark_people",
        "side_counts",
        "final",
    }
    assert not (root / "data").exists() and not (root.parent / "data").exists()
    print(
        f"\nfloe run of the DuckDB/Spark product: {flow['seconds']:.1f}s; phases {flow['report']['phases']}; "
        + ", ".join(f"{t['name']} {t['seconds']:.1f}s" for t in flow["report"]["transforms"])
    )


def test_the_duckdb_worker_is_forked_with_dbt_imported_and_the_spark_worker_starts_java_first(
    flow: dict[str, Any],
) -> None:
    logs = flow["root"] / "target/floe/run/.workers"
    assert (
        (logs / ".forkserver.log").read_text()
        == "floe: fork server ready with dbt.cli.main, dbt.adapters.duckdb imported\n"
    )  # not Spark's adapter
    assert re.match(
        r"floe: worker \d+ forked from fork server \d+, dbt imported\n", (logs / "duckdb.log").read_text()
    )
    spark = (logs / "spark.log").read_text()
    assert "forked" not in spark and "floe: Spark warmed up" in spark, spark


def test_the_dag_comes_from_dbts_refs(flow: dict[str, Any]) -> None:
    report = flow["report"]
    assert report is not None, flow["done"].stderr
    transforms = {t["name"]: t for t in report["transforms"]}
    assert [t["name"] for t in report["transforms"]] == ["raw", "spark_stage", "side", "marts"]
    assert transforms["raw"]["depends_on"] == []
    assert transforms["spark_stage"]["depends_on"] == ["raw"]
    assert transforms["side"]["depends_on"] == ["raw"]
    assert transforms["marts"]["depends_on"] == ["spark_stage", "side"]
    # the seed outside every transform path is built by the first transform that needs it
    assert sorted(n["name"] for n in transforms["raw"]["nodes"]) == ["people", "people_raw"]
    assert transforms["spark_stage"]["engine"] == "spark" and transforms["marts"]["engine"] == "duckdb"


def test_independent_transforms_on_different_computes_overlap(flow: dict[str, Any]) -> None:
    transforms = {t["name"]: t for t in flow["report"]["transforms"]}
    spark, side, marts = transforms["spark_stage"], transforms["side"], transforms["marts"]
    assert side["started_at"] < spark["finished_at"] and spark["started_at"] < side["finished_at"], (
        spark,
        side,
    )
    assert marts["started_at"] >= max(spark["finished_at"], side["finished_at"])
    assert transforms["raw"]["finished_at"] <= min(spark["started_at"], side["started_at"])


def test_json_report_shape_and_progress(flow: dict[str, Any]) -> None:
    report, done = flow["report"], flow["done"]
    assert set(report) == {
        "apiVersion",
        "kind",
        "product",
        "environment",
        "status",
        "started_at",
        "finished_at",
        "seconds",
        "catalog",
        "namespace",
        "phases",
        "transforms",
        "unassigned",
        "bridges",
    }
    assert (report["kind"], report["product"], report["environment"], report["status"]) == (
        "RunReport",
        "flow",
        "dev",
        "success",
    )
    assert report["namespace"] == "flow_dev" and report["unassigned"] == []
    assert report["bridges"] == []  # DuckDB and Spark read each other in place: nothing carried
    assert report["catalog"]["name"] == "floe" and report["catalog"]["embedded"] is True
    assert report["catalog"]["uri"].startswith("http://127.0.0.1:")
    for transform in report["transforms"]:
        assert set(transform) == {
            "name",
            "path",
            "compute",
            "engine",
            "depends_on",
            "status",
            "started_at",
            "finished_at",
            "seconds",
            "models",
            "tests",
            "counts",
            "message",
            "log",
            "nodes",
        }
        assert transform["status"] == "success" and transform["seconds"] > 0
        assert transform["counts"] == {"success": transform["models"]}
        assert Path(transform["log"]).is_file()
        for node in transform["nodes"]:
            assert set(node) == {
                "unique_id",
                "name",
                "resource_type",
                "status",
                "seconds",
                "message",
                "relation",
            }
            assert node["relation"] == f"floe.flow_dev.{node['name']}"  # catalog.namespace.table, any engine
    # progress went to stderr, one line per transform start and end, and the summary table
    assert "[spark_stage] started on spark (spark): 1 model" in done.stderr
    assert "[raw] started on duckdb (duckdb): 1 model, 1 seed" in done.stderr
    assert "[marts] SUCCESS on duckdb" in done.stderr
    assert "[spark_stage]   model spark_people: success (" in done.stderr
    assert "TRANSFORM    COMPUTE  ENGINE  MODELS  STATUS" in done.stderr


# -- failures, re-runs, selection (DuckDB computes) ---------------------------------------------------

DUO_TRANSFORMS = """
    - {type: dbt, name: base, path: models/base/, compute: duckdb}
    - {type: dbt, name: left, path: models/left/, compute: duckdb-b}
    - {type: dbt, name: right, path: models/right/, compute: duckdb}
    - {type: dbt, name: after_left, path: models/after_left/, compute: duckdb}
"""
DUO_FILES = {
    "models/base/numbers.sql": "select range as n from range(5)\n",
    "models/left/lefty.sql": "select n, n * 10 as tens from {{ ref('numbers') }}\n",
    "models/right/righty.sql": "select sum(n) as total from {{ ref('numbers') }}\n",
    "models/right/coded.sql": "select * from {{ ref('codes') }}\n",
    "seeds/codes.csv": "code,label\n1,one\n2,two\n",
    # a view cannot live in an Iceberg catalog: floe builds it as a table
    "models/after_left/after.sql": "{{ config(materialized='view') }}\nselect count(*) as c from {{ ref('lefty') }}\n",
}


@pytest.fixture
def duo(tmp_path: Path) -> Path:
    return product(tmp_path / "duo", "duo", DUO_TRANSFORMS, DUO_FILES)


def statuses(report: Any) -> dict[str, str]:
    return {t.name: t.status for t in report.transforms}


def test_a_failure_skips_only_its_dependents_and_a_rerun_after_the_fix_works(duo: Path) -> None:
    first = run(duo, RunOptions("dev"))
    assert first.success, [t.message for t in first.transforms]
    assert rows(duo, "duo_dev", "lefty", "n")[-1] == {"n": 4, "tens": 40}

    (duo / "models/left/lefty.sql").write_text(
        "select n, n * 10 as tens from {{ ref('numbers') }} where nope\n"
    )
    (duo / "models/base/numbers.sql").write_text("select range as n from range(6)\n")
    second = run(duo, RunOptions("dev"))
    assert not second.success
    assert statuses(second) == {
        "base": "success",
        "left": "failed",
        "right": "success",
        "after_left": "skipped",
    }
    left = second.get("left")
    assert "nope" in left.message and "lefty" in left.message
    assert second.get("after_left").message == "not run: upstream transform 'left' failed"
    with RunLock(duo / ".floe").acquire(wait=False, environment="dev"):  # a failed run released it
        pass
    # what committed stays committed: base and right were rebuilt (base has 6 rows now) …
    assert rows(duo, "duo_dev", "righty", "total") == [{"total": 15}]
    # … and the failed model's table is its last good build: floe stages before touching it
    assert len(rows(duo, "duo_dev", "lefty", "n")) == 5
    assert rows(duo, "duo_dev", "after", "c") == [{"c": 5}]

    # the fix changes the columns: the table is dropped and created, no manual cleanup (a seed's too)
    (duo / "models/left/lefty.sql").write_text(
        "select n, n * 100 as hundreds, 'x' as tag from {{ ref('numbers') }}\n"
    )
    (duo / "seeds/codes.csv").write_text("code,label,lang\n3,drei,de\n")
    third = run(duo, RunOptions("dev"))
    assert third.success, [t.message for t in third.transforms]
    assert rows(duo, "duo_dev", "lefty", "n")[-1] == {"n": 5, "hundreds": 500, "tag": "x"}
    assert rows(duo, "duo_dev", "coded", "code") == [{"code": 3, "label": "drei", "lang": "de"}]
    assert rows(duo, "duo_dev", "after", "c") == [{"c": 6}]


def test_one_dbt_build_per_compute_keeps_a_failure_to_its_dependents(tmp_path: Path) -> None:
    """Transforms of one compute that dbt can build together go in one ``dbt build`` (one start,
    dbt's threads), and a failure still skips exactly the transforms downstream of it."""
    root = product(
        tmp_path / "batch",
        "batch",
        """
        - {type: dbt, name: base, path: models/base/, compute: duckdb}
        - {type: dbt, name: mid, path: models/mid/, compute: duckdb}
        - {type: dbt, name: free, path: models/free/, compute: duckdb}
    """,
        {
            "models/base/numbers.sql": "select range as n from range(5)\n",
            "models/mid/doubled.sql": "select n * 2 as d from {{ ref('numbers') }}\n",
            "models/free/answer.sql": "select 42 as answer\n",
        },
    )
    first = run(root, RunOptions("dev"))
    assert first.success, [t.message for t in first.transforms]
    assert rows(root, "batch_dev", "doubled", "d")[-1] == {"d": 8}
    log = (root / "target/floe/run/.workers/duckdb.log").read_text()
    assert log.count("Running with dbt=") == 2, log  # the parse, and one build of all three
    assert "Done. PASS=3 " in log

    (root / "models/base/numbers.sql").write_text("select range as n from range(5) where nope\n")
    (root / "models/free/answer.sql").write_text("select 43 as answer\n")
    second = run(root, RunOptions("dev"))
    assert statuses(second) == {"base": "failed", "mid": "skipped", "free": "success"}
    assert second.get("mid").message == "not run: upstream transform 'base' failed"
    assert "nope" in second.get("base").message
    assert rows(root, "batch_dev", "answer", "answer") == [{"answer": 43}]
    assert len(rows(root, "batch_dev", "doubled", "d")) == 5  # untouched: dbt skipped it


def test_exit_codes_and_selection(duo: Path) -> None:
    done = floe("run", str(duo), "--env", "dev", "--select", "base", "right", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [t["name"] for t in report["transforms"]] == ["base", "right"]
    assert rows(duo, "duo_dev", "righty", "total") == [{"total": 10}]

    (duo / "models/right/righty.sql").write_text("select sum(n) as total from {{ ref('missing_model') }}\n")
    done = floe("run", str(duo), "--env", "dev", "--select", "right")
    assert done.returncode == 1
    assert "missing_model" in done.stderr + done.stdout

    done = floe("run", str(duo), "--env", "dev", "--select", "nothing")
    assert done.returncode == 1 and "no transform named 'nothing'" in done.stderr
    done = floe("run", str(duo), "--env", "staging")
    assert done.returncode == 1 and "unknown environment 'staging'" in done.stderr
    assert floe("run", str(duo)).returncode == 2  # --env is required


def test_a_second_run_waits_for_the_first_or_fails_clearly(duo: Path) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "floe", "run", str(duo), "--env", "dev", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock_file = duo / ".floe" / "run.lock"
    deadline = time.monotonic() + 60
    while f'"pid": {first.pid}' not in (lock_file.read_text() if lock_file.exists() else ""):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    refused = floe("run", str(duo), "--env", "prod", "--no-wait")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "floe", "run", str(duo), "--env", "dev", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_out, first_err = first.communicate(timeout=240)
    waiting_out, waiting_err = waiting.communicate(timeout=240)

    assert refused.returncode == 1
    assert f"another floe run of this product is in progress (pid {first.pid}" in refused.stderr
    assert first.returncode == 0, first_err
    assert waiting.returncode == 0, waiting_err
    assert f"another floe run of this product is in progress (pid {first.pid}" in waiting_err
    assert "waiting for it to finish" in waiting_err
    one, two = json.loads(first_out), json.loads(waiting_out)
    assert one["finished_at"] <= min(t["started_at"] for t in two["transforms"])
    assert two["phases"]["lock"] > 0.5  # seconds it waited
    assert not lock_file.read_text()  # released; the file stays, empty


def declare_catalog(root: Path, served: Any, secret_variable: str, *more: str) -> None:
    """Declare ``served`` as the product's REST catalog ``lake`` (client credentials, the secret
    from ``secret_variable``), with ``more`` lines of settings."""
    manifest = root / "platform" / "enterprise.yaml"
    lines = [
        "catalog:",
        "  type: rest",
        "  name: lake",
        f"  uri: {served.uri}",
        f"  warehouse: {served.warehouse}",
        "  client_id: floe-runner",
        f"  client_secret: {{secret_ref: {secret_variable}}}",
        *(f"  {line}" for line in more),
    ]
    manifest.write_text(manifest.read_text() + "\n".join(lines) + "\n")


def test_a_declared_rest_catalog_with_client_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's catalog instead of the embedded one: DuckDB attaches with OAuth2 client
    credentials whose secret comes from the environment and is written to no file."""
    from floe.catalog.rest_server import EmbeddedCatalog

    secret = "s3cr3t-6f1c0a9e-never-written"
    monkeypatch.setenv("FLOE_TEST_CATALOG_SECRET", secret)
    with EmbeddedCatalog(tmp_path / "elsewhere", name="lake") as served:
        root = product(
            tmp_path / "declared",
            "declared",
            """
            - {type: dbt, name: base, path: models/base/, compute: duckdb-b}
            - {type: dbt, name: right, path: models/right/, compute: duckdb}
        """,
            DUO_FILES,
        )
        declare_catalog(
            root, served, "FLOE_TEST_CATALOG_SECRET", f"oauth2_server_uri: {served.uri}/v1/oauth/tokens"
        )
        report = run(root, RunOptions("dev"))
        assert report.success, [t.message for t in report.transforms]
        assert report.catalog["embedded"] is False and report.catalog["name"] == "lake"
        assert ("POST", "/v1/oauth/tokens", 200) in [(r.method, r.path, r.status) for r in served.requests]
        from pyiceberg.catalog.rest import RestCatalog

        lake = RestCatalog("lake", uri=served.uri, warehouse=served.warehouse)
        assert lake.load_table(("declared_dev", "righty")).scan().to_arrow().to_pylist() == [{"total": 10}]
    assert not (root / ".floe" / "iceberg").exists()  # no embedded catalog was started
    profiles = yaml.safe_load((root / "target/floe/run/duckdb/profiles.yml").read_text())
    statements = profiles["floe_duckdb"]["outputs"]["dev"]["plugins"][0]["config"]["floe_statements"]
    assert "CLIENT_SECRET {{ env_var('FLOE_TEST_CATALOG_SECRET') }}" in statements[0]  # a placeholder only
    written = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in written if secret.encode() in p.read_bytes()]


def test_the_show_client_gets_a_token_at_the_default_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``floe run --show``'s pyiceberg client, with client credentials and no ``oauth2_server_uri``,
    asks ``<uri>/v1/oauth/tokens`` for its token (as the engines do), then lists namespaces."""
    from floe.catalog.rest_server import EmbeddedCatalog
    from floe.execution.catalog_client import client
    from floe.model import CatalogConfig, SecretReference

    monkeypatch.setenv("FLOE_TEST_SHOW_SECRET", "s3cr3t-show")
    with EmbeddedCatalog(tmp_path / "elsewhere", name="lake") as served:
        catalog = CatalogConfig(
            type="rest",
            name="lake",
            uri=served.uri,
            warehouse=served.warehouse,
            client_id="floe-show",
            client_secret=SecretReference("FLOE_TEST_SHOW_SECRET"),
        )
        shown = client(catalog)
        shown.create_namespace(("shown",))
        assert shown.list_namespaces() == [("shown",)]
        requests = [(r.method, r.path.split("?")[0], r.status) for r in served.requests]
    assert requests[0] == ("POST", "/v1/oauth/tokens", 200)
    assert ("GET", "/v1/namespaces", 200) in requests and all(status < 300 for _, _, status in requests)


def test_run_show_names_a_missing_catalog_secret_without_a_traceback(tmp_path: Path) -> None:
    """A secret the declared catalog references but nobody set: ``floe run --show`` says which
    variable to set, in floe's words, never with a traceback; since ``floe run`` plans first, it
    says so before anything starts, at the manifest line that references the secret. The
    ``--show`` client says the same when it meets such a catalog."""
    from floe.catalog.rest_server import EmbeddedCatalog
    from floe.errors import FloeError
    from floe.execution.catalog_client import client
    from floe.model import CatalogConfig, SecretReference

    variable = "FLOE_TEST_UNSET_CATALOG_SECRET"
    with EmbeddedCatalog(tmp_path / "elsewhere", name="lake") as served:
        root = product(
            tmp_path / "unset",
            "unset",
            "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
            {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
        )
        declare_catalog(root, served, variable)
        env = {k: v for k, v in os.environ.items() if k != variable}
        done = subprocess.run(
            [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--show"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        os.environ.pop(variable, None)
        with pytest.raises(FloeError) as shown:
            client(
                CatalogConfig(
                    type="rest",
                    name="lake",
                    uri=served.uri,
                    client_id="floe-runner",
                    client_secret=SecretReference(variable),
                )
            )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # the transform could not attach the catalog either
    unset = f"catalog 'lake': the secret environment variable {variable} is not set"
    line = (root / "platform/enterprise.yaml").read_text().splitlines().index(
        f"  client_secret: {{secret_ref: {variable}}}"
    ) + 1
    assert f"platform/enterprise.yaml:{line}: $.catalog.client_secret: {unset}" in output
    assert f"fix: set {variable} in the environment" in output
    assert "Traceback" not in output
    assert (
        not (root / ".floe" / "run.lock").exists() and not (root / "target/floe/run").exists()
    )  # nothing started
    assert f"{unset}\n  fix: set {variable} in the environment floe runs in" in shown.value.render()


# -- the transform DAG, from dbt's nodes ---------------------------------------------------------------


def node(uid: str, path: str, *deps: str, package: str = "p") -> Node:
    kind, _, name = uid.split(".", 2)
    return Node(uid, kind, package, name.split(".")[-1], path, (package, name), tuple(deps))


def test_plan_assigns_nodes_by_path_then_by_need() -> None:
    nodes = [
        node("seed.p.raw", "seeds/raw.csv"),
        node("model.p.a", "models/a/a.sql", "seed.p.raw", "model.pkg.util"),
        node("model.pkg.util", "models/util.sql", package="pkg"),
        node("model.p.b", "models/a/b/b.sql", "model.p.a"),  # nested path: the deeper transform wins
        node("model.p.c", "models/c/c.sql", "seed.p.raw", "model.p.b"),
        node("model.p.stray", "models/stray.sql"),
        node("test.p.not_null", "models/c/schema.yml", "model.p.c", "model.p.b"),
    ]
    transforms = [
        TransformInput("c", "models/c", "x"),
        TransformInput("a", "models/a/", "y"),
        TransformInput("b", "./models/a/b", "z"),
    ]
    result = plan(nodes, transforms, "p")
    assert [t.name for t in result.transforms] == ["a", "b", "c"]
    owned = {t.name: sorted(n.name for n in t.nodes) for t in result.transforms}
    assert owned == {"a": ["a", "raw", "util"], "b": ["b"], "c": ["c"]}
    assert {t.name: t.upstream for t in result.transforms} == {"a": (), "b": ("a",), "c": ("a", "b")}
    assert [n.name for n in result.unassigned] == ["stray"]
    assert result.get("c").tests == 1 and result.downstream("a") == ["b", "c"]
    assert result.get("b").selectors == ["fqn:p.b"]


def test_plan_chains_only_where_dbt_skips_all_of_the_downstream_transform() -> None:
    """One ``dbt build`` may build ``a`` and ``b`` only if a failure anywhere in ``a`` makes dbt
    skip every node of ``b``, as floe skips ``b``: every node of ``b`` descends from every node
    of ``a`` and from the parents of ``a``'s tests."""
    nodes = [
        node("seed.p.raw", "seeds/raw.csv"),
        node("model.p.a", "models/a/a.sql", "seed.p.raw"),
        node("model.p.b", "models/b/b.sql", "model.p.a"),
        node("model.p.c1", "models/c/c1.sql", "model.p.b"),
        node("model.p.c2", "models/c/c2.sql", "seed.p.raw"),  # c2 would run if b failed: no chain
        node("model.p.d", "models/d/d.sql", "model.p.b"),
        node("model.p.e", "models/e/e.sql", "model.p.d"),
        node("test.p.same", "models/d/schema.yml", "model.p.d", "model.p.a"),  # a test of d on a and d
        node("model.p.other", "models/other/o.sql", "model.p.a"),
        node("test.p.cross", "models/f/schema.yml", "model.p.f", "model.p.other"),
        node("model.p.f", "models/f/f.sql", "model.p.d"),  # f does not descend from `other`
    ]
    names = ["a", "b", "c", "d", "e", "other", "f"]
    result = plan(nodes, [TransformInput(n, f"models/{n}", "x") for n in names], "p")
    assert result.owners["seed.p.raw"] == "a" and result.owners["test.p.same"] == "d"
    assert result.chains("a", "b") and result.chains("b", "d") and result.chains("a", "d")
    assert not result.chains("b", "c")
    assert result.chains("d", "e")  # d's test has parents d and a, both ancestors of e
    assert result.owners["test.p.cross"] == "f" and result.chains("d", "f")
    assert not result.chains("f", "e") and not result.chains("other", "f")


def test_plan_reports_a_cycle_with_the_refs_that_close_it() -> None:
    nodes = [
        node("model.p.a", "models/a/a.sql", "model.p.b"),
        node("model.p.b", "models/b/b.sql", "model.p.a"),
    ]
    with pytest.raises(Exception, match=r"a \(a\) → b \(b\).*b \(b\) → a \(a\)"):
        plan(nodes, [TransformInput("a", "models/a", "x"), TransformInput("b", "models/b", "x")], "p")


def test_run_profiles_name_one_namespace_and_an_engine_without_run_hooks_builds_in_its_own_warehouse() -> (
    None
):
    """Every engine runs: one that declares no run hook keeps its compiled profile, building into
    the run's namespace (it was refused here before engines said how they run)."""
    from floe.execution.profiles import namespace
    from floe.model import CatalogConfig, ComputeConfig
    from floe.plugins import EngineRegistry
    from tests.support.engines import hookimpl_engine

    assert namespace("shop", "dev") == "shop_dev"
    assert namespace("Sales-EU", "Prod") == "sales_eu_prod"
    engine = EngineRegistry.discover(extra=[("warehouse", hookimpl_engine("warehouse"))]).engines["warehouse"]
    compute = ComputeConfig("wh", "warehouse")
    catalog = CatalogConfig(type="rest", uri="http://127.0.0.1:1")
    assert engine.run_profile(compute, {"type": "warehouse", "schema": "own"}, catalog, "shop_dev") == {
        "type": "warehouse",
        "schema": "shop_dev",
    }
    assert not engine.catalog_access(compute, catalog).in_place


def test_a_duckdb_profile_listing_iceberg_without_avro_gets_avro_loaded_first(tmp_path: Path) -> None:
    """DuckDB refuses ``LOAD iceberg`` before avro (autoloading is off); dbt-duckdb loads in order."""
    from floe.model import CatalogConfig, ComputeConfig, ProfileTarget
    from floe.plugins import EngineRegistry

    engine = EngineRegistry.discover().get("duckdb")
    assert engine is not None
    target = ProfileTarget("dev", "p", tmp_path, tmp_path / ".floe")
    compute = ComputeConfig("c", "duckdb", {"extensions": ["iceberg"]})
    iceberg = [e for e in engine.generate_dbt_profile(compute, target)["extensions"] if "iceberg" in e]
    profile = engine.run_profile(
        compute,
        {"type": "duckdb", "path": ":memory:", "extensions": iceberg},
        CatalogConfig(type="rest", name="lake", uri="http://127.0.0.1:1"),
        "p_dev",
    )
    assert [Path(e).stem for e in profile["extensions"]] == ["avro", "iceberg", "httpfs"]


@pytest.mark.parametrize(
    ("name", "suggestion"), [("order", "order_lake"), ("my-lake", "my_lake"), ("select", "select_lake")]
)
def test_a_catalog_name_dbt_duckdb_cannot_write_unquoted_is_refused_before_dbt_runs(
    tmp_path: Path, name: str, suggestion: str
) -> None:
    """dbt-duckdb writes ``ATTACH … AS <catalog>`` unquoted: a keyword of DuckDB's SQL (or a
    hyphen) there fails every build with a parser error; floe says so, with a name that works."""
    from floe.errors import FloeError
    from floe.model import CatalogConfig, ComputeConfig, ProfileTarget
    from floe.plugins import EngineRegistry

    engine = EngineRegistry.discover().get("duckdb")
    assert engine is not None
    compute = ComputeConfig("c", "duckdb", {})
    output = engine.generate_dbt_profile(compute, ProfileTarget("dev", "p", tmp_path, tmp_path / ".floe"))
    with pytest.raises(FloeError) as caught:
        engine.run_profile(
            compute, output, CatalogConfig(type="rest", name=name, uri="http://127.0.0.1:1"), "p_dev"
        )
    assert f"cannot attach the catalog {name!r}: dbt-duckdb writes the catalog's name" in str(caught.value)
    assert f"rename the catalog, such as {suggestion!r}" in str(caught.value)


def test_a_declared_catalog_duckdb_cannot_attach_is_located_in_its_manifest(tmp_path: Path) -> None:
    """``floe run`` names the manifest, line and ``$.catalog.name`` of a catalog named with a
    keyword of DuckDB's SQL, before any dbt process starts."""
    from floe.catalog.rest_server import EmbeddedCatalog
    from floe.errors import FloeError

    with EmbeddedCatalog(tmp_path / "elsewhere", name="order") as served:
        root = product(
            tmp_path / "keyword",
            "keyword",
            "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
            {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
        )
        manifest = root / "platform" / "enterprise.yaml"
        manifest.write_text(
            manifest.read_text() + f"catalog:\n  type: rest\n  name: order\n  uri: {served.uri}\n"
        )
        with pytest.raises(FloeError) as caught:
            run(root, RunOptions("dev"))
    (problem,) = caught.value.problems
    line = manifest.read_text().splitlines().index("  name: order") + 1
    assert (problem.file, problem.line, problem.path) == (str(manifest), line, "$.catalog.name"), (
        caught.value.render()
    )
    assert "cannot attach the catalog 'order'" in problem.message and "'order_lake'" in (problem.fix or "")
    assert not (root / "target/floe/run/.workers/duckdb.log").exists()  # no dbt worker started


def test_importing_floe_run_imports_no_engine() -> None:
    code = (
        "import sys, floe.cli, floe.execution.runner, floe.execution.cli, floe.execution.graph, floe.execution.profiles\n"
        "floe.cli._parser()\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('dbt', 'pyspark', 'pyiceberg', 'duckdb', 'sqlalchemy', 'pyarrow')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.stdout.strip() == "[]"


# -- what a run starts, and what its messages show ---------------------------------------------------


def test_the_catalog_starts_only_when_a_compute_of_the_run_attaches_it(tmp_path: Path) -> None:
    """A run of transforms whose engines build in their own warehouse starts no catalog, embedded
    or declared; a run with one that attaches it (DuckDB) starts it."""
    import io

    import duckdb

    from floe.api import run as api_run
    from floe.plugins import EngineRegistry
    from tests.support.compliance_toys import LocalToy  # floe's default run hooks: its own database

    registry = EngineRegistry.discover(extra=[("toy", LocalToy)])
    root = product(
        tmp_path / "own",
        "own",
        """
        - {type: dbt, name: base, path: models/base/, compute: duckdb}
        - {type: dbt, name: apart, path: models/apart/, compute: toy}
    """,
        {
            "models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"],
            "models/apart/letters.sql": "select 'a' as letter union all select 'b'\n",
        },
    )
    manifest = root / "platform" / "enterprise.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "    default: duckdb\n",
            f"      - name: toy\n        engine: toy\n        config: {{path: {tmp_path / 'toy.duckdb'}}}\n"
            "    default: duckdb\n",
        )
    )
    said = io.StringIO()
    report = api_run(root, env="dev", select=["apart"], engines=registry, progress=said)
    assert report.success, [t.message for t in report.transforms]
    assert report.catalog["started"] is False and report.catalog["uri"] is None
    assert not (root / ".floe" / "iceberg").exists()
    assert (
        "catalog 'floe' (embedded, " in said.getvalue()
        and "not started: no compute of this run attaches it" in said.getvalue()
    )
    with duckdb.connect(str(tmp_path / "toy.duckdb"), read_only=True) as built:
        assert built.execute("select letter from own_dev.letters order by 1").fetchall() == [("a",), ("b",)]
    both = api_run(root, env="dev", engines=registry)
    assert both.success and both.catalog["started"] is True and (root / ".floe" / "iceberg").is_dir()


def test_a_short_secret_is_hidden_in_run_messages_but_not_inside_floes_own_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret ``snow`` (a MotherDuck token) is hidden wherever it stands alone, yet the compute
    ``snowpark`` keeps its name in the message of a parse that failed, which names its project."""
    from floe.errors import FloeError

    monkeypatch.setenv("FLOE_TEST_SNOW_TOKEN", "snow")
    root = product(
        tmp_path / "short",
        "short",
        "- {type: dbt, name: base, path: models/base/, compute: snowpark}",
        {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
    )
    manifest = root / "platform" / "enterprise.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "    default: duckdb\n",
            "      - name: snowpark\n        engine: duckdb\n        config:\n"
            "          path: 'md:floe'\n          motherduck_token: {secret_ref: FLOE_TEST_SNOW_TOKEN}\n"
            "    default: duckdb\n",
        )
    )
    project = root / "dbt_project.yml"  # dbt refuses the key at its parse, naming the generated project
    project.write_text(project.read_text() + "snow: snow\n")
    with pytest.raises(FloeError) as caught:
        run(root, RunOptions("dev"))
    text = caught.value.render()
    assert "dbt could not parse the project" in text and "run/snowpark/dbt_project.yml" in text, text
    assert "('***' was unexpected)" in text, text  # the secret itself, where dbt quotes the key
