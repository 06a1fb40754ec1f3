"""A Trino coordinator on 127.0.0.1 for tests: Trino's client protocol in front of in-process DuckDB.

No Trino server can be installed here, so this one speaks the protocol the ``trino`` client and
dbt-trino use, for real, over HTTP or HTTPS:

- ``POST /v1/statement`` with the SQL as body and the session in ``X-Trino-*`` headers answers
  ``{id, infoUri, nextUri, stats}`` (state ``QUEUED``); each ``GET nextUri`` returns the next page
  (``columns``, ``data``, ``updateType``/``updateCount``) until a page has no ``nextUri``; failures
  come as ``{"error": {message, errorCode, errorName, errorType, errorLocation, failureInfo}}``;
  ``DELETE nextUri`` cancels (204).
- Authentication is checked: password (what the LDAP authenticator sees: HTTP Basic) and JWT
  (``Authorization: Bearer``); a wrong or missing credential gets ``401`` with
  ``WWW-Authenticate``, as Trino answers. Without authenticators, ``X-Trino-User`` is required.
- ``X-Trino-Session``, ``USE`` (``X-Trino-Set-Catalog``/``-Schema``), ``PREPARE``/``EXECUTE``/
  ``DEALLOCATE PREPARE`` (``X-Trino-Added-Prepare``…) and ``EXECUTE IMMEDIATE … USING`` work.

Catalogs are DuckDB databases attached in memory; SQL is translated from Trino's dialect with
sqlglot (qualifying names with the session catalog/schema, answering ``information_schema``,
``system.metadata``, ``SHOW CATALOGS/SCHEMAS/TABLES`` and ``version()`` the way Trino does), then run
by DuckDB. Result types are Trino's (``varchar``, ``integer``, ``decimal(p,s)``, ``timestamp(6)``…)
with their JSON encodings. Every statement is recorded in :attr:`TrinoPeer.log`. Query ids are unique
under concurrent requests (dbt runs several threads), as a coordinator's are.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import ipaddress
import json
import logging
import re
import secrets
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import duckdb
import sqlglot
from sqlglot import exp

from tests.support.joining_server import JoiningHTTPServer

_QUIET = threading.local()


class _QuietPeers(logging.Filter):
    """Drops sqlglot's warnings ("unsupported syntax…") raised while a peer translates SQL."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_QUIET, "on", False)


logging.getLogger("sqlglot").addFilter(_QuietPeers())


class quiet_sqlglot:
    """Silence sqlglot's warnings in this thread only (other users of sqlglot keep theirs)."""

    def __enter__(self) -> None:
        _QUIET.on = True

    def __exit__(self, *exc: object) -> None:
        _QUIET.on = False


TRINO_VERSION = "476"
PAGE_ROWS = 2
"""Rows per page, small so that paging through ``nextUri`` is exercised."""


# -- TLS -------------------------------------------------------------------------------------------


@attrs.frozen
class CertificateFiles:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate, as files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, host: str = "127.0.0.1", client: str = "alice") -> CertificateFiles:
    """A CA and the server and client (CN ``client``) certificates it signed, in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floe test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common_name: str, usage: Any, names: list[Any] | None) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    directory.mkdir(parents=True, exist_ok=True)
    pki = CertificateFiles(
        *(
            directory / n
            for n in ("ca.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem")
        )
    )
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = issue(
        host,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")],
    )
    pki.server_cert.write_bytes(server[0])
    pki.server_key.write_bytes(server[1])
    user = issue(client, ExtendedKeyUsageOID.CLIENT_AUTH, None)
    pki.client_cert.write_bytes(user[0])
    pki.client_key.write_bytes(user[1])
    return pki


# -- errors ----------------------------------------------------------------------------------------


class TrinoError(Exception):
    """An error the coordinator reports in a query result."""

    def __init__(self, name: str, code: int, message: str, kind: str = "USER_ERROR") -> None:
        super().__init__(message)
        self.name, self.code, self.message, self.kind = name, code, message, kind

    def as_json(self) -> dict[str, Any]:
        location = {"lineNumber": 1, "columnNumber": 1}
        return {
            "message": self.message,
            "errorCode": self.code,
            "errorName": self.name,
            "errorType": self.kind,
            "errorLocation": location,
            "failureInfo": {
                "type": "io.trino.spi.TrinoException",
                "message": self.message,
                "suppressed": [],
                "stack": [],
                "errorLocation": location,
            },
        }


def _syntax_error(message: str) -> TrinoError:
    return TrinoError("SYNTAX_ERROR", 1, f"line 1:1: {message}")


def _from_duckdb(error: duckdb.Error) -> TrinoError:
    text = str(error).split("\n")[0]
    if m := re.search(r'Table with name "?([^" ]+)"? does not exist because schema "?([^" ]+)"?', text):
        return TrinoError("SCHEMA_NOT_FOUND", 45, f"line 1:1: Schema '{m[2]}' does not exist")
    if m := re.search(r'Table with name "?([^" ]+)"? does not exist', text):
        return TrinoError("TABLE_NOT_FOUND", 46, f"line 1:1: Table '{m[1]}' does not exist")
    if m := re.search(r'Schema with name "?([^" ]+)"? does not exist', text):
        return TrinoError("SCHEMA_NOT_FOUND", 45, f"line 1:1: Schema '{m[1]}' does not exist")
    if m := re.search(r'Schema with name "?([^" ]+)"? already exists', text):
        return TrinoError("SCHEMA_ALREADY_EXISTS", 54, f"Schema '{m[1]}' already exists")
    if isinstance(error, duckdb.ParserException):
        return _syntax_error(text)
    if isinstance(error, duckdb.BinderException) and "column" in text.lower():
        return TrinoError("COLUMN_NOT_FOUND", 47, f"line 1:1: {text}")
    if isinstance(
        error,
        (
            duckdb.CatalogException,
            duckdb.BinderException,
            duckdb.ConversionException,
            duckdb.InvalidInputException,
            duckdb.ConstraintException,
        ),
    ):
        return TrinoError("GENERIC_USER_ERROR", 0, text)
    return TrinoError("GENERIC_INTERNAL_ERROR", 65536, text, "INTERNAL_ERROR")


# -- types and values ------------------------------------------------------------------------------

_SIMPLE_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "tinyint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "FLOAT": "real",
    "DOUBLE": "double",
    "DATE": "date",
    "BLOB": "varbinary",
    "UUID": "uuid",
    "JSON": "json",
    "INTERVAL": "interval day to second",
}


def _signature(raw: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"rawType": raw, "arguments": list(args)}


def _long(value: int) -> dict[str, Any]:
    return {"kind": "LONG", "value": value}


def trino_type(t: Any) -> tuple[str, dict[str, Any]]:
    """The Trino type name and typeSignature of a DuckDB type."""
    text = str(t)
    if text in _SIMPLE_TYPES:
        name = _SIMPLE_TYPES[text]
        return name, _signature(name)
    if text in ("UBIGINT", "HUGEINT", "UHUGEINT"):
        return "decimal(38,0)", _signature("decimal", _long(38), _long(0))
    if m := re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", text):
        p, s = int(m[1]), int(m[2])
        return f"decimal({p},{s})", _signature("decimal", _long(p), _long(s))
    if text in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"):
        return "timestamp(6)", _signature("timestamp", _long(6))
    if text == "TIMESTAMP WITH TIME ZONE":
        return "timestamp(6) with time zone", _signature("timestamp with time zone", _long(6))
    if text == "TIME":
        return "time(6)", _signature("time", _long(6))
    if getattr(t, "id", None) == "list":
        inner_name, inner = trino_type(t.children[0][1])
        return f"array({inner_name})", _signature("array", {"kind": "TYPE", "value": inner})
    if getattr(t, "id", None) == "map":
        (_, kt), (_, vt) = t.children
        (kn, ks), (vn, vs) = trino_type(kt), trino_type(vt)
        return f"map({kn}, {vn})", _signature(
            "map", {"kind": "TYPE", "value": ks}, {"kind": "TYPE", "value": vs}
        )
    if getattr(t, "id", None) == "struct":
        fields = [(n, trino_type(ft)) for n, ft in t.children]
        return "row(" + ", ".join(f"{n} {fn}" for n, (fn, _) in fields) + ")", _signature(
            "row",
            *(
                {"kind": "NAMED_TYPE", "value": {"fieldName": {"name": n}, "typeSignature": fs}}
                for n, (_, fs) in fields
            ),
        )
    return "varchar", _signature("varchar", _long(2147483647))


def trino_value(value: Any) -> Any:
    """A DuckDB value in Trino's JSON encoding."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        if value.tzinfo is not None:
            offset = value.strftime("%z")
            text += " UTC" if offset in ("+0000", "") else f" {offset[:3]}:{offset[3:]}"
        return text
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S.%f")
    if isinstance(value, dt.timedelta):
        seconds = abs(value).total_seconds()
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        sign = "-" if value < dt.timedelta(0) else ""
        return f"{sign}{int(days)} {int(hours):02}:{int(minutes):02}:{secs:06.3f}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [trino_value(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"key", "value"} and isinstance(value["key"], list):  # a DuckDB MAP
            return {str(k): trino_value(v) for k, v in zip(value["key"], value["value"], strict=True)}
        return [trino_value(v) for v in value.values()]  # a ROW is a JSON array
    return str(value)


# -- queries ---------------------------------------------------------------------------------------


@attrs.define
class Session:
    user: str
    catalog: str | None
    schema: str | None
    properties: dict[str, str]
    prepared: dict[str, str]
    source: str | None = None


@attrs.define
class Result:
    columns: list[dict[str, Any]] | None = None
    rows: list[list[Any]] = attrs.field(factory=list)
    update_type: str | None = None
    update_count: int | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    error: TrinoError | None = None


@attrs.define
class Query:
    id: str
    slug: str
    sql: str
    result: Result
    served: int = 0
    page: int = 0


@attrs.frozen
class LogEntry:
    """One statement the coordinator received."""

    user: str
    catalog: str | None
    schema: str | None
    sql: str
    duckdb_sql: str | None
    error: str | None
    headers: Mapping[str, str]


_SYSTEM_TABLES: dict[tuple[str, str], str] = {
    ("metadata", "materialized_views"): (
        "SELECT * FROM (VALUES (NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, "
        "NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR)) AS v(catalog_name, schema_name, "
        "name, storage_catalog, storage_schema, storage_table, freshness, definition) WHERE false"
    ),
    ("metadata", "table_comments"): (
        "SELECT table_catalog AS catalog_name, table_schema AS schema_name, table_name, "
        "NULL::VARCHAR AS comment FROM information_schema.tables"
    ),
    ("runtime", "nodes"): (
        f"SELECT 'peer' AS node_id, 'https://127.0.0.1' AS http_uri, '{TRINO_VERSION}' AS node_version, "
        "true AS coordinator, 'active' AS state"
    ),
}


def _type_case(column: str) -> str:
    return (
        f"CASE WHEN {column} = 'TIMESTAMP' THEN 'timestamp(6)' "
        f"WHEN {column} = 'TIMESTAMP WITH TIME ZONE' THEN 'timestamp(6) with time zone' "
        f"WHEN {column} = 'TIME' THEN 'time(6)' WHEN {column} = 'FLOAT' THEN 'real' "
        f"WHEN {column} IN ('HUGEINT', 'UBIGINT') THEN 'decimal(38,0)' "
        f"WHEN {column} LIKE '%[]' THEN 'array(' || lower(replace({column}, '[]', '')) || ')' "
        f"ELSE lower({column}) END"
    )


def _information_schema(table: str, catalog: str) -> str | None:
    """The Trino view ``<catalog>.information_schema.<table>`` as DuckDB SQL."""
    quoted = catalog.replace("'", "''")
    if table == "tables":
        return (
            "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables "
            f"WHERE table_catalog = '{quoted}' UNION ALL SELECT '{quoted}', 'information_schema', t, "
            "'BASE TABLE' FROM (VALUES ('tables'), ('columns'), ('schemata'), ('views')) AS v(t)"
        )
    if table == "columns":
        return (
            "SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, "
            "column_default, is_nullable, " + _type_case("data_type") + " AS data_type, "
            "NULL::VARCHAR AS comment, NULL::VARCHAR AS extra_info "
            f"FROM information_schema.columns WHERE table_catalog = '{quoted}'"
        )
    if table == "schemata":
        return (
            "SELECT catalog_name, schema_name FROM information_schema.schemata "
            f"WHERE catalog_name = '{quoted}' UNION ALL SELECT '{quoted}', 'information_schema'"
        )
    if table == "views":
        return (
            "SELECT table_catalog, table_schema, table_name, view_definition "
            f"FROM information_schema.views WHERE table_catalog = '{quoted}'"
        )
    return None


_UPDATE_TYPES: dict[type, str] = {
    exp.Insert: "INSERT",
    exp.Delete: "DELETE",
    exp.Update: "UPDATE",
    exp.Merge: "MERGE",
}


class TrinoPeer:
    """The coordinator. ``start()`` returns its port; ``stop()`` closes everything.

    :param catalogs: catalog names (DuckDB databases attached in memory).
    :param passwords: user → password accepted with HTTP Basic (Trino's password authenticators).
    :param jwt_tokens: token → user accepted as ``Authorization: Bearer``.
    :param tls: the certificates to serve HTTPS with.
    :param client_certificates: also accept TLS client certificates the test CA signed (Trino's
        certificate authenticator; the user is the certificate's CN).
    """

    def __init__(
        self,
        catalogs: Iterable[str] = ("lake",),
        *,
        passwords: Mapping[str, str] | None = None,
        jwt_tokens: Mapping[str, str] | None = None,
        tls: CertificateFiles | None = None,
        client_certificates: bool = False,
    ) -> None:
        self.catalogs = [c.lower() for c in catalogs]
        self.passwords = dict(passwords or {})
        self.jwt_tokens = dict(jwt_tokens or {})
        self.tls = tls
        self.client_certificates = client_certificates
        self.log: list[LogEntry] = []
        self.rejected: list[tuple[str, str]] = []
        """(path, reason) of requests refused with 401."""
        self._db = duckdb.connect()
        for catalog in self.catalogs:
            self._db.execute(f"ATTACH ':memory:' AS \"{catalog}\"")
        self._lock = threading.Lock()
        self._queries: dict[str, Query] = {}
        self._ids = threading.Lock()
        self._next_id = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> int:
        peer = self
        context: ssl.SSLContext | None = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls.server_cert), str(self.tls.server_key))
            if self.client_certificates:
                context.verify_mode = ssl.CERT_OPTIONAL
                context.load_verify_locations(str(self.tls.ca))

        class Server(JoiningHTTPServer):
            def finish_request(self, request: Any, client_address: Any) -> None:
                if context is not None:  # the handshake happens in the request's own thread
                    request.settimeout(10)
                    try:
                        request = context.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                    request.settimeout(None)
                super().finish_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away is not the test's business

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                peer._post(self)

            def do_GET(self) -> None:
                peer._get(self)

            def do_DELETE(self) -> None:
                peer._delete(self)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="trino-peer", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.close_and_join()
        if self._thread is not None:
            self._thread.join(5)
        self._db.close()

    def __enter__(self) -> TrinoPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run DuckDB SQL directly (for assertions)."""
        with self._lock:
            rows: list[tuple[Any, ...]] = self._db.execute(statement).fetchall()
            return rows

    # -- HTTP -------------------------------------------------------------------------------

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes | dict[str, Any] | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        handler.send_response(status)
        if isinstance(body, dict):
            handler.send_header("Content-Type", "application/json")
        elif body:
            handler.send_header("Content-Type", "text/plain")
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authenticate(self, handler: BaseHTTPRequestHandler) -> str | None:
        """The authenticated user, or ``None`` after answering 401."""
        header_user = handler.headers.get("X-Trino-User")
        if self.client_certificates and isinstance(handler.connection, ssl.SSLSocket):
            peer_cert = handler.connection.getpeercert()
            if peer_cert:  # verified against the test CA during the handshake
                subject = dict(item[0] for item in peer_cert["subject"])
                return header_user or str(subject["commonName"])
        if not self.passwords and not self.jwt_tokens and not self.client_certificates:
            if not header_user:
                self._send(handler, 400, b"Error 400 Bad Request: User must be set")
                return None
            return header_user
        authorization = handler.headers.get("Authorization", "")
        scheme, _, credential = authorization.partition(" ")
        challenges = []
        if self.client_certificates and not self.passwords and not self.jwt_tokens:
            challenges.append("X509")
        if self.passwords:
            challenges.append('Basic realm="Trino"')
        if self.jwt_tokens:
            challenges.append("Bearer")
        reason = "no credentials"
        if scheme.lower() == "basic" and self.passwords:
            try:
                user, _, password = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if user in self.passwords and secrets.compare_digest(self.passwords[user], password):
                return header_user or user
            reason = "Access Denied: Invalid credentials"
        elif scheme.lower() == "bearer" and self.jwt_tokens:
            for token, user in self.jwt_tokens.items():
                if secrets.compare_digest(token, credential):
                    return header_user or user
            reason = "Unauthorized: invalid JWT"
        self.rejected.append((handler.path, reason))
        self._send(handler, 401, reason.encode(), {"WWW-Authenticate": ", ".join(challenges)})
        return None

    def _base(self, handler: BaseHTTPRequestHandler) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8")
        if handler.path != "/v1/statement":
            self._send(handler, 404, b"Not Found")
            return
        user = self._authenticate(handler)
        if user is None:
            return
        session = Session(
            user=user,
            catalog=(handler.headers.get("X-Trino-Catalog") or None),
            schema=(handler.headers.get("X-Trino-Schema") or None),
            properties=_header_pairs(handler.headers.get("X-Trino-Session")),
            prepared=_header_pairs(handler.headers.get("X-Trino-Prepared-Statement"), plus=True),
            source=handler.headers.get("X-Trino-Source"),
        )
        with self._ids:  # unique under concurrent requests (dbt runs several threads)
            self._next_id += 1
            query_id = dt.datetime.now(dt.UTC).strftime("%Y%m%d_%H%M%S_") + f"{self._next_id:05d}_peer"
        result, translated = self._run(body, session)
        self.log.append(
            LogEntry(
                user,
                session.catalog,
                session.schema,
                body,
                translated,
                result.error.message if result.error else None,
                dict(handler.headers.items()),
            )
        )
        query = Query(query_id, secrets.token_hex(8), body, result)
        self._queries[query_id] = query
        base = self._base(handler)
        self._send(
            handler,
            200,
            {
                "id": query_id,
                "infoUri": f"{base}/ui/query.html?{query_id}",
                "nextUri": f"{base}/v1/statement/queued/{query_id}/{query.slug}/1",
                "stats": _stats("QUEUED"),
            },
            result.headers,
        )

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        parts = handler.path.strip("/").split("/")
        if len(parts) != 6 or parts[:2] != ["v1", "statement"] or parts[2] not in ("queued", "executing"):
            self._send(handler, 404, b"Not Found")
            return
        if self._authenticate(handler) is None:
            return
        query = self._queries.get(parts[3])
        if query is None or query.slug != parts[4]:
            self._send(handler, 404, b"Query not found")
            return
        base = self._base(handler)
        result = query.result
        body: dict[str, Any] = {"id": query.id, "infoUri": f"{base}/ui/query.html?{query.id}"}
        if result.error is not None:
            body.update(stats=_stats("FAILED"), error=result.error.as_json())
            self._queries.pop(query.id, None)
            self._send(handler, 200, body)
            return
        page = result.rows[query.served : query.served + PAGE_ROWS]
        query.served += len(page)
        query.page += 1
        done = query.served >= len(result.rows)
        if result.columns is not None:
            body["columns"] = result.columns
        if page:
            body["data"] = page
        if result.update_type:
            body["updateType"] = result.update_type
        if result.update_count is not None:
            body["updateCount"] = result.update_count
        if done:
            body["stats"] = _stats("FINISHED")
            self._queries.pop(query.id, None)
        else:
            body["stats"] = _stats("RUNNING")
            body["nextUri"] = f"{base}/v1/statement/executing/{query.id}/{query.slug}/{query.page + 1}"
        self._send(handler, 200, body)

    def _delete(self, handler: BaseHTTPRequestHandler) -> None:
        parts = handler.path.strip("/").split("/")
        if len(parts) >= 4 and parts[:2] == ["v1", "statement"]:
            self._queries.pop(parts[3], None)
        self._send(handler, 204, None)

    # -- SQL --------------------------------------------------------------------------------

    def _run(self, sql: str, session: Session) -> tuple[Result, str | None]:
        with self._lock, quiet_sqlglot():
            cursor = self._db.cursor()
            try:
                return self._statement(sql.strip().rstrip(";").strip(), session, cursor)
            except TrinoError as error:
                return Result(error=error), None
            finally:
                cursor.close()

    def _statement(self, sql: str, session: Session, cursor: Any) -> tuple[Result, str | None]:
        upper = " ".join(sql.split()).upper()
        if m := re.fullmatch(r"EXECUTE\s+IMMEDIATE\s+'((?:[^']|'')*)'(?:\s+USING\s+(.*))?", sql, re.S | re.I):
            return self._statement(_bind(m[1].replace("''", "'"), m[2]), session, cursor)
        if m := re.fullmatch(r"PREPARE\s+(\w+)\s+FROM\s+(.*)", sql, re.S | re.I):
            name = m[1]
            return Result(
                update_type="PREPARE",
                headers={"X-Trino-Added-Prepare": f"{name}={urllib.parse.quote_plus(m[2])}"},
            ), None
        if m := re.fullmatch(r"EXECUTE\s+(\w+)(?:\s+USING\s+(.*))?", sql, re.S | re.I):
            statement = session.prepared.get(m[1])
            if statement is None:
                raise TrinoError("NOT_FOUND", 5, f"Prepared statement not found: {m[1]}")
            return self._statement(_bind(statement, m[2]), session, cursor)
        if m := re.fullmatch(r"DEALLOCATE\s+PREPARE\s+(\w+)", sql, re.I):
            return Result(update_type="DEALLOCATE", headers={"X-Trino-Deallocated-Prepare": m[1]}), None
        if upper.startswith("START TRANSACTION"):  # autocommit: transactions are accepted, not kept
            return Result(update_type="START TRANSACTION"), None
        if upper in ("COMMIT", "ROLLBACK"):
            return Result(update_type=upper), None
        if m := re.fullmatch(r"SHOW\s+CATALOGS(?:\s+LIKE\s+'([^']*)')?", sql, re.I):
            names = [c for c in sorted([*self.catalogs, "system"]) if _like(c, m[1])]
            return _table(["Catalog"], [[n] for n in names]), None
        if m := re.fullmatch(r"SHOW\s+SCHEMAS(?:\s+(?:FROM|IN)\s+(\S+))?(?:\s+LIKE\s+'([^']*)')?", sql, re.I):
            catalog = self._catalog(_unquote(m[1]) if m[1] else session.catalog)
            rows = cursor.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = ? "
                "UNION SELECT 'information_schema' ORDER BY 1",
                [catalog],
            ).fetchall()
            return _table(["Schema"], [[r[0]] for r in rows if _like(r[0], m[2])]), None
        if m := re.fullmatch(r"SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+(\S+))?(?:\s+LIKE\s+'([^']*)')?", sql, re.I):
            names = [_unquote(p) for p in (m[1] or "").split(".") if p]
            catalog, schema = (
                (names[0], names[1])
                if len(names) == 2
                else (session.catalog, names[0] if names else session.schema)
            )
            catalog = self._catalog(catalog)
            rows = cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? "
                "AND table_schema = ? ORDER BY 1",
                [catalog, schema],
            ).fetchall()
            return _table(["Table"], [[r[0]] for r in rows if _like(r[0], m[2])]), None
        try:
            tree = sqlglot.parse_one(sql, read="trino")
        except sqlglot.errors.ParseError as error:
            raise _syntax_error(str(error).split("\n")[0]) from None
        if isinstance(tree, exp.Use):
            parts = [_unquote(p) for p in tree.this.sql(dialect="trino").split(".")]
            catalog, schema = (parts[0], parts[1]) if len(parts) == 2 else (session.catalog, parts[0])
            self._catalog(catalog)
            return Result(
                update_type="USE", headers={"X-Trino-Set-Catalog": str(catalog), "X-Trino-Set-Schema": schema}
            ), None
        if isinstance(tree, exp.Command):
            raise TrinoError("NOT_SUPPORTED", 13, f"this peer does not run: {sql[:60]}")
        translated = self._translate(tree, session)
        try:
            return self._execute(tree, translated, cursor), translated
        except duckdb.Error as error:
            raise _from_duckdb(error) from None

    def _catalog(self, name: str | None) -> str:
        if not name:
            raise TrinoError(
                "MISSING_CATALOG_NAME", 40, "Catalog must be specified when session catalog is not set"
            )
        if name.lower() not in self.catalogs:
            raise TrinoError("CATALOG_NOT_FOUND", 44, f"Catalog '{name.lower()}' not found")
        return name.lower()

    def _translate(self, tree: exp.Expression, session: Session) -> str:
        if isinstance(tree, exp.Select):  # Trino names unnamed select items _col0, _col1…
            for index, item in enumerate(tree.expressions):
                if not isinstance(item, (exp.Alias, exp.Column, exp.Star)):
                    item.replace(exp.alias_(item.copy(), f"_col{index}"))
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in list(tree.find_all(exp.Table)):
            if not table.name or isinstance(table.this, exp.Func):
                continue
            catalog, db = table.catalog, table.db
            if not db and table.name.lower() in ctes:
                continue
            if not catalog and db.lower() != "information_schema":
                if not db:
                    if not session.schema:
                        raise TrinoError(
                            "MISSING_SCHEMA_NAME",
                            41,
                            "Schema must be specified when session schema is not set",
                        )
                    db = session.schema
                catalog = session.catalog or ""
            catalog = catalog or session.catalog or ""
            if catalog.lower() == "system":
                body = _SYSTEM_TABLES.get((db.lower(), table.name.lower()))
                if body is None:
                    raise TrinoError(
                        "TABLE_NOT_FOUND", 46, f"Table 'system.{db}.{table.name}' does not exist"
                    )
                self._replace(table, body)
                continue
            catalog = self._catalog(catalog)
            if db.lower() == "information_schema":
                body = _information_schema(table.name.lower(), catalog)
                if body is None:
                    raise TrinoError(
                        "TABLE_NOT_FOUND",
                        46,
                        f"Table '{catalog}.information_schema.{table.name}' does not exist",
                    )
                self._replace(table, body)
                continue
            table.set("catalog", exp.to_identifier(catalog))
            table.set("db", exp.to_identifier(db))
        for func in list(tree.find_all(exp.Anonymous)):
            if func.name.lower() == "version" and not func.expressions:
                func.replace(exp.Literal.string(TRINO_VERSION))
        for node in list(tree.find_all(exp.CurrentUser)):
            node.replace(exp.Literal.string(session.user))
        for column in list(tree.find_all(exp.Column)):
            if column.table or column.this is None:
                continue
            name = column.name.lower()
            if name == "current_catalog" and not column.this.quoted:
                column.replace(exp.Literal.string(session.catalog or "") if session.catalog else exp.Null())
            elif name == "current_schema" and not column.this.quoted:
                column.replace(exp.Literal.string(session.schema) if session.schema else exp.Null())
        for node in list(tree.find_all(exp.CurrentCatalog)):
            node.replace(exp.Literal.string(session.catalog) if session.catalog else exp.Null())
        for node in list(tree.find_all(exp.CurrentSchema)):
            node.replace(exp.Literal.string(session.schema) if session.schema else exp.Null())
        for node in list(tree.find_all(exp.CurrentVersion)):
            node.replace(exp.Literal.string(TRINO_VERSION))
        if isinstance(tree, exp.Alter):
            for action in tree.args.get("actions") or []:
                if isinstance(action, exp.AlterRename) and isinstance(action.this, exp.Table):
                    action.this.set("catalog", None)
                    action.this.set("db", None)
        return tree.sql(dialect="duckdb")

    @staticmethod
    def _replace(table: exp.Table, body: str) -> None:
        alias = table.alias or table.name
        table.replace(
            exp.Subquery(
                this=sqlglot.parse_one(body, read="duckdb"),
                alias=exp.TableAlias(this=exp.to_identifier(alias)),
            )
        )

    def _execute(self, tree: exp.Expression, translated: str, cursor: Any) -> Result:
        if isinstance(tree, (exp.Query, exp.Describe)):
            relation = cursor.sql(translated)
            types = [trino_type(t) for t in relation.types]
            columns = [
                {"name": name, "type": tname, "typeSignature": sig}
                for name, (tname, sig) in zip(relation.columns, types, strict=True)
            ]
            rows = [[trino_value(v) for v in row] for row in relation.fetchall()]
            return Result(columns=columns, rows=rows)
        fetched = cursor.execute(translated).fetchall()
        count = int(fetched[0][0]) if fetched and fetched[0] and isinstance(fetched[0][0], int) else None
        if isinstance(tree, exp.Create):
            kind = str(tree.args.get("kind") or "TABLE").upper()
            if kind == "TABLE" and tree.expression is not None:
                return _rows_result("CREATE TABLE", count or 0)
            return Result(update_type=f"CREATE {kind}")
        if type(tree) in _UPDATE_TYPES:
            return _rows_result(_UPDATE_TYPES[type(tree)], count or 0)
        if isinstance(tree, exp.Drop):
            return Result(update_type=f"DROP {str(tree.args.get('kind') or 'TABLE').upper()}")
        if isinstance(tree, exp.Alter):
            actions = tree.args.get("actions") or []
            if actions and isinstance(actions[0], exp.AlterRename):
                return Result(update_type=f"RENAME {str(tree.args.get('kind') or 'TABLE').upper()}")
            return Result(update_type="ADD COLUMN")
        return Result(update_type=type(tree).__name__.upper())


def _rows_result(update_type: str, count: int) -> Result:
    return Result(
        columns=[{"name": "rows", "type": "bigint", "typeSignature": _signature("bigint")}],
        rows=[[count]],
        update_type=update_type,
        update_count=count,
    )


def _table(names: list[str], rows: list[list[Any]]) -> Result:
    varchar = _signature("varchar", _long(2147483647))
    return Result(
        columns=[{"name": n, "type": "varchar", "typeSignature": varchar} for n in names], rows=rows
    )


def _stats(state: str) -> dict[str, Any]:
    return {
        "state": state,
        "queued": state == "QUEUED",
        "scheduled": state != "QUEUED",
        "nodes": 1,
        "totalSplits": 0,
        "queuedSplits": 0,
        "runningSplits": 0,
        "completedSplits": 0,
        "cpuTimeMillis": 0,
        "wallTimeMillis": 0,
        "queuedTimeMillis": 0,
        "elapsedTimeMillis": 0,
        "processedRows": 0,
        "processedBytes": 0,
        "physicalInputBytes": 0,
        "peakMemoryBytes": 0,
        "spilledBytes": 0,
    }


def _header_pairs(value: str | None, plus: bool = False) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in (value or "").split(","):
        name, sep, raw = item.strip().partition("=")
        if sep:
            pairs[name.strip()] = urllib.parse.unquote_plus(raw) if plus else urllib.parse.unquote(raw)
    return pairs


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name.lower()


def _like(value: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _bind(statement: str, arguments: str | None) -> str:
    """``statement`` with each ``?`` outside quotes replaced by the next ``USING`` expression."""
    values = _split_arguments(arguments or "")
    out, index, quote = [], 0, ""
    for char in statement:
        if quote:
            quote = "" if char == quote else quote
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            if index >= len(values):
                raise TrinoError(
                    "INVALID_PARAMETER_USAGE",
                    79,
                    "Incorrect number of parameters: expected more than provided",
                )
            out.append(values[index])
            index += 1
            continue
        out.append(char)
    if index != len(values):
        raise TrinoError(
            "INVALID_PARAMETER_USAGE",
            79,
            f"Incorrect number of parameters: expected {index} but found {len(values)}",
        )
    return "".join(out)


def _split_arguments(text: str) -> list[str]:
    values, current, depth, quote = [], [], 0, False
    for char in text:
        if char == "'":
            quote = not quote
        elif not quote and char in "([":
            depth += 1
        elif not quote and char in ")]":
            depth -= 1
        elif not quote and depth == 0 and char == ",":
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        values.append("".join(current).strip())
    return values
