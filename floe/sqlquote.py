"""Quoting for SQL built from manifest values, so no value can change a statement.

Every name or value floe writes into SQL text goes through one of these functions; none is ever
formatted in bare. Dialects disagree on one point that matters: whether a backslash inside a
string literal escapes the next character.

- :func:`quote_literal` is the SQL standard's literal (only a doubled quote is special): DuckDB,
  Trino, and PostgreSQL (``standard_conforming_strings``, on by default since 9.1).
- :func:`quote_backslash_literal` is for dialects that read backslash escapes in literals
  (Snowflake, Redshift, Spark SQL, Databricks, BigQuery): there, the standard literal of a value
  ending in ``\\`` would leave the string open, and the rest of the statement inside it.
- :func:`quote_identifier` is the double-quoted identifier of DuckDB, Trino, PostgreSQL, Redshift
  and Snowflake (a backslash is never special inside it).

Where a driver binds parameters on the server, floe passes values as parameters instead, which
needs no quoting at all (Redshift, PostgreSQL, DuckDB's secrets: see :mod:`floe.sqlsecrets`).

Values that no dialect can hold in a statement are refused with :class:`ValueError`, which callers
turn into a floe error naming the setting: a NUL character (C-string based parsers end the
statement there) and lone surrogates (not encodable as the UTF-8 the statement is sent in).
"""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier; embedded quotes are doubled, NUL is refused."""
    _check(name, "an SQL identifier")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A standard SQL string literal (DuckDB, Trino, PostgreSQL): embedded quotes are doubled."""
    _check(value, "an SQL string")
    return "'" + value.replace("'", "''") + "'"


def quote_backslash_literal(value: str) -> str:
    """A string literal for dialects where a backslash escapes (Snowflake, Redshift, Spark SQL).

    Backslashes are doubled and quotes written ``\\'``, which every such dialect reads as one
    quote (Spark SQL and BigQuery do not accept a doubled quote inside a literal).
    """
    _check(value, "an SQL string")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check(text: str, what: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{what} cannot contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} cannot contain a lone surrogate (it is not valid Unicode)") from None
