"""The bridge hooks of the ``postgres`` engine: its tables read as Arrow, Arrow loaded into its tables.

floe carries a model between the run's Iceberg catalog and PostgreSQL through these (see
``floe_read_arrow`` and ``floe_load_arrow`` in floe's hook specifications). Both go through ADBC's
PostgreSQL driver (``adbc-driver-postgresql``), which speaks PostgreSQL's binary ``COPY`` in both
directions: no row is sent as an ``INSERT``.

A load is one transaction: the schema created if missing, a staging table created with each
column's exact type, the rows copied into it, the old table dropped (``CASCADE``, as dbt's own
``table`` materialization drops it: views over it are rebuilt by the dbt run that follows) and the
staging table renamed in its place. Until the commit nobody sees a thing; a failure part way
rolls everything back and the table keeps its rows.

Types: ``NUMERIC(p, s)`` ↔ ``decimal128(p, s)`` (ADBC reads NUMERIC as text: it is parsed with
the precision and scale of the column's type modifier; an unconstrained ``NUMERIC`` has none, and
fails naming the column), integers, ``REAL``/``DOUBLE PRECISION``, ``DATE``, ``TIMESTAMP`` and
``TIMESTAMPTZ`` (microseconds), ``TIME``, ``TEXT``, ``BOOLEAN``, ``BYTEA``. Anything else fails
naming the column and both types.

Imported only when floe bridges a table: pyarrow and the ADBC driver are imported here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow
import pyarrow.compute
from floe.enginekit import (
    ComputeConfig,
    PluginExecutionError,
    Relation,
    first_line,
    quote_identifier,
    secret_reference,
    secret_value,
    sql_columns,
    staging_name,
    type_error,
)

ENGINE = "postgres"
PIP_DRIVER = "pip install 'adbc-driver-postgresql>=1.13,<2'"
NUMERIC_OFFSET = 4
"""PostgreSQL stores ``NUMERIC(p, s)``'s type modifier as ``((p << 16) | s) + 4``."""
CAST_FIX = (
    "cast the column in the model to a type both sides have (numeric(p, s), bigint, date, timestamp, text…)"
)


def read_arrow(compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
    """``SELECT *`` of ``relation`` through ADBC (binary COPY), each column in its exact Arrow type."""
    driver = _driver(compute, "read_arrow")
    with _connection(compute, "read_arrow") as connection, _closing(connection.cursor()) as cursor:
        try:
            cursor.execute(f"SELECT * FROM {_qualified(compute, relation, 'read_arrow')}")
            table = cursor.fetch_arrow_table()
        except driver.Error as exc:
            raise _failure(compute, "read_arrow", f"reading {relation}", exc) from None
    return _exact(compute, relation, table)


def load_arrow(compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
    """Copy ``data`` into a staging table and swap it in for ``relation``, in one transaction."""
    operation = "load_arrow"
    columns = sql_columns(ENGINE, compute, relation, data.schema, _sql_type, CAST_FIX)  # before any write
    target = _qualified(compute, relation, operation)
    staging = staging_name(relation.identifier)
    staged = f"{quote_identifier(relation.schema)}.{quote_identifier(staging)}"
    definition = ", ".join(f"{quote_identifier(name)} {kind}" for name, kind in columns)
    driver = _driver(compute, operation)
    with _connection(compute, operation) as connection, _closing(connection.cursor()) as cursor:
        try:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(relation.schema)}")
            cursor.execute(f"DROP TABLE IF EXISTS {staged}")
            cursor.execute(f"CREATE TABLE {staged} ({definition})")
            cursor.adbc_ingest(staging, data, mode="append", db_schema_name=relation.schema)
            cursor.execute(f"DROP TABLE IF EXISTS {target} CASCADE")
            cursor.execute(f"ALTER TABLE {staged} RENAME TO {quote_identifier(relation.identifier)}")
            cursor.execute(f"SELECT count(*) FROM {target}")
            row = cursor.fetchone()
            connection.commit()
        except driver.Error as exc:  # a failed stream of ``data`` arrives as the driver's error too
            with contextlib.suppress(driver.Error):
                connection.rollback()
            raise _failure(compute, operation, f"loading {relation}", exc) from None
    return int(row[0]) if row else 0


# -- types -------------------------------------------------------------------------------------------


def _sql_type(arrow_type: pyarrow.DataType) -> str | None:
    """The PostgreSQL type that keeps every value of ``arrow_type``; ``None`` when there is none."""
    t = arrow_type
    if pyarrow.types.is_boolean(t):
        return "boolean"
    if pyarrow.types.is_integer(t):
        width = t.bit_width + (0 if pyarrow.types.is_signed_integer(t) else 1)
        return "smallint" if width <= 16 else "integer" if width <= 32 else "bigint" if width <= 64 else None
    if pyarrow.types.is_float16(t) or pyarrow.types.is_float32(t):
        return "real"
    if pyarrow.types.is_float64(t):
        return "double precision"
    if pyarrow.types.is_decimal(t):
        return f"numeric({t.precision}, {t.scale})"
    if pyarrow.types.is_string(t) or pyarrow.types.is_large_string(t):
        return "text"
    if pyarrow.types.is_binary(t) or pyarrow.types.is_large_binary(t):
        return "bytea"
    if pyarrow.types.is_date(t):
        return "date"
    if pyarrow.types.is_time(t) and t.unit in ("s", "ms", "us"):
        return "time"
    if pyarrow.types.is_timestamp(t) and t.unit in ("s", "ms", "us"):
        return "timestamptz" if t.tz is not None else "timestamp"
    return None


def _exact(compute: ComputeConfig, relation: Relation, table: pyarrow.Table) -> pyarrow.Table:
    """``table`` with NUMERIC columns as decimals and every column one floe can commit to Iceberg.

    ADBC gives NUMERIC as an opaque text type carrying the column's type modifier; other opaque
    (PostgreSQL-only) types and intervals have no Arrow type Iceberg shares, and fail here.
    """
    columns, fields = [], []
    for index, field in enumerate(table.schema):
        column = table.column(index)
        metadata = field.metadata or {}
        pg_type = metadata.get(b"POSTGRESQL:type", b"?").decode()
        if pg_type == "numeric":
            column = _numeric(
                compute, relation, field.name, column, int(metadata.get(b"POSTGRESQL:typmod", b"-1"))
            )
        elif isinstance(field.type, pyarrow.ExtensionType) or pyarrow.types.is_interval(field.type):
            raise type_error(
                ENGINE,
                compute,
                relation,
                field.name,
                f"PostgreSQL {pg_type}",
                "an Iceberg type",
                "Iceberg has no such type",
                CAST_FIX,
            )
        columns.append(column)
        fields.append(pyarrow.field(field.name, column.type))
    return pyarrow.Table.from_arrays(columns, schema=pyarrow.schema(fields))


def _numeric(compute: ComputeConfig, relation: Relation, name: str, column: Any, typmod: int) -> Any:
    if typmod < NUMERIC_OFFSET:
        raise type_error(
            ENGINE,
            compute,
            relation,
            name,
            "PostgreSQL numeric (no precision or scale)",
            "Iceberg decimal(p, s)",
            "an unconstrained numeric has no fixed precision and scale",
            f"cast it in the model, such as {name}::numeric(18, 2)",
        )
    precision, scale = (typmod - NUMERIC_OFFSET) >> 16, (typmod - NUMERIC_OFFSET) & 0xFFFF
    target = pyarrow.decimal128(precision, scale) if precision <= 38 else pyarrow.decimal256(precision, scale)
    text = column.cast(column.type.storage_type) if isinstance(column.type, pyarrow.ExtensionType) else column
    try:
        return pyarrow.compute.cast(text, target, safe=True)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError) as exc:  # NaN, Infinity
        raise type_error(
            ENGINE,
            compute,
            relation,
            name,
            f"PostgreSQL numeric({precision}, {scale})",
            f"Arrow {target}",
            first_line(str(exc)),
            "filter out NaN and infinite values in the model",
        ) from None


# -- connections ---------------------------------------------------------------------------------


def _driver(compute: ComputeConfig, operation: str) -> Any:
    """ADBC's PostgreSQL driver (its DB-API module)."""
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        raise PluginExecutionError(
            ENGINE, operation, "the ADBC PostgreSQL driver is not installed", PIP_DRIVER, compute=compute.name
        ) from None
    return adbc


@contextlib.contextmanager
def _connection(compute: ComputeConfig, operation: str) -> Iterator[Any]:
    """An ADBC connection to the compute's database, as dbt's profile logs in (autocommit off)."""
    adbc = _driver(compute, operation)
    config = compute.config
    password = secret_value(
        ENGINE,
        secret_reference(ENGINE, compute, "password", operation, required=True),
        compute,
        operation,
        what="the password",
    )
    options = {
        "application_name": "floe-bridge",
        "connect_timeout": str(int(config.get("connect_timeout", 10))),
    }
    for key in ("sslmode", "sslrootcert"):
        if config.get(key) is not None:
            options[key] = str(config[key])
    uri = (
        f"postgresql://{quote(str(config['user']), safe='')}:{quote(password, safe='')}@"
        f"{config['host']}:{int(config.get('port', 5432))}/{quote(str(config['dbname']), safe='')}?{urlencode(options)}"
    )
    try:
        connection = adbc.connect(uri)
    except adbc.Error as exc:
        raise _failure(compute, operation, "connecting", exc) from None
    try:
        yield connection
    finally:
        with contextlib.suppress(adbc.Error):
            connection.close()


@contextlib.contextmanager
def _closing(cursor: Any) -> Iterator[Any]:
    try:
        yield cursor
    finally:
        cursor.close()


def _qualified(compute: ComputeConfig, relation: Relation, operation: str) -> str:
    """``"schema"."table"``: PostgreSQL reaches only the database it is connected to."""
    dbname = str(compute.config.get("dbname"))
    if relation.database is not None and relation.database != dbname:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"{relation} is in database {relation.database!r}, and the compute connects to {dbname!r}",
            "PostgreSQL reads one database per connection: build the model in the compute's dbname",
            compute=compute.name,
        )
    return f"{quote_identifier(relation.schema)}.{quote_identifier(relation.identifier)}"


def _failure(compute: ComputeConfig, operation: str, doing: str, exc: BaseException) -> PluginExecutionError:
    """The driver's error, its first line (the driver's text can carry a Python traceback of the
    stream it read), with what to do."""
    text = first_line(str(exc).replace("\n", " ").split(" Detail: Python exception:")[0])
    return PluginExecutionError(
        ENGINE,
        operation,
        f"{doing}: {text}",
        "check the message; the table keeps what it held before the load",
        compute=compute.name,
        cause=type(exc).__name__,
    )
