"""The DuckDB engine's hooks: :class:`DuckDBEngine` and the ``plugin`` the entry point names."""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from floe import __version__
from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Progress,
    SecretReference,
    ValidationResult,
    WorkerSetup,
    quote_identifier,
    quote_literal,
    run_check,
    secret_placeholder,
    secret_value,
    translate_client_error,
)
from floe.engines.duckdb.errors import _duckdb_error, _translate
from floe.engines.duckdb.settings import (
    _DUCKDB_SIZE,
    _GI,
    _SIZE_UNITS,
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    DEFAULT_SCHEMA,
    DEFAULT_THREADS,
    ENGINE,
    MEMORY_HEADROOM_GI,
    _extension_name,
    _file_kind,
    _gi,
    _is_motherduck,
    _quoted,
    _requested,
    connect_config,
    cursor_settings,
    database_path,
    extension_files,
    set_statement,
)


class DuckDBEngine(ComputePlugin):
    """DuckDB through dbt-duckdb, with extensions from PyPI wheels and no network access."""

    name: ClassVar[str] = "duckdb"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "duckdb"
    description: ClassVar[str] = (
        "In-process DuckDB through dbt-duckdb; extensions load offline from their PyPI wheels."
    )

    # -- configuration --------------------------------------------------------------------------

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/duckdb.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-duckdb output; see :func:`connect_config` and :func:`cursor_settings`.

        ``extensions`` holds absolute paths of extension files: dbt-duckdb installs each one into
        ``extension_directory`` and loads it. ``config_options`` reach ``duckdb.connect`` (before
        the extensions are installed, so the install goes to the state directory, not ``~``);
        ``settings`` are SET on every cursor. The MotherDuck token is only an ``env_var``.
        The database file's directory is created: dbt-duckdb cannot open a file in a missing one.
        """
        operation = "generate_dbt_profile"
        config = compute.config
        path = database_path(compute, target)
        if path != ":memory:" and not _is_motherduck(path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "type": "duckdb",
            "path": path,
            "schema": str(config.get("schema", DEFAULT_SCHEMA)),
            "threads": int(config.get("threads", DEFAULT_THREADS)),
            "extensions": [str(f) for f in extension_files(_requested(compute), compute, operation)],
            "settings": cursor_settings(compute, target, path, operation),
            "config_options": connect_config(compute, target),
        }

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        """dbt, dbt-duckdb, DuckDB, and the extension wheels the Iceberg REST catalog needs.

        Each extension wheel pins ``duckdb`` to its own version, so pip picks matching versions.
        """
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-duckdb>=1.11.1,<1.12",
            "duckdb>=1.5.5,<1.6",
            "duckdb-extension-avro>=1.5.5,<1.6",
            "duckdb-extension-iceberg>=1.5.5,<1.6",
            "duckdb-extension-httpfs>=1.5.5,<1.6",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Open the database as dbt-duckdb would, load the extensions, apply settings, ``select 1``.

        The check runs under a hard deadline: a database on a hung mount (or a FIFO) cannot hold
        the caller past ``timeout``. The connection is always closed; the message and details never
        hold a secret's value.
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, target, progress)
            loaded = ", ".join(details["extensions"]) or "none"
            mode = "read-only" if details["read_only"] else "read-write"
            message = (
                f"compute {compute.name!r}: DuckDB {details['duckdb_version']} opened {details['path']} "
                f"({mode}); extensions loaded: {loaded}"
            )
            return message, details

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=lambda progress: (
                f"DuckDB did not answer within {timeout:g} s while {progress['stage']}",
                "check that the database path is a regular file on a responsive local disk (not a "
                "FIFO or a hung network mount) and that no other process holds it; then retry",
            ),
            fix="check the compute's DuckDB settings (path, settings, extensions) against the message",
            translate=self.translate_error,
        )

    def _check(
        self, compute: ComputeConfig, target: ProfileTarget, progress: dict[str, Any]
    ) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        operation = "validate_connection"
        path = database_path(compute, target)
        read_only = bool(compute.config.get("read_only", False))
        details: dict[str, Any] = {"path": path, "read_only": read_only, "extensions": []}
        progress["details"] = details

        def step(stage: str, action: Callable[[], Any]) -> Any:
            """``action()``, at ``stage``: its exceptions reach :func:`run_check`, which names the
            stage and translates them with :meth:`translate_error`."""
            progress["stage"] = stage
            return action()

        progress["stage"] = "finding the extension wheels"
        files = extension_files(_requested(compute), compute, operation)
        settings = cursor_settings(compute, target, path, operation)
        config = connect_config(compute, target)
        if _is_motherduck(path):
            token = compute.config.get("motherduck_token")
            if isinstance(token, SecretReference):
                config["motherduck_token"] = secret_value(ENGINE, token, compute, operation)

        duckdb = step("importing duckdb", lambda: importlib.import_module("duckdb"))
        details["duckdb_version"] = str(duckdb.__version__)

        if not _is_motherduck(path) and path != ":memory:":
            database = Path(path)
            step(
                f"creating the directory {database.parent}",
                lambda: database.parent.mkdir(parents=True, exist_ok=True),
            )
            if read_only and not database.exists():
                raise PluginExecutionError(
                    ENGINE,
                    operation,
                    f"read_only is set but the database file {path} does not exist",
                    "run dbt once without read_only to create it, or correct path",
                    compute=compute.name,
                )
            kind = _file_kind(database)
            if kind:
                details["file_type"] = kind

        where = f"opening the database {path}"
        if details.get("file_type"):
            where += f" (it is {details['file_type']}, not a regular file)"
        connection = step(where, lambda: duckdb.connect(path, read_only=False, config=config))
        try:
            for file in files:
                name = _extension_name(file)
                install = functools.partial(connection.install_extension, str(file))
                step(f"installing the extension {name} from {file}", install)
                step(
                    f"loading the extension {name}",
                    functools.partial(connection.load_extension, str(file)),
                )
                details["extensions"].append(name)
            for key, value in settings.items():
                if key == "motherduck_token":
                    continue  # a connect-time option, set above from the environment
                sql = set_statement(key, value)
                step(f"applying the setting {key}", functools.partial(connection.execute, sql))
            row = step("running select 1", lambda: connection.execute("select 1").fetchone())
            if row != (1,):  # pragma: no cover - DuckDB answering wrongly
                raise PluginExecutionError(
                    ENGINE, operation, f"select 1 returned {row!r}", compute=compute.name
                )
        except BaseException:
            connection.close()  # the failing step's stage stays in progress, for the report
            raise
        progress["stage"] = f"closing the database {path}"
        connection.close()
        progress["stage"] = "done"
        return details

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """Requests and limits for a pod running dbt with DuckDB in-process.

        Defaults: requests ``cpu: 1, memory: 2Gi``; limits ``cpu: 2, memory: 4Gi``. With a
        ``memory_limit`` of M (rounded up to whole GiB; DuckDB's GB is 10^9 bytes, its GiB 2^30),
        the memory request is at least M and the limit at least M + 1 GiB, since Python, dbt and
        DuckDB's own overhead live outside the buffer pool ``memory_limit`` bounds. With
        ``duckdb_threads`` T the cpu limit is at least T.
        """
        requests = dict(DEFAULT_REQUESTS)
        limits = dict(DEFAULT_LIMITS)
        memory_limit = compute.config.get("memory_limit")
        if memory_limit is not None:
            match = _DUCKDB_SIZE.match(str(memory_limit))
            if match is None:
                raise PluginExecutionError(
                    ENGINE,
                    "get_resource_requirements",
                    f"memory_limit {memory_limit!r} is not a DuckDB size",
                    "write it as a number and a unit, such as 4GB or 512MiB",
                    compute=compute.name,
                )
            size = float(match[1]) * _SIZE_UNITS[match[2].upper()]
            gib = max(1, math.ceil(size / _GI))
            requests["memory"] = f"{max(_gi(DEFAULT_REQUESTS['memory']), gib)}Gi"
            limits["memory"] = f"{max(_gi(DEFAULT_LIMITS['memory']), gib + MEMORY_HEADROOM_GI)}Gi"
        threads = compute.config.get("duckdb_threads")
        if threads is not None:
            limits["cpu"] = str(max(int(DEFAULT_LIMITS["cpu"]), int(threads)))
        return {"requests": requests, "limits": limits}

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``CREATE SECRET`` (when the catalog has credentials) and ``ATTACH`` for a REST catalog.

        Every name is a quoted identifier and every value a quoted literal; credentials are
        ``{{ env_var('NAME') }}`` placeholders standing where a literal belongs, to be filled by
        :func:`floe.sqlsecrets.render_secret_placeholders` right before the SQL runs. The
        connection needs the ``avro``, ``iceberg`` and ``httpfs`` extensions loaded.
        ``None`` for a SQL catalog: DuckDB cannot attach one.
        """
        if catalog.type != "rest":
            return None
        operation = "get_catalog_attachment_sql"
        if not catalog.uri:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the REST catalog {catalog.name!r} has no uri",
                "set the catalog's uri to its REST endpoint, such as https://catalog.example/api",
                compute=compute.name,
            )
        if (catalog.client_id is None) != (catalog.client_secret is None):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the REST catalog {catalog.name!r} sets only one of client_id and client_secret",
                "set both for OAuth2 client credentials, or neither",
                compute=compute.name,
            )

        def literal(value: str, key: str) -> str:
            return _quoted(quote_literal, value, f"catalog {key}", compute, operation)

        name = _quoted(quote_identifier, catalog.name, "catalog name", compute, operation)
        secret = quote_identifier(f"floe_catalog_{catalog.name}")
        statements: list[str] = []
        options = ["TYPE ICEBERG", f"ENDPOINT {literal(catalog.uri, 'uri')}"]
        if catalog.client_id is not None and catalog.client_secret is not None:
            secret_options = [
                "TYPE ICEBERG",
                f"CLIENT_ID {literal(catalog.client_id, 'client_id')}",
                f"CLIENT_SECRET {secret_placeholder(ENGINE, catalog.client_secret, compute, operation)}",
            ]
            if catalog.oauth2_server_uri:
                secret_options.append(
                    f"OAUTH2_SERVER_URI {literal(catalog.oauth2_server_uri, 'oauth2_server_uri')}"
                )
            else:  # DuckDB then asks <endpoint>/v1/oauth/tokens, the REST spec's token endpoint
                secret_options.append(f"ENDPOINT {literal(catalog.uri, 'uri')}")
            statements.append(f"CREATE OR REPLACE SECRET {secret} ({', '.join(secret_options)})")
            options.append(f"SECRET {secret}")
        elif catalog.token is not None:
            token = secret_placeholder(ENGINE, catalog.token, compute, operation)
            statements.append(f"CREATE OR REPLACE SECRET {secret} (TYPE ICEBERG, TOKEN {token})")
            options.append(f"SECRET {secret}")
        else:
            options.append("AUTHORIZATION_TYPE 'none'")
        mode = "vended_credentials" if catalog.access_delegation == "vended-credentials" else "none"
        options.append(f"ACCESS_DELEGATION_MODE {quote_literal(mode)}")
        # DuckDB attaches a database whose path is a URL (an s3:// warehouse) read-only by default
        options.append("READ_ONLY false")
        statements.append(
            f"ATTACH IF NOT EXISTS {literal(catalog.warehouse or '', 'warehouse')} "
            f"AS {name} ({', '.join(options)})"
        )
        return statements

    # -- floe run: the worker attaches the catalog in place (floe.engines.duckdb.run) --------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Attached through ``ATTACH … (TYPE ICEBERG)`` for a REST catalog dbt-duckdb can name.

        :raises UnattachableCatalog: a SQL catalog, or a name dbt-duckdb writes unquoted and DuckDB
            reads as a keyword.
        """
        from floe.engines.duckdb import run as duckdb_run

        return duckdb_run.catalog_access(compute, catalog)

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        """The catalog as the target database, attached by floe's dbt-duckdb plugin with
        :meth:`get_catalog_attachment_sql`'s statements (see :mod:`floe.engines.duckdb.run`)."""
        from floe.engines.duckdb import run as duckdb_run

        duckdb_run.catalog_access(compute, catalog)
        statements = self.get_catalog_attachment_sql(compute, catalog) or []
        return duckdb_run.run_profile(statements, compute, profile, catalog, namespace)

    def run_macro_paths(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
        """DuckDB's materializations for tables in an Iceberg catalog (no rename, no view)."""
        from floe.engines.duckdb import run as duckdb_run

        return duckdb_run.macro_paths()

    def run_worker(
        self,
        compute: ComputeConfig,
        profile: dict[str, Any],
        catalog: CatalogConfig,
        environ: Mapping[str, str],
    ) -> WorkerSetup:
        """Forked, and closing dbt-duckdb's database at its exit."""
        from floe.engines.duckdb import run as duckdb_run

        return duckdb_run.worker_setup()

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a DuckDB exception (also one dbt wrapped), else ``None``."""
        return translate_client_error(
            ENGINE, error, compute, _duckdb_error, lambda classes, text, _: _translate(classes, text)
        )


plugin = DuckDBEngine()
"""The instance the ``floe`` entry point ``duckdb = floe.engines.duckdb:plugin`` names."""
