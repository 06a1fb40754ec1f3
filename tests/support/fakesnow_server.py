"""``python tests/support/fakesnow_server.py -s --host H --port P``: fakesnow's server, with two answers
Snowflake gives that fakesnow 0.11.18 lacks.

fakesnow 0.11.18 is the last release on DuckDB 1.5.5, which floe pins (the DuckDB extensions on PyPI
pin it exactly). dbt-snowflake 1.12 loads a seed as ``BEGIN``, ``INSERT OVERWRITE INTO t … VALUES
…``, further ``INSERT INTO`` batches, ``COMMIT``. Against the 0.11.18 server:

- ``BEGIN`` runs, but the server then describes the statement's result by running
  ``DESCRIBE BEGIN`` and fails (``Table with name BEGIN does not exist``). Snowflake answers a
  ``BEGIN`` with one row, ``status = 'Statement executed successfully.'``; so does this launcher.
  (fakesnow answers ``COMMIT`` and ``ROLLBACK`` that way already; its later releases ``BEGIN`` too.)
- ``INSERT OVERWRITE INTO t …`` is handed to DuckDB as ``INSERT OVERWRITE TABLE``, a syntax error
  there. Snowflake truncates ``t`` and inserts the rows, in the statement's transaction; so does
  this launcher: ``DELETE FROM t`` then the plain ``INSERT``, reporting the rows inserted.

- ``ALTER TABLE a SWAP WITH b`` (how a load swaps a staged table in, atomically, on Snowflake) is a
  syntax error in DuckDB. Snowflake exchanges the two tables' contents; so does this launcher, with
  three renames in one DuckDB transaction.
- A ``NULL`` timestamp in a result arrives in the connector as 1970-01-01: fakesnow builds
  Snowflake's timestamp structs without the column's validity. Snowflake sends ``NULL``; so does
  this launcher (the same structs, with the nulls kept).

Everything else is fakesnow's own command line, unchanged.
"""

from __future__ import annotations

from typing import Any


def _add_snowflake_answers() -> None:
    import sqlglot
    from fakesnow.cursor import SQL_SUCCESS, FakeSnowflakeCursor
    from sqlglot import exp

    fakesnow_execute = FakeSnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            expression = sqlglot.parse_one(command, read="snowflake")
        except sqlglot.errors.ParseError:
            return fakesnow_execute(self, command, *args, **kwargs)  # fakesnow reports it
        if isinstance(expression, exp.Transaction):
            fakesnow_execute(self, command, *args, **kwargs)
            self._duck_conn.execute(SQL_SUCCESS)
            self._arrow_table = self._duck_conn.to_arrow_table()
            self._arrow_table_fetch_index = None
            self._rowcount = self._arrow_table.num_rows
            self._last_sql, self._last_params = SQL_SUCCESS, None
            return self
        swaps = [a for a in expression.args.get("actions") or [] if isinstance(a, exp.SwapTable)]
        if isinstance(expression, exp.Alter) and swaps:
            first, second = expression.this, swaps[0].this
            parked = first.copy()
            parked.set("this", exp.to_identifier(f"{first.name}__swap"))
            self._duck_conn.execute("BEGIN TRANSACTION")
            try:
                for old, new in ((first, parked), (second, first), (parked, second)):
                    fakesnow_execute(
                        self,
                        f"ALTER TABLE {old.sql(dialect='snowflake')} RENAME TO {new.sql(dialect='snowflake')}",
                    )
            except BaseException:
                self._duck_conn.execute("ROLLBACK")
                raise
            self._duck_conn.execute("COMMIT")
            self._duck_conn.execute(SQL_SUCCESS)
            self._arrow_table = self._duck_conn.to_arrow_table()
            self._arrow_table_fetch_index = None
            self._rowcount = self._arrow_table.num_rows
            self._last_sql, self._last_params = SQL_SUCCESS, None
            return self
        if isinstance(expression, exp.Insert) and expression.args.get("overwrite"):
            table = expression.this.this if isinstance(expression.this, exp.Schema) else expression.this
            unbound = {k: v for k, v in kwargs.items() if k != "binding_params"}
            fakesnow_execute(self, exp.delete(table.copy()).sql(dialect="snowflake"), **unbound)
            expression.set("overwrite", None)
            return fakesnow_execute(self, expression.sql(dialect="snowflake"), *args, **kwargs)
        return fakesnow_execute(self, command, *args, **kwargs)

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]

    import fakesnow.arrow
    import pyarrow

    to_struct = fakesnow.arrow.timestamp_to_sf_struct

    def with_nulls(ts: Any) -> Any:
        if isinstance(ts, pyarrow.ChunkedArray):
            ts = ts.combine_chunks()
        struct = to_struct(ts.fill_null(0) if ts.null_count else ts)
        if not ts.null_count:
            return struct
        return pyarrow.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=ts.is_null())

    fakesnow.arrow.timestamp_to_sf_struct = with_nulls


if __name__ == "__main__":
    import fakesnow.cli

    _add_snowflake_answers()
    fakesnow.cli.main()
