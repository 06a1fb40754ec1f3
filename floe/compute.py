"""The :class:`ComputePlugin` ABC (REQ-011): the one interface every compute engine implements.

Subclassing it is the easy way to write an engine: each method is wired to the hook of
:mod:`floe.hookspecs` with the same name prefixed ``floe_`` (the wiring is generated from the
specs, see :func:`_forward`), so an instance registered with pluggy behaves exactly like a module
of plain hookimpls. The required hooks are the abstract methods; the others return what
:mod:`floe.engine_defaults` gives, which a subclass may extend with ``super()``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from floe import engine_defaults, hookspecs
from floe._markers import API_VERSION, hookimpl
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
    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """SQL that attaches the engine to the Iceberg catalog, or ``None`` (REQ-013)."""

    def config_schema(self) -> Mapping[str, Any]:
        """JSON Schema of the engine's ``config``; the default accepts any object."""
        return engine_defaults.floe_config_schema()

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """Turn an engine exception into an actionable error (REQ-018); ``None`` if unknown."""
        return None

    # -- running (see floe.hookspecs: floe_catalog_access …) -------------------------------------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Whether the compute's dbt worker reads and writes the catalog's tables in place; by
        default it cannot (its transforms build in the engine's own warehouse)."""
        return engine_defaults.floe_catalog_access(compute, catalog)

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        """The dbt output a transform runs with; by default ``profile`` building into ``namespace``."""
        return engine_defaults.floe_run_profile(compute, profile, catalog, namespace)

    def run_project_config(self, compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
        """Project-level dbt configs for the compute's transforms; by default none."""
        return engine_defaults.floe_run_project_config(compute, catalog)

    def run_macro_paths(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
        """Folders of dbt macros the run's project adds for the compute's transforms; by default none."""
        return engine_defaults.floe_run_macro_paths(compute, catalog)

    def run_worker(
        self,
        compute: ComputeConfig,
        profile: dict[str, Any],
        catalog: CatalogConfig,
        environ: Mapping[str, str],
    ) -> WorkerSetup:
        """How the compute's dbt worker starts; by default forked, with floe's environment."""
        return engine_defaults.floe_run_worker(compute, profile, catalog, environ)

    # -- bridging (see floe.hookspecs: floe_read_arrow, floe_load_arrow) ---------------------------

    def read_arrow(self, compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
        """A table of the compute's warehouse as Arrow, for floe to publish into the catalog; by
        default the engine reads nothing (say ``CatalogAccess.bridged(reads=True)`` only with it)."""
        return engine_defaults.floe_read_arrow(compute, relation)

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
        """Load ``data`` into a table of the compute's warehouse (staging, then swap); by default
        the engine loads nothing (say ``CatalogAccess.bridged(loads=True)`` only with it)."""
        return engine_defaults.floe_load_arrow(compute, relation, data)

    # -- the hooks ------------------------------------------------------------------------------

    @hookimpl
    def floe_engine_info(self) -> EngineInfo:
        return EngineInfo(
            name=self.name,
            version=self.version,
            api_version=self.api_version,
            dbt_adapter=self.dbt_adapter,
            description=self.description,
        )


def method_of(hook: str) -> str:
    """The :class:`ComputePlugin` method of ``hook``: its name without the ``floe_`` prefix, except
    ``floe_engine_info``, which the class attributes answer."""
    return hook.removeprefix("floe_")


def _forward(hook: str) -> Callable[..., Any]:
    """A hookimpl for ``hook`` that calls the method of the same name with the same arguments.

    pluggy passes a hookimpl the arguments its parameters name, so each forwarder is written with
    the spec's own parameter names (as attrs writes its methods: source, compiled once).
    """
    names = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    arguments = ", ".join(names)
    source = f"def {hook}(self, {arguments}):\n    return self.{method_of(hook)}({arguments})\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<floe forwarder {hook}>", "exec"), namespace)
    forwarder: Callable[..., Any] = namespace[hook]
    forwarder.__qualname__ = f"ComputePlugin.{hook}"
    forwarder.__doc__ = f"Forwards to :meth:`ComputePlugin.{method_of(hook)}`."
    return hookimpl(forwarder)


HOOKS = tuple(name for name in vars(hookspecs) if name.startswith("floe_"))
"""Every hook of :mod:`floe.hookspecs`, in declaration order."""
for _hook in HOOKS:
    if _hook != "floe_engine_info":
        setattr(ComputePlugin, _hook, _forward(_hook))
