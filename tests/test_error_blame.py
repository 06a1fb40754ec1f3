"""Errors that blame the right thing: the file, line and words that point at the real mistake."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from floe import hookimpl
from floe.compiler import compile_path
from floe.errors import FloeError, GovernanceError, ManifestError
from floe.plugins import EngineRegistry
from floe.secrets import redact
from tests.conftest import ENTERPRISE, product
from tests.support.engines import hookimpl_engine


def failure(path: Path, engines: EngineRegistry) -> FloeError:
    with pytest.raises(FloeError) as exc:
        compile_path(path, engines)
    return exc.value


def floe(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def test_default_indented_under_plugins_is_told_where_it_belongs(write, engines) -> None:
    manifest = write(
        "platform/enterprise.yaml", ENTERPRISE.replace("    default: duckdb\n", "  default: duckdb\n")
    )
    error = failure(manifest, engines)
    problem = next(p for p in error.problems if p.path == "$.plugins.default")
    assert problem.line == 14 and "unknown key 'default'" in problem.message
    assert problem.fix == "`default:` belongs at $.plugins.compute.default: move it under `compute:`"
    entry = write(
        "platform/entry.yaml",
        ENTERPRISE.replace("      - snowflake\n", "      - {name: snowflake, default: x}\n"),
    )
    problem = next(
        p for p in failure(entry, engines).problems if p.path == "$.plugins.compute.approved[2].default"
    )
    assert (
        problem.fix
        == "`default:` belongs at $.plugins.compute.default: move it out of this entry, under `compute:`"
    )


def _with_resources(requirements: object) -> object:
    module = hookimpl_engine("snowflake")

    @hookimpl
    def floe_get_resource_requirements(compute):  # type: ignore[no-untyped-def]
        return requirements

    module.floe_get_resource_requirements = floe_get_resource_requirements  # type: ignore[attr-defined]
    return module


@pytest.mark.req("REQ-018")
@pytest.mark.parametrize(
    ("requirements", "words"),
    [
        ({"requests": {"cpu": "lots"}}, "requests.cpu: 'lots' is not a Kubernetes quantity"),
        ({"limits": {"gpu": "1"}}, "limits.gpu: unknown resource"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "requests.cpu 2 is above limits.cpu 1"),
        ({"limit": {}}, "unknown key 'limit'"),
    ],
)
def test_malformed_resource_defaults_blame_the_plugin_not_the_manifest(
    write, requirements: object, words: str
) -> None:
    engines = EngineRegistry.discover(
        extra=[
            ("snowflake", _with_resources(requirements)),
            ("spark", hookimpl_engine("spark")),
            ("bigquery", hookimpl_engine("bigquery")),
        ],
        environ={"FLOE_DISABLE_PLUGINS": "snowflake,spark,bigquery"},
    )
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(write, "  - {type: dbt, path: models/a/, compute: snowflake}\n")
    error = failure(path, engines)
    (problem,) = error.problems
    assert problem.file is None and problem.path is None, problem  # the manifest has no resources
    assert "plugin 'snowflake' (from in-process) returned malformed defaults" in problem.message
    assert words in problem.message
    assert "Kubernetes quantities under resources" not in error.render()
    assert "bug in in-process, not in the manifest" in (problem.fix or "")


def _site_with_broken_plugin(tmp_path: Path) -> dict[str, str]:
    """A real installed distribution whose engine ``teradata`` lacks floe_validate_connection."""
    site = tmp_path / "site"
    (site / "acme_teradata").mkdir(parents=True)
    (site / "acme_teradata" / "__init__.py").write_text(
        textwrap.dedent("""\
        from floe import hookimpl
        from floe.model import EngineInfo

        @hookimpl
        def floe_engine_info():
            return EngineInfo(name="teradata", version="1.0", api_version=1, dbt_adapter="teradata")

        @hookimpl
        def floe_generate_dbt_profile(compute, target):
            return {"type": "teradata"}
        """)
    )
    dist = site / "acme_teradata-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-teradata\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[floe]\nteradata = acme_teradata\n")
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_an_installed_plugin_missing_a_hook_is_broken_not_missing(tmp_path: Path) -> None:
    env = _site_with_broken_plugin(tmp_path)
    manifest = tmp_path / "enterprise.yaml"
    manifest.write_text(ENTERPRISE.replace("      - bigquery\n", "      - teradata\n"))
    done = floe("compile", str(manifest), env=env)
    assert done.returncode == 1, done.stderr
    assert (
        "compute 'teradata' needs engine 'teradata', whose plugin is installed (from acme-teradata) but "
        "broken: hook floe_get_required_dbt_packages: required hook not implemented"
    ) in done.stderr
    assert "not installed" not in done.stderr and "pip install the plugin" not in done.stderr
    assert "upgrade or repair acme-teradata" in done.stderr
    loose = floe("engines", env=env)
    assert loose.returncode == 0 and "warning: plugin 'teradata' (from acme-teradata" in loose.stderr
    strict = floe("engines", "--strict", env=env)
    assert strict.returncode == 1, strict.stderr
    assert "error: plugin 'teradata' (from acme-teradata" in strict.stderr
    assert floe("engines", "--strict").returncode == 0  # nothing broken: the platform image passes


def test_a_closed_pipe_is_a_normal_end() -> None:
    done = subprocess.run(
        f"{sys.executable} -m floe engines | true; echo status=${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "status=0" in done.stdout, done.stdout + done.stderr
    assert "internal error" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_platform_naming_a_directory_says_what_it_found(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    path = product(write, "  - {type: dbt, path: models/a/}\n", platform="platform")
    (problem,) = failure(path, engines).problems
    assert (
        problem.path == "$.platform"
        and problem.line == 4
        and problem.file
        and problem.file.endswith("floe.yaml")
    )
    assert (
        "platform '../platform' is a directory" in problem.message
        and "it holds enterprise.yaml" in problem.message
    )
    assert "not found" not in problem.message
    assert (
        problem.fix == "did you mean '../platform/enterprise.yaml'? (platform names the manifest file itself)"
    )


def test_platform_naming_another_product_blames_this_reference(write, engines) -> None:
    write("platform/enterprise.yaml", ENTERPRISE)
    other = product(write, "  - {type: dbt, path: models/a/}\n")
    (other.parent / "mine" / "models" / "b").mkdir(parents=True)
    mine = write(
        "mine/floe.yaml",
        "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: mine}\n"
        "platform: ../product/floe.yaml\ntransforms:\n  - {type: dbt, path: models/b/}\n",
    )
    error = failure(mine.parent, engines)
    assert type(error) is GovernanceError
    (problem,) = error.problems
    assert problem.file and problem.file.endswith("mine/floe.yaml"), problem
    assert (problem.path, problem.line) == ("$.platform", 4)
    assert "is a DataProduct file" in problem.message and "never by another product" in problem.message
    assert problem.expected == "a platform manifest (kind: Manifest): the enterprise manifest or a domain's"


@pytest.mark.parametrize(
    ("text", "line", "sentence", "parser"),
    [
        (
            "plugins:\n  compute:\n    approved: [duckdb]\n   default: duckdb\n",
            8,
            "indented differently from the lines of its level",
            "expected <block end>",
        ),
        (
            "plugins:\n  compute:\n    approved:\n      name: duckdb\n      - spark\n",
            9,
            "a `- item` here follows keys of a mapping",
            "expected <block end>, but found '-'",
        ),
        ("plugins:\n\tcompute: {}\n", 6, "a tab: YAML indents with spaces only", "found character '\\t'"),
        ("metadata: {name: acme\n", 5, "not closed", "expected ',' or '}'"),
    ],
)
def test_yaml_syntax_errors_say_what_they_mean(
    write, engines, text: str, line: int, sentence: str, parser: str
) -> None:
    head = "apiVersion: floe.dev/v1\nkind: Manifest\nscope: enterprise\n" + (
        "metadata: {name: acme}\n" if not text.startswith("metadata") else ""
    )
    manifest = write("platform/enterprise.yaml", head + text)
    error = failure(manifest, engines)
    assert type(error) is ManifestError
    (problem,) = error.problems
    assert problem.line == line, problem
    assert problem.message.startswith("invalid YAML: ") and sentence in problem.message
    assert f"(the parser says: {parser}" in problem.message


def test_redaction_keeps_floes_own_names_and_hides_every_secret() -> None:
    keep = ["snowflake", "snowy-host.example"]
    text = "compute 'snowflake' (engine snowflake) at snowy-host.example: login snow refused; token=snow"
    assert redact(text, ["snow"], keep) == (
        "compute 'snowflake' (engine snowflake) at snowy-host.example: login *** refused; token=***"
    )
    assert redact("xsnowflakesnow", ["flakesnow"], keep) == "xsnow***"  # runs out of a name: hidden
    assert redact("engine snowflake", ["snowflake"], keep) == "engine ***"  # a name that is a secret
    assert (
        redact("pip install snowflake-connector-python", ["snow"]) == "pip install snowflake-connector-python"
    )


def test_redaction_hides_a_secret_a_client_cut_short() -> None:
    """A driver or dbt that shortens a long message may cut a secret: what is left of it is hidden
    too, before a truncation mark or the end, after a mark or at the start; six characters of it
    elsewhere are not (too common to mean the secret)."""
    secret = "canary-7Hq2-lineage-never-shows"
    assert (
        redact("login failed for '...age-never-shows' (28000)", [secret])
        == "login failed for '...***' (28000)"
    )
    assert redact("password=canary-7Hq2-lin\u2026 refused", [secret]) == "password=***\u2026 refused"
    assert redact("error near canary-7Hq2-line", [secret]) == "error near ***"  # cut at the end of the text
    assert redact("lineage-never-shows is the cause", [secret]) == "*** is the cause"
    assert redact("GRANT CREATE ON DATABASE floe TO reader", ["reader-" + secret]) == (
        "GRANT CREATE ON DATABASE floe TO reader"
    )  # a word that begins the secret is not a cut
    assert redact("the lineage of canary-7 tables", [secret]) == "the lineage of canary-7 tables"


def test_validate_with_a_short_password_keeps_the_compute_and_engine_names(tmp_path: Path) -> None:
    """With the password ``snow``, floe validate used to print ``compute '***flake' (engine ***flake)``."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        textwrap.dedent(f"""\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {{name: acme}}
        plugins:
          compute:
            approved:
              - name: snowflake
                config:
                  account: acme
                  user: floe
                  password: {{secret_ref: SNOW_PASSWORD}}
                  database: analytics
                  warehouse: wh
                  host: 127.0.0.1
                  port: {port}
                  protocol: http
            default: snowflake
        """)
    )
    done = floe("validate", str(platform), "--json", env={**os.environ, "SNOW_PASSWORD": "snow"})
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "***flake" not in output, output
    assert "compute 'snowflake'" in output or '"compute": "snowflake"' in output
    assert " snow " not in output and "'snow'" not in output and '"snow"' not in output
