#!/usr/bin/env python
"""Run every benchmark and write ``benchmarks/RESULTS.md``: figures, goals, machine and date.

    python benchmarks/results.py [--only compile,run] [--output benchmarks/RESULTS.md]

Each benchmark script prints its own section with ``--markdown`` (its command, its figures, each
goal's figure against its limit); this script runs them one after another, so that no two
measurements share the machine, and puts the sections under one header that says where and when
they were measured, and which commit (and whether the checkout had uncommitted changes). It exits
with status 1 if a script failed or a goal was not met, and still writes the file.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform as host
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {  # name: (script, arguments)
    "compile": ("compile.py", ["--sizes", "500,1000,5000,10000", "--repeat", "3"]),
    "startup": (
        "startup.py",
        [
            "--rounds",
            "21",
            "--duckdb-only-venv",
            os.path.join(tempfile.gettempdir(), "floe-bench-duckdb-only"),
        ],
    ),
    "platform": ("compile_platform.py", []),
    "run": ("run.py", []),
    "concurrency": ("concurrency.py", []),
    "bridge": ("bridge.py", ["--rows", "1000000", "--repeat", "3"]),
    "mesh": ("mesh.py", ["--repeat", "2"]),
    "load": ("load.py", []),
    "soak": ("soak.py", ["--runs", "50"]),
    "scale": ("scale.py", []),
}


def machine() -> str:
    """One line on the machine: CPU model, cores, memory, OS, Python."""
    cpu = host.processor() or host.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages * size / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {host.system()} {host.release()}; "
        f"Python {host.python_version()}"
    )


def measured_commit() -> str:
    """The commit the benchmarks measure, and whether the checkout differs from it.

    Files changed but not committed (other than the results file itself) are measured too, and
    named: figures from a dirty tree cannot be traced to a commit. Untracked files are ignored.
    """
    root = HERE.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return done.stdout.rstrip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "an unknown commit (not a git checkout)"
    changed = git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/RESULTS.md"
    )
    if changed is None:
        return f"commit `{commit}` (whether the tree was clean is unknown)"
    files = [line[3:] for line in changed.splitlines() if line.strip()]
    if not files:
        return f"commit `{commit}`, clean tree"
    shown = ", ".join(f"`{f}`" for f in files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    return f"commit `{commit}` **with uncommitted changes** to {shown}"


def run_one(name: str) -> tuple[str, bool]:
    """The Markdown section of one benchmark, and whether it ran and met its goals."""
    script, arguments = BENCHMARKS[name]
    command = [sys.executable, str(HERE / script), *arguments, "--markdown"]
    print(f"running {script} {' '.join(arguments)}…", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    print(f"  {script}: exit status {done.returncode} after {took:.0f} s", file=sys.stderr, flush=True)
    section = done.stdout.strip()
    if done.returncode or not section:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        section = (
            section or f"## {script}"
        ) + f"\n\n**{script} failed (exit status {done.returncode}):**\n\n```\n{tail}\n```"
    met = done.returncode == 0 and "| **no** |" not in section
    return section + "\n", met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="benchmarks to run, comma-separated")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="where to write the results")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    measured = measured_commit()
    print(f"measuring {measured}", file=sys.stderr, flush=True)
    sections, all_met = [], True
    for name in names:
        section, met = run_one(name)
        sections.append(section)
        all_met &= met
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# Benchmark results",
        "",
        f"Measured {now} on {machine()}.",
        "",
        f"Code measured: {measured}. Re-measure whenever code on a measured path changes.",
        "",
        "Every figure is a ratio against a baseline measured in the same run, on the same machine, "
        "seconds apart; times are best of N. Produced by `python benchmarks/results.py` "
        "(each section names its own command); see benchmarks/README.md for what each figure measures.",
        "",
        f"All goals met: {'yes' if all_met else '**no**'}.",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n".join(sections)
    from floe.artifacts import write_atomic

    write_atomic(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
