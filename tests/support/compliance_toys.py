"""Toy engines for proving the compliance suite: two that comply, and broken ones that must not pass.

``tests/test_compliance_suite.py`` installs this module as a real distribution (a dist-info with
one ``floe`` entry point per engine) in a fresh directory and runs the suite against every engine
in a subprocess, as a plugin author would. Each broken engine is a compliant one with one fault;
``BROKEN`` says which tests of the suite must fail for it, and why.

- ``toy`` keeps DuckDB databases in local files (it has no network endpoint) and attaches the
  catalog by SQL;
- ``toy_net`` is reached over TCP: its server greets each connection with ``TOY READY``; its
  profile is an in-memory DuckDB and it reaches the catalog without SQL.

Both run in ``floe run`` with floe's default run hooks (their transforms build in their own
database); the ``toy_run_*`` engines each break one run hook.
"""

from __future__ import annotations

import os
import socket
import stat
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Relation,
    SecretReference,
    ValidationResult,
    WorkerSetup,
)

SECRET_REF = {"$ref": "https://floe.dev/schemas/v1/definitions.schema.json#/$defs/secretRef"}
GREETING = b"TOY READY\n"


def _secret(value: Any) -> str:
    """A secret setting as the profile must hold it: a reference, never the value."""
    return value.as_env_var() if isinstance(value, SecretReference) else str(value)


class LocalToy(ComputePlugin):
    """DuckDB databases in local files, through dbt-duckdb; attaches the catalog by SQL."""

    name = "toy"
    version = "1.0"
    dbt_adapter = "duckdb"

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {"path": {"type": "string"}, "token": SECRET_REF},
        }

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "type": "duckdb",
            "path": str(compute.config.get("path", ":memory:")),
            "schema": "main",
            "threads": 1,
        }
        if "token" in compute.config:
            profile["settings"] = {"toy_token": _secret(compute.config["token"])}
        return profile

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-duckdb>=1.11,<1.12"]

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        path = str(compute.config.get("path", ":memory:"))
        if path != ":memory:":
            try:
                mode: int | None = os.stat(path).st_mode
            except OSError:  # missing (DuckDB creates it) or unreachable (DuckDB says why)
                mode = None
            if mode is not None and not stat.S_ISREG(mode):
                return ValidationResult(
                    False, f"{path} is not a regular file; point `path` at a database file", {}
                )
        try:
            duckdb.connect(path).close()
        except duckdb.Error as exc:
            return self._failed(path, exc)
        return ValidationResult(True, f"opened {path}", {"path": path})

    def _failed(self, path: str, exc: BaseException) -> ValidationResult:
        first = str(exc).strip().splitlines()[0]
        return ValidationResult(False, f"cannot open {path}: {first}; fix `path`", {"path": path})

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        name = (catalog.name or "lake").replace('"', '""')
        return [f"ATTACH ':memory:' AS \"{name}\"", f'CREATE TABLE "{name}".main.probe AS SELECT 1 AS one']

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        if isinstance(error, duckdb.Error):
            return PluginExecutionError(self.name, "query", str(error).splitlines()[0], "check the SQL")
        return None


class NetworkToy(LocalToy):
    """A server reached over TCP (``host``, ``port``) that greets with ``TOY READY``."""

    name = "toy_net"

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {"host": {"type": "string"}, "port": {"type": "integer"}, "password": SECRET_REF},
        }

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile: dict[str, Any] = {"type": "duckdb", "path": ":memory:", "schema": "main", "threads": 1}
        if "password" in compute.config:
            profile["settings"] = {"toy_password": _secret(compute.config["password"])}
        return profile

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        host, port = str(compute.config.get("host")), int(compute.config.get("port", 0))
        deadline = time.monotonic() + timeout * 0.9
        try:
            with socket.create_connection((host, port), timeout=timeout * 0.9) as conn:
                conn.settimeout(max(0.05, deadline - time.monotonic()))
                greeting = conn.recv(64)
        except ConnectionRefusedError:
            return ValidationResult(
                False, f"the connection to {host}:{port} was refused; check host and port", {}
            )
        except TimeoutError:
            return ValidationResult(
                False, f"no answer from {host}:{port} within {timeout:g} s; check the server", {}
            )
        except OSError as exc:
            return ValidationResult(
                False, f"cannot reach {host}:{port}: {exc.strerror}; check host and port", {}
            )
        if greeting != GREETING:
            return ValidationResult(
                False, f"{host}:{port} is not a toy server (it said {greeting[:20]!r})", {}
            )
        return ValidationResult(True, f"{host}:{port} is ready", {})

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        return None  # the toy server is configured with its catalog


# -- broken engines: one fault each ----------------------------------------------------------------


class NoType(LocalToy):
    name = "toy_no_type"

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile = super().generate_dbt_profile(compute, target)
        del profile["type"]
        return profile


class AlwaysOk(LocalToy):
    name = "toy_always_ok"

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        return ValidationResult(True, "fine", {})


class NetworkAlwaysOk(NetworkToy):
    name = "toy_net_always_ok"

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        return ValidationResult(True, "fine", {})


class NetworkHung(NetworkToy):
    """Ignores ``timeout``: waits for the greeting as long as the server keeps the connection."""

    name = "toy_net_hung"

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        host, port = str(compute.config.get("host")), int(compute.config.get("port", 0))
        try:
            with socket.create_connection((host, port)) as conn:
                greeting = conn.recv(64)
        except OSError as exc:
            return ValidationResult(
                False, f"cannot reach {host}:{port}: {exc.strerror}; check host and port", {}
            )
        return ValidationResult(greeting == GREETING, f"{host}:{port} said {greeting[:20]!r}", {})


class LiteralSecret(NetworkToy):
    """Takes its password as a plain string and copies it into the profile."""

    name = "toy_literal_secret"

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "password": {"type": "string"},
            },
        }

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile: dict[str, Any] = {"type": "duckdb", "path": ":memory:", "schema": "main", "threads": 1}
        if "password" in compute.config:
            profile["settings"] = {"toy_password": str(compute.config["password"])}
        return profile


class Leaky(NetworkToy):
    """Declares its password a secret reference, then writes the secret's value into the profile."""

    name = "toy_leaky"

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile = super().generate_dbt_profile(compute, target)
        if isinstance(compute.config.get("password"), SecretReference):
            profile["settings"] = {"toy_password": os.environ.get(compute.config["password"].name, "")}
        return profile


class BadQuantities(LocalToy):
    name = "toy_bad_quantities"

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": "100 m", "memory": "128MB"}, "limits": {"cpu": "1", "memory": "1GB"}}


class BadSql(LocalToy):
    name = "toy_bad_sql"

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        return ["ATACH DATABASE ':memory:' AS lake"]


class NoAttachment(LocalToy):
    """Returns ``None`` though its adopter declares attachment by SQL."""

    name = "toy_no_attachment"

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        return None


class Unbounded(LocalToy):
    name = "toy_unbounded"

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-duckdb"]


class Untranslated(LocalToy):
    name = "toy_untranslated"

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        return None


class Traceback(LocalToy):
    """Reports failures with the stack trace instead of advice."""

    name = "toy_traceback"

    def _failed(self, path: str, exc: BaseException) -> ValidationResult:
        return ValidationResult(False, "".join(traceback.format_exception(exc)), {"path": path})


class BadSchema(LocalToy):
    name = "toy_bad_schema"

    def config_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"path": {"type": "text"}}}


# -- broken run hooks ------------------------------------------------------------------------------


class RunNoNamespace(LocalToy):
    """Its run profile keeps the compiled schema: the run's models would land outside its namespace."""

    name = "toy_run_no_namespace"

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        return profile


class RunLeakyWorker(NetworkToy):
    """Hands its worker the password's value instead of letting it inherit the variable."""

    name = "toy_run_leaky_worker"

    def run_worker(
        self,
        compute: ComputeConfig,
        profile: dict[str, Any],
        catalog: CatalogConfig,
        environ: Mapping[str, str],
    ) -> WorkerSetup:
        password = compute.config.get("password")
        if isinstance(password, SecretReference):
            return WorkerSetup(environ={"TOY_PASSWORD": environ.get(password.name, "")})
        return WorkerSetup()


class RunLeakyCatalog(LocalToy):
    """Copies the value of the catalog's secret into its run profile."""

    name = "toy_run_leaky_catalog"

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        run = super().run_profile(compute, profile, catalog, namespace)
        secret = catalog.client_secret or catalog.token
        if secret is not None:
            run["settings"] = {"toy_catalog_secret": os.environ.get(secret.name, "")}
        return run


class RunConnectingAccess(LocalToy):
    """Asks the catalog's endpoint for its config, waiting as long as it takes, before saying how
    it would reach it: ``floe plan`` would hang on a catalog that does not answer."""

    name = "toy_run_connecting_access"

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        address = urlsplit(catalog.uri or "")
        try:
            with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80)) as conn:
                conn.sendall(b"GET /v1/config HTTP/1.0\r\n\r\n")
                conn.recv(64)
        except OSError:
            pass
        return super().catalog_access(compute, catalog)


class RunBadConfigs(LocalToy):
    """Puts its project configs under ``model``, which is no key of a dbt project."""

    name = "toy_run_bad_configs"

    def run_project_config(self, compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
        return {"model": {"+materialized": "table"}}


ENGINES = {
    cls.name: cls
    for cls in (
        LocalToy,
        NetworkToy,
        NoType,
        AlwaysOk,
        NetworkAlwaysOk,
        NetworkHung,
        LiteralSecret,
        Leaky,
        BadQuantities,
        BadSql,
        NoAttachment,
        Unbounded,
        Untranslated,
        Traceback,
        BadSchema,
        RunNoNamespace,
        RunLeakyWorker,
        RunLeakyCatalog,
        RunConnectingAccess,
        RunBadConfigs,
    )
}
"""Every toy engine by name; each is registered under its name (entry point ``NAME = toys:CLASS``)."""


# -- bridged toys: a DuckDB file floe carries tables in and out of (floe_read_arrow, floe_load_arrow) ---


def _quoted(relation: Relation) -> str:
    return ".".join(
        '"' + part.replace('"', '""') + '"'
        for part in (relation.database, relation.schema, relation.identifier)
        if part
    )


class BridgeToy(LocalToy):
    """Builds in its DuckDB file; floe reads its tables and loads into them through DuckDB's Arrow scans,
    a load into a staging table renamed into place in one transaction."""

    name = "toy_bridge"

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        return CatalogAccess.bridged(
            "a DuckDB file: floe reads and loads its tables through DuckDB's Arrow scans"
        )

    def read_arrow(self, compute: ComputeConfig, relation: Relation) -> Any:
        with duckdb.connect(str(compute.config["path"])) as conn:
            return conn.execute(f"SELECT * FROM {_quoted(relation)}").fetch_arrow_table()

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: Any) -> int:
        staging = Relation(relation.database, relation.schema, relation.identifier + "__floe_load")
        with duckdb.connect(str(compute.config["path"])) as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(
                    f"CREATE SCHEMA IF NOT EXISTS {_quoted(Relation(relation.database, relation.schema, ''))}"
                )
                conn.register("incoming", data)
                conn.execute(
                    f"CREATE OR REPLACE TABLE {_quoted(staging)} AS {self._select('incoming', data)}"
                )
                self._swap(conn, staging, relation)
                rows = conn.execute(f"SELECT count(*) FROM {_quoted(relation)}").fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(rows[0]) if rows else 0

    def _select(self, source: str, data: Any) -> str:
        return f"SELECT * FROM {source}"

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """DuckDB's error of a failed Arrow stream carries the stream's Python traceback after "Detail:"."""
        if isinstance(error, duckdb.Error):
            text = str(error).splitlines()[0].split(" Detail: Python exception:")[0]
            return PluginExecutionError(self.name, "query", text, "check the SQL, or the data loaded")
        return None

    def _swap(self, conn: Any, staging: Relation, relation: Relation) -> None:
        conn.execute(f"DROP TABLE IF EXISTS {_quoted(relation)}")
        conn.execute(f'ALTER TABLE {_quoted(staging)} RENAME TO "{relation.identifier}"')


class BridgeLossy(BridgeToy):
    """Keeps a timestamp with a time zone as one without."""

    name = "toy_bridge_lossy"

    def _select(self, source: str, data: Any) -> str:
        if "at_utc" not in data.schema.names:
            return f"SELECT * FROM {source}"
        return f"SELECT * REPLACE (CAST(at_utc AS TIMESTAMP) AS at_utc) FROM {source}"


class BridgeAppends(BridgeToy):
    """Adds the loaded rows to the table instead of replacing them."""

    name = "toy_bridge_appends"

    def _swap(self, conn: Any, staging: Relation, relation: Relation) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_quoted(relation)} AS SELECT * FROM {_quoted(staging)} LIMIT 0"
        )
        conn.execute(f"INSERT INTO {_quoted(relation)} SELECT * FROM {_quoted(staging)}")
        conn.execute(f"DROP TABLE {_quoted(staging)}")


class BridgeUnstaged(BridgeToy):
    """Empties the table, then inserts each batch as it arrives, committing each: readers see it half loaded."""

    name = "toy_bridge_unstaged"

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: Any) -> int:
        import pyarrow

        with duckdb.connect(str(compute.config["path"])) as conn:
            conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {_quoted(Relation(relation.database, relation.schema, ''))}"
            )
            conn.register("empty", pyarrow.Table.from_batches([], schema=data.schema))
            conn.execute(f"CREATE OR REPLACE TABLE {_quoted(relation)} AS SELECT * FROM empty")
            for batch in data:
                conn.register("batch", pyarrow.Table.from_batches([batch]))
                conn.execute(f"INSERT INTO {_quoted(relation)} SELECT * FROM batch")
            rows = conn.execute(f"SELECT count(*) FROM {_quoted(relation)}").fetchone()
        return int(rows[0]) if rows else 0


class BridgeStringly(BridgeToy):
    """Turns a column of a type it has no use for into text, silently."""

    name = "toy_bridge_stringly"

    def _select(self, source: str, data: Any) -> str:
        odd = [f.name for f in data.schema if "interval" in str(f.type)]
        if not odd:
            return f"SELECT * FROM {source}"
        return f"SELECT * REPLACE ({', '.join(f'CAST({n} AS VARCHAR) AS {n}' for n in odd)}) FROM {source}"


class BridgeHookless(LocalToy):
    """Says floe can carry its tables, and implements neither hook."""

    name = "toy_bridge_hookless"

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        return CatalogAccess.bridged("a DuckDB file (it says)")


class InPlaceBridged(LocalToy):
    """Attaches the catalog in place, and declares a bridge too."""

    name = "toy_in_place_bridged"

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        return CatalogAccess(True, "attached in place", reads=True, loads=True)


ENGINES.update(
    {
        cls.name: cls
        for cls in (
            BridgeToy,
            BridgeLossy,
            BridgeAppends,
            BridgeUnstaged,
            BridgeStringly,
            BridgeHookless,
            InPlaceBridged,
        )
    }
)


def install(site: Path) -> None:
    """This module as a distribution in ``site``: ``compliance_toys.py`` and its dist-info."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "compliance_toys.py").write_text(Path(__file__).read_text(encoding="utf-8"), encoding="utf-8")
    dist = site / "compliance_toys-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: compliance-toys\nVersion: 1.0\n")
    lines = [f"{name} = compliance_toys:{cls.__name__}" for name, cls in ENGINES.items()]
    (dist / "entry_points.txt").write_text("[floe]\n" + "\n".join(lines) + "\n")
