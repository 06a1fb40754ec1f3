"""Reading the tables a run built, through the catalog, with pyiceberg (``floe run --show``).

pyiceberg is one more client of the same catalog: it loads each table the way DuckDB and Spark
do (REST), then reads its data files. pyiceberg is imported only here, when tables are shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from floe.catalog.vending import MissingSecretError, pyiceberg_rest_properties
from floe.errors import FloeError, Problem
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
        body = table([{c: _text(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows],
                     self.columns, upper=False)  # fmt: skip
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


def client(catalog: CatalogConfig, environ: Mapping[str, str] | None = None) -> Any:
    """A pyiceberg REST catalog client configured like the engines (secrets from the environment).

    The properties come from :func:`~floe.catalog.vending.pyiceberg_rest_properties`, the one
    translation of a :class:`~floe.model.CatalogConfig` for pyiceberg. The embedded catalog of a
    run in this process is reached with the run's token (:func:`floe.execution.catalog.served_token`).

    :raises FloeError: a secret the catalog references is not set (named, its value never shown),
        or the catalog is not a REST catalog with a uri.
    """
    from pyiceberg.catalog.rest import RestCatalog

    from floe.execution.catalog import TOKEN_VARIABLE, served_token

    environ = os.environ if environ is None else environ
    token = served_token(catalog.uri) if catalog.token is not None and catalog.token.name == TOKEN_VARIABLE else None
    if token is not None:  # the embedded catalog this process's run serves: its token is here, not in the environment
        environ = {**environ, TOKEN_VARIABLE: token}
    try:
        properties = pyiceberg_rest_properties(catalog, environ)
    except MissingSecretError as exc:
        raise FloeError([Problem(f"catalog {catalog.name!r}: {exc}",
                                 fix=f"set {exc.variable} in the environment floe runs in "
                                     "(the manifest's catalog names it with secret_ref)")]) from None  # fmt: skip
    except ValueError as exc:
        raise FloeError([Problem(str(exc), fix="declare a catalog with `type: rest` and a `uri`")]) from None
    return RestCatalog(catalog.name, **properties)


def read_tables(catalog: CatalogConfig, identifiers: Iterable[tuple[str, str]],
                limit: int = DEFAULT_LIMIT) -> list[ShownTable]:  # fmt: skip
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
