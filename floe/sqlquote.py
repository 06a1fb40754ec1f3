"""Quoting for SQL built from manifest values, so no value can change a statement."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier; embedded quotes are doubled, NUL is refused."""
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A single-quoted SQL string literal; embedded quotes are doubled, NUL is refused."""
    if "\x00" in value:
        raise ValueError("an SQL string cannot contain a NUL character")
    return "'" + value.replace("'", "''") + "'"
