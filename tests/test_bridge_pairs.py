"""Types survive a ref between any two engines that run here, or the run says why: a property.

For each ordered pair of engines (upstream, downstream) whose hand-off is bridged (at least one of
them builds in its own warehouse: PostgreSQL, the example engine on a real server, and Snowflake on
fakesnow; DuckDB and Spark attach the catalog in place), hypothesis draws a table — integers,
``decimal(p, s)``, dates, timestamps with and without zone, strings, booleans, NULLs anywhere — and:

1. the upstream engine builds it, with its own SQL and client (DuckDB and Spark write the Iceberg
   table themselves; PostgreSQL and Snowflake create it in their warehouse and floe publishes it
   into the catalog, as ``floe run`` does after the transform: :func:`floe.execution.bridges.publish`);
2. the downstream engine reads it as ``ref()`` would (DuckDB and Spark from the catalog, in place;
   PostgreSQL and Snowflake after floe loaded it, as ``floe run`` does before the transform:
   :func:`floe.execution.bridges.load`), with its own client;
3. every value must be the one drawn, and every column's type there must be of the drawn type's
   family, with the same precision and scale, with or without a zone as drawn.

Snowflake has one exact numeric type: ``NUMBER(p, 0)`` is its integer, so a scale-0 decimal that
crosses Snowflake arrives as an integer of the same value (and an integer as ``NUMBER(38, 0)``).
What cannot cross fails naming the column and both types (the last tests).
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floe.execution import bridges
from floe.model import CatalogConfig, ComputeConfig, Relation, SecretReference
from floe.plugins import EngineRegistry
from floe.sqlquote import quote_backslash_literal

NS = "pairs_dev"
IN_PLACE = ("duckdb", "spark")
BRIDGED = ("postgres", "snowflake")
PAIRS = [
    (u, d)
    for u in IN_PLACE + BRIDGED
    for d in IN_PLACE + BRIDGED
    if u != d and (u in BRIDGED or d in BRIDGED)
]
EXAMPLES = {"spark": 4, "snowflake": 6}
"""Fewer examples for pairs with a slow side (Spark's statements, fakesnow's HTTP round trips)."""
UTC = datetime.UTC
SNOWFLAKE_DB = "pairs"
_names = itertools.count(1)


@attrs.frozen
class Column:
    name: str
    family: str
    precision: int = 0
    scale: int = 0

    def sql(self, engine: str) -> str:
        """The column's type in ``engine``'s SQL."""
        if self.family == "decimal":
            return {"postgres": "numeric", "snowflake": "NUMBER"}.get(
                engine, "DECIMAL"
            ) + f"({self.precision}, {self.scale})"
        return TYPES[engine][self.family]


TYPES = {
    "duckdb": {
        "int32": "INTEGER",
        "int64": "BIGINT",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "timestamptz": "TIMESTAMPTZ",
        "string": "VARCHAR",
        "boolean": "BOOLEAN",
    },
    "spark": {
        "int32": "INT",
        "int64": "BIGINT",
        "date": "DATE",
        "timestamp": "TIMESTAMP_NTZ",
        "timestamptz": "TIMESTAMP",
        "string": "STRING",
        "boolean": "BOOLEAN",
    },
    "postgres": {
        "int32": "integer",
        "int64": "bigint",
        "date": "date",
        "timestamp": "timestamp",
        "timestamptz": "timestamptz",
        "string": "text",
        "boolean": "boolean",
    },
    "snowflake": {
        "int32": "NUMBER(38, 0)",
        "int64": "NUMBER(38, 0)",
        "date": "DATE",
        "timestamp": "TIMESTAMP_NTZ(6)",
        "timestamptz": "TIMESTAMP_TZ(6)",
        "string": "VARCHAR",
        "boolean": "BOOLEAN",
    },
}
FAMILIES = ("int32", "int64", "decimal", "date", "timestamp", "timestamptz", "string", "boolean")


# -- what hypothesis draws ------------------------------------------------------------------------------


@st.composite
def columns(draw: st.DrawFn) -> list[Column]:
    found = []
    for index, family in enumerate(draw(st.lists(st.sampled_from(FAMILIES), min_size=1, max_size=6))):
        if family == "decimal":
            precision = draw(st.integers(1, 38))
            found.append(Column(f"c{index}", family, precision, draw(st.integers(0, min(precision, 12)))))
        else:
            found.append(Column(f"c{index}", family))
    return found


def values(column: Column) -> st.SearchStrategy[Any]:
    if column.family == "int32":
        strategy: st.SearchStrategy[Any] = st.integers(-(2**31), 2**31 - 1)
    elif column.family == "int64":
        strategy = st.integers(-(2**63) + 1, 2**63 - 1)
    elif column.family == "decimal":
        bound = 10**column.precision - 1
        strategy = st.integers(-bound, bound).map(
            lambda n: decimal.Decimal(f"{n}e-{column.scale}")
        )  # exact: no context rounding
    elif column.family == "date":
        strategy = st.dates(datetime.date(1583, 1, 1), datetime.date(9999, 12, 31))
    elif column.family == "timestamp":
        strategy = st.datetimes(datetime.datetime(1900, 1, 1), datetime.datetime(2200, 1, 1))
    elif column.family == "timestamptz":
        strategy = st.datetimes(
            datetime.datetime(1900, 1, 1), datetime.datetime(2200, 1, 1), timezones=st.just(UTC)
        )
    elif column.family == "string":
        strategy = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
    else:
        strategy = st.booleans()
    return st.none() | strategy


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[Column], list[tuple[Any, ...]]]:
    """Columns (an ``id`` first, 1…n, to order by) and up to 5 rows."""
    drawn = draw(columns())
    rows = draw(st.lists(st.tuples(*(values(c) for c in drawn)), max_size=5))
    return [Column("id", "int64"), *drawn], [(i + 1, *row) for i, row in enumerate(rows)]


# -- the engines: build a table upstream, read what a ref reads downstream ------------------------------


@attrs.frozen
class Engines:
    catalog: CatalogConfig
    duckdb: Any
    spark: Any
    postgres: Any
    snowflake: Any
    computes: dict[str, ComputeConfig]
    registry: EngineRegistry

    def build(self, engine: str, name: str, cols: list[Column], rows: list[tuple[Any, ...]]) -> None:
        """``engine`` builds the table; afterwards it is in the catalog as ``NS.name``."""
        definition = ", ".join(f"{c.name} {c.sql(engine)}" for c in cols)
        if engine == "duckdb":
            import pyarrow

            self.duckdb.execute(f"CREATE TABLE floe.{NS}.{name} ({definition})")
            data = pyarrow.Table.from_pylist(
                [dict(zip([c.name for c in cols], r, strict=True)) for r in rows],
                schema=pyarrow.schema([(c.name, _arrow(c)) for c in cols]),
            )
            self.duckdb.register("drawn", data)
            self.duckdb.execute(f"INSERT INTO floe.{NS}.{name} SELECT * FROM drawn")
            self.duckdb.unregister("drawn")
        elif engine == "spark":
            self.spark.sql(f"CREATE TABLE floe.{NS}.{name} ({definition}) USING iceberg")
            if rows:
                tuples = ", ".join(
                    "(" + ", ".join(_spark_literal(c, v) for c, v in zip(cols, r, strict=True)) + ")"
                    for r in rows
                )
                self.spark.sql(f"INSERT INTO floe.{NS}.{name} VALUES {tuples}")
        elif engine == "postgres":
            with self.postgres.connect() as connection, connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {NS}")
                cursor.execute(f"CREATE TABLE {NS}.{name} ({definition})")
                for row in rows:
                    cursor.execute(f"INSERT INTO {NS}.{name} VALUES ({', '.join(['%s'] * len(row))})", row)
            self.publish(engine, Relation(self.postgres.dbname, NS, name))
        else:
            connection = self._snowflake()
            cursor = connection.cursor()
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SNOWFLAKE_DB}.{NS}")
            cursor.execute(f"CREATE TABLE {SNOWFLAKE_DB}.{NS}.{name} ({definition})")
            if rows:
                cursor.execute(
                    f"INSERT INTO {SNOWFLAKE_DB}.{NS}.{name} VALUES "
                    + ", ".join("(" + ", ".join(["%s"] * len(r)) + ")" for r in rows),
                    [v for r in rows for v in r],
                )
            connection.close()
            self.publish(engine, Relation(SNOWFLAKE_DB, NS, name))

    def publish(self, engine: str, relation: Relation) -> None:
        compute = self.computes[engine]
        bridges.publish(
            self.registry.engines[engine],
            compute,
            relation,
            self.catalog,
            (NS, relation.identifier),
            f"model {relation.identifier!r}",
        )

    def read(self, engine: str, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """What a model on ``engine`` reads of ``ref(name)``: each column's type there, and the rows."""
        if engine == "duckdb":
            types = [
                str(t)
                for _, t in self.duckdb.execute(
                    f"SELECT column_name, column_type FROM (DESCRIBE floe.{NS}.{name})"
                ).fetchall()
            ]
            return types, self.duckdb.execute(f"SELECT * FROM floe.{NS}.{name} ORDER BY id").fetchall()
        if engine == "spark":
            _, types, rows = self.spark.sql(f"SELECT * FROM floe.{NS}.{name} ORDER BY id")
            zoned = [t == "timestamp" for t in types]
            return types, [
                tuple(
                    v.replace(tzinfo=UTC) if z and v is not None else v for v, z in zip(r, zoned, strict=True)
                )
                for r in rows
            ]
        if engine == "postgres":
            relation = Relation(self.postgres.dbname, NS, name)
            self.load(engine, relation)
            with self.postgres.connect() as connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (NS, name),
                )
                types = [f"{t}({p}, {s})" if t == "numeric" else str(t) for t, p, s in cursor.fetchall()]
                cursor.execute(f"SELECT * FROM {NS}.{name} ORDER BY id")
                return types, list(cursor.fetchall())
        relation = Relation(SNOWFLAKE_DB, NS, name)
        self.load(engine, relation)
        connection = self._snowflake()
        cursor = connection.cursor()
        types = [
            str(row[1]) for row in cursor.execute(f"DESCRIBE TABLE {SNOWFLAKE_DB}.{NS}.{name}").fetchall()
        ]
        rows = [
            tuple(r)
            for r in cursor.execute(f"SELECT * FROM {SNOWFLAKE_DB}.{NS}.{name} ORDER BY id").fetchall()
        ]
        connection.close()
        return types, rows

    def load(self, engine: str, relation: Relation) -> None:
        bridges.load(
            self.registry.engines[engine],
            self.computes[engine],
            relation,
            self.catalog,
            (NS, relation.identifier),
        )

    def _snowflake(self) -> Any:
        import snowflake.connector

        return snowflake.connector.connect(
            account="fakesnow",
            user="tests",
            password="any",
            host=self.snowflake.host,
            port=self.snowflake.port,
            protocol="http",
            database=SNOWFLAKE_DB,
            platform_detection_timeout_seconds=0.0,
        )


def _arrow(column: Column) -> Any:
    import pyarrow

    return {
        "int32": pyarrow.int32(),
        "int64": pyarrow.int64(),
        "date": pyarrow.date32(),
        "timestamp": pyarrow.timestamp("us"),
        "timestamptz": pyarrow.timestamp("us", tz="UTC"),
        "string": pyarrow.string(),
        "boolean": pyarrow.bool_(),
        "decimal": pyarrow.decimal128(column.precision or 1, column.scale),
    }[column.family]


def _spark_literal(column: Column, value: Any) -> str:
    if value is None:
        return f"CAST(NULL AS {column.sql('spark')})"
    if column.family == "decimal":
        return f"CAST('{value}' AS {column.sql('spark')})"
    if column.family == "date":
        return f"DATE'{value.isoformat()}'"
    if column.family == "timestamp":
        return f"TIMESTAMP_NTZ'{value.isoformat(sep=' ')}'"
    if column.family == "timestamptz":
        return f"TIMESTAMP'{value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=' ')}Z'"
    if column.family == "string":
        return quote_backslash_literal(value)
    if column.family == "boolean":
        return "TRUE" if value else "FALSE"
    return f"{value}L" if column.family == "int64" else str(value)


# -- the comparison --------------------------------------------------------------------------------------


def family_of(engine_type: str) -> tuple[str, int, int]:
    """``(family, precision, scale)`` of a type name as an engine describes it."""
    text = engine_type.lower()
    number = re.fullmatch(r"(?:decimal|numeric|number)\((\d+),\s*(\d+)\)", text)
    if number:
        precision, scale = int(number[1]), int(number[2])
        return (
            ("integer", 0, 0) if text.startswith("number") and scale == 0 else ("decimal", precision, scale)
        )
    if text in ("integer", "int", "bigint", "smallint", "tinyint", "hugeint"):
        return ("integer", 0, 0)
    if text == "date":
        return ("date", 0, 0)
    if text in ("timestamp with time zone", "timestamptz") or text.startswith(
        ("timestamp_tz", "timestamp_ltz")
    ):
        return ("timestamptz", 0, 0)
    if text.startswith(
        "timestamp"
    ):  # TIMESTAMP, timestamp without time zone, TIMESTAMP_NTZ(6), timestamp_ntz
        return ("timestamp", 0, 0)
    if text in ("varchar", "text", "string") or text.startswith("varchar"):
        return ("string", 0, 0)
    if text == "boolean":
        return ("boolean", 0, 0)
    return (text, 0, 0)


def expected_family(column: Column, via_snowflake: bool) -> tuple[str, int, int]:
    if column.family in ("int32", "int64"):
        return ("integer", 0, 0)
    if column.family == "decimal":
        if via_snowflake and column.scale == 0:
            return ("integer", 0, 0)
        return ("decimal", column.precision, column.scale)
    return (column.family, 0, 0)


def differences(
    cols: list[Column],
    rows: list[tuple[Any, ...]],
    types: list[str],
    got: list[tuple[Any, ...]],
    engine: str,
    via_snowflake: bool,
) -> list[str]:
    """How what ``engine`` read differs from what was drawn."""
    problems = []
    if len(types) != len(cols):
        return [f"{len(types)} columns, expected {len(cols)}: {types}"]
    for column, engine_type in zip(cols, types, strict=True):
        family = family_of(engine_type)
        if engine == "spark" and engine_type == "timestamp":
            family = ("timestamptz", 0, 0)  # Spark's TIMESTAMP is an instant; its TIMESTAMP_NTZ is local
        if family != expected_family(column, via_snowflake):
            problems.append(f"column {column.name} ({column.sql(engine)}): {engine} says {engine_type}")
    if len(got) != len(rows):
        return [*problems, f"{len(got)} rows, expected {len(rows)}"]
    for drawn, read in zip(rows, got, strict=True):
        for column, want, have in zip(cols, drawn, read, strict=True):
            if not same(column, want, have):
                problems.append(f"column {column.name} ({column.family}): {want!r} arrived as {have!r}")
    return problems


def same(column: Column, want: Any, have: Any) -> bool:
    if want is None or have is None:
        return want is None and have is None
    if column.family == "decimal":
        if isinstance(have, decimal.Decimal):
            return bool(want == have and have.as_tuple().exponent == -column.scale)
        return column.scale == 0 and isinstance(have, int) and want == have  # Snowflake's NUMBER(p, 0)
    if column.family in ("timestamp", "timestamptz"):
        return (
            isinstance(have, datetime.datetime)
            and want == have
            and (have.tzinfo is None) == (want.tzinfo is None)
        )
    if column.family == "date":
        return type(have) is datetime.date and want == have
    return type(have) is type(want) and want == have


# -- fixtures: every engine's peer, once for the module -----------------------------------------------------


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    import duckdb
    from floe_engine_postgres.testing import running_postgres

    from floe.catalog.rest_server import EmbeddedCatalog
    from floe.engines.duckdb import extension_files
    from floe.engines.duckdb import plugin as duckdb_plugin
    from tests.support.snowflake_peer import FakesnowServer
    from tests.support.spark_sql import SparkSQL

    root = tmp_path_factory.mktemp("pairs")
    password = "pairs-" + os.urandom(6).hex()
    with (
        EmbeddedCatalog(root / ".floe") as embedded,
        running_postgres() as pg,
        FakesnowServer(root).start() as snow,
        SparkSQL(embedded.catalog_config(), root / "spark.log") as spark,
    ):
        catalog = embedded.catalog_config()
        embedded.create_namespace(NS)
        snow.create_database(SNOWFLAKE_DB)
        conn = duckdb.connect(
            config={
                "extension_directory": str(root / "ext"),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
        )
        for file in extension_files(["iceberg", "httpfs"]):
            conn.load_extension(str(file))
        for statement in (
            duckdb_plugin.get_catalog_attachment_sql(
                ComputeConfig("pairs", "duckdb", {"extensions": ["iceberg", "httpfs"]}), catalog
            )
            or []
        ):
            conn.execute(statement)
        computes = {
            "postgres": ComputeConfig(
                "pg",
                "postgres",
                {
                    "host": pg.host,
                    "port": pg.port,
                    "user": pg.user,
                    "password": SecretReference(pg.password_env),
                    "dbname": pg.dbname,
                    "sslmode": "disable",
                },
            ),
            "snowflake": ComputeConfig(
                "sf",
                "snowflake",
                {
                    "account": "fakesnow",
                    "user": "floe",
                    "password": SecretReference("PAIRS_SF_PASSWORD"),
                    "database": SNOWFLAKE_DB,
                    "warehouse": "wh",
                    "host": snow.host,
                    "port": snow.port,
                    "protocol": "http",
                },
            ),
        }
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {**pg.environ, "PAIRS_SF_PASSWORD": password}.items():
                patch.setenv(key, value)
            yield Engines(catalog, conn, spark, pg, snow, computes, EngineRegistry.discover())
        conn.close()


@pytest.mark.parametrize(("upstream", "downstream"), PAIRS, ids=[f"{u}-to-{d}" for u, d in PAIRS])
def test_every_value_and_type_survives_a_bridge(engines: Engines, upstream: str, downstream: str) -> None:
    examples = min(EXAMPLES.get(upstream, 12), EXAMPLES.get(downstream, 12))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(table=tables())
    def crosses(table: tuple[list[Column], list[tuple[Any, ...]]]) -> None:
        cols, rows = table
        name = f"t{next(_names)}"
        engines.build(upstream, name, cols, rows)
        types, got = engines.read(downstream, name)
        via_snowflake = "snowflake" in (upstream, downstream)
        problems = differences(cols, rows, types, got, downstream, via_snowflake)
        assert not problems, f"{upstream} → {downstream}:\n" + "\n".join(problems)

    crosses()


# -- what cannot cross fails, naming the column and both types ------------------------------------------------


def _failure(action: Callable[[], Any]) -> str:
    from floe.errors import FloeError

    with pytest.raises(FloeError) as caught:
        action()
    return caught.value.render()


def test_a_postgres_column_without_an_iceberg_type_fails_naming_it(engines: Engines) -> None:
    """Publishing: an unconstrained numeric (no scale to keep), 40 digits (Iceberg keeps 38), an
    interval and a time with zone (no Iceberg type) each fail, naming the column and both types;
    nothing is committed."""
    cases = {
        "unbounded": (
            "1.5::numeric / 7 AS ratio",
            [
                "column 'ratio'",
                "PostgreSQL numeric (no precision or scale)",
                "Iceberg decimal(p, s)",
                "::numeric(18, 2)",
            ],
        ),
        "wide": (
            "1.5::numeric(40, 2) AS big",
            [
                "column 'big': Arrow decimal256(40, 2) cannot become Iceberg "
                "decimal(38, 2): Iceberg decimals have at most 38 digits"
            ],
        ),
        "spans": ("interval '1 day' AS span", ["column 'span'", "PostgreSQL interval"]),
        "clock": ("'10:00+02'::timetz AS opens", ["column 'opens'", "timetz"]),
    }
    with engines.postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {NS}")
        for name, (column, _) in cases.items():
            cursor.execute(f"CREATE TABLE {NS}.{name} AS SELECT 1::bigint AS id, {column}")
    for name, (_, fragments) in cases.items():
        text = _failure(
            lambda name=name: engines.publish("postgres", Relation(engines.postgres.dbname, NS, name))
        )
        assert all(f in text for f in fragments), text
        assert "Traceback" not in text
    assert not set(cases) & {t[1] for t in _catalog_tables(engines)}


def test_a_snowflake_column_without_an_iceberg_type_fails_naming_it(engines: Engines) -> None:
    connection = engines._snowflake()
    cursor = connection.cursor()
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SNOWFLAKE_DB}.{NS}")
    cursor.execute(
        f"CREATE TABLE {SNOWFLAKE_DB}.{NS}.semi AS SELECT 1 AS id, PARSE_JSON('{{\"a\": 1}}') AS doc"
    )
    connection.close()
    text = _failure(lambda: engines.publish("snowflake", Relation(SNOWFLAKE_DB, NS, "semi")))
    assert "column 'doc'" in text and "Snowflake VARIANT cannot become an Iceberg type" in text


def test_a_catalog_column_the_downstream_engine_lacks_fails_the_load_naming_it(engines: Engines) -> None:
    """DuckDB writes a list column into the catalog; neither PostgreSQL's bridge nor Snowflake's has
    a type that keeps it: each load fails naming the column and both types, and creates nothing."""
    engines.duckdb.execute(f"CREATE TABLE floe.{NS}.tagged AS SELECT 1::BIGINT AS id, ['a', 'b'] AS tags")
    for engine, database in (("postgres", engines.postgres.dbname), ("snowflake", SNOWFLAKE_DB)):
        text = _failure(lambda e=engine, d=database: engines.load(e, Relation(d, NS, "tagged")))
        assert (
            "column 'tags'" in text
            and "Arrow large_list<element: large_string>" in text
            and f"a {engine} type" in text
        ), text
    with engines.postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'tagged%'")
        assert cursor.fetchone() == (0,)


def _catalog_tables(engines: Engines) -> list[tuple[str, ...]]:
    from floe.execution.catalog_client import client

    return [tuple(t) for t in client(engines.catalog).list_tables(NS)]


def test_the_pairs_cover_every_bridged_direction() -> None:
    assert len(PAIRS) == 10 and ("postgres", "snowflake") in PAIRS and ("duckdb", "spark") not in PAIRS
