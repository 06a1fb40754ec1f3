"""Filling ``{{ env_var('NAME') }}`` secret placeholders into SQL at the last moment.

Engines build SQL (catalog attachments, ``CREATE SECRET``…) with secrets as placeholders, so the
SQL can be logged, stored and compared without holding a credential. Right before the SQL runs,
:func:`render_secret_placeholders` replaces each placeholder by the secret's value as a quoted SQL
string literal.

Only placeholders in SQL code are replaced: text inside string literals, quoted identifiers and
comments is copied as is, so a value a manifest quoted (a catalog name, a warehouse) can never be
turned into a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from floe.errors import PluginExecutionError
from floe.sqlquote import quote_literal

PLACEHOLDER = re.compile(r"\{\{\s*env_var\(\s*'(?P<name>[A-Za-z_][A-Za-z0-9_]*)'\s*\)\s*\}\}")
"""``{{ env_var('NAME') }}``, as :meth:`floe.model.SecretReference.as_env_var` writes it."""


def render_secret_placeholders(
    sql: str,
    environ: Mapping[str, str],
    *,
    engine: str,
    operation: str = "render secrets into SQL",
) -> str:
    """``sql`` with each placeholder outside quotes and comments replaced by its quoted value.

    :param sql: SQL holding ``{{ env_var('NAME') }}`` placeholders where a string literal belongs.
    :param environ: where the values are read (usually ``os.environ``).
    :param engine: the engine whose SQL it is (its errors name it).
    :raises PluginExecutionError: a referenced variable is unset or empty, or its value cannot be
        an SQL string (it holds a NUL character or a lone surrogate); the error names the
        variable, never its value.
    """
    return _replace_placeholders(sql, lambda name: _literal(name, environ, engine, operation))


def bind_secret_placeholders(
    sql: str,
    environ: Mapping[str, str],
    *,
    engine: str,
    operation: str = "bind secrets into SQL",
) -> tuple[str, list[str]]:
    """``sql`` with each placeholder outside quotes and comments replaced by a ``?`` parameter.

    Preferred over :func:`render_secret_placeholders` wherever the engine takes parameters: the
    statement text, which an engine may log (DuckDB's query log), then never holds the secret.

    :returns: the statement and the parameter values, in order.
    :raises PluginExecutionError: as :func:`render_secret_placeholders`.
    """
    params: list[str] = []

    def bind(name: str) -> str:
        _literal(name, environ, engine, operation)  # the same checks as for a literal
        params.append(environ[name])
        return "?"

    return _replace_placeholders(sql, bind), params


def jinja_string(text: str) -> str:
    """A Jinja expression that renders to exactly ``text``: how SQL crosses dbt's profile rendering.

    dbt renders every string of a profile with Jinja before an adapter sees it. Statements written
    there keep their placeholders for :func:`bind_secret_placeholders`, and their values (a uri, a
    warehouse) must not be read as Jinja: a ``{% raw %}`` block ends at the first ``{% endraw %}``
    a value holds, and turns ``\\r\\n`` into ``\\n``. Inside a Jinja string literal nothing is
    evaluated; the quote, the backslash and every character outside printable ASCII are written as
    escapes, which Jinja decodes back to the character.
    """
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\' or not 0x20 <= code < 0x7F:
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return '{{ "' + "".join(out) + '" }}'


def _replace_placeholders(sql: str, replace: Callable[[str], str]) -> str:
    """``sql`` with ``replace(name)`` for each placeholder outside quotes and comments."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = _end_of_quoted(sql, i, ch)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            end = n if close < 0 else close + 2
        elif ch == "{" and (match := PLACEHOLDER.match(sql, i)):
            out.append(replace(match["name"]))
            i = match.end()
            continue
        else:
            end = i + 1
        out.append(sql[i:end])
        i = end
    return "".join(out)


def _end_of_quoted(sql: str, start: int, quote: str) -> int:
    """Index just past the quoted text opening at ``start`` (a doubled quote does not close it)."""
    i = start + 1
    while True:
        close = sql.find(quote, i)
        if close < 0:
            return len(sql)
        if sql.startswith(quote * 2, close):
            i = close + 2
            continue
        return close + 1


def _literal(name: str, environ: Mapping[str, str], engine: str, operation: str) -> str:
    value = environ.get(name)
    if not value:
        raise PluginExecutionError(
            engine,
            operation,
            f"the secret environment variable {name} is not set",
            f"set {name} in the environment floe runs in (for Kubernetes, from the secret of the same name)",
        )
    try:
        return quote_literal(value)
    except ValueError:
        raise PluginExecutionError(
            engine,
            operation,
            f"the value of the environment variable {name} cannot be an SQL string (it holds a NUL "
            f"character or invalid Unicode)",
            f"check the secret behind {name}",
        ) from None
