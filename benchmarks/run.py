#!/usr/bin/env python
"""How much ``floe run`` costs on top of dbt: a DuckDB product of 10 transforms, against ``dbt build``.

    python benchmarks/run.py [--transforms 10] [--repeat 3] [--timeout 300] [--json | --markdown]

Writes a platform manifest and a data product whose transforms all run on one DuckDB compute in a
temporary directory, runs ``floe run`` once to warm up (it generates the compute's dbt project and
profile), then alternately times ``floe run DIR --env dev`` end to end and one plain
``dbt build`` of the very project and profile floe generated; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import child_env, dbt_command, first_line, fmt, ratio  # the sibling benchmark's helpers

GOAL = 1.1
ENTERPRISE = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: bench, owner: platform-team}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 4 }
      - name: duckdb-b
        engine: duckdb
        config: { threads: 4 }
    default: duckdb
environments:
  - name: dev
"""
ROWS = 100_000


def bench_environ() -> dict[str, str]:
    """The environment every timed child gets (floe's and dbt's alike).

    Python writes byte code, as it does for an installed package (a source checkout would otherwise
    recompile floe at every start); dbt sends no usage statistics (floe's workers default to that).
    """
    env = child_env()
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def write_files(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def write_product(
    root: Path,
    name: str,
    transforms: Sequence[tuple[str, str, Mapping[str, str]]],
    enterprise: str = ENTERPRISE,
) -> Path:
    """A data product ``name`` with a dbt project: ``transforms`` are (name, compute, {file: sql}).

    Transform ``t`` owns ``models/t/``; every model is a table (the project's default). The
    platform manifest (``enterprise``) goes to ``root/platform/enterprise.yaml``.
    """
    product = root / name
    lines = [
        "apiVersion: floe.dev/v1",
        "kind: DataProduct",
        f"metadata: {{name: {name}, owner: bench}}",
        "platform: ../platform/enterprise.yaml",
        "transforms:",
    ]
    files = {
        "dbt_project.yml": f"name: {name}\nversion: '1.0.0'\nconfig-version: 2\nprofile: {name}\n"
        f"models:\n  {name}:\n    +materialized: table\n"
    }
    for transform, compute, models in transforms:
        lines.append(f"  - {{type: dbt, name: {transform}, path: models/{transform}/, compute: {compute}}}")
        files.update({f"models/{transform}/{file}": sql for file, sql in models.items()})
    files["floe.yaml"] = "\n".join(lines) + "\n"
    write_files(root, {"platform/enterprise.yaml": enterprise})
    return write_files(product, files)


def tree_transforms(count: int) -> list[tuple[str, str, Mapping[str, str]]]:
    """``count`` transforms on compute ``duckdb``, one model each, as a binary tree of refs.

    ``t00`` makes ``ROWS`` rows; ``tNN`` reads the model of ``t((NN-1)//2)``: a DAG of dependent
    and independent transforms, as a real product has.
    """
    width = max(2, len(str(count - 1)))
    names = [f"t{i:0{width}d}" for i in range(count)]
    out: list[tuple[str, str, Mapping[str, str]]] = []
    for i, name in enumerate(names):
        if i == 0:
            sql = f"select range as id, range % 97 as k, random() as x from range({ROWS})\n"
        else:
            sql = (
                f"select id, k, x * {i} as x, k + {i} as k{i} from {{{{ ref('m_{names[(i - 1) // 2]}') }}}}\n"
            )
        out.append((name, "duckdb", {f"m_{name}.sql": sql}))
    return out


def floe_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "floe", *args]


def timed(
    cmd: Sequence[str], timeout: float, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[float | None, str]:
    """One run of ``cmd`` (in ``env``, default :func:`bench_environ`): its wall time and ``ok``, or
    ``None`` and why not."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(env) if env is not None else bench_environ(),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return None, f"timeout (> {timeout:g} s)"
    elapsed = time.perf_counter() - start
    if done.returncode:
        return None, f"error: {first_line(done.stderr + done.stdout, done.returncode)}"
    return elapsed, "ok"


class Series:
    """The times of one measurement over the repeats; its status is the first failure, if any."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.times: list[float] = []
        self.status = "ok"

    def add(self, measured: tuple[float | None, str]) -> None:
        elapsed, status = measured
        if elapsed is not None:
            self.times.append(elapsed)
        if status != "ok" and self.status == "ok":
            self.status = status

    @property
    def best(self) -> float | None:
        return min(self.times) if self.times and self.status == "ok" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "best_s": self.best,
            "runs_s": [round(t, 3) for t in self.times],
            "status": self.status,
        }


def baseline_build(product: Path, timeout: float) -> tuple[float | None, str]:
    """``dbt build`` of floe's generated project, with the embedded catalog serving (not timed).

    The catalog is started here, before the clock, on the port floe's last run used (the one its
    generated profile names), from the same SQLite file and warehouse.
    """
    from floe.catalog.rest_server import EmbeddedCatalog
    from floe.execution.catalog_client import TOKEN_VARIABLE

    token = secrets.token_urlsafe(
        24
    )  # a run's catalog asks for one; floe's profiles read it from the environment
    project = product / "target" / "floe" / "run" / "duckdb"
    state = product / ".floe"
    try:
        port = int((state / "iceberg" / "port").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"error: no catalog port from floe's run ({exc})"
    if f"127.0.0.1:{port}" not in (project / "profiles.yml").read_text(encoding="utf-8"):
        return None, "error: floe's generated profile names another catalog port"
    cmd = [
        *dbt_command(),
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target",
        "dev",
    ]
    with EmbeddedCatalog(state, port=port, token=token):
        return timed(cmd, timeout, env={**bench_environ(), TOKEN_VARIABLE: token})


def alternate(
    repeat: int, measurements: Sequence[tuple[Series, Callable[[], tuple[float | None, str]]]]
) -> None:
    """Run every measurement once per round, ``repeat`` rounds: noise hits them all alike."""
    for i in range(repeat):
        print(f"  round {i + 1}/{repeat}", file=sys.stderr)
        for series, measure in measurements:
            series.add(measure())


def run(transforms: int, repeat: int, timeout: float) -> dict[str, Any]:
    floe = Series("floe run")
    dbt = Series("dbt build")
    with tempfile.TemporaryDirectory(prefix="floe-bench-run-") as tmp:
        product = write_product(Path(tmp), "runbench", tree_transforms(transforms))
        command = floe_cmd("run", str(product), "--env", "dev")
        print(f"warm-up: floe run of {transforms} transforms…", file=sys.stderr)
        warm = Series("warm-up")
        warm.add(timed(command, timeout))
        if warm.status != "ok":
            floe.status = dbt.status = f"warm-up {warm.status}"
        else:
            alternate(
                repeat,
                [(floe, lambda: timed(command, timeout)), (dbt, lambda: baseline_build(product, timeout))],
            )
    rounds = paired_ratios(floe, dbt)
    return {
        "goal": "run_overhead",
        "python": sys.version.split()[0],
        "machine": host.machine(),
        "cpus": os.cpu_count(),
        "repeat": repeat,
        "timeout_s": timeout,
        "transforms": transforms,
        "floe": floe.to_json(),
        "baseline": dbt.to_json(),
        "ratio_of_bests": ratio(floe.best, dbt.best),
        "round_ratios": [round(r, 3) for r in rounds],
        "ratio": statistics.median(rounds) if rounds else None,
        "target": GOAL,
    }


def paired_ratios(floe: Series, dbt: Series) -> list[float]:
    """``floe run`` over ``dbt build`` in each round (the two ran seconds apart): their spread is
    the noise any single ratio carries."""
    if floe.status != "ok" or dbt.status != "ok" or len(floe.times) != len(dbt.times):
        return []
    return [f / d for f, d in zip(floe.times, dbt.times, strict=True) if d]


def spread(result: Mapping[str, Any]) -> str:
    """The per-round ratios as ``median (min–max over N rounds)``."""
    rounds = result["round_ratios"]
    if not rounds:
        return "-"
    return f"{statistics.median(rounds):.2f} ({min(rounds):.2f}–{max(rounds):.2f} over {len(rounds)} rounds)"


def met(value: float | None, target: float) -> str:
    return "-" if value is None else ("yes" if value <= target else "no")


def met_cell(value: float | None, target: float) -> str:
    """:func:`met` for a Markdown table: a missed goal in bold (``results.py`` looks for it)."""
    verdict = met(value, target)
    return "**no**" if verdict == "no" else verdict


def markdown_section(title: str, command: str, rows: Sequence[Sequence[str]], note: str = "") -> str:
    """A Markdown section: ``rows`` are (figure, value, goal, met) cells."""
    lines = [f"## {title}", "", f"`{command}`", ""]
    if note:
        lines += [note, ""]
    lines += ["| figure | value | goal | met |", "|---|---:|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def seconds_cell(series: Mapping[str, Any]) -> str:
    best = series["best_s"]
    if best is None:
        return series["status"]
    runs = ", ".join(f"{t:.2f}" for t in series["runs_s"])
    return f"{best:.2f} s (runs: {runs})"


def markdown(result: Mapping[str, Any], command: str) -> str:
    n, r = result["transforms"], result["ratio"]
    return markdown_section(
        "Goal 4: `floe run` overhead",
        command,
        [
            (
                f"plain `dbt build` of floe's generated project, {n} models (baseline)",
                seconds_cell(result["baseline"]),
                "",
                "",
            ),
            (
                f"`floe run DIR --env dev`, {n} transforms on one DuckDB compute",
                seconds_cell(result["floe"]),
                "",
                "",
            ),
            (
                "floe run / dbt build, per round: median (spread)",
                spread(result),
                f"≤ {result['target']}",
                met_cell(r, result["target"]),
            ),
            ("best floe run / best dbt build", fmt(result["ratio_of_bests"], ".2f"), "", ""),
        ],
        f"{result['repeat']} rounds, each timing `floe run` then `dbt build`; Python {result['python']}, "
        f"{result['cpus']} CPUs. A ratio near 1 whose spread spans 1 is parity within noise, not a "
        "speed-up or a cost; the goal is checked on the median of the rounds' ratios.",
    )


def report(result: Mapping[str, Any]) -> None:
    print(f"best of {result['repeat']}, Python {result['python']}, {result['transforms']} transforms")
    for key in ("baseline", "floe"):
        s = result[key]
        runs = ", ".join(f"{t:.2f}" for t in s["runs_s"])
        print(f"{s['label']:>10}: {fmt(s['best_s'], '.2f'):>6} s   (runs: {runs})  {s['status']}")
    r = result["ratio"]
    print(
        f"floe run / dbt build per round: {spread(result)}; best / best {fmt(result['ratio_of_bests'], '.2f')} "
        f"(goal, on the median ≤ {result['target']}: {met(r, result['target'])})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transforms", type=int, default=10, help="transforms (one model each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the figures as JSON")
    output.add_argument("--markdown", action="store_true", help="print a Markdown section for RESULTS.md")
    args = parser.parse_args()
    if args.repeat < 1 or args.transforms < 1:
        parser.error("--repeat and --transforms must be at least 1")
    result = run(args.transforms, args.repeat, args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(markdown(result, "python benchmarks/run.py " + " ".join(sys.argv[1:])).rstrip())
    else:
        report(result)
    return 0 if result["floe"]["status"] == "ok" and result["baseline"]["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
