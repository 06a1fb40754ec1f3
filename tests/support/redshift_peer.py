"""A Redshift endpoint on 127.0.0.1 for tests: the PostgreSQL v3 wire protocol in front of DuckDB.

``redshift_connector`` cannot talk to a stock PostgreSQL (see the engine's notes), and no Redshift
runs here, so this server speaks the protocol the driver speaks, the way Redshift answers it:

- startup: ``SSLRequest`` (``S`` and TLS when certificates are given, else ``N``), the startup
  packet with Redshift's own parameters (``client_protocol_version``, ``driver_version``…, kept in
  :attr:`RedshiftPeer.startups`), authentication checked for real with
  ``AuthenticationMD5Password`` (``md5(md5(password + user) + salt)``) or cleartext, a ``FATAL``
  ``28000`` "password authentication failed" otherwise, then ``ParameterStatus``
  (``server_version 8.0.2`` like Redshift), ``BackendKeyData`` and ``ReadyForQuery``;
- the simple (``Q``) and extended query protocol (``Parse``/``Describe``/``Bind``/``Execute``/
  ``Close``/``Sync``/``Flush``) with ``$n`` parameters in text or binary format, result columns in
  the format codes the client asks for (binary ints, floats, booleans, timestamps), transaction
  status in ``ReadyForQuery``, errors as ``ErrorResponse`` with SQLSTATEs.

Databases are DuckDB catalogs attached in memory, each with a ``public`` schema; SQL is translated
from Redshift's dialect with sqlglot (``pg_backend_pid()``, ``version()``, ``current_user``,
``SET`` of Redshift-only settings…) and run by DuckDB. What dbt-redshift's macros need beyond that
is answered as Redshift does: ``$1,$2`` are two parameters (seeds insert in batches of bound
rows), ``ALTER TABLE <view> RENAME TO`` renames a view, and the catalog relations
``pg_get_late_binding_view_cols()`` and ``svv_external_columns`` (column lookups) exist, empty:
the peer has no late-binding views and no external (Spectrum) schemas. Temporary IAM users can be added at run time
(:meth:`RedshiftPeer.add_user`), which is what the fake AWS endpoint of the IAM tests does.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
import secrets
import socket
import ssl
import struct
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import duckdb
import sqlglot
from sqlglot import exp

from tests.support.trino_peer import CertificateFiles, quiet_sqlglot

SERVER_VERSION = "8.0.2"
VERSION_STRING = (
    "PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 "
    "(Red Hat 3.4.2-6.fc3), Redshift 1.0.77467 (floe test peer)"
)
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
_EPOCH_2000 = dt.datetime(2000, 1, 1)
_EPOCH_2000_UTC = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

# PostgreSQL type OIDs (Redshift uses the same)
BOOL, BYTEA, INT8, INT2, INT4, TEXT, FLOAT4, FLOAT8, UNKNOWN = 16, 17, 20, 21, 23, 25, 700, 701, 705
VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC = 1043, 1082, 1083, 1114, 1184, 1186, 1700
_TYPE_OIDS = {
    "BOOLEAN": BOOL,
    "TINYINT": INT2,
    "SMALLINT": INT2,
    "INTEGER": INT4,
    "BIGINT": INT8,
    "UTINYINT": INT2,
    "USMALLINT": INT4,
    "UINTEGER": INT8,
    "UBIGINT": NUMERIC,
    "HUGEINT": NUMERIC,
    "FLOAT": FLOAT4,
    "DOUBLE": FLOAT8,
    "VARCHAR": VARCHAR,
    "DATE": DATE,
    "TIME": TIME,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "INTERVAL": INTERVAL,
    "BLOB": BYTEA,
}
_TYPE_SIZES = {
    BOOL: 1,
    INT2: 2,
    INT4: 4,
    INT8: 8,
    FLOAT4: 4,
    FLOAT8: 8,
    DATE: 4,
    TIMESTAMP: 8,
    TIMESTAMPTZ: 8,
}


_EMULATED_TABLES = {
    # Redshift catalog tables that DuckDB's pg_catalog lacks; empty (no views depend on anything,
    # no external schemas exist)
    "svv_external_columns": (
        "SELECT * FROM (VALUES (''::VARCHAR, ''::VARCHAR, ''::VARCHAR, ''::VARCHAR, 0::INTEGER, 0::INTEGER, "
        "''::VARCHAR)) AS t(schemaname, tablename, columnname, external_type, columnnum, part_key, is_nullable) "
        "WHERE false"
    ),
    "pg_rewrite": "SELECT * FROM (VALUES (0::BIGINT, 0::BIGINT, ''::VARCHAR)) AS t(oid, ev_class, rulename) WHERE false",
    "pg_depend": (
        "SELECT * FROM (VALUES (0::BIGINT, 0::BIGINT, 0::BIGINT, 0::BIGINT, ''::VARCHAR)) "
        "AS t(objid, refobjid, classid, refclassid, deptype) WHERE false"
    ),
}


class PgError(Exception):
    """An error reported to the client as ErrorResponse."""

    def __init__(self, sqlstate: str, message: str, severity: str = "ERROR") -> None:
        super().__init__(message)
        self.sqlstate, self.message, self.severity = sqlstate, message, severity


def _from_duckdb(error: duckdb.Error) -> PgError:
    text = str(error).split("\n")[0]
    body = text.split(": ", 1)[1] if ": " in text else text
    if m := re.search(
        r'Table with name "?([^" ]+?)"? does not exist because schema "?([^" ]+?)"? does not exist', text
    ):
        return PgError("3F000", f'schema "{m[2]}" does not exist')
    if m := re.search(r'Table with name "?([^" !]+?)"? does not exist', text):
        return PgError("42P01", f'relation "{m[1]}" does not exist')
    if m := re.search(r'Schema with name "?([^" !]+?)"? does not exist', text):
        return PgError("3F000", f'schema "{m[1]}" does not exist')
    if m := re.search(r'Schema with name "?([^" !]+?)"? already exists', text):
        return PgError("42P06", f'schema "{m[1]}" already exists')
    if m := re.search(r'Table with name "?([^" !]+?)"? already exists', text):
        return PgError("42P07", f'relation "{m[1]}" already exists')
    if "Current transaction is aborted" in text:
        return PgError(
            "25P02", "current transaction is aborted, commands ignored until end of transaction block"
        )
    if isinstance(error, duckdb.ParserException):
        return PgError("42601", body)
    if isinstance(error, duckdb.BinderException) and "column" in text.lower():
        return PgError("42703", body)
    if isinstance(error, duckdb.ConstraintException):
        return PgError(
            "23505" if "unique" in text.lower() or "primary key" in text.lower() else "23502", body
        )
    if isinstance(error, (duckdb.ConversionException, duckdb.InvalidInputException)):
        return PgError("22P02", body)
    if isinstance(error, (duckdb.CatalogException, duckdb.BinderException)):
        return PgError("42000", body)
    return PgError("XX000", body)


# -- values ----------------------------------------------------------------------------------------


def _oid(t: Any) -> int:
    text = str(t)
    if text.startswith("DECIMAL"):
        return NUMERIC
    return _TYPE_OIDS.get(text, TEXT)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        return text if value.tzinfo is None else text.replace("+00:00", "+00")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list):
        return "{" + ",".join(_text(v) for v in value) + "}"
    return str(value)


def _encode(value: Any, oid: int, binary: bool) -> bytes:
    if not binary:
        return _text(value).encode()
    if oid == BOOL:
        return b"\x01" if value else b"\x00"
    if oid == INT2:
        return struct.pack("!h", value)
    if oid == INT4:
        return struct.pack("!i", value)
    if oid == INT8:
        return struct.pack("!q", value)
    if oid == FLOAT4:
        return struct.pack("!f", value)
    if oid == FLOAT8:
        return struct.pack("!d", value)
    if oid == DATE:
        return struct.pack("!i", (value - _EPOCH_2000.date()).days)
    if oid == TIMESTAMP:
        delta = value - _EPOCH_2000
        return struct.pack("!q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if oid == TIMESTAMPTZ:
        delta = value - _EPOCH_2000_UTC
        return struct.pack("!q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if oid in (TEXT, VARCHAR, UNKNOWN, BYTEA):
        return value if isinstance(value, bytes) else _text(value).encode()
    raise PgError("0A000", f"binary format is not supported for type {oid}")


def _decode(data: bytes | None, oid: int, binary: bool) -> Any:
    if data is None:
        return None
    if not binary:
        text = data.decode()
        if oid in (INT2, INT4, INT8):
            return int(text)
        if oid in (FLOAT4, FLOAT8):
            return float(text)
        if oid == NUMERIC:
            return decimal.Decimal(text)
        if oid == BOOL:
            return text.lower() in ("t", "true", "1", "yes", "on")
        return text
    if oid == BOOL:
        return data != b"\x00"
    if oid in (INT2, INT4, INT8):
        return int.from_bytes(data, "big", signed=True)
    if oid == FLOAT4:
        return struct.unpack("!f", data)[0]
    if oid == FLOAT8:
        return struct.unpack("!d", data)[0]
    if oid == DATE:
        return _EPOCH_2000.date() + dt.timedelta(days=struct.unpack("!i", data)[0])
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        value = _EPOCH_2000 + dt.timedelta(microseconds=struct.unpack("!q", data)[0])
        return value if oid == TIMESTAMP else value.replace(tzinfo=dt.UTC)
    if oid == BYTEA:
        return data
    return data.decode()


# -- messages --------------------------------------------------------------------------------------


def _message(code: bytes, payload: bytes = b"") -> bytes:
    return code + struct.pack("!i", len(payload) + 4) + payload


def _cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def _error(error: PgError) -> bytes:
    fields = [
        (b"S", error.severity),
        (b"V", error.severity),
        (b"C", error.sqlstate),
        (b"M", error.message),
        (b"F", "floe_peer.c"),
        (b"L", "1"),
        (b"R", "exec_peer"),
    ]
    return _message(b"E", b"".join(code + _cstr(value) for code, value in fields) + b"\x00")


@attrs.define
class Prepared:
    sql: str
    duckdb_sql: str | None
    tree: exp.Expression | None
    param_oids: list[int]
    special: tuple[str, Any] | None = None


@attrs.define
class Portal:
    prepared: Prepared
    params: list[Any]
    result_formats: list[int]


@attrs.frozen
class Startup:
    """A startup packet the server received, and how authentication ended."""

    parameters: Mapping[str, str]
    authenticated: bool
    ssl: bool


@attrs.frozen
class LogEntry:
    user: str
    database: str
    sql: str
    duckdb_sql: str | None
    error: str | None


class _Closed(Exception):
    pass


class RedshiftPeer:
    """The endpoint. ``start()`` returns its port; ``stop()`` closes every connection.

    :param users: user → password.
    :param databases: database names (DuckDB catalogs with a ``public`` schema).
    :param auth: ``md5`` (what Redshift asks of redshift_connector for password users) or ``password``.
    :param tls: certificates to accept ``SSLRequest`` with; without them the answer is ``N``.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        databases: Iterable[str] = ("dev",),
        *,
        auth: str = "md5",
        tls: CertificateFiles | None = None,
    ) -> None:
        self.users = dict(users)
        self.databases = [d.lower() for d in databases]
        self.auth = auth
        self.tls = tls
        self.startups: list[Startup] = []
        self.log: list[LogEntry] = []
        self._db = duckdb.connect()
        for name in self.databases:
            self._db.execute(f"ATTACH ':memory:' AS \"{name}\"")
            self._db.execute(f'CREATE SCHEMA "{name}".public')
        self._lock = threading.RLock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()
        self._next_pid = 1000

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password

    def start(self) -> int:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(0.2)
        thread = threading.Thread(target=self._accept, name="redshift-peer", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self.port

    def stop(self) -> None:
        self._stopping.set()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        for thread in self._threads:
            thread.join(5)
        if self._listener is not None:
            self._listener.close()
        self._db.close()

    def __enter__(self) -> RedshiftPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run DuckDB SQL directly (for assertions)."""
        with self._lock:
            rows: list[tuple[Any, ...]] = self._db.execute(statement).fetchall()
            return rows

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stalls
            self._connections.append(conn)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="redshift-peer-conn", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    # -- one connection ---------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        session = _Connection(self, conn)
        try:
            session.serve()
        except (_Closed, OSError, ssl.SSLError):
            pass
        finally:
            session.close()


class _Connection:
    def __init__(self, peer: RedshiftPeer, sock: socket.socket) -> None:
        self.peer = peer
        self.sock: socket.socket = sock
        self.user = ""
        self.database = ""
        self.cursor: Any = None
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.status = b"I"
        self.out = bytearray()
        self.last_sql: str | None = None
        """SQL of the Parse being handled, to log it when Parse or Describe fails."""

    # -- io ---------------------------------------------------------------------------------

    def read(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise _Closed
            data.extend(chunk)
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.out.extend(data)

    def flush(self) -> None:
        if self.out:
            self.sock.sendall(bytes(self.out))
            self.out.clear()

    def close(self) -> None:
        if self.cursor is not None:
            try:
                self.cursor.close()
            except duckdb.Error:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        if self.sock in self.peer._connections:
            self.peer._connections.remove(self.sock)

    # -- startup ----------------------------------------------------------------------------

    def serve(self) -> None:
        self.sock.settimeout(30)
        parameters, encrypted = self.startup()
        if parameters is None:
            return
        self.user = parameters.get("user", "")
        database = parameters.get("database") or self.user
        ok = self.authenticate()
        self.peer.startups.append(Startup(parameters, ok, encrypted))
        if not ok:  # refused only now, once recorded: a client that reads the refusal finds the record
            self.sock.sendall(
                _error(PgError("28000", f'password authentication failed for user "{self.user}"', "FATAL"))
            )
            return
        if database.lower() not in self.peer.databases:
            self.send(_error(PgError("3D000", f'database "{database}" does not exist', "FATAL")))
            self.flush()
            return
        self.database = database.lower()
        with self.peer._lock:
            self.cursor = self.peer._db.cursor()
            self.cursor.execute(f'USE "{self.database}".public')
            pid = self.peer._next_pid
            self.peer._next_pid += 1
        self.pid = pid
        self.send(_message(b"R", struct.pack("!i", 0)))
        for key, value in (
            ("server_version", SERVER_VERSION),
            ("server_encoding", "UNICODE"),
            ("client_encoding", "UNICODE"),
            ("application_name", parameters.get("application_name", "")),
            ("is_superuser", "off"),
            ("session_authorization", self.user),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("TimeZone", "UTC"),
            ("padb_revision", "77467"),
            ("padb_version", "1.0.77467"),
        ):
            self.send(_message(b"S", _cstr(key) + _cstr(value)))
        self.send(_message(b"K", struct.pack("!ii", pid, secrets.randbits(31))))
        self.ready()
        self.sock.settimeout(None)
        self.loop()

    def startup(self) -> tuple[dict[str, str] | None, bool]:
        encrypted = False
        while True:
            length = struct.unpack("!i", self.read(4))[0]
            body = self.read(length - 4)
            code = struct.unpack("!i", body[:4])[0]
            if code == SSL_REQUEST:
                if self.peer.tls is None:
                    self.sock.sendall(b"N")
                    continue
                self.sock.sendall(b"S")
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(str(self.peer.tls.server_cert), str(self.peer.tls.server_key))
                self.sock = context.wrap_socket(self.sock, server_side=True)
                encrypted = True
                continue
            if code == GSSENC_REQUEST:
                self.sock.sendall(b"N")
                continue
            if code == CANCEL_REQUEST:
                return None, encrypted
            if code != PROTOCOL_3:
                self.sock.sendall(
                    _error(
                        PgError(
                            "08P01", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}", "FATAL"
                        )
                    )
                )
                return None, encrypted
            items = body[4:].split(b"\x00")
            parameters = {
                items[i].decode(): items[i + 1].decode() for i in range(0, len(items) - 1, 2) if items[i]
            }
            return parameters, encrypted

    def authenticate(self) -> bool:
        expected = self.peer.users.get(self.user)
        if self.peer.auth == "md5":
            salt = secrets.token_bytes(4)
            self.sock.sendall(_message(b"R", struct.pack("!i", 5) + salt))
            answer = self.password_message()
            if expected is not None:
                inner = hashlib.md5((expected + self.user).encode()).hexdigest()
                good = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
                if secrets.compare_digest(answer, good):
                    return True
        else:
            self.sock.sendall(_message(b"R", struct.pack("!i", 3)))
            answer = self.password_message()
            if expected is not None and secrets.compare_digest(answer, expected):
                return True
        return False  # the caller records the attempt, then refuses it

    def password_message(self) -> str:
        code = self.read(1)
        length = struct.unpack("!i", self.read(4))[0]
        body = self.read(length - 4)
        if code != b"p":
            raise _Closed
        return body.rstrip(b"\x00").decode()

    # -- queries ----------------------------------------------------------------------------

    def ready(self) -> None:
        self.send(_message(b"Z", self.status))
        self.flush()

    def loop(self) -> None:
        skipping = False
        while True:
            code = self.read(1)
            length = struct.unpack("!i", self.read(4))[0]
            body = self.read(length - 4)
            if code == b"X":
                return
            if code == b"S":
                skipping = False
                self.ready()
                continue
            if code == b"H":
                self.flush()
                continue
            if skipping:
                continue
            try:
                with quiet_sqlglot():
                    self.handle(code, body)
            except (PgError, Exception) as exc:  # noqa: BLE001 - a peer bug is reported, not hidden
                error = (
                    exc
                    if isinstance(exc, PgError)
                    else PgError("XX000", f"peer: {type(exc).__name__}: {exc}")
                )
                self.fail(error)
                if code == b"Q":
                    self.ready()
                else:
                    skipping = True

    def handle(self, code: bytes, body: bytes) -> None:
        """One frontend message of the query phase (Sync, Flush and Terminate are handled by loop)."""
        if code == b"Q":
            self.simple(body.rstrip(b"\x00").decode())
        elif code == b"P":
            self.parse(body)
        elif code == b"B":
            self.bind(body)
        elif code == b"D":
            self.describe(body)
        elif code == b"E":
            self.execute(body)
        elif code == b"C":
            kind, name = body[:1], body[1:].rstrip(b"\x00").decode()
            (self.prepared if kind == b"S" else self.portals).pop(name, None)
            self.send(_message(b"3"))
        else:
            raise PgError("08P01", f"unexpected message type {code!r}")

    def fail(self, error: PgError) -> None:
        if self.last_sql is not None:
            self.peer.log.append(LogEntry(self.user, self.database, self.last_sql, None, error.message))
            self.last_sql = None
        if self.status == b"T":
            self.status = b"E"
        self.send(_error(error))

    def simple(self, sql: str) -> None:
        statements = (
            [s for s in sqlglot.parse(_parameters_apart(sql), read="redshift") if s is not None]
            if sql.strip()
            else []
        )
        if not statements:
            self.send(_message(b"I"))
            self.ready()
            return
        for tree in statements:
            prepared = self.prepare(tree.sql(dialect="redshift"), [])
            columns = self.columns(prepared, [])
            if columns is not None:
                self.send(self.row_description(columns, []))
            self.run(prepared, [], [], columns)
        self.ready()

    def parse(self, body: bytes) -> None:
        name, rest = body.split(b"\x00", 1)
        sql, rest = rest.split(b"\x00", 1)
        count = struct.unpack("!h", rest[:2])[0]
        oids = list(struct.unpack(f"!{count}i", rest[2 : 2 + 4 * count])) if count else []
        self.last_sql = sql.decode()
        self.prepared[name.decode()] = self.prepare(sql.decode(), oids)
        self.send(_message(b"1"))

    def bind(self, body: bytes) -> None:
        portal, rest = body.split(b"\x00", 1)
        statement, rest = rest.split(b"\x00", 1)
        prepared = self.prepared.get(statement.decode())
        if prepared is None:
            raise PgError("26000", f'prepared statement "{statement.decode()}" does not exist')
        offset = 0
        (nformats,) = struct.unpack_from("!h", rest, offset)
        offset += 2
        formats = list(struct.unpack_from(f"!{nformats}h", rest, offset))
        offset += 2 * nformats
        (nparams,) = struct.unpack_from("!h", rest, offset)
        offset += 2
        params = []
        for index in range(nparams):
            (size,) = struct.unpack_from("!i", rest, offset)
            offset += 4
            data = None if size == -1 else rest[offset : offset + size]
            offset += max(size, 0)
            fmt = formats[index] if len(formats) > 1 else (formats[0] if formats else 0)
            oid = prepared.param_oids[index] if index < len(prepared.param_oids) else UNKNOWN
            params.append(_decode(data, oid, fmt == 1))
        (nresults,) = struct.unpack_from("!h", rest, offset)
        offset += 2
        result_formats = list(struct.unpack_from(f"!{nresults}h", rest, offset))
        self.portals[portal.decode()] = Portal(prepared, params, result_formats)
        self.send(_message(b"2"))

    def describe(self, body: bytes) -> None:
        kind, name = body[:1], body[1:].rstrip(b"\x00").decode()
        if kind == b"S":
            prepared = self.prepared.get(name)
            if prepared is None:
                raise PgError("26000", f'prepared statement "{name}" does not exist')
            oids = [o if o not in (0, UNKNOWN) else TEXT for o in prepared.param_oids]
            self.send(
                _message(b"t", struct.pack("!h", len(oids)) + b"".join(struct.pack("!i", o) for o in oids))
            )
            columns = self.columns(prepared, None)
            formats: list[int] = []
        else:
            portal = self.portals.get(name)
            if portal is None:
                raise PgError("34000", f'portal "{name}" does not exist')
            columns = self.columns(portal.prepared, portal.params)
            formats = portal.result_formats
        self.send(self.row_description(columns, formats) if columns is not None else _message(b"n"))

    def execute(self, body: bytes) -> None:
        self.last_sql = None
        name = body.split(b"\x00", 1)[0].decode()
        portal = self.portals.get(name)
        if portal is None:
            raise PgError("34000", f'portal "{name}" does not exist')
        self.run(portal.prepared, portal.params, portal.result_formats, None)

    # -- SQL --------------------------------------------------------------------------------

    def prepare(self, sql: str, oids: list[int]) -> Prepared:
        text = sql.strip().rstrip(";").strip()
        upper = " ".join(text.split()).upper()
        if not text:
            return Prepared(sql, None, None, oids, ("empty", None))
        if upper.startswith("SET ") or upper.startswith("RESET "):
            return Prepared(sql, None, None, oids, ("set", "RESET" if upper.startswith("RESET") else "SET"))
        try:
            tree = sqlglot.parse_one(_parameters_apart(text), read="redshift")
        except sqlglot.errors.ParseError as error:
            raise PgError("42601", f"syntax error: {str(error).splitlines()[0]}") from None
        if isinstance(tree, exp.Command):
            raise PgError("0A000", f"this peer does not run: {text[:60]}")
        for node in list(tree.find_all(exp.Anonymous)):
            name = node.name.lower()
            if name == "pg_backend_pid" and not node.expressions:
                node.replace(exp.Literal.number(self.pid))
            elif name == "version" and not node.expressions:
                node.replace(exp.Literal.string(VERSION_STRING))
        for node in list(tree.find_all(exp.CurrentVersion)):
            node.replace(exp.Literal.string(VERSION_STRING))
        for node in list(tree.find_all(exp.CurrentUser)):
            node.replace(exp.Literal.string(self.user))
        for node in list(tree.find_all(exp.Column)):
            if (
                not node.table
                and node.name.lower() in ("current_user", "user", "session_user")
                and not node.this.quoted
            ):
                node.replace(exp.Literal.string(self.user))
        for node in list(tree.find_all(exp.Table)):
            if (
                isinstance(node.this, exp.Anonymous)
                and node.this.name.lower() == "pg_get_late_binding_view_cols"
            ):
                node.replace(_no_late_binding_views(node))  # the peer creates no WITH NO SCHEMA BINDING views
                continue
            body = _EMULATED_TABLES.get(node.name.lower())
            if body is not None and node.db.lower() in ("", "pg_catalog"):
                node.replace(
                    exp.Subquery(
                        this=sqlglot.parse_one(body, read="duckdb"),
                        alias=exp.TableAlias(this=exp.to_identifier(node.alias or node.name)),
                    )
                )
                continue
            if node.catalog and node.catalog.lower() not in self.peer.databases:
                raise PgError(
                    "0A000", f'cross-database reference to database "{node.catalog}" is not supported'
                )
        if isinstance(tree, exp.Alter) and self._renames_a_view(
            tree
        ):  # Redshift renames views with ALTER TABLE
            tree.set("kind", "VIEW")
        if isinstance(tree, exp.Select):  # PostgreSQL names unnamed select items ?column?
            for item in tree.expressions:
                if isinstance(item, exp.Literal):
                    item.replace(exp.alias_(item.copy(), "?column?"))
        return Prepared(sql, tree.sql(dialect="duckdb"), tree, oids)

    def _renames_a_view(self, tree: exp.Alter) -> bool:
        actions = tree.args.get("actions") or []
        if str(tree.args.get("kind") or "").upper() != "TABLE" or not any(
            isinstance(a, exp.AlterRename) for a in actions
        ):
            return False
        table = tree.this
        with self.peer._lock:
            schema = table.db or self.cursor.execute("select current_schema()").fetchone()[0]
            found = self.cursor.execute(
                "select 1 from duckdb_views() where database_name = ? and schema_name = ? and view_name = ?",
                [(table.catalog or self.database).lower(), schema.lower(), table.name.lower()],
            ).fetchall()
        return bool(found)

    @staticmethod
    def _returns_rows(prepared: Prepared) -> bool:
        return (
            isinstance(prepared.tree, (exp.Query, exp.Describe, exp.Show))
            if prepared.tree is not None
            else False
        )

    def columns(self, prepared: Prepared, params: list[Any] | None) -> list[tuple[str, int]] | None:
        """Column names and type OIDs, without running the statement; ``None`` if it returns no rows."""
        if not self._returns_rows(prepared):
            return None
        assert prepared.duckdb_sql is not None
        sql = prepared.duckdb_sql
        if params is None:  # describing a statement: parameters are unknown
            sql = re.sub(r"\$(\d+)", "NULL", sql)
        with self.peer._lock:
            try:
                relation = self.cursor.sql(sql, params=params or None) if params else self.cursor.sql(sql)
                return [(name, _oid(t)) for name, t in zip(relation.columns, relation.types, strict=True)]
            except duckdb.Error as error:
                raise _from_duckdb(error) from None

    def row_description(self, columns: list[tuple[str, int]], formats: list[int]) -> bytes:
        payload = bytearray(struct.pack("!h", len(columns)))
        for index, (name, oid) in enumerate(columns):
            fmt = formats[index] if len(formats) > 1 else (formats[0] if formats else 0)
            payload += _cstr(name) + struct.pack("!ihihih", 0, 0, oid, _TYPE_SIZES.get(oid, -1), -1, fmt)
        return _message(b"T", bytes(payload))

    def run(
        self, prepared: Prepared, params: list[Any], formats: list[int], columns: list[tuple[str, int]] | None
    ) -> None:
        error: str | None = None
        try:
            self._run(prepared, params, formats, columns)
        except PgError as exc:
            error = exc.message
            raise
        finally:
            self.peer.log.append(LogEntry(self.user, self.database, prepared.sql, prepared.duckdb_sql, error))

    def _run(
        self, prepared: Prepared, params: list[Any], formats: list[int], columns: list[tuple[str, int]] | None
    ) -> None:
        if self.status == b"E" and not re.match(r"\s*(rollback|abort|end|commit)\b", prepared.sql, re.I):
            raise PgError(
                "25P02", "current transaction is aborted, commands ignored until end of transaction block"
            )
        if prepared.special is not None:
            kind, tag = prepared.special
            self.send(_message(b"I") if kind == "empty" else _message(b"C", _cstr(tag)))
            return
        tree = prepared.tree
        assert tree is not None and prepared.duckdb_sql is not None
        with self.peer._lock:
            try:
                if self._returns_rows(prepared):
                    relation = (
                        self.cursor.sql(prepared.duckdb_sql, params=params)
                        if params
                        else self.cursor.sql(prepared.duckdb_sql)
                    )
                    oids = [_oid(t) for t in relation.types]
                    rows = relation.fetchall()
                else:
                    fetched = self.cursor.execute(prepared.duckdb_sql, params or None).fetchall()
                    rows, oids = [], []
            except duckdb.Error as exc:
                if self.status == b"T":
                    self.status = b"E"
                raise _from_duckdb(exc) from None
        if self._returns_rows(prepared):
            for row in rows:
                payload = bytearray(struct.pack("!h", len(row)))
                for index, value in enumerate(row):
                    if value is None:
                        payload += struct.pack("!i", -1)
                        continue
                    fmt = formats[index] if len(formats) > 1 else (formats[0] if formats else 0)
                    data = _encode(value, oids[index], fmt == 1)
                    payload += struct.pack("!i", len(data)) + data
                self.send(_message(b"D", bytes(payload)))
            self.send(_message(b"C", _cstr(f"SELECT {len(rows)}")))
            return
        count = int(fetched[0][0]) if fetched and fetched[0] and isinstance(fetched[0][0], int) else 0
        self.send(_message(b"C", _cstr(self._tag(tree, count))))

    def _tag(self, tree: exp.Expression, count: int) -> str:
        if isinstance(tree, exp.Transaction):
            self.status = b"T"
            return "BEGIN"
        if isinstance(tree, exp.Commit):
            self.status = b"I"
            return "COMMIT"
        if isinstance(tree, exp.Rollback):
            self.status = b"I"
            return "ROLLBACK"
        if isinstance(tree, exp.Insert):
            return f"INSERT 0 {count}"
        if isinstance(tree, exp.Update):
            return f"UPDATE {count}"
        if isinstance(tree, exp.Delete):
            return f"DELETE {count}"
        if isinstance(tree, exp.Create):
            kind = str(tree.args.get("kind") or "TABLE").upper()
            return f"CREATE {kind}"
        if isinstance(tree, exp.Drop):
            return f"DROP {str(tree.args.get('kind') or 'TABLE').upper()}"
        if isinstance(tree, exp.Alter):
            return f"ALTER {str(tree.args.get('kind') or 'TABLE').upper()}"
        return type(tree).__name__.upper()


def _no_late_binding_views(call: exp.Table) -> exp.Subquery:
    """``pg_get_late_binding_view_cols() AS cols(name type, …)`` as an empty relation of those columns."""
    alias = call.args.get("alias")
    columns = [c for c in (alias.columns if alias is not None else []) if isinstance(c, exp.ColumnDef)]
    items = (
        ", ".join(
            f"CAST(NULL AS {'VARCHAR' if c.args['kind'].this == exp.DataType.Type.NAME else c.args['kind'].sql('duckdb')}) "
            f"AS {c.name}"
            for c in columns
        )
        or "NULL AS view_name"
    )
    return exp.Subquery(
        this=sqlglot.parse_one(f"SELECT {items} WHERE false", read="duckdb"),
        alias=exp.TableAlias(this=exp.to_identifier(alias.name if alias is not None else "cols")),
    )


def _parameters_apart(sql: str) -> str:
    """``sql`` with a space after each ``$n`` parameter outside literals, identifiers and comments.

    In Redshift (as in PostgreSQL) ``$1,$2`` is two parameters: a dollar quote's tag cannot start
    with a digit. sqlglot's tokenizer reads ``$1,$`` as the start of a dollar-quoted string, so the
    parameters are set apart before it sees them.
    """
    out: list[str] = []
    index, length = 0, len(sql)
    while index < length:
        char = sql[index]
        if char in "'\"":
            end = index + 1
            while end < length and not (sql[end] == char and sql[end + 1 : end + 2] != char):
                end += 2 if sql[end] == char else 1
            out.append(sql[index : end + 1])
            index = end + 1
        elif sql.startswith("--", index):
            end = sql.find("\n", index)
            end = length if end < 0 else end
            out.append(sql[index:end])
            index = end
        elif sql.startswith("/*", index):
            end = sql.find("*/", index + 2)
            end = length if end < 0 else end + 2
            out.append(sql[index:end])
            index = end
        elif char == "$" and index + 1 < length and sql[index + 1].isdigit():
            end = index + 1
            while end < length and sql[end].isdigit():
                end += 1
            out.append(sql[index:end] + " ")
            index = end
        else:
            out.append(char)
            index += 1
    return "".join(out)


def md5_password_check(user: str, password: str, salt: bytes) -> str:
    """What redshift_connector sends for MD5 authentication (for tests of the peer)."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


# -- the AWS side of IAM authentication ------------------------------------------------------------


@attrs.frozen
class AwsCall:
    """One call the fake AWS endpoint answered."""

    service: str
    action: str
    access_key: str | None
    parameters: Mapping[str, Any]
    error: str | None


class FakeRedshiftApi:
    """The Redshift and Redshift Serverless APIs that IAM authentication calls, on 127.0.0.1.

    ``GetClusterCredentials`` (Query protocol, XML) and ``GetCredentials`` (JSON 1.1) check the
    request's SigV4 signature against the known access keys, then issue a temporary database user
    (``IAM:<DbUser>`` / ``IAMR:<user>``) and password and register them on ``peer``, exactly what
    the Redshift cluster does with temporary credentials. Point boto3 at it with
    ``AWS_ENDPOINT_URL_REDSHIFT`` / ``AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS``.
    """

    def __init__(
        self,
        peer: RedshiftPeer,
        access_keys: Mapping[str, str],
        *,
        clusters: Iterable[str] = (),
        workgroups: Iterable[str] = (),
    ) -> None:
        self.peer = peer
        self.access_keys = dict(access_keys)
        self.clusters = set(clusters)
        self.workgroups = set(workgroups)
        self.calls: list[AwsCall] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, content_type, payload = api._handle(self, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-amzn-RequestId", secrets.token_hex(16))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-aws", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeRedshiftApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ---------------------------------------------------------------------------

    def _handle(self, handler: Any, body: bytes) -> tuple[int, str, bytes]:
        import json
        import urllib.parse

        target = handler.headers.get("X-Amz-Target", "")
        if target.startswith("RedshiftServerless."):
            service, action = "redshift-serverless", target.split(".", 1)[1]
            parameters: dict[str, Any] = json.loads(body or b"{}")
        else:
            service = "redshift"
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            parameters = {k: v[0] for k, v in form.items()}
            action = str(parameters.pop("Action", ""))
        access_key, problem = self._verify(handler, body, service)
        if problem is None:
            try:
                result = self._call(service, action, parameters)
            except _AwsError as error:
                problem = (error.status, error.code, error.message)
        self.calls.append(AwsCall(service, action, access_key, parameters, problem[1] if problem else None))
        if problem is not None:
            status, code, message = problem
            if service == "redshift-serverless":
                payload = json.dumps({"__type": code, "message": message}).encode()
                return status, "application/x-amz-json-1.1", payload
            xml = (
                '<ErrorResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/"><Error>'
                f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                f"<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>"
            )
            return status, "text/xml", xml.encode()
        if service == "redshift-serverless":
            return 200, "application/x-amz-json-1.1", json.dumps(result).encode()
        fields = "".join(f"<{k}>{v}</{k}>" for k, v in result.items())
        xml = (
            f'<{action}Response xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">'
            f"<{action}Result>{fields}</{action}Result>"
            f"<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )
        return 200, "text/xml", xml.encode()

    def _verify(
        self, handler: Any, body: bytes, service: str
    ) -> tuple[str | None, tuple[int, str, str] | None]:
        """Check the request's AWS Signature Version 4 with the secret of its access key."""
        import hmac

        authorization = handler.headers.get("Authorization", "")
        match = re.match(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]+)",
            authorization,
        )
        if match is None:
            return None, (403, "MissingAuthenticationToken", "Request is missing Authentication Token")
        access_key, day, region, signed_service, signed, signature = match.groups()
        secret = self.access_keys.get(access_key)
        if secret is None:
            return access_key, (
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        if signed_service != service:
            return access_key, (
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to service {service}",
            )
        timestamp = handler.headers.get("X-Amz-Date", "")
        path, _, query = handler.path.partition("?")
        headers = "".join(
            f"{name}:{' '.join(str(handler.headers.get(name, '')).split())}\n" for name in signed.split(";")
        )
        canonical = "\n".join(["POST", path or "/", query, headers, signed, hashlib.sha256(body).hexdigest()])
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = f"AWS4{secret}".encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return access_key, (
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return access_key, None

    def _call(self, service: str, action: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
        password = "tmp-" + secrets.token_urlsafe(18)
        if service == "redshift" and action == "GetClusterCredentials":
            if "ClusterIdentifier" not in parameters:  # e.g. CustomDomainName for an unknown domain
                raise _AwsError(
                    400, "UnsupportedOperation", "Custom domain name is not associated with a cluster."
                )
            cluster = str(parameters["ClusterIdentifier"])
            if cluster not in self.clusters:
                raise _AwsError(404, "ClusterNotFound", f"Cluster {cluster} not found.")
            auto = str(parameters.get("AutoCreate", "false")).lower() == "true"
            user = ("IAMA:" if auto else "IAM:") + str(parameters["DbUser"])
            self.peer.add_user(user, password)
            return {
                "DbUser": user,
                "DbPassword": password,
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        if service == "redshift-serverless" and action == "GetCredentials":
            workgroup = str(parameters.get("workgroupName", ""))
            if workgroup not in self.workgroups:
                raise _AwsError(400, "ResourceNotFoundException", f"Workgroup {workgroup} not found")
            user = "IAMR:floe-role"
            self.peer.add_user(user, password)
            return {
                "dbUser": user,
                "dbPassword": password,
                "expiration": expires.timestamp(),
                "nextRefreshTime": expires.timestamp(),
            }
        if service == "redshift" and action == "DescribeCustomDomainAssociations":
            raise _AwsError(
                400, "CustomDomainAssociationNotFoundFault", "No custom domain associations found."
            )
        raise _AwsError(400, "InvalidAction", f"{service} {action} is not implemented by the fake")


class _AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
