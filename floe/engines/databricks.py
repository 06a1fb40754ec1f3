"""The Databricks engine: dbt-databricks profiles, and a connection check with databricks-sql-connector.

Two ways to authenticate:

- ``auth_type: token`` (default): ``token`` is a secret reference to a personal access token or a
  service principal's token; the profile has ``token: {{ env_var('NAME') }}``.
- ``auth_type: oauth``: machine-to-machine OAuth for a service principal, ``client_id`` plus the
  secret ``client_secret``; dbt-databricks (and this engine's check) get tokens through the
  Databricks SDK from the workspace's OIDC endpoints.

``host`` and ``http_path`` are required by floe's schema: dbt-databricks accepts a profile without
them and fails only when it connects.

Importing this module is cheap: dbt, the connector and the SDK are imported inside methods.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
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
    engine_error,
    exception_chain,
    first_line,
    redact,
    run_check,
    secret_reference,
    secret_value,
)

ENGINE = "databricks"
DEFAULT_THREADS = 4
DEFAULT_PORT = 443
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "1", "memory": "1Gi"}
"""The warehouse does the work; the pod runs dbt (parse, compile, waiting on statements)."""
PIP_INSTALL = "pip install 'dbt-databricks>=1.12,<1.12.8' 'databricks-sql-connector>=4,<5'"
AUTH_KEYS: dict[str, tuple[str, ...]] = {"token": ("token",), "oauth": ("client_id", "client_secret")}
CREDENTIAL_KEYS = ("token", "client_id", "client_secret")
PORT_443 = (
    "it reaches the workspace through the Databricks SDK (for every auth type), which first fetches "
    "https://<host>/.well-known/databricks-config on port 443 whatever port says; where 443 is closed, "
    "every dbt run stalls for 5 minutes before it starts"
)
PORT_FIX = "remove port: the workspace (or the proxy in front of it) must answer on 443"
_STATUS = re.compile(
    r"\bstatus (?P<code>[1-5][0-9]{2})\b|\bHTTP (?P<http>[1-5][0-9]{2})\b|\b(?P<bare>401|403|404)\b"
)
_ERROR_CODE = re.compile(r"\[(?P<code>[A-Z][A-Z_]{3,})\]")


class DatabricksEngine(ComputePlugin):
    """Databricks SQL warehouses and clusters through dbt-databricks."""

    name: ClassVar[str] = "databricks"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "databricks"
    description: ClassVar[str] = "Databricks through dbt-databricks; token or OAuth M2M as secret references."

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/databricks.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-databricks output: ``host``, ``http_path``, ``catalog``, ``schema``, ``threads`` and
        the credentials, secrets only as dbt ``env_var`` expressions.

        ``use_sea`` goes to the connector through ``connection_parameters``; ``port`` can only be 443
        (see :data:`PORT_443`).
        """
        settings = checked_settings(compute, "generate_dbt_profile")
        config = compute.config
        profile: dict[str, Any] = {
            "type": "databricks",
            "host": settings.host,
            "http_path": settings.http_path,
            "schema": str(config["schema"]),
            "threads": int(config.get("threads", DEFAULT_THREADS)),
        }
        if config.get("catalog"):
            profile["catalog"] = str(config["catalog"])
        if settings.auth_type == "token":
            profile["token"] = settings.secrets["token"].as_env_var()
        else:
            profile["auth_type"] = "oauth"
            profile["client_id"] = str(config["client_id"])
            profile["client_secret"] = settings.secrets["client_secret"].as_env_var()
        for key in ("connect_retries", "connect_timeout"):
            if config.get(key) is not None:
                profile[key] = int(config[key])
        parameters: dict[str, Any] = {}
        if config.get("use_sea"):
            parameters["use_sea"] = True
        if parameters:
            profile["connection_parameters"] = parameters
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-databricks>=1.12,<1.12.8",
            "databricks-sql-connector>=4,<5",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Open a session on the warehouse as dbt would (same host, path, catalog, schema and
        credentials) and run ``select 1``.

        The connector gets a socket timeout of the time left and a single attempt (its default is
        30 retries over up to 15 minutes, which would turn a refused port into a long wait), and the
        whole check runs under a hard deadline a little under ``timeout``. Telemetry is off.
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, progress, seconds)
            message = (
                f"compute {compute.name!r}: Databricks at {details['endpoint']} ran select 1 "
                f"({details['auth_type']} authentication) in catalog {details.get('current_catalog')}, "
                f"schema {details.get('current_schema')}"
            )
            return message, details

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=lambda progress: (
                f"no answer from {progress['details'].get('endpoint', 'the workspace')} within "
                f"{timeout:g} s while {progress['stage']}",
                "check host and port, that the workspace is reachable from where floe runs (firewall, "
                "proxy, private link), and that the SQL warehouse is running or set to auto-start",
            ),
            fix="check the compute's Databricks settings (host, http_path, catalog, credentials)",
            translate=self.translate_error,
            margin=0.3,
        )

    def _check(self, compute: ComputeConfig, progress: dict[str, Any], budget: float) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        import time

        start = time.monotonic()

        def left() -> float:
            return max(0.1, budget - (time.monotonic() - start))

        operation = "validate_connection"
        settings = checked_settings(compute, operation)
        config = compute.config
        endpoint = f"https://{settings.host}" + (f":{settings.port}" if settings.port != DEFAULT_PORT else "")
        details: dict[str, Any] = progress["details"]
        details.update(
            {
                "endpoint": endpoint,
                "http_path": settings.http_path,
                "auth_type": settings.auth_type,
                "protocol": "sea" if config.get("use_sea") else "thrift",
            }
        )
        progress["stage"] = "importing databricks-sql-connector"
        try:
            dbsql = importlib.import_module("databricks.sql")
        except ImportError as exc:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"databricks-sql-connector cannot be imported ({exc})",
                PIP_INSTALL,
                compute=compute.name,
            ) from None
        arguments: dict[str, Any] = {
            "server_hostname": settings.host,
            "http_path": settings.http_path,
            "schema": str(config["schema"]),
            "enable_telemetry": False,
            "use_cloud_fetch": False,
            "_socket_timeout": left(),
            "_retry_stop_after_attempts_count": 1,
            "_retry_delay_min": 0.1,
            "_retry_stop_after_attempts_duration": left(),
            "user_agent_entry": "floe-validate",
        }
        if config.get("catalog"):
            arguments["catalog"] = str(config["catalog"])
        if settings.port != DEFAULT_PORT:
            arguments["_port"] = settings.port
        if config.get("use_sea"):
            arguments["use_sea"] = True
        if settings.auth_type == "token":
            arguments["access_token"] = secret_value(
                ENGINE, settings.secrets["token"], compute, operation, what="token"
            )
        else:
            progress["stage"] = "getting an OAuth token for the service principal"
            arguments["credentials_provider"] = _oauth_provider(settings, compute, operation, left())
        progress["stage"] = f"opening a session on {settings.http_path}"
        connection = dbsql.connect(**arguments)
        try:
            progress["stage"] = "running select 1"
            cursor = connection.cursor()
            try:
                cursor.execute("select 1 as floe_check, current_catalog(), current_schema()")
                rows = cursor.fetchall()
            finally:
                cursor.close()
        finally:
            connection.close()
        values = [tuple(row) for row in rows]
        if len(values) != 1 or values[0][0] != 1:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"select 1 returned {values!r}",
                "check that http_path points at a SQL warehouse or cluster",
                compute=compute.name,
            )
        details.update({"current_catalog": values[0][1], "current_schema": values[0][2], "stage": "done"})
        return dict(details)

    # -- REQ-015 and REQ-013 --------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A small pod: the warehouse runs the SQL; the pod runs dbt, which submits and waits."""
        return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: Databricks attaches Iceberg catalogs through Unity Catalog, not per session.

        A foreign Iceberg REST catalog becomes a Unity Catalog *foreign catalog* (Lakehouse
        Federation: a connection plus ``CREATE FOREIGN CATALOG``), created once by a metastore admin
        with credentials held by Unity Catalog; Databricks' own Iceberg tables are managed tables
        read through UC's Iceberg REST endpoint. A dbt session only names ``catalog.schema.table``;
        it has nothing to attach, and could not hold the catalog's credentials in SQL safely.
        """
        return None

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Its own warehouse (see :meth:`get_catalog_attachment_sql`): ``floe plan`` refuses a ref
        between its transforms and those of another compute."""
        return CatalogAccess.own_warehouse(
            "Databricks reaches a foreign Iceberg catalog through Unity Catalog (a foreign catalog a "
            "metastore admin creates); floe attaches nothing per session, so its transforms build in the "
            "compute's catalog"
        )

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a databricks-sql-connector / SDK / HTTP error (also one that dbt
        wrapped, found through ``__cause__``/``__context__`` or dbt's message), else ``None``."""
        found = _client_error(error)
        if found is None:
            return None
        names, text = found
        explained = explain(names, text, compute, failed_stage(error))
        if explained is None:
            return None
        return engine_error(ENGINE, compute, explained, cause=f"{names[0]}: {first_line(text)}")


plugin = DatabricksEngine()
"""The instance the ``floe`` entry point ``databricks = floe.engines.databricks:plugin`` names."""


# -- settings ----------------------------------------------------------------------------------------


class Settings:
    """Host, port, path, the auth type and its secret references, checked against each other."""

    def __init__(
        self, host: str, port: int, http_path: str, auth_type: str, secrets: dict[str, SecretReference]
    ) -> None:
        self.host = host
        self.port = port
        self.http_path = http_path
        self.auth_type = auth_type
        self.secrets = secrets


def checked_settings(compute: ComputeConfig, operation: str) -> Settings:
    """The compute's connection settings, or an error naming the setting to fix."""
    config = compute.config

    def fail(message: str, fix: str) -> PluginExecutionError:
        return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

    for key, example in (
        ("host", "dbc-a1b2c3d4-e5f6.cloud.databricks.com"),
        ("http_path", "/sql/1.0/warehouses/<id>"),
        ("schema", "analytics"),
    ):
        if not config.get(key):
            raise fail(
                f"{key} is not set (dbt-databricks would only notice when it connects)",
                f"set {key}, e.g. {example}; the SQL warehouse's Connection details show host and HTTP path",
            )
    host = str(config["host"]).strip().removeprefix("https://").rstrip("/")
    if "/" in host or ":" in host:
        raise fail(
            f"host {host!r} must be a host name only", "write the port in port and the path in http_path"
        )
    auth_type = str(config.get("auth_type", "token"))
    if auth_type not in AUTH_KEYS:
        raise fail(f"unknown auth_type {auth_type!r}", "use token or oauth")
    stray = [k for k in CREDENTIAL_KEYS if config.get(k) is not None and k not in AUTH_KEYS[auth_type]]
    if stray:
        other = "oauth" if auth_type == "token" else "token"
        raise fail(
            f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} set but auth_type is {auth_type}",
            f"remove {', '.join(stray)}, or set auth_type: {other}",
        )
    missing = [k for k in AUTH_KEYS[auth_type] if config.get(k) is None]
    if missing:
        raise fail(
            f"auth_type {auth_type} needs {' and '.join(AUTH_KEYS[auth_type])} (missing: {', '.join(missing)})",
            "token: {secret_ref: NAME} for a token; auth_type: oauth with client_id and "
            "client_secret: {secret_ref: NAME} for a service principal",
        )
    refs: dict[str, SecretReference] = {}
    for key in ("token", "client_secret"):
        ref = secret_reference(ENGINE, compute, key, operation, example="DATABRICKS_TOKEN")
        if ref is not None:
            refs[key] = ref
    http_path = str(config["http_path"])
    if config.get("use_sea") and not re.search(r"/(warehouses|endpoints)/[^/?&]+", http_path):
        raise fail(
            f"use_sea needs a SQL warehouse http_path (/sql/1.0/warehouses/<id>), not {http_path!r}",
            "remove use_sea for a cluster, or use the SQL warehouse's HTTP path",
        )
    port = int(config.get("port", DEFAULT_PORT))
    if port != DEFAULT_PORT and (auth_type == "oauth" or operation == "generate_dbt_profile"):
        raise fail(f"dbt-databricks cannot use port {port}: {PORT_443}", PORT_FIX)
    return Settings(host, port, http_path, auth_type, refs)


def _oauth_provider(settings: Settings, compute: ComputeConfig, operation: str, timeout: float) -> Any:
    """The connector's ``credentials_provider`` for a service principal, via the Databricks SDK (as
    dbt-databricks does for ``auth_type: oauth``); the SDK fetches the first token here."""
    try:
        sdk_core = importlib.import_module("databricks.sdk.core")
    except ImportError as exc:
        raise PluginExecutionError(
            ENGINE, operation, f"databricks-sdk cannot be imported ({exc})", PIP_INSTALL, compute=compute.name
        ) from None
    secret = secret_value(ENGINE, settings.secrets["client_secret"], compute, operation, what="client_secret")
    try:
        config = sdk_core.Config(
            host=f"https://{settings.host}",
            client_id=str(compute.config["client_id"]),
            client_secret=secret,
            auth_type="oauth-m2m",
            http_timeout_seconds=max(1, int(timeout)),
            retry_timeout_seconds=max(1, int(timeout)),
        )
        config.authenticate()  # the first token now, so that a refusal is reported as one
    except ValueError as exc:  # the SDK reports every authentication failure as ValueError
        text = redact(str(exc), [secret])
        if "invalid_client" in text or "invalid_grant" in text or "unauthorized" in text.lower():
            message, fix = (
                f"the workspace refused the service principal's OAuth credentials: {first_line(text)[:300]}",
                "check client_id and the secret in client_secret (an OAuth secret of that "
                "service principal, starting with dose, not expired)",
            )
        else:
            message, fix = (
                f"no OAuth token from https://{settings.host}: {first_line(text)[:300]}",
                "check host (the workspace host name only) and network access to it on port 443",
            )
        raise PluginExecutionError(ENGINE, "authenticate", message, fix, compute=compute.name) from None

    def provider() -> Any:
        return config.authenticate

    return provider


# -- errors ------------------------------------------------------------------------------------------

_CLIENT_MODULES = ("databricks.", "requests.", "urllib3.", "thrift.")


def _client_error(error: BaseException) -> tuple[list[str], str] | None:
    """Class names and text of the Databricks/HTTP client error in ``error`` or its causes."""
    found: tuple[list[str], str] | None = None
    for current in exception_chain(error):
        module = type(current).__module__ or ""
        if module.startswith(_CLIENT_MODULES):
            names = [c.__name__ for c in type(current).__mro__]
            text = str(current)
            if found is None:
                found = (names, text)
            else:  # keep the outer class, add what the inner error says (the connector wraps a lot)
                found = (found[0] + names, found[1] + "\n" + text)
    if found is not None:
        return found
    module = type(error).__module__ or ""
    if module.startswith("dbt"):
        text = str(error)
        markers = (
            "Invalid access token",
            "SEA HTTP request failed",
            "Error during request to server",
            "NO_SUCH_CATALOG",
            "SCHEMA_NOT_FOUND",
            "TABLE_OR_VIEW_NOT_FOUND",
            "Connection refused",
            "invalid_client",
            "PARSE_SYNTAX_ERROR",
            "RESOURCE_DOES_NOT_EXIST",
        )
        if any(m in text for m in markers):
            return [type(error).__name__], text
    return None


_STAGE_FRAMES = {"open_session": "open a session", "execute_command": "run SQL"}
"""Methods of the connector's backends (SEA and Thrift alike), by the stage they are."""


def failed_stage(error: BaseException) -> str | None:
    """The stage a connector error happened at, from where it was raised: ``open a session`` or
    ``run SQL``, else ``None``.

    The connector words an HTTP failure the same way at every stage ("SEA HTTP request failed with
    status 400"), so the text cannot tell; its traceback can (also through dbt's wrapping).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    stage: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            stage = _STAGE_FRAMES.get(tb.tb_frame.f_code.co_name, stage)  # the innermost wins
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return stage


def explain(
    names: list[str], text: str, compute: ComputeConfig | None, stage: str | None = None
) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a connector/SDK error, by class name and text, or ``None``.

    ``stage`` (see :func:`failed_stage`), when known, is the operation reported for an error that
    the text alone would put at another stage (an HTTP 400 answered to a statement is no failure to
    open a session).
    """
    explained = _explain(names, text, compute, stage)
    if explained is None or stage is None or explained[0] not in _STAGE_FRAMES.values():
        return explained
    return (stage, *explained[1:])


def _explain(
    names: list[str], text: str, compute: ComputeConfig | None, stage: str | None
) -> tuple[str, str, str] | None:
    first = first_line(text)[:400]
    config = compute.config if compute is not None else {}
    host = str(config.get("host", "<host>"))
    http_path = str(config.get("http_path", "<http_path>"))
    status = _STATUS.search(text)
    code = (status.group("code") or status.group("http") or status.group("bare")) if status else None
    error_code = _ERROR_CODE.search(text)
    sql_code = error_code.group("code") if error_code else None
    auth_type = str(config.get("auth_type", "token"))

    def is_(*wanted: str) -> bool:
        return any(n in names for n in wanted)

    if "invalid_client" in text or ("oauth" in text.lower() and code in ("400", "401")):
        return (
            "authenticate",
            f"the workspace refused the service principal's OAuth credentials: {first}",
            "check client_id and the secret in client_secret (an OAuth secret of that service "
            "principal, starting with dose, not expired)",
        )
    if code in ("401",) or "Invalid access token" in text or "UNAUTHENTICATED" in text:
        fix = (
            "check the token in the secret named by token: not expired or revoked, issued for this workspace"
            if auth_type == "token"
            else "check client_id and client_secret, and that the service principal belongs to this workspace"
        )
        return ("authenticate", f"Databricks rejected the credentials (HTTP 401): {first}", fix)
    if code == "403" or "PERMISSION_DENIED" in text:
        return (
            "open a session",
            f"the principal may not use this warehouse or catalog (HTTP 403): {first}",
            f"grant CAN USE on the SQL warehouse {http_path} and USE CATALOG/USE SCHEMA/CREATE "
            "on the catalog and schema to the principal",
        )
    if sql_code in ("NO_SUCH_CATALOG_EXCEPTION", "CATALOG_NOT_FOUND"):
        return (
            "open a session",
            f"the catalog does not exist or is not visible: {first}",
            "correct catalog (SHOW CATALOGS lists them) or grant USE CATALOG on it",
        )
    if sql_code in ("SCHEMA_NOT_FOUND",):
        return (
            "run SQL",
            f"the schema does not exist: {first}",
            "correct schema, or grant CREATE SCHEMA on the catalog so dbt can create it",
        )
    if sql_code in ("TABLE_OR_VIEW_NOT_FOUND",):
        return ("run SQL", first, "check the name; build upstream models first (dbt run --select +<model>)")
    if sql_code in ("PARSE_SYNTAX_ERROR", "UNRESOLVED_COLUMN") or is_("ServerOperationError"):
        return (
            "run SQL",
            f"Databricks refused the SQL: {first}",
            "fix the SQL at the position shown (Databricks SQL dialect)",
        )
    if code == "400" and stage == "run SQL":
        return (
            "run SQL",
            f"Databricks refused the statement (HTTP 400): {first}",
            "check the statement and its parameters (a dbt model's SQL, or the warehouse's limits on "
            "statement size and result format), and that http_path is a SQL warehouse when use_sea is set",
        )
    if code == "400":
        return (
            "open a session",
            f"Databricks refused the request (HTTP 400): {first}",
            f"check that catalog {config.get('catalog', '(default)')!r} exists and the principal may use "
            "it (SHOW CATALOGS), that schema is a plain name, and that http_path is a SQL warehouse "
            "when use_sea is set",
        )
    if code == "404" or "RESOURCE_DOES_NOT_EXIST" in text or "ENDPOINT_NOT_FOUND" in text:
        return (
            "open a session",
            f"the SQL warehouse or endpoint was not found (HTTP 404): {first}",
            f"check http_path {http_path!r} (SQL warehouse > Connection details) and that host {host} "
            "is this workspace",
        )
    if "Could not extract warehouse ID" in text:
        return (
            "open a session",
            first,
            "use_sea needs a SQL warehouse http_path (/sql/1.0/warehouses/<id>); "
            "remove use_sea for a cluster",
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or is_("SSLError"):
        return (
            "reach Databricks",
            f"the TLS certificate of {host} is not trusted: {first}",
            "check host (a proxy in between needs its CA in the trust store: SSL_CERT_FILE / "
            "REQUESTS_CA_BUNDLE)",
        )
    refused = "refused" in text.lower()
    timed_out = "timed out" in text.lower() or is_(
        "ReadTimeoutError", "Timeout", "ReadTimeout", "TimeoutError"
    )
    unresolved = any(
        m in text
        for m in (
            "Name or service not known",
            "nodename nor servname",
            "Failed to resolve",
            "getaddrinfo failed",
            "Temporary failure in name resolution",
        )
    )
    if (
        refused
        or unresolved
        or (
            not timed_out
            and is_(
                "RequestError",
                "MaxRetryError",
                "NewConnectionError",
                "ConnectionError",
                "OperationalError",
                "MaxRetryDurationError",
            )
        )
    ):
        if refused:
            message = f"the connection to {host} was refused: {first}"
        elif unresolved:
            message = f"the host {host} cannot be resolved: {first}"
        else:
            message = f"the request to {host} failed: {first}"
        return (
            "reach Databricks",
            message,
            "check host (the workspace host name only) and port, and network access from where "
            "dbt runs (DNS, firewall, proxy)",
        )
    if timed_out or is_("ConnectTimeoutError"):
        return (
            "reach Databricks",
            f"no answer from {host} in time: {first}",
            "check network access to the workspace (firewall, proxy, private link) and that the "
            "SQL warehouse is running or set to auto-start",
        )
    if is_("DatabaseError", "Error", "DatabricksError"):
        return (
            "run SQL",
            f"Databricks answered with an error: {first}",
            "see the message; retry if it is transient",
        )
    return None
