"""The command line as a user meets it: exit codes, messages, artifacts, start-up imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from floe.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEAVY = (
    "dbt",
    "pyspark",
    "pyiceberg",
    "snowflake",
    "databricks",
    "redshift_connector",
    "trino",
    "duckdb",
    "agate",
    "kubernetes",
    "psycopg2",
    "openlineage",
    "dagster",
    "dagster_dbt",
    "hera",
)
"""Top-level modules (and google.cloud.bigquery) that no command may import before it needs them."""


def floe(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _copy_example(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(EXAMPLES / "platform", tmp_path / "platform")
    shutil.copytree(EXAMPLES / "shop", tmp_path / "shop", ignore=shutil.ignore_patterns("target", ".floe"))
    return tmp_path / "shop"


@pytest.mark.req("REQ-021")
@pytest.mark.req("REQ-022")
def test_compile_example_writes_both_artifacts(tmp_path: Path) -> None:
    shop = _copy_example(tmp_path)
    proc = floe("compile", str(shop))
    assert proc.returncode == 0, proc.stderr
    compiled = json.loads((shop / "target/floe/compiled.json").read_text())
    assert compiled["product"] == "shop" and compiled["chain"] == ["acme", "sales"]
    assert compiled["approved"] == ["duckdb", "duckdb-large"] and compiled["default"] == "duckdb"
    assert compiled["environments"] == ["dev", "prod"]
    assert [(t["path"], t["compute"]) for t in compiled["transforms"]] == [
        ("models/staging/", "duckdb-large"),
        ("models/marts/", "duckdb"),
    ]
    assert compiled["computes"]["duckdb-large"]["config"] == {"threads": 6, "memory_limit": "8GB"}
    import yaml

    profiles = yaml.safe_load((shop / "target/floe/profiles.yml").read_text())
    assert set(profiles) == {"floe_duckdb", "floe_duckdb-large"}
    for profile in profiles.values():
        assert set(profile["outputs"]) == {"dev", "prod"}
        assert {o["type"] for o in profile["outputs"].values()} == {"duckdb"}


def test_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    shop = _copy_example(tmp_path)
    assert floe("compile", str(shop / "floe.yaml")).returncode == 0
    assert floe("compile", str(tmp_path / "platform/domains/sales.yaml")).returncode == 0
    usage = floe("compile")
    assert usage.returncode == 2 and "usage:" in usage.stderr
    assert floe().returncode == 2
    (shop / "floe.yaml").write_text(
        (shop / "floe.yaml").read_text().replace("compute: duckdb-large", "compute: spark")
    )
    bad = floe("compile", str(shop))
    assert bad.returncode == 1
    assert "floe.yaml:9: $.transforms[0].compute: transform 'staging' selects compute 'spark'" in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stdout == ""


def test_failed_compile_keeps_previous_artifacts_intact(tmp_path: Path) -> None:
    shop = _copy_example(tmp_path)
    assert floe("compile", str(shop)).returncode == 0
    before = {p.name: p.read_bytes() for p in (shop / "target/floe").iterdir()}
    (shop / "floe.yaml").write_text((shop / "floe.yaml").read_text() + "bogus: [\n")
    assert floe("compile", str(shop)).returncode == 1
    after = {p.name: p.read_bytes() for p in (shop / "target/floe").iterdir()}
    assert after == before  # nothing lost, nothing half-written, no temp files left


def test_schema_command_prints_the_shipped_schemas() -> None:
    assert main(["schema", "manifest"]) == 0
    proc = floe("schema", "dataproduct")
    assert json.loads(proc.stdout)["$id"].endswith("dataproduct.schema.json")
    engine = floe("schema", "--engine", "duckdb")
    assert "threads" in json.loads(engine.stdout)["properties"]
    missing = floe("schema", "--engine", "nope")
    assert missing.returncode == 1 and "no engine 'nope' is installed" in missing.stderr


@pytest.mark.req("REQ-017")
def test_engines_lists_installed_engines_with_packages() -> None:
    proc = floe("engines", "--json")
    data = json.loads(proc.stdout)
    duck = next(e for e in data["engines"] if e["engine"] == "duckdb")
    assert "dbt-duckdb>=" in duck["packages"] and duck["distribution"] == "floe"


def test_command_tables_keep_each_row_on_one_line() -> None:
    from floe.execution.report import table

    rows = [
        {"compute": "duckdb", "status": "FAILED", "message": "cannot open\n  fix: check the path"},
        {"compute": "a-longer-name", "status": "ok", "message": ""},
    ]
    assert table(rows, ["compute", "status", "message"], one_line=True).splitlines() == [
        "COMPUTE        STATUS  MESSAGE",
        "duckdb         FAILED  cannot open   fix: check the path",
        "a-longer-name  ok",
    ]


@pytest.mark.req("REQ-014")
def test_validate_prints_a_table_per_compute(tmp_path: Path) -> None:
    shop = _copy_example(tmp_path)
    proc = floe("validate", str(shop), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)["computes"]
    assert [r["compute"] for r in rows] == ["duckdb", "duckdb-large"]
    assert all(r["status"] == "ok" for r in rows)
    table = floe("validate", str(shop), "--env", "prod")
    assert table.stdout.splitlines()[0].split() == ["COMPUTE", "ENGINE", "STATUS", "SECONDS", "MESSAGE"]
    unknown = floe("validate", str(shop), "--env", "qa")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr


@pytest.mark.parametrize(
    "command", [["-c", "import floe"], ["-m", "floe", "--version"], ["-m", "floe", "schema"]]
)
def test_startup_imports_no_heavy_modules(command: list[str]) -> None:
    code = (
        "import sys, runpy; sys.argv = ['floe'] + {args!r}; "
        "import floe.cli\n"
        "try: floe.cli.main({args!r})\nexcept SystemExit: pass\n"
        "print([m for m in sys.modules if m.split('.')[0] in {heavy!r} or m.startswith('google.cloud.bigquery')])"
    )
    args = command[2:] if command[0] == "-m" else []
    proc = subprocess.run(
        [sys.executable, "-c", code.format(args=args, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_compile_imports_no_dbt_or_engine_clients(tmp_path: Path) -> None:
    shop = _copy_example(tmp_path)
    code = (
        "import sys, floe.cli; rc = floe.cli.main(['compile', {shop!r}]); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} "
        "or m.startswith('google.cloud.bigquery')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code.format(shop=str(shop), heavy=set(HEAVY))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr


def test_compile_of_a_plain_manifest_needs_neither_strictyaml_nor_jsonschema_nor_ssl(tmp_path: Path) -> None:
    """Start-up cost (issue 5): fastyaml reads ordinary manifests, so strictyaml (the reference, ~25 ms
    to import) loads only for what fastyaml leaves to it; fastschema finds valid data valid, so
    jsonschema (~60 ms) loads only to report errors; no engine imports ssl before it talks TLS."""
    shop = _copy_example(tmp_path)
    code = (
        "import sys, floe.cli; rc = floe.cli.main(['compile', {shop!r}]); "
        "print(rc, sorted({{m.split('.')[0] for m in sys.modules}} & "
        "{{'strictyaml', 'jsonschema', 'referencing', 'ssl'}}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code.format(shop=str(shop))], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr


def test_render_k8s_writes_one_valid_job_per_transform(tmp_path: Path) -> None:
    import yaml

    shop = _copy_example(tmp_path)
    proc = floe(
        "render",
        "k8s",
        str(shop),
        "--env",
        "prod",
        "--image",
        "registry.example.com/shop:1.0",
        "--namespace",
        "data",
        "--secret-name",
        "shop-credentials",
    )
    assert proc.returncode == 0, proc.stderr
    out = shop / "target/floe/k8s/prod"
    assert sorted(p.name for p in out.iterdir()) == ["shop-marts-prod.yaml", "shop-staging-prod.yaml"]
    assert f"wrote {out / 'shop-staging-prod.yaml'}" in proc.stdout
    job = yaml.safe_load((out / "shop-staging-prod.yaml").read_text())
    assert (job["apiVersion"], job["kind"], job["metadata"]["namespace"]) == ("batch/v1", "Job", "data")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/shop:1.0"
    assert container["command"] == ["floe", "run", "/workspace/shop", "--env", "prod", "--select", "staging"]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "4", "memory": "12Gi"},
    }
    unknown = floe("render", "k8s", str(shop), "--env", "staging")
    assert unknown.returncode == 1 and "unknown environment 'staging'" in unknown.stderr
    assert "Traceback" not in unknown.stderr and unknown.stdout == ""
    bad = floe("render", "k8s", str(shop), "--env", "prod", "--namespace", "Not_Valid")
    assert bad.returncode == 1 and "namespace 'Not_Valid'" in bad.stderr
    missing_env = floe("render", "k8s", str(shop))
    assert missing_env.returncode == 2 and "--env" in missing_env.stderr
    assert floe("render").returncode == 2


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "{path}"],
        ["validate", "{path}"],
        ["run", "{path}", "--env", "dev"],
        ["render", "k8s", "{path}", "--env", "dev", "--image", "registry.example.com/x:1"],
    ],
)
def test_a_path_the_system_refuses_is_a_located_error_not_a_crash(tmp_path: Path, command: list[str]) -> None:
    """A name longer than the file system allows, a symlink loop, a file used as a directory: each
    command says which path and why, and exits 1 (never "internal error")."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    (tmp_path / "file").write_text("x")
    cases = {
        tmp_path / ("a" * 300): "file name too long",
        tmp_path / ("a" * 300) / "floe.yaml": "file name too long",
        loop: "too many levels of symbolic links",
        tmp_path / "file" / "floe.yaml": "not a directory",
    }
    for path, reason in cases.items():
        proc = floe(*(part.format(path=path) for part in command))
        assert proc.returncode == 1, (path, proc.stdout, proc.stderr)
        assert f"{path}: cannot use this path: {reason}" in proc.stderr, proc.stderr
        assert "fix: pass a data product directory" in proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_an_engine_refusing_a_computes_settings_is_located_where_they_are_written(tmp_path: Path) -> None:
    """``generate_dbt_profile`` runs per environment; when the engine refuses what an environment's
    override set, the error names that manifest, its line and ``$.path``, and the environment."""
    shop = _copy_example(tmp_path)
    manifest = tmp_path / "platform" / "enterprise.yaml"
    text = manifest.read_text()
    override = "      duckdb: { schema: analytics }"
    assert override in text
    manifest.write_text(
        text.replace(
            override, "      duckdb: { schema: analytics, motherduck_token: { secret_ref: MD_TOKEN } }"
        )
    )
    line = (
        manifest.read_text()
        .splitlines()
        .index("      duckdb: { schema: analytics, motherduck_token: { secret_ref: MD_TOKEN } }")
        + 1
    )
    proc = floe("compile", "shop", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(
        f"platform/enterprise.yaml:{line}: $.environments[1].overrides.duckdb: "
        "environment 'prod': compute 'duckdb' (engine duckdb): generate_dbt_profile "
        "failed: motherduck_token is set"
    ), proc.stderr
    assert "fix: set path to md:<database>" in proc.stderr
    assert not (shop / "target" / "floe" / "compiled.json").exists()  # nothing half-written


@pytest.mark.parametrize("value", ["banana", "0s"])
def test_a_bad_keep_warm_bound_is_a_usage_error_not_a_traceback(tmp_path: Path, value: str) -> None:
    """``--keep-warm=IDLE`` is parsed before anything runs; a bad bound is argparse's usage error
    (exit 2), naming the value, never a traceback (argparse is imported lazily by the CLI)."""
    done = subprocess.run(
        [sys.executable, "-m", "floe", "run", str(tmp_path), "--env", "dev", f"--keep-warm={value}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and value in done.stderr, done.stderr
    assert "--keep-warm" in done.stderr, done.stderr
