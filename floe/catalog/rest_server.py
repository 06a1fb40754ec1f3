"""An embedded Iceberg REST catalog: the default catalog of ``floe run``.

:class:`EmbeddedCatalog` serves the Iceberg REST catalog protocol on ``127.0.0.1`` (an ephemeral
port) from a daemon thread of the calling process. Behind it is pyiceberg's ``SqlCatalog`` on a
SQLite file in WAL mode, with a ``file://`` warehouse; both live under the product's state
directory (``.floe/iceberg/<name>/``). DuckDB, Spark and pyiceberg attach to it exactly as they
attach to a production REST catalog, so an engine has one code path for both::

    with EmbeddedCatalog(state_dir) as catalog:
        catalog.uri        # http://127.0.0.1:<port>
        catalog.warehouse  # file:///…/.floe/iceberg/floe/warehouse

What it serves (no prefix; the namespace separator is the spec's ``%1F``):

- ``GET /v1/config`` (``?warehouse=`` may be the warehouse URI, its path or the catalog name);
- ``POST /v1/oauth/tokens``: OAuth2 client credentials (client :data:`CLIENT_ID`, its secret the
  catalog's token) exchanged for the token;
- namespaces: list (``?parent=``), create, load, ``HEAD`` exists, drop, properties update;
- tables: list, create (also ``stage-create``), register, load, ``HEAD`` exists, commit, drop
  (``?purgeRequested=true`` deletes the files), ``POST /v1/tables/rename``,
  ``POST /v1/transactions/commit`` (atomic across the tables it names);
- scan-metrics reports are accepted and dropped; views are not supported (none are listed).

Commits go through pyiceberg: the request becomes a ``CommitTableRequest``, its requirements are
checked against the current metadata, the new metadata file is written, and the catalog row is
swapped only if it still points at the metadata the requirements were checked against (a
compare-and-swap in one SQLite transaction). A commit that loses a race answers
``409 CommitFailedException`` and the client retries, so concurrent writers never lose or corrupt
a commit; the same holds across processes sharing the SQLite file.

**Authentication.** Any local process can reach a port on 127.0.0.1, so a catalog started with a
``token`` answers only requests that carry it (``Authorization: Bearer <token>``, compared in
constant time), or that buy it at ``/v1/oauth/tokens`` with it as the client secret; every other
request gets ``401 NotAuthorizedException`` before it touches the catalog. ``floe run`` starts its
embedded catalog with a random token per run (:mod:`floe.catalog.process`), which only its workers
receive. Without a token (tests, benchmarks) every request is served.

Importing this module imports only the standard library: pyiceberg (~0.5 s) is imported when the
server starts.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import CommitTableRequest, CommitTableResponse, Table
    from pyiceberg.table.metadata import TableMetadata

    from floe.catalog.retention import MaintenanceReport, RetentionPolicy
    from floe.model import CatalogConfig

logger = logging.getLogger(__name__)

NAMESPACE_SEPARATOR = "\x1f"
"""The REST spec's default separator of namespace levels in a path (``%1F`` once encoded)."""
ACCESS_TOKEN = "floe-embedded-catalog"
"""What ``/v1/oauth/tokens`` answers a catalog without a token (which checks no credentials)."""
CLIENT_ID = "floe"
"""The OAuth2 client a catalog with a token knows: its client secret is the token."""
TOKEN_PATH = "/v1/oauth/tokens"
SQLITE_BUSY_TIMEOUT_S = 30
"""How long a writer waits for SQLite's lock (another thread or process committing)."""
IDLE_CONNECTION_TIMEOUT_S = 300
"""A kept-alive client connection that sends nothing for this long is closed."""

ENDPOINTS = (
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/transactions/commit",
)
"""The ``endpoints`` of ``GET /v1/config``: clients call only what is listed here."""


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered: for diagnostics and for tests."""

    method: str
    path: str
    """The path and query as the client sent them (still percent-encoded)."""
    status: int
    seconds: float
    """The time the server took to answer, the sending of the answer excluded."""


class CatalogError(Exception):
    """An answer in the REST spec's ``ErrorModel``: ``{"error": {"message", "type", "code"}}``."""

    def __init__(self, code: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.type = type_
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


Payload = dict[str, Any] | str | None
"""A response body: a JSON object, JSON text already serialised, or nothing (``204``)."""
Query = Mapping[str, list[str]]


class EmbeddedCatalog:
    """An Iceberg REST catalog server on ``127.0.0.1``, backed by SQLite and a local warehouse.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). ``state_dir`` is the
    product's ``.floe`` directory; the catalog's files go to ``<state_dir>/iceberg/<name>/``
    (``catalog.sqlite`` and ``warehouse/``), so they survive between runs. ``port=0`` picks a free
    port. Every request is recorded in :attr:`requests` (the last 10,000). With ``token``, only
    requests that carry it are served (see the module docstring).
    """

    def __init__(
        self,
        state_dir: Path,
        name: str = "floe",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"catalog name {name!r} must be a plain, non-empty name")
        self.name = name
        self.state_dir = Path(state_dir).absolute()
        self.root = self.state_dir / "iceberg" / name
        self.database_path = self.root / "catalog.sqlite"
        self.warehouse_path = self.root / "warehouse"
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._token = token
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._backend: _Backend | None = None

    # -- what engines attach with ----------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The REST endpoint, ``http://127.0.0.1:<port>``; only while the server runs."""
        if self._server is None:
            raise RuntimeError("the embedded catalog is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def warehouse(self) -> str:
        """The warehouse as a ``file://`` URI: what engines pass as the catalog's warehouse."""
        return "file://" + self.warehouse_path.as_posix()

    def catalog_config(self) -> CatalogConfig:
        """This catalog as floe's :class:`~floe.model.CatalogConfig` (a REST catalog, no auth)."""
        from floe.model import CatalogConfig

        return CatalogConfig(type="rest", name=self.name, uri=self.uri, warehouse=self.warehouse)

    @property
    def running(self) -> bool:
        return self._server is not None

    def create_namespace(self, namespace: str) -> bool:
        """Create ``namespace`` unless it exists, in this process (no request); whether it was created.

        What a client's ``POST /v1/namespaces`` does, for the process that serves the catalog: the
        same SQL catalog, the same race with other creators settled by the database.
        """
        if self._backend is None:
            raise RuntimeError("the embedded catalog is not running: call start() first")
        try:
            self._backend.create_namespace({"namespace": [namespace]})
        except CatalogError as exc:
            if exc.code == 409:
                return False
            raise
        except Exception as exc:
            if type(exc).__name__ == "NamespaceAlreadyExistsError":
                return False
            raise
        return True

    def maintain(self, policy: RetentionPolicy) -> MaintenanceReport:
        """Apply the retention ``policy`` to every table (:func:`floe.catalog.retention.maintain`),
        in this process; only while nothing else writes (``floe run`` holds its run lock)."""
        from floe.catalog.retention import maintain

        if self._backend is None:
            raise RuntimeError("the embedded catalog is not running: call start() first")
        return maintain(self._backend.catalog, self.warehouse_path, policy)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> EmbeddedCatalog:
        """Open (or create) the SQLite catalog and serve it; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the embedded catalog is already running")
        self.warehouse_path.mkdir(parents=True, exist_ok=True)
        _enable_wal(self.database_path)
        backend = _Backend(self)
        try:
            server = _Server((self._host, self._port), backend, self.requests, self._token)
        except BaseException:
            backend.close()
            raise
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"floe-catalog-{self.name}",
            daemon=True,
        )
        thread.start()
        self._backend, self._server, self._thread = backend, server, thread
        logger.info("embedded Iceberg REST catalog %r serving at %s", self.name, self.uri)
        return self

    def stop(self) -> None:
        """Stop serving, close the open client connections and the SQLite catalog."""
        server, thread, backend = self._server, self._thread, self._backend
        self._server = self._thread = self._backend = None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        if backend is not None:
            backend.close()

    def __enter__(self) -> EmbeddedCatalog:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _enable_wal(path: Path) -> None:
    """Put the SQLite file in WAL mode (persistent), so readers never wait for a writer.

    A new file is created readable by its owner only; SQLite gives its WAL and shared-memory files
    the database file's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


# -- the catalog operations ----------------------------------------------------------------------


class _Backend:
    """The REST operations on one pyiceberg ``SqlCatalog``, shared by the request threads.

    ``SqlCatalog`` opens a SQLAlchemy session per call and its engine pools one SQLite connection
    per thread, so one instance serves every thread; atomicity comes from the compare-and-swap of
    the metadata location, not from a lock.
    """

    def __init__(self, owner: EmbeddedCatalog) -> None:
        from pyiceberg.catalog.sql import SqlCatalog

        self.name = owner.name
        self.warehouse = owner.warehouse
        self.warehouse_names = {
            owner.warehouse.rstrip("/"),
            owner.warehouse_path.as_posix().rstrip("/"),
            owner.name,
        }
        self.catalog: SqlCatalog = SqlCatalog(
            owner.name,
            uri=f"sqlite:///{owner.database_path.as_posix()}?timeout={SQLITE_BUSY_TIMEOUT_S}",
            warehouse=owner.warehouse,
            # fsspec's local file system: the server writes metadata only, and needs no pyarrow
            **{"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO"},
        )

    def close(self) -> None:
        self.catalog.close()

    # -- routing ---------------------------------------------------------------------------------

    def dispatch(self, method: str, path: str, query: Query, body: bytes) -> tuple[int, Payload]:
        """Answer one request: ``(status, payload)``; raises :class:`CatalogError` for errors."""
        raw = path.split("/")
        if len(raw) < 3 or raw[0] != "" or raw[1] != "v1":
            raise CatalogError(404, "NotFoundException", f"no such endpoint: {method} {path}")
        parts = [unquote(p) for p in raw[2:]]
        if parts and parts[-1] == "":
            parts.pop()
        route = (method, len(parts), parts[0] if parts else "")
        if route == ("GET", 1, "config"):
            return 200, self.config(query)
        if route == ("POST", 2, "oauth") and parts[1] == "tokens":
            return 200, _token_response(ACCESS_TOKEN)
        if route == ("POST", 2, "tables") and parts[1] == "rename":
            return self.rename_table(_json(body))
        if route == ("POST", 2, "transactions") and parts[1] == "commit":
            return self.commit_transaction(_json(body))
        if parts[:1] != ["namespaces"]:
            raise CatalogError(404, "NotFoundException", f"no such endpoint: {method} {path}")
        if len(parts) == 1:
            if method == "GET":
                return 200, self.list_namespaces(query)
            if method == "POST":
                return 200, self.create_namespace(_json(body))
            raise _not_allowed(method, path)
        namespace = _namespace(parts[1])
        if len(parts) == 2:
            if method == "GET":
                return 200, self.load_namespace(namespace)
            if method == "HEAD":
                self.load_namespace(namespace)
                return 204, None
            if method == "DELETE":
                self.catalog.drop_namespace(namespace)
                return 204, None
            raise _not_allowed(method, path)
        kind = parts[2]
        if len(parts) == 3:
            if (method, kind) == ("POST", "properties"):
                return 200, self.update_namespace_properties(namespace, _json(body))
            if (method, kind) == ("GET", "tables"):
                return 200, self.list_tables(namespace)
            if (method, kind) == ("POST", "tables"):
                return 200, self.create_table(namespace, _json(body))
            if (method, kind) == ("POST", "register"):
                return 200, self.register_table(namespace, _json(body))
            if (method, kind) == ("GET", "views"):
                self.load_namespace(namespace)
                return 200, {"identifiers": []}
            raise CatalogError(404, "NotFoundException", f"no such endpoint: {method} {path}")
        identifier = (*namespace, parts[3])
        if kind == "views" and len(parts) == 4 and method in ("GET", "HEAD", "DELETE"):
            raise CatalogError(404, "NoSuchViewException", f"views are not supported: {parts[3]}")
        if kind != "tables":
            raise CatalogError(404, "NotFoundException", f"no such endpoint: {method} {path}")
        if len(parts) == 5 and (method, parts[4]) == ("POST", "metrics"):
            return 204, None  # a scan or commit report: nothing to keep
        if len(parts) != 4:
            raise CatalogError(404, "NotFoundException", f"no such endpoint: {method} {path}")
        if method == "GET":
            return 200, self.load_table(identifier)
        if method == "HEAD":
            if not self.catalog.table_exists(identifier):
                raise _no_such_table(identifier)
            return 204, None
        if method == "POST":
            return 200, self.commit_table(identifier, _json(body))
        if method == "DELETE":
            purge = _flag(query, "purgeRequested")
            if purge:
                self.catalog.purge_table(identifier)
            else:
                self.catalog.drop_table(identifier)
            return 204, None
        raise _not_allowed(method, path)

    # -- config ----------------------------------------------------------------------------------

    def config(self, query: Query) -> dict[str, Any]:
        warehouse = _first(query, "warehouse")
        if warehouse and warehouse.rstrip("/") not in self.warehouse_names:
            raise CatalogError(
                400,
                "BadRequestException",
                f"unknown warehouse {warehouse!r}: this catalog serves {self.warehouse!r} "
                f"(also known as {self.name!r})",
            )
        return {"defaults": {}, "overrides": {}, "endpoints": list(ENDPOINTS)}

    # -- namespaces ------------------------------------------------------------------------------

    def list_namespaces(self, query: Query) -> dict[str, Any]:
        parent = _first(query, "parent")
        parent_ns = _namespace(parent) if parent else ()
        if parent_ns:
            self.load_namespace(parent_ns)
        namespaces = self.catalog.list_namespaces(parent_ns)
        return {"namespaces": [list(ns) for ns in namespaces]}

    def create_namespace(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = _namespace_list(body.get("namespace"))
        properties = _properties(body.get("properties"))
        try:
            self.catalog.create_namespace(namespace, properties)
        except Exception as exc:
            if type(exc).__name__ == "IntegrityError":  # lost a race with another creator
                raise CatalogError(
                    409, "AlreadyExistsException", f"namespace already exists: {_dotted(namespace)}"
                ) from None
            raise
        return {"namespace": list(namespace), "properties": properties}

    def load_namespace(self, namespace: tuple[str, ...]) -> dict[str, Any]:
        properties = self.catalog.load_namespace_properties(namespace)
        return {"namespace": list(namespace), "properties": dict(properties)}

    def update_namespace_properties(
        self, namespace: tuple[str, ...], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        removals = body.get("removals") or []
        if not isinstance(removals, list) or not all(isinstance(k, str) for k in removals):
            raise CatalogError(400, "BadRequestException", "removals must be a list of strings")
        updates = _properties(body.get("updates"))
        summary = self.catalog.update_namespace_properties(namespace, set(removals), updates)
        return {"updated": summary.updated, "removed": summary.removed, "missing": summary.missing}

    # -- tables ----------------------------------------------------------------------------------

    def list_tables(self, namespace: tuple[str, ...]) -> dict[str, Any]:
        tables = self.catalog.list_tables(namespace)
        return {
            "identifiers": [{"namespace": list(t[:-1]), "name": t[-1]} for t in tables],
        }

    def load_table(self, identifier: tuple[str, ...]) -> str:
        table = self.catalog.load_table(identifier)
        return _table_response(table.metadata, table.metadata_location)

    def create_table(self, namespace: tuple[str, ...], body: Mapping[str, Any]) -> str:
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
        from pyiceberg.schema import Schema
        from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder

        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise CatalogError(400, "BadRequestException", "a table needs a non-empty name")
        if "schema" not in body:
            raise CatalogError(400, "BadRequestException", "a table needs a schema")
        identifier = (*namespace, name)
        schema = Schema.model_validate(body["schema"])
        spec = body.get("partition-spec")
        order = body.get("write-order")
        partition_spec = PartitionSpec.model_validate(spec) if spec else UNPARTITIONED_PARTITION_SPEC
        sort_order = SortOrder.model_validate(order) if order else UNSORTED_SORT_ORDER
        location = body.get("location") or None
        properties = _properties(body.get("properties"))
        if body.get("stage-create"):
            self.catalog.load_namespace_properties(namespace)  # 404 for a missing namespace
            if self.catalog.table_exists(identifier):
                raise _table_exists(identifier)
            staged = self.catalog._create_staged_table(
                identifier, schema, location, partition_spec, sort_order, properties
            )
            _make_local_directories(staged.metadata.location)
            return _table_response(staged.metadata, None)  # nothing written until the commit
        table = self.catalog.create_table(
            identifier, schema, location, partition_spec, sort_order, properties
        )
        _make_local_directories(table.metadata.location)
        return _table_response(table.metadata, table.metadata_location)

    def register_table(self, namespace: tuple[str, ...], body: Mapping[str, Any]) -> str:
        name, location = body.get("name"), body.get("metadata-location")
        if not isinstance(name, str) or not isinstance(location, str):
            raise CatalogError(400, "BadRequestException", "register needs name and metadata-location")
        table = self.catalog.register_table(
            (*namespace, name), location, overwrite=bool(body.get("overwrite", False))
        )
        return _table_response(table.metadata, table.metadata_location)

    def rename_table(self, body: Mapping[str, Any]) -> tuple[int, Payload]:
        source = _table_identifier(body.get("source"), "source")
        destination = _table_identifier(body.get("destination"), "destination")
        if self.catalog.table_exists(destination):
            raise _table_exists(destination)
        try:
            self.catalog.rename_table(source, destination)
        except Exception as exc:
            if type(exc).__name__ == "IntegrityError":
                raise _table_exists(destination) from None
            raise
        return 204, None

    # -- commits ---------------------------------------------------------------------------------

    def commit_table(self, identifier: tuple[str, ...], body: Mapping[str, Any]) -> str:
        request = _commit_request(identifier, body)
        response = self._commit(request)
        return response.model_dump_json()

    def commit_transaction(self, body: Mapping[str, Any]) -> tuple[int, Payload]:
        changes = body.get("table-changes")
        if not isinstance(changes, list) or not changes:
            raise CatalogError(400, "BadRequestException", "table-changes must be a non-empty list")
        requests = []
        for change in changes:
            if not isinstance(change, Mapping):
                raise CatalogError(400, "BadRequestException", "each table change must be an object")
            identifier = _table_identifier(change.get("identifier"), "identifier")
            requests.append(_commit_request(identifier, change))
        seen = [r.identifier for r in requests]
        if len({(tuple(i.namespace.root), i.name) for i in seen}) != len(seen):
            raise CatalogError(400, "BadRequestException", "a table appears twice in table-changes")
        if len(requests) == 1:
            self._commit(requests[0])
        else:
            self._commit_many(requests)
        return 204, None

    def _commit(self, request: CommitTableRequest) -> CommitTableResponse:
        """One table's commit through ``SqlCatalog.commit_table`` (requirements, then a CAS)."""
        identifier = (*request.identifier.namespace.root, request.identifier.name)
        creating = _creates(request)
        if creating:
            self.catalog.load_namespace_properties(identifier[:-1])
        elif not self.catalog.table_exists(identifier):
            raise _no_such_table(identifier)
        return self.catalog.commit_table(self._handle(identifier), request.requirements, request.updates)

    def _commit_many(self, requests: list[CommitTableRequest]) -> None:
        """Several tables' commits, all or none: one SQLite transaction swaps every row.

        pyiceberg's ``commit_table`` commits one table, so this does its steps itself: check the
        requirements against each table's current metadata, write each new metadata file, then
        compare-and-swap every catalog row in a single transaction.
        """
        from pyiceberg.catalog import Catalog
        from pyiceberg.catalog.sql import IcebergTables
        from pyiceberg.exceptions import CommitFailedException
        from sqlalchemy import insert, update
        from sqlalchemy.orm import Session

        catalog = self.catalog
        staged = []
        for request in requests:
            identifier = (*request.identifier.namespace.root, request.identifier.name)
            creating = _creates(request)
            current: Table | None
            if creating:
                catalog.load_namespace_properties(identifier[:-1])
                current = None
                if catalog.table_exists(identifier):
                    raise CommitFailedException(f"Table already exists: {_dotted(identifier)}")
            else:
                current = catalog.load_table(identifier)
            new = catalog._update_and_stage_table(current, identifier, request.requirements, request.updates)
            if current is not None and new.metadata == current.metadata:
                continue
            staged.append((identifier, current, new))
        for _, _, new in staged:
            catalog._write_metadata(new.metadata, new.io, new.metadata_location)
        with Session(catalog.engine) as session:
            for identifier, current, new in staged:
                namespace = Catalog.namespace_to_string(identifier[:-1])
                if current is None:
                    row = catalog._create_table_row(namespace, identifier[-1], new.metadata_location)
                    try:
                        session.execute(insert(IcebergTables).values(**row))
                    except Exception as exc:
                        if type(exc).__name__ == "IntegrityError":
                            raise CommitFailedException(
                                f"Table already exists: {_dotted(identifier)}"
                            ) from None
                        raise
                    continue
                result = session.execute(
                    update(IcebergTables)
                    .where(
                        IcebergTables.catalog_name == catalog.name,
                        IcebergTables.table_namespace == namespace,
                        IcebergTables.table_name == identifier[-1],
                        IcebergTables.metadata_location == current.metadata_location,
                    )
                    .values(
                        metadata_location=new.metadata_location,
                        previous_metadata_location=current.metadata_location,
                    )
                )
                if getattr(result, "rowcount", 0) < 1:
                    raise CommitFailedException(
                        f"Table has been updated by another process: {_dotted(identifier)}"
                    )  # leaving the block without commit() rolls every row back
            session.commit()

    def _handle(self, identifier: tuple[str, ...]) -> Table:
        """A stand-in ``Table`` naming ``identifier``: ``commit_table`` reads only its name."""
        from pyiceberg.table import Table

        return Table(
            identifier=identifier,
            metadata=self.catalog._empty_table_metadata(),
            metadata_location="",
            io=self.catalog._load_file_io(),
            catalog=self.catalog,
        )


def _commit_request(identifier: tuple[str, ...], body: Mapping[str, Any]) -> CommitTableRequest:
    from pyiceberg.table import CommitTableRequest

    return CommitTableRequest.model_validate(
        {
            "identifier": {"namespace": list(identifier[:-1]), "name": identifier[-1]},
            "requirements": body.get("requirements") or [],
            "updates": body.get("updates") or [],
        }
    )


def _creates(request: CommitTableRequest) -> bool:
    return any(r.type == "assert-create" for r in request.requirements)


def _table_response(metadata: TableMetadata, location: str | None) -> str:
    """A ``LoadTableResult``, with the metadata serialised once by pyiceberg."""
    head = "{" if location is None else f'{{"metadata-location":{json.dumps(location)},'
    return f'{head}"metadata":{metadata.model_dump_json()},"config":{{}}}}'


def _make_local_directories(location: str) -> None:
    """Create a local table's ``data/`` and ``metadata/`` directories.

    DuckDB writes a staged table's files before the commit and, on a local file system, does not
    create the directories it writes into (object stores have none); Spark and pyiceberg do.
    """
    split = urlsplit(location)
    if split.scheme not in ("", "file") or split.netloc not in ("", "localhost"):
        return
    root = Path(unquote(split.path) if split.scheme else location)
    for sub in ("data", "metadata"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def _token_response(token: str) -> dict[str, Any]:
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 86_400,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
    }


# -- request pieces --------------------------------------------------------------------------------


def _json(body: bytes) -> Mapping[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise CatalogError(400, "BadRequestException", f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CatalogError(400, "BadRequestException", "the body must be a JSON object")
    return value


def _first(query: Query, key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _flag(query: Query, key: str) -> bool:
    return (_first(query, key) or "").lower() == "true"


def _namespace(text: str) -> tuple[str, ...]:
    levels = tuple(text.split(NAMESPACE_SEPARATOR))
    if not all(levels):
        raise CatalogError(400, "BadRequestException", f"invalid namespace {text!r}")
    return levels


def _namespace_list(value: object) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(level, str) and level for level in value)
    ):
        raise CatalogError(400, "BadRequestException", "namespace must be a non-empty list of names")
    return tuple(value)


def _table_identifier(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise CatalogError(400, "BadRequestException", f"{what} must be {{namespace, name}}")
    return (*_namespace_list(value.get("namespace")), value["name"])


def _properties(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CatalogError(400, "BadRequestException", "properties must be an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _dotted(identifier: Iterable[str]) -> str:
    return ".".join(identifier)


def _no_such_table(identifier: tuple[str, ...]) -> CatalogError:
    return CatalogError(404, "NoSuchTableException", f"Table does not exist: {_dotted(identifier)}")


def _table_exists(identifier: tuple[str, ...]) -> CatalogError:
    return CatalogError(409, "AlreadyExistsException", f"Table already exists: {_dotted(identifier)}")


def _unauthorized(message: str) -> CatalogError:
    return CatalogError(401, "NotAuthorizedException", message)


def _same(given: str, expected: str) -> bool:
    """Whether two secrets are equal, in a time that does not depend on where they differ."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _not_allowed(method: str, path: str) -> CatalogError:
    return CatalogError(405, "MethodNotAllowedException", f"{method} is not allowed on {path}")


def _error_for(exc: Exception) -> CatalogError:
    """The ``ErrorModel`` answer for an exception raised while serving a request."""
    from pyiceberg import exceptions as e

    known: list[tuple[type[Exception], int, str]] = [
        (e.NoSuchNamespaceError, 404, "NoSuchNamespaceException"),
        (e.NoSuchTableError, 404, "NoSuchTableException"),
        (e.NoSuchViewError, 404, "NoSuchViewException"),
        (e.NamespaceAlreadyExistsError, 409, "AlreadyExistsException"),
        (e.TableAlreadyExistsError, 409, "AlreadyExistsException"),
        (e.NamespaceNotEmptyError, 409, "NamespaceNotEmptyException"),
        (e.CommitFailedException, 409, "CommitFailedException"),
        (e.ValidationError, 400, "ValidationException"),
        (e.NoSuchIdentifierError, 400, "BadRequestException"),
        (e.NoSuchPropertyException, 400, "BadRequestException"),
        (NotImplementedError, 501, "UnsupportedOperationException"),
        (ValueError, 400, "BadRequestException"),  # also pydantic's ValidationError
    ]
    for cls, code, type_ in known:
        if isinstance(exc, cls):
            return CatalogError(code, type_, str(exc).strip() or type(exc).__name__)
    if type(exc).__name__ == "OperationalError" and "locked" in str(exc):
        return CatalogError(503, "ServiceUnavailableException", f"the catalog is busy: {exc}")
    logger.exception("embedded Iceberg catalog: internal error")
    return CatalogError(500, "InternalServerError", f"{type(exc).__name__}: {exc}")


# -- HTTP ------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], backend: _Backend, log: deque[RequestRecord], token: str | None
    ) -> None:
        self.backend = backend
        self.log = log
        self.token = token
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """End the kept-alive connections, so that no handler thread outlives the server."""
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a small answer waits ~40 ms for the client's delayed ACK
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server_version = "floe-iceberg-rest"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.perf_counter()
        split = urlsplit(self.path)
        status: int
        payload: Payload
        try:
            body = self._read_body()
            token = self.server.token
            if token is not None and split.path.rstrip("/") == TOKEN_PATH and self.command == "POST":
                status, payload = 200, _token_response(self._exchange(body, token))
            else:
                if token is not None:
                    self._authenticate(token)
                status, payload = self.server.backend.dispatch(
                    self.command, split.path, parse_qs(split.query), body
                )
        except CatalogError as exc:
            status, payload = exc.code, exc.body()
        except Exception as exc:  # noqa: BLE001 - every failure is an ErrorModel answer
            error = _error_for(exc)
            status, payload = error.code, error.body()
        elapsed = time.perf_counter() - started
        # recorded before the answer leaves, so that a client that got it finds it recorded
        self.server.log.append(RequestRecord(self.command, self.path, status, elapsed))
        logger.debug("%s %s -> %d (%.1f ms)", self.command, self.path, status, elapsed * 1000)
        self._send(status, payload)

    def _authenticate(self, token: str) -> None:
        """Refuse a request that does not carry ``Authorization: Bearer <token>``."""
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not _same(given.strip(), token):
            raise _unauthorized("this catalog needs its bearer token (floe run gives it to its workers only)")

    def _exchange(self, body: bytes, token: str) -> str:
        """OAuth2 ``client_credentials``: the token, for client :data:`CLIENT_ID` whose secret it is
        (in the form, or as HTTP Basic credentials)."""
        form = parse_qs(body.decode("utf-8", "replace"))
        client_id, secret = _first(form, "client_id"), _first(form, "client_secret")
        scheme, _, basic = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                client_id, _, secret = base64.b64decode(basic.strip()).decode().partition(":")
        if (
            _first(form, "grant_type") != "client_credentials"
            or client_id != CLIENT_ID
            or not _same(secret or "", token)
        ):
            raise _unauthorized("invalid client credentials")
        return token

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, payload: Payload) -> None:
        data = b""
        if isinstance(payload, str):
            data = payload.encode()
        elif payload is not None:
            data = json.dumps(payload).encode()
        self.send_response(status, _reason(status))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="floe-embedded-catalog"')
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("embedded catalog: " + format, *args)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
