"""Reading manifests: strictyaml typing, JSON Schema validation, located errors (all at once)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from floe.compiler import compile_path
from floe.errors import EnvironmentParityError, FloeError, ManifestError
from floe.manifest_cache import ManifestCache
from tests.conftest import ENTERPRISE, product


def _problems(exc: pytest.ExceptionInfo[Exception]) -> list[str]:
    return [p.render() for p in exc.value.problems]  # type: ignore[attr-defined]


@pytest.mark.req("REQ-021")
def test_spec_manifest_is_accepted_and_typed(write, engines) -> None:
    manifest = write("platform/enterprise.yaml", ENTERPRISE)
    compiled = compile_path(manifest, engines)
    registry = compiled.governance.registry
    assert registry.names() == ["duckdb", "spark", "snowflake", "bigquery"]
    assert registry.default == "duckdb"
    assert registry.approved["duckdb"].config == {"threads": 8}  # an int, typed by the engine's schema
    assert registry.approved["spark"].config == {"cluster": "spark.svc"}


def test_all_errors_of_a_file_are_reported_with_line_path_and_fix(write, engines) -> None:
    manifest = write(
        "m.yaml",
        """\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprize
        metdata: {name: acme}
        plugins:
          compute:
            approved: duckdb
            default: 3
        """,
    )
    with pytest.raises(ManifestError) as exc:
        compile_path(manifest, engines)
    text = "\n".join(_problems(exc))
    assert "m.yaml:3: $.scope: 'enterprize' is not allowed here" in text
    assert "did you mean 'enterprise'?" in text
    assert "m.yaml:4: $.metdata: unknown key 'metdata'" in text and "did you mean 'metadata'?" in text
    assert "m.yaml:7: $.plugins.compute.approved: expected a list, found 'duckdb'" in text
    assert "m.yaml:8: $.plugins.compute.default" in text
    assert "missing required key 'metadata'" in text
    assert len(exc.value.problems) == 5


def test_a_manifest_in_flow_style_is_read_like_block_style(write, engines) -> None:
    """``{kind: Manifest, …}`` is YAML like any other: its kind is read from the parsed mapping when
    no ``kind:`` line starts the text (the fuzzing of dropped keys found it refused as kind-less)."""
    block = compile_path(write("block/enterprise.yaml", ENTERPRISE), engines)
    flow = yaml.safe_dump(yaml.safe_load(ENTERPRISE), default_flow_style=True, sort_keys=False)
    assert flow.startswith("{apiVersion: floe.dev/v1, kind: Manifest")
    compiled = compile_path(write("flow/enterprise.yaml", flow), engines)
    assert compiled.governance.registry == block.governance.registry
    with pytest.raises(ManifestError) as exc:
        compile_path(write("flow/other.yaml", "{apiVersion: floe.dev/v1, kind: Manfest}\n"), engines)
    assert "unknown kind 'Manfest'" in exc.value.problems[0].message


def test_engine_config_is_typed_by_the_engine_schema(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE.replace("threads: 8", "threads: many"))
    manifest = write("platform/enterprise.yaml", ENTERPRISE.replace("threads: 8", "threads: many"))
    with pytest.raises(Exception) as exc:
        compile_path(manifest, engines)
    (problem,) = exc.value.problems  # type: ignore[attr-defined]
    assert (problem.line, problem.path) == (9, "$.plugins.compute.approved[0].config.threads")
    assert "expected an integer, found 'many'" in problem.message


def test_quoted_no_is_a_string_not_a_boolean(write, engines) -> None:
    manifest = write(
        "m.yaml", ENTERPRISE.replace("metadata: {name: acme}", "metadata: {name: acme, owner: no}")
    )
    compiled = compile_path(manifest, engines)
    assert compiled.source.data["metadata"]["owner"] == "no"


def test_a_string_is_not_a_list(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(write, "  - {type: dbt, path: models/}\n")
    text = (path / "floe.yaml").read_text()
    (path / "floe.yaml").write_text(
        text.replace("transforms:\n- {type: dbt, path: models/}", "transforms: models/")
    )
    with pytest.raises(ManifestError) as exc:
        compile_path(path, engines)
    assert "$.transforms: expected a list, found 'models/'" in "\n".join(_problems(exc))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", "floe.yaml:2"),
        ("kind: DataProduct\nmetadata:\n\tname: x\n", "invalid YAML"),
        ("kind: Thing\n", "unknown kind 'Thing'"),
        ("- just\n- a list\n", "missing `kind:`"),
        ("kind: DataProduct\n- oops\n", "invalid YAML"),
    ],
)
def test_syntax_errors_are_located_not_tracebacks(write, engines, text: str, expected: str) -> None:
    path = write("p/floe.yaml", text)
    with pytest.raises(ManifestError) as exc:
        compile_path(path, engines)
    assert expected in exc.value.render()
    assert "Traceback" not in exc.value.render()


def test_non_utf8_file_is_reported_with_line(write, engines, tmp_path) -> None:
    path = tmp_path / "floe.yaml"
    path.write_bytes(b"kind: DataProduct\nmetadata: {name: \xff}\n")
    with pytest.raises(ManifestError) as exc:
        compile_path(path, engines)
    assert "floe.yaml:2" in exc.value.render() and "UTF-8" in exc.value.render()


@pytest.mark.req("REQ-012")
def test_literal_credentials_are_rejected_with_a_hint(write, engines) -> None:
    manifest = write(
        "m.yaml",
        ENTERPRISE.replace(
            'config: { cluster: "spark.svc" }', 'config: { cluster: "spark.svc", password: hunter2 }'
        ),
    )
    with pytest.raises(Exception) as exc:
        compile_path(manifest, engines)
    text = exc.value.render()  # type: ignore[attr-defined]
    assert "m.yaml:11: $.plugins.compute.approved[1].config.password" in text
    assert "{secret_ref: NAME}" in text
    assert "hunter2" not in text


@pytest.mark.req("REQ-012")
def test_secret_reference_is_accepted(write, engines) -> None:
    from floe.model import SecretReference

    manifest = write(
        "m.yaml",
        ENTERPRISE.replace(
            'config: { cluster: "spark.svc" }',
            'config: { cluster: "spark.svc", password: {secret_ref: SPARK_PW} }',
        ),
    )
    compute = compile_path(manifest, engines).governance.registry.approved["spark"]
    assert compute.config["password"] == SecretReference("SPARK_PW")


@pytest.mark.req("REQ-024")
def test_spec_anti_pattern_is_rejected_with_drift_explanation(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(
        write,
        "  - {type: dbt, path: models/}\n",
        extra="""\
        environments:
          - name: development
            transforms:
              compute: duckdb
          - name: production
            transforms:
              compute: snowflake
        """,
    )
    with pytest.raises(EnvironmentParityError) as exc:
        compile_path(path, engines)
    problems = exc.value.problems
    assert [p.path for p in problems] == ["$.environments[0].transforms", "$.environments[1].transforms"]
    assert all("environment drift" in p.message for p in problems)
    assert problems[0].line == 9


@pytest.mark.req("REQ-024")
def test_anti_pattern_in_a_manifest_and_engine_override_are_rejected(write, engines) -> None:
    manifest = write(
        "m.yaml",
        ENTERPRISE
        + textwrap.dedent("""\
        environments:
          - name: prod
            overrides:
              duckdb: {engine: snowflake}
        """),
    )
    with pytest.raises(EnvironmentParityError) as exc:
        compile_path(manifest, engines)
    assert exc.value.problems[0].path == "$.environments[0].overrides.duckdb.engine"
    assert "drift" in exc.value.problems[0].message


def test_the_manifest_cache_produces_once_and_raises_a_remembered_error_again() -> None:
    calls: list[str] = []

    def produce(key: str) -> str:
        calls.append(key)
        if key == "bad":
            raise FloeError(f"{key} is invalid")
        return key.upper()

    results: dict[str, str | FloeError] = {}
    assert [ManifestCache.once(results, "ok", lambda: produce("ok")) for _ in range(2)] == ["OK", "OK"]
    for _ in range(2):
        with pytest.raises(FloeError, match="bad is invalid"):
            ManifestCache.once(results, "bad", lambda: produce("bad"))
    assert calls == ["ok", "bad"]
