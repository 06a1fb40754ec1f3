"""``RunHookTests``: the compliance checks of the run hooks (``floe_catalog_access``,
``floe_run_profile``, ``floe_run_project_config``, ``floe_run_macro_paths``, ``floe_run_worker``)
and of the engine in a real ``floe run``.

A mixin of :class:`floe.testing.BaseComputePluginTests`: it uses that class's fixtures
(``engine``, ``engine_name``, ``compute``, ``target``, ``catalog``, ``engine_endpoint``,
``endpoint_env``), so an engine's test class adopts both::

    class TestMyEngine(BaseComputePluginTests, RunHookTests):
        ...

Every engine passes these with floe's defaults alone; they catch a hook that answers the wrong
type, leaks a secret's value into a run profile or a worker's environment, or builds somewhere
other than the run's namespace. With an ``engine_endpoint`` (a live peer), one transform (a seed,
a model, a test) runs twice in ``floe run`` on the engine.
"""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from floe.errors import FloeError, UnattachableCatalog
from floe.model import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ProfileTarget,
    SecretReference,
    WorkerSetup,
)
from floe.testing.compliance import render_env_vars, secret_keys

if TYPE_CHECKING:
    from floe.plugins import Engine
    from floe.testing.compliance import Endpoint

NAMESPACE = "compliance_dev"
RESOURCE_KEYS = ("models", "seeds", "snapshots", "tests", "data_tests", "sources", "analyses", "unit_tests")
"""The keys of a dbt project under which project-level configs go."""


class RunHookTests:
    """How the engine runs in ``floe run``; see the module docstring."""

    @pytest.fixture
    def access(self, engine: Engine, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess | None:
        """The engine's answer for the suite's catalog; ``None`` when it attaches catalogs but not this one."""
        try:
            return engine.catalog_access(compute, catalog)
        except UnattachableCatalog:
            return None

    @pytest.fixture
    def run_profile(self, engine: Engine, compute: ComputeConfig, target: ProfileTarget, catalog: CatalogConfig,
                    access: CatalogAccess | None) -> dict[str, Any]:  # fmt: skip
        if access is None:
            pytest.skip("the engine attaches catalogs, but not the suite's `catalog` fixture")
        return engine.run_profile(compute, engine.generate_dbt_profile(compute, target), catalog, NAMESPACE)

    def test_catalog_access_answers_at_once_and_says_how(self, engine: Engine, compute: ComputeConfig,
                                                        catalog: CatalogConfig) -> None:  # fmt: skip
        start = time.monotonic()
        try:
            access = engine.catalog_access(compute, catalog)
        except UnattachableCatalog as exc:
            assert exc.key and exc.key[0] == "catalog", "UnattachableCatalog.key names a $.catalog setting"
            assert exc.problems and exc.problems[0].fix, "say how to fix the catalog"
            return
        finally:
            assert time.monotonic() - start < 2.0, "floe_catalog_access must not connect to anything"
        assert isinstance(access, CatalogAccess) and access.how.strip()

    def test_run_profile_builds_into_the_runs_namespace(self, engine: Engine, run_profile: dict[str, Any],
                                                       catalog: CatalogConfig, access: CatalogAccess) -> None:  # fmt: skip
        assert run_profile["type"] == engine.info.dbt_adapter
        assert NAMESPACE in {run_profile.get("schema"), run_profile.get("dataset")}, (
            "a run profile builds into the run's namespace (schema, or dataset)")
        if access.in_place:
            assert catalog.name in json.dumps(run_profile, default=str), (
                "an engine that attaches the catalog in place names it in the run profile")

    def test_run_profile_passes_the_adapters_own_validation(self, engine: Engine, run_profile: dict[str, Any]) -> None:
        from dbt.adapters.factory import load_plugin

        credentials_class = load_plugin(engine.info.dbt_adapter)
        data = credentials_class.translate_aliases(dict(render_env_vars(run_profile, {})))
        data.pop("type", None)
        data.pop("threads", None)
        credentials_class.validate(data)
        credentials_class.from_dict(data)

    def test_project_configs_and_macros_are_well_formed(self, engine: Engine, compute: ComputeConfig,
                                                       catalog: CatalogConfig) -> None:  # fmt: skip
        configs = engine.run_project_config(compute, catalog)
        assert set(configs) <= set(RESOURCE_KEYS), f"project configs go under dbt's resource keys: {sorted(configs)}"
        for folder in engine.run_macro_paths(compute, catalog):
            assert list(Path(folder).glob("*.sql")), f"{folder} holds no dbt macro (.sql) file"

    def test_worker_setup_is_well_formed(self, engine: Engine, compute: ComputeConfig, run_profile: dict[str, Any],
                                         catalog: CatalogConfig) -> None:  # fmt: skip
        import importlib

        setup = engine.run_worker(compute, run_profile, catalog, {"PATH": "/usr/bin:/bin"})
        assert isinstance(setup, WorkerSetup)
        json.dumps(dict(setup.settings))  # it crosses a pipe to the worker
        if setup.extension is not None:
            module = importlib.import_module(setup.extension)
            assert hasattr(module, "start") or hasattr(module, "stop"), f"{setup.extension} has no start() or stop()"

    def test_run_profile_never_holds_the_catalogs_secrets(self, engine: Engine, compute: ComputeConfig,
                                                          run_profile: dict[str, Any], catalog: CatalogConfig) -> None:  # fmt: skip
        """The catalog's credentials reach an engine that attaches it only as references."""
        import os

        from floe.secrets import find_secret_refs

        refs = find_secret_refs(attrs.asdict(catalog, recurse=False))
        setup = engine.run_worker(compute, run_profile, catalog, dict(os.environ))
        dumped = json.dumps([run_profile, dict(setup.environ), dict(setup.settings)], default=str)
        for ref in refs:
            value = os.environ.get(ref.name)
            assert not value or value not in dumped, f"the value of the catalog's secret {ref.name} leaked"

    def test_run_hooks_never_hold_a_secrets_value(
        self, engine: Engine, compute: ComputeConfig, target: ProfileTarget, catalog: CatalogConfig,
        access: CatalogAccess | None, address_settings: Callable[[str, int], dict[str, Any]] | None,
        refused_address: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        if access is None:
            pytest.skip("the engine attaches catalogs, but not the suite's `catalog` fixture")
        base = dict(compute.config)
        if address_settings is not None:
            base.update(address_settings(*refused_address))
        keys = secret_keys(engine.config_schema())
        refused: list[str] = []
        for key in keys:
            variable = f"FLOE_RUN_CANARY_{key.upper()}"
            canary = "canary-" + secrets.token_hex(8)
            monkeypatch.setenv(variable, canary)
            secret_compute = attrs.evolve(compute, config={**base, key: SecretReference(variable)})
            try:
                profile = engine.run_profile(secret_compute, engine.generate_dbt_profile(secret_compute, target),
                                             catalog, NAMESPACE)  # fmt: skip
            except FloeError as exc:  # settings this key alone makes inconsistent (another method's key…)
                assert canary not in exc.render(), f"the value of secret {key!r} leaked into an error"
                refused.append(key)
                continue
            setup = engine.run_worker(secret_compute, profile, catalog, {"PATH": "/usr/bin:/bin", variable: canary})
            outputs = [json.dumps(profile, default=str), json.dumps(dict(setup.environ)),
                       json.dumps(dict(setup.settings), default=str)]  # fmt: skip
            leaked = [o for o in outputs if canary in o]
            assert not leaked, f"the value of secret {key!r} leaked into a run hook's answer: {leaked[0][:200]}"
        if keys and len(refused) == len(keys):
            pytest.skip(f"the engine refused every secret setting ({', '.join(refused)}) with the suite's settings: "
                        "give the test class `compute_settings` (or `address_settings`) the engine accepts them with")

    # -- in a real run -----------------------------------------------------------------------------

    @pytest.fixture
    def run_product(self, engine_name: str, engine_endpoint: Endpoint | None, tmp_path: Path,
                    endpoint_env: None) -> Iterator[Path]:  # fmt: skip
        if engine_endpoint is None:
            pytest.skip("needs an `engine_endpoint` fixture (a live peer) to run a transform in floe run")
        import yaml

        from floe.governance import unstructure_secrets

        root = tmp_path / "run_product"
        config = unstructure_secrets(dict(engine_endpoint.config))
        manifest = {"apiVersion": "floe.dev/v1", "kind": "Manifest", "scope": "enterprise",
                    "metadata": {"name": "compliance"},
                    "plugins": {"compute": {"approved": [{"name": "subject", "engine": engine_name, "config": config}],
                                            "default": "subject"}},
                    "environments": [{"name": "dev"}]}  # fmt: skip
        files = {
            "platform/enterprise.yaml": yaml.safe_dump(manifest, sort_keys=False),
            "floe.yaml": "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: compliance}\n"
                         "platform: platform/enterprise.yaml\ntransforms:\n  - {type: dbt, name: work, path: models/}\n",
            "dbt_project.yml": "name: compliance\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\n"
                               "models:\n  compliance:\n    +materialized: table\n",
            "seeds/compliance_people.csv": "id,name\n1,ada\n2,bob\n",
            "models/compliance_upper.sql": "select id, upper(name) as name from {{ ref('compliance_people') }}\n",
            "models/schema.yml": textwrap.dedent("""\
                version: 2
                models:
                  - name: compliance_upper
                    columns:
                      - name: id
                        data_tests: [not_null]
                """),
        }  # fmt: skip
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        yield root

    def test_a_transform_runs_twice_in_floe_run(self, run_product: Path) -> None:
        from floe.api import plan, run

        the_plan = plan(run_product, env="dev")
        assert [t.name for t in the_plan.transforms] == ["work"]
        for attempt in ("first", "second"):
            report = run(run_product, env="dev")
            (work,) = report.transforms
            assert work.status == "success", f"the {attempt} run failed: {work.message}"
            assert work.counts() == {"success": 2, "pass": 1}, work.counts()  # seed, model; the test
            assert sorted(work.nodes) == sorted(the_plan.transforms[0].nodes)
