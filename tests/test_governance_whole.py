"""Governance that cannot be bypassed: every manifest checked whole, and narrow-only for every
governed setting (the catalog, resources, environment names), each refusal located where it is
written and naming the manifest whose rule it breaks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from floe.compiler import compile_path
from floe.errors import EnvironmentParityError, FloeError, GovernanceError
from tests.conftest import ENTERPRISE, product

SECRET = "S3cr3t!Pa55"

NARROWING_DOMAIN = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {name: sales}
plugins:
  compute:
    approved: [duckdb]
"""


def line_of(path: Path, marker: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if marker in text)


def failure(path: Path, engines) -> FloeError:  # type: ignore[no-untyped-def]
    with pytest.raises(FloeError) as exc:
        compile_path(path, engines)
    return exc.value


def narrowed_away(write, settings: str, extra: str = "") -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """An enterprise whose snowflake compute holds ``settings``, a domain narrowing it away, a product."""
    enterprise = write(
        "platform/enterprise.yaml",
        ENTERPRISE.replace("      - snowflake\n", f"      - name: snowflake\n        config: {settings}\n")
        + extra,
    )
    domain = write("platform/domains/sales.yaml", NARROWING_DOMAIN)
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/sales.yaml")
    return enterprise, domain, path


# -- 1. every manifest is checked whole --------------------------------------------------------------


@pytest.mark.req("REQ-023")
@pytest.mark.parametrize(
    ("settings", "path", "message"),
    [
        (f'{{ password: "{SECRET}" }}', "config.password", "'password' holds a literal credential"),
        ("{ threads: many }", "config.threads", "expected an integer, found 'many'"),
        ("{ treads: 4 }", "config.treads", "unknown key 'treads'"),
    ],
)
def test_a_compute_narrowed_away_below_is_still_checked_where_it_is_written(
    write, engines, settings: str, path: str, message: str
) -> None:
    enterprise, domain, product_dir = narrowed_away(write, settings)
    line = line_of(enterprise, "name: snowflake") + 1
    for target in (product_dir, domain, enterprise):
        error = failure(target, engines)
        assert isinstance(error, GovernanceError)
        assert {(p.line, p.path) for p in error.problems} == {
            (line, f"$.plugins.compute.approved[2].{path}")
        }, error.render()
        assert all(str(enterprise).endswith(p.file or "?") for p in error.problems)
        assert any(message in p.message for p in error.problems), error.render()
        assert SECRET not in error.render()


def test_an_override_of_a_compute_narrowed_away_is_checked(write, engines) -> None:
    extra = "environments:\n  - name: dev\n  - name: prod\n    overrides:\n      snowflake: { threads: lots, token: abc }\n"
    enterprise, _, product_dir = narrowed_away(write, "{ threads: 2 }", extra)
    error = failure(product_dir, engines)
    line = line_of(enterprise, "threads: lots")
    found = {(p.line, p.path, p.message) for p in error.problems}
    assert (
        line,
        "$.environments[1].overrides.snowflake.threads",
        "expected an integer, found 'lots'",
    ) in found
    assert (
        line,
        "$.environments[1].overrides.snowflake.token",
        "'token' holds a literal credential",
    ) in found


def test_a_literal_credential_under_a_compute_whose_engine_is_not_installed_is_refused(
    write, engines
) -> None:
    """The engine of a compute narrowed away need not be installed; a literal secret is still an error."""
    enterprise = write(
        "platform/enterprise.yaml",
        ENTERPRISE.replace(
            "      - bigquery\n",
            f"      - name: teradata\n        config: {{ host: td, password: '{SECRET}' }}\n",
        ),
    )
    write("platform/domains/sales.yaml", NARROWING_DOMAIN)
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/sales.yaml")
    (problem,) = failure(path, engines).problems
    assert problem.path == "$.plugins.compute.approved[3].config.password"
    assert problem.line == line_of(enterprise, "teradata") + 1
    enterprise.write_text(
        enterprise.read_text().replace(f"password: '{SECRET}'", "password: {secret_ref: TD_PW}")
    )
    assert compile_path(path, engines).governance.registry.names() == [
        "duckdb"
    ]  # as before: no engine needed


def test_settings_a_lower_level_completes_still_compile(write, engines) -> None:
    """A required setting may come from a lower level: only the chain's own computes must be complete."""
    from tests.support.engines import SCHEMA, hookimpl_engine

    schema = {**SCHEMA, "required": ["warehouse"]}
    import floe.plugins

    registry = floe.plugins.EngineRegistry.discover(
        extra=[
            ("snowflake", _engine_with_schema("snowflake", schema)),
            ("spark", hookimpl_engine("spark")),
            ("bigquery", hookimpl_engine("bigquery")),
        ],
        environ={"FLOE_DISABLE_PLUGINS": "snowflake,spark,bigquery"},
    )
    write(
        "platform/enterprise.yaml",
        ENTERPRISE.replace("      - snowflake\n", "      - name: snowflake\n        config: {threads: 2}\n"),
    )
    write(
        "platform/domains/sales.yaml",
        NARROWING_DOMAIN.replace("[duckdb]", "[duckdb, {name: snowflake, config: {warehouse: wh}}]"),
    )
    path = product(
        write,
        "  - {type: dbt, path: models/a/, compute: snowflake}\n",
        platform="platform/domains/sales.yaml",
    )
    compiled = compile_path(path, registry)
    assert dict(compiled.governance.registry.approved["snowflake"].config) == {
        "threads": 2,
        "warehouse": "wh",
    }
    enterprise_alone = failure(Path(compiled.governance.chain[0].path), registry)
    assert "missing required key 'warehouse'" in enterprise_alone.render()


def _engine_with_schema(name: str, schema: dict) -> object:  # type: ignore[type-arg]
    from floe import hookimpl
    from tests.support.engines import hookimpl_engine

    module = hookimpl_engine(name)

    @hookimpl
    def floe_config_schema() -> dict:  # type: ignore[type-arg]
        return schema

    module.floe_config_schema = floe_config_schema  # type: ignore[attr-defined]
    return module


# -- 2. narrow-only: the catalog ------------------------------------------------------------------------

CATALOG = "catalog:\n  type: rest\n  uri: https://polaris.acme.example/api/catalog\n  warehouse: lake\n"


def with_catalog_domain(write, catalog: str) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    enterprise = write("platform/enterprise.yaml", ENTERPRISE + CATALOG)
    domain = write("platform/domains/sales.yaml", NARROWING_DOMAIN + catalog)
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/sales.yaml")
    return enterprise, domain, path


@pytest.mark.req("REQ-023")
@pytest.mark.parametrize(
    ("catalog", "key"),
    [
        ("catalog: {type: rest, uri: 'https://evil.example/catalog'}\n", "uri"),
        ("catalog: {type: rest, warehouse: elsewhere}\n", "warehouse"),
        ("catalog: {type: sql, uri: 'sqlite:////tmp/x.db'}\n", "type"),
        ("catalog: {type: rest, access_delegation: vended-credentials}\n", "access_delegation"),
        ("catalog: {type: rest, token: {secret_ref: MINE}}\n", "token"),
        ("catalog: {type: rest, name: other}\n", "name"),
    ],
)
def test_a_lower_level_cannot_move_the_data(write, engines, catalog: str, key: str) -> None:
    enterprise, domain, path = with_catalog_domain(write, catalog)
    for target in (path, domain):
        error = failure(target, engines)
        assert type(error) is GovernanceError
        problems = [p for p in error.problems if p.path == f"$.catalog.{key}"]
        assert len(problems) == 1, error.render()
        (problem,) = problems
        assert problem.file is not None and problem.file.endswith("sales.yaml")
        assert problem.line == line_of(domain, "catalog:")
        assert "manifest 'acme'" in problem.message and "manifest 'sales'" in problem.message
        assert f"enterprise.yaml:{line_of(enterprise, 'catalog:')}" in problem.message
        assert "remove" in (problem.fix or "")


def test_a_lower_level_may_repeat_the_catalog_and_inherits_what_it_leaves_out(write, engines) -> None:
    _, _, path = with_catalog_domain(
        write, "catalog: {type: rest, uri: 'https://polaris.acme.example/api/catalog'}\n"
    )
    catalog = compile_path(path, engines).catalog
    assert catalog is not None
    assert (catalog.uri, catalog.warehouse) == ("https://polaris.acme.example/api/catalog", "lake")


def test_a_domain_may_declare_a_catalog_its_enterprise_leaves_open(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    write(
        "platform/domains/sales.yaml",
        NARROWING_DOMAIN + "catalog: {type: rest, uri: 'http://127.0.0.1:8181'}\n",
    )
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/sales.yaml")
    catalog = compile_path(path, engines).catalog
    assert catalog is not None and catalog.uri == "http://127.0.0.1:8181"


# -- 2. narrow-only: lineage ---------------------------------------------------------------------------

LINEAGE = """\
lineage:
  namespace: acme
  transport:
    type: http
    url: https://lineage.acme.example
    auth: {type: api_key, api_key: {secret_ref: LINEAGE_API_KEY}}
"""


def with_lineage_domain(write, lineage: str) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    enterprise = write("platform/enterprise.yaml", ENTERPRISE + LINEAGE)
    domain = write("platform/domains/sales.yaml", NARROWING_DOMAIN + lineage)
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/sales.yaml")
    return enterprise, domain, path


@pytest.mark.parametrize(
    ("lineage", "key"),
    [
        ("lineage: {transport: {type: http, url: 'https://evil.example'}}\n", "transport.url"),
        ("lineage: {transport: {type: console}}\n", "transport.type"),
        ("lineage: {transport: {type: file, log_file_path: /dev/null}}\n", "transport.type"),
        (
            "lineage: {transport: {type: http, auth: {type: api_key, api_key: {secret_ref: MINE}}}}\n",
            "transport.auth",
        ),
        ("lineage: {namespace: sales, transport: {type: http}}\n", "namespace"),
        ("lineage: {transport: {type: http, endpoint: elsewhere/lineage}}\n", "transport.endpoint"),
    ],
)
def test_a_lower_level_cannot_send_the_lineage_elsewhere(write, engines, lineage: str, key: str) -> None:
    enterprise, domain, path = with_lineage_domain(write, lineage)
    for target in (path, domain):
        error = failure(target, engines)
        assert type(error) is GovernanceError
        problems = [p for p in error.problems if p.path == f"$.lineage.{key}"]
        assert len(problems) == 1, error.render()
        (problem,) = problems
        assert problem.file is not None and problem.file.endswith("sales.yaml")
        assert problem.line == line_of(domain, "lineage:")
        assert "manifest 'acme'" in problem.message and "manifest 'sales'" in problem.message
        assert f"enterprise.yaml:{line_of(enterprise, 'lineage:')}" in problem.message
        assert "remove" in (problem.fix or "")


@pytest.mark.parametrize("empty", ["lineage:\n", "lineage: {}\n"])
def test_a_lower_level_cannot_drop_the_lineage(write, engines, empty: str) -> None:
    """An empty ``lineage:`` is not a way to turn it off below the declarer."""
    enterprise, domain, path = with_lineage_domain(write, empty)
    (problem,) = failure(path, engines).problems
    assert (problem.file or "").endswith("sales.yaml") and problem.path == "$.lineage"
    assert problem.line == line_of(domain, "lineage:")
    assert "manifest 'acme'" in problem.message and "manifest 'sales'" in problem.message
    assert f"enterprise.yaml:{line_of(enterprise, 'lineage:')}" in problem.message
    assert "remove `lineage:`" in (problem.fix or "")


def test_a_data_product_cannot_set_the_lineage(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE + LINEAGE)
    path = product(
        write, "  - {type: dbt, path: models/a/}\n", extra="lineage: {transport: {type: console}}\n"
    )
    (problem,) = failure(path, engines).problems
    assert (problem.path, problem.line) == ("$.lineage", line_of(path / "floe.yaml", "lineage:"))
    assert "unknown key 'lineage'" in problem.message


def test_a_lower_level_may_repeat_the_lineage_and_inherits_what_it_leaves_out(write, engines) -> None:
    _, _, path = with_lineage_domain(
        write, "lineage: {transport: {type: http, url: 'https://lineage.acme.example', timeout: 5}}\n"
    )
    lineage = compile_path(path, engines).lineage
    assert lineage is not None and lineage.namespace == "acme"
    assert lineage.transport.url == "https://lineage.acme.example"
    assert lineage.transport.auth is not None and lineage.transport.auth.api_key.name == "LINEAGE_API_KEY"


def test_a_domain_may_declare_lineage_its_enterprise_leaves_open(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    write("platform/domains/sales.yaml", NARROWING_DOMAIN + "lineage: {transport: {type: console}}\n")
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform/domains/sales.yaml")
    compiled = compile_path(path, engines)
    assert compiled.lineage is not None and compiled.lineage.transport.type == "console"
    assert (compiled.lineage_declared_at or "").endswith("platform/domains/sales.yaml:9)")
    assert (compiled.lineage_declared_at or "").startswith("manifest 'sales' (")


@pytest.mark.req("REQ-023")
def test_a_literal_lineage_api_key_is_refused_where_it_is_written(write, engines) -> None:
    enterprise = write(
        "platform/enterprise.yaml", ENTERPRISE + LINEAGE.replace("{secret_ref: LINEAGE_API_KEY}", SECRET)
    )
    path = product(write, "  - {type: dbt, path: models/a/}\n")
    for target in (path, enterprise):
        error = failure(target, engines)
        (problem,) = error.problems
        assert (problem.file or "").endswith("enterprise.yaml")
        assert (problem.path, problem.line) == (
            "$.lineage.transport.auth.api_key",
            line_of(enterprise, "auth:"),
        )
        assert "'api_key' holds a literal credential" in problem.message
        assert problem.expected == "a secret reference: {secret_ref: NAME}" and "secret_ref" in (
            problem.fix or ""
        )
        assert SECRET not in error.render()


@pytest.mark.parametrize(
    ("lineage", "path", "words"),
    [
        ("{namespace: acme}", "$.lineage", "declares no transport"),
        ("{transport: {type: http}}", "$.lineage.transport", "needs `url:`"),
        ("{transport: {type: file}}", "$.lineage.transport", "needs `log_file_path:`"),
        (
            "{transport: {type: http, url: 'lineage.acme.example'}}",
            "$.lineage.transport.url",
            "has no scheme",
        ),
        (
            "{transport: {type: console, url: 'https://x.example'}}",
            "$.lineage.transport.url",
            "not a setting of the console transport",
        ),
        (
            "{transport: {type: http, url: 'https://x.example', append: true}}",
            "$.lineage.transport.append",
            "not a setting of the http transport",
        ),
    ],
)
def test_a_lineage_transport_that_cannot_work_is_refused_at_compile(
    write, engines, lineage: str, path: str, words: str
) -> None:
    enterprise = write("platform/enterprise.yaml", ENTERPRISE + f"lineage: {lineage}\n")
    error = failure(enterprise, engines)
    (problem,) = error.problems
    assert (problem.path, problem.line) == (path, line_of(enterprise, "lineage:")), error.render()
    assert words in problem.message
    assert problem.expected and problem.fix


# -- 2. narrow-only: resources ------------------------------------------------------------------------

RESOURCES = """\
      - name: snowflake
        resources: {requests: {cpu: 500m, memory: 1G}, limits: {cpu: "4", memory: 8Gi}}
"""


@pytest.mark.req("REQ-015")
@pytest.mark.req("REQ-023")
@pytest.mark.parametrize(
    ("resources", "key", "ok"),
    [
        ("{limits: {cpu: '64'}}", "limits.cpu", False),
        ("{limits: {memory: 512Gi}}", "limits.memory", False),
        ("{limits: {cpu: 4001m}}", "limits.cpu", False),
        ("{requests: {memory: 1Gi}}", "requests.memory", False),  # 1Gi is above 1G
        ("{requests: {cpu: '1'}}", "requests.cpu", False),  # 1 is above 500m
        ("{limits: {cpu: 3500m, memory: 8G}, requests: {cpu: 100m, memory: 1000M}}", None, True),
        ("{limits: {nvidia.com/gpu: '8', ephemeral-storage: 100Gi}}", None, True),  # not set above: free
    ],
)
def test_lower_levels_may_only_lower_resources(
    write, engines, resources: str, key: str | None, ok: bool
) -> None:
    enterprise = write("platform/enterprise.yaml", ENTERPRISE.replace("      - snowflake\n", RESOURCES))
    write(
        "platform/domains/sales.yaml",
        NARROWING_DOMAIN.replace(
            "[duckdb]", f"\n      - duckdb\n      - name: snowflake\n        resources: {resources}"
        ),
    )
    path = product(
        write,
        "  - {type: dbt, path: models/a/, compute: snowflake}\n",
        platform="platform/domains/sales.yaml",
    )
    if ok:
        compile_path(path, engines)
        return
    error = failure(path, engines)
    assert type(error) is GovernanceError
    (problem,) = error.problems
    kind, resource = key.split(".")  # type: ignore[union-attr]
    assert problem.path == f"$.plugins.compute.approved[1].resources.{kind}.{resource}"
    assert problem.file is not None and problem.file.endswith("sales.yaml")
    assert (
        "manifest 'acme'" in problem.message
        and f"enterprise.yaml:{line_of(enterprise, 'resources:')}" in problem.message
    )
    assert f"a lower level may only lower {kind}" in problem.message


# -- 3. inputs checked where they are written ---------------------------------------------------------


@pytest.mark.parametrize(
    ("catalog", "path", "words"),
    [
        ("{type: rest, uri: 'htp//polaris acme'}", "$.catalog.uri", "it contains a space"),
        ("{type: rest, uri: 'htp//polaris'}", "$.catalog.uri", "it has no scheme"),
        ("{type: rest, uri: 'ftp://polaris'}", "$.catalog.uri", "is not http or https"),
        ("{type: rest, uri: 'http://:8181/x'}", "$.catalog.uri", "names no host"),
        ("{type: rest, uri: 'http://polaris:port'}", "$.catalog.uri", "port is not a number"),
        ("{type: rest}", "$.catalog", "a REST catalog needs `uri:`"),
        (
            "{type: rest, uri: 'https://p', oauth2_server_uri: 'tokens please'}",
            "$.catalog.oauth2_server_uri",
            "contains a space",
        ),
        ("{type: sql, uri: '/srv/catalog.db'}", "$.catalog.uri", "database scheme"),
        ("{type: rest, uri: 'https://p', client_id: floe}", "$.catalog.client_id", "without client_secret"),
    ],
)
def test_a_catalog_that_is_not_a_uri_is_refused_at_compile(
    write, engines, catalog: str, path: str, words: str
) -> None:
    enterprise = write("platform/enterprise.yaml", ENTERPRISE + f"catalog: {catalog}\n")
    error = failure(enterprise, engines)
    (problem,) = error.problems
    assert (problem.path, problem.line) == (path, line_of(enterprise, "catalog:")), error.render()
    assert words in problem.message
    assert problem.expected and problem.fix


@pytest.mark.req("REQ-024")
def test_a_product_cannot_create_an_environment(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE + "environments:\n  - name: dev\n  - name: prod\n")
    path = product(
        write,
        "  - {type: dbt, path: models/a/}\n",
        extra="environments:\n  - name: production\n    overrides: {duckdb: {threads: 2}}\n",
    )
    error = failure(path, engines)
    assert type(error) is GovernanceError
    (problem,) = error.problems
    assert (problem.path, problem.line) == (
        "$.environments[0].name",
        line_of(path / "floe.yaml", "production"),
    )
    assert "environment 'production' is not declared by the platform" in problem.message
    assert problem.fix == "did you mean 'prod'?"
    (path / "floe.yaml").write_text((path / "floe.yaml").read_text().replace("production", "prod"))
    assert list(compile_path(path, engines).governance.environments) == ["dev", "prod"]


def test_a_product_of_a_platform_without_environments_may_only_use_dev(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(write, "  - {type: dbt, path: models/a/}\n", extra="environments:\n  - name: prod\n")
    (problem,) = failure(path, engines).problems
    assert "environment 'prod' is not declared" in problem.message and problem.expected == "one of dev"


@pytest.mark.req("REQ-024")
def test_compute_per_environment_on_a_transform_is_refused_as_drift(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(write, "  - type: dbt\n    path: models/a/\n    compute: {dev: duckdb, prod: snowflake}\n")
    error = failure(path, engines)
    assert type(error) is EnvironmentParityError
    (problem,) = error.problems
    assert (problem.path, problem.line) == ("$.transforms[0].compute", 8)
    assert "selects compute per environment" in problem.message and "drift" in problem.message
    assert "transforms[].compute" in (problem.fix or "")


@pytest.mark.req("REQ-021")
def test_the_spec_req_021_example_compiles_with_the_real_spark_engine(write) -> None:
    """REQ-021's example, verbatim: ``cluster: "spark.svc"`` is the Spark standalone cluster at that host."""
    from floe.plugins import EngineRegistry

    engines = EngineRegistry.discover()
    manifest = write(
        "platform/enterprise.yaml",
        textwrap.dedent("""\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {name: acme}
        plugins:
          compute:
            approved:
              - name: duckdb
                config: { threads: 8 }
              - name: spark
                config: { cluster: "spark.svc" }
            default: duckdb
        """),
    )
    path = product(write, "  - {type: dbt, path: models/a/, compute: spark}\n")
    compiled = compile_path(path, engines)
    output = compiled.profiles["floe_spark"]["outputs"]["dev"]
    assert output["method"] == "session"
    assert output["host"] == "spark://spark.svc:7077"
    assert output["server_side_parameters"]["spark.master"] == "spark://spark.svc:7077"
    assert compile_path(manifest, engines).governance.registry.names() == ["duckdb", "spark"]


def test_an_override_of_a_compute_no_manifest_approves_is_refused_with_the_other_problems(
    write, engines
) -> None:
    extra = (
        "environments:\n  - name: dev\n  - name: prod\n    overrides:\n"
        "      snowflak: { warehouse: W }\n      duckdb: { threads: lots }\n"
    )
    enterprise = write("platform/enterprise.yaml", ENTERPRISE + extra)
    error = failure(product(write, "  - {type: dbt, path: models/a/}\n"), engines)
    assert isinstance(error, GovernanceError)
    stray, *others = error.problems
    assert (stray.line, stray.path) == (
        line_of(enterprise, "snowflak:"),
        "$.environments[1].overrides.snowflak",
    )
    assert stray.message == "environment 'prod' overrides compute 'snowflak', which no manifest approves"
    assert stray.fix == "did you mean 'snowflake'?"
    assert [(p.line, p.path) for p in others] == [
        (line_of(enterprise, "threads: lots"), "$.environments[1].overrides.duckdb.threads")
    ]


def test_an_engine_whose_config_schema_is_not_a_schema_is_blamed(write) -> None:
    """A plugin that declares an invalid JSON Schema (an unknown type) is named as broken; the
    compile neither crashes nor blames the manifest that configures it."""
    import floe.plugins
    from tests.support.engines import SCHEMA, hookimpl_engine

    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "threads": {"type": "text"}}}
    registry = floe.plugins.EngineRegistry.discover(
        extra=[
            ("snowflake", _engine_with_schema("snowflake", schema)),
            ("spark", hookimpl_engine("spark")),
            ("bigquery", hookimpl_engine("bigquery")),
        ],
        environ={"FLOE_DISABLE_PLUGINS": "snowflake,spark,bigquery"},
    )
    write(
        "platform/enterprise.yaml",
        ENTERPRISE.replace("      - snowflake\n", "      - name: snowflake\n        config: {threads: 2}\n"),
    )
    path = product(write, "  - {type: dbt, path: models/a/, compute: snowflake}\n")
    rendered = failure(path, registry).render()
    assert "snowflake" in rendered and "config schema" in rendered and "'text'" in rendered, rendered
    assert "fix the engine plugin" in rendered, rendered
    assert "Traceback" not in rendered and "UnknownType" not in rendered, rendered
