"""The bridge hooks of the Snowflake engine: its tables read as Arrow, Arrow loaded through a stage.

Snowflake reaches an Iceberg catalog only through account objects an administrator creates (see
:meth:`floe.engines.snowflake.SnowflakeEngine.get_catalog_attachment_sql`), so floe carries a
model between the run's catalog and a Snowflake compute (``floe_read_arrow``,
``floe_load_arrow``), through the Snowflake connector with the compute's own login:

- **read**: ``SELECT *`` fetched as Arrow (the connector's result batches), names Snowflake folded
  to upper case given back in lower case, ``TIMESTAMP_TZ``/``_LTZ`` as timestamps with a zone;
  semi-structured and geospatial columns have no Iceberg type and fail, naming the column;
- **load**: Snowflake's own bulk-load path: the rows written to a Parquet file, ``PUT`` to a
  temporary stage, ``COPY INTO`` a transient staging table (``MATCH_BY_COLUMN_NAME``, Parquet's
  logical types), then ``ALTER TABLE … SWAP WITH`` (atomic: readers see the old rows or the new,
  never part) and the old rows dropped. Each column gets the Snowflake type that keeps every
  value (``NUMBER(p, s)``, ``TIMESTAMP_TZ`` for a timestamp with a zone…) or the load fails before
  anything is written, naming it. The connector's ``write_pandas`` takes the same path, through
  pandas; this writes Arrow to Parquet directly and creates the table with exact types.

On fakesnow (the tests' peer), ``PUT`` copies into a local directory and ``COPY INTO`` reads the
file with DuckDB: the same statements, a local file system in place of cloud storage.

Imported only when floe bridges a table: pyarrow and the connector are imported here.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow

from floe.enginekit import (
    ComputeConfig,
    PluginExecutionError,
    ProfileTarget,
    Relation,
    first_line,
    quote_literal,
    sql_columns,
    staging_name,
    type_error,
)
from floe.engines.snowflake.settings import ENGINE, PIP_INSTALL, check_settings, sql_identifier, stored_name
from floe.engines.snowflake.validate import connect_arguments

CONNECT_SECONDS = 60
"""Login and network timeouts of a bridge's connection (a load of many rows takes longer than a check)."""
NETWORK_SECONDS = 3600
NO_ICEBERG_TYPE = {"VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY", "VECTOR", "MAP", "FILE"}
ZONED = {"TIMESTAMP_TZ", "TIMESTAMP_LTZ"}
CAST_FIX = "cast the column in the model to a type both sides have (NUMBER(p, s), DATE, TIMESTAMP, VARCHAR…)"
_PLAIN_UPPER = re.compile(r"^[A-Z_][A-Z0-9_$]*$")


def read_arrow(compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
    """``SELECT *`` of ``relation`` as Arrow, names and zones as described in the module docstring."""
    operation = "read_arrow"
    with _connection(compute, operation) as connection:
        cursor = connection.cursor()
        cursor.execute(f"SELECT * FROM {_qualified(relation)}")
        table = cursor.fetch_arrow_all(force_return_table=True)
        described = list(cursor.description)
    columns, fields = [], []
    for index, field in enumerate(table.schema):
        column, meta = table.column(index), described[index]
        name = field.name.lower() if _PLAIN_UPPER.match(field.name) else field.name
        kind = _type_name(meta.type_code)
        if kind in NO_ICEBERG_TYPE:
            raise type_error(
                ENGINE,
                compute,
                relation,
                name,
                f"Snowflake {kind}",
                "an Iceberg type",
                "Iceberg has no such type",
                CAST_FIX,
            )
        declared = _declared(kind, meta, field.type)
        if declared is not None and declared != field.type:  # an empty result is typed loosely
            column = column.cast(declared)
        columns.append(column)
        fields.append(pyarrow.field(name, column.type))
    return pyarrow.Table.from_arrays(columns, schema=pyarrow.schema(fields))


def load_arrow(compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
    """``data`` through a Parquet file, a temporary stage and ``COPY INTO`` a staging table swapped in."""
    operation = "load_arrow"
    columns = sql_columns(ENGINE, compute, relation, data.schema, _sql_type, CAST_FIX)  # before any write
    target = _qualified(relation)
    staged = _qualified(Relation(relation.database, relation.schema, staging_name(relation.identifier, 255)))
    schema = _qualified(Relation(relation.database, relation.schema, ""))
    stage = _qualified(Relation(relation.database, relation.schema, f"floe_load_{secrets.token_hex(6)}"))
    definition = ", ".join(f"{sql_identifier(name)} {kind}" for name, kind in columns)
    with tempfile.TemporaryDirectory(prefix="floe-snowflake-load-") as folder:
        parquet = Path(folder) / f"{staging_name(relation.identifier, 100)}.parquet"
        _write_parquet(compute, relation, data, parquet)
        with _connection(compute, operation) as connection:
            cursor = connection.cursor()
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            cursor.execute(f"CREATE OR REPLACE TRANSIENT TABLE {staged} ({definition})")
            try:
                cursor.execute(f"CREATE TEMPORARY STAGE {stage}")
                cursor.execute(f"PUT {quote_literal(parquet.as_uri())} @{stage} AUTO_COMPRESS=FALSE")
                copied = cursor.execute(
                    f"COPY INTO {staged} FROM @{stage} FILE_FORMAT=(TYPE=PARQUET "
                    "USE_LOGICAL_TYPE=TRUE) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PURGE=TRUE"
                )
                rows = sum(int(result[3]) for result in copied.fetchall())  # per file: rows_loaded
                if _exists(cursor, relation):
                    cursor.execute(f"ALTER TABLE {target} SWAP WITH {staged}")
                    cursor.execute(f"DROP TABLE {staged}")
                else:
                    cursor.execute(f"ALTER TABLE {staged} RENAME TO {target}")
            except BaseException:
                with contextlib.suppress(Exception):  # the error that matters is the one raised
                    cursor.execute(f"DROP TABLE IF EXISTS {staged}")
                raise
    return rows


def _sql_type(arrow_type: pyarrow.DataType) -> str | None:
    """The Snowflake type that keeps every value of ``arrow_type``; ``None`` when there is none."""
    t = arrow_type
    if pyarrow.types.is_boolean(t):
        return "BOOLEAN"
    if pyarrow.types.is_integer(t):
        return "NUMBER(38, 0)"  # Snowflake's integers
    if pyarrow.types.is_floating(t):
        return "FLOAT"
    if pyarrow.types.is_decimal(t):
        return f"NUMBER({t.precision}, {t.scale})" if t.precision <= 38 else None
    if pyarrow.types.is_string(t) or pyarrow.types.is_large_string(t):
        return "VARCHAR"
    if (
        pyarrow.types.is_binary(t)
        or pyarrow.types.is_large_binary(t)
        or pyarrow.types.is_fixed_size_binary(t)
    ):
        return "BINARY"
    if pyarrow.types.is_date(t):
        return "DATE"
    digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}
    if pyarrow.types.is_time(t):
        return f"TIME({digits[t.unit]})"
    if pyarrow.types.is_timestamp(t):
        return f"TIMESTAMP_{'TZ' if t.tz is not None else 'NTZ'}({digits[t.unit]})"
    return None


ROW_GROUP_ROWS = 256_000
"""Rows per Parquet row group: the stream's small batches gathered (a row group per batch is slow
to write and to load). The file is read once, by ``COPY INTO``: no dictionaries, no statistics
(measured here: a third of the time of pyarrow's defaults to write, and a smaller file)."""


def _write_parquet(
    compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader, path: Path
) -> None:
    """``data`` as one Parquet file, in row groups of :data:`ROW_GROUP_ROWS` (a stream that fails
    leaves nothing loaded)."""
    import pyarrow.parquet

    try:
        with pyarrow.parquet.ParquetWriter(
            path, data.schema, use_dictionary=False, write_statistics=False
        ) as writer:
            pending: list[pyarrow.RecordBatch] = []
            for batch in data:
                pending.append(batch)
                if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                    writer.write_table(pyarrow.Table.from_batches(pending, data.schema), ROW_GROUP_ROWS)
                    pending = []
            if pending:
                writer.write_table(pyarrow.Table.from_batches(pending, data.schema), ROW_GROUP_ROWS)
    except (OSError, pyarrow.ArrowException) as exc:
        raise PluginExecutionError(
            ENGINE,
            "load_arrow",
            f"writing the rows for {relation} to Parquet failed: {first_line(str(exc))}",
            "nothing was loaded; check the message",
            compute=compute.name,
            cause=type(exc).__name__,
        ) from None


def _exists(cursor: Any, relation: Relation) -> bool:
    database = f"{sql_identifier(relation.database)}." if relation.database else ""
    cursor.execute(
        f"SELECT COUNT(*) FROM {database}INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = "
        f"{quote_literal(stored_name(relation.schema))} AND TABLE_NAME = "
        f"{quote_literal(stored_name(relation.identifier))}"
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def _qualified(relation: Relation) -> str:
    """The relation as dbt-snowflake writes a ``ref()`` (its parts unquoted: plain names in upper case)."""
    parts = [relation.database, relation.schema, relation.identifier]
    return ".".join(sql_identifier(p) for p in parts if p)


def _declared(kind: str, meta: Any, arrow_type: pyarrow.DataType) -> pyarrow.DataType | None:
    """The Arrow type of a result column as its Snowflake type declares it, where the connector's
    Arrow type can say less (an empty result has ``int64`` for ``NUMBER(10, 2)``, no zone for
    ``TIMESTAMP_TZ``); ``None`` where the connector's type stands."""
    if kind == "FIXED" and meta.scale:
        return pyarrow.decimal128(meta.precision or 38, meta.scale)
    if kind in ZONED and pyarrow.types.is_timestamp(arrow_type) and arrow_type.tz is None:
        return pyarrow.timestamp(arrow_type.unit, tz="UTC")
    return None


def _type_name(code: int) -> str:
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    return str(FIELD_ID_TO_NAME.get(code, "?"))


@contextlib.contextmanager
def _connection(compute: ComputeConfig, operation: str) -> Iterator[Any]:
    """A connector session as dbt's profile logs in (a relative key path is read from the directory
    floe runs in), with the compute's warehouse and database."""
    method = check_settings(compute, operation)
    if method == "externalbrowser":
        raise PluginExecutionError(
            ENGINE,
            operation,
            "an unattended bridge cannot log in through a browser",
            "give the compute a key pair or an OAuth token for floe run",
            compute=compute.name,
        )
    here = Path.cwd()
    arguments = connect_arguments(
        compute,
        ProfileTarget("run", "bridge", here, here / ".floe"),
        method,
        CONNECT_SECONDS,
        {"stage": "", "details": {}},
    )
    arguments.update(
        network_timeout=NETWORK_SECONDS,
        socket_timeout=NETWORK_SECONDS,
        warehouse=str(compute.config["warehouse"]),
        database=str(compute.config["database"]),
    )
    try:
        import snowflake.connector
    except ImportError:
        raise PluginExecutionError(
            ENGINE,
            operation,
            "snowflake-connector-python is not installed",
            PIP_INSTALL,
            compute=compute.name,
        ) from None
    connection = snowflake.connector.connect(**arguments)
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            connection.close()
