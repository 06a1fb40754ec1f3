"""The built-in DuckDB engine (REQ-012 to REQ-018), against real DuckDB, dbt-duckdb and dbt.

Nothing of floe is mocked: profiles go through dbt-duckdb's own credentials class and a real
in-process dbt run, attachment SQL runs in DuckDB with the extensions from their wheels, and lock
and hang scenarios use real processes and a real FIFO.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import duckdb
import hypothesis
import pytest
import yaml
from hypothesis import strategies as st

from floe.engines.duckdb import DuckDBEngine, extension_files, plugin
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.resources import parse_quantity
from floe.sqlsecrets import render_secret_placeholders
from floe.testing import BaseComputePluginTests, Endpoint
from floe.testing.fifo import release_fifo

FIXTURE = Path(__file__).parent / "dbt_project_small"
CANARY = "canary-7f3a9c1e-never-print-me"
DUCKDB_VERSION = metadata.version("duckdb")
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@pytest.fixture
def target(tmp_path: Path) -> ProfileTarget:
    return ProfileTarget("dev", "shop", tmp_path / "product", tmp_path / "product" / ".floe")


def compute(name: str = "local", **config: Any) -> ComputeConfig:
    return ComputeConfig(name, "duckdb", config)


def offline_connection(tmp_path: Path, *extensions: str) -> Any:
    """An in-memory DuckDB with ``extensions`` (and what they need) loaded from their wheels."""
    conn = duckdb.connect(config={"extension_directory": str(tmp_path / "ext"), **OFFLINE})
    for file in extension_files(extensions):
        conn.load_extension(str(file))  # straight from the wheel (dbt-duckdb installs it first)
    if "httpfs" in extensions:
        conn.execute("SET http_retries = 0")  # fail fast on the closed ports below
    return conn


@pytest.fixture
def locked_database(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A database file another process holds open read-write; yields its path and that PID."""
    path = tmp_path / "locked" / "db.duckdb"
    path.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb\n"
            "conn = duckdb.connect(sys.argv[1])\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield path, holder.pid
    finally:
        holder.kill()
        holder.wait()


# -- REQ-012: the dbt profile ----------------------------------------------------------------------


@pytest.mark.req("REQ-012")
def test_default_profile(target: ProfileTarget) -> None:
    profile = plugin.generate_dbt_profile(compute(), target)

    assert profile["type"] == "duckdb"
    assert profile["path"] == str(target.state_dir / "dev" / "local.duckdb")
    assert Path(profile["path"]).is_absolute()
    assert (profile["schema"], profile["threads"], profile["extensions"]) == ("main", 4, [])
    ext_dir = str(target.state_dir / "duckdb_extensions")
    for options in (profile["settings"], profile["config_options"]):
        assert options == {"extension_directory": ext_dir, **OFFLINE}


@pytest.mark.req("REQ-012")
def test_profile_settings_and_relative_path(target: ProfileTarget) -> None:
    config = compute(
        path="data/shop.duckdb",
        schema="analytics",
        threads=2,
        memory_limit="3GB",
        duckdb_threads=6,
        read_only=True,
        settings={"preserve_insertion_order": False},
    )
    profile = plugin.generate_dbt_profile(config, target)

    assert profile["path"] == str(target.project_dir / "data" / "shop.duckdb")
    assert (profile["schema"], profile["threads"]) == ("analytics", 2)
    settings = profile["settings"]
    assert settings["memory_limit"] == "3GB"
    assert settings["threads"] == 6
    assert settings["preserve_insertion_order"] is False
    assert profile["config_options"]["access_mode"] == "READ_ONLY"
    assert "access_mode" not in settings  # DuckDB refuses to SET it after connecting


@pytest.mark.parametrize("statement", ["SET {} = '1'", "ATTACH ':memory:' AS {}"])
def test_the_keywords_that_are_not_names_are_those_duckdb_refuses(statement: str) -> None:
    """Derived from the installed DuckDB: every keyword that fails to parse where dbt-duckdb writes
    a name unquoted (a setting's key, an attached catalog's alias)."""
    from floe.engines.duckdb import KEYWORDS_NOT_NAMES

    connection = duckdb.connect()
    refused = set()
    for (keyword,) in connection.sql("select keyword_name from duckdb_keywords()").fetchall():
        try:
            connection.execute(statement.format(keyword))
        except duckdb.ParserException:
            refused.add(keyword)
        except duckdb.Error:
            pass  # parsed: an unknown setting, or a value of the wrong type
    assert refused == KEYWORDS_NOT_NAMES
    settings = {name for (name,) in connection.sql("select name from duckdb_settings()").fetchall()}
    assert not settings & refused  # so refusing them refuses no real setting


@pytest.mark.parametrize("key", ["select", "Order", "join"])
def test_a_settings_key_duckdb_parses_as_sql_is_refused_before_any_run(
    target: ProfileTarget, key: str
) -> None:
    with pytest.raises(PluginExecutionError) as caught:
        plugin.generate_dbt_profile(compute(settings={key: 1}), target)
    assert (
        f"settings key {key!r} is not a DuckDB setting name (dbt-duckdb sends `SET <key> = …` unquoted"
        in str(caught.value)
    )
    assert "SELECT name FROM duckdb_settings()" in str(caught.value)


@pytest.mark.req("REQ-012")
def test_users_cannot_switch_the_network_back_on(target: ProfileTarget) -> None:
    config = compute(settings={"autoinstall_known_extensions": True, "extension_directory": "/x"})
    settings = plugin.generate_dbt_profile(config, target)["settings"]
    assert settings["autoinstall_known_extensions"] is False
    assert settings["extension_directory"] == str(target.state_dir / "duckdb_extensions")


@pytest.mark.req("REQ-012")
def test_profile_is_valid_for_dbt_duckdb(target: ProfileTarget) -> None:
    """The same steps dbt takes to turn a profile output into credentials."""
    from dbt.adapters.factory import load_plugin

    config = compute(
        extensions=["iceberg", "httpfs"],
        memory_limit="2GB",
        duckdb_threads=2,
        read_only=True,
        settings={"preserve_insertion_order": False},
        schema="analytics",
    )
    profile = plugin.generate_dbt_profile(config, target)
    data = dict(profile)
    credentials_class = load_plugin(data.pop("type"))
    data = credentials_class.translate_aliases(data)
    credentials_class.validate(data)
    credentials = credentials_class.from_dict(data)

    assert credentials.type == "duckdb"
    assert credentials.path == profile["path"]
    assert credentials.database == "local"
    assert credentials.schema == "analytics"
    assert credentials.extensions == profile["extensions"]
    assert credentials.settings == profile["settings"]
    assert credentials.config_options == profile["config_options"]


@pytest.mark.req("REQ-012")
def test_extension_paths_come_from_wheels_with_avro_before_iceberg(target: ProfileTarget) -> None:
    for requested in (["iceberg", "httpfs"], ["httpfs", "iceberg", "avro", "iceberg"]):
        files = [
            Path(p) for p in plugin.generate_dbt_profile(compute(extensions=requested), target)["extensions"]
        ]
        names = [f.name.removesuffix(".duckdb_extension") for f in files]
        assert names.index("avro") == names.index("iceberg") - 1
        assert sorted(names) == ["avro", "httpfs", "iceberg"]
        for file in files:
            assert file.is_absolute() and file.is_file()
            assert file.parent.name == f"v{DUCKDB_VERSION}"
            assert file.parent.parent.parent.name == f"duckdb_extension_{file.stem}"


@pytest.mark.req("REQ-012")
def test_missing_extension_wheel_names_the_pip_command(target: ProfileTarget) -> None:
    # a real extension whose wheel is not installed here (the BigQuery emulator brings spatial's)
    absent = next(
        name
        for name in ("spatial", "fts", "excel", "tpch", "tpcds", "vss", "inet", "sqlsmith")
        if find_spec(f"duckdb_extension_{name}") is None
    )
    with pytest.raises(PluginExecutionError) as info:
        plugin.generate_dbt_profile(compute(extensions=[absent]), target)
    error = info.value
    assert (error.engine, error.operation, error.compute) == (
        "duckdb",
        "generate_dbt_profile",
        "local",
    )
    assert f"pip install duckdb-extension-{absent}=={DUCKDB_VERSION}" in error.render()


@pytest.mark.req("REQ-012")
def test_importing_the_engine_is_cheap() -> None:
    code = (
        "import sys, floe.engines.duckdb as m\n"
        "heavy = sorted(n for n in sys.modules if n == 'importlib.metadata' "
        "or n.split('.')[0] in ('duckdb', '_duckdb', 'dbt', 'jsonschema'))\n"
        "print(m.plugin.name, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "duckdb []"


@pytest.mark.req("REQ-012")
def test_engine_describes_itself() -> None:
    info = plugin.floe_engine_info()
    assert (info.name, info.dbt_adapter) == ("duckdb", "duckdb")
    assert info.version and info.version[0].isdigit()
    assert isinstance(plugin, DuckDBEngine)
    schema = plugin.config_schema()
    assert schema["properties"]["motherduck_token"]["$ref"].endswith("secretRef")


def _dbt(args: list[str], project: Path, profiles: Path) -> Any:
    """dbt in-process; logs and target/ go where ``dbt_env`` points DBT_LOG_PATH/DBT_TARGET_PATH."""
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(profiles)])


def _run_project(tmp_path: Path, target: ProfileTarget, config: ComputeConfig) -> list[tuple[Any, ...]]:
    """Generate the profile, ``dbt debug`` and ``dbt run`` the fixture, return table ``second``."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    profile = plugin.generate_dbt_profile(config, target)
    Path(profile["path"]).parent.mkdir(parents=True, exist_ok=True)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"floe_duckdb": {"target": "dev", "outputs": {"dev": profile}}})
    )
    shutil.copytree(FIXTURE, target.project_dir, dirs_exist_ok=True)
    try:
        debug = _dbt(["debug"], target.project_dir, profiles)
        assert debug.success, debug.exception
        run = _dbt(["run"], target.project_dir, profiles)
        assert run.success, run.exception
        assert sorted(r.node.name for r in run.result.results) == ["first", "second"]
    finally:
        DuckDBConnectionManager.close_all_connections()
    with duckdb.connect(profile["path"], read_only=True) as conn:
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = 'main'"
        ).fetchall()
        assert sorted(tables) == [("first",), ("second",)]
        rows: list[tuple[Any, ...]] = conn.execute(
            "select id, name, avro_loaded, iceberg_loaded, iceberg_path from second order by id"
        ).fetchall()
    return rows


@pytest.fixture
def dbt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No usage statistics or version check, dbt's output in tmp_path, an empty home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return home


@pytest.mark.req("REQ-012")
def test_dbt_debug_and_run_in_process(tmp_path: Path, target: ProfileTarget, dbt_env: Path) -> None:
    rows = _run_project(tmp_path, target, compute("local-duck", duckdb_threads=2))
    assert rows == [(1, "a", False, False, ""), (2, "b", False, False, "")]
    assert not (dbt_env / ".duckdb").exists()


@pytest.mark.req("REQ-012")
def test_dbt_run_loads_extensions_from_wheels_offline(
    tmp_path: Path, target: ProfileTarget, dbt_env: Path
) -> None:
    rows = _run_project(tmp_path, target, compute(extensions=["iceberg"]))
    installed = target.state_dir / "duckdb_extensions"
    for _id, _name, avro_loaded, iceberg_loaded, iceberg_path in rows:
        assert avro_loaded and iceberg_loaded
        assert Path(iceberg_path).is_relative_to(installed)
    assert not (dbt_env / ".duckdb").exists()  # nothing went to ~/.duckdb, nothing downloaded


# -- REQ-017: packages -----------------------------------------------------------------------------


@pytest.mark.req("REQ-017")
def test_required_packages_are_bounded_and_satisfied_here() -> None:
    from packaging.requirements import Requirement

    packages = plugin.get_required_dbt_packages()
    names = set()
    for text in packages:
        requirement = Requirement(text)
        names.add(requirement.name)
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", ">", "==", "~="}, f"{text} has no lower bound"
        assert operators & {"<", "<=", "==", "~="}, f"{text} has no upper bound"
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (text, installed)
    assert {"dbt-core", "dbt-duckdb", "duckdb"} <= names


# -- REQ-014: validate_connection ------------------------------------------------------------------


@pytest.mark.req("REQ-014")
def test_validate_succeeds_on_a_fresh_path_and_closes_the_database(target: ProfileTarget) -> None:
    config = compute(extensions=["iceberg"], memory_limit="1GB")
    result = plugin.validate_connection(config, target, timeout=20)

    assert result.success, result.message
    path = str(target.state_dir / "dev" / "local.duckdb")
    assert result.details["path"] == path
    assert result.details["duckdb_version"] == DUCKDB_VERSION
    assert result.details["extensions"] == ["avro", "iceberg"]
    # closed: another process can take the write lock at once
    subprocess.run(
        [sys.executable, "-c", "import sys, duckdb; duckdb.connect(sys.argv[1]).close()", path],
        check=True,
        timeout=30,
    )


@pytest.mark.req("REQ-014")
def test_validate_reports_a_database_locked_by_another_process(
    target: ProfileTarget, locked_database: tuple[Path, int]
) -> None:
    path, pid = locked_database
    started = time.monotonic()
    result = plugin.validate_connection(compute(path=str(path)), target, timeout=10)

    assert time.monotonic() - started < 10
    assert not result.success
    assert "locked" in result.message and f"PID {pid}" in result.message
    assert f"kill {pid}" in result.message and "read_only" in result.message
    assert "Traceback" not in result.message and 'File "' not in result.message


@pytest.mark.req("REQ-014")
def test_validate_returns_within_the_timeout_when_duckdb_hangs(tmp_path: Path, target: ProfileTarget) -> None:
    fifo = tmp_path / "hang.duckdb"
    os.mkfifo(fifo)  # opening and reading it blocks in C, where no signal reaches DuckDB
    try:
        started = time.monotonic()
        result = plugin.validate_connection(compute(path=str(fifo)), target, timeout=2)
        elapsed = time.monotonic() - started
        assert elapsed < 3, elapsed
        assert not result.success
        assert "did not answer within 2 s" in result.message
        assert "a FIFO" in result.message and "fix:" in result.message
    finally:
        assert release_fifo(fifo), "the stuck DuckDB thread never let go of the FIFO"


@pytest.mark.req("REQ-014")
def test_validate_explains_read_only_without_a_database(target: ProfileTarget) -> None:
    result = plugin.validate_connection(compute(read_only=True), target, timeout=10)
    assert not result.success
    assert "read_only" in result.message and "does not exist" in result.message


@pytest.mark.req("REQ-014")
def test_validate_catches_a_setting_dbt_would_fail_on(target: ProfileTarget) -> None:
    result = plugin.validate_connection(compute(settings={"no_such_knob": 1}), target, timeout=10)
    assert not result.success
    assert "no_such_knob" in result.message and "duckdb_settings()" in result.message


@pytest.mark.req("REQ-014")
@pytest.mark.req("REQ-012")
def test_secret_values_never_leave_the_engine(
    tmp_path: Path, target: ProfileTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOE_TEST_MD_TOKEN", CANARY)
    token = SecretReference("FLOE_TEST_MD_TOKEN")

    # MotherDuck: the profile holds the env_var expression only
    motherduck = compute("md", path="md:floe_db", motherduck_token=token)
    profile = plugin.generate_dbt_profile(motherduck, target)
    text = json.dumps(profile)
    assert CANARY not in text
    assert profile["settings"]["motherduck_token"] == "{{ env_var('FLOE_TEST_MD_TOKEN') }}"
    result = plugin.validate_connection(motherduck, target, timeout=10)
    assert not result.success  # the MotherDuck extension is not installed here, and no network
    assert CANARY not in repr(result) and CANARY not in result.message

    # a message that would contain the value (here through the path) has it scrubbed
    local = compute("md", path=str(tmp_path / CANARY / "db.duckdb"), motherduck_token=token)
    result = plugin.validate_connection(local, target, timeout=10)
    assert not result.success
    assert "not a MotherDuck database" in result.message and "***" in result.message
    assert CANARY not in repr(result)


# -- REQ-015: resources ----------------------------------------------------------------------------


def _check_kubernetes(requirements: dict[str, dict[str, str]]) -> None:
    from kubernetes.client import V1ResourceRequirements

    model = V1ResourceRequirements(**requirements)
    assert model.requests == requirements["requests"] and model.limits == requirements["limits"]
    for key, request in requirements["requests"].items():
        assert parse_quantity(request) <= parse_quantity(requirements["limits"][key])


@pytest.mark.req("REQ-015")
def test_default_resources_are_valid_kubernetes_requirements() -> None:
    requirements = plugin.get_resource_requirements(compute())
    _check_kubernetes(requirements)
    assert requirements == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


@pytest.mark.req("REQ-015")
@pytest.mark.parametrize(
    ("memory_limit", "size"),
    [("512MiB", 2**29), ("8GB", 8 * 10**9), ("6 GiB", 6 * 2**30), ("1.5TB", 15 * 10**11)],
)
def test_memory_resources_cover_memory_limit(memory_limit: str, size: int) -> None:
    requirements = plugin.get_resource_requirements(compute(memory_limit=memory_limit, duckdb_threads=8))
    _check_kubernetes(requirements)
    assert parse_quantity(requirements["requests"]["memory"]) >= max(size, 2 * 2**30)
    assert parse_quantity(requirements["limits"]["memory"]) >= size + 2**30
    assert requirements["limits"]["cpu"] == "8"


# -- REQ-013: attaching the Iceberg catalog --------------------------------------------------------


@pytest.mark.req("REQ-013")
def test_sql_catalog_has_no_attachment() -> None:
    catalog = CatalogConfig(type="sql", uri="sqlite:///catalog.db")
    assert plugin.get_catalog_attachment_sql(compute(), catalog) is None


def _rest(**fields: Any) -> CatalogConfig:
    return CatalogConfig(type="rest", **{"name": "lake", "warehouse": "wh", **fields})


@pytest.mark.req("REQ-013")
@pytest.mark.parametrize("auth", ["token", "none"])
def test_rest_attachment_runs_in_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: str, unused_port: int
) -> None:
    monkeypatch.setenv("FLOE_TEST_CATALOG_TOKEN", CANARY)
    token = SecretReference("FLOE_TEST_CATALOG_TOKEN") if auth == "token" else None
    catalog = _rest(uri=f"http://127.0.0.1:{unused_port}", token=token)
    statements = plugin.get_catalog_attachment_sql(compute(), catalog)
    assert statements is not None
    assert len(statements) == (2 if token else 1)
    assert all(CANARY not in s for s in statements)
    if token:
        assert "TOKEN {{ env_var('FLOE_TEST_CATALOG_TOKEN') }}" in statements[0]

    conn = offline_connection(tmp_path, "iceberg", "httpfs")
    *setup, attach = [render_secret_placeholders(s, os.environ, engine="duckdb") for s in statements]
    for sql in setup:
        conn.execute(sql)
    with pytest.raises(duckdb.Error) as info:
        conn.execute(attach)
    message = str(info.value)
    assert "Could not connect to server" in message, message
    assert not isinstance(info.value, (duckdb.ParserException, duckdb.BinderException))
    assert "Unhandled options" not in message and CANARY not in message
    if token:
        assert conn.execute("select name, type from duckdb_secrets()").fetchall() == [
            ("floe_catalog_lake", "iceberg")
        ]


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _FakeRestCatalog(BaseHTTPRequestHandler):
    """The least of the Iceberg REST protocol DuckDB needs to attach: token, config, namespaces."""

    seen: list[tuple[str, str, str | None]]

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(("POST", self.path, self.headers.get("Authorization")))
        token_type = "urn:ietf:params:oauth:token-type:access_token"
        self._json(
            {
                "access_token": "issued-token",
                "token_type": "bearer",
                "expires_in": 3600,
                "issued_token_type": token_type,
            }
        )

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("Authorization")))
        if self.path.startswith("/v1/config"):
            self._json({"defaults": {}, "overrides": {}})
        else:
            self._json({"namespaces": []})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def rest_catalog() -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    seen: list[tuple[str, str, str | None]] = []
    handler = type("Handler", (_FakeRestCatalog,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.req("REQ-013")
def test_rest_attachment_with_oauth_client_credentials(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rest_catalog: tuple[str, list[tuple[str, str, str | None]]],
) -> None:
    uri, seen = rest_catalog
    monkeypatch.setenv("FLOE_TEST_CLIENT_SECRET", CANARY)
    catalog = _rest(
        uri=uri,
        client_id="floe-client",
        client_secret=SecretReference("FLOE_TEST_CLIENT_SECRET"),
        oauth2_server_uri=f"{uri}/oauth/tokens",
        access_delegation="vended-credentials",
    )
    statements = plugin.get_catalog_attachment_sql(compute(), catalog)
    assert statements is not None
    assert "ACCESS_DELEGATION_MODE 'vended_credentials'" in statements[-1]

    conn = offline_connection(tmp_path, "iceberg", "httpfs")
    for sql in statements:
        conn.execute(render_secret_placeholders(sql, os.environ, engine="duckdb"))

    databases = conn.execute("select database_name, type from duckdb_databases()").fetchall()
    assert ("lake", "iceberg") in databases
    method, path, authorization = seen[0]
    assert (method, path) == ("POST", "/oauth/tokens")
    assert authorization is not None
    credentials = base64.b64decode(authorization.removeprefix("Basic ")).decode()
    assert credentials == f"floe-client:{CANARY}"  # the rendered secret reached the server
    assert ("GET", "/v1/config?warehouse=wh", "Bearer issued-token") in seen


_hostile = st.lists(
    st.sampled_from([*"ab'\";-/*{}() \n\\", "--", "/*", "*/", "''", "{{ env_var('X') }}"]),
    min_size=1,
    max_size=12,
).map("".join)


@pytest.mark.req("REQ-013")
@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(name=_hostile, warehouse=_hostile, uri=_hostile, client_id=_hostile)
def test_quoting_keeps_each_statement_one_statement(
    name: str, warehouse: str, uri: str, client_id: str
) -> None:
    environ = {"SECRET_NAME": "s3cr'et; drop table x; --"}
    for auth in (
        {"client_id": client_id, "client_secret": SecretReference("SECRET_NAME")},
        {"token": SecretReference("SECRET_NAME")},
        {},
    ):
        catalog = CatalogConfig(
            type="rest", name=name, warehouse=warehouse, uri=uri, oauth2_server_uri=uri, **auth
        )
        statements = plugin.get_catalog_attachment_sql(compute(), catalog)
        assert statements is not None
        for sql in statements:
            rendered = render_secret_placeholders(sql, environ, engine="duckdb")
            assert len(duckdb.extract_statements(rendered)) == 1, rendered
            # a placeholder inside a quoted name or value is text, never replaced by a secret
            assert rendered.count("s3cr''et") == (1 if "SECRET_NAME" in sql else 0)


def test_the_attachment_plugin_hides_a_short_secret_but_not_inside_floes_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """floe's dbt-duckdb plugin re-raises a failed statement without the bound secret (``snow``),
    yet the catalog's name ``snowlake`` in DuckDB's message keeps its letters: the run profile
    gives the plugin floe's own names."""
    from floe.engines.duckdb_plugin import Plugin

    compute = ComputeConfig("snowpark", "duckdb", {"path": ":memory:"})
    catalog = CatalogConfig(type="rest", name="snowlake", uri="http://127.0.0.1:9")
    profile = plugin.run_profile(compute, {"type": "duckdb", "path": ":memory:"}, catalog, "p_dev")
    (config,) = [p["config"] for p in profile["plugins"] if p["module"] == "floe.engines.duckdb_plugin"]
    assert {"snowlake", "snowpark", "duckdb"} <= set(config["floe_names"])
    monkeypatch.setenv("FLOE_TEST_SHORT", "snow")
    statement = "select * from snowlake.main.t where x = {{ env_var('FLOE_TEST_SHORT') }}"
    attaching = Plugin("floe", {**config, "floe_statements": [statement]})
    with pytest.raises(RuntimeError) as caught:
        attaching.configure_connection(duckdb.connect())
    assert "compute 'snowpark': attaching the Iceberg catalog failed" in str(caught.value)
    assert "snowlake" in str(caught.value) and "***" not in str(caught.value), caught.value


# -- floe.sqlsecrets -------------------------------------------------------------------------------


@pytest.mark.req("REQ-013")
def test_render_secret_placeholders() -> None:
    sql = (
        "CREATE SECRET s (TOKEN {{ env_var('TOK') }}, X '{{ env_var(''TOK'') }}') "
        "-- {{ env_var('TOK') }}\n/* {{ env_var('TOK') }} */ \"{{ env_var('TOK') }}\""
    )
    rendered = render_secret_placeholders(sql, {"TOK": "it's"}, engine="duckdb")
    assert rendered.startswith("CREATE SECRET s (TOKEN 'it''s', X '{{ env_var(''TOK'') }}')")
    assert rendered.count("it''s") == 1 and rendered.count("env_var") == 4

    with pytest.raises(PluginExecutionError) as info:
        render_secret_placeholders("SELECT {{ env_var('MISSING_ONE') }}", {"OTHER": CANARY}, engine="duckdb")
    assert "MISSING_ONE" in info.value.render() and CANARY not in info.value.render()


# -- REQ-018: errors -------------------------------------------------------------------------------


def _raised(conn: Any, sql: str) -> BaseException:
    with pytest.raises(duckdb.Error) as info:
        conn.execute(sql)
    return info.value


@pytest.mark.req("REQ-018")
def test_translate_lock_error(locked_database: tuple[Path, int]) -> None:
    path, pid = locked_database
    with pytest.raises(duckdb.IOException) as info:
        duckdb.connect(str(path))
    error = plugin.translate_error(info.value, compute())
    assert isinstance(error, PluginExecutionError)
    assert (error.engine, error.compute, error.operation) == (
        "duckdb",
        "local",
        "open the database",
    )
    text = error.render()
    assert str(path) in text and f"PID {pid}" in text and f"fix: stop that process (kill {pid})" in text


@pytest.mark.req("REQ-018")
def test_translate_sql_errors(tmp_path: Path) -> None:
    conn = duckdb.connect(config={"extension_directory": str(tmp_path / "ext"), **OFFLINE})
    cases = {
        "selec 1": ("parse SQL", "syntax error", "fix the SQL syntax"),
        "select * from missing_model": ("run SQL", "missing_model", "dbt run --select"),
        "select nope": ("run SQL", "nope", "column"),
        "SET no_such_knob = 1": ("apply settings", "no_such_knob", "duckdb_settings()"),
        "LOAD spatial": ("load an extension", "spatial", "pip install duckdb-extension-spatial=="),
    }
    for sql, (operation, in_message, in_fix) in cases.items():
        error = plugin.translate_error(_raised(conn, sql), compute())
        assert isinstance(error, PluginExecutionError), sql
        assert error.operation == operation
        problem = error.problems[0]
        assert in_message in problem.message and problem.fix and in_fix in problem.fix, sql


@pytest.mark.req("REQ-018")
def test_translate_same_process_configuration_clash(tmp_path: Path) -> None:
    path = str(tmp_path / "clash.duckdb")
    with duckdb.connect(path, config={"threads": 2}):
        with pytest.raises(duckdb.Error) as info:
            duckdb.connect(path, config={"threads": 3})
    error = plugin.translate_error(info.value, compute())
    assert isinstance(error, PluginExecutionError) and error.operation == "open the database"
    assert "let the running dbt command finish" in (error.problems[0].fix or "")


@pytest.mark.req("REQ-018")
def test_translate_network_and_catalog_errors(tmp_path: Path, unused_port: int) -> None:
    endpoint = f"ENDPOINT 'http://127.0.0.1:{unused_port}', AUTHORIZATION_TYPE 'none'"
    conn = offline_connection(tmp_path, "iceberg", "httpfs")
    unreachable = _raised(conn, f"select * from read_parquet('http://127.0.0.1:{unused_port}/x.parquet')")
    bad_option = _raised(conn, f"ATTACH '' AS c (TYPE ICEBERG, {endpoint}, BOGUS 'x')")
    no_httpfs = offline_connection(tmp_path / "bare", "iceberg")
    needs_httpfs = _raised(no_httpfs, f"ATTACH '' AS c (TYPE ICEBERG, {endpoint})")

    for exc, operation, in_fix in [
        (unreachable, "reach a remote service", "reachable"),
        (bad_option, "attach the Iceberg catalog", "upgrade duckdb"),
        (needs_httpfs, "load an extension", "pip install duckdb-extension-httpfs=="),
    ]:
        error = plugin.translate_error(exc, compute())
        assert isinstance(error, PluginExecutionError), exc
        assert error.operation == operation and in_fix in (error.problems[0].fix or "")


@pytest.mark.req("REQ-018")
def test_translate_errors_dbt_wrapped() -> None:
    from dbt_common.exceptions import DbtRuntimeError

    conn = duckdb.connect()
    original = _raised(conn, "selec 1")
    wrapped = DbtRuntimeError(str(original))  # what dbt-duckdb raises, chained `from` the original
    wrapped.__cause__ = original
    text_only = DbtRuntimeError(str(original))
    for exc in (wrapped, text_only):
        error = plugin.translate_error(exc, None)
        assert isinstance(error, PluginExecutionError) and error.operation == "parse SQL"


@pytest.mark.req("REQ-018")
def test_translate_unknown_errors_to_none() -> None:
    conn = duckdb.connect()
    assert plugin.translate_error(ValueError("Parser Error: not from duckdb"), None) is None
    assert plugin.translate_error(_raised(conn, "select 'x'::integer"), None) is None


@pytest.mark.req("REQ-018")
def test_translated_errors_hide_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_TEST_MD_TOKEN", CANARY)
    config = compute(path="md:db", motherduck_token=SecretReference("FLOE_TEST_MD_TOKEN"))
    exc = _raised(duckdb.connect(), f'select * from "{CANARY}"')  # DuckDB echoes the name
    assert CANARY in str(exc)
    error = plugin.translate_error(exc, config)
    assert isinstance(error, PluginExecutionError)
    assert CANARY not in error.render() and "***" in error.render()


# -- REQ-020: the compliance suite, adopted like any third-party engine -----------------------------


class TestDuckDBCompliance(BaseComputePluginTests):
    """DuckDB through floe's compliance suite: a local database file is its live endpoint."""

    @pytest.fixture
    def engine_name(self) -> str:
        return "duckdb"

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {
            "path": "md:compliance"
        }  # a MotherDuck database: the one kind that takes a secret (its token)

    @pytest.fixture
    def engine_endpoint(self, tmp_path: Path) -> Endpoint:
        return Endpoint({"path": str(tmp_path / "endpoint" / "compliance.duckdb")})

    @pytest.fixture
    def local_settings(self) -> Callable[[Path], dict[str, Any]]:
        return lambda path: {"path": str(path)}

    @pytest.fixture
    def catalog(
        self, rest_catalog: tuple[str, list[tuple[str, str, str | None]]], monkeypatch: pytest.MonkeyPatch
    ) -> CatalogConfig:
        uri, _ = rest_catalog
        monkeypatch.setenv("FLOE_COMPLIANCE_CLIENT_SECRET", CANARY)
        return _rest(
            uri=uri,
            client_id="floe",
            client_secret=SecretReference("FLOE_COMPLIANCE_CLIENT_SECRET"),
            oauth2_server_uri=f"{uri}/oauth/tokens",
        )

    @pytest.fixture
    def sql_executor(self, tmp_path: Path) -> Callable[[list[str], ComputeConfig], None]:
        def execute(statements: list[str], compute: ComputeConfig) -> None:
            conn = offline_connection(tmp_path, "iceberg", "httpfs")
            for sql in statements:
                conn.execute(render_secret_placeholders(sql, os.environ, engine="duckdb"))
            conn.close()

        return execute

    @pytest.fixture
    def client_error(self) -> BaseException:
        try:
            duckdb.connect().execute("selec 1")
        except duckdb.Error as exc:
            return exc
        raise AssertionError("DuckDB accepted invalid SQL")
