#!/usr/bin/env python
"""Eight data products at once against one shared REST catalog with vended credentials (issue 15 §1).

    python benchmarks/load.py [--products 8] [--seed 15] [--timeout 900] [--json | --markdown]

The long version of ``tests/test_load.py`` (which runs four products, to stay short in CI), run
from a checkout: it imports ``tests/support``. SeaweedFS (``weed mini``: S3, the Iceberg REST
catalog and STS) is the catalog; every product is a ``floe run`` process with two DuckDB computes
that reach S3 with vended credentials only. Round 1 creates every product's tables, round 2
replaces them while each product reads a neighbour's table as its run replaces it. After each
round every table's rows and snapshots are checked as the test checks them; a check that fails
makes the script exit with status 1.

The figure: each round's wall time (all products at once) against one product's run alone
(measured first, in the same lake): how far the runs stay independent on a machine with few cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import fmt, ratio  # the sibling benchmarks' helpers
from run import markdown_section

from tests.support.lake_load import (
    client_environ,
    expected_summary,
    namespace,
    platform_yaml,
    rest_catalog,
    run_at_once,
    snapshot_chain,
    write_load_product,
)
from tests.support.seaweed import seaweed_mini


def check_round(
    catalog: Any,
    rows: Mapping[str, int],
    before: Mapping[str, int],
    peeked: Mapping[str, tuple[str, tuple[int, ...]]] | None = None,
) -> dict[str, int]:
    """Every product's tables hold exactly this round's rows, each table's history is one line that
    grew since ``before``, and each ``peek`` saw one whole round of its neighbour's table."""
    counts: dict[str, int] = {}
    for name, expected in rows.items():
        events = catalog.load_table(f"{namespace(name)}.events")
        counts[name] = len(snapshot_chain(events))
        if counts[name] <= before.get(name, 0):
            raise AssertionError(f"{name}: no new commit to events")
        if events.scan().to_arrow().num_rows != expected:
            raise AssertionError(f"{name}: events does not hold exactly {expected} rows")
        (summary,) = catalog.load_table(f"{namespace(name)}.summary").scan().to_arrow().to_pylist()
        if (summary["n"], summary["total"]) != expected_summary(expected):
            raise AssertionError(f"{name}: summary saw a partial events table: {summary}")
        if peeked:
            other, allowed = peeked[name]
            (peek,) = catalog.load_table(f"{namespace(name)}.peek").scan().to_arrow().to_pylist()
            if peek["n"] not in allowed:
                raise AssertionError(
                    f"{name}: read {peek['n']} rows of {other}, not one whole round {allowed}"
                )
    return counts


def measure(products: int, seed: int, timeout: float) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"load{i:02d}" for i in range(products)]
    first = {n: rng.randint(1_000, 60_000) for n in names}
    second = {n: rng.randint(1_000, 60_000) for n in names}
    neighbour = {n: names[(i + 1) % len(names)] for i, n in enumerate(names)}
    secret = "floe-bench-" + secrets.token_hex(12)
    result: dict[str, Any] = {"products": products, "seed": seed, "status": "ok"}
    with (
        tempfile.TemporaryDirectory(prefix="floe-bench-load-") as tmp,
        seaweed_mini(Path(tmp) / "seaweed", client_secret=secret, credential_seconds=900) as server,
    ):
        root = Path(tmp) / "products"
        root.mkdir()
        (root / "platform.yaml").write_text(
            platform_yaml(server.iceberg_uri, server.table_bucket, server.client_id)
        )
        env = client_environ(secret)
        write_load_product(root, "alone", 30_000)
        alone = run_at_once(root, ["alone"], env, timeout)["alone"]
        result["alone_s"] = alone.seconds if alone.returncode == 0 else None
        catalog = rest_catalog(server, secret)
        try:
            for name in names:
                write_load_product(root, name, first[name])
            done = run_at_once(root, names, env, timeout)
            failed = {n: f.output[-500:] for n, f in done.items() if f.returncode}
            if failed:
                raise AssertionError(f"round 1 failed: {failed}")
            result["round1_s"] = max(f.seconds for f in done.values())
            counts = check_round(catalog, first, {})
            for name in names:
                write_load_product(root, name, second[name], peek=neighbour[name])
            done = run_at_once(root, names, env, timeout)
            failed = {n: f.output[-500:] for n, f in done.items() if f.returncode}
            if failed:
                raise AssertionError(f"round 2 failed: {failed}")
            result["round2_s"] = max(f.seconds for f in done.values())
            peeked = {n: (neighbour[n], (first[neighbour[n]], second[neighbour[n]])) for n in names}
            result["snapshots"] = check_round(catalog, second, counts, peeked)
        except AssertionError as exc:
            result["status"] = f"error: {exc}"
    for key in ("round1_s", "round2_s"):
        result[key.replace("_s", "_ratio")] = ratio(result.get(key), result.get("alone_s"))
    return result


def markdown(result: Mapping[str, Any], command: str) -> str:
    n = result["products"]
    rows = [
        (
            "one product alone (two DuckDB computes), baseline",
            f"{fmt(result.get('alone_s'), '.1f')} s",
            "",
            "",
        ),
        (
            f"round 1: {n} products at once, creating their tables",
            f"{fmt(result.get('round1_s'), '.1f')} s",
            "",
            "",
        ),
        (
            f"round 2: {n} at once, replacing them, each reading a neighbour's",
            f"{fmt(result.get('round2_s'), '.1f')} s",
            "",
            "",
        ),
        ("round 1 / one alone", fmt(result.get("round1_ratio"), ".2f"), "", ""),
        ("round 2 / one alone", fmt(result.get("round2_ratio"), ".2f"), "", ""),
        (
            "every commit landed, every table exact, no partial read",
            result["status"],
            "ok",
            "yes" if result["status"] == "ok" else "**no**",
        ),
    ]
    note = (
        f"Seed {result['seed']}; under `nice -n 5` on a 2-core machine shared with other work. {n} `floe run` "
        f"processes (2 dbt workers each) share 2 cores: the wall-time ratio measures CPU contention more than "
        "floe; there is no goal on it."
    )
    return markdown_section(f"Issue 15: {n} products at once on one REST catalog", command, rows, note)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per round")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    result = measure(args.products, args.seed, args.timeout)
    result["total_s"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result, "python benchmarks/load.py " + " ".join(sys.argv[1:])).rstrip())
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    raise SystemExit(main())
