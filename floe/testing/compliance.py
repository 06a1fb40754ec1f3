"""``BaseComputePluginTests``: the behaviour every compute engine must show (REQ-020).

A subclass provides one fixture, ``engine_name``; optional fixtures describe what the engine can
do, so the suite never checks engine names:

- ``compute_settings``: a valid ``config`` for the engine (default ``{}``);
- ``engine_endpoint``: an :class:`Endpoint` to a live (or emulated) peer: enables ``dbt debug`` and
  a successful ``validate_connection``;
- ``address_settings``: ``(host, port) -> config`` for engines reached over the network: enables the
  refused-port and silent-server checks;
- ``catalog`` and ``sql_executor``: the Iceberg catalog to attach to, and how to run SQL on the
  engine, for engines whose ``get_catalog_attachment_sql`` returns statements;
- ``client_error``: an exception raised by the engine's own client, for error translation.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from floe.errors import FloeError, PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, ResourceOverrides, SecretReference
from floe.plugins import Engine, EngineRegistry

_ENV_VAR = re.compile(r"\{\{\s*env_var\(\s*'([^']+)'\s*\)\s*\}\}")
SILENT_TIMEOUT = 3.0
"""Seconds given to ``validate_connection`` against a silent server (the hard cap is 10)."""


@attrs.frozen
class Endpoint:
    """A live peer: settings that reach it, and the environment its secret references read."""

    config: Mapping[str, Any]
    environ: Mapping[str, str] = attrs.field(factory=dict)
    dbt_debug: bool = True


def render_env_vars(value: Any, environ: Mapping[str, str]) -> Any:
    """A profile with ``{{ env_var('X') }}`` replaced by values, as dbt renders it."""
    if isinstance(value, str):
        return _ENV_VAR.sub(lambda m: environ.get(m.group(1), ""), value)
    if isinstance(value, Mapping):
        return {k: render_env_vars(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [render_env_vars(v, environ) for v in value]
    return value


def secret_keys(schema: Mapping[str, Any]) -> list[str]:
    """Top-level config keys whose schema is a secret reference."""
    keys = []
    for key, sub in (schema.get("properties") or {}).items():
        text = json.dumps(sub)
        if "secretRef" in text or "secret_ref" in text:
            keys.append(key)
    return keys


class BaseComputePluginTests:
    """Inherit, provide ``engine_name``, and every hook of the engine is checked."""

    # -- fixtures a plugin author provides ------------------------------------------------------

    @pytest.fixture
    def engine_name(self) -> str:
        pytest.fail(
            "BaseComputePluginTests needs the engine's name: add to your test class\n"
            "    @pytest.fixture\n    def engine_name(self) -> str:\n        return 'myengine'\n"
            "(the name your plugin registers under the entry-point group `floe`)"
        )

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def engine_endpoint(self) -> Endpoint | None:
        return None

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]] | None:
        return None

    @pytest.fixture
    def catalog(self) -> CatalogConfig:
        return CatalogConfig(type="rest", name="lake", uri="http://127.0.0.1:9/catalog", warehouse="wh")

    @pytest.fixture
    def sql_executor(self) -> Callable[[list[str], ComputeConfig], None] | None:
        return None

    @pytest.fixture
    def client_error(self) -> BaseException:
        pytest.fail(
            "BaseComputePluginTests needs a real exception from your engine's client to check "
            "error translation (REQ-018): add a `client_error` fixture that provokes one, e.g. by "
            "running invalid SQL or connecting to a refused port, and returns it"
        )

    # -- fixtures of the suite ------------------------------------------------------------------

    @pytest.fixture
    def engine(self, engine_name: str) -> Engine:
        registry = EngineRegistry.discover()
        mine = [p for p in registry.problems if p.plugin == engine_name]
        assert not mine, "the engine plugin did not load: " + "; ".join(p.render() for p in mine)
        found = registry.get(engine_name)
        assert found is not None, (
            f"no engine {engine_name!r} is installed (installed: {', '.join(registry.names())}); "
            "register it under the entry-point group `floe` and install the distribution"
        )
        return found

    @pytest.fixture
    def target(self, tmp_path: Path) -> ProfileTarget:
        project = tmp_path / "product"
        project.mkdir()
        return ProfileTarget("dev", "compliance", project, project / ".floe")

    @pytest.fixture
    def compute(self, engine_name: str, compute_settings: dict[str, Any]) -> ComputeConfig:
        return ComputeConfig("compliance", engine_name, dict(compute_settings))

    @pytest.fixture
    def endpoint_env(self, engine_endpoint: Endpoint | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        for key, value in (engine_endpoint.environ if engine_endpoint else {}).items():
            monkeypatch.setenv(key, value)
        yield

    # -- schema and profile (REQ-012) -----------------------------------------------------------

    def test_config_schema_is_a_valid_json_schema(self, engine: Engine) -> None:
        from jsonschema import Draft202012Validator

        schema = engine.config_schema()
        Draft202012Validator.check_schema(schema)
        assert schema.get("type") == "object"

    @pytest.mark.req("REQ-012")
    def test_profile_has_type_threads_and_a_target(self, engine: Engine, compute: ComputeConfig,
                                                   target: ProfileTarget) -> None:  # fmt: skip
        profile = engine.generate_dbt_profile(compute, target)
        assert profile["type"] == engine.info.dbt_adapter
        assert isinstance(profile.get("threads"), int) and profile["threads"] >= 1
        assert {"schema", "dataset", "database", "catalog"} & set(profile), "no schema/dataset/database"

    @pytest.mark.req("REQ-012")
    def test_profile_passes_the_adapters_own_validation(self, engine: Engine, compute: ComputeConfig,
                                                        target: ProfileTarget) -> None:  # fmt: skip
        from dbt.adapters.factory import load_plugin

        credentials_class = load_plugin(engine.info.dbt_adapter)
        profile = render_env_vars(engine.generate_dbt_profile(compute, target), {})
        data = credentials_class.translate_aliases(dict(profile))
        data.pop("type", None)
        data.pop("threads", None)
        credentials_class.validate(data)
        credentials_class.from_dict(data)

    @pytest.mark.req("REQ-012")
    def test_profile_passes_dbt_debug_against_the_endpoint(
        self, engine: Engine, engine_name: str, engine_endpoint: Endpoint | None, target: ProfileTarget,
        tmp_path: Path, endpoint_env: None, monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        if engine_endpoint is None or not engine_endpoint.dbt_debug:
            pytest.skip("needs an `engine_endpoint` fixture (a live peer) to run dbt debug")
        import yaml
        from dbt.cli.main import dbtRunner

        compute = ComputeConfig("compliance", engine_name, dict(engine_endpoint.config))
        profile = engine.generate_dbt_profile(compute, target)
        project = tmp_path / "dbt"
        project.mkdir()
        (project / "dbt_project.yml").write_text(
            "name: floe_compliance\nversion: '1.0'\nconfig-version: 2\nprofile: floe_compliance\n"
        )
        (project / "profiles.yml").write_text(
            yaml.safe_dump({"floe_compliance": {"target": "dev", "outputs": {"dev": profile}}})
        )
        monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
        monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
        result = dbtRunner().invoke(["debug", "--project-dir", str(project), "--profiles-dir", str(project)])
        assert result.success, f"dbt debug failed with the generated profile: {result.exception}"

    # -- packages (REQ-017) ---------------------------------------------------------------------

    @pytest.mark.req("REQ-017")
    def test_required_packages_are_bounded_and_satisfied(self, engine: Engine) -> None:
        from importlib import metadata

        from packaging.requirements import Requirement

        packages = engine.get_required_dbt_packages()
        assert packages, "an engine needs at least its dbt adapter"
        assert any(Requirement(p).name.startswith("dbt-") for p in packages)
        for text in packages:
            requirement = Requirement(text)
            operators = {spec.operator for spec in requirement.specifier}
            assert operators & {">=", ">", "==", "~="}, f"{text}: no lower bound"
            assert operators & {"<", "<=", "==", "~="}, f"{text}: no upper bound"
            installed = metadata.version(requirement.name)
            assert requirement.specifier.contains(installed, prereleases=True), (
                f"{text} is not satisfied by the installed {requirement.name} {installed}"
            )

    # -- connection validation (REQ-014) --------------------------------------------------------

    @pytest.mark.req("REQ-014")
    def test_validate_connection_succeeds_against_the_endpoint(
        self, engine: Engine, engine_name: str, engine_endpoint: Endpoint | None, target: ProfileTarget,
        endpoint_env: None,
    ) -> None:  # fmt: skip
        if engine_endpoint is None:
            pytest.skip("needs an `engine_endpoint` fixture (a live peer)")
        compute = ComputeConfig("compliance", engine_name, dict(engine_endpoint.config))
        start = time.monotonic()
        result = engine.validate_connection(compute, target)
        assert time.monotonic() - start < 10.5
        assert result.success, result.message

    @pytest.mark.req("REQ-014")
    def test_validate_connection_to_a_refused_port_fails_fast_and_clearly(
        self, engine: Engine, engine_name: str, address_settings: Callable[[str, int], dict[str, Any]] | None,
        refused_address: tuple[str, int], target: ProfileTarget,
    ) -> None:  # fmt: skip
        if address_settings is None:
            pytest.skip("the engine is not reached over the network (no `address_settings` fixture)")
        compute = ComputeConfig("compliance", engine_name, address_settings(*refused_address))
        start = time.monotonic()
        result = engine.validate_connection(compute, target)
        assert time.monotonic() - start < 10.5
        assert not result.success
        _assert_actionable(result.message)

    @pytest.mark.req("REQ-014")
    def test_validate_connection_to_a_silent_server_answers_in_time(
        self, engine: Engine, engine_name: str, address_settings: Callable[[str, int], dict[str, Any]] | None,
        silent_server: tuple[str, int], target: ProfileTarget,
    ) -> None:  # fmt: skip
        if address_settings is None:
            pytest.skip("the engine is not reached over the network (no `address_settings` fixture)")
        compute = ComputeConfig("compliance", engine_name, address_settings(*silent_server))
        start = time.monotonic()
        result = engine.validate_connection(compute, target, timeout=SILENT_TIMEOUT)
        assert time.monotonic() - start < SILENT_TIMEOUT + 1.0
        assert not result.success
        _assert_actionable(result.message)

    # -- resources (REQ-015) --------------------------------------------------------------------

    @pytest.mark.req("REQ-015")
    def test_resource_requirements_are_valid_kubernetes(self, engine: Engine, compute: ComputeConfig) -> None:
        from kubernetes.client import V1ResourceRequirements

        from floe.resources import parse_quantity

        requirements = engine.get_resource_requirements(compute)
        model = V1ResourceRequirements(**requirements)
        assert model.requests and model.limits
        assert {"cpu", "memory"} <= set(model.requests) and {"cpu", "memory"} <= set(model.limits)
        for key, request in model.requests.items():
            assert parse_quantity(request) <= parse_quantity(model.limits.get(key, request))
        overridden = attrs.evolve(compute, resources=ResourceOverrides({"memory": "3Gi"}, {"memory": "5Gi"}))
        changed = engine.get_resource_requirements(overridden)
        assert changed["requests"]["memory"] == "3Gi" and changed["limits"]["memory"] == "5Gi"
        too_much = attrs.evolve(compute, resources=ResourceOverrides({"cpu": "64"}, {"cpu": "1"}))
        with pytest.raises(ValueError, match=r"above limits\.cpu"):
            engine.get_resource_requirements(too_much)

    # -- catalog attachment (REQ-013) -----------------------------------------------------------

    @pytest.mark.req("REQ-013")
    def test_catalog_attachment_sql_is_none_or_accepted_by_the_engine(
        self, engine: Engine, compute: ComputeConfig, catalog: CatalogConfig,
        sql_executor: Callable[[list[str], ComputeConfig], None] | None,
    ) -> None:  # fmt: skip
        statements = engine.get_catalog_attachment_sql(compute, catalog)
        if statements is None:
            return
        assert statements and all(isinstance(s, str) and s.strip() for s in statements)
        if sql_executor is None:
            pytest.fail("the engine returns attachment SQL: provide a `sql_executor` fixture that "
                        "runs statements on the engine (and a `catalog` fixture it can reach)")  # fmt: skip
        sql_executor(statements, compute)

    # -- secrets --------------------------------------------------------------------------------

    @pytest.mark.req("REQ-012")
    @pytest.mark.req("REQ-014")
    def test_secret_values_never_appear_in_any_output(
        self, engine: Engine, compute: ComputeConfig, target: ProfileTarget, catalog: CatalogConfig,
        address_settings: Callable[[str, int], dict[str, Any]] | None, refused_address: tuple[str, int],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        keys = secret_keys(engine.config_schema())
        base = dict(compute.config)
        if address_settings is not None:
            base.update(address_settings(*refused_address))
        for key in keys:
            variable = f"FLOE_CANARY_{key.upper()}"
            canary = "canary-" + secrets.token_hex(8)
            monkeypatch.setenv(variable, canary)
            secret_compute = attrs.evolve(compute, config={**base, key: SecretReference(variable)})
            outputs: list[str] = []
            dumped = ""
            try:
                dumped = json.dumps(engine.generate_dbt_profile(secret_compute, target), default=str)
                outputs.append(dumped)
            except FloeError as exc:
                outputs.append(exc.render())
            result = engine.validate_connection(secret_compute, target, timeout=SILENT_TIMEOUT)
            outputs += [repr(result), result.message, json.dumps(dict(result.details), default=str)]
            try:
                outputs.append(repr(engine.get_catalog_attachment_sql(secret_compute, catalog)))
            except FloeError as exc:
                outputs.append(exc.render())
            outputs.append(repr(secret_compute))
            leaked = [o for o in outputs if canary in o]
            assert not leaked, f"the value of secret {key!r} leaked: {leaked[0][:200]}"
            if dumped:
                assert f"env_var('{variable}')" in dumped, f"{key} is not referenced as an env_var"

    # -- errors (REQ-018) -----------------------------------------------------------------------

    @pytest.mark.req("REQ-018")
    def test_client_errors_become_actionable_plugin_errors(
        self, engine: Engine, compute: ComputeConfig, client_error: BaseException,
    ) -> None:  # fmt: skip
        translated = engine._hooks["floe_translate_error"](error=client_error, compute=compute)
        assert isinstance(translated, PluginExecutionError), (
            f"floe_translate_error returned {translated!r} for {type(client_error).__name__}: {client_error}"
        )
        assert translated.problems[0].fix, "a translated error must say how to fix it"
        _assert_actionable(translated.render())


def _assert_actionable(message: str) -> None:
    assert message.strip(), "an empty message is not actionable"
    assert "Traceback" not in message and 'File "' not in message, f"a stack trace leaked: {message[:300]}"
    assert len(message) < 2000, "a message this long is a dump, not advice"
