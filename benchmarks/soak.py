#!/usr/bin/env python
"""The soak (issue 15 §1): one product run again and again in one process, ``--runs`` times.

    python benchmarks/soak.py [--runs 50] [--json | --markdown]

The long version of ``tests/test_soak.py`` (ten runs), run from a checkout: it imports the test's
census (child processes, open descriptors, threads, temp files). The shop example (two DuckDB
computes, a seed, the embedded Iceberg catalog in ``.floe/``) is copied to a temporary directory
and run through :func:`floe.run`, with ``TMPDIR`` private to the run. After each run: its seconds,
the census, and the size of ``.floe/`` (the embedded catalog's database, warehouse and state).

Figures: run N's seconds over run 2's (run 1 creates what later runs reuse), the median of the
last five over run 2 (less noisy), the census after run 2 against after run N (any growth is a
leak), and how ``.floe/`` grew per run (no retention policy for the embedded catalog's old
snapshots yet: this says how fast it grows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import fmt  # the sibling benchmarks' helpers
from run import markdown_section

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(runs: int) -> dict[str, Any]:
    import floe
    from tests.test_soak import census

    seconds: list[float] = []
    state: list[int] = []
    samples: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="floe-bench-soak-") as tmp:
        root = Path(tmp)
        shutil.copytree(EXAMPLES / "shop", root / "examples" / "shop")
        shutil.copytree(EXAMPLES / "platform", root / "examples" / "platform")
        product = root / "examples" / "shop"
        temp = root / "tmp"
        temp.mkdir()
        os.environ["TMPDIR"] = str(temp)
        tempfile.tempdir = str(temp)
        status = "ok"
        for n in range(1, runs + 1):
            start = time.perf_counter()
            report = floe.run(product, env="dev")
            seconds.append(time.perf_counter() - start)
            if not report.success:
                status = f"error: run {n} failed"
                break
            samples.append(census(temp))
            state.append(size_of(product / ".floe"))
            print(f"  run {n}: {seconds[-1]:.2f} s, .floe {state[-1] / 2**20:.1f} MiB", file=sys.stderr)
    tempfile.tempdir = None
    leaks = {}
    if len(samples) >= 2:
        second, last = samples[1], samples[-1]
        leaks = {
            "children": [len(second.children), len(last.children)],
            "descriptors": [len(second.descriptors), len(last.descriptors)],
            "threads": [second.threads, last.threads],
            "temp_files": [len(second.temp_files), len(last.temp_files)],
        }
        if any(after > before for before, after in leaks.values()):
            status = "error: something grew after run 2"
    tail = seconds[-5:]
    return {
        "runs": runs,
        "status": status,
        "seconds": [round(s, 3) for s in seconds],
        "floe_bytes": state,
        "last_over_second": seconds[-1] / seconds[1] if len(seconds) > 2 else None,
        "tail_over_second": statistics.median(tail) / seconds[1] if len(seconds) > 2 else None,
        "census": leaks,
    }


def markdown(result: Mapping[str, Any], command: str) -> str:
    n, s, b = result["runs"], result["seconds"], result["floe_bytes"]
    census = result["census"]
    rows = [
        (
            "run 1 (creates the DuckDB files, dbt's partial parse, the catalog)",
            f"{s[0]:.2f} s" if s else "-",
            "",
            "",
        ),
        ("run 2 (baseline)", f"{s[1]:.2f} s" if len(s) > 1 else "-", "", ""),
        (f"run {n}", f"{s[-1]:.2f} s" if s else "-", "", ""),
        (f"run {n} / run 2", fmt(result["last_over_second"], ".2f"), "≤ 1 (within noise)", ""),
        (f"median of runs {max(1, n - 4)}–{n} / run 2", fmt(result["tail_over_second"], ".2f"), "", ""),
    ]
    for what, (before, after) in census.items():
        rows.append(
            (
                f"{what.replace('_', ' ')} after run 2 → after run {n}",
                f"{before} → {after}",
                "no growth",
                "yes" if after <= before else "**no**",
            )
        )
    if len(b) > 2:
        per_run = (b[-1] - b[1]) / (len(b) - 2)
        rows += [
            (
                ".floe/ after run 1 → run 2 → run N",
                f"{b[0] / 2**20:.1f} → {b[1] / 2**20:.1f} → {b[-1] / 2**20:.1f} MiB",
                "",
                "",
            ),
            (".floe/ growth per run after run 2", f"{per_run / 2**10:.0f} KiB", "bounded (retention)", ""),
        ]
    note = (
        f"{n} runs of the shop example (two DuckDB computes, embedded catalog) in one process through "
        "`floe.run`; under `nice -n 5` on a 2-core machine shared with other work. No goal is checked on "
        "`.floe/` here: the embedded catalog's retention policy is separate work."
    )
    return markdown_section(f"Issue 15: soak, {n} runs in a row", command, rows, note)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    result = measure(args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result, "python benchmarks/soak.py " + " ".join(sys.argv[1:])).rstrip())
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
