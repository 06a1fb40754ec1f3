"""The engine kit: the one module an engine author imports.

A compute engine for floe (built in, or shipped as its own distribution, such as
``examples/floe-engine-postgres``) needs the interface (:class:`ComputePlugin`, :data:`hookimpl`),
the values floe passes it (:class:`ComputeConfig`, :class:`CatalogConfig`…), the errors it raises,
the frame of a connection check (:func:`run_check`), and a handful of helpers every engine
otherwise writes again: secret references turned into dbt's ``{{ env_var('NAME') }}`` or read
from the environment, the walk over an exception's causes, and the shape of a translated client
error, and for an engine whose tables floe bridges (``floe_read_arrow``, ``floe_load_arrow``), each
column's SQL type for an Arrow schema (:func:`sql_columns`), the error that names a column whose
type cannot cross (:func:`type_error`) and the staging name a load swaps in (:func:`staging_name`).
They live here once; the built-in engines use them exactly as a third party does.

Named *kit* for what it is to an engine author (everything needed to build an engine, in one
place), and distinct from :mod:`floe.engines`, the package of the built-in engines, and
:mod:`floe.testing`, the compliance suite an engine's tests adopt. Importing it is cheap: it
imports no dbt, no driver, no JSON Schema library.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, overload

from floe._markers import API_VERSION, hookimpl
from floe.compute import ComputePlugin
from floe.connection_check import Progress, first_line, first_lines, run_check
from floe.errors import FloeError, PluginExecutionError, Problem, UnattachableCatalog
from floe.model import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    EngineInfo,
    ProfileTarget,
    Relation,
    ResourceOverrides,
    SecretReference,
    ValidationResult,
    WorkerSetup,
)
from floe.secrets import PLAIN_NAME, find_secret_refs, floe_names, is_credential_key, redact, secret_values
from floe.sqlquote import quote_backslash_literal, quote_identifier, quote_literal
from floe.sqlsecrets import PLACEHOLDER, bind_secret_placeholders, jinja_string, render_secret_placeholders

__all__ = [
    "API_VERSION",
    "CAUSE_LIMIT",
    "PLACEHOLDER",
    "PLAIN_NAME",
    "STAGING_SUFFIX",
    "Advice",
    "CatalogAccess",
    "CatalogConfig",
    "ComputeConfig",
    "ComputePlugin",
    "EngineInfo",
    "FloeError",
    "PluginExecutionError",
    "Problem",
    "ProfileTarget",
    "Progress",
    "Relation",
    "ResourceOverrides",
    "SecretReference",
    "UnattachableCatalog",
    "ValidationResult",
    "WorkerSetup",
    "bind_secret_placeholders",
    "compute_secrets",
    "engine_error",
    "exception_chain",
    "find_secret_refs",
    "first_line",
    "first_lines",
    "floe_names",
    "hookimpl",
    "is_credential_key",
    "jinja_string",
    "quote_backslash_literal",
    "quote_identifier",
    "quote_literal",
    "redact",
    "render_secret_placeholders",
    "run_check",
    "secret_placeholder",
    "secret_reference",
    "secret_value",
    "secret_values",
    "sql_columns",
    "staging_name",
    "translate_client_error",
    "type_error",
]

Advice = tuple[str, str, str]
"""What an engine says about an error it recognised: ``(operation, message, fix)``."""

CAUSE_LIMIT = 64
"""The most exceptions :func:`exception_chain` walks (a chain that long is a loop in disguise)."""


# -- secrets -------------------------------------------------------------------------------------


@overload
def secret_reference(
    engine: str,
    compute: ComputeConfig,
    key: str,
    operation: str,
    *,
    required: Literal[True],
    example: str = ...,
) -> SecretReference: ...


@overload
def secret_reference(
    engine: str,
    compute: ComputeConfig,
    key: str,
    operation: str,
    *,
    required: bool = False,
    example: str = ...,
) -> SecretReference | None: ...


def secret_reference(
    engine: str,
    compute: ComputeConfig,
    key: str,
    operation: str,
    *,
    required: bool = False,
    example: str = "MY_SECRET",
) -> SecretReference | None:
    """The :class:`SecretReference` a compute's setting ``key`` holds; ``None`` when it is unset.

    :param example: a variable name the fix suggests (``SNOWFLAKE_PASSWORD``).
    :raises PluginExecutionError: the setting holds a literal value, its variable name is not a
        plain environment variable name, or it is unset and ``required``.
    """
    value = compute.config.get(key)
    if value is None:
        if not required:
            return None
        raise PluginExecutionError(
            engine,
            operation,
            f"{key} is required and not set",
            f"set {key}: {{secret_ref: NAME}} and set NAME in the environment",
            compute=compute.name,
        )
    if not isinstance(value, SecretReference):
        raise PluginExecutionError(
            engine,
            operation,
            f"{key} must be a secret reference, not a value",
            f"write {key}: {{secret_ref: NAME}} and set NAME in the environment",
            compute=compute.name,
        )
    _check_name(engine, value, compute, operation, example)
    return value


def secret_placeholder(
    engine: str, ref: SecretReference, compute: ComputeConfig, operation: str, *, example: str = "MY_SECRET"
) -> str:
    """``{{ env_var('NAME') }}``, what dbt renders from the environment at run time, once ``NAME``
    is known to be a plain variable name (a profile must never hold a secret's value).

    :raises PluginExecutionError: the name is not an environment variable name.
    """
    return _check_name(engine, ref, compute, operation, example).as_env_var()


def secret_value(
    engine: str,
    ref: SecretReference,
    compute: ComputeConfig,
    operation: str,
    *,
    what: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The value of the secret ``ref`` names, read from the environment (for a connection check).

    :param what: what the secret is, for the message (``"password"``).
    :raises PluginExecutionError: the variable is unset or empty; the message names the variable,
        never a value.
    """
    value = (os.environ if environ is None else environ).get(ref.name)
    if not value:
        named = f"{ref.name} ({what})" if what else ref.name
        raise PluginExecutionError(
            engine,
            operation,
            f"the secret environment variable {named} is not set",
            f"set {ref.name} in the environment floe and dbt run in (from your secret store)",
            compute=compute.name,
        )
    return value


def compute_secrets(compute: ComputeConfig | None) -> list[str]:
    """The values, as now set, of every secret ``compute`` references: what to redact."""
    return secret_values(find_secret_refs(compute.config)) if compute is not None else []


def _check_name(
    engine: str, ref: SecretReference, compute: ComputeConfig, operation: str, example: str
) -> SecretReference:
    if not PLAIN_NAME.fullmatch(ref.name):
        raise PluginExecutionError(
            engine,
            operation,
            f"secret reference {ref.name!r} is not an environment variable name",
            f"name secrets with letters, digits and underscores, such as {example}",
            compute=compute.name,
        )
    return ref


# -- errors --------------------------------------------------------------------------------------


def exception_chain(error: BaseException, limit: int = CAUSE_LIMIT) -> Iterator[BaseException]:
    """``error``, then what caused it (``__cause__``, else ``__context__``), and so on, each once.

    dbt and the drivers wrap the error that matters: an engine recognises its client's error
    anywhere in the chain, by class module and name, without importing the client.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def engine_error(
    engine: str, compute: ComputeConfig | None, advice: Advice, cause: str | None = None
) -> PluginExecutionError:
    """The :class:`PluginExecutionError` of an engine's ``advice`` on an error, with the value of
    every secret the compute references redacted from the message, the fix and the cause."""
    secrets = compute_secrets(compute)
    keep = floe_names(compute) if compute is not None else []
    operation, message, fix = advice
    return PluginExecutionError(
        engine,
        operation,
        redact(message, secrets, keep),
        redact(fix, secrets, keep),
        compute=compute.name if compute is not None else None,
        cause=redact(cause, secrets, keep) if cause is not None else None,
    )


def translate_client_error(
    engine: str,
    error: BaseException,
    compute: ComputeConfig | None,
    find: Callable[[BaseException], tuple[list[str], str] | None],
    advise: Callable[[list[str], str, ComputeConfig | None], Advice | None],
) -> PluginExecutionError | None:
    """A ``translate_error`` in one call: find the client's error, advise on it, shape the result.

    :param find: the class names and text of the engine client's error in ``error`` (or its
        causes, see :func:`exception_chain`), or ``None`` when there is none.
    :param advise: what to say about it, given the class names and the text with secrets redacted;
        ``None`` when the engine does not recognise it.
    :returns: the translated error (its ``cause``, the first line of the text), or ``None``.
    """
    found = find(error)
    if found is None:
        return None
    classes, text = found
    text = redact(text, compute_secrets(compute), floe_names(compute) if compute is not None else [])
    advice = advise(classes, text, compute)
    if advice is None:
        return None
    return engine_error(engine, compute, advice, first_line(text)[:300])


# -- bridges: carrying tables between the catalog and the engine's warehouse -----------------------

STAGING_SUFFIX = "__floe_load"


def staging_name(identifier: str, limit: int = 63) -> str:
    """The name a load writes to before it swaps the table in: ``<identifier>__floe_load``, cut to
    ``limit`` characters (PostgreSQL's is 63) so that it stays a valid name of the same schema."""
    return identifier[: max(1, limit - len(STAGING_SUFFIX))] + STAGING_SUFFIX


def type_error(
    engine: str,
    compute: ComputeConfig,
    relation: Relation | str,
    column: str,
    source: str,
    target: str,
    why: str,
    fix: str,
) -> PluginExecutionError:
    """The error of a column whose type cannot cross a bridge without changing its values.

    :param source: the column's type where it comes from (``Arrow decimal256(50, 2)``).
    :param target: the type it would become, or the nearest the engine has (``NUMBER(38, 2)``).
    :param why: why it cannot (``Snowflake numbers have at most 38 digits``).
    """
    return PluginExecutionError(
        engine,
        "bridge",
        f"column {column!r} of {relation}: {source} cannot become {target}: {why}",
        fix,
        compute=compute.name,
    )


def sql_columns(
    engine: str,
    compute: ComputeConfig,
    relation: Relation | str,
    schema: Any,
    sql_type: Callable[[Any], str | None],
    fix: str,
) -> list[tuple[str, str]]:
    """``(name, SQL type)`` of each column of the Arrow ``schema``: the table a load creates.

    :param sql_type: the engine's type for an Arrow type (``decimal128(10, 2)`` →
        ``NUMERIC(10, 2)``), or ``None`` when it has none that keeps every value.
    :raises PluginExecutionError: a column has none (:func:`type_error`, naming it), before
        anything is written.
    """
    columns = []
    for field in schema:
        found = sql_type(field.type)
        if found is None:
            raise type_error(
                engine,
                compute,
                relation,
                field.name,
                f"Arrow {field.type}",
                f"a {engine} type",
                f"{engine} has no type that keeps every value of it",
                fix,
            )
        columns.append((str(field.name), found))
    return columns
