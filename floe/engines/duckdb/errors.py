"""DuckDB's errors in a reader's words: a lock, a missing extension, an unreachable catalog, SQL.

Classes are matched by module and name, so duckdb is not imported to recognise them.
"""

from __future__ import annotations

import re
from pathlib import Path

from floe.enginekit import exception_chain, first_line, first_lines

# -- error translation -----------------------------------------------------------------------------

_DUCKDB_MODULES = ("duckdb", "_duckdb")
_DUCKDB_PREFIXES = (
    "IO Error:",
    "Catalog Error:",
    "Parser Error:",
    "Binder Error:",
    "HTTP Error:",
    "Out of Memory Error:",
    "Invalid Input Error:",
    "Conversion Error:",
    "Constraint Error:",
    "Connection Error:",
)
_LOCK = re.compile(
    r'Could not set lock on file "(?P<file>[^"]+)"'
    r"(?::\s*Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\))?"
)
_EXTENSION_FILE = re.compile(r'Extension "(?P<path>[^"]+?\.duckdb_extension)" not found')
_REQUIRED_EXTENSION = re.compile(r"required extension '(?P<name>[a-z0-9_]+)'")
_HTTP_STATUS = re.compile(r"\b(?:HTTP|status)\s*(?:code\s*)?(?P<code>[1-5][0-9]{2})\b", re.I)
_CANNOT_OPEN = re.compile(r'Cannot open (?:file|database) "(?P<file>[^"]+)"')


def _is_duckdb_class(cls: type) -> bool:
    module = cls.__module__ or ""
    return module in _DUCKDB_MODULES or module.startswith("duckdb.")


def _duckdb_error(error: BaseException) -> tuple[list[str], str] | None:
    """The class names and text of the DuckDB error in ``error`` or its causes.

    dbt wraps DuckDB exceptions in its own, sometimes keeping only the text: a dbt error whose text
    starts like a DuckDB message counts too.
    """
    for current in exception_chain(error):
        mro = type(current).__mro__
        if any(_is_duckdb_class(c) for c in mro):
            return [c.__name__ for c in mro], str(current)
    text = str(error)
    module = type(error).__module__ or ""
    if module.startswith("dbt"):
        starts = [i for i in (text.find(p) for p in _DUCKDB_PREFIXES) if i >= 0]
        if starts:  # dbt indents the DuckDB message under its own heading
            message = "\n".join(line.strip() for line in text[min(starts) :].splitlines())
            return [], message
    return None


def _translate(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a DuckDB error, or ``None`` when it is not recognised."""
    for rule in (_opening, _extensions, _remote, _settings_and_files, _sql):
        found = rule(classes, text)
        if found is not None:
            return found
    return None


def _opening(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """A database file another process holds, or this process opened with other settings."""
    first = first_line(text)
    if lock := _LOCK.search(text):
        holder = f"{lock['program']} (PID {lock['pid']})" if lock["pid"] else "another process"
        fix = (
            f"stop that process (kill {lock['pid']}) or wait until it closes the database"
            if lock["pid"]
            else "find the process with `fuser` or `lsof` and stop it, or wait until it finishes"
        )
        return (
            "open the database",
            f"the database file {lock['file']} is locked by {holder}",
            f"{fix}; DuckDB lets one process write a database file (readers that only read "
            f"can share it with read_only: true)",
        )
    if "different configuration than existing connections" in text:
        return (
            "open the database",
            f"this process already has the database open with other settings: {first}",
            "close the other connection first (let the running dbt command finish), or give "
            "this compute its own path",
        )
    return None


def _extensions(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """An extension that is needed but not installed, or that refuses an option."""
    first = first_line(text)
    if (found := _EXTENSION_FILE.search(text)) or (found := _REQUIRED_EXTENSION.search(text)):
        name = (
            found["name"]
            if "name" in found.groupdict()
            else (Path(found["path"]).name.removesuffix(".duckdb_extension"))
        )
        version = _installed_duckdb_version()
        return (
            "load an extension",
            f"the DuckDB extension {name!r} is needed but not installed: {first}",
            f"add {name} to the compute's extensions and install its wheel: "
            f"pip install duckdb-extension-{name.replace('_', '-')}=={version}",
        )
    if "Unhandled options found" in text:
        return (
            "attach the Iceberg catalog",
            f"the DuckDB iceberg extension does not accept an option: {first}",
            "upgrade duckdb and duckdb-extension-iceberg together, or remove the option",
        )
    return None


def _remote(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """A catalog or file server that cannot be reached or refuses the credentials."""
    first = first_line(text)
    is_ = set(classes).__contains__
    if (
        is_("HTTPException")
        or "HTTP Error" in text
        or "Could not connect to server" in text
        or ("Could not get token" in text)
    ):
        code = _HTTP_STATUS.search(text)
        if code and code["code"] in ("401", "403"):
            return (
                "reach a remote service",
                f"the server refused the credentials (HTTP {code['code']}): {first}",
                "check the values of the secrets the catalog references (client_id/client_secret "
                "or token) and their permissions on the warehouse",
            )
        return (
            "reach a remote service",
            f"DuckDB could not reach the server: {first}",
            "check that the catalog uri (or file URL) is right and reachable from where dbt "
            "runs: network, DNS, proxy, TLS; and that the server is up",
        )
    return None


def _settings_and_files(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """A setting DuckDB does not know, memory, a read-only or missing database file."""
    first = first_line(text)
    is_ = set(classes).__contains__
    if "unrecognized configuration parameter" in text:
        return (
            "apply settings",
            first,
            "correct or remove that key under the compute's settings; "
            "SELECT name FROM duckdb_settings() lists the valid ones",
        )
    if is_("OutOfMemoryException") or text.startswith("Out of Memory Error"):
        return (
            "run a query",
            first,
            "raise memory_limit (and the pod's memory with it), lower duckdb_threads, or set "
            "preserve_insertion_order: false under settings",
        )
    if "in read-only mode" in text and "does not exist" not in text:
        return (
            "write to the database",
            first,
            "remove read_only from the compute, or run only models that read",
        )
    if "does not exist" in text and "read-only" in text:
        return (
            "open the database",
            first,
            "run dbt once without read_only so that the database file is created, or fix path",
        )
    if cannot_open := _CANNOT_OPEN.search(text):
        return (
            "open the database",
            first,
            f"check that the directory of {cannot_open['file']} exists and is writable, or change path",
        )
    return None


def _sql(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """SQL DuckDB cannot parse or bind: the statement's own problem."""
    is_ = set(classes).__contains__
    if is_("ParserException") or text.startswith("Parser Error"):
        return (
            "parse SQL",
            first_lines(text, 3),
            "fix the SQL syntax at the position shown (DuckDB's SQL dialect)",
        )
    if is_("CatalogException") or text.startswith("Catalog Error"):
        return (
            "run SQL",
            first_lines(text, 2),
            "check the name; if it is a model, build it first (dbt run --select +<model>); "
            "if it is a source, check that the table exists in that schema",
        )
    if is_("BinderException") or text.startswith("Binder Error"):
        return (
            "run SQL",
            first_lines(text, 2),
            "check the column and function names against the upstream model's columns",
        )
    return None


def _installed_duckdb_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("duckdb")
    except metadata.PackageNotFoundError:
        return "<duckdb version>"
