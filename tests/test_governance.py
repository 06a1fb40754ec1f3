"""Governance (REQ-021…024): registries, narrowing along the chain, selections, parity."""

from __future__ import annotations

import json
import textwrap

import pytest

from floe.compiler import compile_path, write_artifacts
from floe.errors import GovernanceError, InvalidComputeError
from floe.governance import ComputeRegistry
from floe.model import ComputeConfig
from tests.conftest import ENTERPRISE, product

DOMAIN = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {name: sales}
plugins:
  compute:
    approved: [duckdb, spark]
"""


@pytest.mark.req("REQ-021")
def test_registry_holds_n_computes_and_a_default() -> None:
    registry = ComputeRegistry({n: ComputeConfig(n, n) for n in ("duckdb", "spark")}, "duckdb")
    assert registry.resolve(None).name == "duckdb"
    assert registry.resolve("spark").name == "spark"
    with pytest.raises(ValueError, match="not approved"):
        ComputeRegistry({"duckdb": ComputeConfig("duckdb", "duckdb")}, "spark")
    with pytest.raises(ValueError, match="at least one"):
        ComputeRegistry({}, "duckdb")
    with pytest.raises(InvalidComputeError, match="'trino' is not approved"):
        registry.resolve("trino")


@pytest.mark.req("REQ-021")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("default: duckdb", "default: trino"), "default compute 'trino' is not approved at this level"),
        (
            ("      - snowflake\n", "      - snowflake\n      - snowflake\n"),
            "compute 'snowflake' is approved twice",
        ),
        (("      - bigquery\n", "      - teradata\n"), "needs engine 'teradata', which is not installed"),
        (("    default: duckdb\n", ""), "must name its default compute"),
    ],
)
def test_enterprise_registry_errors(write, engines, change: tuple[str, str], message: str) -> None:
    manifest = write("platform/enterprise.yaml", ENTERPRISE.replace(*change))
    with pytest.raises(GovernanceError) as exc:
        compile_path(manifest, engines)
    assert message in exc.value.render()
    assert exc.value.problems[0].line is not None


def test_settings_holding_jinja_are_refused_where_they_are_written(write, engines) -> None:
    """dbt renders every string of profiles.yml as Jinja: a setting with ``{{``, ``{%`` or ``{#`` (in a
    value or a key, in ``approved`` or in an environment's override) would run at dbt's start."""
    manifest = write(
        "platform/enterprise.yaml",
        ENTERPRISE.replace(
            "        config: { threads: 8 }\n",
            "        config: { threads: 8, path: \"{{ env_var('HOME') }}/x.duckdb\", settings: { '{%k': ok } }\n",
        )
        + "environments:\n  - name: dev\n    overrides:\n      spark: { cluster: 'a{#b' }\n",
    )
    with pytest.raises(GovernanceError) as exc:
        compile_path(manifest, engines)
    lines = manifest.read_text().splitlines()
    config, override = (
        next(i for i, text in enumerate(lines, 1) if marker in text) for marker in ("{%k", "a{#b")
    )
    found = {(p.line, p.path, p.message) for p in exc.value.problems}
    assert found == {
        (
            config,
            "$.plugins.compute.approved[0].config.path",
            "this value contains '{{', which dbt would render as Jinja",
        ),
        (
            config,
            "$.plugins.compute.approved[0].config.settings['{%k']",
            "this key contains '{%', which dbt would render as Jinja",
        ),
        (
            override,
            "$.environments[0].overrides.spark.cluster",
            "this value contains '{#', which dbt would render as Jinja",
        ),
    }, exc.value.render()
    plain = write(
        "platform/plain.yaml", ENTERPRISE.replace("{ threads: 8 }", "{ threads: 8, path: 'a{b}c.duckdb' }")
    )
    compile_path(plain, engines)  # a lone brace is no Jinja


@pytest.mark.req("REQ-021")
def test_missing_engine_error_lists_installed_engines(write, engines) -> None:
    manifest = write(
        "platform/enterprise.yaml", ENTERPRISE.replace("      - bigquery\n", "      - teradata\n")
    )
    with pytest.raises(GovernanceError) as exc:
        compile_path(manifest, engines)
    assert f"an installed engine: {', '.join(engines.names())}" in exc.value.render()
    assert "duckdb" in engines.names()


@pytest.mark.req("REQ-022")
def test_spec_per_transform_selection_and_default(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(
        write,
        """\
        - type: dbt
          path: models/staging/
          compute: spark
        - type: dbt
          path: models/marts/
          compute: duckdb
        - type: dbt
          path: models/seeds/
        """,
    )
    compiled = compile_path(path, engines)
    assert [(t.path, t.compute) for t in compiled.transforms] == [
        ("models/staging/", "spark"),
        ("models/marts/", "duckdb"),
        ("models/seeds/", "duckdb"),
    ]


@pytest.mark.req("REQ-022")
@pytest.mark.req("REQ-023")
def test_spec_domain_restriction_is_enforced(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    write("platform/sales.yaml", DOMAIN.replace("../enterprise.yaml", "enterprise.yaml"))
    ok = product(write, "  - {type: dbt, path: models/a/, compute: spark}\n", platform="platform/sales.yaml")
    assert compile_path(ok, engines).governance.registry.names() == ["duckdb", "spark"]
    bad = product(
        write,
        """\
        - {type: dbt, path: models/a/, compute: spark}
        - {type: dbt, path: models/b/, compute: snowflake}
        - {type: dbt, path: models/c/, compute: trino}
        """,
        platform="platform/sales.yaml",
    )
    with pytest.raises(InvalidComputeError) as exc:
        compile_path(bad, engines)
    first, second = exc.value.problems
    assert first.path == "$.transforms[1].compute" and first.line == 7
    assert "transform 'b' selects compute 'snowflake'" in first.message
    assert "[duckdb, spark]" in first.message
    assert "removed by manifest 'sales'" in first.message and "sales.yaml:8" in first.message
    assert (
        "compute 'trino'" in second.message
        and "no manifest in the chain (acme → sales) ever approved it" in second.message
    )


@pytest.mark.req("REQ-023")
def test_domain_cannot_widen_and_says_why(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    domain = write("platform/domains/x.yaml", DOMAIN.replace("[duckdb, spark]", "[duckdb, trino]"))
    with pytest.raises(GovernanceError) as exc:
        compile_path(domain, engines)
    (problem,) = exc.value.problems
    assert "compute 'trino' is not approved by the parent manifest" in problem.message
    assert problem.path == "$.plugins.compute.approved[1]"


@pytest.mark.req("REQ-023")
def test_any_depth_narrowing_config_merge_and_default_inheritance(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    write("platform/domains/sales.yaml", DOMAIN)
    write(
        "platform/domains/emea.yaml",
        """\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: domain
        parent: sales.yaml
        metadata: {name: emea}
        plugins:
          compute:
            approved:
              - name: spark
                config: { threads: 3 }
            default: spark
        """,
    )
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/emea.yaml")
    compiled = compile_path(path, engines)
    gov = compiled.governance
    assert [d.data["metadata"]["name"] for d in gov.chain] == ["acme", "sales", "emea", "orders"]
    assert gov.registry.names() == ["spark"] and gov.registry.default == "spark"
    assert gov.registry.approved["spark"].config == {"cluster": "spark.svc", "threads": 3}
    assert compiled.transforms[0].compute == "spark"


@pytest.mark.req("REQ-023")
def test_default_no_longer_approved_must_be_reset(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    domain = write("platform/domains/d.yaml", DOMAIN.replace("[duckdb, spark]", "[spark]"))
    with pytest.raises(GovernanceError, match="inherited default 'duckdb' is no longer approved"):
        compile_path(domain, engines)


def test_parent_cycles_and_missing_parents_are_clear(write, engines) -> None:
    write("a.yaml", DOMAIN.replace("../enterprise.yaml", "b.yaml"))
    b = write("b.yaml", DOMAIN.replace("../enterprise.yaml", "a.yaml"))
    with pytest.raises(GovernanceError, match=r"parent cycle: \S*b.yaml → \S*a.yaml → \S*b.yaml"):
        compile_path(b, engines)
    lost = write("c.yaml", DOMAIN.replace("../enterprise.yaml", "nowhere.yaml"))
    with pytest.raises(GovernanceError, match=r"parent manifest 'nowhere\.yaml' not found"):
        compile_path(lost, engines)


@pytest.mark.req("REQ-024")
def test_environments_vary_settings_never_compute(write, engines) -> None:
    write(
        "platform/enterprise.yaml",
        ENTERPRISE
        + textwrap.dedent("""\
        environments:
          - name: dev
          - name: prod
            overrides:
              spark: { schema: prod_analytics, password: {secret_ref: SPARK_PROD_PW} }
        """),
    )
    path = product(
        write, "  - {type: dbt, path: models/a/, compute: spark}\n  - {type: dbt, path: models/b/}\n"
    )
    compiled = compile_path(path, engines)
    write_artifacts(compiled)
    data = json.loads((path / "target/floe/compiled.json").read_text())
    assert data["environments"] == ["dev", "prod"]
    assert [(t["path"], t["compute"]) for t in data["transforms"]] == [
        ("models/a/", "spark"),
        ("models/b/", "duckdb"),
    ]
    import yaml

    profiles = yaml.safe_load((path / "target/floe/profiles.yml").read_text())
    spark = profiles["floe_spark"]["outputs"]
    assert {o["type"] for o in spark.values()} == {"spark"}
    assert spark["prod"]["schema"] == "prod_analytics" and spark["dev"]["schema"] == "dev"
    assert spark["prod"]["password"] == "{{ env_var('SPARK_PROD_PW') }}"


@pytest.mark.req("REQ-024")
def test_environment_override_is_validated_against_engine_schema(write, engines) -> None:
    manifest = write(
        "platform/enterprise.yaml",
        ENTERPRISE
        + textwrap.dedent("""\
        environments:
          - name: prod
            overrides:
              spark: { threads: lots }
        """),
    )
    with pytest.raises(GovernanceError) as exc:
        compile_path(manifest, engines)
    (problem,) = exc.value.problems
    assert (problem.line, problem.path) == (18, "$.environments[0].overrides.spark.threads")


@pytest.mark.req("REQ-015")
def test_resources_are_overridden_from_the_manifest_and_checked(write, engines) -> None:
    override = ENTERPRISE.replace(
        "        config: { threads: 8 }\n",
        "        config: { threads: 8 }\n"
        "        resources: { requests: { memory: 6Gi }, limits: { cpu: '3' } }\n",
    )
    compiled = compile_path(write("platform/enterprise.yaml", override), engines)
    duck = compiled.governance.registry.approved["duckdb"]
    requirements = engines.engines["duckdb"].get_resource_requirements(duck)
    assert requirements["requests"]["memory"] == "6Gi" and requirements["limits"]["cpu"] == "3"
    assert requirements["limits"]["memory"] == "6Gi"  # a limit below an overridden request follows it
    bad_quantity = override.replace("memory: 6Gi", "memory: lots")
    with pytest.raises(Exception) as exc:
        compile_path(write("platform/enterprise.yaml", bad_quantity), engines)
    assert "$.plugins.compute.approved[0].resources.requests.memory" in exc.value.render()  # type: ignore[attr-defined]
    above = override.replace("limits: { cpu: '3' }", "limits: { cpu: '3', memory: 2Gi }")
    with pytest.raises(GovernanceError) as exc2:
        compile_path(write("platform/enterprise.yaml", above), engines)
    assert "requests.memory 6Gi is above limits.memory 2Gi" in exc2.value.render()
    assert exc2.value.problems[0].line == 10  # the `resources:` line


def test_a_config_error_is_reported_once_where_it_was_written(write, engines) -> None:
    manifest = write(
        "platform/enterprise.yaml",
        ENTERPRISE.replace("config: { threads: 8 }", "config: { threads: 8, bogus: 1 }")
        + textwrap.dedent("""\
        environments:
          - name: prod
            overrides:
              duckdb: { schema: prod }
        """),
    )
    with pytest.raises(GovernanceError) as exc:
        compile_path(manifest, engines)
    assert [(p.line, p.path) for p in exc.value.problems] == [
        (9, "$.plugins.compute.approved[0].config.bogus")
    ]
