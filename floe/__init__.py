"""floe: run each dbt transform on the compute engine that suits it, under one governance model.

The public API is imported lazily so that ``import floe`` (and the CLI's start-up) stays cheap and
never pulls in dbt, pyspark, pyiceberg or a cloud connector.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "hookimpl": "floe._markers",
    "API_VERSION": "floe._markers",
    "ComputePlugin": "floe.compute",
    "CatalogConfig": "floe.model",
    "ComputeConfig": "floe.model",
    "EngineInfo": "floe.model",
    "ProfileTarget": "floe.model",
    "ResourceOverrides": "floe.model",
    "SecretReference": "floe.model",
    "ValidationResult": "floe.model",
    "FloeError": "floe.errors",
    "ManifestError": "floe.errors",
    "GovernanceError": "floe.errors",
    "InvalidComputeError": "floe.errors",
    "EnvironmentParityError": "floe.errors",
    "PluginExecutionError": "floe.errors",
    "PluginLoadError": "floe.errors",
    "Problem": "floe.errors",
    "ComputeRegistry": "floe.governance",
    "EngineRegistry": "floe.plugins",
    "compile_path": "floe.compiler",
    "Compiled": "floe.compiler",
    "explain": "floe.explanation",
    "Explanation": "floe.explanation",
    "ChainLevel": "floe.compiler",
    "write_artifacts": "floe.compiler",
    "plan": "floe.api",
    "run": "floe.api",
    "RunPlan": "floe.execution.plan",
    "RunReport": "floe.execution.report",
}

__all__ = [
    "API_VERSION",
    "CatalogConfig",
    "ChainLevel",
    "Compiled",
    "ComputeConfig",
    "ComputePlugin",
    "ComputeRegistry",
    "EngineInfo",
    "EngineRegistry",
    "EnvironmentParityError",
    "Explanation",
    "FloeError",
    "GovernanceError",
    "InvalidComputeError",
    "ManifestError",
    "PluginExecutionError",
    "PluginLoadError",
    "Problem",
    "ProfileTarget",
    "ResourceOverrides",
    "RunPlan",
    "RunReport",
    "SecretReference",
    "ValidationResult",
    "__version__",
    "compile_path",
    "explain",
    "hookimpl",
    "plan",
    "run",
    "write_artifacts",
]

if TYPE_CHECKING:
    from floe._markers import API_VERSION, hookimpl
    from floe.api import plan, run
    from floe.compiler import ChainLevel, Compiled, compile_path, write_artifacts
    from floe.compute import ComputePlugin
    from floe.errors import (
        EnvironmentParityError,
        FloeError,
        GovernanceError,
        InvalidComputeError,
        ManifestError,
        PluginExecutionError,
        PluginLoadError,
        Problem,
    )  # fmt: skip
    from floe.execution.plan import RunPlan
    from floe.execution.report import RunReport
    from floe.explanation import Explanation, explain
    from floe.governance import ComputeRegistry
    from floe.model import (
        CatalogConfig,
        ComputeConfig,
        EngineInfo,
        ProfileTarget,
        ResourceOverrides,
        SecretReference,
        ValidationResult,
    )  # fmt: skip
    from floe.plugins import EngineRegistry


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'floe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
