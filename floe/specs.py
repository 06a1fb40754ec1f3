"""Manifests and data products as typed values: what a file says, structured once after validation.

A :class:`~floe.documents.Document` keeps the parsed tree and the line of every node, for locating
problems; these classes say what the file *means*, for policy. Each is structured by cattrs from a
document that already passed its JSON Schema, so structuring cannot fail on user input. Optional
fields are ``None`` when the file does not write them: inheritance depends on what each level
writes, not on defaults (see :mod:`floe.inheritance`).

Engine settings (``config``, ``overrides``) stay mappings here: their types are the engine's, known
once governance knows which engine a compute is (:mod:`floe.engine_settings` types them).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import cattrs

from floe.model import SecretReference, TransformSpec
from floe.structure import converter as _base


@attrs.frozen
class Metadata:
    name: str
    description: str | None = None
    owner: str | None = None


@attrs.frozen
class ResourceSpec:
    """Kubernetes requests and limits as one level writes them (quantities as text)."""

    requests: Mapping[str, str] | None = None
    limits: Mapping[str, str] | None = None


@attrs.frozen
class ApprovedSpec:
    """One entry of ``plugins.compute.approved``: a bare name, or a name with settings."""

    name: str
    engine: str | None = None
    config: Mapping[str, Any] | None = None
    resources: ResourceSpec | None = None
    timeout: str | None = None
    """The longest one build on the compute may run, as written (``30m``)."""


@attrs.frozen
class ComputeGovernanceSpec:
    approved: tuple[ApprovedSpec, ...] | None = None
    default: str | None = None


@attrs.frozen
class PluginsSpec:
    compute: ComputeGovernanceSpec | None = None


@attrs.frozen
class EnvironmentSpec:
    name: str
    overrides: Mapping[str, Mapping[str, Any]] | None = None


@attrs.frozen
class CatalogSpec:
    """``catalog:`` as one level writes it; unwritten fields are ``None`` (not their defaults)."""

    type: str
    name: str | None = None
    uri: str | None = None
    warehouse: str | None = None
    token: SecretReference | None = None
    oauth2_server_uri: str | None = None
    access_delegation: str | None = None
    client_id: str | None = None
    client_secret: SecretReference | None = None

    def written(self) -> dict[str, Any]:
        """The fields this level writes, by name."""
        return {f.name: v for f in attrs.fields(CatalogSpec) if (v := getattr(self, f.name)) is not None}


@attrs.frozen
class LineageAuthSpec:
    """``lineage.transport.auth``: an API key the HTTP transport sends as a Bearer token."""

    type: str
    api_key: SecretReference


@attrs.frozen
class LineageTransportSpec:
    """``lineage.transport`` as one level writes it: the OpenLineage client's transport keys, one
    to one (``http``: url … auth; ``file``: log_file_path, append; ``console``: none)."""

    type: str
    url: str | None = None
    endpoint: str | None = None
    timeout: float | None = None
    verify: bool | None = None
    compression: str | None = None
    auth: LineageAuthSpec | None = None
    log_file_path: str | None = None
    append: bool | None = None


@attrs.frozen
class LineageSpec:
    """``lineage:`` as one level writes it: where every product's OpenLineage events go."""

    transport: LineageTransportSpec | None = None
    """Required where lineage is declared (governance says so, naming the file); a lower level may
    leave it out."""
    namespace: str | None = None

    def secrets(self) -> list[SecretReference]:
        """The secrets the transport reads (its API key), by reference."""
        auth = self.transport.auth if self.transport is not None else None
        return [auth.api_key] if auth is not None else []

    def written(self) -> dict[str, Any]:
        """Each field this level writes, by dotted name (``transport.url``), the auth block as one."""
        found: dict[str, Any] = {} if self.namespace is None else {"namespace": self.namespace}
        for field in attrs.fields(LineageTransportSpec) if self.transport is not None else ():
            value = getattr(self.transport, field.name)
            if value is not None:
                found[f"transport.{field.name}"] = value
        return found


@attrs.frozen
class ManifestSpec:
    """A ``kind: Manifest`` file: an enterprise or domain level of the hierarchy."""

    scope: str
    metadata: Metadata
    parent: str | None = None
    plugins: PluginsSpec | None = None
    catalog: CatalogSpec | None = None
    lineage: LineageSpec | None = None
    environments: tuple[EnvironmentSpec, ...] | None = None
    kind: ClassVar[str] = "Manifest"
    governor_key: ClassVar[str] = "parent"
    """The field naming the manifest that governs this one."""

    @property
    def compute(self) -> ComputeGovernanceSpec | None:
        return self.plugins.compute if self.plugins is not None else None

    @property
    def governor(self) -> str | None:
        """The path of the manifest that governs this one, as written (none for the enterprise's)."""
        return self.parent


@attrs.frozen
class ProductSpec:
    """A ``kind: DataProduct`` file (floe.yaml)."""

    metadata: Metadata
    platform: str
    transforms: tuple[TransformSpec, ...]
    plugins: PluginsSpec | None = None
    environments: tuple[EnvironmentSpec, ...] | None = None
    kind: ClassVar[str] = "DataProduct"
    catalog: ClassVar[None] = None
    """A data product never declares a catalog (here so that every level reads alike)."""
    lineage: ClassVar[None] = None
    """Nor where lineage goes."""
    governor_key: ClassVar[str] = "platform"
    """The field naming the manifest that governs the product."""

    @property
    def compute(self) -> ComputeGovernanceSpec | None:
        return self.plugins.compute if self.plugins is not None else None

    @property
    def governor(self) -> str:
        """The path of the manifest that governs the product, as written."""
        return self.platform


LevelSpec = ManifestSpec | ProductSpec
"""One level of a chain: a manifest, or the data product at its end."""


@functools.cache
def _converter() -> cattrs.Converter:
    converter = _base.copy()

    def approved(value: Any, _type: type) -> ApprovedSpec:
        if isinstance(value, str):
            return ApprovedSpec(value)
        return converter.structure_attrs_fromdict(value, ApprovedSpec)

    converter.register_structure_hook(ApprovedSpec, approved)
    return converter


def structure(data: Mapping[str, Any], kind: str) -> LevelSpec:
    """The typed value of a validated document's data (``kind`` ``Manifest`` or ``DataProduct``).

    ``apiVersion`` and ``kind`` are not structured: the schema fixed them.
    """
    fields = {k: v for k, v in data.items() if k not in ("apiVersion", "kind")}
    if kind == "Manifest":
        return _converter().structure(fields, ManifestSpec)
    return _converter().structure(fields, ProductSpec)
