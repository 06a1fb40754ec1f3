"""floe: run each dbt transform on the compute engine that suits it, under one governance model.

Public modules — the only ones a program, an engine or a test suite outside floe imports:

- ``floe``: the embedding API. :func:`compile`, :func:`plan`, :func:`run` and :func:`explain` a
  data product; the answers they give (:class:`Compiled`, :class:`RunPlan`, :class:`RunReport`,
  :class:`Explanation`) and the errors they raise (:class:`FloeError` and its kinds); and
  :data:`hookimpl`, the marker of an engine's hooks, here as in pytest and llm (the same object
  as ``floe.enginekit.hookimpl``).
- ``floe.enginekit``: everything an engine author imports, in one module: the interface
  (``ComputePlugin``, ``hookimpl``), the values floe passes an engine, its errors and helpers.
- ``floe.hookspecs``: the one declaration of the engine hooks, read by engine authors
  (implemented through ``floe.enginekit``; never imported by an engine).
- ``floe.testing``: the compliance suite an engine's tests adopt.

Every other module of the package (``floe.compiler``, ``floe.governance``, ``floe.execution``…)
is internal: what it holds can change in any release. The names of the public modules are held
by ``tests/test_public_surface.py``, with their signatures, so that a change to them is deliberate.

The API is imported lazily so that ``import floe`` (and the CLI's start-up) stays cheap and never
pulls in dbt, pyspark, pyiceberg or a cloud connector.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "hookimpl": "floe._markers",
    "compile": "floe.api",
    "plan": "floe.api",
    "run": "floe.api",
    "explain": "floe.explanation",
    "write_artifacts": "floe.compiled",
    "Compiled": "floe.compiled",
    "ChainLevel": "floe.compiled",
    "Explanation": "floe.explanation",
    "RunPlan": "floe.execution.plan",
    "RunReport": "floe.execution.report",
    "RunObserver": "floe.execution.observers",
    "EngineRegistry": "floe.plugins",
    "CatalogConfig": "floe.model",
    "ComputeConfig": "floe.model",
    "SecretReference": "floe.model",
    "FloeError": "floe.errors",
    "ManifestError": "floe.errors",
    "GovernanceError": "floe.errors",
    "InvalidComputeError": "floe.errors",
    "EnvironmentParityError": "floe.errors",
    "PluginExecutionError": "floe.errors",
    "Problem": "floe.errors",
}

__all__ = [
    "CatalogConfig",
    "ChainLevel",
    "Compiled",
    "ComputeConfig",
    "EngineRegistry",
    "EnvironmentParityError",
    "Explanation",
    "FloeError",
    "GovernanceError",
    "InvalidComputeError",
    "ManifestError",
    "PluginExecutionError",
    "Problem",
    "RunObserver",
    "RunPlan",
    "RunReport",
    "SecretReference",
    "__version__",
    "compile",
    "explain",
    "hookimpl",
    "plan",
    "run",
    "write_artifacts",
]

if TYPE_CHECKING:
    from floe._markers import hookimpl
    from floe.api import compile, plan, run
    from floe.compiled import ChainLevel, Compiled, write_artifacts
    from floe.errors import (
        EnvironmentParityError,
        FloeError,
        GovernanceError,
        InvalidComputeError,
        ManifestError,
        PluginExecutionError,
        Problem,
    )
    from floe.execution.observers import RunObserver
    from floe.execution.plan import RunPlan
    from floe.execution.report import RunReport
    from floe.explanation import Explanation, explain
    from floe.model import CatalogConfig, ComputeConfig, SecretReference
    from floe.plugins import EngineRegistry


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'floe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
