"""``floe init DIR``: from nothing to a green ``floe run`` in two commands (DuckDB only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml


def floe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_init_then_run_is_green_and_every_floe_yaml_file_names_the_editor_schema(tmp_path: Path) -> None:
    made = floe("init", "acme", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "acme"
    ran = floe("run", "acme/my_product", "--env", "dev", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert [(t["name"], t["status"]) for t in report["transforms"]] == [
        ("staging", "success"),
        ("marts", "success"),
    ]
    assert {n["name"] for t in report["transforms"] for n in t["nodes"]} == {
        "raw_orders",
        "stg_orders",
        "revenue_by_customer",
    }
    floe_files = sorted(p for p in root.rglob("*.yaml") if "target" not in p.parts and ".floe" not in p.parts)
    assert [p.relative_to(root).as_posix() for p in floe_files] == [
        "my_product/floe.yaml",
        "platform/domains/analytics.yaml",
        "platform/enterprise.yaml",
    ]
    for path in floe_files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        schema_file = (path.parent / first.split("$schema=", 1)[1]).resolve()
        assert schema_file == (root / "floe.schema.json").resolve()
        schema = json.loads(schema_file.read_text())
        jsonschema.Draft7Validator(schema).validate(
            yaml.safe_load(path.read_text())
        )  # what the editor checks
    # a literal password is what the editor's schema flags, as `floe compile` does
    enterprise = yaml.safe_load((root / "platform/enterprise.yaml").read_text())
    enterprise["plugins"]["compute"]["approved"][0]["config"]["pasword"] = "x"
    schema = json.loads((root / "floe.schema.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(enterprise))


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "acme" / "platform").mkdir(parents=True)
    (tmp_path / "acme" / "platform" / "enterprise.yaml").write_text("mine\n")
    made = floe("init", "acme", cwd=tmp_path)
    assert made.returncode == 1 and "acme/platform/enterprise.yaml already exists" in made.stderr
    assert (tmp_path / "acme" / "platform" / "enterprise.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in (tmp_path / "acme").rglob("*") if p.is_file()) == ["enterprise.yaml"]
    bad = floe("init", "other", "--product", "My-Product", cwd=tmp_path)
    assert (
        bad.returncode == 1
        and "'My-Product' is not a product name" in bad.stderr
        and "Traceback" not in bad.stderr
    )
