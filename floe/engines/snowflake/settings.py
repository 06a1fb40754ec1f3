"""What a Snowflake compute's settings mean: the login method, the account's endpoint, names as
Snowflake resolves them.

:func:`check_settings` checks the settings once for the profile, the validation and the bridge.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from floe.enginekit import (
    ComputeConfig,
    PluginExecutionError,
    ProfileTarget,
    quote_backslash_literal,
    quote_identifier,
    secret_reference,
)

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
    return f"SHOW TERSE SCHEMAS LIKE {quote_backslash_literal(stored)} IN DATABASE {sql_identifier(database)}"
