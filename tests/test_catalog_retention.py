"""The embedded catalog's retention (:mod:`floe.catalog.retention`): which snapshots expire, and a
real catalog maintained after many commits keeps its history and its files bounded, its data whole.

The commits are pyiceberg's, on the embedded catalog's own SQLite file and warehouse; the
maintenance is the one ``floe run`` asks of its catalog's process at the end of a run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from floe.catalog.rest_server import EmbeddedCatalog
from floe.catalog.retention import RetentionPolicy, due, expired


def test_expired_keeps_the_newest_and_the_protected() -> None:
    snapshots = [(1, 100), (2, 200), (3, 300), (4, 400), (5, 500)]
    assert expired(snapshots, 2, protected={5}) == {1, 2, 3}
    assert expired(snapshots, 2, protected={5, 1}) == {2, 3}  # a tag's head stays
    assert expired(snapshots, 10, protected=set()) == set()
    assert due(11, 5) and not due(10, 5)
    assert RetentionPolicy(3).keep({"history.expire.min-snapshots-to-keep": "7"}) == 7
    assert RetentionPolicy(3).keep({"history.expire.min-snapshots-to-keep": "x"}) == 3
    with pytest.raises(ValueError, match="at least its current snapshot"):
        RetentionPolicy(0)


def table_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def test_maintenance_bounds_snapshots_and_files_and_keeps_every_row(tmp_path: Path) -> None:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    embedded = EmbeddedCatalog(tmp_path / ".floe").start()
    try:
        embedded.create_namespace("ns")
        sql = SqlCatalog(
            "floe", uri=f"sqlite:///{embedded.database_path}", warehouse=f"file://{embedded.warehouse_path}"
        )
        schema = pa.schema([pa.field("round", pa.int64())])
        table = sql.create_table(("ns", "events"), schema)
        outside = tmp_path / "not-the-catalogs.parquet"
        outside.write_bytes(b"x")
        keep, counts = 2, []
        for round_ in range(1, 25):
            table.append(pa.table({"round": [round_]}, schema=schema))
            if round_ == 10:  # a write killed before its commit leaves a file nothing reaches
                stray = Path(table.location().removeprefix("file://")) / "data" / "stray.parquet"
                stray.write_bytes(b"half a file")
            done = embedded.maintain(RetentionPolicy(keep))
            assert done.errors == []
            table = sql.load_table(("ns", "events"))
            manifests = table.current_snapshot().manifests(table.io)
            live = len(manifests) + sum(
                len(m.fetch_manifest_entry(table.io, discard_deleted=True)) for m in manifests
            )
            counts.append(table_files(embedded.warehouse_path) - live)  # beyond what the current table needs
        assert len(table.metadata.snapshots) <= 2 * keep + 1
        assert sorted(r["round"] for r in table.scan().to_arrow().to_pylist()) == list(range(1, 25))
        assert not stray.exists() and outside.exists()
        # the files beyond the current table's own (old metadata, manifest lists, expired snapshots'
        # manifests) stay bounded: no more after 24 commits than after the first maintenances
        assert max(counts[-6:]) <= max(counts[4:10]), counts
    finally:
        embedded.stop()
