"""The Snowflake engine: dbt-snowflake profiles, and checks made with the Snowflake connector.

Four ways to log in, the ones dbt-snowflake users actually use, chosen by ``method`` (or inferred
from the credential that is set):

- ``password``: ``user`` and ``password``;
- ``keypair``: ``user`` and an RSA key, from ``private_key_path`` or ``private_key`` (PEM or
  base64 DER), with an optional ``private_key_passphrase``;
- ``oauth``: an OAuth access ``token``;
- ``externalbrowser``: SSO through a browser for ``user``; no secret, interactive.

Every credential is a secret reference, written into the profile as ``{{ env_var('NAME') }}`` and
read from the environment only by :meth:`SnowflakeEngine.validate_connection`.

Importing this module is cheap: the connector, cryptography, dbt and floe's schema machinery are
imported inside the methods that need them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from floe import __version__
from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Progress,
    Relation,
    SecretReference,
    ValidationResult,
    engine_error,
    exception_chain,
    first_line,
    quote_backslash_literal,
    quote_identifier,
    run_check,
    secret_reference,
    secret_value,
)

if TYPE_CHECKING:
    import pyarrow

ENGINE = "snowflake"
DEFAULT_THREADS = 4
DEFAULT_PORT = 443
DEFAULT_PROTOCOL = "https"
METHODS = ("password", "keypair", "oauth", "externalbrowser")
SECRET_KEYS = ("password", "private_key", "private_key_passphrase", "token")
_METHOD_KEYS: dict[str, frozenset[str]] = {
    "password": frozenset({"password"}),
    "keypair": frozenset({"private_key", "private_key_path", "private_key_passphrase"}),
    "oauth": frozenset({"token"}),
    "externalbrowser": frozenset(),
}
"""The credential keys each method may use; the others are refused so that none is ignored."""
_CREDENTIAL_KEYS = frozenset().union(*_METHOD_KEYS.values())

DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "1", "memory": "1Gi"}
"""dbt only sends SQL to Snowflake; the pod holds Python, dbt's manifest and result sets.

Measured here: ``dbt run`` of a two-model project through dbt-snowflake peaks at about 235 MB; a
large project's manifest adds hundreds of MB and parsing it is CPU-bound, hence limits of one CPU
and 1Gi.
"""

PIP_INSTALL = "pip install 'dbt-snowflake>=1.11,<1.13' 'snowflake-connector-python>=3.12,<5'"
_DOMAIN = ".snowflakecomputing.com"
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
_UNQUOTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")






class SnowflakeEngine(ComputePlugin):
    """Snowflake through dbt-snowflake; validation with snowflake-connector-python."""

    name: ClassVar[str] = "snowflake"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "snowflake"
    description: ClassVar[str] = (
        "Snowflake through dbt-snowflake: password, key pair, OAuth or browser SSO logins."
    )

    # -- configuration --------------------------------------------------------------------------

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/snowflake.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-snowflake output: account, user, role, database, warehouse, schema, credentials.

        ``authenticator`` is ``oauth`` or ``externalbrowser`` for those methods and absent for
        password and key pair (dbt-snowflake picks key-pair authentication from the key). A
        relative ``private_key_path`` is made absolute against the project directory.

        :raises PluginExecutionError: the settings are inconsistent (see :func:`check_settings`).
        """
        method = check_settings(compute, "generate_dbt_profile")
        config = compute.config
        profile: dict[str, Any] = {
            "type": "snowflake",
            "account": str(config["account"]),
            "database": str(config["database"]),
            "warehouse": str(config["warehouse"]),
            "schema": schema_name(compute, target),
            "threads": int(config.get("threads", DEFAULT_THREADS)),
        }
        for key in ("user", "role", "query_tag", "host", "protocol"):
            if config.get(key) is not None:
                profile[key] = str(config[key])
        for key in ("port", "connect_timeout"):
            if config.get(key) is not None:
                profile[key] = int(config[key])
        if config.get("client_session_keep_alive") is not None:
            profile["client_session_keep_alive"] = bool(config["client_session_keep_alive"])
        if method in ("oauth", "externalbrowser"):
            profile["authenticator"] = method
        for key in SECRET_KEYS:
            ref = config.get(key)
            if isinstance(ref, SecretReference):
                profile[key] = ref.as_env_var()
        if config.get("private_key_path") is not None:
            profile["private_key_path"] = key_path(compute, target)
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        """dbt, dbt-snowflake and the connector floe validates with (the versions floe tests)."""
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-snowflake>=1.11,<1.13",
            "snowflake-connector-python>=3.12,<5",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Log in with the Snowflake connector as dbt would, then use the warehouse and database.

        Steps: check the settings and secrets; log in (account, user, role, credentials); read
        ``current_version()``; ``USE WAREHOUSE``; ``USE DATABASE``; look the schema up (a missing
        schema is fine: dbt creates it). Each step that fails says what to fix.

        The connector's login, socket and network timeouts are set to the time left, its retries
        do not wait, platform detection (cloud metadata probes) and client telemetry are off, and
        the whole check runs under a hard deadline, so a refused port fails at once and a silent
        server within ``timeout``. OCSP stays in the connector's default fail-open mode (it applies
        to https only). ``externalbrowser`` cannot log in unattended: the check asks the account
        for its SSO login URL instead, which proves the account, the network and the SSO setup.
        """
        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, target, seconds, progress)
            return _success_message(compute, details), details

        def no_answer(progress: Progress) -> tuple[str, str]:
            where = endpoint(compute)
            return (f"Snowflake at {where} did not answer within {timeout:g} s while {progress['stage']}",
                    f"check that {where} is reachable from here (network, firewall, proxy, private "
                    "link) and that the warehouse is not queued; then retry")  # fmt: skip

        return run_check(
            ENGINE, compute, timeout, check, no_answer=no_answer,
            fix="check the compute's Snowflake settings against the message",
            translate=self.translate_error,
        )  # fmt: skip

    def _check(
        self, compute: ComputeConfig, target: ProfileTarget, budget: float, progress: dict[str, Any]
    ) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        operation = "validate_connection"
        details: dict[str, Any] = progress["details"]
        method = check_settings(compute, operation)
        config = compute.config
        details.update(method=method, account=str(config["account"]), endpoint=endpoint(compute))
        seconds = max(1, int(budget))
        if method == "externalbrowser":
            progress["stage"] = f"asking {endpoint(compute)} for the SSO login URL"
            details.update(_probe_sso(compute, seconds))
            return details

        arguments = self._connect_arguments(compute, target, method, seconds, progress)
        progress["stage"] = "importing snowflake-connector-python"
        try:
            import snowflake.connector
        except ImportError:
            raise PluginExecutionError(
                ENGINE,
                operation,
                "snowflake-connector-python is not installed",
                PIP_INSTALL,
                compute=compute.name,
            ) from None

        progress["stage"] = f"logging in to {endpoint(compute)}"
        connection = snowflake.connector.connect(**arguments)
        try:
            cursor = connection.cursor()
            progress["stage"] = "reading the server version"
            cursor.execute("select current_version(), current_role(), current_user()")
            row = cursor.fetchone()
            if row is not None:
                details.update(version=str(row[0]), role=str(row[1]), user=str(row[2]))
            warehouse = str(config["warehouse"])
            progress["stage"] = f"using the warehouse {warehouse}"
            self._use(cursor, "WAREHOUSE", warehouse, compute, details)
            database = str(config["database"])
            progress["stage"] = f"using the database {database}"
            self._use(cursor, "DATABASE", database, compute, details)
            details.update(warehouse=warehouse, database=database)
            schema = schema_name(compute, target)
            progress["stage"] = f"looking up the schema {schema}"
            details.update(schema=schema, schema_exists=_schema_exists(cursor, database, schema))
        except BaseException:
            with contextlib.suppress(Exception):  # the step's error is the one to report
                connection.close()
            raise
        progress["stage"] = "closing the session"
        connection.close()
        progress["stage"] = "done"
        return details

    def _use(
        self, cursor: Any, kind: str, name: str, compute: ComputeConfig, details: Mapping[str, Any]
    ) -> None:
        """``USE <kind> <name>``: a missing object or a missing grant becomes a clear message."""
        from snowflake.connector.errors import ProgrammingError

        try:
            cursor.execute(f"USE {kind} {sql_identifier(name)}")
        except ProgrammingError as exc:
            role = details.get("role") or compute.config.get("role") or "the user's default role"
            noun = kind.lower()
            listing = "SHOW WAREHOUSES" if kind == "WAREHOUSE" else "SHOW DATABASES"
            raise PluginExecutionError(
                ENGINE,
                "validate_connection",
                f"the {noun} {name} does not exist or role {role} may not use it "
                f"(Snowflake {_code(exc)}: {first_line(str(getattr(exc, 'raw_msg', None) or exc))})",
                f"correct {noun} in the compute's settings (see {listing}), or ask an "
                f"administrator to GRANT USAGE ON {kind} {name} TO ROLE {role}",
                compute=compute.name,
                cause=type(exc).__name__,
            ) from None

    def _connect_arguments(
        self,
        compute: ComputeConfig,
        target: ProfileTarget,
        method: str,
        seconds: int,
        progress: dict[str, Any],
    ) -> dict[str, Any]:
        """``snowflake.connector.connect`` arguments: the profile's login, bounded by ``seconds``."""
        operation = "validate_connection"
        config = compute.config
        arguments: dict[str, Any] = {
            "account": str(config["account"]).replace("_", "-"),  # as dbt-snowflake does
            "application": "floe",
            "autocommit": True,
            "login_timeout": seconds,
            "network_timeout": seconds,
            "socket_timeout": seconds,
            "backoff_policy": _no_backoff,
            "platform_detection_timeout_seconds": 0.0,
            "ocsp_fail_open": True,
            "client_store_temporary_credential": False,
            "client_request_mfa_token": False,
            "session_parameters": {
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
                "CLIENT_TELEMETRY_ENABLED": False,
            },
        }
        for key in ("user", "role", "host", "protocol"):
            if config.get(key) is not None:
                arguments[key] = str(config[key])
        if config.get("port") is not None:
            arguments["port"] = int(config["port"])
        if config.get("query_tag"):
            arguments["session_parameters"]["QUERY_TAG"] = str(config["query_tag"])
        if method == "password":
            arguments["password"] = secret_value(ENGINE, config["password"], compute, operation)
        elif method == "oauth":
            arguments["authenticator"] = "oauth"
            arguments["token"] = secret_value(ENGINE, config["token"], compute, operation)
        elif method == "keypair":
            progress["stage"] = "reading the private key"
            arguments["private_key"] = private_key_der(compute, target, operation)
        return arguments

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A small pod: dbt compiles and sends SQL, Snowflake's warehouse does the work.

        Requests ``cpu: 100m, memory: 256Mi``; limits ``cpu: 1, memory: 1Gi`` (see
        :data:`DEFAULT_LIMITS`).
        """
        return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: Snowflake reaches an Iceberg catalog through account objects, not session SQL.

        An account administrator creates a ``CATALOG INTEGRATION`` (``CATALOG_SOURCE =
        ICEBERG_REST``) and an ``EXTERNAL VOLUME`` once, with privileges dbt's role does not
        have; tables then name them (dbt-snowflake's ``table_format='iceberg'``,
        ``external_volume``, ``catalog`` configs). Nothing is run per connection.
        """
        return None

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Its own warehouse (see :meth:`get_catalog_attachment_sql`), bridged: floe carries a model
        between the catalog and the compute's database through the connector
        (:mod:`floe.engines.snowflake_bridge`)."""
        return CatalogAccess.bridged(
            "Snowflake reaches an Iceberg catalog through a catalog integration and an external volume an"
            " account administrator creates once; floe attaches nothing per session, so its transforms "
            "build in the compute's database, and floe carries tables in and out through the connector "
            "(Arrow results; Parquet, PUT and COPY INTO)"
        )

    def read_arrow(self, compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
        """The relation's rows as Arrow, through the connector."""
        from floe.engines import snowflake_bridge

        return snowflake_bridge.read_arrow(compute, relation)

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
        """``data`` through Parquet, a temporary stage and ``COPY INTO`` a staging table swapped in."""
        from floe.engines import snowflake_bridge

        return snowflake_bridge.load_arrow(compute, relation, data)

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a Snowflake connector error (also one dbt wrapped), else ``None``.

        Classes are matched by module and name, so nothing is imported. The cause chain is read
        for the network reason (refused, unknown host, timeout, TLS).
        """
        found = _snowflake_error(error)
        if found is None:
            return None
        translated = _translate(found, error, compute)
        if translated is None:
            return None
        return engine_error(ENGINE, compute, translated, cause=first_line(found.text))


plugin = SnowflakeEngine()
"""The instance the ``floe`` entry point ``snowflake = floe.engines.snowflake:plugin`` names."""


# -- settings, shared by the profile and the validation -------------------------------------------


def check_settings(compute: ComputeConfig, operation: str) -> str:
    """The login method, once the settings are known to be consistent.

    Checks what dbt-snowflake or the connector would only report later, or never: the account
    is an identifier (not a URL or a host name), ``host`` has no protocol or port, every
    credential is a secret reference, the method has what it needs, and no credential of
    another method is set (it would be ignored silently).

    :raises PluginExecutionError: with the setting to fix.
    """
    config = compute.config

    def fail(message: str, fix: str) -> PluginExecutionError:
        return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

    for key in ("account", "database", "warehouse"):
        if not config.get(key):
            raise fail(f"{key} is not set", f"set {key} in the compute's settings (dbt-snowflake needs it)")
    account = str(config["account"])
    if "://" in account or account.lower().endswith(_DOMAIN) or not _ACCOUNT.match(account):
        bare = account.split("://")[-1].split("/")[0]
        bare = bare[: -len(_DOMAIN)] if bare.lower().endswith(_DOMAIN) else bare
        raise fail(
            f"account {account!r} is not an account identifier",
            f"write only the identifier, such as {bare or 'myorg-myaccount'!r} (orgname-accountname "
            "or locator.region), without https:// and .snowflakecomputing.com; put a private "
            "endpoint's name in host",
        )
    host = config.get("host")
    if host is not None and not _HOST.match(str(host)):
        raise fail(
            f"host {host!r} is not a host name",
            "write the bare name (such as myaccount.privatelink.snowflakecomputing.com), with the "
            "port in port and http/https in protocol",
        )
    protocol = config.get("protocol")
    if protocol is not None and protocol not in ("http", "https"):
        raise fail(f"protocol {protocol!r} is neither https nor http", "use https (or http for an emulator)")
    for key in SECRET_KEYS:
        secret_reference(ENGINE, compute, key, operation, example="SNOWFLAKE_PASSWORD")
    method = _method(compute, fail)
    others = sorted(k for k in _CREDENTIAL_KEYS - _METHOD_KEYS[method] if config.get(k) is not None)
    if others:
        raise fail(
            f"method {method} does not use {', '.join(others)}",
            f"remove {', '.join(others)}, or set method to the one that uses them",
        )
    if method != "oauth" and not config.get("user"):
        raise fail(f"method {method} needs user", "set user to the Snowflake login name")
    if method == "password" and config.get("password") is None:
        raise fail("method password needs password", "set password: {secret_ref: NAME}")
    if method == "oauth" and config.get("token") is None:
        raise fail("method oauth needs token", "set token: {secret_ref: NAME} (an OAuth access token)")
    if method == "keypair":
        given = [k for k in ("private_key_path", "private_key") if config.get(k) is not None]
        if len(given) != 1:
            raise fail(
                "method keypair needs exactly one of private_key_path and private_key"
                + (" (both are set)" if given else ""),
                "set private_key_path to the PEM file, or private_key: {secret_ref: NAME}",
            )
    return method


def _method(compute: ComputeConfig, fail: Callable[[str, str], PluginExecutionError]) -> str:
    config = compute.config
    method = config.get("method")
    if method is not None:
        if method not in METHODS:
            raise fail(f"method {method!r} is not supported", f"use one of {', '.join(METHODS)}")
        return str(method)
    if config.get("token") is not None:
        return "oauth"
    if config.get("private_key") is not None or config.get("private_key_path") is not None:
        return "keypair"
    if config.get("password") is not None:
        return "password"
    raise fail(
        "no credential is set",
        "set method and its credential: password (user, password), keypair (user, "
        "private_key_path or private_key), oauth (token) or externalbrowser (user)",
    )


def schema_name(compute: ComputeConfig, target: ProfileTarget) -> str:
    """``schema``, or the data product's name made an unquoted identifier (``orders-eu`` → ``orders_eu``)."""
    configured = compute.config.get("schema")
    if configured:
        return str(configured)
    name = re.sub(r"[^A-Za-z0-9_]", "_", target.product) or "floe"
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def key_path(compute: ComputeConfig, target: ProfileTarget) -> str:
    """``private_key_path`` made absolute against the project directory (``~`` expanded)."""
    path = Path(str(compute.config["private_key_path"])).expanduser()
    return str(path if path.is_absolute() else (target.project_dir / path).absolute())


def endpoint(compute: ComputeConfig) -> str:
    """``protocol://host:port`` the connector talks to."""
    config = compute.config
    account = str(config.get("account", "")).replace("_", "-")
    host = str(config.get("host") or f"{account}{_DOMAIN}")
    protocol = str(config.get("protocol") or DEFAULT_PROTOCOL)
    port = int(config.get("port") or DEFAULT_PORT)
    return f"{protocol}://{host}:{port}"


def sql_identifier(name: str) -> str:
    """``name`` as Snowflake resolves it in a profile: unquoted names are upper case.

    ``analytics`` → ``"ANALYTICS"``; a name that is not a plain identifier (``my-db``) or is
    written with quotes (``"MixedCase"``) keeps its case.
    """
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return quote_identifier(name[1:-1].replace('""', '"'))
    return quote_identifier(name.upper() if _UNQUOTED.match(name) else name)


def private_key_der(compute: ComputeConfig, target: ProfileTarget, operation: str) -> bytes:
    """The key-pair private key as unencrypted PKCS#8 DER, loaded the way dbt-snowflake loads it.

    :raises PluginExecutionError: the file is missing, the key is not a key, or the passphrase
        is missing, superfluous or wrong. Messages never hold the key or the passphrase.
    """
    config = compute.config

    def fail(message: str, fix: str) -> PluginExecutionError:
        return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        raise fail("the cryptography package is not installed", PIP_INSTALL) from None
    passphrase_ref = config.get("private_key_passphrase")
    passphrase = (
        secret_value(ENGINE, passphrase_ref, compute, operation).encode()
        if isinstance(passphrase_ref, SecretReference)
        else None
    )
    if config.get("private_key_path") is not None:
        path = key_path(compute, target)
        where = f"the private key file {path}"
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise fail(
                f"cannot read {where}: {exc.strerror or type(exc).__name__}",
                "correct private_key_path, or make the file readable by the user floe runs as",
            ) from None
        is_pem = True
    else:
        ref = config["private_key"]
        where = f"the private key in {ref.name}"
        text = secret_value(ENGINE, ref, compute, operation).strip()
        is_pem = text.startswith("-")
        try:
            data = text.encode() if is_pem else base64.b64decode(text, validate=True)
        except ValueError:
            raise fail(
                f"{where} is neither PEM nor base64-encoded DER",
                f"put the PEM text (-----BEGIN PRIVATE KEY-----…) or base64 DER into {ref.name}",
            ) from None
    load = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = load(data, password=passphrase)
    except TypeError as exc:  # a passphrase is missing, or given for an unencrypted key
        if "not encrypted" in str(exc):
            raise fail(
                f"{where} is not encrypted but private_key_passphrase is set",
                "remove private_key_passphrase",
            ) from None
        raise fail(
            f"{where} is encrypted and no passphrase is given",
            "set private_key_passphrase: {secret_ref: NAME} to the key's passphrase",
        ) from None
    except ValueError as exc:
        lowered = str(exc).lower()
        if passphrase is not None and any(
            t in lowered for t in ("incorrect password", "could not decrypt", "bad decrypt")
        ):
            raise fail(
                f"{where} could not be decrypted with private_key_passphrase",
                "check the value of the passphrase secret",
            ) from None
        raise fail(
            f"{where} is not a private key that can be read ({first_line(str(exc))})",
            "use the PKCS#8 PEM key registered with ALTER USER … SET RSA_PUBLIC_KEY "
            "(openssl pkcs8 -topk8 -in rsa_key.p8 converts older formats)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises its own classes for odd keys
        raise fail(
            f"{where} could not be loaded ({type(exc).__name__})",
            "re-create the key as PKCS#8 PEM: openssl pkcs8 -topk8 -v2 aes256 -in old.pem -out new.p8",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise fail(
            f"{where} is a {type(key).__name__.removeprefix('_')}, not an RSA key",
            "Snowflake key-pair logins need an RSA key (2048 bits or more): "
            "openssl genrsa 2048 | openssl pkcs8 -topk8 -v2 aes256 -out rsa_key.p8",
        )
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


# -- validation helpers ----------------------------------------------------------------------------


def _no_backoff() -> Iterator[int]:
    """The connector's backoff policy for validation: retry without waiting (time is bounded)."""
    while True:
        yield 0



def _schema_exists(cursor: Any, database: str, schema: str) -> bool:
    """Whether ``database.schema`` exists (compared exactly: ``LIKE`` treats ``_`` as a wildcard)."""
    wanted = stored_name(schema)
    rows = cursor.execute(_schemas_like(database, wanted)).fetchall()
    names = {str(row[1]) for row in rows if len(row) > 1}
    return wanted in names or (bool(_UNQUOTED.match(schema)) and wanted in {n.upper() for n in names})


def schema_lookup_sql(database: str, schema: str) -> str:
    """``SHOW TERSE SCHEMAS LIKE '<schema>' IN DATABASE "<database>"``, as the check runs it.

    The pattern is a backslash-escaped literal: Snowflake reads backslash escapes in strings, so
    a standard literal of a schema ending in ``\\`` would swallow the rest of the statement.
    """
    return _schemas_like(database, stored_name(schema))


def stored_name(name: str) -> str:
    """``name`` as Snowflake stores it: :func:`sql_identifier` without its quotes."""
    return sql_identifier(name)[1:-1].replace('""', '"')


def _schemas_like(database: str, stored: str) -> str:
    """:func:`schema_lookup_sql` for a schema name already resolved by :func:`stored_name`."""
    return (
        f"SHOW TERSE SCHEMAS LIKE {quote_backslash_literal(stored)} "
        f"IN DATABASE {sql_identifier(database)}"
    )


def _probe_sso(compute: ComputeConfig, seconds: int) -> dict[str, Any]:
    """Ask the account for the SSO URL, the first step of an externalbrowser login.

    This is the request the connector sends before it opens a browser
    (``/session/authenticator-request``); the browser step itself needs a person.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    config = compute.config
    url = f"{endpoint(compute)}/session/authenticator-request"
    body = {
        "data": {
            "ACCOUNT_NAME": str(config["account"]).replace("_", "-").split(".")[0].upper(),
            "LOGIN_NAME": str(config["user"]),
            "AUTHENTICATOR": "EXTERNALBROWSER",
            "BROWSER_MODE_REDIRECT_PORT": "0",
            "CLIENT_APP_ID": "floe",
            "CLIENT_APP_VERSION": __version__,
        }
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    where = endpoint(compute)
    try:
        with urllib.request.urlopen(request, timeout=seconds) as response:
            answer = json.loads(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        raise PluginExecutionError(
            ENGINE,
            "validate_connection",
            f"{where} answered HTTP {exc.code} to the SSO request: it is reachable but offers no "
            "externalbrowser login there",
            "check account (and host, if set); emulators and proxies may not support SSO: use "
            "another method for them",
            compute=compute.name,
        ) from None
    except urllib.error.URLError as exc:
        raise _network_error(exc.reason, where, compute) from None
    except (TimeoutError, OSError, ValueError) as exc:
        raise _network_error(exc, where, compute) from None
    if not isinstance(answer, dict) or not answer.get("success"):
        code = answer.get("code") if isinstance(answer, dict) else None
        message = answer.get("message") if isinstance(answer, dict) else None
        raise PluginExecutionError(
            ENGINE,
            "validate_connection",
            f"the account refused the SSO request (Snowflake {code}: {message})",
            "check user and that the account has a SAML2 security integration for browser SSO; "
            "or use method keypair or oauth for unattended runs",
            compute=compute.name,
        )
    data = answer.get("data") or {}
    return {
        "sso": "configured",
        "sso_url_host": urllib.parse.urlsplit(str(data.get("ssoUrl", ""))).hostname or "",
        "interactive_login": "not performed (needs a browser)",
    }


def _network_error(reason: object, where: str, compute: ComputeConfig) -> PluginExecutionError:
    kind = _network_kind(reason if isinstance(reason, BaseException) else None, str(reason))
    message, fix = _network_advice(kind, where)
    return PluginExecutionError(ENGINE, "validate_connection", message, fix, compute=compute.name)


def _success_message(compute: ComputeConfig, details: Mapping[str, Any]) -> str:
    if details.get("method") == "externalbrowser":
        return (
            f"compute {compute.name!r}: account {details['account']} at {details['endpoint']} is "
            f"reachable and offers browser SSO for user {compute.config.get('user')}; the browser "
            "login itself is interactive and was not performed (run dbt debug on a workstation)"
        )
    schema_state = "exists" if details.get("schema_exists") else "does not exist yet (dbt creates it)"
    return (
        f"compute {compute.name!r}: logged in to Snowflake {details.get('version', '?')} at "
        f"{details['endpoint']} as {details.get('user', '?')} (role {details.get('role', '?')}, "
        f"method {details['method']}); warehouse {details['warehouse']} and database "
        f"{details['database']} are usable; schema {details['schema']} {schema_state}"
    )




def _code(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    return f"{errno:06d}" if isinstance(errno, int) and errno >= 0 else "error"


# -- error translation -----------------------------------------------------------------------------


class _Found:
    """The Snowflake error inside an exception: class names, error number, text, network reason."""

    def __init__(self, classes: list[str], errno: int | None, text: str, network: str | None) -> None:
        self.classes = classes
        self.errno = errno
        self.text = text
        self.network = network


_ERRNO_TEXT = re.compile(r"(?<![0-9])(?P<errno>[0-9]{6})(?: \([0-9A-Z]{5}\))?:")
_LOGIN_CODE = re.compile(r"\b(39[0-9]{4})\b")


def _is_snowflake_class(cls: type) -> bool:
    return (cls.__module__ or "").startswith("snowflake.connector")


def _snowflake_error(error: BaseException) -> _Found | None:
    """The first Snowflake connector error in ``error``'s chain, or one dbt kept only as text."""
    chain = list(exception_chain(error))
    network = next((kind for e in chain if (kind := _network_kind(e, "")) is not None), None)
    for current in chain:
        mro = type(current).__mro__
        if any(_is_snowflake_class(c) for c in mro):
            if type(current).__module__.startswith("snowflake.connector.vendored"):
                continue  # requests/urllib3 inside the connector: a network reason, read above
            errno = getattr(current, "errno", None)
            text = str(getattr(current, "msg", None) or current)
            login = _LOGIN_CODE.search(text)
            if isinstance(errno, int) and errno in (250001, -1) and login:
                errno = int(login[1])  # a login failure carries the server's code in its text
            return _Found([c.__name__ for c in mro], errno if isinstance(errno, int) else None, text, network)
    text = str(error)
    if (type(error).__module__ or "").startswith("dbt") and (match := _ERRNO_TEXT.search(text)):
        body = text[match.start() :]
        login = _LOGIN_CODE.search(body)
        errno = int(match["errno"])
        if errno == 250001 and login:
            errno = int(login[1])
        return _Found([], errno, body, network or _network_kind(None, body))
    return None


def _network_kind(error: BaseException | None, text: str) -> str | None:
    """refused, dns, timeout, tls or unreachable for a low-level network error, else ``None``."""
    if error is not None:
        if isinstance(error, ConnectionRefusedError):
            return "refused"
        if isinstance(error, socket.gaierror):
            return "dns"
        if isinstance(error, TimeoutError):  # socket.timeout too
            return "timeout"
        name = type(error).__name__
        if name in ("NameResolutionError",):
            return "dns"
        if name in ("ReadTimeout", "ReadTimeoutError", "ConnectTimeout", "ConnectTimeoutError"):
            return "timeout"
        if name in ("SSLError", "SSLCertVerificationError", "SSLZeroReturnError"):
            return "tls"
        if isinstance(error, OSError) and error.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
            return "unreachable"
        return None
    lowered = text.lower()
    for needle, kind in (
        ("connection refused", "refused"),
        ("name or service not known", "dns"),
        ("failed to resolve", "dns"),
        ("timed out", "timeout"),
        ("certificate", "tls"),
    ):
        if needle in lowered:
            return kind
    return None


def _network_advice(kind: str | None, where: str) -> tuple[str, str]:
    if kind == "refused":
        return (
            f"the connection to {where} was refused: nothing listens there",
            "check host and port (Snowflake listens on 443; leave host unset unless you use a "
            "private endpoint)",
        )
    if kind == "dns":
        return (
            f"the host of {where} cannot be resolved",
            "check account (orgname-accountname, or locator.region such as xy12345.us-east-1) "
            "and host, and that this machine's DNS can resolve Snowflake (private link DNS)",
        )
    if kind == "timeout":
        return (
            f"{where} did not answer in time",
            "check that a firewall or proxy lets this machine reach it (HTTPS_PROXY/NO_PROXY), "
            "and that host and port are right; then retry",
        )
    if kind == "tls":
        return (
            f"the TLS handshake with {where} failed (certificate or proxy interception)",
            "check host (private link names need their own DNS) and that a proxy's CA is "
            "trusted (REQUESTS_CA_BUNDLE)",
        )
    if kind == "unreachable":
        return (
            f"the network to {where} is unreachable",
            "check this machine's network route, VPN or egress rules to Snowflake",
        )
    return (
        f"could not reach Snowflake at {where}",
        "check account, host and port, and that this machine can reach Snowflake over HTTPS",
    )


_AUTH_FIX = {
    "password": "check user and the value of the password secret (and that the user is not "
    "locked: DESCRIBE USER)",
    "keypair": "check user and that its public key matches: DESC USER <user> shows "
    "RSA_PUBLIC_KEY_FP; set it with ALTER USER <user> SET RSA_PUBLIC_KEY='…'",
    "oauth": "get a fresh OAuth access token into the token secret (tokens expire)",
    "externalbrowser": "log in again in the browser, as user",
}


def _translate(
    found: _Found, error: BaseException, compute: ComputeConfig | None
) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a Snowflake error, or ``None`` when not recognised."""
    config = compute.config if compute is not None else {}
    where = endpoint(compute) if compute is not None and config.get("account") else "Snowflake"
    method = str(config.get("method") or "")
    if not method and compute is not None:
        try:
            method = _method(compute, lambda m, f: PluginExecutionError(ENGINE, "", m, f))
        except PluginExecutionError:
            method = ""
    errno = found.errno
    first = first_line(found.text)
    is_ = set(found.classes).__contains__
    role = str(config.get("role") or "the user's default role")
    user = str(config.get("user") or "the user")

    if is_("MissingDependencyError"):
        return ("import the Snowflake connector", first, PIP_INSTALL)
    if errno == 251001 or "Invalid account identifier" in found.text:
        return (
            "check the account",
            first,
            "write account as the identifier only (orgname-accountname or locator.region), "
            "without https:// and .snowflakecomputing.com",
        )
    if errno in (390100, 390144, 390303, 390318) or "Incorrect username or password" in found.text:
        kind = {
            390144: "the key-pair (JWT) login was refused",
            390303: "the OAuth access token is invalid",
            390318: "the OAuth access token has expired",
        }.get(errno or 0, f"incorrect user name or password for {user}")
        fix = _AUTH_FIX.get(method) or "check user and the credential secret"
        if errno in (390303, 390318):
            fix = _AUTH_FIX["oauth"]
        elif errno == 390144:
            fix = _AUTH_FIX["keypair"]
        return ("log in", f"Snowflake refused the login: {kind} ({first})", fix)
    if found.network is not None or errno in (250001, 251011, 251012) or is_("RequestTimeoutError"):
        message, fix = _network_advice(found.network, where)
        return ("connect", f"{message} ({first})", fix)
    if errno in (390102, 390103, 390112, 390114, 390104, 390111, 390101):
        return (
            "log in",
            f"Snowflake refused the session: {first}",
            "if the user is locked, wait or ask an administrator (ALTER USER … SET "
            "MINS_TO_UNLOCK=0); if the session expired, run again",
        )
    if errno == 390189:
        return (
            "log in",
            f"role {role} is not granted to {user} ({first})",
            f"ask an administrator to GRANT ROLE {role} TO USER {user}, or change role",
        )
    if errno == 390190:
        return (
            "log in",
            f"the account's SSO (SAML) setup is incomplete: {first}",
            "ask an administrator to check the SAML2 security integration, or use another method",
        )
    if errno == 390422 or ("IP" in found.text and "not allowed" in found.text):
        return (
            "log in",
            f"a network policy blocks this machine's IP address ({first})",
            "ask an administrator to add this egress IP to the user's or account's network policy",
        )
    if errno in (390201, 390202) or (errno is not None and 390000 <= errno < 391000):
        return (
            "log in",
            f"Snowflake refused the login: {first}",
            "check account, user, role, database and warehouse against what the user may use",
        )
    if errno == 606 or "No active warehouse" in found.text:
        return (
            "run SQL",
            f"no warehouse is in use: {first}",
            "set warehouse to one the role may use (GRANT USAGE ON WAREHOUSE … TO ROLE …)",
        )
    if errno in (90105, 90106) or "does not have a current database" in found.text:
        return (
            "run SQL",
            first,
            "set database (and schema) to ones the role may use; check the role has USAGE on them",
        )
    if errno in (604, 630) or ("timeout" in first.lower() and is_("ProgrammingError")):
        return (
            "run SQL",
            f"the statement was cancelled or timed out: {first}",
            "raise STATEMENT_TIMEOUT_IN_SECONDS, use a larger warehouse, or make the model cheaper",
        )
    if errno == 1003 or "syntax error" in found.text.lower():
        return ("parse SQL", first, "fix the SQL syntax at the position shown (Snowflake SQL)")
    if errno in (2003, 2043) or "does not exist" in found.text:
        return (
            "run SQL",
            first,
            f"check the name and that role {role} has the privileges on it; if it is a model, "
            "build it first (dbt run --select +<model>)",
        )
    if is_("ForbiddenError") or "403" in first:
        return (
            "connect",
            f"{where} answered HTTP 403 Forbidden ({first})",
            "check account (a wrong identifier or region answers 403) and any network policy",
        )
    if is_("ServiceUnavailableError") or is_("GatewayTimeoutError") or is_("BadGatewayError"):
        return ("connect", f"Snowflake is unavailable: {first}", "retry later; see status.snowflake.com")
    if is_("InternalServerError"):
        return (
            "run SQL",
            f"the server failed with HTTP 500: {first}",
            "retry; if it persists, check the statement (an emulator answers 500 to SQL it cannot "
            "parse) or contact Snowflake support with the query id",
        )
    if is_("ProgrammingError"):
        return ("run SQL", first, "fix the SQL or the privileges named in the message")
    if is_("DatabaseError") or is_("OperationalError") or is_("InterfaceError") or is_("Error"):
        return (
            "talk to Snowflake",
            first,
            f"check the compute's settings (account, user, role, warehouse, database); "
            f"Snowflake error {_code(error)} is explained in Snowflake's documentation",
        )
    return None
