"""Reading the tables a run built, through the catalog, with pyiceberg (``floe run --show``).

pyiceberg is one more client of the same catalog: it loads each table the way DuckDB and Spark
do (REST), then reads its data files. pyiceberg is imported only here, when tables are shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from floe.execution.catalog_client import client
from floe.execution.report import SUCCESS, RunReport, table
from floe.model import CatalogConfig

DEFAULT_LIMIT = 20


@attrs.frozen
class ShownTable:
    identifier: tuple[str, str]
    columns: list[str]
    rows: list[tuple[Any, ...]]
    total: int

    def render(self, catalog: str) -> str:
        more = f", first {len(self.rows)} shown" if len(self.rows) < self.total else ""
        head = f"{catalog}.{'.'.join(self.identifier)} ({self.total} row(s){more})"
        body = table(
            [{c: _text(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows],
            self.columns,
            upper=False,
        )
        return head + "\n" + body


def built_tables(report: RunReport) -> list[tuple[str, str]]:
    """``(namespace, table)`` of every model the run built in the catalog, in the order the transforms
    ran, then of every model it published into the catalog from another warehouse."""
    found: list[tuple[str, str]] = []
    for transform in report.transforms:
        if transform.status != SUCCESS or not transform.in_catalog:  # another warehouse's tables
            continue
        for result in transform.results:
            if result.resource_type == "model" and result.status == SUCCESS and result.relation:
                _, namespace, name = result.relation.split(".", 2)
                if (namespace, name) not in found:
                    found.append((namespace, name))
    for bridge in report.bridges:
        if bridge.published is not None and bridge.published not in found:
            found.append(bridge.published)
    return found


def read_tables(
    catalog: CatalogConfig, identifiers: Iterable[tuple[str, str]], limit: int = DEFAULT_LIMIT
) -> list[ShownTable]:
    """The first ``limit`` rows of each table, read through :func:`client` (which may raise FloeError)."""
    rest = client(catalog)
    shown = []
    for identifier in identifiers:
        data = rest.load_table(identifier).scan().to_arrow()
        head = data.slice(0, limit)
        rows = list(zip(*(head.column(i).to_pylist() for i in range(head.num_columns)), strict=True))
        shown.append(ShownTable(identifier, list(data.column_names), rows, data.num_rows))
    return shown


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
