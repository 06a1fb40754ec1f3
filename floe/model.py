"""The typed values floe passes around: frozen attrs classes, structured from validated manifests.

They are the vocabulary of the engine hooks (:mod:`floe.hookspecs`), so they hold no behaviour beyond
what keeps secrets out of reprs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs


@attrs.frozen
class SecretReference:
    """A secret named by reference; its value lives in the environment, never in floe's files.

    Rendered into dbt profiles as ``{{ env_var('NAME') }}`` and into Kubernetes Jobs as a
    ``secretKeyRef``.
    """

    name: str

    def as_env_var(self) -> str:
        """The dbt Jinja expression that reads this secret at run time."""
        return "{{ env_var('" + self.name + "') }}"

    def __repr__(self) -> str:
        return f"SecretReference({self.name})"


@attrs.frozen
class ResourceOverrides:
    """Kubernetes requests/limits a manifest sets over an engine's defaults."""

    requests: Mapping[str, str] = attrs.field(factory=dict)
    limits: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ComputeConfig:
    """One approved compute: its name, the engine that runs it, and the engine's settings.

    ``config`` holds typed values (validated against the engine's JSON Schema); credentials in it
    are always :class:`SecretReference` objects.
    """

    name: str
    engine: str
    config: Mapping[str, Any] = attrs.field(factory=dict)
    resources: ResourceOverrides = attrs.field(factory=ResourceOverrides)


@attrs.frozen
class ProfileTarget:
    """Where a profile is generated for: the environment and the data product's directories."""

    environment: str
    product: str
    project_dir: Path
    state_dir: Path


@attrs.frozen
class CatalogConfig:
    """The Iceberg catalog every engine attaches to under the same ``name``."""

    type: Literal["rest", "sql"]
    name: str = "floe"
    uri: str | None = None
    warehouse: str | None = None
    client_id: str | None = None
    client_secret: SecretReference | None = None
    token: SecretReference | None = None
    oauth2_server_uri: str | None = None
    access_delegation: Literal["vended-credentials", "none"] = "none"


@attrs.frozen
class ValidationResult:
    """The answer of ``validate_connection``: success, an actionable message, and details."""

    success: bool
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class EngineInfo:
    """What an engine says about itself."""

    name: str
    version: str
    api_version: int
    dbt_adapter: str
    description: str = ""


@attrs.frozen
class TransformSpec:
    """One entry of a data product's ``transforms``, as written in floe.yaml."""

    path: str
    type: Literal["dbt"] = "dbt"
    compute: str | None = None
    name: str | None = None
