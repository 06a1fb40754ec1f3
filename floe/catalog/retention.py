"""The embedded catalog's retention: old snapshots expired, files nothing reaches removed.

Every ``floe run`` that rebuilds a table adds a snapshot, a metadata file, manifests and data
files to the embedded catalog's warehouse under ``.floe/``; a table dropped and created again in
the same place (Spark's seeds, a model whose columns changed) leaves the old table's files there,
as does a write killed before its commit. Without retention ``.floe/`` grows with every run.

At the end of a run, under the product's run lock, with no worker left writing, the embedded
catalog maintains each table that is *due* (:func:`due`: more metadata files in its ``metadata/``
folder than twice the snapshots it keeps, so a table is maintained about once every
``snapshots`` commits and the cost of a run does not grow with the number of tables):

1. **compact** a table whose current snapshot lists delete files (DuckDB's DELETE + INSERT
   rebuilds): its rows rewritten into new data files, its old data and delete files dropped from
   the current snapshot (:mod:`floe.catalog.compaction`), so that the next steps can remove them;
2. **expire snapshots** (:func:`expired`): keep the newest ``snapshots`` of the table (its
   ``history.expire.min-snapshots-to-keep`` property, when set, instead of the policy's), never
   the current one or the head of a branch or tag; one commit, through the catalog's own
   compare-and-swap;
3. **remove orphan files**: every file under the table's location that the kept metadata does not
   reach (the current metadata file and the newest entries of its metadata log, the manifest
   lists of the kept snapshots, their manifests, the data and delete files those list as live,
   statistics files), and the checksum files (``.<name>.crc``) of removed files.

A folder of the warehouse's ``<namespace>/<table>`` level that holds no live table's metadata (a
table dropped without purge) is removed whole. Only ``file://`` locations inside the warehouse
are touched, and symbolic links are never followed.

What this assumes, and a production catalog does not need it: tables keep their files under
their location (Iceberg's default layout: ``<location>/metadata``, ``<location>/data``), and
nothing writes while it runs (the run lock). A declared catalog is never maintained by floe: its
operator schedules snapshot expiry and orphan-file removal (see the README's Robustness section).

:func:`due` and :func:`expired` are pure; :func:`maintain` does the I/O, with pyiceberg, in the
process that serves the catalog.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

DEFAULT_SNAPSHOTS = 5
"""Snapshots kept per table unless the policy or the table says otherwise."""
MIN_SNAPSHOTS_PROPERTY = "history.expire.min-snapshots-to-keep"
"""Iceberg's table property for the snapshots expiry keeps; a table that sets it keeps that many."""
METADATA_SUFFIX = ".metadata.json"


@dataclass(frozen=True)
class RetentionPolicy:
    """How much history the embedded catalog keeps of each table."""

    snapshots: int = DEFAULT_SNAPSHOTS
    """The newest snapshots kept per table (at least 1: the current one)."""

    def __post_init__(self) -> None:
        if self.snapshots < 1:
            raise ValueError(f"a table keeps at least its current snapshot, not {self.snapshots}")

    def keep(self, properties: Mapping[str, str]) -> int:
        """The snapshots a table with these properties keeps: its own setting, else the policy's."""
        try:
            own = int(properties.get(MIN_SNAPSHOTS_PROPERTY, ""))
        except ValueError:
            return self.snapshots
        return max(1, own)

    def to_json(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetentionPolicy:
        return cls(snapshots=int(data.get("snapshots", DEFAULT_SNAPSHOTS)))


@dataclass
class MaintenanceReport:
    """What one maintenance did."""

    tables: int = 0
    """Tables maintained (found due)."""
    tables_compacted: int = 0
    """Tables whose delete files compaction dropped."""
    snapshots_expired: int = 0
    files_removed: int = 0
    bytes_removed: int = 0
    folders_removed: int = 0
    """Folders of dropped tables removed whole."""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """A table that could not be maintained, and why (the others are maintained regardless)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "tables_compacted": self.tables_compacted,
            "snapshots_expired": self.snapshots_expired,
            "files_removed": self.files_removed,
            "bytes_removed": self.bytes_removed,
            "folders_removed": self.folders_removed,
            "seconds": round(self.seconds, 3),
            "errors": self.errors,
        }


# -- decisions (pure) ------------------------------------------------------------------------------


def due(metadata_files: int, keep: int) -> bool:
    """Whether a table whose ``metadata/`` folder holds ``metadata_files`` metadata files is maintained.

    Each commit writes one metadata file, so the count says how many commits (and snapshots) the
    table took since it was last maintained, whatever the table says: after a maintenance it holds
    about ``keep`` of them, and it is maintained again once it holds twice as many.
    """
    return metadata_files > 2 * keep


def expired(snapshots: Iterable[tuple[int, int]], keep: int, protected: Iterable[int]) -> set[int]:
    """The snapshots to expire: all but the newest ``keep`` and the ``protected`` ones.

    :param snapshots: ``(snapshot id, timestamp ms)`` of every snapshot of the table.
    :param protected: the current snapshot and the heads of branches and tags.
    """
    newest_first = sorted(snapshots, key=lambda s: (s[1], s[0]), reverse=True)
    kept = {snapshot_id for snapshot_id, _ in newest_first[:keep]} | set(protected)
    return {snapshot_id for snapshot_id, _ in newest_first if snapshot_id not in kept}


# -- the I/O ---------------------------------------------------------------------------------------


def maintain(catalog: SqlCatalog, warehouse: Path, policy: RetentionPolicy) -> MaintenanceReport:
    """Maintain every due table of ``catalog`` whose files are under ``warehouse``; see the module docstring."""
    started = time.monotonic()
    report = MaintenanceReport()
    warehouse = warehouse.resolve()
    live: dict[tuple[str, ...], Path] = {}  # each table's metadata file, as the catalog's rows say
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            try:
                location = _local(catalog.load_table(identifier).metadata_location)
            except Exception as exc:  # noqa: BLE001 - a table that cannot load is left alone
                report.errors.append(f"{'.'.join(identifier)}: {type(exc).__name__}: {exc}")
                continue
            if location is not None:
                live[tuple(identifier)] = location
    for identifier, metadata_file in live.items():
        metadata_dir = metadata_file.parent
        if not _inside(metadata_dir, warehouse):
            continue
        try:
            count = sum(1 for e in os.scandir(metadata_dir) if e.name.endswith(METADATA_SUFFIX))
            table = catalog.load_table(identifier)
            keep = policy.keep(table.metadata.properties)
            if not due(count, keep):
                continue
            report.tables += 1
            table = _compact(table, report)
            table = _expire(table, keep, report)
            _remove_orphans(table, keep, warehouse, live.values(), report)
        except Exception as exc:  # noqa: BLE001 - reported; the next run tries again
            report.errors.append(f"{'.'.join(identifier)}: {type(exc).__name__}: {exc}")
    _remove_dropped(warehouse, live.values(), report)
    report.seconds = time.monotonic() - started
    return report


def _compact(table: Table, report: MaintenanceReport) -> Table:
    from floe.catalog.compaction import TooLarge, compact, live_files, needs_compaction

    if not needs_compaction(live_files(table)):
        return table
    name = ".".join(table.name())
    try:
        table = compact(table)
    except TooLarge as exc:
        report.errors.append(f"{name}: not compacted: {exc}")
        return table
    report.tables_compacted += 1
    return table


def _expire(table: Table, keep: int, report: MaintenanceReport) -> Table:
    metadata = table.metadata
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    if metadata.current_snapshot_id is not None:
        protected.add(metadata.current_snapshot_id)
    ids = expired(((s.snapshot_id, s.timestamp_ms) for s in metadata.snapshots), keep, protected)
    if not ids:
        return table
    table.maintenance.expire_snapshots().by_ids(sorted(ids)).commit()
    report.snapshots_expired += len(ids)
    return table.refresh()


def _remove_orphans(
    table: Table, keep: int, warehouse: Path, live: Iterable[Path], report: MaintenanceReport
) -> None:
    root = _local(table.metadata.location)
    if root is None or not _inside(root, warehouse) or root == warehouse:
        return
    reachable = _reachable(table, keep)
    others = [m.parent.parent for m in live if m.parent.parent != root and _inside(m.parent.parent, root)]
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink() and here / d not in others]
        for name in files:
            path = here / name
            target = here / name[1:-4] if name.startswith(".") and name.endswith(".crc") else path
            if target in reachable or path.is_symlink():
                continue
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            report.files_removed += 1
            report.bytes_removed += size


def _reachable(table: Table, keep: int) -> set[Path]:
    """Every file the table's kept metadata reaches (see the module docstring)."""
    metadata, io = table.metadata, table.io
    found: set[Path | None] = {_local(table.metadata_location)}
    found.update(_local(entry.metadata_file) for entry in metadata.metadata_log[-keep:])
    for statistics in [*metadata.statistics, *metadata.partition_statistics]:
        found.add(_local(statistics.statistics_path))
    for snapshot in metadata.snapshots:
        found.add(_local(snapshot.manifest_list))
        for manifest in snapshot.manifests(io):
            found.add(_local(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                found.add(_local(entry.data_file.file_path))
    return {p for p in found if p is not None}


def _remove_dropped(warehouse: Path, live: Iterable[Path], report: MaintenanceReport) -> None:
    """Remove the ``<namespace>/<table>`` folders that hold no live table's metadata."""
    holders = [m for m in live]
    try:
        namespaces = [e for e in os.scandir(warehouse) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for namespace in namespaces:
        for entry in os.scandir(namespace.path):
            folder = Path(entry.path)
            if not entry.is_dir(follow_symlinks=False) or any(_inside(m, folder) for m in holders):
                continue
            if not (folder / "metadata").is_dir():  # not a table's folder: not ours to judge
                continue
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(folder, ignore_errors=True)
            report.folders_removed += 1
            report.bytes_removed += size


def _local(uri: str | None) -> Path | None:
    """The local path of a ``file://`` (or scheme-less) location; ``None`` for any other."""
    if not uri:
        return None
    split = urlsplit(uri)
    if split.scheme not in ("", "file") or split.netloc not in ("", "localhost"):
        return None
    return Path(unquote(split.path) if split.scheme else uri).resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
