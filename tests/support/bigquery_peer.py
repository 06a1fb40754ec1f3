"""A scripted BigQuery peer on 127.0.0.1: Google's OAuth token endpoint and a BigQuery REST subset.

BigQuery itself is served by ``bqemulator`` (:mod:`tests.support.bqemulator`), which accepts any
access token and has no IAM. This peer answers what the emulator cannot show, the way Google does,
so that the unmodified clients talk to it: the OAuth 2.0 token endpoint that service accounts and
refresh tokens use (checked for real), and BigQuery's own answers to a refused access token (401), a
denied dataset (403) and a missing one (BigQuery's wording):

- ``POST /token``: the OAuth token endpoint. It checks what the client sends: a service account's
  JWT assertion (RS256, verified against the account's registered public key, ``aud`` = the token
  URI) or a refresh token with its OAuth client's id and secret; anything else is ``invalid_grant``.
- ``/bigquery/v2/...``: needs ``Authorization: Bearer <token>`` for a token the peer issued or was
  told to accept (else ``401 UNAUTHENTICATED`` with Google's error body). It serves datasets
  (get, insert, list), tables (list, get, delete), jobs (insert, get, cancel), query results
  (``jobs.getQueryResults``) and ``jobs.query``.

Queries are run by a tiny interpreter: ``SELECT <literal> [AS name], ...`` (optionally ending in a
``LIMIT``), ``CREATE [OR REPLACE] VIEW|TABLE <ref> ... AS (<select>)``, ``DROP VIEW|TABLE [IF EXISTS]
<ref>``, and ``SELECT ... FROM <ref>`` of a view or table it created. Everything else is answered
with ``400 invalidQuery``, as BigQuery answers SQL it cannot parse. Every request is recorded in
:attr:`BigQueryPeer.requests` (path, method, the Authorization scheme only).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
"""The audience google-auth puts in every service-account assertion, whatever the token URI."""
_PREFIX = "/bigquery/v2/projects/"
RESULTS_DATASET = "_peer_results"
"""The anonymous dataset query results are written to (hidden from dataset lists, as in BigQuery)."""
_IDENT = r"`?[A-Za-z0-9_.-]+`?"
_REF = re.compile(rf"^({_IDENT})(?:\.({_IDENT}))?(?:\.({_IDENT}))?$")
_CREATE = re.compile(
    r"^\s*create\s+(?:or\s+replace\s+)?(?P<kind>view|table)\s+(?:if\s+not\s+exists\s+)?"
    r"(?P<ref>[`A-Za-z0-9_.-]+)(?P<rest>.*?)\bas\s*(?P<body>\(?\s*select\b.*)$",
    re.I | re.S,
)
_DROP = re.compile(
    r"^\s*drop\s+(?P<kind>view|table)\s+(?:if\s+exists\s+)?(?P<ref>[`A-Za-z0-9_.-]+)\s*$", re.I
)
_SELECT_FROM = re.compile(
    r"^\s*select\s+\*\s+from\s+(?P<ref>[`A-Za-z0-9_.-]+)\s*(?:limit\s+\d+)?\s*$", re.I | re.S
)
_LITERAL = re.compile(
    r"^\s*(?P<value>-?\d+(?:\.\d+)?|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|true|false|null)"
    r"(?:\s+as\s+(?P<name>`?[A-Za-z_][A-Za-z0-9_]*`?))?\s*$",
    re.I,
)
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)


class QueryError(Exception):
    """SQL the peer cannot run; answered as BigQuery's ``400 invalidQuery``."""


def _strip_ident(text: str) -> str:
    return text.strip().strip("`")


def run_select(sql: str) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """The schema and rows of ``SELECT <literal> [AS name], ...`` (with an optional LIMIT)."""
    body = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
    while body.startswith("(") and body.endswith(")"):
        body = body[1:-1].strip()
    body = re.sub(r"\s+limit\s+\d+\s*$", "", body, flags=re.I)
    match = re.match(r"^select\s+(?P<items>.+)$", body, re.I | re.S)
    if not match:
        raise QueryError(f"Syntax error: the test peer runs only SELECT of literals, got: {body[:80]}")
    schema: list[dict[str, str]] = []
    row: list[Any] = []
    for index, item in enumerate(_split_items(match["items"])):
        literal = _LITERAL.match(item)
        if not literal:
            raise QueryError(f"Syntax error: Unrecognized name or expression: {item.strip()[:60]}")
        value = literal["value"]
        name = _strip_ident(literal["name"]) if literal["name"] else f"f{index}_"
        if value.lower() in ("true", "false"):
            schema.append({"name": name, "type": "BOOLEAN", "mode": "NULLABLE"})
            row.append(value.lower())
        elif value.lower() == "null":
            schema.append({"name": name, "type": "INTEGER", "mode": "NULLABLE"})
            row.append(None)
        elif value[0] in "'\"":
            schema.append({"name": name, "type": "STRING", "mode": "NULLABLE"})
            row.append(value[1:-1].replace(value[0] * 2, value[0]))
        else:
            schema.append({"name": name, "type": "FLOAT" if "." in value else "INTEGER", "mode": "NULLABLE"})
            row.append(value)
    return schema, [row]


def _split_items(text: str) -> list[str]:
    items, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
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


class BigQueryPeer:
    """The peer's state and its HTTP server; use :func:`serve` to run one."""

    def __init__(
        self, project: str = "floe-test", datasets: tuple[str, ...] = ("analytics",), location: str = "US"
    ) -> None:
        self.project = project
        self.location = location
        self.datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.tables: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.results: dict[tuple[str, str], tuple[list[dict[str, str]], list[list[Any]]]] = {}
        self.tokens: set[str] = set()
        self.service_accounts: dict[str, str] = {}
        """client_email -> public key PEM."""
        self.oauth_clients: dict[str, str] = {}
        """client_id -> client_secret."""
        self.refresh_tokens: dict[str, str] = {}
        """refresh token -> client_id it was issued to."""
        self.requests: list[tuple[str, str, str]] = []
        self.denied: set[tuple[str, str]] = set()
        """Datasets the caller may not read (answered ``403 accessDenied``)."""
        self.queries: list[str] = []
        self.lock = threading.Lock()
        for dataset in datasets:
            self.add_dataset(project, dataset)
        self._server: ThreadingHTTPServer | None = None

    # -- set-up ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def add_dataset(self, project: str, dataset: str) -> None:
        self.datasets[(project, dataset)] = {
            "kind": "bigquery#dataset",
            "id": f"{project}:{dataset}",
            "datasetReference": {"projectId": project, "datasetId": dataset},
            "location": self.location,
            "creationTime": str(int(time.time() * 1000)),
            "lastModifiedTime": str(int(time.time() * 1000)),
            "etag": secrets.token_hex(8),
        }

    def issue_token(self) -> str:
        token = "ya29.peer-" + secrets.token_urlsafe(16)
        with self.lock:
            self.tokens.add(token)
        return token

    def add_service_account(self, email: str, public_key_pem: str) -> None:
        self.service_accounts[email] = public_key_pem

    def add_oauth_client(self, client_id: str, client_secret: str) -> str:
        """Register an OAuth client and return a refresh token issued to it."""
        self.oauth_clients[client_id] = client_secret
        refresh = "1//peer-" + secrets.token_urlsafe(16)
        self.refresh_tokens[refresh] = client_id
        return refresh

    # -- the API --------------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if grant == JWT_BEARER:
            from google.auth import jwt

            assertion = form.get("assertion", "")
            try:
                claims = jwt.decode(assertion, verify=False)
                key = self.service_accounts.get(str(claims.get("iss")))
                if key is None:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "Invalid grant: account not found",
                    }
                claims = jwt.decode(assertion, certs=key, audience=[self.token_uri, GOOGLE_TOKEN_URI])
            except ValueError as exc:
                return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"}
        elif grant == "refresh_token":
            client = self.refresh_tokens.get(form.get("refresh_token", ""))
            if client is None or client != form.get("client_id"):
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            if self.oauth_clients.get(client) != form.get("client_secret"):
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        else:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": f"Invalid grant_type: {grant}",
            }
        return 200, {"access_token": self.issue_token(), "expires_in": 3599, "token_type": "Bearer"}

    def api(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path[len(_PREFIX) :].split("/")]
        project = parts[0]
        rest = parts[1:]
        if rest == ["datasets"] and method == "GET":
            items = [
                {
                    "kind": "bigquery#dataset",
                    "id": d["id"],
                    "datasetReference": d["datasetReference"],
                    "location": d["location"],
                }
                for (p, name), d in sorted(self.datasets.items())
                if p == project and not name.startswith("_")
            ]
            return 200, {"kind": "bigquery#datasetList", "datasets": items}
        if rest == ["datasets"] and method == "POST":
            dataset = body["datasetReference"]["datasetId"]
            if (project, dataset) in self.datasets:
                return _error(409, "duplicate", f"Already Exists: Dataset {project}:{dataset}")
            self.add_dataset(project, dataset)
            return 200, self.datasets[(project, dataset)]
        if len(rest) >= 2 and rest[0] == "datasets":
            dataset = rest[1]
            if (project, dataset) in self.denied:
                return _error(
                    403,
                    "accessDenied",
                    f"Access Denied: Dataset {project}:{dataset}: Permission "
                    f"bigquery.datasets.get denied on dataset {project}:{dataset} "
                    "(or it may not exist).",
                )
            if (project, dataset) not in self.datasets:
                return _error(404, "notFound", f"Not found: Dataset {project}:{dataset}")
            if len(rest) == 2 and method == "GET":
                return 200, self.datasets[(project, dataset)]
            if len(rest) == 2 and method == "DELETE":
                del self.datasets[(project, dataset)]
                return 204, None
            if rest[2:] == ["tables"] and method == "GET":
                tables = [
                    self._table_summary(t)
                    for (p, d, _), t in sorted(self.tables.items())
                    if (p, d) == (project, dataset)
                ]
                return 200, {"kind": "bigquery#tableList", "tables": tables, "totalItems": len(tables)}
            if rest[2:] == ["routines"] and method == "GET":
                return 200, {"kind": "bigquery#listRoutinesResponse", "routines": []}
            if len(rest) == 4 and rest[2] == "tables":
                key = (project, dataset, rest[3])
                if key not in self.tables:
                    return _error(404, "notFound", f"Not found: Table {project}:{dataset}.{rest[3]}")
                if method == "DELETE":
                    del self.tables[key]
                    return 204, None
                return 200, self.tables[key]
        if rest == ["jobs"] and method == "POST":
            return self._insert_job(project, body)
        if rest == ["queries"] and method == "POST":
            return self._jobs_query(project, body)
        if len(rest) >= 2 and rest[0] in ("jobs", "queries"):
            job = self.jobs.get((project, rest[1]))
            if job is None:
                return _error(404, "notFound", f"Not found: Job {project}:{rest[1]}")
            if rest[0] == "jobs" and rest[2:] == ["cancel"]:
                return 200, {"kind": "bigquery#jobCancelResponse", "job": job}
            if rest[0] == "jobs":
                return 200, job
            return 200, self._query_results(project, rest[1], job, query)
        return _error(400, "invalid", f"The test peer does not serve {method} {path}")

    # -- jobs -----------------------------------------------------------------------------------

    def _insert_job(self, project: str, body: dict[str, Any]) -> tuple[int, Any]:
        reference = dict(body.get("jobReference") or {})
        job_id = reference.get("jobId") or str(uuid.uuid4())
        if (project, job_id) in self.jobs:
            return _error(409, "duplicate", f"Already Exists: Job {project}:{self.location}.{job_id}")
        config = body.get("configuration", {})
        sql = config.get("query", {}).get("query", "")
        try:
            schema, rows, statement = self._run(project, sql, config.get("query", {}))
        except QueryError as exc:
            return _error(400, "invalidQuery", str(exc))
        reference.update(
            {"projectId": project, "jobId": job_id, "location": reference.get("location") or self.location}
        )
        now = str(int(time.time() * 1000))
        job = {
            "kind": "bigquery#job",
            "id": f"{project}:{reference['location']}.{job_id}",
            "jobReference": reference,
            "configuration": config,
            "status": {"state": "DONE"},
            "statistics": {
                "creationTime": now,
                "startTime": now,
                "endTime": now,
                "totalBytesProcessed": "0",
                "query": {
                    "totalBytesProcessed": "0",
                    "totalBytesBilled": "0",
                    "cacheHit": False,
                    "statementType": statement,
                    "totalSlotMs": "0",
                },
            },
            "user_email": "peer@floe.test",
        }
        if statement == "SELECT":  # results land in an anonymous table, as BigQuery does
            table = {
                "projectId": project,
                "datasetId": RESULTS_DATASET,
                "tableId": "anon" + job_id.replace("-", "_"),
            }
            job["configuration"]["query"]["destinationTable"] = table
            if (project, RESULTS_DATASET) not in self.datasets:
                self.add_dataset(project, RESULTS_DATASET)
            self.tables[(project, RESULTS_DATASET, table["tableId"])] = {
                "kind": "bigquery#table",
                "id": f"{project}:{RESULTS_DATASET}.{table['tableId']}",
                "tableReference": table,
                "type": "TABLE",
                "schema": {"fields": schema},
                "numRows": str(len(rows)),
                "location": self.location,
            }
        with self.lock:
            self.jobs[(project, job_id)] = job
            self.results[(project, job_id)] = (schema, rows)
        return 200, job

    def _jobs_query(self, project: str, body: dict[str, Any]) -> tuple[int, Any]:
        reference = {"jobId": body.get("requestId") or str(uuid.uuid4()), "location": body.get("location")}
        config = {
            "query": {
                k: v
                for k, v in body.items()
                if k in ("query", "useLegacySql", "labels", "maximumBytesBilled", "defaultDataset")
            }
        }
        status, job = self._insert_job(project, {"jobReference": reference, "configuration": config})
        if status != 200:
            return status, job
        return 200, self._query_results(project, job["jobReference"]["jobId"], job, {})

    def _query_results(
        self, project: str, job_id: str, job: dict[str, Any], query: dict[str, str]
    ) -> dict[str, Any]:
        schema, rows = self.results[(project, job_id)]
        start = int(query.get("startIndex", "0") or 0)
        limit = int(query.get("maxResults", "0") or 0) or len(rows)
        page = rows[start : start + limit]
        answer: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job["jobReference"],
            "jobComplete": True,
            "totalRows": str(len(rows)),
            "rows": [{"f": [{"v": v} for v in row]} for row in page],
            "totalBytesProcessed": "0",
            "cacheHit": False,
            "schema": {"fields": schema},
        }
        if start + limit < len(rows):
            answer["pageToken"] = str(start + limit)
        return answer

    def _run(
        self, project: str, sql: str, config: dict[str, Any]
    ) -> tuple[list[dict[str, str]], list[list[Any]], str]:
        self.queries.append(sql)
        text = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
        if create := _CREATE.match(text):
            key = self._reference(project, create["ref"])
            schema, rows = run_select(create["body"])
            kind = create["kind"].upper()
            self.tables[key] = {
                "kind": "bigquery#table",
                "id": f"{key[0]}:{key[1]}.{key[2]}",
                "tableReference": {"projectId": key[0], "datasetId": key[1], "tableId": key[2]},
                "type": kind,
                "schema": {"fields": schema},
                "numRows": str(len(rows) if kind == "TABLE" else 0),
                "location": self.location,
                "creationTime": str(int(time.time() * 1000)),
                **({"view": {"query": create["body"], "useLegacySql": False}} if kind == "VIEW" else {}),
            }
            self.results[("rows",) + key] = (schema, rows)  # type: ignore[index]
            return [], [], f"CREATE_{kind}"
        if drop := _DROP.match(text):
            key = self._reference(project, drop["ref"])
            self.tables.pop(key, None)
            return [], [], f"DROP_{drop['kind'].upper()}"
        if select := _SELECT_FROM.match(text):
            key = self._reference(project, select["ref"])
            if key not in self.tables:
                raise QueryError(
                    f"Not found: Table {key[0]}:{key[1]}.{key[2]} was not found in location {self.location}"
                )
            schema, rows = self.results[("rows",) + key]  # type: ignore[index]
            return schema, rows, "SELECT"
        schema, rows = run_select(text)
        return schema, rows, "SELECT"

    def _reference(self, project: str, text: str) -> tuple[str, str, str]:
        parts = [_strip_ident(p) for p in text.replace("`.`", ".").strip("`").split(".")]
        if len(parts) == 2:
            parts.insert(0, project)
        if len(parts) != 3:
            raise QueryError(
                f"Table name {text} missing dataset while no default dataset is set in the request"
            )
        p, d, t = parts
        if (p, d) not in self.datasets:
            raise QueryError(f"Not found: Dataset {p}:{d} was not found in location {self.location}")
        return p, d, t

    @staticmethod
    def _table_summary(table: dict[str, Any]) -> dict[str, Any]:
        return {k: table[k] for k in ("kind", "id", "tableReference", "type", "creationTime") if k in table}


def _error(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    status = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS",
    }.get(code, "UNKNOWN")
    return code, {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        peer = self.server.peer
        split = urlsplit(self.path)
        raw = self._body()
        auth = self.headers.get("Authorization", "")
        with peer.lock:
            peer.requests.append((method, split.path, auth.split(" ")[0] if auth else ""))
        if split.path == "/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            self._send(*peer.token(form))
            return
        if not split.path.startswith(_PREFIX):
            self._send(*_error(404, "notFound", f"Not Found: {split.path}"))
            return
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if token not in peer.tokens:
            self._send(
                *_error(
                    401,
                    "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                )
            )
            return
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        body = json.loads(raw) if raw else None
        try:
            status, payload = peer.api(method, split.path, query, body)
        except QueryError as exc:
            status, payload = _error(400, "invalidQuery", str(exc))
        self._send(status, payload)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peer: BigQueryPeer


@contextmanager
def serve(peer: BigQueryPeer | None = None, host: str = "127.0.0.1") -> Iterator[BigQueryPeer]:
    """Run ``peer`` (a fresh one by default) on ``host`` at a free port until the block ends."""
    peer = peer or BigQueryPeer()
    server = _Server((host, 0), _Handler)
    server.peer = peer
    peer._server = server
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="bigquery-peer", daemon=True
    )
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def service_account_key(email: str, token_uri: str, project: str) -> tuple[dict[str, str], str]:
    """A new RSA service-account key file (as a dict) and its public key PEM, like IAM issues."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": private,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
        "universe_domain": "googleapis.com",
    }
    return info, public
