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
class BuildTimeout:
    """How long one build on a compute may run, as the lowest level that set it wrote it."""

    seconds: float
    written: str
    """As written (``30m``), for messages."""
    set_at: str
    """Which level set it and where (``manifest 'acme' (platform.yaml:12)``), for messages."""


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
    timeout: BuildTimeout | None = None
    """No build on the compute may run longer (``None``: no limit)."""


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
class CatalogAccess:
    """How the dbt worker of a compute reaches the run's Iceberg catalog (``floe_catalog_access``).

    ``floe plan`` decides from it, before anything starts, how each ref from one compute to another
    is crossed: between two computes whose workers both attach the catalog in place, the
    downstream engine reads the upstream engine's Iceberg table where it is.
    """

    in_place: bool
    """The worker attaches the catalog under the catalog's name and reads and writes its Iceberg
    tables where they are: a model is ``<catalog>.<namespace>.<model>`` whichever engine built it.
    ``False``: the engine's transforms build in its own warehouse, which no other engine reads."""
    how: str
    """One sentence for ``floe plan``: how the worker attaches, or why it cannot."""
    reads: bool = False
    """Building in its own warehouse, floe can read the engine's tables as Arrow (its
    ``floe_read_arrow``): a model another compute refs is published into the catalog after it builds."""
    loads: bool = False
    """Building in its own warehouse, floe can load Arrow into the engine's tables (its
    ``floe_load_arrow``): a model of another compute it refs is loaded into it before it builds."""

    @classmethod
    def attached(cls, how: str) -> CatalogAccess:
        """The worker reads and writes the catalog's tables in place; ``how`` says through what."""
        return cls(True, how)

    @classmethod
    def own_warehouse(cls, why: str) -> CatalogAccess:
        """The worker cannot attach the catalog and floe cannot carry tables in or out of its
        warehouse; ``why`` says why (its transforms still run, reading only their own tables)."""
        return cls(False, why)

    @classmethod
    def bridged(cls, how: str, *, reads: bool = True, loads: bool = True) -> CatalogAccess:
        """The worker builds in the engine's own warehouse, and floe carries tables between it and
        the catalog through the engine's bridge hooks (``floe_read_arrow`` when ``reads``,
        ``floe_load_arrow`` when ``loads``); ``how`` says through what (a client, a bulk load)."""
        return cls(False, how, reads, loads)

    def summary(self) -> str:
        """How a reader of ``floe plan`` should read it: in place, bridged (which ways), own warehouse."""
        if self.in_place:
            return "reads and writes the catalog in place"
        ways = [
            w for w, on in (("published into the catalog", self.reads), ("loaded from it", self.loads)) if on
        ]
        if ways:
            return "builds in its own warehouse; its tables are " + " and ".join(ways) + " by floe"
        return "builds in its own warehouse"


@attrs.frozen
class Relation:
    """A table in an engine's warehouse, named as dbt names it there: ``database.schema.identifier``.

    What a bridge hook (``floe_read_arrow``, ``floe_load_arrow``) is given: the relation a model
    resolves to in that engine's dbt project (``ref()`` in a model there, or the model itself), as
    dbt's adapter would write it, each part unquoted. The engine quotes the parts as its adapter
    does (``quoting`` in dbt). ``database`` is ``None`` for an adapter without one.
    """

    database: str | None
    schema: str
    identifier: str

    def __str__(self) -> str:
        return ".".join(p for p in (self.database, self.schema, self.identifier) if p)


@attrs.frozen
class WorkerSetup:
    """How ``floe run`` starts the dbt worker process of a compute (``floe_run_worker``)."""

    environ: Mapping[str, str] = attrs.field(factory=dict)
    """Variables added to the worker's environment (Java's home, a loopback address…). Never a
    secret's value: the worker inherits the secrets' variables, dbt reads them by name."""
    forkable: bool = True
    """Whether the worker may be forked from the run's fork server, which imported dbt and the
    adapter once. ``False`` for an engine whose first act should be something else (Spark starts
    Java), or whose client library is not safe to fork."""
    extension: str | None = None
    """A module the worker imports before its first parse: its ``start(settings)`` runs then (it
    may start work in a thread, such as Spark's session), its ``stop()``, if any, at the worker's
    exit. It runs inside the dbt process, so it can prepare what the adapter will find there. In a
    warm worker (``floe run --keep-warm``) it starts once for the worker's life, and its
    ``release()``, if any, runs at the end of each run: it drops what the run's secrets opened;
    its ``started()``, if any, returns once what ``start`` began in the background has started
    (the host waits for it, so that it starts before a run's secrets are in the environment)."""
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    """What ``start`` receives: JSON values only (they cross a pipe); secrets as placeholders."""


@attrs.frozen
class TransformSpec:
    """One entry of a data product's ``transforms``, as written in floe.yaml."""

    path: str
    type: Literal["dbt"] = "dbt"
    compute: str | None = None
    name: str | None = None
