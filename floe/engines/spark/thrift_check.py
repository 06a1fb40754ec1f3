"""Checking a ``thrift`` or ``http`` compute: the server is reached, logs the user in, opens a
session with the profile's confs and runs ``SELECT 1`` (see :mod:`floe.engines.spark.client`).
"""

from __future__ import annotations

import getpass
import socket
from typing import Any
from urllib.parse import quote, urlsplit

from floe.enginekit import ComputeConfig, PluginExecutionError, ProfileTarget, secret_reference, secret_value
from floe.engines.spark.client import (
    _AuthError,
    _hive_session,
    _HiveClient,
    _HttpStatus,
    _remaining,
    _sasl_plain,
    _ServerError,
    _SocketTransport,
    _WireError,
)
from floe.engines.spark.errors import _first_line, _network_error
from floe.engines.spark.settings import (
    DEFAULT_ORGANIZATION,
    DEFAULT_PORTS,
    ENGINE,
    _auth,
    _render_env_vars,
    _required_text,
    user_spark_conf,
)


def _session_configuration(compute: ComputeConfig) -> dict[str, str]:
    """What dbt-spark sends as the Thrift session's configuration: spark_conf, ANSI mode off."""
    operation = "validate_connection"
    return {
        **_render_env_vars(user_spark_conf(compute, operation), compute, operation),
        "spark.sql.ansi.enabled": "false",
    }


def _check_thrift(
    compute: ComputeConfig, target: ProfileTarget, deadline: float, progress: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    operation = "validate_connection"
    config = compute.config
    details: dict[str, Any] = progress["details"]
    host = _required_text(compute, "host", operation)
    port = int(config.get("port", DEFAULT_PORTS["thrift"]))
    auth = _auth(compute, operation)
    user = str(config.get("user") or getpass.getuser())
    password_ref = secret_reference(ENGINE, compute, "password", operation, example="SPARK_PASSWORD")
    password = (
        secret_value(ENGINE, password_ref, compute, operation, what="password") if password_ref else None
    )
    configuration = _session_configuration(compute)
    details.update({"host": host, "port": port, "auth": auth, "tls": bool(config.get("use_ssl"))})
    where = f"{host}:{port}"
    progress["stage"] = f"connecting to {where}"
    try:
        sock = socket.create_connection((host, port), timeout=_remaining(deadline))
    except OSError as exc:
        raise _network_error(exc, host, port, "the Spark Thrift server", compute) from None
    try:
        if config.get("use_ssl"):
            progress["stage"] = f"TLS handshake with {where}"
            import ssl  # only for TLS: importing ssl costs more than the rest of a `floe compile`

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # as dbt-spark's TSSLSocket(cert_reqs=CERT_NONE)
            sock.settimeout(_remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=host)
        if auth == "KERBEROS":
            return (
                f"{where} accepts connections; Kerberos (GSSAPI) is not checked here, it needs "
                "a ticket: dbt checks it when it connects"
            ), details
        transport = _SocketTransport(sock, deadline, framed=auth != "NOSASL")
        if auth != "NOSASL":
            progress["stage"] = f"SASL PLAIN handshake with {where} as {user}"
            _sasl_plain(transport, user, password or "x")  # PyHive sends 'x' when there is none
        summary = _hive_session(
            _HiveClient(transport), user, password, configuration, deadline, details, progress
        )
        return f"{where}: {summary}", details
    except (_AuthError, _WireError, _ServerError, EOFError, OSError) as exc:
        raise _thrift_failure(exc, where, auth, progress["stage"], compute) from None
    finally:
        sock.close()


def _check_http(
    compute: ComputeConfig, target: ProfileTarget, deadline: float, progress: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    import base64

    from thrift.transport.THttpClient import THttpClient

    operation = "validate_connection"
    config = compute.config
    details: dict[str, Any] = progress["details"]
    host = _required_text(compute, "host", operation).rstrip("/")
    port = int(config.get("port", DEFAULT_PORTS["http"]))
    cluster = _required_text(compute, "cluster", operation)
    organization = str(config.get("organization", DEFAULT_ORGANIZATION))
    token_ref = secret_reference(
        ENGINE, compute, "token", operation, required=True, example="DATABRICKS_TOKEN"
    )
    token = secret_value(ENGINE, token_ref, compute, operation, what="token")
    configuration = _session_configuration(compute)
    base = host if host.startswith("https://") else "https://" + host  # as dbt-spark builds it
    url = f"{base}:{port}/sql/protocolv1/o/{quote(organization)}/{quote(cluster)}"
    details.update({"url": url})
    transport = THttpClient(url)
    basic = base64.standard_b64encode(f"token:{token}".encode()).decode()
    transport.setCustomHeaders({"Authorization": f"Basic {basic}", "User-Agent": "floe"})

    def before() -> None:
        transport.setTimeout(_remaining(deadline) * 1000)

    def after() -> None:
        code = getattr(transport, "code", 200)
        if code != 200:
            raise _HttpStatus(code, str(getattr(transport, "message", "")))

    class _Timed:
        def flush(self) -> None:
            before()
            transport.flush()

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    progress["stage"] = f"POSTing OpenSession to {url}"
    try:
        summary = _hive_session(
            _HiveClient(_Timed(), after), "token", None, configuration, deadline, details, progress
        )
    except _HttpStatus as exc:
        raise _http_status_error(exc, url, compute) from None
    except (_WireError, _ServerError, EOFError, OSError) as exc:
        host_name = urlsplit(url).hostname or host
        raise _thrift_failure(exc, f"{host_name}:{port}", "HTTP", progress["stage"], compute) from None
    finally:
        if transport.isOpen():
            transport.close()
    return f"{url}: {summary}", details


def _http_status_error(exc: _HttpStatus, url: str, compute: ComputeConfig) -> PluginExecutionError:
    if exc.code in (401, 403):
        message, fix = (
            "the token was rejected",
            "check that the token secret holds a valid, unexpired access token with access to the cluster",
        )
    elif exc.code in (404, 405):  # Jetty answers a POST to an unmapped path with 405
        message, fix = (
            f"{url} does not exist",
            "check cluster and organization (the path "
            "/sql/protocolv1/o/<organization>/<cluster>) and the port",
        )
    elif exc.code in (502, 503, 504):
        message, fix = ("the endpoint is not ready", "start the cluster (or wait for it) and retry")
    else:
        message, fix = (
            "the endpoint answered but not as a Thrift service",
            "check host, port and cluster: they must name a Spark Thrift HTTP endpoint",
        )
    return PluginExecutionError(
        ENGINE,
        "validate_connection",
        f"{message} ({exc})",
        fix,
        compute=compute.name,
        cause="HTTP " + str(exc.code),
    )


def _thrift_failure(
    exc: BaseException, where: str, auth: str, stage: str, compute: ComputeConfig
) -> PluginExecutionError:
    import ssl

    host, _, port = where.rpartition(":")
    if isinstance(exc, _AuthError):
        message = f"{where} rejected the login: {_first_line(str(exc))}"
        fix = (
            "check user and the password secret (auth LDAP/CUSTOM), and that auth matches the "
            "server's hive.server2.authentication"
        )
    elif isinstance(exc, ssl.SSLCertVerificationError):
        message = f"the TLS certificate of {where} is not trusted: {exc.verify_message}"
        fix = (
            "install the CA that signed the server's certificate (e.g. SSL_CERT_FILE), or "
            "fix the host name so it matches the certificate"
        )
    elif isinstance(exc, ssl.SSLError):
        message = f"the TLS handshake with {where} failed: {exc.reason or exc}"
        fix = "check that the port serves TLS (use_ssl / https) and the protocol versions"
    elif isinstance(exc, EOFError):
        message = f"{where} closed the connection while {stage}"
        fix = (
            f"check that auth ({auth}) matches the server's hive.server2.authentication "
            "(NOSASL needs auth: NOSASL; NONE, LDAP and CUSTOM use SASL) and that the port is "
            "the Thrift server's"
        )
    elif isinstance(exc, _WireError):
        message = f"{where} does not answer as a Spark Thrift server: {exc}"
        fix = (
            "check the port: the Thrift server's binary port (hive.server2.thrift.port, default "
            "10000) for thrift, its HTTP port for http; and that auth matches"
        )
    elif isinstance(exc, _ServerError):
        message = f"{where} answered with an error while {stage}: {_first_line(str(exc))}"
        fix = "check the server's log; the user may lack permissions or the server may be starting"
    elif isinstance(exc, OSError):
        return _network_error(
            exc, host, int(port) if port.isdigit() else 0, "the Spark Thrift server", compute, stage
        )
    else:  # pragma: no cover - the callers pass only the kinds above
        message, fix = f"{stage} failed: {exc}", "check the compute's settings"
    return PluginExecutionError(
        ENGINE,
        "validate_connection",
        message,
        fix,
        compute=compute.name,
        cause=type(exc).__name__.lstrip("_"),
    )
