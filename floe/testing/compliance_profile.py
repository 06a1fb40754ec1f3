"""Compliance: the engine's config schema, its dbt profile (REQ-012) and its packages (REQ-017)."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe.model import ComputeConfig, ProfileTarget
from floe.plugins import Engine
from floe.testing.compliance_base import Endpoint, EngineTestBase, call_hook, render_env_vars


class ProfileTests(EngineTestBase):
    """The config schema is a JSON Schema; the dbt profile is one dbt and its adapter accept."""

    def test_config_schema_is_a_valid_json_schema(self, engine: Engine) -> None:
        """Engine side: the schema the engine's own ``floe_config_schema`` returns (an engine that
        declares none gets floe's ``{"type": "object"}``, which passes)."""
        from jsonschema import Draft202012Validator

        schema = call_hook(engine, "floe_config_schema") or {"type": "object"}
        Draft202012Validator.check_schema(schema)
        assert schema.get("type") == "object", (
            "an engine's config is a mapping: give the schema `type: object`"
        )

    def test_profile_has_type_threads_and_a_target(
        self, engine: Engine, compute: ComputeConfig, target: ProfileTarget
    ) -> None:
        """Engine side: the mapping the engine's own ``floe_generate_dbt_profile`` returns. (REQ-012)"""
        profile = call_hook(engine, "floe_generate_dbt_profile", compute=compute, target=target)
        assert isinstance(profile, dict), f"the profile is a {type(profile).__name__}, not a dict"
        assert profile.get("type") == engine.info.dbt_adapter, (
            f"the profile's type is {profile.get('type')!r}; dbt needs the adapter's, {engine.info.dbt_adapter!r}"
        )
        assert isinstance(profile.get("threads"), int) and profile["threads"] >= 1, "threads: a positive int"
        assert {"schema", "dataset", "database", "catalog"} & set(profile), "no schema/dataset/database"

    def test_profile_passes_the_adapters_own_validation(
        self, engine: Engine, compute: ComputeConfig, target: ProfileTarget
    ) -> None:
        """Engine side: the engine's profile, through the dbt adapter's own credential checks. (REQ-012)"""
        from dbt.adapters.factory import load_plugin

        credentials_class = load_plugin(engine.info.dbt_adapter)
        profile = call_hook(engine, "floe_generate_dbt_profile", compute=compute, target=target)
        data = credentials_class.translate_aliases(dict(render_env_vars(profile, {})))
        data.pop("type", None)
        data.pop("threads", None)
        credentials_class.validate(data)
        credentials_class.from_dict(data)

    def test_profile_passes_dbt_debug_against_the_endpoint(
        self,
        engine: Engine,
        engine_name: str,
        engine_endpoint: Endpoint,
        target: ProfileTarget,
        tmp_path: Path,
        endpoint_env: None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Engine side: ``dbt debug`` (connection included) with the engine's profile for the peer. (REQ-012)"""
        if not engine_endpoint.dbt_debug:
            pytest.skip(
                "the adopter declared that dbt debug cannot run against its peer (Endpoint(dbt_debug=False))"
            )
        import yaml
        from dbt.cli.main import dbtRunner

        compute = ComputeConfig("compliance", engine_name, dict(engine_endpoint.config))
        profile = call_hook(engine, "floe_generate_dbt_profile", compute=compute, target=target)
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


class PackageTests(EngineTestBase):
    """The engine names its dbt adapter packages with bounds that the installed versions meet."""

    def test_required_packages_are_bounded_and_satisfied(self, engine: Engine) -> None:
        """Engine side: the list the engine's own ``floe_get_required_dbt_packages`` returns. (REQ-017)"""
        from importlib import metadata

        from packaging.requirements import Requirement

        packages = call_hook(engine, "floe_get_required_dbt_packages")
        assert isinstance(packages, list) and packages, "an engine needs at least its dbt adapter"
        assert any(Requirement(p).name.startswith("dbt-") for p in packages), "no dbt-* package"
        for text in packages:
            requirement = Requirement(text)
            operators = {spec.operator for spec in requirement.specifier}
            assert operators & {">=", ">", "==", "~="}, f"{text}: no lower bound"
            assert operators & {"<", "<=", "==", "~="}, f"{text}: no upper bound"
            installed = metadata.version(requirement.name)
            assert requirement.specifier.contains(installed, prereleases=True), (
                f"{text} is not satisfied by the installed {requirement.name} {installed}"
            )
