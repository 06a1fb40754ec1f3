"""``floe validate`` of the declared Iceberg catalog: the REST round trip engines will make, with its auth.

Engines attach to the catalog a manifest declares when they run; a catalog that is unreachable,
refuses floe's credentials, or does not vend the storage credentials the manifest asks for would
otherwise be found only then, inside an engine. :func:`check_catalog` does what a client does first
(``GET /v1/config``, after getting an OAuth2 token for ``client_id``/``client_secret``, or with the
bearer ``token``) and, with ``access_delegation: vended-credentials``, loads one table to see
whether the catalog vends credentials. It answers within ``timeout`` seconds, whatever the server
does, and never puts a secret's value in its answer.

Only the standard library is used (no pyiceberg import: ``floe validate`` stays quick).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from floe.catalog.vending import ACCESS_DELEGATION_HEADER, VENDED_CREDENTIALS
from floe.connection_check import budget
from floe.deadline import DeadlineExceeded, call_with_deadline
from floe.model import CatalogConfig, ValidationResult
from floe.secrets import redact

_STORAGE_CREDENTIALS = (
    "s3.access-key-id",
    "s3.session-token",
    "gcs.oauth2.token",
    "adls.sas-token",
    "client.",
)
"""Keys of a ``loadTable`` answer's ``config`` that carry vended storage credentials (prefixes)."""
MAX_NAMESPACES = 5
"""Namespaces listed, at most, looking for a table to load (each costs a request)."""


class _Failed(Exception):
    """A step of the check failed: ``message`` and ``fix`` say which and what to do."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def check_catalog(
    catalog: CatalogConfig, timeout: float = 10.0, environ: Mapping[str, str] | None = None
) -> ValidationResult:
    """The result of reaching ``catalog`` as an engine would, within ``timeout`` seconds.

    ``details`` says ``vends_credentials``: ``True``/``False`` when a table could be loaded with
    ``X-Iceberg-Access-Delegation: vended-credentials``, ``None`` when not asked or not known.
    """
    env = os.environ if environ is None else environ
    secrets = [
        v for ref in (catalog.token, catalog.client_secret) if ref is not None and (v := env.get(ref.name))
    ]
    progress: dict[str, Any] = {"stage": "reading the settings", "details": {"uri": catalog.uri}}
    seconds = budget(timeout)
    try:
        message = call_with_deadline(lambda: _check(catalog, env, seconds, progress), seconds)
    except DeadlineExceeded:
        message, success = (
            (
                f"catalog {catalog.name!r}: no answer from {catalog.uri} within {timeout:g} s while "
                f"{progress['stage']}; check the uri and that the catalog is reachable from here"
            ),
            False,
        )
    except _Failed as exc:
        message, success = (
            f"catalog {catalog.name!r}: {progress['stage']} failed: {exc}\n  fix: {exc.fix}",
            False,
        )
    else:
        success = True
    details = {key: redact(v, secrets) if isinstance(v, str) else v for key, v in progress["details"].items()}
    return ValidationResult(success, redact(message, secrets), details)


def _check(catalog: CatalogConfig, env: Mapping[str, str], seconds: float, progress: dict[str, Any]) -> str:
    details: dict[str, Any] = progress["details"]
    if catalog.type != "rest" or not catalog.uri:
        details["vends_credentials"] = None
        raise _Failed(
            f"a {catalog.type} catalog has no REST endpoint to check",
            "declare the catalog's Iceberg REST endpoint (type: rest, uri: …): engines attach to REST catalogs",
        )
    base = catalog.uri.rstrip("/")
    headers = {"Accept": "application/json", "User-Agent": "floe-validate"}
    auth = "no authentication"
    if catalog.client_id is not None and catalog.client_secret is not None:
        token_uri = catalog.oauth2_server_uri or f"{base}/v1/oauth/tokens"
        progress["stage"] = f"getting an OAuth2 token from {token_uri}"
        secret = _secret(env, catalog.client_secret.name, "client_secret")
        form = {
            "grant_type": "client_credentials",
            "client_id": catalog.client_id,
            "client_secret": secret,
            "scope": "catalog",
        }
        answer = _request(
            token_uri, seconds, data=urllib.parse.urlencode(form).encode(), what="the token endpoint"
        )
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise _Failed("the token endpoint answered without an access_token", "check oauth2_server_uri")
        headers["Authorization"] = f"Bearer {token}"
        auth = f"OAuth2 client {catalog.client_id}"
    elif catalog.token is not None:
        headers["Authorization"] = f"Bearer {_secret(env, catalog.token.name, 'token')}"
        auth = "a bearer token"
    vended = catalog.access_delegation == VENDED_CREDENTIALS
    if vended:
        headers[ACCESS_DELEGATION_HEADER] = VENDED_CREDENTIALS
    query = f"?{urllib.parse.urlencode({'warehouse': catalog.warehouse})}" if catalog.warehouse else ""
    progress["stage"] = f"GET {base}/v1/config"
    config = _request(f"{base}/v1/config{query}", seconds, headers=headers, what="the catalog")
    prefix = _prefix(config)
    details.update({"auth": auth, "prefix": prefix or None})
    said = f"catalog {catalog.name!r}: {base} answered /v1/config ({auth})"
    if not vended:
        details["vends_credentials"] = None
        return f"{said}; credentials not asked for (access_delegation: none)"
    progress["stage"] = "looking for a table to load with vended credentials"
    found = _first_table(base, prefix, headers, seconds)
    if found is None:
        details["vends_credentials"] = None
        return f"{said}; whether it vends credentials is not known yet: no table to load"
    namespace, table = found
    progress["stage"] = f"loading table {'.'.join(namespace)}.{table} with vended credentials"
    answer = _request(
        f"{base}/v1/{prefix}namespaces/{_namespace(namespace)}/tables/{urllib.parse.quote(table)}",
        seconds,
        headers=headers,
        what="the catalog",
    )
    storage = answer.get("config", {}) if isinstance(answer, dict) else {}
    keys = sorted(k for k in storage if k.startswith(_STORAGE_CREDENTIALS))
    details.update({"vends_credentials": bool(keys), "checked_table": ".".join([*namespace, table])})
    if keys:
        return f"{said}; vends credentials ({', '.join(keys)} for table {'.'.join([*namespace, table])})"
    raise _Failed(
        f"the catalog vends no credentials: loading {'.'.join([*namespace, table])} with "
        f"{ACCESS_DELEGATION_HEADER}: {VENDED_CREDENTIALS} returned no storage credential",
        "enable credential vending in the catalog (a storage role it may assume), or set "
        "access_delegation: none and give engines storage credentials of their own",
    )


def _secret(env: Mapping[str, str], name: str, key: str) -> str:
    value = env.get(name)
    if not value:
        raise _Failed(
            f"the secret environment variable {name} ({key}) is not set",
            f"set {name} in the environment floe runs in",
        )
    return value


def _request(
    url: str,
    seconds: float,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    what: str,
) -> Any:
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=seconds) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc)
        if exc.code in (401, 403):
            raise _Failed(
                f"{what} refused the credentials (HTTP {exc.code}){detail}",
                "check client_id and the secret in client_secret (or the token), and the principal's "
                "grants on the catalog",
            ) from None
        if exc.code == 404:
            raise _Failed(
                f"{what} answered 404 for {urllib.parse.urlsplit(url).path}{detail}",
                "check uri (the catalog's REST base, without /v1) and warehouse",
            ) from None
        raise _Failed(f"{what} answered HTTP {exc.code}{detail}", "check uri and warehouse") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failed(
            f"cannot reach {what} at {urllib.parse.urlsplit(url).netloc}: {reason}",
            "check uri (host, port, scheme) and that the catalog is reachable from here",
        ) from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f": {str(message)[:200]}" if message else ""


def _prefix(config: Any) -> str:
    """The path prefix the catalog asks clients to use (``overrides.prefix``), with a trailing ``/``."""
    overrides = config.get("overrides", {}) if isinstance(config, dict) else {}
    prefix = str(overrides.get("prefix", "")).strip("/") if isinstance(overrides, dict) else ""
    return f"{urllib.parse.quote(prefix)}/" if prefix else ""


def _namespace(parts: list[str]) -> str:
    return urllib.parse.quote("\x1f".join(parts), safe="")


def _first_table(
    base: str, prefix: str, headers: Mapping[str, str], seconds: float
) -> tuple[list[str], str] | None:
    listed = _request(f"{base}/v1/{prefix}namespaces", seconds, headers=headers, what="the catalog")
    namespaces = listed.get("namespaces", []) if isinstance(listed, dict) else []
    for namespace in namespaces[:MAX_NAMESPACES]:
        tables = _request(
            f"{base}/v1/{prefix}namespaces/{_namespace(list(namespace))}/tables",
            seconds,
            headers=headers,
            what="the catalog",
        )
        for identifier in tables.get("identifiers", []) if isinstance(tables, dict) else []:
            return list(identifier.get("namespace", namespace)), str(identifier["name"])
    return None
