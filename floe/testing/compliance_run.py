"""Compliance: the engine's run hooks, and its transforms in a real ``floe run``.

The run hooks (``floe_catalog_access``, ``floe_run_profile``, ``floe_run_project_config``,
``floe_run_macro_paths``, ``floe_run_worker``) are optional: an engine that declares none gets
floe's defaults (:mod:`floe.engine_defaults`) and must pass these checks with them. Each check calls
the engine's own hook (the defaults included), not floe's wrapper: a hook that answers the wrong
type, connects to the catalog while it is only asked how it would, builds somewhere other than the
run's namespace, or holds a secret's value where floe expects a placeholder fails here.

The hooks are checked against the suite's ``catalog`` fixture: an engine that refuses it (raises
``UnattachableCatalog``) fails with instructions to give the class a ``catalog`` fixture it attaches.
Then one transform (a seed, a model, a test) runs twice in ``floe run`` on the adopter's
``engine_endpoint``; no secret behind the endpoint's settings may appear in the run's report or in
any file the run wrote. An adopter whose peer cannot run dbt at all declares it
(``Endpoint(dbt_debug=False)``), and the run is reported as not checked, with that reason.
"""

from __future__ import annotations

import functools
import importlib
import json
import secrets
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from floe.deadline import DeadlineExceeded, call_with_deadline
from floe.errors import FloeError, UnattachableCatalog
from floe.model import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ProfileTarget,
    SecretReference,
    WorkerSetup,
)
from floe.plugins import RESOURCE_KEYS, Engine
from floe.secrets import find_secret_refs
from floe.testing.compliance_base import GRACE, Endpoint, EngineTestBase, call_hook, render_env_vars
from floe.testing.compliance_secrets import secret_keys

NAMESPACE = "compliance_dev"
"""The namespace ``floe run`` builds the suite's product in (``<product>_<environment>``)."""
ACCESS_LIMIT = 2.0
"""Seconds ``floe_catalog_access`` may take: it decides, it does not connect."""
WORKER_ENVIRON = {"PATH": "/usr/bin:/bin"}
REFUSED_CATALOG = (
    "the engine refuses the suite's catalog ({why}): the run hooks are checked with a catalog the "
    "engine attaches: give the test class a `catalog` fixture returning one (a floe.model.CatalogConfig)"
)


def own_profile(engine: Engine, compute: ComputeConfig, target: ProfileTarget, catalog: CatalogConfig) -> Any:
    """The engine's own run profile for ``compute``: its ``floe_run_profile`` over its own profile."""
    profile = call_hook(engine, "floe_generate_dbt_profile", compute=compute, target=target)
    return call_hook(
        engine, "floe_run_profile", compute=compute, profile=profile, catalog=catalog, namespace=NAMESPACE
    )


def manifest_value(value: Any) -> Any:
    """A setting as a manifest writes it: a secret as ``{secret_ref: NAME}``."""
    if isinstance(value, SecretReference):
        return {"secret_ref": value.name}
    if isinstance(value, Mapping):
        return {str(k): manifest_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [manifest_value(v) for v in value]
    return value


class RunHookTests(EngineTestBase):
    """How the engine runs in ``floe run``; see the module docstring."""

    @pytest.fixture
    def access(self, engine: Engine, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """The engine's own answer for the suite's catalog."""
        try:
            answer = call_hook(engine, "floe_catalog_access", compute=compute, catalog=catalog)
        except UnattachableCatalog as exc:
            pytest.fail(REFUSED_CATALOG.format(why=exc.render()[:300]))
        assert isinstance(answer, CatalogAccess), (
            f"floe_catalog_access returned {type(answer).__name__}, not a floe.model.CatalogAccess"
        )
        return answer

    @pytest.fixture
    def run_profile(
        self,
        engine: Engine,
        compute: ComputeConfig,
        target: ProfileTarget,
        catalog: CatalogConfig,
        access: CatalogAccess,
    ) -> dict[str, Any]:
        """The engine's own run profile for the suite's compute and catalog."""
        profile = own_profile(engine, compute, target, catalog)
        assert isinstance(profile, dict), f"floe_run_profile returned {type(profile).__name__}, not a dict"
        return profile

    def test_catalog_access_answers_at_once_and_says_how(
        self,
        engine: Engine,
        compute: ComputeConfig,
        catalog: CatalogConfig,
        silent_server: tuple[str, int],
    ) -> None:
        """Engine side: asked about a catalog whose endpoint accepts connections and never answers,
        the hook answers within 2 s (it must not connect), with a sentence for ``floe plan``."""
        host, port = silent_server
        silent = attrs.evolve(catalog, uri=f"http://{host}:{port}/catalog")
        started = time.monotonic()
        try:
            access = call_with_deadline(
                functools.partial(call_hook, engine, "floe_catalog_access", compute=compute, catalog=silent),
                ACCESS_LIMIT + GRACE,
            )
        except DeadlineExceeded:
            pytest.fail(
                f"floe_catalog_access did not answer within {ACCESS_LIMIT + GRACE:g} s for a catalog "
                "that never answers: it must decide from the settings alone, without connecting "
                "(floe plan asks it before anything starts)"
            )
        except UnattachableCatalog as exc:
            assert exc.key and exc.key[0] == "catalog", "UnattachableCatalog.key names a $.catalog setting"
            assert exc.problems and exc.problems[0].fix, "say how to fix the catalog"
            return
        took = time.monotonic() - started
        assert took < ACCESS_LIMIT, f"floe_catalog_access took {took:.1f} s: it must not connect to anything"
        assert isinstance(access, CatalogAccess), (
            f"floe_catalog_access returned {type(access).__name__}, not a floe.model.CatalogAccess"
        )
        assert access.how.strip(), "say in one sentence how the worker reaches the catalog, or why it cannot"

    def test_run_profile_builds_into_the_runs_namespace(
        self, engine: Engine, run_profile: dict[str, Any], catalog: CatalogConfig, access: CatalogAccess
    ) -> None:
        """Engine side: the run profile has the adapter's type, builds into the run's namespace, and
        names the catalog when the engine attaches it in place."""
        assert run_profile.get("type") == engine.info.dbt_adapter, (
            f"the run profile's type is {run_profile.get('type')!r}; dbt needs the adapter's, {engine.info.dbt_adapter!r}"
        )
        assert NAMESPACE in {run_profile.get("schema"), run_profile.get("dataset")}, (
            f"a run profile builds into the run's namespace {NAMESPACE!r} (its schema, or dataset): "
            f"schema={run_profile.get('schema')!r}"
        )
        if access.in_place:
            assert catalog.name in json.dumps(run_profile, default=str), (
                "an engine that attaches the catalog in place names it in the run profile"
            )

    def test_run_profile_passes_the_adapters_own_validation(
        self, engine: Engine, run_profile: dict[str, Any]
    ) -> None:
        """Engine side: the run profile, through the dbt adapter's own credential checks."""
        from dbt.adapters.factory import load_plugin

        credentials_class = load_plugin(engine.info.dbt_adapter)
        data = credentials_class.translate_aliases(dict(render_env_vars(run_profile, {})))
        data.pop("type", None)
        data.pop("threads", None)
        credentials_class.validate(data)
        credentials_class.from_dict(data)

    def test_project_configs_and_macros_are_well_formed(
        self, engine: Engine, compute: ComputeConfig, catalog: CatalogConfig
    ) -> None:
        """Engine side: project configs are mappings under dbt's resource keys; macro folders exist
        and hold dbt macros."""
        configs = call_hook(engine, "floe_run_project_config", compute=compute, catalog=catalog)
        assert isinstance(configs, dict), (
            f"floe_run_project_config returned {type(configs).__name__}, not a dict"
        )
        unknown = sorted(set(configs) - set(RESOURCE_KEYS))
        assert not unknown, (
            f"project configs go under dbt's resource keys ({', '.join(RESOURCE_KEYS)}): {unknown}"
        )
        for key, values in configs.items():
            assert isinstance(values, dict), (
                f"the configs under {key!r} are a {type(values).__name__}, not a mapping"
            )
        folders = call_hook(engine, "floe_run_macro_paths", compute=compute, catalog=catalog)
        assert isinstance(folders, list), (
            f"floe_run_macro_paths returned {type(folders).__name__}, not a list"
        )
        for folder in folders:
            assert Path(folder).is_dir(), f"{folder} is not a folder"
            assert list(Path(folder).glob("*.sql")), f"{folder} holds no dbt macro (.sql) file"

    def test_worker_setup_is_well_formed(
        self, engine: Engine, compute: ComputeConfig, run_profile: dict[str, Any], catalog: CatalogConfig
    ) -> None:
        """Engine side: a :class:`~floe.model.WorkerSetup` whose environment is text, whose settings
        cross a pipe as JSON, and whose extension module can be imported and started or stopped."""
        setup = call_hook(
            engine,
            "floe_run_worker",
            compute=compute,
            profile=run_profile,
            catalog=catalog,
            environ=dict(WORKER_ENVIRON),
        )
        assert isinstance(setup, WorkerSetup), (
            f"floe_run_worker returned {type(setup).__name__}, not a WorkerSetup"
        )
        bad = [k for k, v in setup.environ.items() if not isinstance(k, str) or not isinstance(v, str)]
        assert not bad, f"the worker's environment variable {bad[0]!r} is not text"
        json.dumps(dict(setup.settings))  # it crosses a pipe to the worker
        if setup.extension is not None:
            module = importlib.import_module(setup.extension)
            assert hasattr(module, "start") or hasattr(module, "stop"), (
                f"{setup.extension} has no start() or stop()"
            )

    def test_run_profile_never_holds_the_catalogs_secrets(
        self,
        engine: Engine,
        compute: ComputeConfig,
        target: ProfileTarget,
        catalog: CatalogConfig,
        access: CatalogAccess,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Engine side: with a canary behind the catalog's client secret, then its token, neither the
        run profile nor the worker's setup holds it (an engine that attaches the catalog passes its
        credentials on as references)."""
        variable = "FLOE_RUN_CANARY_CATALOG_SECRET"
        canary = "canary-" + secrets.token_hex(8)
        monkeypatch.setenv(variable, canary)
        reference = SecretReference(variable)
        for secret_catalog in (
            attrs.evolve(catalog, client_id="floe", client_secret=reference, token=None),
            attrs.evolve(catalog, client_id=None, client_secret=None, token=reference),
        ):
            try:
                profile = own_profile(engine, compute, target, secret_catalog)
            except UnattachableCatalog:
                continue  # not attached with such credentials: nothing of them goes anywhere
            setup = call_hook(
                engine,
                "floe_run_worker",
                compute=compute,
                profile=profile,
                catalog=secret_catalog,
                environ={**WORKER_ENVIRON, variable: canary},
            )
            dumped = json.dumps([profile, dict(setup.environ), dict(setup.settings)], default=str)
            assert canary not in dumped, (
                f"the value of the catalog's secret leaked into a run hook's answer: {dumped[:300]}"
            )

    def test_run_hooks_never_hold_a_secrets_value(
        self,
        engine: Engine,
        compute: ComputeConfig,
        target: ProfileTarget,
        catalog: CatalogConfig,
        access: CatalogAccess,
        address_settings: Callable[[str, int], dict[str, Any]] | None,
        refused_address: tuple[str, int],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Engine side: with a canary behind each secret setting of the compute, neither the run
        profile nor the worker's setup (its environment, its settings) holds it: the worker
        inherits the secret's variable, dbt reads it by name. Each setting is tried on the
        adopter's ``compute_settings``, then on its ``address_settings`` (a setting of another
        connection method, such as a server's password, may need those)."""
        bases = [dict(compute.config)]
        if address_settings is not None:
            bases.append(dict(address_settings(*refused_address)))
        keys = secret_keys(engine.config_schema())
        refused: list[str] = []
        for key in keys:
            variable = f"FLOE_RUN_CANARY_{key.upper()}"
            canary = "canary-" + secrets.token_hex(8)
            monkeypatch.setenv(variable, canary)
            checked = False
            for base in bases:
                secret_compute = attrs.evolve(compute, config={**base, key: SecretReference(variable)})
                try:
                    profile = own_profile(engine, secret_compute, target, catalog)
                except FloeError as exc:  # settings this key alone makes inconsistent (another method's key…)
                    assert canary not in exc.render(), f"the value of secret {key!r} leaked into an error"
                    continue
                setup = call_hook(
                    engine,
                    "floe_run_worker",
                    compute=secret_compute,
                    profile=profile,
                    catalog=catalog,
                    environ={**WORKER_ENVIRON, variable: canary},
                )
                outputs = [
                    json.dumps(profile, default=str),
                    json.dumps(dict(setup.environ), default=str),
                    json.dumps(dict(setup.settings), default=str),
                ]
                leaked = [o for o in outputs if canary in o]
                assert not leaked, (
                    f"the value of secret {key!r} leaked into a run hook's answer: {leaked[0][:200]}"
                )
                checked = True
            if not checked:
                refused.append(key)
        if keys and len(refused) == len(keys):
            pytest.fail(
                f"the engine refused every secret setting ({', '.join(refused)}) with the suite's settings, so "
                "none could be checked: give the test class `compute_settings` (or `address_settings`) "
                "with which the engine accepts them"
            )

    # -- in a real run -----------------------------------------------------------------------------

    @pytest.fixture
    def run_product(
        self, engine_name: str, engine_endpoint: Endpoint, tmp_path: Path, endpoint_env: None
    ) -> Iterator[Path]:
        """A data product of one transform (a seed, a model, a test) on a compute reaching the peer."""
        if not engine_endpoint.dbt_debug:
            pytest.skip(
                "the adopter declared that dbt cannot run against its peer (Endpoint(dbt_debug=False)): "
                "no transform of the engine was run in floe run"
            )
        import yaml

        root = tmp_path / "run_product"
        manifest = {
            "apiVersion": "floe.dev/v1",
            "kind": "Manifest",
            "scope": "enterprise",
            "metadata": {"name": "compliance"},
            "plugins": {
                "compute": {
                    "approved": [
                        {
                            "name": "subject",
                            "engine": engine_name,
                            "config": manifest_value(dict(engine_endpoint.config)),
                        }
                    ],
                    "default": "subject",
                }
            },
            "environments": [{"name": "dev"}],
        }
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
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        yield root

    def test_a_transform_runs_twice_in_floe_run(self, run_product: Path, engine_endpoint: Endpoint) -> None:
        """A seed, a model and a test run in ``floe run`` on the peer, twice (the second over the
        first's tables); no secret the settings reference is in the report or any file."""
        from floe.api import run

        reports: dict[str, str] = {}
        for attempt in ("first", "second"):
            report = run(run_product, env="dev")
            (work,) = report.transforms
            assert work.status == "success", f"the {attempt} run failed: {work.message}"
            assert work.counts() == {"success": 2, "pass": 1}, work.counts()  # seed, model; the test
            assert sorted(work.nodes) == [
                "model.compliance.compliance_upper",
                "seed.compliance.compliance_people",
            ]
            reports[attempt] = json.dumps(report.to_json(), default=str)
        values = {
            engine_endpoint.environ.get(ref.name) for ref in find_secret_refs(dict(engine_endpoint.config))
        }
        for value in sorted(v for v in values if v):
            leaked = [
                str(p.relative_to(run_product))
                for p in sorted(run_product.rglob("*"))
                if p.is_file() and value.encode() in p.read_bytes()
            ]
            leaked += [
                f"the report of the {attempt} run" for attempt, text in reports.items() if value in text
            ]
            assert not leaked, f"a secret's value is written in {', '.join(leaked[:5])}"
