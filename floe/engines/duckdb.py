"""The built-in DuckDB engine: dbt-duckdb profiles that never reach the network, and Iceberg REST.

DuckDB runs inside the dbt process, so "the compute" is a database file and a set of extensions.
Extensions come from their PyPI wheels (``duckdb-extension-<name>``): the profile lists the
absolute paths of the extension files in those wheels, dbt-duckdb installs each file into a
directory under the product's state directory and loads it, and DuckDB's own autoinstall and
autoload are switched off. A run therefore needs neither network access nor a writable home
directory.

Importing this module is cheap: duckdb, dbt and floe's schema machinery are imported inside the
methods that need them.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from floe import __version__
from floe.enginekit import (
    PLAIN_NAME,
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
    exception_chain,
    first_line,
    first_lines,
    is_credential_key,
    quote_identifier,
    quote_literal,
    run_check,
    secret_placeholder,
    secret_reference,
    secret_value,
    translate_client_error,
)

ENGINE = "duckdb"
EXTENSIONS_DIR = "duckdb_extensions"
"""Directory under the state directory that DuckDB installs the wheels' extension files into."""
DEFAULT_SCHEMA = "main"
DEFAULT_THREADS = 4
REQUIRED_EXTENSIONS = {"iceberg": ("avro",)}
"""Extensions that another extension needs loaded before it (DuckDB would try to download them)."""

DEFAULT_REQUESTS = {"cpu": "1", "memory": "2Gi"}
DEFAULT_LIMITS = {"cpu": "2", "memory": "4Gi"}
MEMORY_HEADROOM_GI = 1
"""GiB a pod needs besides DuckDB's ``memory_limit``: Python, dbt, and DuckDB's own overhead."""

_MOTHERDUCK_PREFIXES = ("md:", "motherduck:")
_EXTENSION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""What a settings key must be: dbt-duckdb writes the key into ``SET <key> = …`` without quotes."""
_DUCKDB_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)
_SIZE_UNITS = {
    "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}  # fmt: skip
_GI = 2**30






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
            "extensions": [
                str(f) for f in extension_files(_requested(compute), compute, operation)
            ],
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
            ENGINE, compute, timeout, check,
            no_answer=lambda progress: (
                f"DuckDB did not answer within {timeout:g} s while {progress['stage']}",
                "check that the database path is a regular file on a responsive local disk (not a "
                "FIFO or a hung network mount) and that no other process holds it; then retry",
            ),
            fix="check the compute's DuckDB settings (path, settings, extensions) against the message",
            translate=self.translate_error,
        )  # fmt: skip

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

    def get_catalog_attachment_sql(
        self, compute: ComputeConfig, catalog: CatalogConfig
    ) -> list[str] | None:
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

    # -- floe run: the worker attaches the catalog in place (floe.engines.duckdb_run) --------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Attached through ``ATTACH … (TYPE ICEBERG)`` for a REST catalog dbt-duckdb can name.

        :raises UnattachableCatalog: a SQL catalog, or a name dbt-duckdb writes unquoted and DuckDB
            reads as a keyword.
        """
        from floe.engines import duckdb_run

        return duckdb_run.catalog_access(compute, catalog)

    def run_profile(self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig,
                    namespace: str) -> dict[str, Any]:  # fmt: skip
        """The catalog as the target database, attached by floe's dbt-duckdb plugin with
        :meth:`get_catalog_attachment_sql`'s statements (see :mod:`floe.engines.duckdb_run`)."""
        from floe.engines import duckdb_run

        duckdb_run.catalog_access(compute, catalog)
        statements = self.get_catalog_attachment_sql(compute, catalog) or []
        return duckdb_run.run_profile(statements, compute, profile, catalog, namespace)

    def run_macro_paths(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
        """DuckDB's materializations for tables in an Iceberg catalog (no rename, no view)."""
        from floe.engines import duckdb_run

        return duckdb_run.macro_paths()

    def run_worker(self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig,
                   environ: Mapping[str, str]) -> WorkerSetup:  # fmt: skip
        """Forked, and closing dbt-duckdb's database at its exit."""
        from floe.engines import duckdb_run

        return duckdb_run.worker_setup()

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a DuckDB exception (also one dbt wrapped), else ``None``."""
        return translate_client_error(ENGINE, error, compute, _duckdb_error,
                                      lambda classes, text, _: _translate(classes, text))  # fmt: skip


plugin = DuckDBEngine()
"""The instance the ``floe`` entry point ``duckdb = floe.engines.duckdb:plugin`` names."""


# -- profile pieces, shared by the profile and the validation ------------------------------------


def database_path(compute: ComputeConfig, target: ProfileTarget) -> str:
    """The database: ``path`` against the project directory, or ``<state>/<env>/<compute>.duckdb``.

    ``:memory:`` and MotherDuck paths (``md:…``) are kept as they are.
    """
    configured = compute.config.get("path")
    if configured is None:
        state = _absolute(target.state_dir, target.project_dir)
        return os.path.abspath(state / target.environment / f"{compute.name}.duckdb")
    text = str(configured)
    if text == ":memory:" or _is_motherduck(text):
        return text
    return os.path.abspath(_absolute(Path(text).expanduser(), target.project_dir))


def connect_config(compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
    """Options for ``duckdb.connect``: the offline extension setup, and ``access_mode``.

    They must be connect-time options: dbt-duckdb installs the extensions right after connecting,
    before it applies ``settings``.
    """
    config: dict[str, Any] = {
        "extension_directory": extension_directory(target),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if compute.config.get("read_only"):
        config["access_mode"] = "READ_ONLY"
    return config


KEYWORDS_NOT_NAMES = frozenset("""
    all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
    create default deferrable desc describe distinct do else end except false fetch for foreign from
    group having in initially intersect into lambda lateral leading limit not null offset on only or
    order pivot pivot_longer pivot_wider placing primary qualify references returning select show some
    summarize symmetric table then to trailing true union unique unpivot using variadic when where
    window with
    anti asof at authorization binary by collation concurrently cross freeze full glob ilike inner is
    isnull join left like natural notnull outer overlaps positional right semi similar tablesample
    unpack verbose
""".split())
"""DuckDB keywords (its reserved and type/function-name keywords) that cannot stand unquoted
where DuckDB expects a name: dbt-duckdb writes a profile's ``settings`` keys (``SET <key> = …``)
and its ``attach`` aliases (``ATTACH … AS <alias>``) unquoted, so such a name fails every run with
a parser error. No DuckDB setting has such a name; tests/test_engine_duckdb.py derives the set
from the installed DuckDB, for both statements."""


def unquoted_name(name: str) -> bool:
    """Whether DuckDB reads ``name`` as one name where dbt-duckdb writes it unquoted (a settings key,
    an attached catalog's alias): letters, digits and underscores, and no keyword of :data:`KEYWORDS_NOT_NAMES`."""
    return bool(PLAIN_NAME.fullmatch(name)) and name.lower() not in KEYWORDS_NOT_NAMES


def cursor_settings(
    compute: ComputeConfig, target: ProfileTarget, path: str, operation: str
) -> dict[str, Any]:
    """The profile's ``settings``: user settings, ``memory_limit``, ``threads``, the offline setup.

    The offline setup is repeated here (after the user's settings, so they cannot undo it) because
    dbt-duckdb SETs these on every cursor.
    """
    config = compute.config
    user: Mapping[str, Any] = config.get("settings") or {}
    for key in user:
        if not unquoted_name(str(key)):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"settings key {str(key)!r} is not a DuckDB setting name"
                + (" (dbt-duckdb sends `SET <key> = …` unquoted, and DuckDB's parser takes this "
                   "word for SQL)" if PLAIN_NAME.fullmatch(str(key)) else ""),
                "use the setting's name as SELECT name FROM duckdb_settings() lists it: letters, "
                "digits and underscores, such as preserve_insertion_order",
                compute=compute.name,
            )
        if is_credential_key(str(key)):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"settings.{key} looks like a credential and would be written into the profile",
                "remove it; a MotherDuck token goes in motherduck_token: {secret_ref: NAME}",
                compute=compute.name,
            )
    settings: dict[str, Any] = dict(user)
    if config.get("memory_limit") is not None:
        settings["memory_limit"] = str(config["memory_limit"])
    if config.get("duckdb_threads") is not None:
        settings["threads"] = int(config["duckdb_threads"])
    settings.update(connect_config(compute, target))
    settings.pop("access_mode", None)  # connect-time only: DuckDB refuses to SET it
    token = secret_reference(ENGINE, compute, "motherduck_token", operation, example="MOTHERDUCK_TOKEN")
    if token is not None:
        if not _is_motherduck(path):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"motherduck_token is set but the database {path} is not a MotherDuck database",
                "set path to md:<database> to use MotherDuck, or remove motherduck_token "
                "(DuckDB refuses the setting without the MotherDuck extension)",
                compute=compute.name,
            )
        settings["motherduck_token"] = token.as_env_var()
    for key, value in settings.items():
        _quoted(quote_literal, str(value), f"settings.{key}", compute, operation)
    return settings


def set_statement(key: str, value: Any) -> str:
    """``SET "key" = 'value'``: how floe applies one of :func:`cursor_settings` to a connection."""
    return f"SET {quote_identifier(key)} = {quote_literal(str(value))}"


def extension_directory(target: ProfileTarget) -> str:
    """Where DuckDB installs the extension files: ``<state>/duckdb_extensions``."""
    return os.path.abspath(_absolute(target.state_dir, target.project_dir) / EXTENSIONS_DIR)


def ordered_extensions(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, each preceded by the extensions it needs (avro before iceberg)."""
    ordered: list[str] = []
    for name in names:
        for needed in (*REQUIRED_EXTENSIONS.get(name, ()), name):
            if needed not in ordered:
                ordered.append(needed)
    return ordered


def extension_files(
    names: Iterable[str], compute: ComputeConfig | None = None, operation: str = "load extensions"
) -> list[Path]:
    """The extension files of ``names`` (with what they need) in their wheels, in load order.

    Extension ``X`` is the file
    ``<package duckdb_extension_X>/extensions/v<duckdb version>/X.duckdb_extension``;
    the package is located without importing it, and DuckDB's version is read from its metadata.

    :raises PluginExecutionError: a wheel is missing or built for another DuckDB version; the fix
        names the ``pip install`` command.
    """
    ordered = ordered_extensions(names)
    if not ordered:
        return []
    compute_name = compute.name if compute is not None else None
    version = _duckdb_version(compute_name, operation)
    files: list[Path] = []
    for name in ordered:
        if not _EXTENSION_NAME.match(name):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"{name!r} is not a DuckDB extension name",
                "use lower-case extension names such as iceberg or httpfs",
                compute=compute_name,
            )
        install = f"pip install duckdb-extension-{name.replace('_', '-')}=={version}"
        spec = importlib.util.find_spec(f"duckdb_extension_{name}")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the DuckDB extension {name!r} is not installed "
                f"(no Python package duckdb_extension_{name})",
                install,
                compute=compute_name,
            )
        wheel_dir = Path(locations[0]) / "extensions"
        file = wheel_dir / f"v{version}" / f"{name}.duckdb_extension"
        if not file.is_file():
            built_for = sorted(p.name for p in wheel_dir.glob("v*")) if wheel_dir.is_dir() else []
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the installed wheel of the DuckDB extension {name!r} has no build for DuckDB "
                f"{version} (it has: {', '.join(built_for) or 'nothing'})",
                install,
                compute=compute_name,
            )
        files.append(file)
    return files


# -- helpers ---------------------------------------------------------------------------------------


def _requested(compute: ComputeConfig) -> list[str]:
    return [str(n) for n in compute.config.get("extensions") or []]


def _absolute(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def _is_motherduck(path: str) -> bool:
    return path.lower().startswith(_MOTHERDUCK_PREFIXES)


def _gi(quantity: str) -> int:
    return int(quantity.removesuffix("Gi"))


def _duckdb_version(compute: str | None, operation: str) -> str:
    from importlib import metadata

    try:
        return metadata.version("duckdb")
    except metadata.PackageNotFoundError:
        raise PluginExecutionError(
            ENGINE,
            operation,
            "DuckDB is not installed",
            "pip install 'duckdb>=1.5.5,<1.6' dbt-duckdb",
            compute=compute,
        ) from None


def _extension_name(file: Path) -> str:
    return file.name.removesuffix(".duckdb_extension")



def _quoted(
    quote: Callable[[str], str], value: str, what: str, compute: ComputeConfig, operation: str
) -> str:
    """``quote(value)``, or a floe error naming ``what`` when no SQL text can hold the value."""
    try:
        return quote(value)
    except ValueError as exc:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"{what} cannot be written into SQL: {exc}",
            f"remove the character from {what}",
            compute=compute.name,
        ) from None



def _file_kind(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a FIFO", "a directory"…)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"


# -- error translation -----------------------------------------------------------------------------

_DUCKDB_MODULES = ("duckdb", "_duckdb")
_DUCKDB_PREFIXES = (
    "IO Error:", "Catalog Error:", "Parser Error:", "Binder Error:", "HTTP Error:",
    "Out of Memory Error:", "Invalid Input Error:", "Conversion Error:", "Constraint Error:",
    "Connection Error:",
)  # fmt: skip
_LOCK = re.compile(
    r'Could not set lock on file "(?P<file>[^"]+)"'
    r"(?::\s*Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\))?"
)
_EXTENSION_FILE = re.compile(r'Extension "(?P<path>[^"]+?\.duckdb_extension)" not found')
_REQUIRED_EXTENSION = re.compile(r"required extension '(?P<name>[a-z0-9_]+)'")
_HTTP_STATUS = re.compile(r"\b(?:HTTP|status)\s*(?:code\s*)?(?P<code>[1-5][0-9]{2})\b", re.I)
_CANNOT_OPEN = re.compile(r'Cannot open (?:file|database) "(?P<file>[^"]+)"')


def _is_duckdb_class(cls: type) -> bool:
    module = cls.__module__ or ""
    return module in _DUCKDB_MODULES or module.startswith("duckdb.")


def _duckdb_error(error: BaseException) -> tuple[list[str], str] | None:
    """The class names and text of the DuckDB error in ``error`` or its causes.

    dbt wraps DuckDB exceptions in its own, sometimes keeping only the text: a dbt error whose text
    starts like a DuckDB message counts too.
    """
    for current in exception_chain(error):
        mro = type(current).__mro__
        if any(_is_duckdb_class(c) for c in mro):
            return [c.__name__ for c in mro], str(current)
    text = str(error)
    module = type(error).__module__ or ""
    if module.startswith("dbt"):
        starts = [i for i in (text.find(p) for p in _DUCKDB_PREFIXES) if i >= 0]
        if starts:  # dbt indents the DuckDB message under its own heading
            message = "\n".join(line.strip() for line in text[min(starts) :].splitlines())
            return [], message
    return None


def _translate(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a DuckDB error, or ``None`` when it is not recognised."""
    first = first_line(text)
    is_ = set(classes).__contains__

    if lock := _LOCK.search(text):
        holder = f"{lock['program']} (PID {lock['pid']})" if lock["pid"] else "another process"
        fix = (
            f"stop that process (kill {lock['pid']}) or wait until it closes the database"
            if lock["pid"]
            else "find the process with `fuser` or `lsof` and stop it, or wait until it finishes"
        )
        return (
            "open the database",
            f"the database file {lock['file']} is locked by {holder}",
            f"{fix}; DuckDB lets one process write a database file (readers that only read "
            f"can share it with read_only: true)",
        )
    if "different configuration than existing connections" in text:
        return (
            "open the database",
            f"this process already has the database open with other settings: {first}",
            "close the other connection first (let the running dbt command finish), or give "
            "this compute its own path",
        )
    if (found := _EXTENSION_FILE.search(text)) or (found := _REQUIRED_EXTENSION.search(text)):
        name = (
            found["name"]
            if "name" in found.groupdict()
            else (Path(found["path"]).name.removesuffix(".duckdb_extension"))
        )
        version = _installed_duckdb_version()
        return (
            "load an extension",
            f"the DuckDB extension {name!r} is needed but not installed: {first}",
            f"add {name} to the compute's extensions and install its wheel: "
            f"pip install duckdb-extension-{name.replace('_', '-')}=={version}",
        )
    if "Unhandled options found" in text:
        return (
            "attach the Iceberg catalog",
            f"the DuckDB iceberg extension does not accept an option: {first}",
            "upgrade duckdb and duckdb-extension-iceberg together, or remove the option",
        )
    if (
        is_("HTTPException")
        or "HTTP Error" in text
        or "Could not connect to server" in text
        or ("Could not get token" in text)
    ):
        code = _HTTP_STATUS.search(text)
        if code and code["code"] in ("401", "403"):
            return (
                "reach a remote service",
                f"the server refused the credentials (HTTP {code['code']}): {first}",
                "check the values of the secrets the catalog references (client_id/client_secret "
                "or token) and their permissions on the warehouse",
            )
        return (
            "reach a remote service",
            f"DuckDB could not reach the server: {first}",
            "check that the catalog uri (or file URL) is right and reachable from where dbt "
            "runs: network, DNS, proxy, TLS; and that the server is up",
        )
    if "unrecognized configuration parameter" in text:
        return (
            "apply settings",
            first,
            "correct or remove that key under the compute's settings; "
            "SELECT name FROM duckdb_settings() lists the valid ones",
        )
    if is_("OutOfMemoryException") or text.startswith("Out of Memory Error"):
        return (
            "run a query",
            first,
            "raise memory_limit (and the pod's memory with it), lower duckdb_threads, or set "
            "preserve_insertion_order: false under settings",
        )
    if "in read-only mode" in text and "does not exist" not in text:
        return (
            "write to the database",
            first,
            "remove read_only from the compute, or run only models that read",
        )
    if "does not exist" in text and "read-only" in text:
        return (
            "open the database",
            first,
            "run dbt once without read_only so that the database file is created, or fix path",
        )
    if cannot_open := _CANNOT_OPEN.search(text):
        return (
            "open the database",
            first,
            f"check that the directory of {cannot_open['file']} exists and is writable, "
            "or change path",
        )
    if is_("ParserException") or text.startswith("Parser Error"):
        return (
            "parse SQL",
            first_lines(text, 3),
            "fix the SQL syntax at the position shown (DuckDB's SQL dialect)",
        )
    if is_("CatalogException") or text.startswith("Catalog Error"):
        return (
            "run SQL",
            first_lines(text, 2),
            "check the name; if it is a model, build it first (dbt run --select +<model>); "
            "if it is a source, check that the table exists in that schema",
        )
    if is_("BinderException") or text.startswith("Binder Error"):
        return (
            "run SQL",
            first_lines(text, 2),
            "check the column and function names against the upstream model's columns",
        )
    return None


def _installed_duckdb_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("duckdb")
    except metadata.PackageNotFoundError:
        return "<duckdb version>"
