"""Engines written as plain hookimpls, the way a minimal third-party plugin is.

Governance tests need engine names beyond the built-in ones (spark, snowflake…); these plugins
implement every required hook for real (a profile for dbt's generic ``type``), without a server.
"""

from __future__ import annotations

import types
from typing import Any

from floe import hookimpl
from floe.model import CatalogConfig, ComputeConfig, EngineInfo, ProfileTarget, ValidationResult

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "threads": {"type": "integer", "minimum": 1},
        "cluster": {"type": "string"},
        "schema": {"type": "string"},
        "database": {"type": "string"},
        "warehouse": {"type": "string"},
        "password": {"$ref": "https://floe.dev/schemas/v1/definitions.schema.json#/$defs/secretRef"},
    },
}


def hookimpl_engine(name: str, api_version: int = 1) -> types.ModuleType:
    """A plugin module made of plain hookimpl functions for engine ``name``."""

    @hookimpl
    def floe_engine_info() -> EngineInfo:
        return EngineInfo(name=name, version="0.0.1", api_version=api_version, dbt_adapter=name)

    @hookimpl
    def floe_config_schema() -> dict[str, Any]:
        return SCHEMA

    @hookimpl
    def floe_generate_dbt_profile(compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "type": name,
            "threads": compute.config.get("threads", 1),
            "schema": compute.config.get("schema", target.environment),
        }
        if "password" in compute.config:
            profile["password"] = compute.config["password"].as_env_var()
        return profile

    @hookimpl
    def floe_get_required_dbt_packages() -> list[str]:
        return [f"dbt-{name}>=1.0,<2.0"]

    @hookimpl
    def floe_validate_connection(compute: ComputeConfig, timeout: float) -> ValidationResult:
        return ValidationResult(True, f"{compute.name}: nothing to connect to", {})

    @hookimpl
    def floe_get_resource_requirements(compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

    @hookimpl
    def floe_get_catalog_attachment_sql(compute: ComputeConfig, catalog: CatalogConfig) -> None:
        return None

    module = types.ModuleType(f"floe_engine_{name}")
    for key, value in list(locals().items()):
        if key.startswith("floe_"):
            setattr(module, key, value)
    return module


def registry_with(*names: str) -> Any:
    """The installed engines, with hookimpl engines standing in for ``names``.

    Installed engines of the same names are disabled, so governance tests use the stand-ins'
    small config schema whatever engines are installed.
    """
    import os

    from floe.plugins import EngineRegistry

    environ = {**os.environ, "FLOE_DISABLE_PLUGINS": ",".join(names)}
    return EngineRegistry.discover(extra=[(n, hookimpl_engine(n)) for n in names], environ=environ)
