"""The pure parts of a bridged hand-off: which crossing is which kind, which models a transform carries,
what an Arrow column becomes in the catalog, and what floe's wrapper accepts from a bridge hook.

The hand-offs themselves run against real engines in ``tests/test_bridge_pairs.py`` (every pair of
engines, a property), ``tests/test_run_bridges.py`` (``floe run`` with Snowflake on fakesnow),
the Postgres example's ``test_floe_run.py`` and ``tests/test_mesh.py``.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
from typing import Any

import pyarrow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floe.errors import BrokenPluginError, PluginExecutionError
from floe.execution.bridges import LOAD, PUBLISH, Step, steps
from floe.execution.iceberg_types import TypeLoss, for_iceberg, target_type
from floe.execution.plan import Crossing, CrossingKind, bridge_steps, crossing
from floe.execution.report import BridgeReport, human_bytes
from floe.model import CatalogAccess, ComputeConfig, Relation
from tests.support.engines import registry_with

ACCESSES = [
    CatalogAccess(in_place, "how", reads, loads)
    for in_place, reads, loads in itertools.product((True, False), repeat=3)
    if not (in_place and (reads or loads))
]


@pytest.mark.parametrize(("up", "down"), list(itertools.product(ACCESSES, ACCESSES)))
def test_a_crossing_is_in_place_bridged_or_refused_as_the_two_accesses_allow(
    up: CatalogAccess, down: CatalogAccess
) -> None:
    kind, how = crossing("lake", up, down)
    reaches, readable = up.in_place or up.reads, down.in_place or down.loads
    if up.in_place and down.in_place:
        assert kind == CrossingKind.IN_PLACE and "in place through the catalog 'lake'" in how
    elif reaches and readable:
        assert kind == CrossingKind.BRIDGED and how.startswith("bridged through the catalog 'lake'")
        publish, load = bridge_steps(up, down)
        assert (publish, load) == (not up.in_place, not down.in_place)
        assert ("published into the catalog" in how) == publish and (
            "loaded into the downstream warehouse" in how
        ) == load
    else:
        assert kind is None
        assert ("floe cannot read its tables" in how) == (not reaches)


def _crossing(up: str, down: str, refs: list[tuple[str, str]], publish: bool, load: bool) -> Crossing:
    return Crossing(
        up, down, f"{up}_c", f"{down}_c", tuple(refs), CrossingKind.BRIDGED, "bridged", publish, load
    )


def test_a_model_is_published_once_and_loaded_once_into_each_reader() -> None:
    crossings = [
        _crossing(
            "crm",
            "marts",
            [("model.p.a", "model.p.customers"), ("model.p.b", "model.p.customers")],
            True,
            False,
        ),
        _crossing(
            "crm",
            "serving",
            [("model.p.c", "model.p.customers"), ("model.p.c", "model.p.orders")],
            True,
            True,
        ),
        _crossing("lake", "serving", [("model.p.c", "model.p.dates")], False, True),
    ]
    before, after = steps(crossings)
    assert after == {
        "crm": [
            Step(PUBLISH, "crm", "crm_c", "model.p.customers", "marts_c"),
            Step(PUBLISH, "crm", "crm_c", "model.p.orders", "serving_c"),
        ]
    }
    assert before == {
        "serving": [
            Step(LOAD, "serving", "serving_c", "model.p.customers", "crm_c"),
            Step(LOAD, "serving", "serving_c", "model.p.orders", "crm_c"),
            Step(LOAD, "serving", "serving_c", "model.p.dates", "lake_c"),
        ]
    }


# -- Arrow to Iceberg ---------------------------------------------------------------------------------


KEPT = {
    "int8": (pyarrow.int8(), st.integers(-128, 127)),
    "uint32": (pyarrow.uint32(), st.integers(0, 2**32 - 1)),
    "int64": (pyarrow.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float32": (pyarrow.float32(), st.floats(width=32, allow_nan=False)),
    "decimal": (
        pyarrow.decimal128(20, 4),
        st.integers(-(10**20) + 1, 10**20 - 1).map(lambda n: decimal.Decimal(f"{n}e-4")),
    ),
    "decimal256": (
        pyarrow.decimal256(30, 2),
        st.integers(-(10**30) + 1, 10**30 - 1).map(lambda n: decimal.Decimal(f"{n}e-2")),
    ),
    "date64": (pyarrow.date64(), st.dates()),
    "ms": (
        pyarrow.timestamp("ms"),
        st.datetimes().map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
    ),
    "ns_zoned": (
        pyarrow.timestamp("ns", tz="Europe/Paris"),
        st.datetimes(
            datetime.datetime(1700, 1, 1), datetime.datetime(2200, 1, 1), timezones=st.just(datetime.UTC)
        ),
    ),
    "large_string": (pyarrow.large_string(), st.text()),
    "bool": (pyarrow.bool_(), st.booleans()),
    "time32": (
        pyarrow.time32("ms"),
        st.times().map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
    ),
    "list": (pyarrow.large_list(pyarrow.int16()), st.lists(st.integers(-(2**15), 2**15 - 1), max_size=3)),
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), names=st.lists(st.sampled_from(sorted(KEPT)), min_size=1, max_size=5, unique=True))
def test_a_column_with_an_iceberg_type_keeps_every_value(data: st.DataObject, names: list[str]) -> None:
    rows = data.draw(st.integers(0, 6))
    columns = {
        name: data.draw(st.lists(st.none() | KEPT[name][1], min_size=rows, max_size=rows)) for name in names
    }
    table = pyarrow.table({n: pyarrow.array(v, KEPT[n][0]) for n, v in columns.items()})
    converted = for_iceberg(table, "a test table")
    from pyiceberg.catalog import Catalog  # what a publish's create_table does with the schema: no error

    Catalog._convert_schema_if_needed(converted.schema)
    for name in names:
        assert converted.schema.field(name).type == target_type(KEPT[name][0])
        before, after = table.column(name).to_pylist(), converted.column(name).to_pylist()
        assert [_instant(v) for v in after] == [_instant(v) for v in before], name


def _instant(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC)
    return value


@pytest.mark.parametrize(
    ("array", "fragments"),
    [
        (
            pyarrow.array([2**63], pyarrow.uint64()),
            ["column 'c'", "Arrow uint64 cannot become Iceberg long", "does not fit in 64 signed bits"],
        ),
        (
            pyarrow.array([1_000_000_001], pyarrow.timestamp("ns")),
            ["Arrow timestamp[ns] cannot become Iceberg timestamp", "a fraction of a microsecond"],
        ),
        (
            pyarrow.array([decimal.Decimal("1.5")], pyarrow.decimal256(40, 1)),
            ["Arrow decimal256(40, 1) cannot become Iceberg decimal(38, 1)", "at most 38 digits"],
        ),
        (pyarrow.array([None, None]), ["Arrow null", "every value is NULL"]),
        (
            pyarrow.array([pyarrow.MonthDayNano([1, 2, 3])], pyarrow.month_day_nano_interval()),
            ["month_day_nano_interval", "Iceberg has no such type"],
        ),
        (pyarrow.array([1], pyarrow.duration("s")), ["Arrow duration[s]", "Iceberg has no such type"]),
    ],
)
def test_a_column_without_an_exact_iceberg_type_fails_naming_it_and_both_types(
    array: Any, fragments: list[str]
) -> None:
    table = pyarrow.table({"id": [1] * len(array), "c": array})
    with pytest.raises(TypeLoss) as caught:
        for_iceberg(table, "model 'm' of compute 'pg'")
    text = caught.value.render()
    assert all(f in text for f in fragments), text
    assert caught.value.column == "c" and "fix:" in text and "model 'm' of compute 'pg'" in text


def test_whole_microseconds_in_nanoseconds_and_dictionaries_cross_exactly() -> None:
    table = pyarrow.table(
        {
            "at": pyarrow.array([1_000_000_000, None], pyarrow.timestamp("ns", tz="America/New_York")),
            "kind": pyarrow.array(["a", "b"]).dictionary_encode(),
        }
    )
    converted = for_iceberg(table, "t")
    assert converted.schema.field("at").type == pyarrow.timestamp("us", tz="UTC")
    assert converted.column("at").to_pylist()[0] == datetime.datetime(
        1970, 1, 1, 0, 0, 1, tzinfo=datetime.UTC
    )
    assert converted.schema.field("kind").type == pyarrow.string() and converted.column(
        "kind"
    ).to_pylist() == ["a", "b"]


# -- the report of a bridge -----------------------------------------------------------------------------


def test_a_bridge_reports_rows_bytes_and_seconds() -> None:
    done = BridgeReport(
        LOAD,
        "serving",
        "model.p.customers",
        "catalog",
        "pg",
        "catalog floe.p_dev.customers",
        "pg floe.p_dev.customers",
        rows=1234567,
        bytes=48_200_000,
        seconds=1.234,
    )
    assert done.line() == (
        "[serving] loaded customers: catalog floe.p_dev.customers → pg floe.p_dev.customers, "
        "1,234,567 row(s), 48.2 MB in 1.23s"
    )
    assert done.to_json() == {
        "kind": "load",
        "transform": "serving",
        "model": "model.p.customers",
        "from_compute": "catalog",
        "to_compute": "pg",
        "source": "catalog floe.p_dev.customers",
        "target": "pg floe.p_dev.customers",
        "rows": 1234567,
        "bytes": 48200000,
        "seconds": 1.234,
        "status": "success",
        "message": "",
    }
    failed = BridgeReport(
        PUBLISH,
        "crm",
        "model.p.c",
        "pg",
        "catalog",
        "pg x",
        "catalog y",
        status="failed",
        message="c: column 'z' …",
    )
    assert failed.line() == "[crm] publish FAILED: c: pg x → catalog y: c: column 'z' …"
    assert [human_bytes(n) for n in (0, 999, 1000, 1_500_000, 3 * 10**12)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "1.5 MB",
        "3000.0 GB",
    ]


# -- what floe's wrapper accepts from an engine's bridge hooks ---------------------------------------------


def test_the_wrapper_checks_what_a_bridge_hook_answers() -> None:
    from tests.support.engines import hookimpl_engine

    odd = hookimpl_engine("odd")
    odd.floe_read_arrow = _impl(lambda compute, relation: [{"a": 1}])
    odd.floe_load_arrow = _impl(lambda compute, relation, data: True)
    engine = registry_with_module(odd).engines["odd"]
    compute, relation = ComputeConfig("c", "odd"), Relation("db", "s", "t")
    with pytest.raises(BrokenPluginError, match=r"returned list, expected a pyarrow\.Table"):
        engine.read_arrow(compute, relation)
    reader = pyarrow.RecordBatchReader.from_batches(pyarrow.schema([("a", pyarrow.int64())]), [])
    with pytest.raises(BrokenPluginError, match="returned bool, expected the number of rows"):
        engine.load_arrow(compute, relation, reader)
    plain = registry_with("plain").engines["plain"]  # no bridge hook: floe's defaults refuse, naming them
    with pytest.raises(
        PluginExecutionError, match="has no floe_read_arrow hook: floe cannot read its tables"
    ):
        plain.read_arrow(ComputeConfig("c", "plain"), relation)
    with pytest.raises(PluginExecutionError, match="has no floe_load_arrow hook"):
        plain.load_arrow(ComputeConfig("c", "plain"), relation, reader)
    assert not plain.catalog_access(ComputeConfig("c", "plain"), _catalog()).reads


def _impl(function: Any) -> Any:
    from floe import hookimpl

    return hookimpl(function)


def _catalog() -> Any:
    from floe.model import CatalogConfig

    return CatalogConfig(type="rest", name="lake", uri="http://127.0.0.1:9")


def registry_with_module(module: Any) -> Any:
    from floe.plugins import EngineRegistry

    return EngineRegistry.discover(extra=[(module.__name__, module)], environ={"FLOE_DISABLE_PLUGINS": ""})


def test_run_show_lists_the_tables_published_into_the_catalog() -> None:
    from floe.execution.report import RunReport, TransformReport
    from floe.execution.show import built_tables

    report = RunReport("p", "dev", {"name": "floe"}, "p_dev")
    report.transforms = [
        TransformReport("crm", "models/crm/", "pg", "postgres", [], [], status="success", in_catalog=False)
    ]
    report.bridges = [
        BridgeReport(
            PUBLISH,
            "crm",
            "model.p.customers",
            "pg",
            "catalog",
            "pg db.p_dev.customers",
            "catalog floe.p_dev.customers",
        ),
        BridgeReport(
            PUBLISH,
            "crm",
            "model.p.broken",
            "pg",
            "catalog",
            "pg db.p_dev.broken",
            "catalog floe.p_dev.broken",
            status="failed",
        ),
        BridgeReport(
            LOAD,
            "serving",
            "model.p.orders",
            "catalog",
            "pg",
            "catalog floe.p_dev.orders",
            "pg db.p_dev.orders",
        ),
    ]
    assert built_tables(report) == [("p_dev", "customers")]
