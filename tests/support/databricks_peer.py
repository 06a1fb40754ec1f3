"""A scripted Databricks SQL warehouse on 127.x.y.z:443 over TLS: the Statement Execution API over DuckDB.

No Databricks runtime can run here (``brickhouse`` answered the connector but not dbt-databricks),
so this is a plain HTTPS server speaking the real REST protocols the unmodified clients use:

- the SQL Statement Execution API (``use_sea=True`` in databricks-sql-connector 4):
  ``POST/DELETE /api/2.0/sql/sessions[/{id}]``, ``POST /api/2.0/sql/statements`` (with named or
  positional ``parameters``), ``GET/DELETE /api/2.0/sql/statements/{id}``, ``POST .../cancel``.
  Results come back as an Arrow IPC stream in ``result.attachment`` (for ``ARROW_STREAM``) or as
  ``data_array`` (``JSON_ARRAY``), with the manifest's Databricks type names, as the service does;
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

SQL runs in DuckDB. Each Unity Catalog catalog is a DuckDB database attached in memory (``main``
is ``uc_main``: DuckDB reserves the name); each session has a DuckDB connection of its own, so its
temporary views are its own, as in Databricks. A statement is translated from Databricks SQL with
sqlglot: names are qualified with the session's catalog and schema (a one-part name that is one of
the session's temporary views stays unqualified, as Databricks resolves it), ``current_catalog()``,
``current_schema()``, ``current_user()`` and ``current_version()`` answer for the session, and
Databricks' forms DuckDB lacks are rewritten to what they mean: ``INSERT OVERWRITE`` (delete, then
insert), ``USING delta``/``TBLPROPERTIES``/``COMMENT`` clauses (accepted; the peer keeps no table
properties), ``ALTER … RENAME TO a.b.c``. The catalog is answered as Databricks answers it:
``SET`` (session confs), ``USE [CATALOG|SCHEMA]``, ``SHOW CATALOGS|SCHEMAS|TABLES|VIEWS``,
``SHOW TABLE EXTENDED``, ``SHOW TBLPROPERTIES``, ``DESCRIBE [TABLE] [EXTENDED] … [AS JSON]``, and the
``information_schema`` views of ``system`` and of each catalog (``tables``, ``views``, ``columns``,
``schemata``, ``catalogs``; tags, masks, row filters and constraints exist, empty) with Databricks'
type names (``int``, ``bigint``, ``string``, ``decimal(38,0)``…). Errors carry Databricks' error
classes (``TABLE_OR_VIEW_NOT_FOUND``, ``SCHEMA_NOT_FOUND``, ``PARSE_SYNTAX_ERROR``,
``UNRESOLVED_COLUMN``…). Every statement is recorded in :attr:`DatabricksPeer.queries`.
"""

from __future__ import annotations

import base64
import datetime
import decimal
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
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import sqlglot
from sqlglot import exp

from tests.support.joining_server import JoiningHTTPServer
from tests.support.trino_peer import quiet_sqlglot

_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_NAME = r"`(?:[^`]|``)+`|[A-Za-z0-9_]+"
_RELATION = rf"(?:(?:{_NAME})\.){{0,2}}(?:{_NAME})"
USER = "peer@floe.test"
VERSION = "16.4.x-photon-scala2.12"
"""What ``current_version().dbr_version`` says; the warehouse's ``dbsql_version`` is ``2026.40``."""


class QueryError(Exception):
    """SQL the peer refuses; answered as a FAILED statement with an error code."""

    def __init__(self, code: str, message: str, sql_state: str = "42000") -> None:
        super().__init__(message)
        self.code = code
        self.sql_state = sql_state


def _strip(name: str) -> str:
    name = name.strip()
    return name[1:-1].replace("``", "`") if name.startswith("`") and name.endswith("`") else name.lower()


def _parts(text: str) -> list[str]:
    return [_strip(p) for p in re.findall(_NAME, text)]


def duck(catalog: str) -> str:
    """The DuckDB database that holds Unity Catalog catalog ``catalog``."""
    return "uc_" + catalog.lower()


class Session:
    def __init__(self, catalog: str, schema: str, confs: dict[str, str], cursor: Any) -> None:
        self.catalog = catalog
        self.schema = schema
        self.confs = confs
        self.cursor = cursor
        """A DuckDB connection of the session's own: its temporary views are the session's."""


class DatabricksPeer:
    """The peer's state; run one with :func:`serve`."""

    def __init__(
        self,
        warehouse_id: str = "floe0123456789ab",
        catalogs: tuple[str, ...] = ("main",),
        schemas: tuple[str, ...] = ("default", "analytics"),
    ) -> None:
        self.warehouse_id = warehouse_id
        self.workspace_id = str(random.randint(10**15, 10**16 - 1))
        self.catalogs = [c.lower() for c in catalogs]
        self._db = duckdb.connect()
        for catalog in self.catalogs:
            self._db.execute(f"ATTACH ':memory:' AS \"{duck(catalog)}\"")
            for schema in schemas:
                self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{duck(catalog)}"."{schema}"')
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
        self.failures: list[tuple[str, str]] = []
        """(statement, error) of every statement that failed."""
        self.telemetry: list[Any] = []
        self.lock = threading.RLock()
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

    def query(self, sql: str, catalog: str = "main", schema: str = "default") -> list[tuple[Any, ...]]:
        """Rows of Databricks SQL ``sql`` run in a new session of the peer (for assertions)."""
        with self.lock:
            session = Session(catalog, schema, {}, self._db.cursor())
            try:
                table, _ = self.run(session, sql)
                columns = [c.to_pylist() for c in table.columns]
                return list(zip(*columns, strict=True)) if columns else []
            finally:
                session.cursor.close()

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
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": form.get("scope", "all-apis"),
        }

    # -- the Statement Execution API ------------------------------------------------------------

    def open_session(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("warehouse_id") != self.warehouse_id:
            return _api_error(
                404, "RESOURCE_DOES_NOT_EXIST", f"SQL warehouse {body.get('warehouse_id')} does not exist."
            )
        catalog = str(body.get("catalog") or self.catalogs[0]).lower()  # the workspace default catalog
        schema = str(body.get("schema") or "default").lower()
        if catalog not in self.catalogs:
            return _api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{catalog}' was not found. SQLSTATE: 42704",
            )
        session_id = str(uuid.uuid4())
        self.sessions[session_id] = Session(
            catalog, schema, dict(body.get("session_confs") or {}), self._db.cursor()
        )
        return 200, {"session_id": session_id}

    def close(self) -> None:
        """Close every session's cursor and the database (once no request is being served)."""
        with self.lock:
            for session in self.sessions.values():
                session.cursor.close()
            self.sessions.clear()
            self._db.close()

    def close_session(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            session.cursor.close()

    def execute(self, body: dict[str, Any]) -> tuple[int, Any]:
        session = self.sessions.get(str(body.get("session_id")))
        if session is None:
            return _api_error(404, "NOT_FOUND", f"Session {body.get('session_id')} does not exist.")
        statement_id = str(uuid.uuid4())
        sql = str(body.get("statement", ""))
        self.queries.append(sql)
        fmt = str(body.get("format") or "JSON_ARRAY")
        try:
            with quiet_sqlglot():
                try:
                    table, types = self.run(session, sql, list(body.get("parameters") or []))
                except QueryError:
                    raise
                except Exception as exc:  # a peer bug is reported to the client, not hidden
                    raise QueryError(
                        "INTERNAL_ERROR", f"[INTERNAL_ERROR] peer: {type(exc).__name__}: {exc}", "XX000"
                    ) from exc
        except QueryError as exc:
            self.failures.append((sql, str(exc)))
            response: dict[str, Any] = {
                "statement_id": statement_id,
                "status": {
                    "state": "FAILED",
                    "sql_state": exc.sql_state,
                    "error": {"error_code": exc.code, "message": str(exc)},
                },
            }
        else:
            response = {
                "statement_id": statement_id,
                "status": {"state": "SUCCEEDED"},
                "manifest": _manifest(fmt, table, types),
                "result": _result(fmt, table),
            }
        self.statements[statement_id] = response
        return 200, response

    # -- SQL ------------------------------------------------------------------------------------

    def run(
        self, session: Session, sql: str, parameters: list[dict[str, Any]] | None = None
    ) -> tuple[Any, list[str]]:
        """Run one statement for ``session``: an Arrow table and the Databricks type of each column."""
        text = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
        if parameters:
            text = _bind_parameters(text, parameters)
        if match := re.fullmatch(r"set\s+(?P<key>[\w.]+)\s*(?:=\s*(?P<value>.*))?", text, re.I | re.S):
            key = match["key"]
            if match["value"] is not None:
                session.confs[key] = match["value"].strip()
            return _strings(["key", "value"], [[key, session.confs.get(key, "<undefined>")]])
        if match := re.fullmatch(
            rf"use\s+(?P<kind>catalog\s+|schema\s+|database\s+)?(?P<name>{_RELATION})", text, re.I
        ):
            names = _parts(match["name"])
            if (match["kind"] or "").strip().lower() == "catalog":
                session.catalog = self._catalog(names[0])
            else:
                catalog, schema = (names[0], names[1]) if len(names) == 2 else (session.catalog, names[0])
                self._schema(session, self._catalog(catalog), schema)
                session.catalog, session.schema = catalog, schema
            return _strings([], [])
        if match := re.fullmatch(r"show\s+catalogs(?:\s+like\s+'(?P<like>[^']*)')?", text, re.I):
            return _strings(["catalog"], [[c] for c in self.catalogs if _like(c, match["like"])])
        if match := re.fullmatch(
            rf"show\s+(?:schemas|databases)(?:\s+(?:in|from)\s+(?P<catalog>{_NAME}))?"
            r"(?:\s+like\s+'(?P<like>[^']*)')?",
            text,
            re.I,
        ):
            catalog = self._catalog(_strip(match["catalog"]) if match["catalog"] else session.catalog)
            names = [
                r[0]
                for r in self._db.execute(
                    "select schema_name from duckdb_schemas() where database_name = ? order by 1",
                    [duck(catalog)],
                ).fetchall()
            ]
            return _strings(["databaseName"], [[n] for n in names if _like(n, match["like"])])
        if match := re.fullmatch(
            rf"show\s+(?P<kind>tables|views|table\s+extended)(?:\s+(?:in|from)\s+(?P<schema>{_RELATION}))?"
            r"(?:\s+like\s+'(?P<like>[^']*)')?",
            text,
            re.I,
        ):
            return self._show_relations(session, match["kind"].lower(), match["schema"], match["like"])
        if match := re.fullmatch(
            rf"show\s+tblproperties\s+(?P<name>{_RELATION})(?:\s*\(.*\))?", text, re.I | re.S
        ):
            self._describe(session, match["name"])  # the relation must exist; the peer keeps no properties
            return _strings(["key", "value"], [])
        if match := re.fullmatch(
            rf"desc(?:ribe)?\s+(?:table\s+)?(?P<extended>extended\s+|formatted\s+)?(?P<name>{_RELATION})"
            r"(?P<json>\s+as\s+json)?",
            text,
            re.I,
        ):
            return self._describe(session, match["name"], bool(match["extended"]), bool(match["json"]))
        try:
            statements = [s for s in sqlglot.parse(text, read="databricks") if s is not None]
        except sqlglot.errors.ParseError as error:
            raise QueryError(
                "PARSE_SYNTAX_ERROR",
                f"[PARSE_SYNTAX_ERROR] Syntax error: {str(error).splitlines()[0]}",
                "42601",
            ) from None
        if len(statements) != 1 or isinstance(statements[0], exp.Command):
            raise QueryError(
                "PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error at or near: {text[:60]}", "42601"
            )
        return self._statement(session, statements[0])

    def _statement(self, session: Session, tree: exp.Expression) -> tuple[Any, list[str]]:
        if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() in (
            "SCHEMA",
            "DATABASE",
        ):
            names = [
                p.name for p in (tree.this.args.get("catalog"), tree.this.args.get("db"), tree.this.this) if p
            ]
            catalog, schema = (names[-2], names[-1]) if len(names) >= 2 else (session.catalog, names[-1])
            exists = "IF NOT EXISTS " if tree.args.get("exists") else ""
            self._sql(session, f'CREATE SCHEMA {exists}"{duck(self._catalog(catalog))}"."{schema.lower()}"')
            return _strings([], [])
        if isinstance(tree, exp.Drop) and str(tree.args.get("kind") or "").upper() in ("SCHEMA", "DATABASE"):
            names = [
                p.name for p in (tree.this.args.get("catalog"), tree.this.args.get("db"), tree.this.this) if p
            ]
            catalog, schema = (names[-2], names[-1]) if len(names) >= 2 else (session.catalog, names[-1])
            exists = "IF EXISTS " if tree.args.get("exists") else ""
            cascade = " CASCADE" if tree.args.get("cascade") else ""
            self._sql(
                session, f'DROP SCHEMA {exists}"{duck(self._catalog(catalog))}"."{schema.lower()}"{cascade}'
            )
            return _strings([], [])
        if isinstance(tree, (exp.Comment, exp.Analyze)) or (
            isinstance(tree, exp.Alter)
            and not any(
                isinstance(a, (exp.AlterRename, exp.ColumnDef, exp.Drop, exp.AlterColumn))
                for a in tree.args.get("actions") or []
            )
        ):
            self._qualify(session, tree)  # comments, table properties, tags: accepted, not kept
            for table in tree.find_all(exp.Table):
                self._exists(session, table)
            return _strings([], [])
        if isinstance(tree, exp.Select):  # Databricks names an unnamed item by its text: current_catalog()…
            for item in tree.expressions:
                if not isinstance(item, (exp.Alias, exp.Column, exp.Star)):
                    name = (
                        item.name if isinstance(item, exp.Literal) else item.sql(dialect="databricks").lower()
                    )
                    item.replace(exp.alias_(item.copy(), name, quoted=True))
        self._qualify(session, tree)
        if isinstance(tree, exp.Insert) and tree.args.get("overwrite"):
            target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            tree.set("overwrite", None)
            self._sql(session, exp.delete(target.copy()).sql(dialect="duckdb"))
        if isinstance(tree, exp.Create):
            tree.set("properties", _kept_properties(tree.args.get("properties")))
        if isinstance(tree, exp.Alter):
            for action in tree.args.get("actions") or []:
                if isinstance(action, exp.AlterRename) and isinstance(action.this, exp.Table):
                    action.this.set("catalog", None)
                    action.this.set("db", None)
        sql = tree.sql(dialect="duckdb")
        if isinstance(tree, exp.Query):
            relation = self._sql(session, sql, query=True)
            try:
                return relation.to_arrow_table(), [_type(t) for t in relation.types]
            except duckdb.Error as error:
                raise _from_duckdb(error) from None
        fetched = self._sql(session, sql).fetchall()
        if isinstance(tree, (exp.Insert, exp.Merge, exp.Update, exp.Delete)):
            count = int(fetched[0][0]) if fetched and fetched[0] and isinstance(fetched[0][0], int) else 0
            return _counts(tree, count)
        return _strings([], [])

    def _sql(self, session: Session, sql: str, query: bool = False) -> Any:
        try:
            return session.cursor.sql(sql) if query else session.cursor.execute(sql)
        except duckdb.Error as error:
            raise _from_duckdb(error) from None

    def _qualify(self, session: Session, tree: exp.Expression) -> None:
        """Each relation named as DuckDB finds it, and the session functions answered."""
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        created = tree.find(exp.Table) if _is_temporary(tree) else None  # a temporary view: no catalog
        for table in list(tree.find_all(exp.Table)):
            if not table.name or isinstance(table.this, exp.Func) or table is created:
                continue
            catalog, db, name = table.catalog.lower(), table.db.lower(), table.name
            if not db and (name.lower() in ctes or self._temporary_view(session, name)):
                continue
            catalog, db = catalog or session.catalog, db or session.schema
            if db == "information_schema":
                body = _information_schema(
                    name.lower(), None if catalog == "system" else self._catalog(catalog), self.catalogs
                )
                if body is None:
                    raise _not_found(f"{catalog}.information_schema.{name}")
                alias = table.alias or name
                table.replace(
                    exp.Subquery(
                        this=sqlglot.parse_one(body, read="duckdb"),
                        alias=exp.TableAlias(this=exp.to_identifier(alias)),
                    )
                )
                continue
            table.set("catalog", exp.to_identifier(duck(self._catalog(catalog))))
            table.set("db", exp.to_identifier(db))
            table.set("this", exp.to_identifier(name.lower()))
        replacements: dict[type, exp.Expression] = {
            exp.CurrentCatalog: exp.Literal.string(session.catalog),
            exp.CurrentSchema: exp.Literal.string(session.schema),
            exp.CurrentDatabase: exp.Literal.string(session.schema),
            exp.CurrentUser: exp.Literal.string(USER),
            exp.CurrentVersion: sqlglot.parse_one(
                f"{{'dbr_version': '{VERSION}', 'dbsql_version': '2026.40', 'u_build_hash': 'peer', 'r_build_hash': 'peer'}}",
                read="duckdb",
            ),
        }
        for kind, value in replacements.items():
            for node in list(tree.find_all(kind)):
                node.replace(value.copy())

    def _temporary_view(self, session: Session, name: str) -> bool:
        found = session.cursor.execute(
            "select 1 from duckdb_views() where temporary and view_name = ?", [name.lower()]
        ).fetchall()
        return bool(found)

    def _catalog(self, name: str) -> str:
        if name.lower() not in self.catalogs:
            raise QueryError(
                "NO_SUCH_CATALOG_EXCEPTION",
                f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{name}' was not found.",
                "42704",
            )
        return name.lower()

    def _schema(self, session: Session, catalog: str, schema: str) -> None:
        found = self._db.execute(
            "select 1 from duckdb_schemas() where database_name = ? and schema_name = ?",
            [duck(catalog), schema.lower()],
        ).fetchall()
        if not found:
            raise QueryError(
                "SCHEMA_NOT_FOUND",
                f"[SCHEMA_NOT_FOUND] The schema `{catalog}`.`{schema}` cannot be found. "
                "Verify the spelling and correctness of the schema and catalog.",
                "42704",
            )

    def _exists(self, session: Session, table: exp.Table) -> None:
        catalog = table.catalog
        if not catalog:
            return
        found = session.cursor.execute(
            "select 1 from duckdb_tables() where database_name = ? and schema_name = ? and table_name = ? union all "
            "select 1 from duckdb_views() where database_name = ? and schema_name = ? and view_name = ?",
            [catalog, table.db, table.name] * 2,
        ).fetchall()
        if not found:
            raise _not_found(f"{catalog.removeprefix('uc_')}.{table.db}.{table.name}")

    def _relation(self, session: Session, text: str) -> tuple[str, str, str]:
        names = _parts(text)
        if len(names) == 1 and self._temporary_view(session, names[0]):
            return "", "", names[0]
        while len(names) < 3:
            names.insert(0, session.schema if len(names) == 1 else session.catalog)
        catalog, schema, name = names
        self._schema(session, self._catalog(catalog), schema)
        return catalog, schema, name

    def _show_relations(
        self, session: Session, kind: str, schema_text: str | None, like: str | None
    ) -> tuple[Any, list[str]]:
        names = _parts(schema_text) if schema_text else []
        catalog, schema = (
            (names[0], names[1])
            if len(names) == 2
            else (session.catalog, names[0] if names else session.schema)
        )
        self._schema(session, self._catalog(catalog), schema)
        rows = self._db.execute(
            "select table_name, 'MANAGED', false from duckdb_tables() where database_name = ? and schema_name = ? "
            "union all select view_name, 'VIEW', false from duckdb_views() where database_name = ? and schema_name = ? "
            "order by 1",
            [duck(catalog), schema] * 2,
        ).fetchall()
        found = [r for r in rows if _like(r[0], like) and (kind != "views" or r[1] == "VIEW")]
        if kind == "views":
            return _strings(
                ["namespace", "viewName", "isTemporary"],
                [[schema, n, False] for n, _, _ in found],
                ["string", "string", "boolean"],
            )
        if kind == "tables":
            return _strings(
                ["database", "tableName", "isTemporary"],
                [[schema, n, False] for n, _, _ in found],
                ["string", "string", "boolean"],
            )
        information = [
            f"Catalog: {catalog}\nDatabase: {schema}\nTable: {n}\nOwner: {USER}\nType: {t}\n"
            f"Provider: {'delta' if t == 'MANAGED' else ''}\n"
            for n, t, _ in found
        ]
        return _strings(
            ["database", "tableName", "isTemporary", "information"],
            [[schema, n, False, i] for (n, _, _), i in zip(found, information, strict=True)],
            ["string", "string", "boolean", "string"],
        )

    def _describe(
        self, session: Session, text: str, extended: bool = False, as_json: bool = False
    ) -> tuple[Any, list[str]]:
        catalog, schema, name = self._relation(session, text)
        where = f'"{duck(catalog)}"."{schema}"."{name}"' if catalog else f'"{name}"'
        try:
            relation = session.cursor.sql(f"select * from {where} limit 0")
        except duckdb.Error:
            raise _not_found(f"{catalog}.{schema}.{name}" if catalog else name) from None
        columns, types = relation.columns, [_type(t) for t in relation.types]
        if as_json:
            kind = self._kind(catalog, schema, name)
            document = {
                "table_name": name,
                "catalog_name": catalog,
                "schema_name": schema,
                "namespace": [schema],
                "type": kind,
                "provider": "delta" if kind == "MANAGED" else None,
                "owner": USER,
                "columns": [
                    {"name": c, "type": {"name": t.split("(")[0]}, "nullable": True}
                    for c, t in zip(columns, types, strict=True)
                ],
            }
            return _strings(["json_metadata"], [[json.dumps(document)]])
        rows = [[c, t, None] for c, t in zip(columns, types, strict=True)]
        if extended:
            kind = self._kind(catalog, schema, name)
            rows += [
                ["", "", ""],
                ["# Detailed Table Information", "", ""],
                ["Catalog", catalog, ""],
                ["Database", schema, ""],
                ["Table", name, ""],
                ["Owner", USER, ""],
                ["Type", kind, ""],
                ["Provider", "delta" if kind == "MANAGED" else "", ""],
            ]
        return _strings(["col_name", "data_type", "comment"], rows)

    def _kind(self, catalog: str, schema: str, name: str) -> str:
        if not catalog:
            return "VIEW"
        views = self._db.execute(
            "select 1 from duckdb_views() where database_name = ? and schema_name = ? and view_name = ?",
            [duck(catalog), schema, name],
        ).fetchall()
        return "VIEW" if views else "MANAGED"


# -- translation helpers ------------------------------------------------------------------------------


def _like(name: str, pattern: str | None) -> bool:
    if not pattern:
        return True
    return any(re.fullmatch(p.strip().replace("*", ".*"), name, re.I) for p in pattern.split("|"))


def _is_temporary(tree: exp.Expression) -> bool:
    properties = tree.args.get("properties") if isinstance(tree, exp.Create) else None
    return bool(properties and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions))


def _kept_properties(properties: exp.Properties | None) -> exp.Properties | None:
    """What DuckDB keeps of a ``CREATE``'s properties: only ``TEMPORARY`` (delta, comments… are not kept)."""
    if properties is None:
        return None
    kept = [p for p in properties.expressions if isinstance(p, exp.TemporaryProperty)]
    return exp.Properties(expressions=kept) if kept else None


def _bind_parameters(text: str, parameters: list[dict[str, Any]]) -> str:
    """``text`` with its ``:name`` or ``?`` markers replaced by the statement's typed parameters."""
    values = [_literal(p) for p in parameters]
    named = {str(p["name"]): v for p, v in zip(parameters, values, strict=True) if p.get("name")}
    out, index, position, quote = [], 0, 0, ""
    while index < len(text):
        char = text[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'`\"":
            quote = char
        elif char == "?" and not named:
            if position >= len(values):
                raise QueryError(
                    "UNBOUND_SQL_PARAMETER", "[UNBOUND_SQL_PARAMETER] Found an unbound parameter.", "42P02"
                )
            out.append(values[position])
            position += 1
            index += 1
            continue
        elif char == ":" and named and (match := re.match(r":([A-Za-z_]\w*)", text[index:])):
            if match[1] not in named:
                raise QueryError(
                    "UNBOUND_SQL_PARAMETER",
                    f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {match[1]}.",
                    "42P02",
                )
            out.append(named[match[1]])
            index += len(match[0])
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _literal(parameter: dict[str, Any]) -> str:
    value, kind = parameter.get("value"), str(parameter.get("type") or "STRING").upper()
    if value is None or kind == "VOID":
        return "NULL"
    if kind in (
        "INT",
        "INTEGER",
        "BIGINT",
        "LONG",
        "SMALLINT",
        "SHORT",
        "TINYINT",
        "BYTE",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
    ):
        return f"CAST({float(value) if kind in ('FLOAT', 'DOUBLE') else value} AS {kind if kind != 'LONG' else 'BIGINT'})"
    if kind == "BOOLEAN":
        return "true" if str(value).lower() == "true" else "false"
    quoted = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{kind} {quoted}" if kind in ("DATE", "TIMESTAMP", "TIMESTAMP_NTZ") else quoted


def _information_schema(table: str, catalog: str | None, catalogs: list[str]) -> str | None:
    """Databricks' ``information_schema.<table>`` as DuckDB SQL: of one catalog, or of all (``system``)."""
    known = ", ".join(f"'{duck(c)}'" for c in catalogs)
    where = f"database_name = '{duck(catalog)}'" if catalog else f"database_name IN ({known})"
    name = "substr(database_name, 4)"
    if table == "catalogs":
        rows = " UNION ALL ".join(
            f"SELECT '{c}' AS catalog_name, '{USER}' AS catalog_owner, NULL::VARCHAR AS comment"
            for c in catalogs
            if catalog in (None, c)
        )
        return rows
    if table == "schemata":
        return (
            f"SELECT {name} AS catalog_name, schema_name, '{USER}' AS schema_owner, NULL::VARCHAR AS comment "
            f"FROM duckdb_schemas() WHERE {where}"
        )
    if table == "tables":
        return (
            f"SELECT {name} AS table_catalog, schema_name AS table_schema, table_name, 'MANAGED' AS table_type, "
            f"false AS is_insertable_into, NULL::VARCHAR AS commit_action, '{USER}' AS table_owner, "
            "comment, now() AS created, 'peer' AS created_by, now() AS last_altered, 'peer' AS last_altered_by, "
            "'DELTA' AS data_source_format, NULL::VARCHAR AS storage_sub_directory "
            f"FROM duckdb_tables() WHERE {where} UNION ALL "
            f"SELECT {name}, schema_name, view_name, 'VIEW', false, NULL, '{USER}', comment, now(), 'peer', now(), "
            f"'peer', NULL, NULL FROM duckdb_views() WHERE {where} AND NOT internal"
        )
    if table == "views":
        return (
            f"SELECT {name} AS table_catalog, schema_name AS table_schema, view_name AS table_name, sql AS "
            "view_definition, 'NONE' AS check_option, 'NO' AS is_updatable, 'NO' AS is_insertable_into, "
            "'NO' AS sql_path, false AS is_materialized "
            f"FROM duckdb_views() WHERE {where} AND NOT internal"
        )
    if table == "columns":
        return (
            f"SELECT {name} AS table_catalog, schema_name AS table_schema, table_name, column_name, "
            f"column_index AS ordinal_position, column_default, CASE WHEN is_nullable THEN 'YES' ELSE 'NO' END AS "
            f"is_nullable, {_type_sql('data_type', upper=True)} AS data_type, {_type_sql('data_type')} AS full_data_type, "
            "numeric_precision, numeric_scale, character_maximum_length, comment "
            f"FROM duckdb_columns() WHERE {where}"
        )
    empty = {
        "table_tags": "catalog_name, schema_name, table_name, tag_name, tag_value",
        "column_tags": "catalog_name, schema_name, table_name, column_name, tag_name, tag_value",
        "column_masks": "table_catalog, table_schema, table_name, column_name, mask_catalog, mask_schema, mask_name, using_columns",
        "row_filters": "table_catalog, table_schema, table_name, filter_catalog, filter_schema, filter_name, target_columns",
        "table_constraints": "constraint_catalog, constraint_schema, constraint_name, table_catalog, table_schema, "
        "table_name, constraint_type, is_deferrable, initially_deferred, enforced",
        "key_column_usage": "constraint_catalog, constraint_schema, constraint_name, table_catalog, table_schema, "
        "table_name, column_name, ordinal_position, position_in_unique_constraint",
        "referential_constraints": "constraint_catalog, constraint_schema, constraint_name, unique_constraint_catalog, "
        "unique_constraint_schema, unique_constraint_name, match_option, update_rule, delete_rule",
        "check_constraints": "constraint_catalog, constraint_schema, constraint_name, check_clause",
    }.get(table)
    if empty is None:
        return None
    columns = [c.strip() for c in empty.split(",")]
    return "SELECT " + ", ".join(f"NULL::VARCHAR AS {c}" for c in columns) + " WHERE false"


_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "tinyint",
    "SMALLINT": "smallint",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "UTINYINT": "smallint",
    "USMALLINT": "int",
    "UINTEGER": "bigint",
    "UBIGINT": "decimal(20,0)",
    "HUGEINT": "decimal(38,0)",
    "UHUGEINT": "decimal(38,0)",
    "FLOAT": "float",
    "DOUBLE": "double",
    "VARCHAR": "string",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "BLOB": "binary",
    "INTERVAL": "interval day to second",
    "NULL": "void",
    '"NULL"': "void",
}


def _type(duck_type: Any) -> str:
    """The Databricks type (as ``DESCRIBE`` writes it) of a DuckDB type."""
    text = str(duck_type)
    if text in _TYPES:
        return _TYPES[text]
    if match := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", text):
        return f"decimal({match[1]},{match[2]})"
    if text.endswith("[]"):
        return f"array<{_type(text[:-2])}>"
    return "string"


def _type_sql(column: str, upper: bool = False) -> str:
    """SQL mapping a DuckDB ``data_type`` column to Databricks' type names."""
    cases = " ".join(f"WHEN {column} = '{k}' THEN '{v}'" for k, v in _TYPES.items() if '"' not in k)
    expression = (
        f"CASE {cases} WHEN {column} LIKE 'DECIMAL(%' THEN lower(replace({column}, ' ', '')) "
        f"ELSE 'string' END"
    )
    return f"upper(regexp_replace({expression}, '\\(.*$', ''))" if upper else expression


def _strings(
    names: list[str], rows: list[list[Any]], types: list[str] | None = None
) -> tuple[Any, list[str]]:
    """A result of ``names`` (strings unless ``types`` says otherwise) holding ``rows``."""
    import pyarrow as pa

    types = types or ["string"] * len(names)
    arrow = {"string": pa.string(), "boolean": pa.bool_(), "bigint": pa.int64()}
    schema = pa.schema([pa.field(n, arrow[t]) for n, t in zip(names, types, strict=True)])
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=schema), list(types)


def _counts(tree: exp.Expression, count: int) -> tuple[Any, list[str]]:
    """What Databricks answers a DML statement: the rows it affected (and inserted, updated…)."""
    names = ["num_affected_rows"]
    if isinstance(tree, exp.Insert):
        names.append("num_inserted_rows")
    elif isinstance(tree, exp.Update):
        names.append("num_updated_rows")
    elif isinstance(tree, exp.Delete):
        names.append("num_deleted_rows")
    return _strings(names, [[count] * len(names)], ["bigint"] * len(names))


def _not_found(name: str) -> QueryError:
    return QueryError(
        "TABLE_OR_VIEW_NOT_FOUND",
        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name.replace('.', '`.`')}` "
        "cannot be found. Verify the spelling and correctness of the schema and catalog.",
        "42P01",
    )


def _from_duckdb(error: duckdb.Error) -> QueryError:
    text = re.sub(r"(?<![A-Za-z0-9_])uc_", "", str(error).split("\n")[0])
    if match := re.search(r"Table with name ([^ ]+) does not exist", text):
        return _not_found(match[1].strip('"!'))
    if match := re.search(r'Schema with name "?([^" !]+)"? does not exist', text):
        return QueryError(
            "SCHEMA_NOT_FOUND", f"[SCHEMA_NOT_FOUND] The schema `{match[1]}` cannot be found.", "42704"
        )
    if match := re.search(r'(?:Table|View) with name "?([^" !]+)"? already exists', text):
        return QueryError(
            "TABLE_OR_VIEW_ALREADY_EXISTS",
            f"[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `{match[1]}` because it already exists.",
            "42P07",
        )
    if match := re.search(r'Referenced column "?([^" ]+)"? not found', text):
        return QueryError(
            "UNRESOLVED_COLUMN",
            f"[UNRESOLVED_COLUMN.WITHOUT_SUGGESTION] A column, variable, or function "
            f"parameter with name `{match[1]}` cannot be resolved.",
            "42703",
        )
    if isinstance(error, duckdb.ParserException):
        return QueryError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error: {text}", "42601")
    if isinstance(error, duckdb.ConversionException):
        return QueryError("CAST_INVALID_INPUT", f"[CAST_INVALID_INPUT] {text}", "22018")
    if isinstance(error, duckdb.CatalogException):
        return QueryError("TABLE_OR_VIEW_NOT_FOUND", f"[TABLE_OR_VIEW_NOT_FOUND] {text}", "42P01")
    return QueryError("INTERNAL_ERROR", f"[INTERNAL_ERROR] {text}", "XX000")


# -- results --------------------------------------------------------------------------------------------


def _manifest(fmt: str, table: Any, types: list[str]) -> dict[str, Any]:
    columns = []
    for index, (field, kind) in enumerate(zip(table.schema, types, strict=True)):
        name = kind.split("(")[0].split("<")[0].upper()
        name = {
            "BIGINT": "LONG",
            "SMALLINT": "SHORT",
            "TINYINT": "BYTE",
            "TIMESTAMP_NTZ": "TIMESTAMP_NTZ",
        }.get(name, name)
        column: dict[str, Any] = {
            "name": field.name,
            "type_name": name,
            "type_text": kind.upper(),
            "position": index,
        }
        if match := re.fullmatch(r"decimal\((\d+),(\d+)\)", kind):
            column.update(type_precision=int(match[1]), type_scale=int(match[2]))
        columns.append(column)
    return {
        "format": "ARROW_STREAM" if fmt == "ARROW_STREAM" else "JSON_ARRAY",
        "schema": {"column_count": len(columns), "columns": columns},
        "total_row_count": table.num_rows,
        "total_chunk_count": 1,
        "chunks": [{"chunk_index": 0, "row_offset": 0, "row_count": table.num_rows}],
        "truncated": False,
    }


def _result(fmt: str, table: Any) -> dict[str, Any]:
    import pyarrow as pa

    result: dict[str, Any] = {"chunk_index": 0, "row_offset": 0, "row_count": table.num_rows}
    if fmt == "ARROW_STREAM":
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        result["attachment"] = base64.b64encode(sink.getvalue()).decode()
    else:
        rows = zip(*[c.to_pylist() for c in table.columns], strict=True) if table.num_columns else []
        result["data_array"] = [[_json_value(v) for v in row] for row in rows]
    return result


def _json_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _api_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error_code": code, "message": message}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall between them

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
            self._send(
                200, {"oidc_endpoint": f"{peer.url}/oidc", "workspace_id": peer.workspace_id, "cloud": "aws"}
            )
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
                peer.close_session(parts[-1])
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


class _Server(JoiningHTTPServer):
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
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
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
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="databricks-peer", daemon=True
        )
        thread.start()
        try:
            yield peer
        finally:
            server.close_and_join()
            thread.join(5)
            peer.close()
