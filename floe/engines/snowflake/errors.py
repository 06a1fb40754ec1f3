"""Snowflake connector errors in a reader's words: the operation, the message and the fix.

Classes are matched by module and name, so nothing is imported to recognise them.
"""

from __future__ import annotations

import re
import socket

from floe.enginekit import ComputeConfig, PluginExecutionError, exception_chain, first_line
from floe.engines.snowflake.settings import ENGINE, PIP_INSTALL, _method, endpoint


def _code(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    return f"{errno:06d}" if isinstance(errno, int) and errno >= 0 else "error"


def _network_error(reason: object, where: str, compute: ComputeConfig) -> PluginExecutionError:
    kind = _network_kind(reason if isinstance(reason, BaseException) else None, str(reason))
    message, fix = _network_advice(kind, where)
    return PluginExecutionError(ENGINE, "validate_connection", message, fix, compute=compute.name)


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


class _Context:
    """What the messages say about the compute: its endpoint, login method, role and user."""

    def __init__(self, where: str, method: str, role: str, user: str) -> None:
        self.where, self.method, self.role, self.user = where, method, role, user

    @classmethod
    def of(cls, compute: ComputeConfig | None) -> _Context:
        config = compute.config if compute is not None else {}
        where = endpoint(compute) if compute is not None and config.get("account") else "Snowflake"
        method = str(config.get("method") or "")
        if not method and compute is not None:
            try:
                method = _method(compute, lambda m, f: PluginExecutionError(ENGINE, "", m, f))
            except PluginExecutionError:
                method = ""
        role = str(config.get("role") or "the user's default role")
        return cls(where, method, role, str(config.get("user") or "the user"))


def _translate(
    found: _Found, error: BaseException, compute: ComputeConfig | None
) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a Snowflake error, or ``None`` when not recognised."""
    context = _Context.of(compute)
    for rule in (_setup, _login, _sql, _service):
        translated = rule(found, error, context)
        if translated is not None:
            return translated
    return None


def _setup(found: _Found, error: BaseException, context: _Context) -> tuple[str, str, str] | None:
    """The connector is missing, or the account is not an account identifier."""
    errno = found.errno
    first = first_line(found.text)
    is_ = set(found.classes).__contains__
    if is_("MissingDependencyError"):
        return ("import the Snowflake connector", first, PIP_INSTALL)
    if errno == 251001 or "Invalid account identifier" in found.text:
        return (
            "check the account",
            first,
            "write account as the identifier only (orgname-accountname or locator.region), "
            "without https:// and .snowflakecomputing.com",
        )
    return None


def _login(found: _Found, error: BaseException, context: _Context) -> tuple[str, str, str] | None:
    """The login: refused credentials, the network on the way, the account's policies."""
    errno = found.errno
    first = first_line(found.text)
    is_ = set(found.classes).__contains__
    where = context.where
    method = context.method
    role = context.role
    user = context.user
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
    return None


def _sql(found: _Found, error: BaseException, context: _Context) -> tuple[str, str, str] | None:
    """A statement: no warehouse or database in use, a timeout, its syntax, a missing object."""
    errno = found.errno
    first = first_line(found.text)
    is_ = set(found.classes).__contains__
    role = context.role
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
    return None


def _service(found: _Found, error: BaseException, context: _Context) -> tuple[str, str, str] | None:
    """The service's HTTP answers, then the connector's generic error classes."""
    first = first_line(found.text)
    is_ = set(found.classes).__contains__
    where = context.where
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
