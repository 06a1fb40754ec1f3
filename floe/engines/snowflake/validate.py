"""Checking a Snowflake compute: log in with the connector as dbt would, use the warehouse and the
database, look the schema up; for browser SSO, ask the account for its login URL.

The connector is imported when a check runs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from floe import __version__
from floe.enginekit import ComputeConfig, PluginExecutionError, ProfileTarget, first_line, secret_value
from floe.engines.snowflake.errors import _code, _network_error
from floe.engines.snowflake.keys import private_key_der
from floe.engines.snowflake.settings import (
    _UNQUOTED,
    ENGINE,
    PIP_INSTALL,
    _schemas_like,
    check_settings,
    endpoint,
    schema_name,
    sql_identifier,
    stored_name,
)


def _check(
    compute: ComputeConfig, target: ProfileTarget, budget: float, progress: dict[str, Any]
) -> dict[str, Any]:
    """The body of :meth:`SnowflakeEngine.validate_connection`; runs in the deadline's worker thread."""
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

    arguments = connect_arguments(compute, target, method, seconds, progress)
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
        _use(cursor, "WAREHOUSE", warehouse, compute, details)
        database = str(config["database"])
        progress["stage"] = f"using the database {database}"
        _use(cursor, "DATABASE", database, compute, details)
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


def _use(cursor: Any, kind: str, name: str, compute: ComputeConfig, details: Mapping[str, Any]) -> None:
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


def connect_arguments(
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
