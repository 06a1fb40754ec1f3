#!/usr/bin/env python
"""Start-up at the floor: whole-process ``floe compile`` of a 10-transform product against
``python -c "import yaml"``, side by side in one run (issue 16 §1).

    python benchmarks/startup.py [--rounds N] [--duckdb-only-venv DIR] [--before SRC] [--json | --markdown]

Each round runs every command once, one after the other, so that a busy machine slows them
alike; two rounds, 2 s apart, warm the caches (bytecode, the page cache, floe's entry-point cache,
the compile stamp: a file changed in the last 2 s is not trusted by a stamp) and are not counted.
Figures are medians of the rounds; each ratio divides two medians of one interpreter. Measured:

- the interpreter running this script (the environment with every engine installed):
  ``import yaml``; ``floe compile`` of a product that did not change since its last compile
  (answered from the compile stamp); the same with the stamp off (``FLOE_NO_COMPILE_STAMP=1``:
  the whole compile, as before the stamp); ``floe compile`` of a product changed before each
  compile (its first transform's compute switched: the stamp is checked, the compile runs, both
  artifacts are rewritten and synced, the stamp is recorded again); and ``floe compile`` with the
  entry-point cache and the stamp off (``FLOE_NO_PLUGIN_CACHE=1``: every distribution's metadata
  read, as before the cache);
- with ``--duckdb-only-venv DIR``: the first four in a virtualenv holding floe with its ``duckdb``
  extra only (``pip install -e '.[duckdb]'``, what a DuckDB user installs). The folder is created
  with that install when it does not exist yet (pip then needs its package index);
- with ``--before SRC``: ``floe compile`` from another checkout of floe's sources (``git archive
  main | tar -x -C SRC``), put first on ``PYTHONPATH``; its ``import yaml`` gets the same path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compile as bench  # the writers of benchmarks/compile.py

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"all": 3.0, "duckdb": 2.0}
"""Whole-process ``floe compile`` / ``python -c "import yaml"``, at most (issue 16 §1)."""
LIBRARIES = ("yaml", "attrs", "cattrs", "pluggy")
"""The libraries every ``floe compile`` imports (its floor: PyYAML's C parser, the typed manifests, the engine hooks)."""
STAMP_OFF = "FLOE_NO_COMPILE_STAMP"
WARM_UP = 2
RACY_S = 2.1
"""Seconds between the warm-up rounds: a compile stamp trusts no file changed in the last 2 s."""
TOGGLE = ("path: models/t0000/\n    compute: duckdb\n", "path: models/t0000/\n    compute: duckdb-large\n")
OTHER_ENGINES = (
    "pyspark",
    "snowflake.connector",
    "google.cloud.bigquery",
    "databricks.sql",
    "redshift_connector",
    "trino",
    "dbt.adapters.spark",
)
"""Modules of the other engines' clients: none may be importable in the DuckDB-only environment."""


def duckdb_only_python(venv: Path) -> Path:
    """The Python of ``venv``, created with ``floe[duckdb]`` (editable, from this checkout) if missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with floe[duckdb] only…", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[duckdb]"], check=True)
    probe = (
        "import importlib.util\n"
        "def found(name):\n"
        "    try:\n        return importlib.util.find_spec(name) is not None\n"
        "    except ImportError:\n        return False\n"
        f"print(*[m for m in {OTHER_ENGINES!r} if found(m)])\n"
    )
    found = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    if found:
        raise SystemExit(f"{venv} is not DuckDB-only: it can import {', '.join(found)}")
    return python


def toggle(product_file: Path) -> None:
    """Switch the first transform's compute (``duckdb`` ↔ ``duckdb-large``): the artifacts change."""
    text = product_file.read_text(encoding="utf-8")
    one, other = TOGGLE
    product_file.write_text(
        text.replace(one, other) if one in text else text.replace(other, one), encoding="utf-8"
    )


def distributions(python: Path | str) -> int:
    """How many distributions the environment of ``python`` holds (what discovery used to scan)."""
    code = "from importlib import metadata; print(len(list(metadata.distributions())))"
    return int(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


def timed(cmd: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(
            f"{' '.join(cmd)} failed: {bench.first_line(done.stderr + done.stdout, done.returncode)}"
        )
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(rounds: int, venv: Path | None, before: Path | None, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="floe-startup-") as tmp:
        root = Path(tmp)
        bench.write_platform(root)
        base = {**bench.child_env(), "XDG_CACHE_HOME": str(root / "cache")}
        for name in ("FLOE_NO_PLUGIN_CACHE", "FLOE_DISABLE_PLUGINS", STAMP_OFF):
            base.pop(name, None)
        no_stamp = {**base, STAMP_OFF: "1"}
        envs: dict[str, tuple[str, dict[str, str]]] = {"all": (sys.executable, base)}
        if venv is not None:
            envs["duckdb"] = (str(duckdb_only_python(venv)), base)
        if before is not None:
            path = os.pathsep.join(p for p in (str(before), base.get("PYTHONPATH", "")) if p)
            envs["before"] = (sys.executable, {**base, "PYTHONPATH": path})
        commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        changing: dict[str, Path] = {}
        products: dict[str, Path] = {}
        for name, (python, env) in envs.items():
            # one product per environment: a product's stamp is its last compile's, by one interpreter
            products[name] = product = bench.write_product(root, bench.PROCESS_SIZE, f"small-{name}")
            compile_product = [python, "-m", "floe", "compile", str(product)]
            commands[f"{name}:yaml"] = ([python, "-c", "import yaml"], env)
            commands[f"{name}:floe"] = (compile_product, env)
            if name == "before":
                continue  # no stamp there: its compile is always the whole compile
            commands[f"{name}:floe-nostamp"] = (compile_product, {**env, STAMP_OFF: "1"})
            changing[name] = bench.write_product(root, bench.PROCESS_SIZE, f"changing-{name}")
            commands[f"{name}:floe-changed"] = (
                [python, "-m", "floe", "compile", str(changing[name])],
                env,
            )
        commands["all:libraries"] = ([sys.executable, "-c", f"import {', '.join(LIBRARIES)}"], base)
        commands["all:floe-uncached"] = (
            [sys.executable, "-m", "floe", "compile", str(products["all"])],
            {**no_stamp, "FLOE_NO_PLUGIN_CACHE": "1"},
        )
        times: dict[str, list[float]] = {key: [] for key in commands}
        cpu: dict[str, list[float]] = {key: [] for key in commands}
        print(
            f"{rounds} rounds of {len(commands)} commands (plus {WARM_UP} warm-up rounds)…",
            file=sys.stderr,
            flush=True,
        )
        for i in range(rounds + WARM_UP):
            if i == 1:
                time.sleep(RACY_S)  # what the first round wrote (bytecode folders) is now trusted
            for key, (cmd, env) in commands.items():
                if key.endswith(
                    ":floe-changed"
                ):  # its artifacts differ every round: both rewritten and synced
                    toggle(changing[key.split(":")[0]] / "floe.yaml")
                elapsed, used = timed(cmd, env, root, timeout)
                if i >= WARM_UP:
                    times[key].append(elapsed)
                    cpu[key].append(used)
        stamped = {
            name: answered_from_stamp(python, env, root, products[name], timeout)
            for name, (python, env) in envs.items()
            if name != "before"
        }
    medians = {key: statistics.median(values) for key, values in times.items()}
    cpu_medians = {key: statistics.median(values) for key, values in cpu.items()}
    result: dict[str, Any] = {
        "rounds": rounds,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
        "medians": medians,
        "cpu_medians": cpu_medians,
        "times": times,
        "environments": {},
        "answered_from_stamp": stamped,
    }
    for name, (python, _) in envs.items():
        ratios = {
            f"{kind}ratio{'' if case == 'floe' else '_' + case.split('-')[1]}": table[f"{name}:{case}"]
            / table[f"{name}:yaml"]
            for kind, table in (("", medians), ("cpu_", cpu_medians))
            for case in ("floe", "floe-nostamp", "floe-changed")
            if f"{name}:{case}" in table
        }
        result["environments"][name] = {
            "python": python,
            "distributions": distributions(python),
            **ratios,
        }
    result["libraries_ratio"] = medians["all:libraries"] / medians["all:yaml"]
    result["libraries_cpu_ratio"] = cpu_medians["all:libraries"] / cpu_medians["all:yaml"]
    result["uncached_ratio"] = medians["all:floe-uncached"] / medians["all:yaml"]
    result["uncached_cpu_ratio"] = cpu_medians["all:floe-uncached"] / cpu_medians["all:yaml"]
    result["goals"] = [
        {
            "goal": f'whole-process `floe compile` (10 transforms) / `python -c "import yaml"`, {label}, '
            f"{case_label}",
            "figure": result["environments"][name][ratio],
            "limit": GOALS[name],
            "met": result["environments"][name][ratio] <= GOALS[name],
        }
        for name, label in (("all", "every engine installed"), ("duckdb", "only DuckDB installed"))
        if name in result["environments"]
        for ratio, case_label in CASES
    ]
    return result


CASES = (
    ("ratio", "product unchanged since its last compile"),
    ("ratio_changed", "product changed before each compile"),
)
"""The two cases each goal is reported for: answered from the stamp, and the whole compile."""


def answered_from_stamp(
    python: str, env: Mapping[str, str], cwd: Path, product: Path, timeout: float
) -> bool:
    """Whether ``floe compile PRODUCT`` is answered from its stamp now: no cattrs imported."""
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "floe", "compile", str(product)],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return (
        done.returncode == 0
        and not re.search(r"\|\s+cattrs\b", done.stderr)
        and "artifacts unchanged" in done.stdout
    )


LABELS = {
    "all": "every engine installed (this interpreter)",
    "duckdb": "only DuckDB installed (`floe[duckdb]`)",
    "before": "every engine installed, the `--before` sources",
}


def markdown(result: dict[str, Any], argv: list[str]) -> str:
    med, cpu = result["medians"], result["cpu_medians"]
    lines = [
        "## Start-up: whole-process `floe compile` against `import yaml` (`benchmarks/startup.py`)",
        "",
        f"`python benchmarks/startup.py{''.join(' ' + a for a in argv)}`",
        "",
        f"Medians of {result['rounds']} rounds (each round runs every command once, in turn), Python "
        f"{result['python']}, {result['cpus']} CPUs, load average {result['load']:.1f} at the end; each ratio "
        "divides two medians of one environment. Wall time is the goal's figure; CPU time (user + system) "
        "is given because a shared machine's load moves it less.",
        "",
        "| environment | distributions | `import yaml` s | `floe compile` s | ratio | CPU: yaml / floe ms | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, dists: int, env: str, floe: str, ratio: float, cpu_ratio: float) -> str:
        return (
            f"| {label} | {dists} | {med[f'{env}:yaml']:.3f} | {med[floe]:.3f} | {ratio:.2f} | "
            f"{cpu[f'{env}:yaml'] * 1000:.0f} / {cpu[floe] * 1000:.0f} | {cpu_ratio:.2f} |"
        )

    cases = (
        ("floe", "ratio", "the product unchanged since its last compile (answered from the stamp)"),
        ("floe-nostamp", "ratio_nostamp", "the product unchanged, stamp off (`FLOE_NO_COMPILE_STAMP=1`)"),
        (
            "floe-changed",
            "ratio_changed",
            "the product changed before each compile (the whole compile, both artifacts rewritten "
            "and synced, the stamp recorded)",
        ),
    )
    for name, env in result["environments"].items():
        for case, ratio, label in cases:
            if f"{name}:{case}" not in med:
                continue
            if name == "before":
                label = "the product unchanged (no stamp in these sources: the whole compile)"
            lines.append(
                row(
                    f"{LABELS[name]}: {label}",
                    env["distributions"],
                    name,
                    f"{name}:{case}",
                    env[ratio],
                    env[f"cpu_{ratio}"],
                )
            )
    lines.append(
        row(
            "every engine installed, entry-point cache and stamp off (`FLOE_NO_PLUGIN_CACHE=1`)",
            result["environments"]["all"]["distributions"],
            "all",
            "all:floe-uncached",
            result["uncached_ratio"],
            result["uncached_cpu_ratio"],
        )
    )
    lines.append(
        row(
            f'reference: `python -c "import {", ".join(LIBRARIES)}"` (the libraries floe compile needs)',
            result["environments"]["all"]["distributions"],
            "all",
            "all:libraries",
            result["libraries_ratio"],
            result["libraries_cpu_ratio"],
        )
    )
    stamped = ", ".join(
        f"{LABELS[n]}: {'yes' if ok else '**no**'}" for n, ok in result["answered_from_stamp"].items()
    )
    lines += [
        "",
        f"Answered from the stamp after the rounds (no cattrs in `-X importtime`): {stamped}.",
        "",
        *bench.goal_table(result["goals"]),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=21, help="counted rounds; medians are reported")
    parser.add_argument(
        "--duckdb-only-venv",
        type=Path,
        default=None,
        help="a virtualenv with floe[duckdb] only (created when missing)",
    )
    parser.add_argument(
        "--before", type=Path, default=None, help="floe sources to compare with (put on PYTHONPATH)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per process")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the figures as JSON")
    out.add_argument("--markdown", action="store_true", help="print the section for benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    result = run(args.rounds, args.duckdb_only_venv, args.before, args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result, sys.argv[1:]))
    return 0 if all(goal["met"] for goal in result["goals"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
