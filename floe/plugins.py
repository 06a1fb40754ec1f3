"""Finding, checking and calling compute engines.

Engines are pluggy plugins registered under the entry-point group ``floe`` (built-in ones too). A
plugin that fails to import, has a malformed hookimpl or declares another API version is recorded
as a :class:`PluginProblem` (name, distribution, hook) and skipped; the rest keep working.
``FLOE_DISABLE_PLUGINS=name,name`` skips named plugins.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from floe import engine_defaults, hookspecs
from floe._markers import API_VERSION, PROJECT_NAME, REQUIRED
from floe.compute import HOOKS, ComputePlugin
from floe.deadline import DeadlineExceeded, call_with_deadline
from floe.errors import BrokenPluginError, FloeError, PluginExecutionError
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
from floe.plugin_index import EntryPointRecord, entry_points
from floe.resources import merge_requirements, requirements_problem
from floe.schemas import SCHEMA_BASE, SchemaStore
from floe.secrets import find_secret_refs, floe_names, redact, secret_values

if TYPE_CHECKING:
    import pyarrow

DISABLE_ENV = "FLOE_DISABLE_PLUGINS"
VALIDATION_TIMEOUT = 10.0
RESOURCE_KEYS = ("models", "seeds", "snapshots", "tests", "data_tests", "sources", "analyses", "unit_tests")
"""The keys of a dbt project under which project-level configs go (``floe_run_project_config``)."""
REQUIRED_HOOKS = tuple(hook for hook in HOOKS if getattr(getattr(hookspecs, hook), REQUIRED))
"""The hooks every engine must implement, as :mod:`floe.hookspecs` marks them."""


@attrs.frozen
class PluginProblem:
    """Why a plugin was not loaded."""

    plugin: str
    distribution: str
    hook: str | None
    message: str

    def render(self) -> str:
        hook = f", hook {self.hook}" if self.hook else ""
        return f"plugin {self.plugin!r} (from {self.distribution}{hook}): {self.message}"


class Engine:
    """One loaded engine, called through its hooks; the way floe calls every engine.

    Each call is checked (result type) and guarded: an exception from the engine becomes a
    :class:`~floe.errors.PluginExecutionError` (translated by the engine's ``floe_translate_error``
    when it can), with secret values scrubbed. A hook the engine does not implement (or answers
    ``None``) is answered by :mod:`floe.engine_defaults`. There is one method per hook of
    :mod:`floe.hookspecs`, named as the hook without ``floe_`` (``tests/test_interface.py`` holds
    them, the specs and :class:`~floe.compute.ComputePlugin` equal).
    """

    def __init__(
        self, pm: pluggy.PluginManager, plugin: object, info: EngineInfo, plugin_name: str, distribution: str
    ) -> None:
        self.info = info
        self.name = info.name
        self.plugin_name = plugin_name
        self.distribution = distribution
        others = [p for p in pm.get_plugins() if p is not plugin and p is not engine_defaults]
        self._hooks = {hook: pm.subset_hook_caller(hook, others) for hook in HOOKS}
        self._schema_uri: str | None = None

    def __repr__(self) -> str:
        return f"<Engine {self.name} {self.info.version} from {self.distribution}>"

    def _call(self, hook: str, compute: ComputeConfig | None = None, **kwargs: Any) -> Any:
        if compute is not None:
            kwargs["compute"] = compute
        try:
            return self._hooks[hook](**kwargs)
        except FloeError as exc:
            raise self._scrubbed(exc, compute) from None
        except Exception as exc:  # noqa: BLE001 - every engine failure becomes actionable
            raise self._translate(hook, exc, compute) from None

    def _translate(self, hook: str, exc: BaseException, compute: ComputeConfig | None) -> FloeError:
        operation = hook.removeprefix("floe_")
        translated = self.translate_error(exc, compute)
        if translated is None:
            translated = PluginExecutionError(
                self.name,
                operation,
                f"{type(exc).__name__}: {exc}",
                f"this looks like a bug in the engine plugin; report it to {self.distribution}",
                compute=compute.name if compute else None,
                cause=type(exc).__name__,
            )
        return self._scrubbed(translated, compute)

    def _scrubbed(self, error: FloeError, compute: ComputeConfig | None) -> FloeError:
        secrets = secret_values(find_secret_refs(compute.config)) if compute else []
        text = error.render()
        names = floe_names(compute) if compute else []
        if secrets and redact(text, secrets, names) != text:
            return PluginExecutionError(
                self.name,
                "engine call",
                redact(text, secrets, names),
                compute=compute.name if compute else None,
            )
        return error

    def _expect(self, hook: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
        if not isinstance(value, kind):
            raise BrokenPluginError(
                self.name,
                hook.removeprefix("floe_"),
                f"the hook returned {type(value).__name__}, expected {what}",
                f"fix the engine plugin {self.plugin_name!r} ({self.distribution})",
            )
        return value

    # -- the engine interface -------------------------------------------------------------------

    def engine_info(self) -> EngineInfo:
        """What the engine said about itself when it was loaded."""
        return self.info

    def config_schema(self) -> Mapping[str, Any]:
        """The engine's JSON Schema for ``config``; any object when the engine declares none."""
        schema = self._call("floe_config_schema")
        checked: Mapping[str, Any] = self._expect("floe_config_schema", schema, Mapping, "a JSON Schema")
        return checked

    def schema_uri(self, store: SchemaStore) -> str:
        """Register the engine's config schema in ``store`` and return its URI."""
        return store.add(self.config_schema(), f"{SCHEMA_BASE}engines/{self.name}.schema.json")

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile = self._call("floe_generate_dbt_profile", compute, target=target)
        return self._expect("floe_generate_dbt_profile", profile, dict, "a dbt output mapping")  # type: ignore[no-any-return]

    def get_required_dbt_packages(self) -> list[str]:
        packages = self._call("floe_get_required_dbt_packages")
        self._expect("floe_get_required_dbt_packages", packages, list, "a list of requirements")
        return [str(p) for p in packages]

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float = VALIDATION_TIMEOUT
    ) -> ValidationResult:
        """The engine's check, answered within ``timeout`` seconds whatever the engine does."""
        timeout = min(timeout, VALIDATION_TIMEOUT)
        secrets = secret_values(find_secret_refs(compute.config))
        try:
            result = call_with_deadline(
                lambda: self._call("floe_validate_connection", compute, target=target, timeout=timeout),
                timeout,
            )
        except DeadlineExceeded:
            return ValidationResult(
                False,
                f"{compute.name}: no answer within {timeout:g} s; check "
                "that the engine's host is reachable and not overloaded",
                {"engine": self.name, "timeout_s": timeout},
            )
        except FloeError as exc:
            return ValidationResult(
                False, redact(exc.render(), secrets, floe_names(compute)), {"engine": self.name}
            )
        if not isinstance(result, ValidationResult):
            return ValidationResult(
                False,
                f"engine {self.name} returned no ValidationResult; fix the plugin ({self.distribution})",
                {"engine": self.name},
            )
        if secrets:
            from floe.connection_check import result as redacted

            result = redacted(result.success, result.message, result.details, secrets, floe_names(compute))
        return result

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """The engine's defaults with the manifest's overrides applied and checked."""
        defaults = self._call("floe_get_resource_requirements", compute)
        self._expect("floe_get_resource_requirements", defaults, dict, "requests and limits")
        malformed = requirements_problem(defaults)
        if malformed is not None:  # the engine's own defaults: its plugin is at fault, not the manifest
            raise BrokenPluginError(
                self.name,
                "get_resource_requirements",
                f"plugin {self.plugin_name!r} (from {self.distribution}) returned malformed "
                f"defaults: {malformed}",
                f"this is a bug in {self.distribution}, not in the manifest: report it, or "
                "install a version of the plugin that works",
                compute=compute.name,
            )
        return merge_requirements(defaults, compute.resources)

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        sql = self._call("floe_get_catalog_attachment_sql", compute, catalog=catalog)
        if sql is None:
            return None
        self._expect("floe_get_catalog_attachment_sql", sql, list, "a list of SQL statements or None")
        return [str(s) for s in sql]

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """The engine's translation of ``error``; ``None`` when it has none (or its translator broke)."""
        try:
            translated = self._hooks["floe_translate_error"](error=error, compute=compute)
        except Exception:  # noqa: BLE001 - a broken translator must not hide the original error
            return None
        return translated if isinstance(translated, PluginExecutionError) else None

    # -- running ----------------------------------------------------------------------------------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Whether the compute's worker reads and writes ``catalog``'s tables in place.

        :raises UnattachableCatalog: the engine attaches catalogs, but not this one.
        """
        access = self._call("floe_catalog_access", compute, catalog=catalog)
        return self._expect("floe_catalog_access", access, CatalogAccess, "a floe.model.CatalogAccess")  # type: ignore[no-any-return]

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        """The dbt output a transform on ``compute`` runs with (the engine gets a copy of ``profile``)."""
        import copy

        output = self._call(
            "floe_run_profile", compute, profile=copy.deepcopy(profile), catalog=catalog, namespace=namespace
        )
        self._expect("floe_run_profile", output, dict, "a dbt output mapping")
        if output.get("type") != self.info.dbt_adapter:
            raise PluginExecutionError(
                self.name,
                "run_profile",
                f"the run profile's type is {output.get('type')!r}, expected {self.info.dbt_adapter!r}",
                f"fix the engine plugin ({self.distribution})",
                compute=compute.name,
            )
        return output  # type: ignore[no-any-return]

    def run_project_config(self, compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
        """Project-level dbt configs per resource key for the transforms of ``compute``."""
        configs = self._call("floe_run_project_config", compute, catalog=catalog)
        self._expect("floe_run_project_config", configs, dict, "a mapping of resource keys to configs")
        unknown = sorted(str(key) for key in configs if key not in RESOURCE_KEYS)
        if unknown:  # dbt would refuse the generated dbt_project.yml, as if the user's project were wrong
            raise PluginExecutionError(
                self.name,
                "run_project_config",
                f"project configs under {', '.join(map(repr, unknown))}, which is no key of a "
                f"dbt project (expected one of {', '.join(RESOURCE_KEYS)})",
                f"fix the engine plugin ({self.distribution})",
                compute=compute.name,
            )
        for key, values in configs.items():
            self._expect("floe_run_project_config", values, dict, f"a mapping of configs under {key!r}")
        return {str(key): dict(values) for key, values in configs.items()}

    def run_macro_paths(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
        """Existing folders of dbt macros the run's project adds for the transforms of ``compute``."""
        paths = self._call("floe_run_macro_paths", compute, catalog=catalog)
        self._expect("floe_run_macro_paths", paths, list, "a list of folders")
        folders = [Path(p) for p in paths]
        missing = [str(f) for f in folders if not f.is_dir()]
        if missing:
            raise PluginExecutionError(
                self.name,
                "run_macro_paths",
                f"{missing[0]} is not a folder",
                f"fix the engine plugin ({self.distribution})",
                compute=compute.name,
            )
        return folders

    def run_worker(
        self,
        compute: ComputeConfig,
        profile: dict[str, Any],
        catalog: CatalogConfig,
        environ: Mapping[str, str],
    ) -> WorkerSetup:
        """How the dbt worker of ``compute`` starts; its ``environ`` holds only strings."""
        setup = self._call("floe_run_worker", compute, profile=profile, catalog=catalog, environ=environ)
        self._expect("floe_run_worker", setup, WorkerSetup, "a floe.model.WorkerSetup")
        bad = [k for k, v in setup.environ.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise PluginExecutionError(
                self.name,
                "run_worker",
                f"environment variable {bad[0]!r} is not a string",
                f"fix the engine plugin ({self.distribution})",
                compute=compute.name,
            )
        return setup  # type: ignore[no-any-return]

    # -- bridging ---------------------------------------------------------------------------------

    def read_arrow(self, compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
        """The table ``relation`` of the compute's warehouse, read by the engine, as one Arrow table.

        :raises PluginExecutionError: the engine could not read it (or answered something else).
        """
        import pyarrow

        data = self._call("floe_read_arrow", compute, relation=relation)
        table: pyarrow.Table = self._expect("floe_read_arrow", data, pyarrow.Table, "a pyarrow.Table")
        return table

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
        """Load ``data`` into ``relation`` of the compute's warehouse; the rows it then holds.

        :raises PluginExecutionError: the engine could not load it (or answered no row count).
        """
        rows = self._call("floe_load_arrow", compute, relation=relation, data=data)
        if isinstance(rows, bool) or not isinstance(rows, int):
            raise BrokenPluginError(
                self.name,
                "load_arrow",
                f"the hook returned {type(rows).__name__}, expected "
                "the number of rows the relation holds (an int)",
                f"fix the engine plugin {self.plugin_name!r} ({self.distribution})",
            )
        return int(rows)


class EngineRegistry:
    """The engines that loaded, by name, and the problems of those that did not.

    Plugins load when first needed: :meth:`get` loads only the entry points named as the engine
    asked for (an engine's entry point carries the engine's name, see :func:`_engine_info`), so a
    command that uses one engine imports one engine module; :attr:`engines`, :attr:`problems`
    and :meth:`names` load every plugin first. Either way each plugin is imported in this
    process, so what is reported is the plugin as it is now.
    """

    def __init__(
        self,
        engines: Mapping[str, Engine] | None = None,
        problems: Iterable[PluginProblem] = (),
        disabled: Iterable[str] = (),
    ) -> None:
        """A registry of these engines and problems (:meth:`discover` finds the installed ones)."""
        self.disabled = list(disabled)
        self._pending: list[EntryPointRecord] = []  # entry points not loaded yet
        self._engines: dict[str, Engine] = dict(engines or {})
        self._problems: list[PluginProblem] = list(problems)
        # plugin name -> distribution of the plugin registered under it
        self._plugin_names: dict[str, str] = {e.plugin_name: e.distribution for e in self._engines.values()}

    def __repr__(self) -> str:
        return f"<EngineRegistry {sorted(self._engines)} ({len(self._pending)} plugins not loaded yet)>"

    @property
    def engines(self) -> dict[str, Engine]:
        """Every engine that loaded, by name."""
        self._load_all()
        return self._engines

    @property
    def problems(self) -> list[PluginProblem]:
        """Why each plugin that did not load did not."""
        self._load_all()
        return self._problems

    def names(self) -> list[str]:
        return sorted(self.engines)

    def get(self, name: str) -> Engine | None:
        """The engine ``name``, loading only the plugins registered under that name."""
        if self._pending and name not in self._engines:
            wanted = [ep for ep in self._pending if ep.name == name]
            self._pending = [ep for ep in self._pending if ep.name != name]
            for ep in wanted:
                self._load(ep)
        return self._engines.get(name)

    def problems_of(self, name: str) -> list[PluginProblem]:
        """The problems of the plugins registered under ``name`` (loading only those)."""
        self.get(name)
        return [p for p in self._problems if p.plugin == name]

    @classmethod
    def discover(
        cls, extra: Iterable[tuple[str, object]] = (), environ: Mapping[str, str] | None = None
    ) -> EngineRegistry:
        """The engines of the entry-point group ``floe`` (plus ``extra`` name/plugin pairs).

        ``FLOE_DISABLE_PLUGINS`` names entry points to skip; ``extra`` plugins, passed in by the
        embedding program itself, are always loaded (and with them every other plugin, in order).
        """
        env = os.environ if environ is None else environ
        disabled = [n.strip() for n in env.get(DISABLE_ENV, "").split(",") if n.strip()]
        pending = [ep for ep in entry_points(PROJECT_NAME, env) if ep.name not in disabled]
        registry = cls(disabled=disabled)
        registry._pending = pending
        if extra:  # in-process plugins come after the entry points: load in that order
            registry._load_all()
            for name, plugin in extra:
                registry._accept(name, "in-process", plugin, entry_point=False)
        return registry

    def _load_all(self) -> None:
        pending, self._pending = self._pending, []
        for ep in pending:
            self._load(ep)

    def _load(self, ep: EntryPointRecord) -> None:
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break floe
            self._problems.append(
                PluginProblem(
                    ep.name, ep.distribution, None, f"cannot be imported: {type(exc).__name__}: {exc}"
                )
            )
            return
        self._accept(ep.name, ep.distribution, plugin, entry_point=True)

    def _accept(self, name: str, dist: str, plugin: object, *, entry_point: bool) -> None:
        """Check ``plugin`` and add its engine, or record why not (in the order plugins load)."""
        if inspect.isclass(plugin) and issubclass(plugin, ComputePlugin):
            plugin = plugin()
        if name in self._plugin_names:
            self._problems.append(
                PluginProblem(
                    name,
                    dist,
                    None,
                    f"another plugin is already registered as {name!r} (from {self._plugin_names[name]})",
                )
            )
            return
        pm = _manager()
        problem = _register(pm, name, dist, plugin)
        if problem is None:
            self._plugin_names[name] = dist
            info, problem = _engine_info(pm, name, dist, plugin, entry_point=entry_point)
            if info is not None and info.name in self._engines:
                problem = PluginProblem(
                    name,
                    dist,
                    "floe_engine_info",
                    f"engine name {info.name!r} is already "
                    f"provided by {self._engines[info.name].distribution}",
                )
            if problem is None and info is not None:
                self._engines[info.name] = Engine(pm, plugin, info, name, dist)
                return
        self._problems.append(problem or PluginProblem(name, dist, "floe_engine_info", "no info"))


def _manager() -> pluggy.PluginManager:
    """A plugin manager of floe's hooks with floe's defaults: one per engine, which calls only its plugin."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(engine_defaults, name=engine_defaults.NAME)
    return pm


def _register(pm: pluggy.PluginManager, name: str, dist: str, plugin: object) -> PluginProblem | None:
    unknown = [
        attr
        for attr in dir(plugin)
        if attr.startswith("floe_") and attr not in HOOKS and callable(getattr(plugin, attr, None))
    ]
    if unknown:
        return PluginProblem(
            name, dist, unknown[0], f"no such hook in floe's hookspecs (known: {', '.join(HOOKS)})"
        )
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        hook = next((h for h in HOOKS if h in str(exc)), None)
        return PluginProblem(name, dist, hook, f"malformed hookimpl: {exc}")
    except ValueError as exc:
        return PluginProblem(name, dist, None, str(exc))
    return None


def _engine_info(
    pm: pluggy.PluginManager, name: str, dist: str, plugin: object, *, entry_point: bool = True
) -> tuple[EngineInfo | None, PluginProblem | None]:
    """What ``plugin`` says about itself, checked; an entry point must carry its engine's name
    (what lets :meth:`EngineRegistry.get` load one engine without loading the others)."""
    for hook in REQUIRED_HOOKS:
        if not any(impl.plugin is plugin for impl in getattr(pm.hook, hook).get_hookimpls()):
            return None, PluginProblem(name, dist, hook, "required hook not implemented")
    others = [p for p in pm.get_plugins() if p is not plugin]
    try:
        info = pm.subset_hook_caller("floe_engine_info", others)()
    except Exception as exc:  # noqa: BLE001
        return None, PluginProblem(name, dist, "floe_engine_info", f"{type(exc).__name__}: {exc}")
    if not isinstance(info, EngineInfo):
        return None, PluginProblem(
            name, dist, "floe_engine_info", "missing, or did not return floe.model.EngineInfo"
        )
    if info.api_version != API_VERSION:
        return None, PluginProblem(
            name,
            dist,
            "floe_engine_info",
            f"written for engine API {info.api_version}, floe provides "
            f"API {API_VERSION}; upgrade the plugin or floe",
        )
    if entry_point and info.name != name:
        return None, PluginProblem(
            name,
            dist,
            "floe_engine_info",
            f"the entry point {name!r} provides engine {info.name!r}; register it "
            f"as {info.name!r} = … in the entry-point group {PROJECT_NAME!r}",
        )
    return info, None
