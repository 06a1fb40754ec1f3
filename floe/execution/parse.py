"""dbt's parse of a product's project for ``floe plan``: one short ``dbt parse`` in a subprocess.

The plan needs dbt's graph (which model refs which), and only dbt knows it. No run's worker,
catalog or engine connection is involved: floe writes a dbt project for planning under
``target/floe/plan/`` (the user's project as a run sees it, with the first selected compute's
compiled profile, its engine's project configs and macros; see :mod:`floe.execution.projects`),
and ``python -m floe.execution.parse RESULT ARGS…`` parses it with the same code a worker parses
with (:func:`floe.execution.worker.parse`), writing the nodes to ``RESULT``. dbt's partial parse
makes a repeated plan quick, and when nothing dbt reads changed the last parse's nodes are reused
without running dbt at all (:mod:`floe.execution.parse_cache`). dbt's output goes to ``target/floe/plan/parse.log``. The project is
written and parsed under the product's plan lock (:func:`floe.execution.lock.exclusive`), not the
run lock: two plans at once take turns, and a plan never waits for a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floe.artifacts import PRIVATE_UMASK, open_private, private_directory
from floe.compiler import ARTIFACT_DIR, STATE_DIR, profile_name
from floe.errors import FloeError, Problem
from floe.execution.graph import Node
from floe.execution.lock import PLAN_LOCK_FILE, exclusive
from floe.execution.parse_cache import fingerprint, recall, remember, settled
from floe.execution.profiles import dbt_environ
from floe.execution.projects import PROJECT_FILE, read_user_project, write_project
from floe.secrets import find_secret_refs, floe_names, redact, secret_values

if TYPE_CHECKING:
    from floe.execution.plan import Preparation
    from floe.plugins import EngineRegistry

PLAN_DIR = ARTIFACT_DIR / "plan"
TIMEOUT = 600.0
LOG_TAIL_LINES = 15


def parse_for_plan(
    preparation: Preparation, registry: EngineRegistry, environ: Mapping[str, str] | None = None
) -> tuple[list[Node], str]:
    """The parsed nodes of the product's dbt project and the name of its root package.

    :raises FloeError: dbt could not parse the project (its message, and where its log is).
    """
    compiled = preparation.compiled
    product_dir = compiled.product_dir.resolve()
    name = preparation.selected_computes[0]
    compute = preparation.compute_config(name)
    output = compiled.profiles[profile_name(name)]["outputs"][preparation.environment]
    env = dbt_environ(os.environ if environ is None else environ)
    secrets = secret_values(find_secret_refs(compute.config), env)
    names = floe_names(compute)  # a short secret inside the compute's own names is not hidden there
    private_directory(product_dir / STATE_DIR)
    private_directory(product_dir / ARTIFACT_DIR)
    with exclusive(product_dir / STATE_DIR / PLAN_LOCK_FILE):
        result, project = _parse(product_dir, preparation, registry, name, output, env, secrets, names)
    if not result.get("success"):
        raise FloeError(
            [
                Problem(
                    "dbt could not parse the project:\n" + redact(str(result.get("error")), secrets, names),
                    fix=f"fix the dbt project; dbt's log: {project / 'logs' / 'dbt.log'}",
                )
            ]
        )
    return [Node.from_json(n) for n in result["nodes"]], str(result.get("project"))


def _parse(
    product_dir: Path,
    preparation: Preparation,
    registry: EngineRegistry,
    name: str,
    output: Any,
    env: dict[str, str],
    secrets: list[str],
    names: list[str],
) -> tuple[dict[str, Any], Path]:
    """Write the plan's project for compute ``name`` and parse it; dbt's answer and the project."""
    compute = preparation.compute_config(name)
    engine = registry.engines[compute.engine]
    catalog = preparation.catalog.config
    project = write_project(
        product_dir,
        product_dir / PLAN_DIR,
        read_user_project(product_dir),
        profile_name(name),
        preparation.environment,
        output,
        engine.run_project_config(compute, catalog),
        engine.run_macro_paths(compute, catalog),
    )
    args = [
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target",
        preparation.environment,
        "--target-path",
        str(project / "target"),
        "--log-path",
        str(project / "logs"),
    ]
    taken = time.time()
    key, newest = fingerprint(project, args, env, _outside(project))
    remembered = recall(project, key, env)
    if remembered is not None:  # nothing dbt reads changed since the last parse
        return remembered, project
    log = project / "parse.log"
    with tempfile.TemporaryDirectory(prefix="floe-plan-") as scratch:
        result_file = Path(scratch) / "result.json"
        with open_private(log) as out:
            done = subprocess.run(
                [sys.executable, "-m", "floe.execution.parse", str(result_file), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=project,
                timeout=TIMEOUT,
                check=False,
                umask=PRIVATE_UMASK,
            )
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = "\n".join(
                log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
            )
            raise FloeError(
                [
                    Problem(
                        f"dbt could not parse the project: the parse stopped (exit code "
                        f"{done.returncode}):\n" + redact(tail, secrets, names),
                        fix=f"see {log}",
                    )
                ]
            ) from None
    if not isinstance(result, dict):
        raise FloeError([Problem(f"dbt's parse wrote no result (see {log})")])
    remember(project, key, settled(newest, taken), result)
    return result, project


def _outside(project: Path) -> list[Path]:
    """The folders beyond the plan's project that dbt reads: absolute entries of its project file
    (paths outside the product) and the dbt packages' folder."""
    import yaml

    try:
        data = yaml.safe_load((project / PROJECT_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    found: list[Path] = []
    for key, value in data.items() if isinstance(data, dict) else ():
        entries = value if isinstance(value, list) else [value] if key == "packages-install-path" else []
        found.extend(Path(e) for e in entries if isinstance(e, str) and os.path.isabs(e))
    return found


def main(argv: list[str]) -> int:
    from floe.execution.worker import parse

    result = parse(argv[2:])
    Path(argv[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    from floe.execution.worker import exit_now

    exit_now(main(sys.argv))
