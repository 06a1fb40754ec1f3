"""The compliance suite itself (REQ-020): compliant engines pass it, broken engines fail it on the
right test, and a weakened copy of the suite is caught.

The toy engines of :mod:`tests.support.compliance_toys` are installed as a real distribution and
adopt the suite as a plugin author would (:mod:`tests.support.compliance_adoption`), in one
subprocess where the packages only floe's own tests use (``kubernetes``, ``hypothesis``…) cannot be
imported: an engine author needs floe and pytest only. Each class's outcome per test is read from
the run's JUnit XML and compared with :data:`BROKEN`: the tests that must fail (each with a
fragment of the reason) and, implicitly, every other test of the suite, which must pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs
import pytest

from tests.support import compliance_toys
from tests.support.pytest_runs import FOREIGN_PLUGINS, plugin_args

pytest_plugins = ["pytester"]

SUPPORT = Path(__file__).parent / "support"
TESTING = Path(__file__).parent.parent / "floe" / "testing"

SCHEMA = "test_config_schema_is_a_valid_json_schema"
TYPE = "test_profile_has_type_threads_and_a_target"
ADAPTER = "test_profile_passes_the_adapters_own_validation"
DBT_DEBUG = "test_profile_passes_dbt_debug_against_the_endpoint"
PACKAGES = "test_required_packages_are_bounded_and_satisfied"
SUCCEEDS = "test_validate_connection_succeeds_against_the_endpoint"
FAILS = "test_validate_connection_fails_clearly_where_nothing_answers"
IN_TIME = "test_validate_connection_to_a_peer_that_never_answers_answers_in_time"
RESOURCES = "test_resource_requirements_are_valid_kubernetes_requests_and_limits"
CATALOG = "test_catalog_attachment_is_as_declared_and_its_sql_runs"
CREDENTIALS = "test_credential_settings_are_secret_references_in_the_schema"
CANARY = "test_secret_values_never_appear_in_any_output"
ERRORS = "test_client_errors_become_actionable_plugin_errors"
ACCESS = "test_catalog_access_answers_at_once_and_says_how"
NAMESPACE = "test_run_profile_builds_into_the_runs_namespace"
RUN_ADAPTER = "test_run_profile_passes_the_adapters_own_validation"
PROJECT = "test_project_configs_and_macros_are_well_formed"
WORKER = "test_worker_setup_is_well_formed"
CATALOG_SECRETS = "test_run_profile_never_holds_the_catalogs_secrets"
RUN_SECRETS = "test_run_hooks_never_hold_a_secrets_value"
RUN = "test_a_transform_runs_twice_in_floe_run"
SUITE = {
    SCHEMA,
    TYPE,
    ADAPTER,
    DBT_DEBUG,
    PACKAGES,
    SUCCEEDS,
    FAILS,
    IN_TIME,
    RESOURCES,
    CATALOG,
    CREDENTIALS,
    CANARY,
    ERRORS,
    ACCESS,
    NAMESPACE,
    RUN_ADAPTER,
    PROJECT,
    WORKER,
    CATALOG_SECRETS,
    RUN_SECRETS,
    RUN,
}
"""Every test of ``BaseComputePluginTests``; a class that adopts it runs each once."""

NO_WAY = "cannot check that validate_connection fails where it should"
COMPLIANT = ("TestToy", "TestToyNet")
BROKEN: dict[str, dict[str, str]] = {
    # adopter class: {test that must fail: a fragment of why}; every other test must pass
    "TestNoType": {
        TYPE: "dbt needs the adapter's, 'duckdb'",
        DBT_DEBUG: "dbt debug failed",
        NAMESPACE: "the run profile's type is None",
    },
    "TestAlwaysOk": {
        FAILS: "succeeded against a path below a regular file",
        IN_TIME: "succeeded against a FIFO nobody writes",
    },
    "TestNetAlwaysOk": {
        FAILS: "succeeded against a refused port",
        IN_TIME: "succeeded against a silent server",
    },
    "TestNetHung": {IN_TIME: "did not return within its timeout of 3 s"},
    "TestLiteralSecret": {
        CREDENTIALS: "accepts a literal value for the credential 'password'",
        CANARY: "does not reference secret 'password'",
    },
    "TestLeaky": {
        CANARY: "the value of secret 'password' leaked",
        RUN_SECRETS: "the value of secret 'password' leaked into a run hook's answer",
    },
    "TestBadQuantities": {RESOURCES: "'100 m' is not a Kubernetes quantity"},
    "TestBadSql": {CATALOG: 'syntax error at or near "ATACH"'},
    "TestNoAttachment": {CATALOG: "declared attachment by SQL, but the hook returned None"},
    "TestUnbounded": {PACKAGES: "dbt-duckdb: no lower bound"},
    "TestUntranslated": {ERRORS: "floe_translate_error returned None"},
    "TestTraceback": {FAILS: "a stack trace leaked"},
    "TestBadSchema": {SCHEMA: "'text' is not valid"},
    "TestUndeclaredConnection": {FAILS: NO_WAY, IN_TIME: NO_WAY},
    "TestUndeclaredCatalog": {CATALOG: "declare how your engine reaches the Iceberg catalog"},
    "TestRunNoNamespace": {NAMESPACE: "builds into the run's namespace 'compliance_dev'"},
    "TestRunLeakyWorker": {RUN_SECRETS: "the value of secret 'password' leaked into a run hook's answer"},
    "TestRunLeakyCatalog": {CATALOG_SECRETS: "the value of the catalog's secret leaked"},
    "TestRunConnectingAccess": {ACCESS: "must decide from the settings alone, without connecting"},
    "TestRunBadConfigs": {
        PROJECT: "project configs go under dbt's resource keys",
        RUN: "project configs under 'model', which is no key of a dbt project",
    },
}
RUNS = ("TestToy", "TestToyNet", "TestRunBadConfigs")
"""The classes that run :data:`RUN` (``floe run`` twice: dbt processes, seconds each): the compliant
engines, and the broken engine whose fault only shows in a run. Each other broken engine has one
fault, which a check above catches; :data:`RUN` is deselected for it, to keep this run short."""


def checks_of(adopter: str) -> set[str]:
    """The tests of the suite the class ``adopter`` runs."""
    return SUITE if adopter in RUNS else SUITE - {RUN}


BRIDGE_SUITE = {
    "test_an_engine_attached_in_place_declares_no_bridge",
    "test_a_bridged_table_keeps_every_value_and_type",
    "test_a_load_replaces_the_rows_and_a_failed_load_leaves_them",
    "test_a_column_the_engine_cannot_keep_fails_naming_it",
}
"""The tests of ``BridgeTests`` (floe.testing.compliance_bridge), part of the suite."""
SUITE = SUITE | BRIDGE_SUITE
COMPLIANT += ("TestToyBridge",)  # a bridged engine passes every check
NO_HOOK = "has no floe_load_arrow hook"
BROKEN_BRIDGES: dict[str, dict[str, str]] = {
    # adopter class of BridgeTests alone: {test that must fail: a fragment of why}; the others must pass
    "TestBridgeLossy": {
        "test_a_bridged_table_keeps_every_value_and_type": "'at_utc': timestamp[us, tz=UTC] came back as timestamp[us]",
        "test_a_load_replaces_the_rows_and_a_failed_load_leaves_them": "the table holds exactly its rows",
    },
    "TestBridgeAppends": {
        "test_a_load_replaces_the_rows_and_a_failed_load_leaves_them": "replaces the rows (it does not append)"
    },
    "TestBridgeUnstaged": {
        "test_a_load_replaces_the_rows_and_a_failed_load_leaves_them": "a load whose data failed part way changed the table"
    },
    "TestBridgeStringly": {
        "test_a_column_the_engine_cannot_keep_fails_naming_it": "accepted column 'odd_interval'"
    },
    "TestBridgeHookless": {
        "test_a_bridged_table_keeps_every_value_and_type": NO_HOOK,
        "test_a_load_replaces_the_rows_and_a_failed_load_leaves_them": NO_HOOK,
        "test_a_column_the_engine_cannot_keep_fails_naming_it": "refused a column without naming it",
    },
    "TestInPlaceBridged": {"test_an_engine_attached_in_place_declares_no_bridge": "also declares a bridge"},
}
BLOCKED = ("kubernetes", "hypothesis", "sqlglot", "boto3", "botocore", "fakesnow", "bqemulator")
"""Packages of floe's test extra that neither floe nor pytest needs: not importable in the run."""
RUNNER = textwrap.dedent(f"""\
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {BLOCKED!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Blocked())
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
    """)


@attrs.frozen
class Mutant:
    """A copy of one module of the suite with one check weakened, and the class that runs it."""

    module: str
    check: str
    weakened: str
    adopter: str
    """The class (in compliance_adoption) running the weakened copy against a broken engine."""
    as_if: str
    """The class in :data:`BROKEN` whose expectations apply to that engine."""
    escapes: str
    """The test that lets the broken engine pass once weakened."""


MUTANTS = {
    "weakened_connection": Mutant(
        "compliance_connection.py",
        'assert not result.success, f"validate_connection succeeded against {what}: {result.message}"',
        "assert True",
        "TestWeakenedConnection",
        "TestAlwaysOk",
        FAILS,
    ),
    "weakened_secrets": Mutant(
        "compliance_secrets.py",
        "if not is_credential_key(setting.path[-1]) or setting.label in checked:",
        "if True:  # weakened: no setting is a credential",
        "TestWeakenedSecrets",
        "TestLiteralSecret",
        CREDENTIALS,
    ),
    "weakened_run": Mutant(
        "compliance_run.py",
        'assert NAMESPACE in {run_profile.get("schema"), run_profile.get("dataset")}',
        'assert True or NAMESPACE in {run_profile.get("schema"), run_profile.get("dataset")}',
        "TestWeakenedRun",
        "TestRunNoNamespace",
        NAMESPACE,
    ),
}


@attrs.frozen
class Outcome:
    passed: bool
    skipped: bool
    text: str


def outcomes(junit: Path) -> dict[str, dict[str, Outcome]]:
    """``{class: {test: outcome}}`` from pytest's JUnit XML."""
    found: dict[str, dict[str, Outcome]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        bad = [e for e in case if e.tag in ("failure", "error")]
        skipped = [e for e in case if e.tag == "skipped"]
        text = " ".join((e.get("message") or "") + "\n" + (e.text or "") for e in bad + skipped)
        cls = case.get("classname", "").rpartition(".")[2]
        found.setdefault(cls, {})[case.get("name", "")] = Outcome(
            not bad and not skipped, bool(skipped), text
        )
    return found


def mismatches(expected: dict[str, str], got: dict[str, Outcome], tests: set[str]) -> list[str]:
    """How ``got`` differs from failing exactly the tests of ``expected`` (for its reason) among ``tests``."""
    problems = [f"{name}: did not run" for name in sorted(tests - set(got))]
    problems += [f"{name}: ran, but is not in the suite" for name in sorted(set(got) - tests)]
    for name, outcome in sorted(got.items()):
        if outcome.skipped:
            problems.append(f"{name}: skipped ({outcome.text.strip()[:200]})")
        elif name in expected and outcome.passed:
            problems.append(f"{name}: passed, but must fail ({expected[name]})")
        elif name in expected and expected[name] not in outcome.text:
            problems.append(
                f"{name}: failed for another reason than {expected[name]!r}: {outcome.text[:600]}"
            )
        elif name not in expected and not outcome.passed:
            problems.append(f"{name}: failed, but must pass: {outcome.text[:600]}")
    return problems


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Outcome]]:
    """One run of every adopter class, with the toys installed and the test extra blocked."""
    root = tmp_path_factory.mktemp("compliance")
    site = root / "site"
    compliance_toys.install(site)
    for name, mutant in MUTANTS.items():
        source = (TESTING / mutant.module).read_text(encoding="utf-8")
        assert source.count(mutant.check) == 1, f"{mutant.module} changed: the check {name} weakens is gone"
        (site / f"{name}.py").write_text(source.replace(mutant.check, mutant.weakened), encoding="utf-8")
    (root / "test_adoption.py").write_text((SUPPORT / "compliance_adoption.py").read_text(encoding="utf-8"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    junit = root / "junit.xml"
    adopters = [*COMPLIANT, *BROKEN, *(mutant.adopter for mutant in MUTANTS.values())]
    deselected = [
        f"--deselect=test_adoption.py::{adopter}::{RUN}" for adopter in adopters if adopter not in RUNS
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            "-p",
            "no:cacheprovider",
            *plugin_args(),
            "-q",
            "--junitxml",
            str(junit),
            *deselected,
            "test_adoption.py",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return outcomes(junit)


@pytest.mark.req("REQ-020")
@pytest.mark.parametrize("adopter", COMPLIANT)
def test_a_compliant_engine_passes_every_check(run: dict[str, dict[str, Outcome]], adopter: str) -> None:
    """No test fails and none is skipped: a local engine and a network engine, each checked in full."""
    assert mismatches({}, run[adopter], checks_of(adopter)) == []


@pytest.mark.req("REQ-020")
@pytest.mark.parametrize("adopter", sorted(BROKEN))
def test_a_broken_engine_fails_the_suite_on_the_right_test(
    run: dict[str, dict[str, Outcome]], adopter: str
) -> None:
    assert mismatches(BROKEN[adopter], run[adopter], checks_of(adopter)) == []


@pytest.mark.req("REQ-020")
@pytest.mark.parametrize("adopter", sorted(BROKEN_BRIDGES))
def test_a_broken_bridge_fails_the_bridge_checks_on_the_right_test(
    run: dict[str, dict[str, Outcome]], adopter: str
) -> None:
    assert mismatches(BROKEN_BRIDGES[adopter], run[adopter], BRIDGE_SUITE) == []


@pytest.mark.req("REQ-020")
def test_the_suite_runs_with_floe_and_pytest_only(run: dict[str, dict[str, Outcome]]) -> None:
    """The whole run happened where the test extra's packages (kubernetes…) cannot be imported."""
    probe = run["test_adoption"]["test_the_suite_runs_where_kubernetes_cannot_be_imported"]
    assert probe.passed, probe.text


@pytest.mark.req("REQ-020")
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_weakened_suite_lets_a_broken_engine_through_and_is_caught(
    run: dict[str, dict[str, Outcome]], name: str
) -> None:
    """Against a copy of the suite with one check weakened, the broken engine that check catches
    passes it, and the comparison above reports exactly that."""
    mutant = MUTANTS[name]
    got = run[mutant.adopter]
    assert got[mutant.escapes].passed
    assert mismatches(BROKEN[mutant.as_if], got, set(got)) == [
        f"{mutant.escapes}: passed, but must fail ({BROKEN[mutant.as_if][mutant.escapes]})"
    ]


# -- fixtures the adopter forgot, and the pytest plugin ---------------------------------------------


def test_missing_fixtures_fail_with_instructions(pytester: pytest.Pytester) -> None:
    compliance_toys.install(pytester.path / "site")
    pytester._monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(pytester.path / "site"), os.environ.get("PYTHONPATH", "")])
    )
    pytester.makepyfile(
        test_adoption="""
        import pytest
        from floe.testing import BaseComputePluginTests

        class TestNothing(BaseComputePluginTests):
            pass

        class TestNoClientError(BaseComputePluginTests):
            @pytest.fixture
            def engine_name(self):
                return "toy"

        class TestNoEndpoint(BaseComputePluginTests):
            @pytest.fixture
            def engine_name(self):
                return "toy"
        """
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        *plugin_args(),
        "-k",
        "TestNothing and profile_has_type or NoClientError and client_errors or NoEndpoint and succeeds_against",
        timeout=240,
    )
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*needs the engine's name: add to your test class*",
            "*needs a real exception from your engine's client*",
            "*needs a live peer of your engine*",
        ]
    )


def test_the_pytest_plugin_leaves_unrelated_runs_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        def test_plain(request):
            assert "silent_server" not in request.fixturenames
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *plugin_args())
    result.assert_outcomes(passed=1)
    probe = (
        "import sys, floe.testing.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'dbt', 'duckdb', 'pyspark', 'kubernetes', 'jsonschema', 'floe.plugins'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    entry = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlib.metadata import entry_points; "
            "print([e.value for e in entry_points(group='pytest11') if e.name == 'floe'])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert entry.stdout.strip() == "['floe.testing.pytest_plugin']"


def test_floes_markers_stay_out_of_other_projects_runs(pytester: pytest.Pytester) -> None:
    """A project with ``--strict-markers`` that installs floe: its own ``@pytest.mark.req`` is an
    unknown marker (floe's plugin registers none), and the compliance suite still runs there."""
    compliance_toys.install(pytester.path / "site")
    pytester._monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(pytester.path / "site"), os.environ.get("PYTHONPATH", "")])
    )
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(
        test_theirs="""
        import pytest

        @pytest.mark.req("THEIRS-1")
        def test_marked():
            pass
        """
    )
    theirs = pytester.runpytest_subprocess("-p", "no:cacheprovider", *plugin_args(), "test_theirs.py")
    theirs.assert_outcomes(errors=1)
    theirs.stdout.fnmatch_lines(["*'req' not found in `markers` configuration option*"])
    (pytester.path / "test_adoption.py").write_text(
        (SUPPORT / "compliance_adoption.py").read_text(encoding="utf-8")
    )
    checks = (TYPE, RESOURCES, CREDENTIALS, ERRORS)  # each carried a marker once
    suite = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        *plugin_args(),
        *(f"test_adoption.py::TestToy::{check}" for check in checks),
        timeout=240,
    )
    suite.assert_outcomes(passed=len(checks))


def test_every_pytest_the_tests_start_leaves_out_exactly_the_plugins_that_cannot_load() -> None:
    """The installed pytest plugins that fail to import are :data:`FOREIGN_PLUGINS`, and each is
    disabled where the project starts pytest: its own configuration, the example engine's, and the
    command line of every pytest a test starts (:func:`tests.support.pytest_runs.plugin_args`)."""
    import configparser
    import shlex
    import tomllib

    probe = (
        "from importlib.metadata import entry_points\n"
        "for ep in entry_points(group='pytest11'):\n"
        "    try:\n        ep.load()\n"
        "    except Exception:\n        print(ep.name)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(FOREIGN_PLUGINS)
    root = Path(__file__).resolve().parents[1]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    example = tomllib.loads((root / "examples/floe-engine-postgres/pyproject.toml").read_text())
    for addopts in (config["tool:pytest"]["addopts"], example["tool"]["pytest"]["ini_options"]["addopts"]):
        words = shlex.split(addopts)
        disabled = {words[i + 1] for i, word in enumerate(words[:-1]) if word == "-p"}
        assert {f"no:{name}" for name in FOREIGN_PLUGINS} <= disabled, addopts
