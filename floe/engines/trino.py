"""The Trino engine: dbt-trino profiles, and connection checks with the ``trino`` client.

dbt talks to a Trino coordinator over Trino's HTTP client protocol. ``database`` in a dbt-trino
profile is the Trino *catalog*; a data product's Iceberg tables live in the catalog the platform
configured on the coordinator for its Iceberg REST catalog.

Authentication methods (dbt-trino's ``method``):

- ``none``: the user name only (``X-Trino-User``); plain HTTP unless ``http_scheme: https``.
- ``ldap``: user and password (HTTP Basic, checked by Trino's password authenticator: LDAP, file…).
- ``jwt``: a bearer token.
- ``certificate``: a TLS client certificate and key (files mounted into the pod).

Every method but ``none`` needs HTTPS: dbt-trino refuses to send credentials over plain HTTP.
``oauth`` and ``kerberos`` exist in dbt-trino but are not offered: OAuth2 opens a browser (no
browser in a pod), and Kerberos needs ``requests-kerberos`` and a keytab/krb5 setup that floe does
not manage.

Importing this module is cheap: the ``trino`` client, dbt and floe's schema machinery are imported
inside the methods that need them.
"""

from __future__ import annotations

import os
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
    exception_chain,
    first_line,
    quote_identifier,
    quote_literal,
    run_check,
    secret_placeholder,
    secret_value,
    translate_client_error,
)

ENGINE = "trino"
METHODS = ("none", "ldap", "jwt", "certificate")
HTTPS_METHODS = ("ldap", "jwt", "certificate")
DEFAULT_THREADS = 4
DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTPS_PORT = 443
PIP_INSTALL = "pip install 'dbt-trino>=1.11,<1.12' 'trino>=0.330,<1'"
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "500m", "memory": "512Mi"}
_SECRET_KEYS = {"password": "ldap", "jwt_token": "jwt"}
_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class TrinoEngine(ComputePlugin):
    """Trino through dbt-trino: methods none, ldap, jwt and certificate."""

    name: ClassVar[str] = "trino"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "trino"
    description: ClassVar[str] = (
        "A Trino coordinator through dbt-trino; the Iceberg catalog is a Trino catalog."
    )

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/trino.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-trino output; credentials only as ``{{ env_var('NAME') }}``.

        ``verify`` becomes dbt-trino's ``cert`` (``true``/``false`` or a CA bundle path). The
        method is inferred from the credential when not set: a password means ``ldap``, a
        ``jwt_token`` means ``jwt``, a client certificate means ``certificate``.
        """
        settings = checked_settings(compute, "generate_dbt_profile")
        profile: dict[str, Any] = {
            "type": "trino",
            "method": settings.method,
            "host": settings.host,
            "port": settings.port,
            "database": settings.catalog,
            "schema": settings.schema,
            "threads": settings.threads,
        }
        if settings.user is not None:
            profile["user"] = settings.user
        if settings.method == "none":
            profile["http_scheme"] = settings.scheme
        if settings.method == "ldap":
            profile["password"] = secret_placeholder(
                ENGINE, compute.config["password"], compute, "generate_dbt_profile", example="TRINO_PASSWORD"
            )
            if compute.config.get("impersonation_user"):
                profile["impersonation_user"] = str(compute.config["impersonation_user"])
        if settings.method == "jwt":
            profile["jwt_token"] = secret_placeholder(
                ENGINE, compute.config["jwt_token"], compute, "generate_dbt_profile", example="TRINO_JWT"
            )
        if settings.method == "certificate":
            profile["client_certificate"] = str(compute.config["client_certificate_file"])
            profile["client_private_key"] = str(compute.config["client_private_key_file"])
        if settings.verify is not None:
            profile["cert"] = settings.verify
        if settings.session_properties:
            profile["session_properties"] = dict(settings.session_properties)
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-core>=1.11,<1.12", "dbt-trino>=1.11,<1.12", "trino>=0.330,<1"]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Connect as dbt-trino would, run ``SELECT version(), current_user`` and look up the schema.

        Every HTTP request is bounded by what is left of ``timeout`` (and the whole check by a
        hard deadline a little under it). A missing catalog is reported with the catalogs the
        coordinator has; a missing schema is not a failure (dbt creates it).
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, seconds, progress)
            message = (
                f"compute {compute.name!r}: Trino {details['trino_version']} at {details['url']} "
                f"answered as user {details['current_user']}; catalog {details['catalog']} exists"
            )
            if details["schema_exists"]:
                message += f", schema {details['schema']} exists"
            else:
                message += (
                    f"; schema {details['schema']} does not exist yet (dbt creates it on the first run)"
                )
            return message, details

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=lambda progress: (
                f"no answer from {progress.get('url', 'the coordinator')} within {timeout:g} s while "
                f"{progress['stage']}",
                "check host and port, that the coordinator is up and not overloaded, and that no "
                "firewall or proxy silently drops the traffic",
            ),
            fix="check the compute's Trino settings (host, port, http_scheme, method, verify)",
            translate=self.translate_error,
        )

    def _check(self, compute: ComputeConfig, budget: float, progress: dict[str, Any]) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        operation = "validate_connection"
        settings = checked_settings(compute, operation)
        url = f"{settings.scheme}://{settings.host}:{settings.port}"
        details: dict[str, Any] = {
            "url": url,
            "method": settings.method,
            "catalog": settings.catalog,
            "schema": settings.schema,
        }
        progress.update(details=details, url=url)
        progress["stage"] = "importing the trino client"
        try:
            import trino
        except ImportError:
            raise PluginExecutionError(
                ENGINE,
                operation,
                "the trino client is not installed",
                PIP_INSTALL,
                compute=compute.name,
            ) from None
        auth: Any = None
        if settings.method == "ldap":
            password = secret_value(ENGINE, compute.config["password"], compute, operation, what="password")
            auth = trino.auth.BasicAuthentication(settings.user or "", password)
        elif settings.method == "jwt":
            auth = trino.auth.JWTAuthentication(
                secret_value(ENGINE, compute.config["jwt_token"], compute, operation, what="jwt_token")
            )
        elif settings.method == "certificate":
            auth = trino.auth.CertificateAuthentication(
                str(compute.config["client_certificate_file"]),
                str(compute.config["client_private_key_file"]),
            )
        user = settings.user
        if settings.method == "ldap" and compute.config.get("impersonation_user"):
            user = str(compute.config["impersonation_user"])
        progress["stage"] = f"connecting to {url}"
        connection = trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host=settings.host,
            port=settings.port,
            user=user,
            catalog=settings.catalog,
            schema=settings.schema,
            http_scheme=settings.scheme,
            auth=auth,
            verify=settings.verify if settings.verify is not None else True,
            session_properties=dict(settings.session_properties) or None,
            request_timeout=budget,
            max_attempts=1,
            source=f"floe-{__version__}",
        )
        try:
            cursor = connection.cursor()
            progress["stage"] = "running SELECT version(), current_user"
            cursor.execute("SELECT version(), current_user")
            version, current_user = cursor.fetchone() or ("?", "?")
            details.update(trino_version=str(version), current_user=str(current_user))
            progress["stage"] = f"looking up schema {settings.schema} in catalog {settings.catalog}"
            try:
                cursor.execute(schema_lookup_sql(settings.catalog, settings.schema))
                details["schema_exists"] = bool(cursor.fetchall())
            except trino.exceptions.TrinoUserError as exc:
                if exc.error_name != "CATALOG_NOT_FOUND":
                    raise
                progress["stage"] = "listing the catalogs"
                cursor.execute("SHOW CATALOGS")
                catalogs = sorted(str(row[0]) for row in cursor.fetchall())
                details["catalogs"] = catalogs
                raise PluginExecutionError(
                    ENGINE,
                    operation,
                    f"the coordinator at {url} has no catalog {settings.catalog!r} "
                    f"(it has: {', '.join(catalogs) or 'none visible to this user'})",
                    "set database to the Trino catalog of the Iceberg catalog (ask the platform "
                    "team which one), or have it configured on the coordinator",
                    compute=compute.name,
                ) from None
        finally:
            connection.close()
        progress["stage"] = "done"
        return details

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A dbt client pod: the work runs on the Trino cluster, so little CPU and memory.

        requests ``cpu: 100m, memory: 256Mi``; limits ``cpu: 500m, memory: 512Mi`` (``1Gi`` with
        more than 8 dbt threads, each holding result pages in memory).
        """
        limits = dict(DEFAULT_LIMITS)
        if int(compute.config.get("threads", DEFAULT_THREADS)) > 8:
            limits["memory"] = "1Gi"
        return {"requests": dict(DEFAULT_REQUESTS), "limits": limits}

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: Trino reaches Iceberg through a catalog configured on the coordinator.

        A Trino catalog is server configuration (a properties file with ``connector.name=iceberg``,
        ``iceberg.catalog.type=rest`` and ``iceberg.rest-catalog.uri``, or an administrator's
        ``CREATE CATALOG`` when dynamic catalog management is on), shared by every user of the
        cluster. A dbt session cannot attach one, so the compute names that catalog in
        ``database`` instead.
        """
        return None

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Its own warehouse (see :meth:`get_catalog_attachment_sql`): ``floe plan`` refuses a ref
        between its transforms and those of another compute."""
        return CatalogAccess.own_warehouse(
            "Trino reaches Iceberg through a catalog configured on the coordinator, not per session; its "
            "transforms build in the Trino catalog the compute names in database"
        )

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a trino client error (also one dbt-trino wrapped), else ``None``."""
        return translate_client_error(ENGINE, error, compute, _trino_error, _translate)


plugin = TrinoEngine()
"""The instance the ``floe`` entry point ``trino = floe.engines.trino:plugin`` names."""


def schema_lookup_sql(catalog: str, schema: str) -> str:
    """The query that tells whether ``schema`` exists in the Trino catalog ``catalog``.

    Trino folds unquoted names to lower case, so the schema is looked up in lower case. Trino's
    literals are standard SQL (a backslash is not special), so :func:`quote_literal` holds any value.
    """
    return (
        f"SELECT schema_name FROM {quote_identifier(catalog)}.information_schema.schemata "
        f"WHERE schema_name = {quote_literal(schema.lower())}"
    )


# -- settings --------------------------------------------------------------------------------------


class Settings:
    """The compute's settings with defaults applied and combinations checked."""

    def __init__(self, compute: ComputeConfig, operation: str) -> None:
        config = compute.config

        def fail(message: str, fix: str) -> PluginExecutionError:
            return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

        for key in ("host", "database", "schema"):
            if not config.get(key):
                raise fail(f"{key} is not set", f"set {key} in the compute's config")
        self.host = str(config["host"])
        self.catalog = str(config["database"])
        self.schema = str(config["schema"])
        self.threads = int(config.get("threads", DEFAULT_THREADS))
        inferred = [m for k, m in _SECRET_KEYS.items() if config.get(k) is not None]
        if config.get("client_certificate_file") or config.get("client_private_key_file"):
            inferred.append("certificate")
        method = str(config.get("method") or (inferred[0] if len(inferred) == 1 else "none"))
        if method not in METHODS:
            raise fail(f"method {method!r} is not supported", f"use one of {', '.join(METHODS)}")
        for key, needs in _SECRET_KEYS.items():
            value = config.get(key)
            if value is None:
                continue
            if not isinstance(value, SecretReference):
                raise fail(
                    f"{key} must be a secret reference, not a value",
                    f"write {key}: {{secret_ref: NAME}} and set NAME in the environment",
                )
            if method != needs:
                raise fail(
                    f"{key} is set but method is {method}",
                    f"set method: {needs} to use {key}, or remove {key}",
                )
        if method == "certificate" and not (
            config.get("client_certificate_file") and config.get("client_private_key_file")
        ):
            raise fail(
                "method certificate needs client_certificate_file and client_private_key_file",
                "set both to the paths of the PEM files mounted into the pod",
            )
        if method != "certificate" and (
            config.get("client_certificate_file") or config.get("client_private_key_file")
        ):
            raise fail(
                f"client certificate files are set but method is {method}",
                "set method: certificate, or remove client_certificate_file/client_private_key_file",
            )
        if method == "ldap" and config.get("password") is None:
            raise fail("method ldap needs a password", "set password: {secret_ref: NAME}")
        if method == "jwt" and config.get("jwt_token") is None:
            raise fail("method jwt needs a jwt_token", "set jwt_token: {secret_ref: NAME}")
        if method in ("none", "ldap") and not config.get("user"):
            raise fail(f"method {method} needs a user", "set user to the Trino user dbt runs as")
        self.method = method
        self.user = str(config["user"]) if config.get("user") else None
        scheme = str(config.get("http_scheme") or ("https" if method in HTTPS_METHODS else "http"))
        if method in HTTPS_METHODS and scheme != "https":
            raise fail(
                f"method {method} sends credentials, which dbt-trino does only over HTTPS",
                "set http_scheme: https (the coordinator must serve TLS)",
            )
        self.scheme = scheme
        default_port = DEFAULT_HTTPS_PORT if scheme == "https" else DEFAULT_HTTP_PORT
        self.port = int(config.get("port", default_port))
        verify = config.get("verify")
        self.verify: bool | str | None = verify if isinstance(verify, bool) or verify is None else str(verify)
        self.session_properties: Mapping[str, Any] = config.get("session_properties") or {}
        for key in self.session_properties:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", str(key)):
                raise fail(
                    f"session property {key!r} is not a Trino session property name",
                    "use names like query_max_run_time or iceberg.compression_codec",
                )


def checked_settings(compute: ComputeConfig, operation: str) -> Settings:
    """The compute's :class:`Settings`, checked for ``operation`` (its errors name it)."""
    return Settings(compute, operation)


# -- error translation -----------------------------------------------------------------------------

_QUERY_ERROR = re.compile(
    r"Trino\w*Error\(type=(?P<type>\w+), name=(?P<name>\w+), message=\"(?P<message>.*?)\"", re.S
)
_HTTP_STATUS = re.compile(r"\berror (?P<code>[1-5][0-9]{2})\b(?::\s*(?P<body>.*))?", re.S)


def _is_trino_class(cls: type) -> bool:
    module = cls.__module__ or ""
    return module == "trino" or module.startswith("trino.")


def _trino_error(error: BaseException) -> tuple[list[str], str] | None:
    """Class names and text of the trino client error in ``error`` or its causes.

    dbt-trino re-raises client errors as dbt errors keeping only the text (``DbtDatabaseError``,
    ``FailedToConnectError``): such a text counts when it carries the client's own wording.
    """
    for current in exception_chain(error):
        if any(_is_trino_class(c) for c in type(current).__mro__):
            return [c.__name__ for c in type(current).__mro__], str(current)
    text = str(error)
    module = type(error).__module__ or ""
    if module.startswith("dbt") and (
        _QUERY_ERROR.search(text)
        or "failed to execute:" in text
        or _HTTP_STATUS.search(text)
        or "Failed to establish a new connection" in text
    ):
        return [], text
    return None


def _method_of(compute: ComputeConfig | None) -> str | None:
    if compute is None:
        return None
    try:
        return checked_settings(compute, "translate_error").method
    except PluginExecutionError:
        return None


def _where(compute: ComputeConfig | None) -> str:
    if compute is None or not compute.config.get("host"):
        return "the Trino coordinator"
    try:
        settings = checked_settings(compute, "translate_error")
    except PluginExecutionError:
        return str(compute.config["host"])
    return f"{settings.scheme}://{settings.host}:{settings.port}"


def _secret_name(compute: ComputeConfig | None, key: str) -> str:
    ref = compute.config.get(key) if compute is not None else None
    return f"the secret {ref.name}" if isinstance(ref, SecretReference) else f"the {key}"


def _translate(classes: list[str], text: str, compute: ComputeConfig | None) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a trino client error, or ``None`` when not recognised."""
    first = first_line(text)
    where = _where(compute)
    if query := _QUERY_ERROR.search(text):
        return _query_error(query["type"], query["name"], query["message"])
    if "TrinoAuthError" in classes or "TLS/SSL is required for authentication" in text:
        return (
            "authentication",
            f"the trino client refused to send credentials: {first[:200]}",
            "use https (http_scheme: https, and the coordinator's HTTPS port) with ldap, jwt or certificate",
        )
    if (status := _HTTP_STATUS.search(text)) and (
        {"HttpError", "Http502Error", "Http503Error", "Http504Error"} & set(classes) or not classes
    ):
        code = int(status["code"])
        body = (status["body"] or "").strip().removeprefix("b'").removesuffix("'")[:200]
        if code == 401:
            method = _method_of(compute)
            fix = {
                "ldap": f"check user and the password in {_secret_name(compute, 'password')}",
                "jwt": f"check that the token in {_secret_name(compute, 'jwt_token')} is valid, "
                "unexpired and issued for this coordinator",
                "certificate": "check that the client certificate is signed by a CA the coordinator trusts",
            }.get(
                method or "",
                "the coordinator requires authentication: set method (ldap, jwt or "
                "certificate) and its credential",
            )
            user = (
                f" of user {compute.config['user']}"
                if compute is not None and compute.config.get("user")
                else ""
            )
            return (
                "authentication",
                f"{where} rejected the credentials{user} (HTTP 401{': ' + body if body else ''})",
                fix,
            )
        if code == 403:
            return (
                "authorization",
                f"{where} denied access (HTTP 403{': ' + body if body else ''})",
                "ask the Trino administrators to allow this user (and impersonation, if used)",
            )
        if code == 404:
            return (
                "connect",
                f"{where} answered HTTP 404 for the statement API: it is not a Trino coordinator",
                "check host and port: they must reach the coordinator, "
                "not the web UI behind a proxy path or another service",
            )
        if code in (502, 503, 504):
            return (
                "connect",
                f"{where} is unavailable (HTTP {code})",
                "the coordinator (or a proxy in front of it) is down or restarting: retry "
                "later, or ask the platform team",
            )
        return (
            "connect",
            f"{where} answered HTTP {code}: {body or first[:200]}",
            "check host, port and http_scheme",
        )
    lowered = text.lower()
    if "certificate verify failed" in lowered or "certificateverificationerror" in lowered:
        fix = (
            "set verify to the path of the CA bundle that signed the coordinator's certificate "
            "(or fix the certificate's host names)"
        )
        overriding = [name for name in _CA_ENV if os.environ.get(name)]
        if overriding:
            fix += (
                f"; note that {' and '.join(overriding)} is set in this environment, and "
                "requests then uses that bundle instead of verify: unset it or add the CA to it"
            )
        return (
            "connect over TLS",
            f"the TLS certificate of {where} was not accepted: {_ssl_reason(text)}",
            fix,
        )
    if (
        "wrong version number" in lowered
        or "record layer failure" in lowered
        or "unknown protocol" in lowered
    ):
        return (
            "connect over TLS",
            f"{where} does not speak HTTPS on this port",
            "use the coordinator's HTTPS port, or http_scheme: http with method none",
        )
    if "connection refused" in lowered or "errno 111" in lowered:
        return (
            "connect",
            f"nothing accepts connections at {where} (connection refused)",
            "check host and port (Trino listens on 8080 for HTTP, 443 or 8443 for HTTPS by "
            "default) and that the coordinator is running",
        )
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "failed to resolve" in lowered
        or "name resolution" in lowered
    ):
        return (
            "connect",
            f"the host name of {where} cannot be resolved",
            "check host (DNS name of the coordinator) and the pod's DNS",
        )
    if "timed out" in lowered or "timeout" in lowered:
        return (
            "connect",
            f"{where} did not answer in time",
            "check that the coordinator is up and reachable, and that no firewall drops the traffic",
        )
    if (
        "remotedisconnected" in lowered
        or "connection aborted" in lowered
        or "badstatusline" in lowered
        or "connection reset" in lowered
    ):
        return (
            "connect",
            f"{where} closed the connection without an HTTP answer",
            "check http_scheme (https against an HTTPS port) and port",
        )
    if "TrinoConnectionError" in classes or "failed to execute" in lowered or "failed to fetch" in lowered:
        return (
            "connect",
            f"the connection to {where} failed: {first[:200]}",
            "check host, port, http_scheme and the network between floe and the coordinator",
        )
    return None


def _ssl_reason(text: str) -> str:
    match = re.search(r"certificate verify failed: ([^(\]']+)", text)
    return match[1].strip() if match else "certificate verify failed"


_QUERY_FIXES: dict[str, tuple[str, str]] = {
    "CATALOG_NOT_FOUND": ("run SQL", "set database to an existing Trino catalog (SHOW CATALOGS lists them)"),
    "SCHEMA_NOT_FOUND": (
        "run SQL",
        "check the schema name; dbt creates its own schema, so a missing one "
        "is usually a source or another model's schema",
    ),
    "TABLE_NOT_FOUND": (
        "run SQL",
        "check the name; if it is a model, build it first (dbt run --select "
        "+<model>); if it is a source, check that the table exists",
    ),
    "COLUMN_NOT_FOUND": ("run SQL", "check the column names against the upstream model's columns"),
    "SYNTAX_ERROR": ("parse SQL", "fix the SQL at the position shown (Trino's SQL dialect)"),
    "FUNCTION_NOT_FOUND": ("run SQL", "use a function Trino has (SHOW FUNCTIONS), or fix its arguments"),
    "TYPE_MISMATCH": ("run SQL", "cast the values to matching types"),
    "PERMISSION_DENIED": (
        "authorization",
        "ask the Trino administrators to grant the access, or use another catalog/schema",
    ),
    "ACCESS_DENIED": ("authorization", "ask the Trino administrators to grant the access"),
    "NOT_SUPPORTED": (
        "run SQL",
        "the catalog's connector does not support this operation: change "
        "the materialization or use another catalog",
    ),
    "EXCEEDED_TIME_LIMIT": (
        "run a query",
        "make the query cheaper, or ask for a higher query_max_run_time (session_properties)",
    ),
    "EXCEEDED_LOCAL_MEMORY_LIMIT": (
        "run a query",
        "reduce the data the query holds in memory, or ask the administrators to raise query.max-memory",
    ),
    "EXCEEDED_GLOBAL_MEMORY_LIMIT": (
        "run a query",
        "reduce the data the query holds in memory, or ask the administrators to raise query.max-memory",
    ),
    "INVALID_SESSION_PROPERTY": (
        "apply session properties",
        "correct or remove the key under session_properties (SHOW SESSION lists them)",
    ),
}


def _query_error(kind: str, name: str, message: str) -> tuple[str, str, str]:
    operation, fix = _QUERY_FIXES.get(name, ("run SQL", ""))
    if not fix:
        fix = (
            "the coordinator or a connector failed: retry, and report it to the Trino "
            "administrators with the query id"
            if kind in ("INTERNAL_ERROR", "EXTERNAL")
            else "correct the SQL or the settings named in the message"
        )
    if name.startswith("EXCEEDED_") and name not in _QUERY_FIXES:
        operation, fix = "run a query", "reduce the query's resource use or ask for higher limits"
    return operation, f"Trino {name}: {first_line(message)[:300]}", fix
