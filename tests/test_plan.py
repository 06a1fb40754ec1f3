"""``floe plan``: what ``floe run`` will do, computed without starting a catalog, a worker or an engine.

Each test writes a product to a temporary directory and runs the real CLI (or the Python API):
the plan's text and JSON, the run executing exactly its plan (the two JSON documents compared),
and every failure knowable before a run starts reported by the plan, located at the manifest's
file, line and ``$.path``, and by ``floe run`` before its lock, catalog or workers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.test_run import DUO_FILES, DUO_TRANSFORMS, product

ROOT = Path(__file__).resolve().parents[1]


def floe(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd
    )


def nothing_started(root: Path) -> bool:
    """No lock taken, no catalog, no run project or worker: only the plan's parse ran."""
    return (
        not (root / ".floe" / "run.lock").exists()
        and not (root / ".floe" / "iceberg").exists()
        and not (root / "target" / "floe" / "run").exists()
    )


@pytest.mark.parametrize("example", ["lakehouse", "shop"])
def test_plan_works_on_every_example_and_starts_nothing(tmp_path: Path, example: str) -> None:
    for name in ("lakehouse", "shop", "platform"):
        shutil.copytree(ROOT / "examples" / name, tmp_path / name)
    root = tmp_path / example
    done = floe("plan", str(root), "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert (plan["kind"], plan["product"], plan["environment"]) == ("RunPlan", example, "dev")
    assert plan["namespace"] == f"{example}_dev" and plan["catalog"]["embedded"] is True
    assert [t["name"] for t in plan["transforms"]] == ["staging", "marts"]
    assert plan["transforms"][1]["depends_on"] == ["staging"]
    assert all(t["nodes"] for t in plan["transforms"])
    (cross,) = plan["crossings"]
    assert (cross["from"], cross["to"], cross["kind"]) == ("staging", "marts", "in_place")
    for compute in plan["computes"]:
        assert compute["catalog_access"]["in_place"] is True
        assert any(step.startswith("approved by manifest") for step in compute["allowed"])
    assert nothing_started(root)
    text = floe("plan", str(root), "--env", "dev")
    assert text.returncode == 0 and "transforms, in build order:" in text.stdout
    assert "1. staging on " in text.stdout and "refs between computes:" in text.stdout


def test_a_run_executes_exactly_its_plan(tmp_path: Path) -> None:
    """The plan's transforms, their order, computes, engines, dependencies and nodes are the run's."""
    root = product(
        tmp_path / "duo",
        "duo",
        DUO_TRANSFORMS + "    - {type: dbt, name: empty, path: models/empty/}\n",
        {
            **DUO_FILES,
            "models/empty/.keep": "",
            "models/right/schema.yml": "version: 2\nmodels:\n  - name: righty\n    columns:\n      - name: total\n"
            "        data_tests: [not_null]\n",
        },
    )
    planned = floe("plan", str(root), "--env", "dev", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    ran = floe("run", str(root), "--env", "dev", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert [t["name"] for t in plan["transforms"]] == [t["name"] for t in report["transforms"]]
    for planned_t, run_t in zip(plan["transforms"], report["transforms"], strict=True):
        for key in ("name", "path", "compute", "engine", "depends_on", "tests"):
            assert planned_t[key] == run_t[key], key
        built = [
            n["unique_id"] for n in run_t["nodes"] if n["resource_type"] in ("model", "seed", "snapshot")
        ]
        assert sorted(built) == sorted(planned_t["nodes"]) and run_t["models"] == len(planned_t["nodes"])
    assert (plan["namespace"], plan["unassigned"]) == (report["namespace"], report["unassigned"])
    for key in ("name", "type", "warehouse", "embedded", "path"):
        assert plan["catalog"][key] == report["catalog"][key]
    assert plan["catalog"]["uri"] is None  # the embedded catalog's port is chosen when the run starts
    assert report["catalog"]["uri"].startswith("http://127.0.0.1:")
    assert [t["tests"] for t in plan["transforms"] if t["name"] == "right"] == [1]


def test_the_python_api_plans_and_runs(tmp_path: Path) -> None:
    import floe as api
    import floe.execution.runner  # imported, the package floe.execution leaves floe.run the function

    assert {"plan", "run", "RunPlan", "RunReport"} <= set(api.__all__)
    root = product(
        tmp_path / "pyapi",
        "pyapi",
        "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
        {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
    )
    the_plan = api.plan(root, env="dev")
    assert isinstance(the_plan, api.RunPlan) and [t.name for t in the_plan.transforms] == ["base"]
    assert "1. base on duckdb (duckdb): 1 model" in the_plan.render()
    report = api.run(str(root), env="dev", select=["base"])
    assert isinstance(report, api.RunReport) and report.success
    assert report.to_json()["transforms"][0]["nodes"][0]["relation"] == "floe.pyapi_dev.numbers"


# -- failures knowable before the run: reported by the plan first, and by the run before it starts ----


POSTGRES = """
      - name: pg
        engine: postgres
        config:
          host: 127.0.0.1
          user: floe
          password: {secret_ref: FLOE_TEST_PG_PASSWORD}
          dbname: floe
"""


def with_postgres(root: Path) -> Path:
    """A postgres compute (the example engine, its own distribution) next to the DuckDB ones."""
    manifest = root / "platform" / "enterprise.yaml"
    text = manifest.read_text()
    marker = "    default: duckdb\n"
    manifest.write_text(
        text.replace(marker, textwrap.indent(textwrap.dedent(POSTGRES).strip(), "      ") + "\n" + marker)
    )
    return manifest


REDSHIFT = """
      - name: rs
        engine: redshift
        config:
          host: 127.0.0.1
          user: floe
          password: {secret_ref: FLOE_TEST_RS_PASSWORD}
          dbname: dev
          schema: analytics
"""


def with_redshift(root: Path) -> Path:
    """A redshift compute: it builds in its own warehouse, and floe cannot carry tables in or out."""
    manifest = root / "platform" / "enterprise.yaml"
    text = manifest.read_text()
    marker = "    default: duckdb\n"
    manifest.write_text(
        text.replace(marker, textwrap.indent(textwrap.dedent(REDSHIFT).strip(), "      ") + "\n" + marker)
    )
    return manifest


def both(
    root: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    return floe("plan", str(root), "--env", "dev", env=env), floe("run", str(root), "--env", "dev", env=env)


def test_an_unset_secret_is_located_where_the_manifest_references_it(tmp_path: Path) -> None:
    root = product(
        tmp_path / "secret",
        "secret",
        """
        - {type: dbt, name: base, path: models/base/, compute: duckdb}
        - {type: dbt, name: stored, path: models/stored/, compute: pg}
    """,
        {
            "models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"],
            "models/stored/own.sql": "select 1 as one\n",
        },
    )
    manifest = with_postgres(root)
    env = {k: v for k, v in os.environ.items() if k != "FLOE_TEST_PG_PASSWORD"}
    line = (
        manifest.read_text().splitlines().index("          password: {secret_ref: FLOE_TEST_PG_PASSWORD}") + 1
    )
    for done in both(root, env):
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            f"{manifest}:{line}: $.plugins.compute.approved[2].config.password: compute 'pg': the secret "
            "environment variable FLOE_TEST_PG_PASSWORD is not set"
        ) in done.stderr, done.stderr
        assert (
            "fix: set FLOE_TEST_PG_PASSWORD in the environment" in done.stderr
            and "Traceback" not in done.stderr
        )
    assert nothing_started(root)
    # a selection that does not use the compute does not need its secret
    assert floe("plan", str(root), "--env", "dev", "--select", "base", env=env).returncode == 0


def test_a_ref_no_engine_can_cross_is_located_at_the_reading_transform(tmp_path: Path) -> None:
    """Redshift builds in its own warehouse and its engine gives floe no way to load a table into
    it; DuckDB's tables are in the catalog: a redshift model reading a DuckDB model cannot run, and
    both plan and run say so before anything starts."""
    root = product(
        tmp_path / "cross",
        "cross",
        """
        - {type: dbt, name: base, path: models/base/, compute: duckdb}
        - {type: dbt, name: stored, path: models/stored/, compute: rs}
    """,
        {
            "models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"],
            "models/stored/copied.sql": "select n from {{ ref('numbers') }}\n",
        },
    )
    with_redshift(root)
    env = {**os.environ, "FLOE_TEST_RS_PASSWORD": "unused: nothing connects"}
    floe_yaml = root / "floe.yaml"
    line = (
        floe_yaml.read_text()
        .splitlines()
        .index("  - {type: dbt, name: stored, path: models/stored/, compute: rs}")
        + 1
    )
    for done in both(root, env):
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            f"{floe_yaml}:{line}: $.transforms[1].compute: transform 'stored' on compute 'rs' refs 'numbers' "
            "of transform 'base' on compute 'duckdb'" in done.stderr
        ), done.stderr
        assert "nothing can carry the table" in done.stderr and "fix: run 'stored' on 'duckdb'" in done.stderr
        assert "floe cannot load tables into it" in done.stderr
    assert nothing_started(root)


def test_refs_to_and_from_a_bridged_compute_are_planned_as_bridges(tmp_path: Path) -> None:
    """PostgreSQL (the example engine) builds in its own database and lets floe carry its tables:
    a postgres model reading a DuckDB model is a load, a DuckDB model reading it a publish; the
    plan says so without connecting to anything."""
    root = product(
        tmp_path / "bridged",
        "bridged",
        """
        - {type: dbt, name: base, path: models/base/, compute: duckdb}
        - {type: dbt, name: stored, path: models/stored/, compute: pg}
        - {type: dbt, name: back, path: models/back/, compute: duckdb}
    """,
        {
            "models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"],
            "models/stored/copied.sql": "select n from {{ ref('numbers') }}\n",
            "models/back/again.sql": "select n from {{ ref('copied') }}\n",
        },
    )
    with_postgres(root)
    env = {**os.environ, "FLOE_TEST_PG_PASSWORD": "unused: nothing connects"}
    done = floe("plan", str(root), "--env", "dev", "--json", env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    crossings = {(c["from"], c["to"]): c for c in plan["crossings"]}
    assert {k: (c["kind"], c["publish"], c["load"]) for k, c in crossings.items()} == {
        ("base", "stored"): ("bridged", False, True),
        ("stored", "back"): ("bridged", True, False),
    }
    assert crossings[("base", "stored")]["refs"] == [["model.bridged.copied", "model.bridged.numbers"]]
    pg = next(c for c in plan["computes"] if c["name"] == "pg")
    assert pg["catalog_access"] == {
        "in_place": False,
        "how": pg["catalog_access"]["how"],
        "reads": True,
        "loads": True,
    }
    text = floe("plan", str(root), "--env", "dev", env=env).stdout
    assert "base (duckdb) → stored (pg), bridged: numbers" in text
    assert "stored (pg) → back (duckdb), bridged: copied" in text
    assert "loaded into the downstream warehouse before the downstream transform builds" in text
    assert "published into the catalog after the upstream transform builds" in text
    assert nothing_started(root)
    # a run of the postgres transform alone still publishes for the transform it leaves out
    selected = json.loads(
        floe("plan", str(root), "--env", "dev", "--json", "--select", "stored", env=env).stdout
    )
    assert [(c["from"], c["to"], c["publish"]) for c in selected["crossings"]] == [
        ("base", "stored", False),
        ("stored", "back", True),
    ]


def test_a_catalog_an_engine_cannot_attach_is_reported_by_the_plan(tmp_path: Path) -> None:
    root = product(
        tmp_path / "keyword",
        "keyword",
        "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
        {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
    )
    manifest = root / "platform" / "enterprise.yaml"
    manifest.write_text(
        manifest.read_text() + "catalog:\n  type: rest\n  name: order\n  uri: http://127.0.0.1:9\n"
    )
    line = manifest.read_text().splitlines().index("  name: order") + 1
    for done in both(root, dict(os.environ)):
        assert done.returncode == 1
        assert (
            f"{manifest}:{line}: $.catalog.name: compute 'duckdb' (engine duckdb) cannot attach the catalog 'order'"
            in done.stderr
        ), done.stderr
    assert nothing_started(root)
    manifest.write_text(manifest.read_text().replace("type: rest", "type: sql"))
    done = floe("plan", str(root), "--env", "dev")
    assert (
        done.returncode == 1 and "$.catalog.type: the manifest declares a sql catalog 'order'" in done.stderr
    )


def test_plan_arguments_are_checked_like_runs(tmp_path: Path) -> None:
    root = product(tmp_path / "args", "args", DUO_TRANSFORMS, DUO_FILES)
    done = floe("plan", str(root), "--env", "staging")
    assert done.returncode == 1 and "unknown environment 'staging'" in done.stderr
    done = floe("plan", str(root), "--env", "dev", "--select", "nothing")
    assert done.returncode == 1 and "no transform named 'nothing'" in done.stderr
    assert floe("plan", str(root)).returncode == 2  # --env is required
    selected: dict[str, Any] = json.loads(
        floe("plan", str(root), "--env", "dev", "--select", "left", "--json").stdout
    )
    assert [t["name"] for t in selected["transforms"]] == ["left"]
    assert selected["transforms"][0]["depends_on"] == ["base"]  # built already, or not: the run assumes so


def test_a_plan_writes_and_parses_its_project_only_under_the_plan_lock(tmp_path: Path) -> None:
    """Two plans at once (a ``floe plan`` while a ``floe run`` plans) would write
    ``target/floe/plan/`` over each other: while another process holds the product's plan lock, a
    plan waits before writing anything there, then goes on; it never takes the run lock."""
    import time

    from floe.execution.lock import exclusive

    root = product(
        tmp_path / "locked",
        "locked",
        "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
        {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
    )
    lock = root / ".floe" / "plan.lock"
    with exclusive(lock):
        waiting = subprocess.Popen(
            [sys.executable, "-m", "floe", "plan", str(root), "--env", "dev", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        inode = os.stat(lock).st_ino
        deadline = time.monotonic() + 120
        while not _blocked_on(inode):  # the kernel lists the plan as waiting for the lock
            assert waiting.poll() is None, waiting.communicate()
            assert time.monotonic() < deadline, "the plan never waited for the plan lock"
            time.sleep(0.1)
        assert not (root / "target" / "floe" / "plan").exists()
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert json.loads(out)["transforms"][0]["name"] == "base"
    assert (root / "target" / "floe" / "plan" / "dbt_project.yml").is_file() and nothing_started(root)


def _blocked_on(inode: int) -> bool:
    """Whether a process waits for an ``flock`` on the file ``inode`` (Linux's ``/proc/locks``)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and fields[-3].rsplit(":", 1)[-1] == str(inode):
            return True
    return False
