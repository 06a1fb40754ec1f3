"""The compliance suite itself (REQ-020), exercised as a plugin author uses it, with pytester."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

ENGINE = '''
from typing import Any
from floe import ComputePlugin, ValidationResult
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget


class ToyEngine(ComputePlugin):
    """An engine that runs dbt-duckdb in memory: real enough for the suite's checks."""

    name = "toy"
    version = "1.0"
    dbt_adapter = "duckdb"

    def config_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {
            "token": {"$ref": "https://floe.dev/schemas/v1/definitions.schema.json#/$defs/secretRef"}}}

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        profile: dict[str, Any] = {"type": "duckdb", "path": ":memory:", "schema": "main", "threads": 1}
        if "token" in compute.config:
            profile["settings"] = {"floe_token": LEAK(compute.config["token"])}
        return profile

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-duckdb>=1.11,<1.12"]

    def validate_connection(self, compute: ComputeConfig, target: ProfileTarget,
                            timeout: float) -> ValidationResult:
        return ValidationResult(True, "in memory")

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> None:
        return None

    def translate_error(self, error: BaseException, compute: ComputeConfig | None) -> Any:
        from floe.errors import PluginExecutionError
        return PluginExecutionError("toy", "query", str(error), "check the SQL")


plugin = ToyEngine()
'''

ADOPTION = '''
import pytest
from floe.testing import BaseComputePluginTests


class TestToy(BaseComputePluginTests):
    @pytest.fixture
    def engine_name(self):
        return "toy"

    @pytest.fixture
    def client_error(self):
        return ValueError("syntax error at or near 'selec'")
'''


def _install_toy_engine(pytester: pytest.Pytester, leak: str) -> dict[str, str]:
    """A real distribution (dist-info + entry point) on a path of its own, as pip would leave it."""
    site = pytester.path / "site"
    site.mkdir()
    (site / "toy_engine.py").write_text(ENGINE.replace("LEAK", leak))
    dist = site / "toy_engine-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-engine\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[floe]\ntoy = toy_engine:plugin\n")
    import os

    return {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _run(pytester: pytest.Pytester, env: dict[str, str], *args: str) -> pytest.RunResult:
    for key, value in env.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)


@pytest.mark.req("REQ-020")
def test_one_class_adopts_the_whole_suite(pytester: pytest.Pytester) -> None:
    env = _install_toy_engine(pytester, leak="(lambda ref: ref.as_env_var())")
    pytester.makepyfile(test_toy=ADOPTION)
    result = _run(pytester, env, "-rs")
    result.assert_outcomes(passed=8, skipped=4)
    # capabilities the toy engine does not declare are skipped with the reason, never silently
    result.stdout.fnmatch_lines(["*needs an `engine_endpoint` fixture*", "*not reached over the network*"])


@pytest.mark.req("REQ-020")
def test_a_leaking_engine_fails_the_secret_check(pytester: pytest.Pytester) -> None:
    env = _install_toy_engine(pytester, leak="(lambda ref: __import__('os').environ[ref.name])")
    pytester.makepyfile(test_toy=ADOPTION)
    result = _run(pytester, env, "-k", "secret")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the value of secret 'token' leaked*"])


@pytest.mark.req("REQ-020")
def test_missing_fixtures_fail_with_instructions(pytester: pytest.Pytester) -> None:
    env = _install_toy_engine(pytester, leak="(lambda ref: ref.as_env_var())")
    pytester.makepyfile(test_adoption="""
        import pytest
        from floe.testing import BaseComputePluginTests

        class TestNothing(BaseComputePluginTests):
            pass

        class TestNoClientError(BaseComputePluginTests):
            @pytest.fixture
            def engine_name(self):
                return "toy"
        """)
    result = _run(pytester, env, "-k", "TestNothing and profile_has_type or NoClientError and client_errors")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*needs the engine's name: add to your test class*",
                                 "*needs a real exception from your engine's client*"])  # fmt: skip


def test_the_pytest_plugin_leaves_unrelated_runs_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="""
        def test_plain(request):
            assert "silent_server" not in request.fixturenames
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    probe = ("import sys, floe.testing.pytest_plugin; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "{'dbt', 'duckdb', 'pyspark', 'kubernetes', 'jsonschema', 'floe.plugins'}))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    entry = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points; "
                            "print([e.value for e in entry_points(group='pytest11') if e.name == 'floe'])"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert entry.stdout.strip() == "['floe.testing.pytest_plugin']"


