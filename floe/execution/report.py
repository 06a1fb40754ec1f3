"""What a ``floe run`` did: per transform and per node, as progress lines, a summary, and JSON.

Statuses of a transform (:class:`~floe.execution.scheduler.State`): ``success``; ``failed`` (dbt
reported an error, a failing test, or could not run); ``skipped`` (a transform it depends on did
not succeed, so it was not started).
Node statuses are dbt's own (``success``, ``error``, ``skipped``, ``pass``, ``fail``, ``warn``…).
Times are Unix timestamps (``started_at``, ``finished_at``) and durations in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from floe.execution.scheduler import State

SUCCESS, FAILED, SKIPPED = State.SUCCESS, State.FAILED, State.SKIPPED
NODE_FAILURES = ("error", "fail", "runtime error")
PUBLISH, LOAD = "publish", "load"
"""The two kinds of bridge (:mod:`floe.execution.bridges`)."""


_DETAIL = {"detail": True}


@attrs.define
class NodeResult:
    unique_id: str
    name: str
    resource_type: str
    status: str
    seconds: float = 0.0
    message: str = ""
    relation: str | None = None
    sql: str | None = attrs.field(default=None, metadata=_DETAIL, repr=False)
    """The SQL dbt ran for it (secrets redacted); not in the JSON report."""
    parents: tuple[Parent, ...] = attrs.field(default=(), metadata=_DETAIL, repr=False)
    """What it read: the nodes and sources it depends on; not in the JSON report."""
    columns: tuple[Column, ...] = attrs.field(default=(), metadata=_DETAIL, repr=False)
    """The columns the project declares for it (schema files); not in the JSON report."""

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda field, _: not field.metadata.get("detail"))


@attrs.frozen
class Parent:
    """A node or source a node reads, as dbt's manifest names its relation."""

    unique_id: str
    database: str | None = None
    schema: str | None = None
    identifier: str | None = None


@attrs.frozen
class Column:
    """A column a dbt project declares for a node."""

    name: str
    data_type: str | None = None
    description: str | None = None


@attrs.define
class TransformReport:
    name: str
    path: str
    compute: str
    engine: str
    depends_on: list[str]
    nodes: list[str]
    """unique ids of the nodes (models, seeds, snapshots) the transform builds; ``models`` counts them."""
    tests: int = 0
    status: State = State.PENDING
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    log: str | None = None
    results: list[NodeResult] = attrs.field(factory=list)
    in_catalog: bool = True
    """Whether its compute's worker builds in the run's catalog (its relations are Iceberg tables
    there); else they are in the engine's own warehouse (``<database>.<schema>.<table>``)."""

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    @property
    def models(self) -> int:
        return len(self.nodes)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "compute": self.compute,
            "engine": self.engine,
            "depends_on": list(self.depends_on),
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "models": self.models,
            "tests": self.tests,
            "counts": self.counts(),
            "message": self.message,
            "log": self.log,
            "nodes": [r.to_json() for r in self.results],
        }


@attrs.define
class BridgeReport:
    """What one carried model cost, and whether it arrived."""

    kind: str
    transform: str
    model: str
    from_compute: str
    to_compute: str
    source: str
    """Where it was read: ``<compute> <relation>``, or ``catalog <catalog>.<schema>.<table>``."""
    target: str
    rows: int = 0
    bytes: int = 0
    """The Arrow data's size in memory (what crossed floe's process)."""
    seconds: float = 0.0
    status: str = "success"
    message: str = ""

    @property
    def name(self) -> str:
        return self.model.rsplit(".", 1)[-1]

    @property
    def published(self) -> tuple[str, str] | None:
        """``(namespace, table)`` of the catalog's table a successful publish wrote; else ``None``."""
        if self.kind != PUBLISH or self.status != "success" or not self.target.startswith("catalog "):
            return None
        _, namespace, table = self.target.removeprefix("catalog ").split(".", 2)
        return namespace, table

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "transform": self.transform,
            "model": self.model,
            "from_compute": self.from_compute,
            "to_compute": self.to_compute,
            "source": self.source,
            "target": self.target,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "message": self.message,
        }

    def line(self) -> str:
        """The progress line of a finished bridge."""
        verb = "published" if self.kind == PUBLISH else "loaded"
        if self.status != "success":
            return f"[{self.transform}] {self.kind} FAILED: {self.name}: {self.source} → {self.target}: {self.message}"
        return (
            f"[{self.transform}] {verb} {self.name}: {self.source} → {self.target}, "
            f"{self.rows:,} row(s), {human_bytes(self.bytes)} in {self.seconds:.2f}s"
        )


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop returns


@attrs.define
class RunReport:
    product: str
    environment: str
    catalog: dict[str, Any]
    namespace: str
    transforms: list[TransformReport] = attrs.field(factory=list)
    unassigned: list[str] = attrs.field(factory=list)
    started_at: float = 0.0
    finished_at: float | None = None
    phases: dict[str, float] = attrs.field(factory=dict)
    """Seconds spent outside the transforms: compile, lock, catalog start, dbt parse, shutdown."""
    bridges: list[BridgeReport] = attrs.field(factory=list)
    """Every model carried between the catalog and an engine's own warehouse, in the order they ended."""

    @property
    def success(self) -> bool:
        return all(t.status == SUCCESS for t in self.transforms) and all(
            b.status == SUCCESS for b in self.bridges
        )

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else round(self.finished_at - self.started_at, 3)

    def get(self, name: str) -> TransformReport:
        return next(t for t in self.transforms if t.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": "floe.dev/v1",
            "kind": "RunReport",
            "product": self.product,
            "environment": self.environment,
            "status": SUCCESS if self.success else FAILED,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "catalog": dict(self.catalog),
            "namespace": self.namespace,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "transforms": [t.to_json() for t in self.transforms],
            "unassigned": list(self.unassigned),
            "bridges": [b.to_json() for b in self.bridges],
        }


def table(
    rows: Iterable[dict[str, Any]], columns: list[str], *, upper: bool = True, one_line: bool = False
) -> str:
    """A plain-text table with aligned columns, the last one unpadded (trailing blanks stripped).

    Headers are in upper case unless ``upper`` is false. With ``one_line``, a cell's line breaks
    become spaces, so each row stays on one line (a multi-line error message, say); without it,
    cells are printed as they are (the tables ``floe run --show`` prints).
    """
    cells = [{c: _cell(row[c], one_line) for c in columns} for row in rows]
    widths = {c: max([len(c)] + [len(r[c]) for r in cells]) for c in columns}
    lines = ["  ".join((c.upper() if upper else c).ljust(widths[c]) for c in columns).rstrip()]
    for row in cells:
        lines.append("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)


def _cell(value: Any, one_line: bool) -> str:
    text = str(value)
    return text.replace("\n", " ") if one_line else text
