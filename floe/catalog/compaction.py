"""Compaction of an embedded catalog's table: its rows rewritten into new data files, its delete files dropped.

DuckDB replaces a table's rows through Iceberg REST by DELETE + INSERT: merge-on-read, so each
rebuild adds a data file *and* a positional delete file that masks the previous rows, and the
current snapshot keeps listing every one of them. Expiring snapshots (:mod:`floe.catalog.retention`)
cannot remove files the current snapshot still lists, so such a table grows with every run however
few snapshots are kept. Compaction is the cure Iceberg prescribes (Spark's ``rewrite_data_files``):
read the table's live rows (deletes applied), write them as new data files, and commit one
``overwrite`` snapshot that lists only those; the old data and delete files are then reached only
by older snapshots, and go when those expire.

pyiceberg (0.12) writes the new files and commits through the catalog's compare-and-swap, but its
overwrite refuses to drop *delete* files: it checks that every removed file was a live data file.
:class:`_Rewrite` relaxes only that check, so that delete files may be removed beside the data
files they mask; the manifests it keeps and the snapshot it commits are pyiceberg's own. A table
that changes while it is compacted is not overwritten (the commit's requirements fail); floe
compacts at the end of a run, under the product's run lock, with no worker left writing.

A table is compacted only when it lists delete files, and only up to :data:`MAX_BYTES` of data
(the rows are read into memory): the embedded catalog serves development data; a larger table is
reported and left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile, ManifestEntry
    from pyiceberg.table import Table

MAX_BYTES = 256 * 1024 * 1024
"""The most data (the live data files' sizes) a table may hold to be compacted."""


class TooLarge(Exception):
    """The table holds more data than :data:`MAX_BYTES`; it is left as it is."""


def live_files(table: Table) -> list[DataFile]:
    """The data and delete files the table's current snapshot lists as live."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    return [
        entry.data_file
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    ]


def needs_compaction(files: list[DataFile]) -> bool:
    """Whether a table with these live files has delete files to drop."""
    from pyiceberg.manifest import DataFileContent

    return any(f.content != DataFileContent.DATA for f in files)


def compact(table: Table) -> Table:
    """Rewrite ``table``'s live rows into new data files and drop every data and delete file it
    listed, in one ``overwrite`` commit; the table, refreshed.

    :raises TooLarge: the table holds more than :data:`MAX_BYTES` of data.
    """
    from pyiceberg.io.pyarrow import _dataframe_to_data_files
    from pyiceberg.manifest import DataFileContent
    from pyiceberg.table.refs import MAIN_BRANCH
    from pyiceberg.table.snapshots import Operation

    files = live_files(table)
    size = sum(f.file_size_in_bytes for f in files if f.content == DataFileContent.DATA)
    if size > MAX_BYTES:
        raise TooLarge(f"{size} bytes of data, more than the {MAX_BYTES} compaction reads into memory")
    rows = table.scan().to_arrow()  # the live rows: pyiceberg applies the positional deletes
    with table.transaction() as transaction:
        rewrite = _rewrite_class()(
            operation=Operation.OVERWRITE,
            transaction=transaction,
            io=table.io,
            branch=MAIN_BRANCH,
            snapshot_properties={"floe.compaction": "true"},
        )
        with rewrite:
            for old in files:
                rewrite.delete_data_file(old)
            if rows.num_rows:
                for new in _dataframe_to_data_files(
                    table_metadata=transaction.table_metadata,
                    write_uuid=rewrite.commit_uuid,
                    df=rows,
                    io=table.io,
                ):
                    rewrite.append_data_file(new)
    return table.refresh()


def _rewrite_class() -> type:
    """pyiceberg's overwrite, allowed to drop delete files (imported when a table is compacted)."""
    from pyiceberg.exceptions import ValidationException
    from pyiceberg.manifest import DataFileContent
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    class _Rewrite(_OverwriteFiles):
        def _validate_required_deletes(self, deleted_entries: list[ManifestEntry]) -> None:
            # pyiceberg records only data files as deleted entries; a delete file removed with
            # them simply leaves the manifests. Every data file removed must still be live.
            found = {entry.data_file for entry in deleted_entries}
            missing = [
                f.file_path
                for f in self._deleted_data_files
                if f.content == DataFileContent.DATA and f not in found
            ]
            if missing:
                raise ValidationException(f"Missing required files to delete: {', '.join(sorted(missing))}")

    return _Rewrite
