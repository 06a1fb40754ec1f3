"""The hooks a compute engine implements: one per method of :class:`floe.ComputePlugin`.

An engine is a pluggy plugin registered under the entry-point group ``floe``. It may be a
:class:`floe.ComputePlugin` subclass (whose methods forward to these hooks) or a module of plain
functions marked with :data:`floe.hookimpl`; floe calls both the same way, one engine at a time,
so every hook is ``firstresult``.

This module holds only the specifications; the built-in engines in :mod:`floe.engines` implement
them exactly as a third-party engine does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floe._markers import hookspec
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, EngineInfo, ProfileTarget, ValidationResult


@hookspec(firstresult=True)
def floe_engine_info() -> EngineInfo:
    """Describe the engine: its name, version, API version and dbt adapter type.

    Called once when the plugin is loaded; an engine whose ``api_version`` differs from floe's is
    reported and not used.

    :returns: the engine's :class:`~floe.model.EngineInfo`.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_config_schema() -> Mapping[str, Any]:
    """Give the JSON Schema of the engine's ``config`` block in a manifest.

    floe validates every approved compute's ``config`` (and each environment's overrides) against
    it at compile time, so a mistyped setting fails with file and line instead of crashing dbt.

    :returns: a JSON Schema (draft 2020-12) for an object.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_generate_dbt_profile(compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
    """Build the dbt ``profiles.yml`` output for one compute in one environment (REQ-012).

    :param compute: the compute, with its settings merged for ``target.environment``.
    :param target: the environment and the data product's directories.
    :returns: a dbt output mapping with ``type``, ``threads`` and the schema/database keys the
        adapter needs; secrets only as ``{{ env_var('NAME') }}``.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_get_required_dbt_packages() -> list[str]:
    """List the Python packages the engine's dbt adapter needs, with bounds (REQ-017).

    :returns: PEP 508 requirement strings with lower and upper bounds, e.g.
        ``["dbt-duckdb>=1.11,<1.12"]``.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_validate_connection(
    compute: ComputeConfig, target: ProfileTarget, timeout: float
) -> ValidationResult:
    """Check that a transform could run on this compute now (REQ-014).

    floe enforces ``timeout`` itself as well; the hook should still bound its own network waits
    by it. Messages say what to fix and never contain a secret or a stack trace.

    :param compute: the compute to check.
    :param target: the environment and directories it would run in.
    :param timeout: seconds the check may take (at most 10).
    :returns: a :class:`~floe.model.ValidationResult`.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_get_resource_requirements(compute: ComputeConfig) -> dict[str, dict[str, str]]:
    """Give the engine's default Kubernetes ``requests`` and ``limits`` (REQ-015).

    floe applies the manifest's ``resources`` overrides on top and checks the result.

    :param compute: the compute the worker pod runs.
    :returns: ``{"requests": {...}, "limits": {...}}`` with Kubernetes quantities.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_get_catalog_attachment_sql(
    compute: ComputeConfig, catalog: CatalogConfig
) -> list[str] | None:
    """Give the SQL that attaches the engine to the Iceberg catalog (REQ-013).

    Identifiers and literals must be quoted so that no manifest value can change a statement;
    secrets appear only as ``{{ env_var('NAME') }}`` placeholders, rendered at execution time.

    :param compute: the compute to attach.
    :param catalog: the catalog every engine shares.
    :returns: the statements in order, or ``None`` when the engine attaches another way.

    This hook is ``firstresult``.
    """


@hookspec(firstresult=True)
def floe_translate_error(
    error: BaseException, compute: ComputeConfig | None
) -> PluginExecutionError | None:
    """Turn an engine exception into an actionable :class:`~floe.errors.PluginExecutionError`.

    :param error: what the engine's client raised.
    :param compute: the compute involved, when known.
    :returns: the translated error, or ``None`` to let floe report the error generically.

    This hook is ``firstresult``.
    """
