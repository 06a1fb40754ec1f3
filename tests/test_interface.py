"""The engine interface is declared once (:mod:`floe.hookspecs`): everything else follows it.

The specs are the declaration. :class:`~floe.compute.ComputePlugin`'s forwarding hookimpls are
generated from them; its methods (for subclass authors' type checking) and the
:class:`~floe.plugins.Engine` wrapper's methods (for floe's callers) are written out, and these
tests hold them equal to the specs: names, parameters, annotations, required or not.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pluggy
import pytest

from floe import engine_defaults, hookspecs
from floe._markers import REQUIRED
from floe.compute import HOOKS, ComputePlugin, method_of
from floe.model import CatalogAccess, CatalogConfig, ComputeConfig, ProfileTarget, WorkerSetup
from floe.plugins import REQUIRED_HOOKS, Engine, EngineRegistry
from tests.support.engines import hookimpl_engine

SPECS = {name: getattr(hookspecs, name) for name in HOOKS}


def parameters(function: Any, *, drop_self: bool) -> list[tuple[str, str]]:
    """``(name, annotation)`` of each parameter, annotations as written (``from __future__``)."""
    found = list(inspect.signature(function).parameters.values())
    if drop_self:
        found = found[1:]
    return [(p.name, str(p.annotation)) for p in found]


def returns(function: Any) -> str:
    return str(inspect.signature(function).return_annotation)


def test_the_hooks_are_the_specs_of_floe_hookspecs_and_nothing_else() -> None:
    assert HOOKS == tuple(n for n in vars(hookspecs) if n.startswith("floe_"))
    assert set(HOOKS) >= {
        "floe_engine_info",
        "floe_generate_dbt_profile",
        "floe_catalog_access",
        "floe_run_profile",
        "floe_run_project_config",
        "floe_run_worker",
    }
    for name, spec in SPECS.items():
        marker = spec.floe_spec
        assert marker["firstresult"] is True, name
        assert isinstance(getattr(spec, REQUIRED), bool), f"{name}: say whether it is required"


@pytest.mark.parametrize("hook", HOOKS)
def test_each_spec_is_documented_like_pytests_hookspecs(hook: str) -> None:
    """``:param:`` for every parameter, ``:returns:``, and firstresult stated."""
    doc = inspect.getdoc(SPECS[hook]) or ""
    for name, _ in parameters(SPECS[hook], drop_self=False):
        assert f":param {name}:" in doc, f"{hook}: document parameter {name}"
    assert ":returns:" in doc and "This hook is ``firstresult``." in doc, hook
    if not getattr(SPECS[hook], REQUIRED):
        assert "default" in doc.lower(), f"{hook}: an optional hook says what its default is"


@pytest.mark.parametrize("hook", HOOKS)
def test_compute_plugin_declares_each_hook_with_the_specs_signature(hook: str) -> None:
    if hook == "floe_engine_info":  # answered by the class attributes
        assert parameters(ComputePlugin.floe_engine_info, drop_self=True) == []
        return
    method = getattr(ComputePlugin, method_of(hook))
    assert parameters(method, drop_self=True) == parameters(SPECS[hook], drop_self=False), hook
    assert returns(method) == returns(SPECS[hook]), hook
    assert (method.__doc__ or "").strip(), f"ComputePlugin.{method_of(hook)} needs a docstring"
    forwarder = getattr(ComputePlugin, hook)
    assert getattr(forwarder, "floe_impl", None) is not None, f"{hook} is not a hookimpl of ComputePlugin"
    argnames, _ = pluggy._hooks.varnames(forwarder)
    assert list(argnames) == [n for n, _ in parameters(SPECS[hook], drop_self=False)]


@pytest.mark.parametrize("hook", HOOKS)
def test_the_engine_wrapper_has_a_method_per_hook(hook: str) -> None:
    method = getattr(Engine, method_of(hook))
    names = [n for n, _ in parameters(method, drop_self=True)]
    assert names == [n for n, _ in parameters(SPECS[hook], drop_self=False)], hook
    if hook != "floe_get_resource_requirements":  # merged with the manifest's overrides, same type
        assert returns(method).replace("Mapping", "dict") == returns(SPECS[hook]).replace(
            "Mapping", "dict"
        ), hook


def test_required_hooks_and_abstract_methods_follow_the_specs() -> None:
    required = {name for name, spec in SPECS.items() if getattr(spec, REQUIRED)}
    assert set(REQUIRED_HOOKS) == required
    assert ComputePlugin.__abstractmethods__ == {method_of(h) for h in required} - {"engine_info"}


def test_every_optional_hook_has_one_default_with_the_specs_parameters() -> None:
    for hook, spec in SPECS.items():
        if getattr(spec, REQUIRED) or hook == "floe_translate_error":  # None is its default answer
            continue
        default = getattr(engine_defaults, hook)
        assert default.floe_impl["trylast"] is True, hook
        assert parameters(default, drop_self=False) == parameters(spec, drop_self=False), hook


# -- the defaults, as an engine that declares nothing gets them -----------------------------------------

CATALOG = CatalogConfig(type="rest", name="lake", uri="http://127.0.0.1:9", warehouse="file:///w")


class Minimal(ComputePlugin):
    name = "minimal"
    version = "1"
    dbt_adapter = "minimal"

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        return {"type": "minimal", "threads": 1, "schema": "own"}

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-minimal>=1,<2"]

    def validate_connection(self, compute: ComputeConfig, target: ProfileTarget, timeout: float) -> Any:
        raise NotImplementedError

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {}, "limits": {}}

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> None:
        return None


class Extending(Minimal):
    name = "extending"
    dbt_adapter = "minimal"

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        return {**super().run_profile(compute, profile, catalog, namespace), "database": catalog.name}

    def run_worker(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, environ: Any
    ) -> WorkerSetup:
        return WorkerSetup(environ={"EXTRA": "1"}, forkable=False)


def test_an_engine_that_declares_no_run_hook_gets_the_defaults() -> None:
    plain = hookimpl_engine("plain")
    registry = EngineRegistry.discover(
        extra=[("minimal", Minimal), ("plain", plain), ("extending", Extending)]
    )
    for name in ("minimal", "plain"):
        engine = registry.engines[name]
        compute = ComputeConfig("c", name)
        access = engine.catalog_access(compute, CATALOG)
        assert access == CatalogAccess(False, access.how) and "its own warehouse" in access.how
        profile = {"type": name, "threads": 1, "schema": "own"}
        assert engine.run_profile(compute, profile, CATALOG, "shop_dev") == {**profile, "schema": "shop_dev"}
        assert profile["schema"] == "own"  # the engine got a copy
        assert engine.run_project_config(compute, CATALOG) == {}
        assert engine.run_worker(compute, profile, CATALOG, {}) == WorkerSetup()
        assert engine.config_schema() == {"type": "object"} or name == "plain"
    extending = registry.engines["extending"]
    compute = ComputeConfig("c", "extending")
    assert extending.run_profile(compute, {"type": "minimal"}, CATALOG, "ns") == {
        "type": "minimal",
        "schema": "ns",
        "database": "lake",
    }
    assert extending.run_worker(compute, {}, CATALOG, {}) == WorkerSetup(
        environ={"EXTRA": "1"}, forkable=False
    )


def test_a_run_hook_returning_the_wrong_type_is_a_plugin_error_naming_the_hook() -> None:
    from floe import hookimpl
    from floe.errors import PluginExecutionError

    broken = hookimpl_engine("broken")

    @hookimpl
    def floe_run_worker(compute: ComputeConfig) -> dict[str, str]:
        return {"forkable": "yes"}

    @hookimpl
    def floe_run_profile(compute: ComputeConfig, profile: dict[str, Any]) -> dict[str, Any]:
        return {**profile, "type": "other"}

    broken.floe_run_worker = floe_run_worker  # type: ignore[attr-defined]
    broken.floe_run_profile = floe_run_profile  # type: ignore[attr-defined]
    engine = EngineRegistry.discover(extra=[("broken", broken)]).engines["broken"]
    with pytest.raises(
        PluginExecutionError,
        match=r"run_worker failed: the hook returned dict, expected a floe.model.WorkerSetup",
    ):
        engine.run_worker(ComputeConfig("c", "broken"), {}, CATALOG, {})
    with pytest.raises(PluginExecutionError, match=r"the run profile's type is 'other', expected 'broken'"):
        engine.run_profile(ComputeConfig("c", "broken"), {"type": "broken"}, CATALOG, "ns")


def test_a_plugin_naming_a_hook_that_does_not_exist_is_refused_with_the_known_hooks() -> None:
    from floe import hookimpl

    typo = hookimpl_engine("typo")

    @hookimpl
    def floe_run_profiles(compute: ComputeConfig) -> None:
        return None

    typo.floe_run_profiles = floe_run_profiles  # type: ignore[attr-defined]
    registry = EngineRegistry.discover(extra=[("typo", typo)])
    (problem,) = [p for p in registry.problems if p.plugin == "typo"]
    assert problem.hook == "floe_run_profiles" and "floe_run_profile," in problem.message


def test_the_engine_kit_holds_what_the_example_engine_imports() -> None:
    """The third-party example imports floe only through :mod:`floe.enginekit`."""
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "examples/floe-engine-postgres/floe_engine_postgres"
    imported = set()
    for source in package.glob("*.py"):
        imported |= set(re.findall(r"^[ \t]*(?:from|import) (floe(?:\.\w+)*)\b", source.read_text(), re.M))
    assert imported == {"floe.enginekit"}, imported


def test_the_compliance_suite_exercises_every_hook() -> None:
    """Each hook is called by a check of ``floe.testing`` (``compliance.py``, ``compliance_run.py``)."""
    from pathlib import Path

    import floe.testing

    folder = Path(floe.testing.__file__).parent
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("compliance*.py")))
    missing = [
        hook
        for hook in HOOKS
        if f".{method_of(hook)}(" not in source
        and hook not in source
        and f"engine.{method_of(hook)}" not in source
        and not (hook == "floe_engine_info" and "engine.info." in source)
    ]
    assert not missing, f"no compliance check calls {missing}"
