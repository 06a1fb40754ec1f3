"""The hooks a compute engine implements: the engine interface, declared here once.

An engine is a pluggy plugin registered under the entry-point group ``floe``. It may be a
:class:`floe.enginekit.ComputePlugin` subclass (each of its methods is wired to the hook of the same
name without the ``floe_`` prefix) or a module of plain functions marked with
:data:`floe.enginekit.hookimpl`; floe calls both the same way, one engine at a time, so every hook
is ``firstresult``.

Hooks marked ``required`` must be implemented by every engine; the others have a default, written
in :mod:`floe.engine_defaults`, that an engine declaring nothing gets (an implementation returning
``None`` gets it too). The hooks under "Running" are what ``floe plan`` and ``floe run`` ask of an
engine: with the defaults alone, an engine's transforms run in ``floe run``, building into its own
warehouse under the run's namespace. The hooks under "Bridging" (``floe_read_arrow``,
``floe_load_arrow``) let floe carry tables between such a warehouse and the catalog, so that a ref
between it and any other compute works.

This module holds only the specifications; the built-in engines in :mod:`floe.engines` implement
them exactly as a third-party engine does (see :mod:`floe.enginekit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floe._markers import engine_hookspec
from floe.errors import PluginExecutionError
from floe.model import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    EngineInfo,
    ProfileTarget,
    Relation,
    ValidationResult,
    WorkerSetup,
)

if TYPE_CHECKING:
    import pyarrow


@engine_hookspec(required=True)
def floe_engine_info() -> EngineInfo:
    """Describe the engine: its name, version, API version and dbt adapter type.

    Called once when the plugin is loaded; an engine whose ``api_version`` differs from floe's is
    reported and not used.

    :returns: the engine's :class:`~floe.model.EngineInfo`.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_config_schema() -> Mapping[str, Any]:
    """Give the JSON Schema of the engine's ``config`` block in a manifest.

    floe validates every approved compute's ``config`` (and each environment's overrides) against
    it at compile time, so a mistyped setting fails with file and line instead of crashing dbt.

    :returns: a JSON Schema (draft 2020-12) for an object. Default: any object.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=True)
def floe_generate_dbt_profile(compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
    """Build the dbt ``profiles.yml`` output for one compute in one environment (REQ-012).

    :param compute: the compute, with its settings merged for ``target.environment``.
    :param target: the environment and the data product's directories.
    :returns: a dbt output mapping with ``type``, ``threads`` and the schema/database keys the
        adapter needs; secrets only as ``{{ env_var('NAME') }}``.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=True)
def floe_get_required_dbt_packages() -> list[str]:
    """List the Python packages the engine's dbt adapter needs, with bounds (REQ-017).

    :returns: PEP 508 requirement strings with lower and upper bounds, e.g.
        ``["dbt-duckdb>=1.11,<1.12"]``.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=True)
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


@engine_hookspec(required=True)
def floe_get_resource_requirements(compute: ComputeConfig) -> dict[str, dict[str, str]]:
    """Give the engine's default Kubernetes ``requests`` and ``limits`` (REQ-015).

    floe applies the manifest's ``resources`` overrides on top and checks the result.

    :param compute: the compute the worker pod runs.
    :returns: ``{"requests": {...}, "limits": {...}}`` with Kubernetes quantities.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=True)
def floe_get_catalog_attachment_sql(compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
    """Give the SQL that attaches the engine to the Iceberg catalog (REQ-013).

    Identifiers and literals must be quoted so that no manifest value can change a statement;
    secrets appear only as ``{{ env_var('NAME') }}`` placeholders, rendered at execution time.

    :param compute: the compute to attach.
    :param catalog: the catalog every engine shares.
    :returns: the statements in order, or ``None`` when the engine attaches another way.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_translate_error(error: BaseException, compute: ComputeConfig | None) -> PluginExecutionError | None:
    """Turn an engine exception into an actionable :class:`~floe.errors.PluginExecutionError`.

    :param error: what the engine's client raised.
    :param compute: the compute involved, when known.
    :returns: the translated error, or ``None`` to let floe report the error generically (the
        default).

    This hook is ``firstresult``.
    """


# -- Running: what `floe plan` and `floe run` ask of an engine -------------------------------------


@engine_hookspec(required=False)
def floe_catalog_access(compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
    """Say whether this compute's dbt worker reads and writes the catalog's Iceberg tables in place.

    ``floe plan`` (and ``floe run``, before it takes the lock) asks every compute the run uses, to
    decide how each ref from one compute to another is crossed: a ref between two computes whose
    workers both attach the catalog in place reads the upstream table where it is; a ref nothing
    can satisfy is an error before anything starts. The hook must not connect to anything.

    :param compute: the compute, with its settings for the run's environment.
    :param catalog: the run's catalog: the manifest's, or the embedded one (a REST catalog named
        ``floe`` on 127.0.0.1).
    :returns: :meth:`CatalogAccess.attached <floe.model.CatalogAccess.attached>` when the worker
        attaches the catalog under its name (:func:`floe_run_profile` then writes how);
        :meth:`CatalogAccess.bridged <floe.model.CatalogAccess.bridged>` when it builds in the
        engine's own warehouse and floe can carry tables between that warehouse and the catalog
        through the engine's :func:`floe_read_arrow` and :func:`floe_load_arrow` (a ref between it
        and any other compute is then bridged); or
        :meth:`CatalogAccess.own_warehouse <floe.model.CatalogAccess.own_warehouse>` when the
        engine has no way to: its transforms run, building in its own warehouse, and a ref between
        them and another compute's is an error of the plan. Default: own warehouse.
    :raises floe.errors.UnattachableCatalog: the engine attaches catalogs, but not this one (a
        type or a name it cannot use); floe locates it at the ``$.catalog`` key it names.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_run_profile(
    compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
) -> dict[str, Any]:
    """Change the compiled dbt output into the one a transform on this compute runs with.

    Every transform of a run builds into one namespace (dbt schema), ``<product>_<environment>``;
    an engine that attaches the catalog in place also makes the catalog the target database, so
    that a model is ``<catalog>.<namespace>.<model>`` on every engine.

    :param compute: the compute, with its settings for the run's environment.
    :param profile: a copy of the compute's compiled output (:func:`floe_generate_dbt_profile`)
        for the run's environment; the hook may change and return it.
    :param catalog: the run's catalog, as the workers reach it (the embedded one's ``uri`` names
        the port it serves on).
    :param namespace: the schema the run builds into.
    :returns: the run's dbt output; secrets only as ``{{ env_var('NAME') }}``. Default:
        ``profile`` with ``schema`` set to ``namespace``.
    :raises floe.errors.UnattachableCatalog: as :func:`floe_catalog_access`.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_run_project_config(compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
    """Give project-level dbt configs the run's dbt project sets for this compute's transforms.

    They go into the ``dbt_project.yml`` floe generates from the user's, under each resource key
    (``models``, ``seeds``, ``snapshots``…), where the user's project sets nothing: the user's
    configs win. Spark's ``+file_format: iceberg`` is one.

    :param compute: the compute, with its settings for the run's environment.
    :param catalog: the run's catalog.
    :returns: ``{resource key: {config: value}}``. Default: nothing.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_run_macro_paths(compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
    """Give folders of dbt macros the run's dbt project adds for this compute's transforms.

    Their ``.sql`` files are copied into the generated project's own macro folder, so they are
    root-project macros: a materialization there takes precedence over the adapter's (an engine
    whose Iceberg support cannot rename a table, say, brings a ``table`` materialization that does
    not). File names must be the engine's own (prefix them with the engine's name).

    :param compute: the compute, with its settings for the run's environment.
    :param catalog: the run's catalog.
    :returns: existing folders. Default: none.

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_run_worker(
    compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, environ: Mapping[str, str]
) -> WorkerSetup:
    """Say how the dbt worker process of this compute starts.

    ``floe run`` runs the transforms of each compute in one worker process that imports dbt and
    parses the project once. Where it can, it forks the workers from a server that imported dbt
    once; an engine may refuse the fork, add to the worker's environment, and name a module the
    worker runs before dbt (to start a slow session while dbt parses, say).

    :param compute: the compute, with its settings for the run's environment.
    :param profile: the run's dbt output for the compute (:func:`floe_run_profile`).
    :param catalog: the run's catalog.
    :param environ: the environment the worker inherits (floe's own, with the secrets).
    :returns: a :class:`~floe.model.WorkerSetup`. Default: forkable, nothing added.

    This hook is ``firstresult``.
    """


# -- Bridging: carrying a table between the catalog and an engine's own warehouse ------------------


@engine_hookspec(required=False)
def floe_read_arrow(compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
    """Read a table of this compute's warehouse as Arrow, through the engine's own client.

    Called by ``floe run`` for an engine whose :func:`floe_catalog_access` says
    ``CatalogAccess.bridged(reads=True)``: after a transform on this compute built a model that a
    transform on another compute refs, floe reads it with this hook and commits it into the
    catalog as ``<catalog>.<schema>.<identifier>`` (one Iceberg commit), where every other engine
    reads it. Read in bulk (the client's Arrow fetch, ``COPY``…), not row by row.

    Column types must say what the engine stores: integers as Arrow integers, ``DECIMAL(p, s)``
    as ``decimal128(p, s)``, dates, timestamps with and without time zone as Arrow timestamps with
    and without one, strings, booleans; column names as the engine's SQL writes them unquoted
    (lower case where it folds names to upper case). A column with no such Arrow type fails, naming
    the column and its type (see :func:`floe.enginekit.type_error`). Secrets come from the
    environment, as in :func:`floe_validate_connection`.

    :param compute: the compute, with its settings for the run's environment.
    :param relation: the model as dbt built it there.
    :returns: the table's rows, as a ``pyarrow.Table``.
    :raises floe.errors.PluginExecutionError: it could not be read; say why and what to fix.
        Default: raises (the engine reads nothing as Arrow).

    This hook is ``firstresult``.
    """


@engine_hookspec(required=False)
def floe_load_arrow(compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
    """Load ``data`` into a table of this compute's warehouse, replacing what it holds.

    Called by ``floe run`` for an engine whose :func:`floe_catalog_access` says
    ``CatalogAccess.bridged(loads=True)``: before a transform on this compute builds, each model of
    another compute that it refs is read from the catalog (its current snapshot) and loaded with
    this hook into ``relation``, the relation ``ref()`` resolves to in this compute's dbt project.

    Load in bulk through the engine's own path (its client's Arrow ingest, ``COPY``, a stage and
    ``COPY INTO``…), never with row-by-row ``INSERT``. Load into a staging table and swap it in, so
    that the relation is never seen half loaded: when ``data`` fails part way (it is a stream), the
    relation keeps what it held. Create the schema when it is missing.

    Every column keeps its type (integers, ``decimal128(p, s)`` as ``DECIMAL(p, s)``, dates,
    timestamps with and without time zone, strings, booleans, nulls) or the load fails before the
    swap, naming the column, its Arrow type and the engine's (:func:`floe.enginekit.type_error`).

    :param compute: the compute, with its settings for the run's environment.
    :param relation: where to load, as the compute's dbt project names it.
    :param data: the rows, as a stream of record batches (``data.schema`` is known first).
    :returns: the number of rows the relation holds now.
    :raises floe.errors.PluginExecutionError: it could not be loaded; say why and what to fix.
        Default: raises (the engine loads nothing from Arrow).

    This hook is ``firstresult``.
    """
