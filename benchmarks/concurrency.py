#!/usr/bin/env python
"""Whether floe's work on several computes runs at once: ``floe validate`` and ``floe run``.

    python benchmarks/concurrency.py [--repeat 3] [--timeout 300] [--only validate|run]
                                     [--pair duckdb|spark|all] [--json | --markdown]

1. ``floe validate`` of a product approving eight computes, one per engine, each against a live
   peer on loopback (the peers of ``tests/test_validate_all_engines.py``), except that the Trino
   compute points at a server that accepts connections and never answers. Its check gives up
   after 10 s; the command must return within 11 s, the other seven checks hidden behind it.
   Baseline: ``floe validate`` of a product approving only the hung compute (and the local DuckDB
   its transform uses).
2. ``floe run`` of a product with two independent transforms on two computes (two computes are
   two dbt worker processes): two DuckDB computes, and DuckDB and Spark; each transform alone
   (``--select``) and both together.

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the engines' peers
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import first_line, fmt, ratio  # the sibling benchmarks' helpers
from run import (
    ENTERPRISE,
    Series,
    alternate,
    floe_cmd,
    markdown_section,
    met,
    met_cell,
    seconds_cell,
    timed,
    write_product,
)

VALIDATE_GOAL_S = 11.0
"""Seconds ``floe validate`` of the eight computes may take (the hung one's check gives up at 10 s)."""
RUN_GOAL = 1.2
"""``floe run`` of both transforms, over the slower of the two run alone."""
ROWS = 300_000


QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
SPARK_COMPUTE = f"""\
      - name: spark
        engine: spark
        config:
          master: local[1]
          driver_memory: 768m
          iceberg: true
          spark_conf:
            spark.sql.shuffle.partitions: '1'
            spark.ui.enabled: 'false'
            spark.driver.extraJavaOptions: '{QUICK_JVM}'
"""
PAIRS = {"duckdb": ("duckdb", "duckdb-b"), "spark": ("duckdb", "spark")}
"""The computes of the two transforms, by ``--pair``."""


def pair_platform(pair: str) -> str:
    """The benchmark's platform manifest, approving Spark too for the ``spark`` pair."""
    if pair != "spark":
        return ENTERPRISE
    return ENTERPRISE.replace("    default: duckdb\n", SPARK_COMPUTE + "    default: duckdb\n")


def pair_transforms(pair: str) -> list[tuple[str, str, Mapping[str, str]]]:
    """Two independent transforms, ``left`` and ``right``, on the two computes of ``pair``.

    Each builds three tables in a chain from its own ``ROWS`` rows: the same work, no shared model.
    """
    out: list[tuple[str, str, Mapping[str, str]]] = []
    for name, compute in zip(("left", "right"), PAIRS[pair], strict=True):
        rows = (
            "select id, id % 101 as k, rand() as x from range({n})"
            if compute == "spark"
            else "select range as id, range % 101 as k, random() as x from range({n})"
        )
        models = {
            f"{name}_base.sql": rows.format(n=ROWS) + "\n",
            f"{name}_agg.sql": f"select k, count(*) as n, sum(x) as total from {{{{ ref('{name}_base') }}}} group by k\n",
            f"{name}_top.sql": f"select * from {{{{ ref('{name}_agg') }}}} order by total desc limit 10\n",
        }
        out.append((name, compute, models))
    return out


# -- 1. floe validate ------------------------------------------------------------------------------


@contextlib.contextmanager
def validate_products(root: Path) -> Iterator[tuple[Path, Path, Mapping[str, str]]]:
    """The eight-compute product and the hung-only one, with their peers running."""
    from floe.testing.pytest_plugin import serve_silently
    from tests.support.all_engines import TRINO_CATALOG, running_peers
    from tests.support.all_engines import write_product as write_all

    with running_peers(root / "peers") as peers, serve_silently() as (host, port):
        hung = {"host": host, "port": port, "user": "floe", "database": TRINO_CATALOG, "schema": "analytics"}
        every = write_all(root / "all", {**peers.configs, "trino": hung})
        alone = write_all(root / "alone", {"duckdb": peers.configs["duckdb"], "trino": hung})
        yield every, alone, peers.environ


def validate_once(
    product: Path, environ: Mapping[str, str], computes: int, timeout: float
) -> tuple[float | None, str]:
    """One ``floe validate --json``: its wall time, and ``ok`` when it reported every compute, the
    hung one failed, and all the others connected."""
    from tests.support.all_engines import cli_environ

    env = cli_environ(environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as bench_environ(): byte code is written, as installed
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            floe_cmd("validate", str(product), "--json"),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"timeout (> {timeout:g} s)"
    elapsed = time.perf_counter() - start
    try:
        rows = {row["compute"]: row for row in json.loads(proc.stdout)["computes"]}
    except (ValueError, KeyError, TypeError):
        return None, f"error: {first_line(proc.stderr + proc.stdout, proc.returncode)}"
    failed = sorted(name for name, row in rows.items() if row["status"] != "ok")
    if len(rows) != computes or failed != ["trino"]:
        detail = "; ".join(f"{n}: {rows[n]['message']}" for n in failed if n != "trino")
        return None, f"error: {len(rows)} computes reported, failed: {failed} {detail}"[:300]
    return elapsed, "ok"


def measure_validate(root: Path, repeat: int, timeout: float) -> dict[str, Any]:
    every = Series("floe validate, 8 computes (one hung)")
    alone = Series("floe validate, the hung compute")
    print("starting a peer for every engine…", file=sys.stderr)
    try:
        with validate_products(root) as (product, hung_only, environ):
            print(f"floe validate ({repeat}x)…", file=sys.stderr)
            alternate(
                repeat,
                [
                    (every, lambda: validate_once(product, environ, 8, timeout)),
                    (alone, lambda: validate_once(hung_only, environ, 2, timeout)),
                ],
            )
    except Exception as exc:  # noqa: BLE001 - a peer that cannot start is this measurement's failure
        every.status = alone.status = f"error: peers: {type(exc).__name__}: {exc}"[:300]
    return {
        "all": every.to_json(),
        "hung_only": alone.to_json(),
        "ratio": ratio(every.best, alone.best),
        "target_s": VALIDATE_GOAL_S,
    }


# -- 2. floe run -----------------------------------------------------------------------------------


def measure_run(root: Path, repeat: int, timeout: float, pair: str) -> dict[str, Any]:
    product = write_product(root, "pair", pair_transforms(pair), pair_platform(pair))
    first, second = PAIRS[pair]
    left, right, both = (
        Series(f"floe run --select left ({first})"),
        Series(f"floe run --select right ({second})"),
        Series("floe run, both"),
    )
    base = ["run", str(product), "--env", "dev"]
    print("warm-up: floe run of both transforms…", file=sys.stderr)
    warm = Series("warm-up")
    warm.add(timed(floe_cmd(*base), timeout))
    if warm.status != "ok":
        left.status = right.status = both.status = f"warm-up {warm.status}"
    else:
        print(f"floe run, each transform alone and both ({repeat}x)…", file=sys.stderr)
        runs: list[tuple[Series, Callable[[], tuple[float | None, str]]]] = [
            (left, lambda: timed(floe_cmd(*base, "--select", "left"), timeout)),
            (right, lambda: timed(floe_cmd(*base, "--select", "right"), timeout)),
            (both, lambda: timed(floe_cmd(*base), timeout)),
        ]
        alternate(repeat, runs)
    slower = max((s.best for s in (left, right) if s.best is not None), default=None)
    if left.best is None or right.best is None:
        slower = None
    return {
        "pair": list(PAIRS[pair]),
        "left": left.to_json(),
        "right": right.to_json(),
        "both": both.to_json(),
        "slower_s": slower,
        "ratio": ratio(both.best, slower),
        "target": RUN_GOAL,
    }


# -- the report ------------------------------------------------------------------------------------


def run(repeat: int, timeout: float, only: str | None, pairs: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "goal": "concurrency",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "repeat": repeat,
        "timeout_s": timeout,
    }
    with tempfile.TemporaryDirectory(prefix="floe-bench-concurrency-") as tmp:
        if only in (None, "validate"):
            (Path(tmp) / "validate").mkdir()
            result["validate"] = measure_validate(Path(tmp) / "validate", repeat, timeout)
        if only in (None, "run"):
            result["run"] = {}
            for pair in pairs:
                (Path(tmp) / f"run-{pair}").mkdir()
                result["run"][pair] = measure_run(Path(tmp) / f"run-{pair}", repeat, timeout, pair)
    return result


def statuses(result: Mapping[str, Any]) -> list[str]:
    parts = [result.get("validate") or {}, *(result.get("run") or {}).values()]
    return [value["status"] for part in parts for value in part.values() if isinstance(value, dict)]


def markdown(result: Mapping[str, Any], command: str) -> str:
    rows: list[Sequence[str]] = []
    v = result.get("validate")
    if v:
        best = v["all"]["best_s"]
        rows += [
            ("`floe validate` of the hung compute alone (baseline)", seconds_cell(v["hung_only"]), "", ""),
            (
                "`floe validate` of 8 computes, one hung",
                seconds_cell(v["all"]),
                f"≤ {v['target_s']:g} s",
                met_cell(best, v["target_s"]),
            ),
            ("8 computes / hung alone", fmt(v["ratio"], ".2f"), "", ""),
        ]
    for r in (result.get("run") or {}).values():
        rows += [
            (f"`floe run --select left` (compute {r['pair'][0]})", seconds_cell(r["left"]), "", ""),
            (f"`floe run --select right` (compute {r['pair'][1]})", seconds_cell(r["right"]), "", ""),
            ("`floe run`, both at once", seconds_cell(r["both"]), "", ""),
            (
                f"both / the slower alone ({' and '.join(r['pair'])})",
                fmt(r["ratio"], ".2f"),
                f"≤ {r['target']}",
                met_cell(r["ratio"], r["target"]),
            ),
        ]
    note = f"Best of {result['repeat']}, Python {result['python']}, {result['cpus']} CPUs."
    return markdown_section("Goal 5: concurrency", command, rows, note)


def report(result: Mapping[str, Any]) -> None:
    print(f"best of {result['repeat']}, Python {result['python']}, {result['cpus']} CPUs")
    v = result.get("validate")
    if v:
        for key in ("hung_only", "all"):
            s = v[key]
            print(
                f"{s['label']:>42}: {fmt(s['best_s'], '.2f'):>6} s  (runs: "
                f"{', '.join(f'{t:.2f}' for t in s['runs_s'])})  {s['status']}"
            )
        print(
            f"floe validate of 8 computes: {fmt(v['all']['best_s'], '.2f')} s (goal ≤ {v['target_s']:g} s: "
            f"{met(v['all']['best_s'], v['target_s'])}); x{fmt(v['ratio'], '.2f')} the hung one alone"
        )
    for r in (result.get("run") or {}).values():
        for key in ("left", "right", "both"):
            s = r[key]
            print(
                f"{s['label']:>42}: {fmt(s['best_s'], '.2f'):>6} s  (runs: "
                f"{', '.join(f'{t:.2f}' for t in s['runs_s'])})  {s['status']}"
            )
        print(
            f"{' and '.join(r['pair'])}: both / the slower alone: {fmt(r['ratio'], '.2f')} (goal ≤ {r['target']}: "
            f"{met(r['ratio'], r['target'])})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per command")
    parser.add_argument("--only", choices=("validate", "run"), help="one of the two measurements")
    parser.add_argument(
        "--pair",
        choices=[*sorted(PAIRS), "all"],
        default="all",
        help="the computes of the run's two transforms: two DuckDB computes, DuckDB and Spark, or "
        "each in turn (default)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the figures as JSON")
    output.add_argument("--markdown", action="store_true", help="print a Markdown section for RESULTS.md")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    result = run(args.repeat, args.timeout, args.only, sorted(PAIRS) if args.pair == "all" else [args.pair])
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(markdown(result, "python benchmarks/concurrency.py " + " ".join(sys.argv[1:])).rstrip())
    else:
        report(result)
    return 0 if all(status == "ok" for status in statuses(result)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
