"""Reading the tables a run built, through the catalog, with pyiceberg (``floe run --show``).

pyiceberg is one more client of the same catalog: it loads each table the way DuckDB and Spark
do (REST), then reads its data files. pyiceberg is imported only here, when tables are shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import attrs

from floe.model import CatalogConfig
from floe.run.report import SUCCESS, RunReport, table

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
        body = table([{c: _text(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows],
                     self.columns, upper=False)  # fmt: skip
        return head + "\n" + body


def built_tables(report: RunReport) -> list[tuple[str, str]]:
    """``(namespace, table)`` of every model the run built, in the order the transforms ran."""
    found: list[tuple[str, str]] = []
    for transform in report.transforms:
        if transform.status != SUCCESS:
            continue
        for result in transform.results:
            if result.resource_type == "model" and result.status == SUCCESS and result.relation:
                _, namespace, name = result.relation.split(".", 2)
                if (namespace, name) not in found:
                    found.append((namespace, name))
    return found


def client(catalog: CatalogConfig, environ: dict[str, str] | None = None) -> Any:
    """A pyiceberg REST catalog client configured like the engines (secrets from the environment)."""
    from pyiceberg.catalog.rest import RestCatalog

    env = os.environ if environ is None else environ
    properties: dict[str, str] = {"uri": str(catalog.uri)}
    if catalog.warehouse:
        properties["warehouse"] = catalog.warehouse
    if catalog.client_id and catalog.client_secret is not None:
        properties["credential"] = f"{catalog.client_id}:{env.get(catalog.client_secret.name, '')}"
    elif catalog.token is not None:
        properties["token"] = env.get(catalog.token.name, "")
    if catalog.oauth2_server_uri:
        properties["oauth2-server-uri"] = catalog.oauth2_server_uri
    if catalog.access_delegation == "vended-credentials":
        properties["header.X-Iceberg-Access-Delegation"] = "vended-credentials"
    return RestCatalog(catalog.name, **properties)


def read_tables(catalog: CatalogConfig, identifiers: Iterable[tuple[str, str]],
                limit: int = DEFAULT_LIMIT) -> list[ShownTable]:  # fmt: skip
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
