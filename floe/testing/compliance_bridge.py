"""Compliance: the bridge hooks (``floe_read_arrow``, ``floe_load_arrow``) of an engine floe bridges.

An engine whose ``floe_catalog_access`` says ``CatalogAccess.bridged`` builds in its own warehouse
and lets floe carry tables between it and the catalog. Against the adopter's live peer
(``engine_endpoint``), the suite loads a table with every type a bridge must keep (integers,
``decimal(p, s)``, dates, timestamps with and without zone, strings, booleans, nulls in each) into
a fresh schema through the engine's own ``floe_load_arrow``, reads it back through its own
``floe_read_arrow``, and compares value by value, after the one normalisation floe applies before
an Iceberg commit; it checks that a second load replaces the rows, that a load whose data fails
part way leaves the table as it was, and that a column the engine cannot keep fails naming it.

An engine that attaches the catalog in place, or builds in its own warehouse without a bridge,
declares none of this and passes (floe refuses refs between it and other computes it cannot
carry, in ``floe plan``). An engine that can only load, or only read, gives the other direction
with a ``bridge_io`` fixture.
"""

from __future__ import annotations

import datetime
import decimal
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from floe.errors import FloeError, UnattachableCatalog
from floe.model import CatalogAccess, CatalogConfig, ComputeConfig, ProfileTarget, Relation
from floe.plugins import Engine
from floe.testing.compliance_base import (
    Endpoint,
    EngineTestBase,
    assert_actionable,
    call_hook,
    render_env_vars,
)

ODD_COLUMN = "odd_interval"
"""A column of Arrow's ``month_day_nano_interval``, which no bridge needs: kept exactly or refused by name."""


@attrs.frozen
class BridgeIO:
    """The direction an engine does not bridge, done another way by its adopter (its client, SQL)."""

    write: Callable[[ComputeConfig, Relation, Any], None] | None = None
    """Create ``relation`` holding the ``pyarrow.Table`` given (for an engine that only reads)."""
    read: Callable[[ComputeConfig, Relation], Any] | None = None
    """The ``pyarrow.Table`` ``relation`` holds (for an engine that only loads)."""


def probe_table() -> Any:
    """Four rows with every type a bridge must keep, a NULL in each column, and edge values."""
    import pyarrow

    utc = datetime.UTC
    return pyarrow.table(
        {
            "small": pyarrow.array([1, -2147483648, None, 2147483647], pyarrow.int32()),
            "big": pyarrow.array([9007199254740993, None, -1, 0], pyarrow.int64()),
            "amount": pyarrow.array(
                [decimal.Decimal("12345678.901"), decimal.Decimal("-0.001"), None, decimal.Decimal("0.000")],
                pyarrow.decimal128(12, 3),
            ),
            "day": pyarrow.array(
                [datetime.date(2024, 2, 29), datetime.date(1969, 12, 31), datetime.date(1, 1, 1), None]
            ),
            "at_local": pyarrow.array(
                [
                    datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
                    None,
                    datetime.datetime(1969, 7, 20, 20, 17, 40),
                    datetime.datetime(2000, 1, 1),
                ],
                pyarrow.timestamp("us"),
            ),
            "at_utc": pyarrow.array(
                [
                    datetime.datetime(2024, 3, 31, 1, 30, 0, 123456, tzinfo=utc),
                    datetime.datetime(1999, 12, 31, 23, 0, tzinfo=utc),
                    None,
                    datetime.datetime(1970, 1, 1, tzinfo=utc),
                ],
                pyarrow.timestamp("us", tz="UTC"),
            ),
            "label": pyarrow.array(["plain", "", "ünïcødé ✓ 'quoted' \"double\"", None], pyarrow.string()),
            "flag": pyarrow.array([True, False, None, True]),
        }
    )


class BridgeTests(EngineTestBase):
    """The engine's bridge hooks keep every value and type, replace atomically, and refuse by name."""

    @pytest.fixture
    def bridge_io(self) -> BridgeIO | None:
        """For an engine that bridges one way only: the other way, done by the adopter."""
        return None

    @pytest.fixture
    def bridge_access(self, engine: Engine, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """The engine's own answer, for the suite's catalog (one it cannot attach: not in place)."""
        try:
            access = call_hook(engine, "floe_catalog_access", compute=compute, catalog=catalog)
        except UnattachableCatalog:
            return CatalogAccess.own_warehouse("the suite's catalog is not one it attaches")
        assert isinstance(access, CatalogAccess), f"floe_catalog_access returned {type(access).__name__}"
        return access

    @pytest.fixture
    def bridge(
        self,
        request: pytest.FixtureRequest,
        engine: Engine,
        engine_name: str,
        bridge_access: CatalogAccess,
        target: ProfileTarget,
        bridge_io: BridgeIO | None,
    ) -> Iterator[_Bridge | None]:
        """The engine's hooks against the adopter's peer, on a fresh schema; ``None``: not bridged."""
        if bridge_access.in_place or not (bridge_access.reads or bridge_access.loads):
            yield None
            return
        endpoint: Endpoint = request.getfixturevalue("engine_endpoint")
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        for key, value in endpoint.environ.items():
            monkeypatch.setenv(key, value)
        compute = ComputeConfig("compliance", engine_name, dict(endpoint.config))
        missing = [
            way
            for way, declared, io in (
                ("read", bridge_access.reads, bridge_io and bridge_io.read),
                ("write", bridge_access.loads, bridge_io and bridge_io.write),
            )
            if not declared and io is None
        ]
        if missing:
            pytest.fail(
                f"the engine bridges one way only: give a `bridge_io` fixture returning "
                f"floe.testing.compliance_bridge.BridgeIO({missing[0]}=…) that does the other way with "
                "your engine's client, so that the suite can check the way it bridges"
            )
        database = _dbt_database(engine, compute, target, endpoint)
        yield _Bridge(
            engine,
            compute,
            bridge_access,
            bridge_io or BridgeIO(),
            database,
            f"floe_bridge_{secrets.token_hex(4)}",
        )

    def test_an_engine_attached_in_place_declares_no_bridge(self, bridge_access: CatalogAccess) -> None:
        """Engine side: ``floe_catalog_access``. A worker that reads the catalog in place needs no bridge."""
        if bridge_access.in_place:
            assert not (bridge_access.reads or bridge_access.loads), (
                "the engine attaches the catalog in place and also declares a bridge (reads/loads): floe reads "
                "its tables where they are; return CatalogAccess.attached(how)"
            )
        assert bridge_access.how.strip(), "CatalogAccess.how says, for floe plan, how (or why not)"

    def test_a_bridged_table_keeps_every_value_and_type(self, bridge: _Bridge | None) -> None:
        """Engine side: its own ``floe_load_arrow`` (or the adopter's write) and ``floe_read_arrow``
        (or the adopter's read), on the adopter's peer. Compared after floe's normalisation for Iceberg
        (a wider integer, nanoseconds, another zone name are the same values)."""
        if bridge is None:
            return
        table = probe_table()
        relation = bridge.relation("probe")
        assert bridge.put(relation, table, batches=2) == table.num_rows, "the load returns the rows it holds"
        back = bridge.get(relation)
        problems = compare(table, back)
        assert not problems, "the bridged table changed:\n" + "\n".join(problems)

    def test_a_load_replaces_the_rows_and_a_failed_load_leaves_them(self, bridge: _Bridge | None) -> None:
        """Engine side: its own ``floe_load_arrow``, twice, then with a stream that fails after one batch."""
        if bridge is None or not bridge.access.loads:
            return
        table = probe_table()
        relation = bridge.relation("replaced")
        bridge.put(relation, table, batches=1)
        second = table.slice(1, 2)
        assert bridge.put(relation, second, batches=1) == 2, (
            "a second load replaces the rows (it does not append)"
        )
        assert not compare(second, bridge.get(relation)), (
            "after a second load the table holds exactly its rows"
        )
        with pytest.raises(Exception) as failed:
            bridge.put(relation, table, batches=2, fail_after=1)
        text = _text(bridge, failed.value)
        assert_actionable(text)
        problems = compare(second, bridge.get(relation))
        assert not problems, (
            "a load whose data failed part way changed the table (load into a staging table and "
            "swap it in only when every row arrived):\n" + "\n".join(problems)
        )

    def test_a_column_the_engine_cannot_keep_fails_naming_it(self, bridge: _Bridge | None) -> None:
        """Engine side: its own ``floe_load_arrow`` of a column of Arrow's ``month_day_nano_interval``:
        kept exactly, or refused with a message that names the column and its type."""
        if bridge is None or not bridge.access.loads:
            return
        import pyarrow

        odd = pyarrow.array([pyarrow.MonthDayNano([1, 2, 3_000]), None], pyarrow.month_day_nano_interval())
        table = pyarrow.table({"id": pyarrow.array([1, 2], pyarrow.int64()), ODD_COLUMN: odd})
        relation = bridge.relation("odd")
        try:
            bridge.put(relation, table, batches=1)
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            text = _text(bridge, exc)
            assert_actionable(text)
            assert ODD_COLUMN in text and "interval" in text.lower(), (
                f"a load refused a column without naming it and its type ({ODD_COLUMN}, month_day_nano_interval): "
                f"{text[:300]}"
            )
            return
        back = bridge.get(relation, normalise=False)
        assert back.column(ODD_COLUMN).to_pylist() == odd.to_pylist(), (
            f"the load accepted column {ODD_COLUMN!r} (month_day_nano_interval) and changed it: refuse a type "
            f"the engine cannot keep, naming the column (floe.enginekit.type_error); got "
            f"{back.schema.field(ODD_COLUMN).type}: {back.column(ODD_COLUMN).to_pylist()}"
        )


# -- helpers ------------------------------------------------------------------------------------------


@attrs.frozen
class _Bridge:
    engine: Engine
    compute: ComputeConfig
    access: CatalogAccess
    io: BridgeIO
    database: str | None
    schema: str

    def relation(self, name: str) -> Relation:
        return Relation(self.database, self.schema, name)

    def put(self, relation: Relation, table: Any, *, batches: int, fail_after: int | None = None) -> int:
        """Load ``table`` (in ``batches`` record batches; raising after ``fail_after`` of them)."""
        import pyarrow

        if not self.access.loads:
            assert self.io.write is not None
            self.io.write(self.compute, relation, table)
            return int(table.num_rows)
        size = max(1, -(-table.num_rows // batches))
        parts = table.to_batches(max_chunksize=size) or [
            pyarrow.RecordBatch.from_pylist([], schema=table.schema)
        ]

        def stream() -> Iterator[Any]:
            for index, batch in enumerate(parts):
                if fail_after is not None and index >= fail_after:
                    raise OSError("the suite's stream of rows broke off here, on purpose")
                yield batch
            if fail_after is not None:
                raise OSError("the suite's stream of rows broke off here, on purpose")

        reader = pyarrow.RecordBatchReader.from_batches(table.schema, stream())
        rows = call_hook(self.engine, "floe_load_arrow", compute=self.compute, relation=relation, data=reader)
        assert isinstance(rows, int) and not isinstance(rows, bool), (
            f"floe_load_arrow returned {rows!r}, not an int"
        )
        return rows

    def get(self, relation: Relation, *, normalise: bool = True) -> Any:
        import pyarrow

        if self.access.reads:
            table = call_hook(self.engine, "floe_read_arrow", compute=self.compute, relation=relation)
        else:
            assert self.io.read is not None
            table = self.io.read(self.compute, relation)
        assert isinstance(table, pyarrow.Table), (
            f"floe_read_arrow returned {type(table).__name__}, not a pyarrow.Table"
        )
        if not normalise:
            return table
        from floe.execution.iceberg_types import for_iceberg

        return for_iceberg(table, f"{relation} of the compliance suite")


def _text(bridge: _Bridge, error: BaseException) -> str:
    """What a user reads of ``error``: floe's text, or the engine's own translation of its client's error."""
    if isinstance(error, FloeError):
        return error.render()
    translated = call_hook(bridge.engine, "floe_translate_error", error=error, compute=bridge.compute)
    return translated.render() if isinstance(translated, FloeError) else f"{type(error).__name__}: {error}"


def _dbt_database(
    engine: Engine, compute: ComputeConfig, target: ProfileTarget, endpoint: Endpoint
) -> str | None:
    """The database dbt's adapter resolves from the engine's profile for the peer: the ``database``
    part of every relation ``ref()`` gives on it."""
    from dbt.adapters.factory import load_plugin

    credentials_class = load_plugin(engine.info.dbt_adapter)
    profile = call_hook(engine, "floe_generate_dbt_profile", compute=compute, target=target)
    data = credentials_class.translate_aliases(dict(render_env_vars(profile, dict(endpoint.environ))))
    data.pop("type", None)
    data.pop("threads", None)
    database = getattr(credentials_class.from_dict(data), "database", None)
    return None if database is None else str(database)


def compare(expected: Any, got: Any) -> list[str]:
    """How ``got`` differs from ``expected``, column by column: names, type families, values."""
    import pyarrow.compute

    problems = []
    if got.column_names != expected.column_names:
        return [
            f"columns {got.column_names}, expected {expected.column_names} (names as dbt writes them, in order)"
        ]
    if got.num_rows != expected.num_rows:
        return [f"{got.num_rows} rows, expected {expected.num_rows}"]
    order_got = _order(got)
    order_expected = _order(expected)
    for name in expected.column_names:
        want, have = expected.schema.field(name).type, got.schema.field(name).type
        if not _same_family(want, have):
            problems.append(f"column {name!r}: {want} came back as {have}")
            continue
        wanted = pyarrow.compute.take(expected.column(name), order_expected).to_pylist()
        values = pyarrow.compute.take(got.column(name), order_got).to_pylist()
        for w, v in zip(wanted, values, strict=True):
            if not _same_value(w, v):
                problems.append(f"column {name!r}: {w!r} came back as {v!r}")
                break
    return problems


def _order(table: Any) -> Any:
    import pyarrow.compute

    keys = [name for name in ("big", "small", "id") if name in table.column_names] or table.column_names[:1]
    return pyarrow.compute.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])  # NULLs last


def _same_family(want: Any, have: Any) -> bool:
    import pyarrow

    t = pyarrow.types
    if t.is_integer(want):
        return bool(t.is_integer(have) and have.bit_width >= want.bit_width)
    if t.is_decimal(want):
        return bool(t.is_decimal(have) and (have.precision, have.scale) == (want.precision, want.scale))
    if t.is_timestamp(want):
        return bool(t.is_timestamp(have) and (have.tz is None) == (want.tz is None))
    if t.is_string(want) or t.is_large_string(want):
        return bool(t.is_string(have) or t.is_large_string(have))
    return bool(want == have)


def _same_value(want: Any, have: Any) -> bool:
    if isinstance(want, decimal.Decimal) and isinstance(have, decimal.Decimal):
        return want == have and want.as_tuple().exponent == have.as_tuple().exponent
    if isinstance(want, datetime.datetime) and isinstance(have, datetime.datetime):
        return want == have and (want.tzinfo is None) == (have.tzinfo is None)
    return bool(want == have) and type(want) is type(have)
