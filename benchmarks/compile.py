#!/usr/bin/env python
"""How long ``floe compile`` takes, against PyYAML measured in the same run.

    python benchmarks/compile.py [--sizes 500,1000,5000,10000] [--repeat N] [--timeout S] [--json | --markdown]

Generates an enterprise manifest, a domain manifest and one data product per size in a temporary
directory, then reports best-of-N times, ratios and the goals they meet; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

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
      - name: duckdb-large
        engine: duckdb
        config: { threads: 8, memory_limit: 8GB }
    default: duckdb
environments:
  - name: dev
  - name: prod
    overrides:
      duckdb: { schema: analytics }
      duckdb-large: { schema: analytics }
"""
DOMAIN = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {name: bench-domain}
plugins:
  compute:
    approved:
      - duckdb
      - name: duckdb-large
        config: { threads: 6 }
"""
GOALS = {  # issue 5: start-up and compile at scale
    "process_vs_import_yaml": 6.0,  # whole-process compile of 10 transforms / `python -c "import yaml"`
    "process_vs_dbt_version": 0.1,  # the same / `dbt --version`
    "compile_vs_libyaml": 8.0,  # in-process compile / PyYAML C loader parse, at 1,000 and 5,000
    "scaling_5000_vs_500": 12.0,  # in-process compile of 5,000 transforms / of 500
}
GOAL_SIZES = (1000, 5000)
COMPUTES = ("duckdb", "duckdb-large", None)  # cycled over the transforms; None: the default
PROCESS_SIZE = 10


def write_product(
    root: Path,
    size: int,
    prefix: str = "product",
    *,
    name: str | None = None,
    platform: str = "../platform/domains/bench.yaml",
) -> Path:
    """A data product with ``size`` transforms (and their model folders) under ``root``.

    Its directory is ``root/PREFIX-SIZE``, or ``root/NAME`` when ``name`` is given (also its
    metadata name); ``platform`` is its manifest, relative to that directory.
    """
    product = root / (name or f"{prefix}-{size}")
    lines = [
        "apiVersion: floe.dev/v1",
        "kind: DataProduct",
        f"metadata: {{name: {name or f'bench-{size}'}, owner: bench}}",
        f"platform: {platform}",
        "transforms:",
    ]
    width = max(4, len(str(size - 1)))
    for i in range(size):
        path = f"models/t{i:0{width}d}/"
        (product / path).mkdir(parents=True)
        lines += ["  - type: dbt", f"    path: {path}"]
        compute = COMPUTES[i % len(COMPUTES)]
        if compute:
            lines.append(f"    compute: {compute}")
    (product / "floe.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return product


def write_platform(root: Path, domains: Sequence[str] = ("bench",)) -> None:
    """The enterprise manifest and one domain manifest per name, ``platform/domains/NAME.yaml``."""
    (root / "platform" / "domains").mkdir(parents=True)
    (root / "platform" / "enterprise.yaml").write_text(ENTERPRISE, encoding="utf-8")
    for domain in domains:
        text = DOMAIN if domain == "bench" else DOMAIN.replace("name: bench-domain", f"name: {domain}")
        (root / "platform" / "domains" / f"{domain}.yaml").write_text(text, encoding="utf-8")


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def worker(warmup: Path, product: Path, repeat: int) -> None:
    """Child process: discover engines once, warm up on a small product, print each compile's time.

    A compile is what ``floe compile`` does with a product: read and check it, then write its
    artifacts (``target/floe/profiles.yml`` and ``compiled.json``, each synced and renamed into place).
    """
    from floe.compiler import compile_path, write_artifacts
    from floe.plugins import EngineRegistry
    from floe.schemas import SchemaStore

    registry = EngineRegistry.discover()
    store = SchemaStore()
    try:
        write_artifacts(compile_path(warmup, engines=registry, store=store))
    except Exception as exc:  # noqa: BLE001 - reported by the parent as this measurement's status
        render = getattr(exc, "render", None)
        raise SystemExit(render() if callable(render) else f"{type(exc).__name__}: {exc}") from None
    print("ready", flush=True)  # start-up done: the parent's timeout now applies to each compile
    for _ in range(repeat):
        start = time.perf_counter()
        compiled = compile_path(product, engines=registry, store=store)
        write_artifacts(compiled)
        elapsed = time.perf_counter() - start
        if not compiled.transforms:
            raise SystemExit("compiled no transforms")
        print(f"time {elapsed}", flush=True)


def compile_times(warmup: Path, product: Path, repeat: int, timeout: float) -> tuple[list[float], str]:
    """Run :func:`worker`; each compile (and the start-up) gets ``timeout`` seconds."""
    cmd = [sys.executable, __file__, "--worker", str(warmup), str(product), "--repeat", str(repeat)]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env())
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        times: list[float] = []
        status = "ok"
        try:
            while (line := lines.get(timeout=timeout)) is not None:
                if line.startswith("time "):
                    times.append(float(line.split()[1]))
        except queue.Empty:
            proc.kill()
            status = f"timeout (> {timeout:g} s)"
        proc.wait()
        if proc.returncode and status == "ok":
            err.seek(0)
            status = f"error: {first_line(err.read(), proc.returncode)}"
    return times, status


def child_env() -> dict[str, str]:
    """The environment for timed child processes: Python may cache bytecode, as on a user's machine
    (with ``PYTHONDONTWRITEBYTECODE`` set, an editable install recompiles its sources every start)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def process_time(cmd: Sequence[str], repeat: int, timeout: float) -> tuple[float | None, str]:
    """Best wall time of ``repeat`` runs of ``cmd``, after one untimed warm-up run."""
    times: list[float] = []
    for attempt in range(repeat + 1):
        start = time.perf_counter()
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False, env=child_env()
            )
        except subprocess.TimeoutExpired:
            return (min(times) if times else None), f"timeout (> {timeout:g} s)"
        if attempt:
            times.append(time.perf_counter() - start)
        if done.returncode:
            return None, f"error: {first_line(done.stderr + done.stdout, done.returncode)}"
    return min(times), "ok"


def dbt_command() -> list[str]:
    """``dbt`` as a user runs it: the console script installed next to this Python."""
    beside = Path(sys.executable).with_name("dbt")
    found = str(beside) if beside.exists() else shutil.which("dbt")
    if found is None:
        raise SystemExit("dbt is not installed: pip install -e '.[duckdb]'")
    return [found]


def first_line(output: str, returncode: int) -> str:
    return next((line.strip() for line in output.splitlines() if line.strip()), f"exit status {returncode}")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def run(sizes: list[int], repeat: int, timeout: float) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="floe-bench-") as tmp:
        root = Path(tmp)
        write_platform(root)
        small = write_product(root, PROCESS_SIZE, "small")
        for size in sizes:
            product = write_product(root, size)
            text = (product / "floe.yaml").read_text(encoding="utf-8")
            baseline = best_of(repeat, functools.partial(yaml.load, text, Loader=yaml.CSafeLoader))
            print(f"compiling {size} transforms ({repeat}x, timeout {timeout:g} s each)…", file=sys.stderr)
            times, status = compile_times(small, product, repeat, timeout)
            floe = min(times) if times else None
            rows.append(
                {
                    "transforms": size,
                    "yaml_bytes": len(text.encode()),
                    "baseline_s": baseline,
                    "floe_s": floe,
                    "ratio": ratio(floe, baseline),
                    "runs": len(times),
                    "status": status,
                }
            )
        print(f"whole process: floe compile of {PROCESS_SIZE} transforms ({repeat}x)…", file=sys.stderr)
        py_yaml, py_status = process_time([sys.executable, "-c", "import yaml"], repeat, timeout)
        floe_cli, cli_status = process_time(
            [sys.executable, "-m", "floe", "compile", str(small)], repeat, timeout
        )
        print("whole process: dbt --version…", file=sys.stderr)
        dbt_version, dbt_status = process_time([*dbt_command(), "--version"], repeat, timeout)
    done = [r for r in rows if r["floe_s"] is not None and r["status"] == "ok"]
    scaling = None
    if len(done) >= 2:
        lo, hi = min(done, key=lambda r: r["transforms"]), max(done, key=lambda r: r["transforms"])
        factor = hi["transforms"] / lo["transforms"]
        scaling = {
            "from": lo["transforms"],
            "to": hi["transforms"],
            "size_factor": factor,
            "floe_factor": hi["floe_s"] / lo["floe_s"],
            "baseline_factor": hi["baseline_s"] / lo["baseline_s"],
            "floe_exponent": math.log(hi["floe_s"] / lo["floe_s"]) / math.log(factor),
        }
    statuses = [st for st in (cli_status, py_status, dbt_status) if st != "ok"]
    process = {
        "transforms": PROCESS_SIZE,
        "import_yaml_s": py_yaml,
        "floe_compile_s": floe_cli,
        "dbt_version_s": dbt_version,
        "ratio": ratio(floe_cli, py_yaml),
        "ratio_dbt": ratio(floe_cli, dbt_version),
        "status": statuses[0] if statuses else "ok",
    }
    result = {
        "python": sys.version.split()[0],
        "repeat": repeat,
        "timeout_s": timeout,
        "sizes": rows,
        "scaling": scaling,
        "process": process,
    }
    result["goals"] = goals(result)
    return result


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of issue 5 this script measures: its figure, its limit, whether it is met.

    A goal whose figure could not be measured (size not run, a failure) is not met."""
    p, by_size = result["process"], {r["transforms"]: r for r in result["sizes"]}
    rows = [
        (
            'whole-process `floe compile` (10 transforms) / `python -c "import yaml"`',
            p["ratio"],
            GOALS["process_vs_import_yaml"],
        ),
        (
            "whole-process `floe compile` (10 transforms) / `dbt --version`",
            p["ratio_dbt"],
            GOALS["process_vs_dbt_version"],
        ),
    ]
    for size in GOAL_SIZES:
        row = by_size.get(size, {})
        rows.append(
            (
                f"in-process compile of {size:,} transforms / PyYAML C parse",
                row.get("ratio"),
                GOALS["compile_vs_libyaml"],
            )
        )
    small, big = by_size.get(500, {}), by_size.get(5000, {})
    rows.append(
        (
            "in-process compile of 5,000 transforms / of 500",
            ratio(big.get("floe_s"), small.get("floe_s")),
            GOALS["scaling_5000_vs_500"],
        )
    )
    return [
        {"goal": name, "figure": figure, "limit": limit, "met": figure is not None and figure <= limit}
        for name, figure, limit in rows
    ]


def report(result: dict[str, Any]) -> None:
    print(f"best of {result['repeat']}, Python {result['python']}, timeout {result['timeout_s']:g} s")
    print(f"{'transforms':>10} {'baseline s':>11} {'floe s':>10} {'floe/baseline':>14}  status")
    for r in result["sizes"]:
        print(
            f"{r['transforms']:>10} {r['baseline_s']:>11.5f} {fmt(r['floe_s'], '10.4f'):>10} "
            f"{fmt(r['ratio'], '14.0f'):>14}  {r['status']}"
        )
    s = result["scaling"]
    if s:
        print(
            f"scaling {s['from']} → {s['to']} transforms (x{s['size_factor']:g}): floe x{s['floe_factor']:.1f} "
            f"(~n^{s['floe_exponent']:.2f}), baseline x{s['baseline_factor']:.1f}"
        )
    else:
        print("scaling: needs two sizes that compiled")
    p = result["process"]
    print(
        f"whole process, {p['transforms']} transforms: `floe compile` {fmt(p['floe_compile_s'], '.3f')} s, "
        f"`python -c 'import yaml'` {fmt(p['import_yaml_s'], '.3f')} s, ratio {fmt(p['ratio'], '.1f')}"
        f"  {p['status']}"
    )
    print(
        f"whole process: `dbt --version` {fmt(p['dbt_version_s'], '.3f')} s, floe compile / dbt --version "
        f"{fmt(p['ratio_dbt'], '.3f')}"
    )
    for g in result["goals"]:
        print(
            f"goal: {g['goal']}: {fmt(g['figure'], '.3g')} (limit {g['limit']:g}) {'met' if g['met'] else 'NOT MET'}"
        )


def markdown(result: dict[str, Any]) -> str:
    """The section of benchmarks/RESULTS.md this script contributes."""
    p = result["process"]
    out = [
        "## Start-up and compile at scale (`benchmarks/compile.py`)",
        "",
        f"Command: `python benchmarks/compile.py --sizes {','.join(str(r['transforms']) for r in result['sizes'])} "
        f"--repeat {result['repeat']}` (best of {result['repeat']}).",
        "",
        "| transforms | PyYAML C parse s | floe compile s (artifacts written) | floe / PyYAML |",
        "|---:|---:|---:|---:|",
    ]
    for r in result["sizes"]:
        out.append(
            f"| {r['transforms']:,} | {r['baseline_s']:.5f} | {fmt(r['floe_s'], '.4f')} | "
            f"{fmt(r['ratio'], '.1f')} |"
        )
    out += [
        "",
        f"Whole process (10 transforms): `floe compile` {fmt(p['floe_compile_s'], '.3f')} s, "
        f'`python -c "import yaml"` {fmt(p["import_yaml_s"], ".3f")} s, `dbt --version` '
        f"{fmt(p['dbt_version_s'], '.2f')} s.",
        "",
    ]
    out += goal_table(result["goals"])
    return "\n".join(out) + "\n"


def goal_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown rows for goals: figure, limit, met (shared by every benchmark script)."""
    out = ["| goal | figure | limit | met |", "|---|---:|---:|:---:|"]
    for g in rows:
        out.append(
            f"| {g['goal']} | {fmt(g['figure'], '.3g')} | ≤ {g['limit']:g} | {'yes' if g['met'] else '**no**'} |"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="500,1000,5000,10000", help="transform counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per compile")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the section for benchmarks/RESULTS.md")
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.worker:
        worker(args.worker[0], args.worker[1], args.repeat)
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or min(sizes) < 1:
        parser.error("--sizes needs positive integers")
    result = run(sizes, args.repeat, args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(markdown(result), end="")
    else:
        report(result)
    ok = all(r["status"] == "ok" for r in result["sizes"]) and result["process"]["status"] == "ok"
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
