"""A scripted Databricks SQL warehouse on 127.x.y.z:443 over TLS: the Statement Execution API.

No Databricks runtime can run here (``brickhouse`` answered the connector but not dbt-databricks),
so this is a plain HTTPS server speaking the real REST protocols the unmodified clients use:

- the SQL Statement Execution API (``use_sea=True`` in databricks-sql-connector 4):
  ``POST/DELETE /api/2.0/sql/sessions[/{id}]``, ``POST /api/2.0/sql/statements``,
  ``GET/DELETE /api/2.0/sql/statements/{id}``, ``POST .../cancel``. Results come back as an Arrow
  IPC stream in ``result.attachment`` (for ``ARROW_STREAM``) or as ``data_array`` (``JSON_ARRAY``),
  as the service does;
- Databricks OAuth for service principals (machine-to-machine), as the databricks-sdk discovers and
  uses it: ``GET /.well-known/databricks-config`` (host metadata),
  ``GET /oidc/.well-known/oauth-authorization-server`` and ``POST /oidc/v1/token`` with
  ``grant_type=client_credentials`` (client id and secret checked, from HTTP Basic or the form);
- the connector's side channels: ``/api/2.0/connector-service/feature-flags/...`` and
  ``/telemetry-ext`` (accepted, recorded).

Every API call needs ``Authorization: Bearer <token>`` for a personal access token the peer was
given or an OAuth token it issued (else ``401``, as Databricks answers). The peer listens on port
443 of a random loopback address (``127.a.b.c``) so that the clients reach it by host name alone, as
they reach a workspace: dbt-databricks hands the same ``host`` to the SDK (which has no port
setting) and to the connector. Its certificate comes from a throw-away CA; point ``SSL_CERT_FILE``
and ``REQUESTS_CA_BUNDLE`` at :attr:`DatabricksPeer.ca_file` to trust it.

SQL is run by a tiny interpreter: ``SELECT <literal> [AS name], ...``, ``current_catalog()``,
``current_schema()``/``current_database()``, ``SET k = v``, ``USE [CATALOG|SCHEMA] x``,
``CREATE SCHEMA IF NOT EXISTS``, ``CREATE OR REPLACE VIEW|TABLE ... AS <select>``, ``DROP``,
``SHOW SCHEMAS``/``SHOW TABLES``/``SHOW VIEWS`` and ``SELECT * FROM`` a relation it created; anything
else FAILS with ``PARSE_SYNTAX_ERROR`` as the service reports unparsable SQL.
"""

from __future__ import annotations

import base64
import datetime
import errno
import io
import json
import random
import re
import secrets
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_LITERAL = re.compile(
    r"^\s*(?P<value>-?\d+(?:\.\d+)?|'(?:[^'\\]|\\.|'')*'|true|false|null"
    r"|current_catalog\(\)|current_schema\(\)|current_database\(\)|current_user\(\)|current_version\(\))"
    r"(?:\s+(?:as\s+)?(?P<name>`?[A-Za-z_][A-Za-z0-9_]*`?))?\s*$",
    re.I,
)
_NAME = r"`?[A-Za-z0-9_]+`?"
_RELATION = rf"(?:{_NAME}\.){{0,2}}{_NAME}"
_INFO_TABLES = re.compile(
    r"from\s+`?system`?\.`?information_schema`?\.`?tables`?\s+where\s+table_catalog\s*=\s*'(?P<catalog>[^']*)'"
    r"\s+and\s+table_schema\s*=\s*'(?P<schema>[^']*)'\s*$",
    re.I,
)


class QueryError(Exception):
    """SQL the peer refuses; answered as a FAILED statement with an error code."""

    def __init__(self, code: str, message: str, sql_state: str = "42000") -> None:
        super().__init__(message)
        self.code = code
        self.sql_state = sql_state


def _strip(name: str) -> str:
    return name.strip().strip("`")


class Session:
    def __init__(self, catalog: str, schema: str, confs: dict[str, str]) -> None:
        self.catalog = catalog
        self.schema = schema
        self.confs = confs


class DatabricksPeer:
    """The peer's state; run one with :func:`serve`."""

    def __init__(self, warehouse_id: str = "floe0123456789ab", catalogs: tuple[str, ...] = ("main",),
                 schemas: tuple[str, ...] = ("default", "analytics")) -> None:  # fmt: skip
        self.warehouse_id = warehouse_id
        self.workspace_id = str(random.randint(10**15, 10**16 - 1))
        self.catalogs: dict[str, set[str]] = {c: set(schemas) for c in catalogs}
        self.relations: dict[tuple[str, str, str], tuple[str, list[tuple[str, str]], list[list[Any]]]] = {}
        self.tokens: set[str] = set()
        self.no_access: set[str] = set()
        """Valid tokens whose principal may not use the warehouse (sessions answered ``403``)."""
        self.clients: dict[str, str] = {}
        """OAuth service principals: client_id -> client secret."""
        self.refuse_statements: tuple[int, str, str] | None = None
        """When set, ``(status, error_code, message)`` answers every ``POST /api/2.0/sql/statements``
        (as the service answers a request it refuses, e.g. ``400 INVALID_PARAMETER_VALUE``)."""
        self.sessions: dict[str, Session] = {}
        self.statements: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.queries: list[str] = []
        self.telemetry: list[Any] = []
        self.lock = threading.Lock()
        self.host = ""
        self.ca_file = ""

    @property
    def http_path(self) -> str:
        return f"/sql/1.0/warehouses/{self.warehouse_id}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def add_token(self) -> str:
        token = "dapi" + secrets.token_hex(16)
        self.tokens.add(token)
        return token

    def add_service_principal(self) -> tuple[str, str]:
        """A service principal's OAuth client id and secret (Databricks secrets start with ``dose``)."""
        client_id = str(uuid.uuid4())
        secret = "dose" + secrets.token_hex(16)
        self.clients[client_id] = secret
        return client_id, secret

    # -- OAuth ----------------------------------------------------------------------------------

    def oidc(self) -> dict[str, Any]:
        return {
            "issuer": f"{self.url}/oidc",
            "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
            "token_endpoint": f"{self.url}/oidc/v1/token",
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
        if not client_id or self.clients.get(client_id) != secret:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        token = "eyJpeer." + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope", "all-apis")}

    # -- the Statement Execution API ------------------------------------------------------------

    def open_session(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("warehouse_id") != self.warehouse_id:
            return _api_error(404, "RESOURCE_DOES_NOT_EXIST", f"SQL warehouse {body.get('warehouse_id')} does not exist.")
        catalog = body.get("catalog") or next(iter(self.catalogs))  # the workspace default catalog
        schema = body.get("schema") or "default"
        if catalog not in self.catalogs:
            return _api_error(400, "INVALID_PARAMETER_VALUE",
                              f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{catalog}' was not found. SQLSTATE: 42704")  # fmt: skip
        session_id = str(uuid.uuid4())
        self.sessions[session_id] = Session(catalog, schema, dict(body.get("session_confs") or {}))
        return 200, {"session_id": session_id}

    def execute(self, body: dict[str, Any]) -> tuple[int, Any]:
        session = self.sessions.get(str(body.get("session_id")))
        if session is None:
            return _api_error(404, "NOT_FOUND", f"Session {body.get('session_id')} does not exist.")
        statement_id = str(uuid.uuid4())
        sql = str(body.get("statement", ""))
        self.queries.append(sql)
        try:
            columns, rows = self.run(session, sql)
        except QueryError as exc:
            response: dict[str, Any] = {
                "statement_id": statement_id,
                "status": {"state": "FAILED", "sql_state": exc.sql_state,
                           "error": {"error_code": exc.code, "message": str(exc)}},
            }  # fmt: skip
        else:
            response = {
                "statement_id": statement_id,
                "status": {"state": "SUCCEEDED"},
                "manifest": _manifest(str(body.get("format") or "JSON_ARRAY"), columns, rows),
                "result": _result(str(body.get("format") or "JSON_ARRAY"), columns, rows),
            }
        self.statements[statement_id] = response
        return 200, response

    def run(self, session: Session, sql: str) -> tuple[list[tuple[str, str]], list[list[Any]]]:
        text = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
        lowered = text.lower()
        if match := re.match(r"^set\s+(?P<key>[\w.]+)\s*(?:=\s*(?P<value>.*))?$", text, re.I | re.S):
            if match["value"] is None:
                key = match["key"]
                return [("key", "STRING"), ("value", "STRING")], [[key, session.confs.get(key, "<undefined>")]]
            session.confs[match["key"]] = match["value"].strip()
            return [("key", "STRING"), ("value", "STRING")], [[match["key"], match["value"].strip()]]
        if match := re.match(rf"^use\s+(?P<kind>catalog\s+|schema\s+|database\s+)?(?P<name>{_NAME})$", text, re.I):
            if (match["kind"] or "").strip().lower() == "catalog":
                session.catalog = self._catalog(_strip(match["name"]))
            else:
                session.schema = _strip(match["name"])
            return [], []
        if match := re.match(rf"^create\s+(?:schema|database)\s+(?:if\s+not\s+exists\s+)?(?P<name>{_RELATION})$", text, re.I):
            catalog, schema = self._schema_name(session, match["name"])
            self._catalog(catalog).add(schema)
            return [], []
        if match := re.match(
            rf"^create\s+(?:or\s+replace\s+)?(?P<kind>view|table)\s+(?:if\s+not\s+exists\s+)?(?P<name>{_RELATION})"
            r"(?P<rest>.*?)\bas\s*(?P<body>\(?\s*select\b.*)$",
            text, re.I | re.S,
        ):  # fmt: skip
            key = self._relation(session, match["name"])
            columns, rows = self.run(session, match["body"].strip())
            self.relations[key] = (match["kind"].upper(), columns, rows)
            return [], []
        if match := re.match(rf"^drop\s+(?:view|table)\s+(?:if\s+exists\s+)?(?P<name>{_RELATION})$", text, re.I):
            self.relations.pop(self._relation(session, match["name"]), None)
            return [], []
        if match := re.match(rf"^show\s+(?:schemas|databases)(?:\s+(?:in|from)\s+(?P<catalog>{_NAME}))?(?:\s+like\s+'(?P<like>[^']*)')?$", text, re.I):
            catalog = _strip(match["catalog"]) if match["catalog"] else session.catalog
            names = sorted(self._catalog(catalog))
            return [("databaseName", "STRING")], [[n] for n in names if _like(n, match["like"])]
        if match := re.match(rf"^show\s+(?P<kind>tables|views)(?:\s+(?:in|from)\s+(?P<schema>{_RELATION}))?(?:\s+like\s+'(?P<like>[^']*)')?$", text, re.I):
            catalog, schema = self._schema_name(session, match["schema"]) if match["schema"] else (session.catalog, session.schema)
            if schema not in self._catalog(catalog):
                raise QueryError("SCHEMA_NOT_FOUND", f"[SCHEMA_NOT_FOUND] The schema `{catalog}`.`{schema}` cannot be found.", "42704")
            wanted = {"tables": ("TABLE", "VIEW"), "views": ("VIEW",)}[match["kind"].lower()]
            found = [[schema, n, False] for (c, s, n), (kind, _, _) in sorted(self.relations.items())
                     if (c, s) == (catalog, schema) and kind in wanted and _like(n, match["like"])]  # fmt: skip
            if match["kind"].lower() == "views":
                return [("namespace", "STRING"), ("viewName", "STRING"), ("isTemporary", "BOOLEAN")], found
            return [("database", "STRING"), ("tableName", "STRING"), ("isTemporary", "BOOLEAN")], found
        if match := _INFO_TABLES.search(text):
            catalog, schema = match["catalog"], match["schema"]
            found = [[n, kind.lower(), "delta" if kind == "TABLE" else None, "peer@floe.test",
                      "managed" if kind == "TABLE" else None]
                     for (c, s, n), (kind, _, _) in sorted(self.relations.items()) if (c, s) == (catalog, schema)]  # fmt: skip
            return [("table_name", "STRING"), ("table_type", "STRING"), ("file_format", "STRING"),
                    ("table_owner", "STRING"), ("databricks_table_type", "STRING")], found  # fmt: skip
        if match := re.match(rf"^select\s+\*\s+from\s+(?P<name>{_RELATION})(?:\s+limit\s+\d+)?$", text, re.I | re.S):
            key = self._relation(session, match["name"])
            if key not in self.relations:
                raise QueryError("TABLE_OR_VIEW_NOT_FOUND",
                                 f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{'`.`'.join(key)}` cannot be found.", "42P01")  # fmt: skip
            _, columns, rows = self.relations[key]
            return columns, rows
        if lowered.startswith("select") or lowered.startswith("("):
            return self._select(session, text)
        raise QueryError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error: the test peer cannot run: {text[:80]}", "42601")

    def _select(self, session: Session, text: str) -> tuple[list[tuple[str, str]], list[list[Any]]]:
        body = text
        while body.startswith("(") and body.endswith(")"):
            body = body[1:-1].strip()
        body = re.sub(r"\s+limit\s+\d+\s*$", "", body, flags=re.I)
        match = re.match(r"^select\s+(?P<items>.+)$", body, re.I | re.S)
        if not match:
            raise QueryError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error at or near: {body[:40]}", "42601")
        columns: list[tuple[str, str]] = []
        row: list[Any] = []
        for item in _split(match["items"]):
            literal = _LITERAL.match(item)
            if not literal:
                raise QueryError("UNRESOLVED_COLUMN", f"[UNRESOLVED_COLUMN] cannot resolve: {item.strip()[:60]}", "42703")
            value = literal["value"]
            name = _strip(literal["name"]) if literal["name"] else value
            lowered = value.lower()
            if lowered == "current_catalog()":
                columns.append((name, "STRING"))
                row.append(session.catalog)
            elif lowered in ("current_schema()", "current_database()"):
                columns.append((name, "STRING"))
                row.append(session.schema)
            elif lowered == "current_user()":
                columns.append((name, "STRING"))
                row.append("peer@floe.test")
            elif lowered == "current_version()":
                columns.append((name, "STRING"))
                row.append("dbsql_version=2026.40")
            elif lowered in ("true", "false"):
                columns.append((name, "BOOLEAN"))
                row.append(lowered == "true")
            elif lowered == "null":
                columns.append((name, "VOID"))
                row.append(None)
            elif value.startswith("'"):
                columns.append((name, "STRING"))
                row.append(value[1:-1].replace("''", "'"))
            elif "." in value:
                columns.append((name, "DECIMAL"))
                row.append(float(value))
            else:
                columns.append((name, "INT"))
                row.append(int(value))
        return columns, [row]

    def _catalog(self, name: str) -> set[str]:
        if name not in self.catalogs:
            raise QueryError("NO_SUCH_CATALOG_EXCEPTION", f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{name}' was not found.", "42704")
        return self.catalogs[name]

    def _schema_name(self, session: Session, text: str) -> tuple[str, str]:
        parts = [_strip(p) for p in text.split(".")]
        return (parts[0], parts[1]) if len(parts) == 2 else (session.catalog, parts[-1])

    def _relation(self, session: Session, text: str) -> tuple[str, str, str]:
        parts = [_strip(p) for p in text.split(".")]
        while len(parts) < 3:
            parts.insert(0, session.schema if len(parts) == 1 else session.catalog)
        catalog, schema, name = parts
        if schema not in self._catalog(catalog):
            raise QueryError("SCHEMA_NOT_FOUND", f"[SCHEMA_NOT_FOUND] The schema `{catalog}`.`{schema}` cannot be found.", "42704")
        return catalog, schema, name


def _like(name: str, pattern: str | None) -> bool:
    if not pattern:
        return True
    return any(re.fullmatch(p.strip().replace("*", ".*"), name, re.I) for p in pattern.split("|"))


def _split(text: str) -> list[str]:
    items, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char == "'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items


_ARROW_TYPES = {"INT": "int32", "STRING": "string", "BOOLEAN": "bool", "DECIMAL": "float64", "VOID": "null"}


def _manifest(fmt: str, columns: list[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "format": "ARROW_STREAM" if fmt == "ARROW_STREAM" else "JSON_ARRAY",
        "schema": {
            "column_count": len(columns),
            "columns": [{"name": n, "type_name": t, "type_text": t.lower(), "position": i}
                        for i, (n, t) in enumerate(columns)],
        },
        "total_row_count": len(rows),
        "total_chunk_count": 1,
        "chunks": [{"chunk_index": 0, "row_offset": 0, "row_count": len(rows)}],
        "truncated": False,
    }


def _result(fmt: str, columns: list[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {"chunk_index": 0, "row_offset": 0, "row_count": len(rows)}
    if fmt == "ARROW_STREAM":
        import pyarrow as pa

        fields = [pa.field(n, getattr(pa, _ARROW_TYPES.get(t, "string"))()) for n, t in columns]
        table = pa.Table.from_pylist([dict(zip([n for n, _ in columns], r, strict=True)) for r in rows],
                                     schema=pa.schema(fields))  # fmt: skip
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        result["attachment"] = base64.b64encode(sink.getvalue()).decode()
    else:
        result["data_array"] = [[None if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in r]
                                for r in rows]  # fmt: skip
    return result


def _api_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error_code": code, "message": message}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        peer = self.server.peer
        split = urlsplit(self.path)
        path = split.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with peer.lock:
            peer.requests.append((method, path))
        authorization = self.headers.get("Authorization", "")
        if path == "/.well-known/databricks-config" and method == "GET":
            self._send(200, {"oidc_endpoint": f"{peer.url}/oidc", "workspace_id": peer.workspace_id, "cloud": "aws"})
            return
        if path == "/oidc/.well-known/oauth-authorization-server" and method == "GET":
            self._send(200, peer.oidc())
            return
        if path == "/oidc/v1/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            self._send(*peer.token(form, authorization))
            return
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if token not in peer.tokens:
            self._send(401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
            return
        body = json.loads(raw) if raw else {}
        if path.startswith("/api/2.0/connector-service/feature-flags/"):
            self._send(200, {"flags": [], "ttl_seconds": 900})
            return
        if path == "/telemetry-ext":
            peer.telemetry.append(body)
            self._send(200, {"errors": [], "numSuccess": 1, "numProtoSuccess": 1})
            return
        parts = path.rstrip("/").split("/")
        with peer.lock:
            if path == "/api/2.0/sql/sessions" and method == "POST" and token in peer.no_access:
                self._send(*_api_error(403, "PERMISSION_DENIED", "User does not have CAN USE on warehouse."))
            elif path == "/api/2.0/sql/sessions" and method == "POST":
                self._send(*peer.open_session(body))
            elif path.startswith("/api/2.0/sql/sessions/") and method == "DELETE":
                peer.sessions.pop(parts[-1], None)
                self._send(200, {})
            elif path == "/api/2.0/sql/statements" and method == "POST" and peer.refuse_statements:
                self._send(*_api_error(*peer.refuse_statements))
            elif path == "/api/2.0/sql/statements" and method == "POST":
                self._send(*peer.execute(body))
            elif path.startswith("/api/2.0/sql/statements/") and len(parts) == 6:
                found = peer.statements.get(parts[-1])
                if found is None:
                    self._send(*_api_error(404, "NOT_FOUND", f"Statement {parts[-1]} not found"))
                elif method == "DELETE":
                    peer.statements.pop(parts[-1], None)
                    self._send(200, {})
                else:
                    self._send(200, found)
            elif path.endswith("/cancel") and method == "POST":
                self._send(200, {})
            else:
                self._send(*_api_error(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'"))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peer: DatabricksPeer


def make_certificates(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for ``address`` (as IP SAN): (ca, cert, key) files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floe test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return ca_file, cert_file, key_file


def _bind(port: int) -> _Server:
    """A server on ``port`` of a random 127.a.b.c address (another test run may hold one)."""
    last: OSError | None = None
    for _ in range(20):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
        try:
            return _Server((address, port), _Handler)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                raise
            last = exc
    raise RuntimeError(f"no free loopback address with port {port}: {last}")


@contextmanager
def serve(peer: DatabricksPeer | None = None, port: int = 443) -> Iterator[DatabricksPeer]:
    """Run ``peer`` over TLS on ``port`` (443: binding it needs root, as CI and sessions run)."""
    peer = peer or DatabricksPeer()
    server = _bind(port)
    server.peer = peer
    address = str(server.server_address[0])
    with tempfile.TemporaryDirectory(prefix="floe-dbx-peer-") as folder:
        ca_file, cert_file, key_file = make_certificates(Path(folder), address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        peer.host = address if port == 443 else f"{address}:{port}"
        peer.ca_file = str(ca_file)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="databricks-peer", daemon=True)  # fmt: skip
        thread.start()
        try:
            yield peer
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
