"""``floe render argo``: one Argo Workflow, checked by hera's models, ordered as the plan orders.

The example ``lakehouse`` (staging on Spark, then marts on DuckDB) and a product of four
transforms whose refs make a diamond; every task holds its transform's Job container exactly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows.models import Workflow

import floe
from floe.argo import HEADER, render_workflow, validate_workflow
from floe.compiler import compile_path
from floe.errors import FloeError
from floe.kubernetes import render_jobs
from tests.test_run import DUO_FILES, DUO_TRANSFORMS, product

ROOT = Path(__file__).resolve().parents[1]


def tasks(workflow: dict[str, Any]) -> dict[str, list[str]]:
    entry = next(t for t in workflow["spec"]["templates"] if t["name"] == workflow["spec"]["entrypoint"])
    return {t["name"]: t.get("dependencies", []) for t in entry["dag"]["tasks"]}


def test_the_cli_writes_a_workflow_hera_reads_whose_dag_is_the_plans(tmp_path: Path) -> None:
    root = tmp_path / "lakehouse"
    shutil.copytree(ROOT / "examples/lakehouse", root, ignore=shutil.ignore_patterns(".floe", "target"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "floe",
            "render",
            "argo",
            str(root),
            "--env",
            "prod",
            "--image",
            "registry.example.com/lakehouse:1",
            "--namespace",
            "data",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    path = root / "target/floe/argo/prod/lakehouse-prod.yaml"
    assert f"wrote {path}" in done.stdout
    text = path.read_text()
    assert text.startswith(HEADER)
    workflow = yaml.safe_load(text)
    model = Workflow.model_validate(workflow)
    assert (model.api_version, model.kind, model.metadata.namespace) == (
        "argoproj.io/v1alpha1",
        "Workflow",
        "data",
    )
    assert tasks(workflow) == {
        "lakehouse-staging-prod": [],
        "lakehouse-marts-prod": ["lakehouse-staging-prod"],
    }
    assert [t.name for t in floe.plan(root, env="prod").transforms] == ["staging", "marts"]


def test_every_task_runs_its_jobs_container_and_the_dag_orders_as_the_plan(tmp_path: Path) -> None:
    root = product(tmp_path / "duo", "duo", DUO_TRANSFORMS, DUO_FILES)
    compiled = compile_path(root)
    plan = floe.plan(root, env="dev")
    workflow = render_workflow(compiled, "dev", plan=plan)
    jobs = render_jobs(compiled, "dev", plan=plan)
    names = {j["metadata"]["labels"]["floe.dev/transform"]: j["metadata"]["name"] for j in jobs}
    expected = {names[t.name]: [names[u] for u in t.depends_on] for t in plan.transforms}
    assert tasks(workflow) == expected
    assert expected[names["after_left"]] == [names["left"]] and expected[names["base"]] == []
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    for job in jobs:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        template = templates[job["metadata"]["name"]]
        assert template["container"] == {k: v for k, v in container.items() if k != "name"}
        assert template["metadata"]["labels"] == job["metadata"]["labels"]
    # a task's order in the DAG is a topological order of the plan
    order = [t["name"] for t in templates[workflow["spec"]["entrypoint"]]["dag"]["tasks"]]
    assert order == [names[t.name] for t in plan.transforms]


def test_validation_refuses_what_the_model_would_drop_or_refuse(tmp_path: Path) -> None:
    root = product(tmp_path / "duo", "duo", DUO_TRANSFORMS, DUO_FILES)
    workflow = render_workflow(compile_path(root), "dev")
    validate_workflow(workflow)
    unknown = {**workflow, "spec": {**workflow["spec"], "entrypont": "x"}}
    with pytest.raises(FloeError, match=r"\$\.spec\.entrypont: unknown field"):
        validate_workflow(unknown)
    dangling = yaml.safe_load(yaml.safe_dump(workflow))
    dangling["spec"]["templates"][0]["dag"]["tasks"][0]["dependencies"] = ["nowhere"]
    with pytest.raises(FloeError, match="depends on unknown tasks"):
        validate_workflow(dangling)
    wrong = yaml.safe_load(yaml.safe_dump(workflow))
    wrong["spec"]["templates"][1]["container"]["command"] = "floe run"
    with pytest.raises(FloeError, match="not a valid Argo Workflow"):
        validate_workflow(wrong)
