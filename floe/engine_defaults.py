"""What an engine gets for each hook of :mod:`floe.hookspecs` that it does not implement.

A pluggy plugin of ``trylast`` hookimpls, registered with every engine: floe calls one engine at a
time (its own hookimpls and these), and every hook is ``firstresult``, so an engine's own answer
wins and an engine that declares nothing, or answers ``None``, gets the default.
:class:`floe.enginekit.ComputePlugin`'s methods for these hooks call the same functions, so a subclass can
extend a default with ``super()``.

The defaults let an engine's transforms run in ``floe run`` with no run hook at all: the compiled
profile, building into the run's namespace in the engine's own warehouse, in a forked worker. The
bridge hooks' defaults refuse (no generic way reads or loads an engine's tables): an engine that
says ``CatalogAccess.bridged`` implements them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floe._markers import hookimpl
from floe.errors import BrokenPluginError
from floe.model import CatalogAccess, CatalogConfig, ComputeConfig, Relation, WorkerSetup

if TYPE_CHECKING:
    import pyarrow

NAME = "floe-engine-defaults"
"""The name this plugin is registered under (it is not an engine)."""


@hookimpl(trylast=True)
def floe_config_schema() -> Mapping[str, Any]:
    """Any object: the engine checks its settings itself."""
    return {"type": "object"}


@hookimpl(trylast=True)
def floe_catalog_access(compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
    """The engine declares no way to attach an Iceberg catalog: it builds in its own warehouse."""
    return CatalogAccess.own_warehouse(
        f"engine {compute.engine} declares no way to attach an Iceberg catalog: its transforms build "
        "in its own warehouse"
    )


@hookimpl(trylast=True)
def floe_run_profile(
    compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
) -> dict[str, Any]:
    """The compiled profile, building into the run's namespace."""
    return {**profile, "schema": namespace}


@hookimpl(trylast=True)
def floe_run_project_config(compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
    """No project-level configs."""
    return {}


@hookimpl(trylast=True)
def floe_run_macro_paths(compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
    """No macros: the adapter's own materializations."""
    return []


@hookimpl(trylast=True)
def floe_run_worker(
    compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, environ: Mapping[str, str]
) -> WorkerSetup:
    """A worker forked from the run's fork server, with floe's environment."""
    return WorkerSetup()


@hookimpl(trylast=True)
def floe_read_arrow(compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
    """Nothing: the engine reads no table as Arrow (its ``floe_catalog_access`` must not say it does)."""
    raise _no_bridge(compute, "read_arrow", "read its tables as Arrow", "reads")


@hookimpl(trylast=True)
def floe_load_arrow(compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
    """Nothing: the engine loads no Arrow data (its ``floe_catalog_access`` must not say it does)."""
    raise _no_bridge(compute, "load_arrow", "load Arrow data into its tables", "loads")


def _no_bridge(compute: ComputeConfig, operation: str, what: str, flag: str) -> BrokenPluginError:
    return BrokenPluginError(
        compute.engine,
        operation,
        f"the engine has no floe_{operation} hook: floe cannot {what}",
        f"an engine says CatalogAccess.bridged({flag}=True) only with its floe_{operation} hook; "
        "fix the engine plugin",
        compute=compute.name,
    )
