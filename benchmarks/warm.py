#!/usr/bin/env python
"""Warm engines (issue 16 §2): ``floe run --keep-warm`` of the lakehouse example, first run against
the next ones, measured in one run of this script.

    python benchmarks/warm.py [--rounds N] [--json | --markdown]

The example (``examples/lakehouse``: Spark and DuckDB through the embedded Iceberg catalog) is
copied to a temporary folder. In order, each a whole ``floe run`` process, timed by wall clock:

1. ``floe run --env dev`` without the flag: a cold run, for reference (it also builds the tables);
2. ``floe run --env dev --keep-warm``: the first warm run, which starts the warm host, its catalog,
   its fork server and a worker per compute (dbt imported, Spark's JVM and session started);
3. ``floe run --env dev --keep-warm`` again, ``--rounds`` times: the second run (median);
4. a one-model change on Spark (a comment added to ``models/staging/stg_orders.sql``, a new one each
   round), then ``floe run --env dev --keep-warm --select staging``: the re-run of the changed
   model's transform on Spark (median of ``--rounds``), and the same for the whole product.

Then the resident memory (RSS) of the warm host and every process under it (fork server, catalog,
workers, Spark's JVM) is summed from ``/proc``, and the host is stopped (``floe warm stop``).

Goals: the second run ≤ 0.3× the first (both figures from this run); the one-model change
re-run on Spark ≤ 2 s on the machine measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lakehouse"
CHANGED = Path("models/staging/stg_orders.sql")


def floe(*args: str, cwd: Path) -> float:
    """Seconds one ``floe`` process takes; fails loudly when the run fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "floe", *args], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"floe {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def tree_rss(pid: int) -> tuple[int, int]:
    """Bytes of resident memory of ``pid`` and every process under it; how many processes."""
    pids, total, seen = [pid], 0, 0
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        seen += 1
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in tasks:
            try:
                pids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return total, seen


def host_pid(product: Path) -> int:
    from floe.execution import warm

    host = warm.find(product)
    assert host is not None, "no warm host after a --keep-warm run"
    try:
        return int(host.status()["pid"])
    finally:
        host.close()


def measure(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="floe-warm-bench-") as tmp:
        product = Path(tmp) / "lakehouse"
        shutil.copytree(EXAMPLE, product, ignore=shutil.ignore_patterns(".floe", "target", "logs"))
        product = product.resolve()
        run = ("run", str(product), "--env", "dev")
        try:
            cold = floe(*run, cwd=product)
            first = floe(*run, "--keep-warm", cwd=product)
            second = [floe(*run, "--keep-warm", cwd=product) for _ in range(rounds)]
            changed_select, changed_all = [], []
            for number in range(rounds):
                for target in (changed_select, changed_all):
                    path = product / CHANGED
                    path.write_text(path.read_text() + f"-- change {number} {len(target)} {time.time()}\n")
                    more = ("--select", "staging") if target is changed_select else ()
                    target.append(floe(*run, "--keep-warm", *more, cwd=product))
            rss, processes = tree_rss(host_pid(product))
        finally:
            floe("warm", "stop", str(product), cwd=product)
    return {
        "cold_s": cold,
        "first_warm_s": first,
        "second_warm_s": statistics.median(second),
        "second_warm_all_s": second,
        "changed_spark_transform_s": statistics.median(changed_select),
        "changed_spark_transform_all_s": changed_select,
        "changed_whole_product_s": statistics.median(changed_all),
        "second_over_first": statistics.median(second) / first,
        "second_over_cold": statistics.median(second) / cold,
        "warm_rss_mib": rss / 2**20,
        "warm_processes": processes,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }


def markdown(figures: dict[str, Any], command: str) -> str:
    met_ratio = figures["second_over_first"] <= 0.3
    met_change = figures["changed_spark_transform_s"] <= 2.0
    return "\n".join(
        [
            "## Warm engines: `floe run --keep-warm` of the lakehouse example (`benchmarks/warm.py`)",
            "",
            f"Command: `{command}`. {figures['cpus']} CPUs, load average {figures['load_average']:.1f} at the end; "
            f"medians of {figures['rounds']} rounds where a figure is repeated.",
            "",
            "| run | s |",
            "|---|---:|",
            f"| cold `floe run` (no flag; reference) | {figures['cold_s']:.2f} |",
            f"| first `floe run --keep-warm` (starts the warm host) | {figures['first_warm_s']:.2f} |",
            f"| second `floe run --keep-warm` | {figures['second_warm_s']:.2f} |",
            f"| one Spark model changed, `--keep-warm --select staging` (its transform) | {figures['changed_spark_transform_s']:.2f} |",
            f"| one Spark model changed, `--keep-warm` (whole product) | {figures['changed_whole_product_s']:.2f} |",
            "",
            f"Memory kept while warm: {figures['warm_rss_mib']:.0f} MiB resident (host, fork server, catalog, "
            f"workers, Spark's JVM: {figures['warm_processes']} processes).",
            "",
            "| goal | figure | limit | met |",
            "|---|---:|---:|:---:|",
            f"| second `floe run --keep-warm` / first | {figures['second_over_first']:.2f} | ≤ 0.3 | "
            + ("yes" if met_ratio else "**no**")
            + " |",
            f"| second `floe run --keep-warm` / cold `floe run` (not a goal: the first warm run pays the "
            f"host's start) | {figures['second_over_cold']:.2f} | | |",
            f"| one-model change re-run on Spark, s | {figures['changed_spark_transform_s']:.2f} | ≤ 2 | "
            + ("yes" if met_change else "**no**")
            + " |",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    figures = measure(args.rounds)
    if args.json:
        print(json.dumps(figures, indent=2))
    elif args.markdown:
        print(markdown(figures, f"python benchmarks/warm.py --rounds {args.rounds} --markdown"))
    else:
        for key, value in figures.items():
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
