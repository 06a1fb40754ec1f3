"""The plugin system (REQ-011, REQ-018, REQ-019): discovery, validation, calling engines."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from floe import hookimpl
from floe.compute import ComputePlugin
from floe.errors import PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference, ValidationResult
from floe.plugins import EngineRegistry
from tests.support.engines import hookimpl_engine
from tests.support.timing import assert_not_hung, record_deadlines


class AbcEngine(ComputePlugin):
    name = "abcengine"
    version = "1.0"
    dbt_adapter = "abcengine"

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, object]:
        return {"type": "abcengine", "threads": 1, "schema": target.environment}

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-abcengine>=1,<2"]

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        if compute.config.get("hang"):
            time.sleep(30)
        if compute.config.get("explode"):
            raise ConnectionError(f"refused with token {os.environ['CANARY_TOKEN']}")
        return ValidationResult(True, "ok", {})

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        raise RuntimeError("catalog unreachable")

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        if isinstance(error, RuntimeError):
            return PluginExecutionError(
                self.name,
                "attach",
                str(error),
                "start the catalog",
                compute=compute.name if compute else None,
            )
        return None


TARGET = ProfileTarget("dev", "p", Path("/tmp/p"), Path("/tmp/p/.floe"))


@pytest.mark.req("REQ-011")
def test_abc_has_the_five_abstract_methods() -> None:
    assert ComputePlugin.__abstractmethods__ == {
        "generate_dbt_profile",
        "get_required_dbt_packages",
        "validate_connection",
        "get_resource_requirements",
        "get_catalog_attachment_sql",
    }
    with pytest.raises(TypeError):
        type("Partial", (ComputePlugin,), {"name": "x", "version": "1", "dbt_adapter": "x"})()


@pytest.mark.req("REQ-011")
def test_abc_subclass_and_plain_hookimpls_are_called_the_same_way() -> None:
    registry = EngineRegistry.discover(extra=[("abcengine", AbcEngine), ("plain", hookimpl_engine("plain"))])
    assert not [p for p in registry.problems if p.distribution == "in-process"]
    for name in ("abcengine", "plain"):
        engine = registry.engines[name]
        compute = ComputeConfig(name, name)
        assert engine.generate_dbt_profile(compute, TARGET)["type"] == name
        assert engine.get_required_dbt_packages()[0].startswith(f"dbt-{name}")
        assert engine.validate_connection(compute, TARGET).success
        assert set(engine.get_resource_requirements(compute)) == {"requests", "limits"}


def _broken_plugins() -> list[tuple[str, object]]:
    malformed = types.ModuleType("malformed")

    @hookimpl
    def floe_generate_dbt_profile(compute, target, flavour):  # type: ignore[no-untyped-def]
        return {}

    malformed.floe_generate_dbt_profile = floe_generate_dbt_profile  # type: ignore[attr-defined]
    typo = hookimpl_engine("typo")

    @hookimpl
    def floe_generate_profile(compute):  # type: ignore[no-untyped-def]
        return {}

    typo.floe_generate_profile = floe_generate_profile  # type: ignore[attr-defined]
    incomplete = types.ModuleType("incomplete")
    incomplete.floe_engine_info = hookimpl_engine("incomplete").floe_engine_info  # type: ignore[attr-defined]
    return [
        ("malformed", malformed),
        ("typo", typo),
        ("old", hookimpl_engine("old", api_version=99)),
        ("incomplete", incomplete),
        ("good", hookimpl_engine("good")),
    ]


@pytest.mark.req("REQ-019")
def test_broken_plugins_are_reported_with_name_and_hook_not_a_crash() -> None:
    registry = EngineRegistry.discover(extra=_broken_plugins())
    assert "good" in registry.names()
    problems = {p.plugin: p for p in registry.problems if p.distribution == "in-process"}
    assert set(problems) == {"malformed", "typo", "old", "incomplete"}
    assert (
        problems["malformed"].hook == "floe_generate_dbt_profile"
        and "flavour" in problems["malformed"].message
    )
    assert problems["typo"].hook == "floe_generate_profile"
    assert problems["old"].hook == "floe_engine_info" and "API 99" in problems["old"].message
    assert problems["incomplete"].hook == "floe_generate_dbt_profile"
    assert all(p.distribution == "in-process" for p in problems.values())


def test_env_var_disables_named_plugins() -> None:
    everything = EngineRegistry.discover()
    assert "duckdb" in everything.names()
    registry = EngineRegistry.discover(
        extra=[("good", hookimpl_engine("good"))], environ={"FLOE_DISABLE_PLUGINS": "nothing, duckdb"}
    )
    assert "duckdb" not in registry.names() and "good" in registry.names()
    assert registry.disabled == ["nothing", "duckdb"]
    assert set(registry.names()) == set(everything.names()) - {"duckdb"} | {"good"}


@pytest.mark.req("REQ-018")
def test_engine_errors_become_actionable_and_scrub_secrets(monkeypatch) -> None:
    monkeypatch.setenv("CANARY_TOKEN", "canary-7f3a9c")
    engine = EngineRegistry.discover(extra=[("abcengine", AbcEngine)]).engines["abcengine"]
    compute = ComputeConfig("c1", "abcengine", {"explode": True, "token": SecretReference("CANARY_TOKEN")})
    result = engine.validate_connection(compute, TARGET)
    assert not result.success and "canary-7f3a9c" not in repr(result) and "***" in result.message
    with pytest.raises(PluginExecutionError) as exc:
        engine.get_catalog_attachment_sql(compute, CatalogConfig("rest", uri="http://127.0.0.1:1"))
    assert "start the catalog" in exc.value.render() and "c1" in exc.value.render()


@pytest.mark.req("REQ-014")
def test_a_hung_engine_still_answers_within_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = EngineRegistry.discover(extra=[("abcengine", AbcEngine)]).engines["abcengine"]
    deadlines = record_deadlines(monkeypatch)
    start = time.monotonic()
    result = engine.validate_connection(ComputeConfig("c", "abcengine", {"hang": True}), TARGET, timeout=1.0)
    assert_not_hung(time.monotonic() - start, 1.0)
    # the answer is floe's deadline, the one set from the timeout asked for
    assert not result.success and "no answer within 1 s" in result.message
    assert result.details == {"engine": "abcengine", "timeout_s": 1.0}
    assert deadlines == [1.0]  # floe waited for the engine exactly as long as the timeout asked


def test_entry_point_discovery_reports_broken_distributions(tmp_path: Path) -> None:
    """A real installed distribution (dist-info on sys.path) with a broken and a good engine."""
    site = tmp_path / "site"
    (site / "acme_engines").mkdir(parents=True)
    (site / "acme_engines" / "__init__.py").write_text(
        textwrap.dedent("""\
        from floe import hookimpl
        @hookimpl
        def floe_generate_dbt_profile(compute, target, flavour):
            return {}
        """)
    )
    (site / "acme_engines" / "crash.py").write_text("raise ImportError('missing driver')\n")
    dist = site / "acme_engines-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-engines\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[floe]\nacme = acme_engines\ncrash = acme_engines.crash\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "floe", "engines"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "duckdb" in proc.stdout
    assert "plugin 'acme' (from acme-engines, hook floe_generate_dbt_profile)" in proc.stderr
    assert (
        "plugin 'crash' (from acme-engines): cannot be imported: ImportError: missing driver" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
