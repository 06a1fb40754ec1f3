"""A dbt-duckdb plugin that attaches DuckDB to the Iceberg catalog with the engine's own SQL.

Named in the run profiles of DuckDB computes (see :mod:`floe.engines.duckdb.run`)::

    plugins:
      - module: floe.engines.duckdb_plugin
        config:
          floe_engine: duckdb
          floe_compute: local
          floe_names: [lake, local, duckdb, path]
          floe_statements:
            - '{{ "CREATE OR REPLACE SECRET \\x22floe_catalog_lake\\x22 (… {{ env_var(''NAME'') }} …)" }}'
            - '{{ "ATTACH …" }}'

dbt renders the profile, which turns each Jinja string literal
(:func:`floe.sqlsecrets.jinja_string`) back into the statement, placeholders included; when
dbt-duckdb opens its database (after loading the extensions, before its own ``attach``),
:meth:`Plugin.configure_connection` runs the statements with each placeholder bound as a query
parameter to the secret's value from the environment
(:func:`floe.sqlsecrets.bind_secret_placeholders`): no statement text, which DuckDB may log, ever
holds a secret, and an error never shows one.

This module imports dbt-duckdb: only dbt-duckdb imports it.
"""

from __future__ import annotations

import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from floe.enginekit import FloeError, bind_secret_placeholders, redact


class Plugin(BasePlugin):  # type: ignore[misc,unused-ignore]  # Any when dbt-duckdb is missing
    """Runs the catalog attachment statements on every new DuckDB database connection."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        statements = plugin_config.get("floe_statements")
        if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
            raise ValueError("floe.engines.duckdb_plugin needs floe_statements, a list of SQL statements")
        self.statements: list[str] = list(statements)
        self.engine = str(plugin_config.get("floe_engine", "duckdb"))
        self.compute = str(plugin_config.get("floe_compute", ""))
        self.names = [str(n) for n in plugin_config.get("floe_names") or []]
        """floe's own names (the catalog's, the compute's, its engine's, its settings' keys): a
        short secret inside one of them is left there when an error is redacted."""

    def configure_connection(self, conn: Any) -> None:
        for statement in self.statements:
            try:
                sql, params = bind_secret_placeholders(
                    statement, os.environ, engine=self.engine, operation="attach the Iceberg catalog"
                )
            except FloeError as exc:
                raise RuntimeError(exc.render()) from None
            try:
                if params:
                    conn.execute(sql, params)
                else:
                    conn.execute(sql)
            except Exception as exc:  # noqa: BLE001 - re-raised without the SQL or a secret
                verb = " ".join(statement.split()[:2])
                message = redact(
                    str(exc), params, [self.compute, self.engine, *self.names]
                )  # the bound values are the secrets
                raise RuntimeError(
                    f"compute {self.compute!r}: attaching the Iceberg catalog failed ({verb} …): {message}"
                ) from None
