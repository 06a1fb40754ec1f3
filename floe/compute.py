"""The :class:`ComputePlugin` ABC (REQ-011): the one interface every compute engine implements.

Subclassing it is the easy way to write an engine: each abstract method is wired to the matching
hook of :mod:`floe.hookspecs`, so an instance registered with pluggy behaves exactly like a module
of plain hookimpls.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from floe._markers import API_VERSION, hookimpl
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, EngineInfo, ProfileTarget, ValidationResult


class ComputePlugin(abc.ABC):
    """A compute engine: how dbt connects to it, what it needs, and how it reaches the catalog.

    Set the class attributes, implement the five abstract methods, and register an instance (or the
    class) under the entry-point group ``floe``.
    """

    name: ClassVar[str]
    """Engine name, as used by ``engine:`` (and by default ``name:``) in manifests."""
    version: ClassVar[str]
    """Version of the engine plugin."""
    dbt_adapter: ClassVar[str]
    """The dbt adapter ``type`` the engine's profiles use."""
    api_version: ClassVar[int] = API_VERSION
    """The floe engine API version the plugin was written for."""
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """Build the dbt profile output for ``compute`` in ``target.environment`` (REQ-012).

        :param compute: the compute with its settings for the environment.
        :param target: environment name and the product's directories.
        :returns: a dbt output mapping (``type``, ``threads``, schema/database keys); secrets only
            as ``{{ env_var('NAME') }}``.
        """

    @abc.abstractmethod
    def get_required_dbt_packages(self) -> list[str]:
        """The dbt adapter packages with lower and upper version bounds (REQ-017)."""

    @abc.abstractmethod
    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Check the compute is reachable and usable within ``timeout`` seconds (REQ-014).

        :returns: success, an actionable message without secrets or tracebacks, and details.
        """

    @abc.abstractmethod
    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """Default Kubernetes ``requests`` and ``limits`` for a worker of this engine (REQ-015)."""

    @abc.abstractmethod
    def get_catalog_attachment_sql(
        self, compute: ComputeConfig, catalog: CatalogConfig
    ) -> list[str] | None:
        """SQL that attaches the engine to the Iceberg catalog, or ``None`` (REQ-013)."""

    def config_schema(self) -> Mapping[str, Any]:
        """JSON Schema of the engine's ``config``; the default accepts any object."""
        return {"type": "object"}

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """Turn an engine exception into an actionable error (REQ-018); ``None`` if unknown."""
        return None

    # -- the hooks: each forwards to the method above -------------------------------------------

    @hookimpl
    def floe_engine_info(self) -> EngineInfo:
        return EngineInfo(
            name=self.name,
            version=self.version,
            api_version=self.api_version,
            dbt_adapter=self.dbt_adapter,
            description=self.description,
        )

    @hookimpl
    def floe_config_schema(self) -> Mapping[str, Any]:
        return self.config_schema()

    @hookimpl
    def floe_generate_dbt_profile(
        self, compute: ComputeConfig, target: ProfileTarget
    ) -> dict[str, Any]:
        return self.generate_dbt_profile(compute, target)

    @hookimpl
    def floe_get_required_dbt_packages(self) -> list[str]:
        return self.get_required_dbt_packages()

    @hookimpl
    def floe_validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        return self.validate_connection(compute, target, timeout)

    @hookimpl
    def floe_get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return self.get_resource_requirements(compute)

    @hookimpl
    def floe_get_catalog_attachment_sql(
        self, compute: ComputeConfig, catalog: CatalogConfig
    ) -> list[str] | None:
        return self.get_catalog_attachment_sql(compute, catalog)

    @hookimpl
    def floe_translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        return self.translate_error(error, compute)
