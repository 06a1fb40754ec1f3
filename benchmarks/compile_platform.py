#!/usr/bin/env python
"""How long ``floe compile DIR`` takes over a whole platform, cold and with partial parsing.

    python benchmarks/compile_platform.py [--domains 20] [--products 500] [--transforms 10] [--repeat 3]
                                  [--timeout S] [--json | --markdown]

Generates 1 enterprise manifest, ``--domains`` domain manifests and ``--products`` data products
(spread evenly over the domains) in a temporary directory, then compares a cold compile (no cache,
no artifacts) with repeats that find one product, or one domain, changed; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compile as bench  # the writers of benchmarks/compile.py

GOAL = 0.1
"""Warm (one product changed) over cold, in process: at most this."""
TOGGLE = ("path: models/t0000/\n    compute: duckdb\n", "path: models/t0000/\n    compute: duckdb-large\n")
"""The first transform's compute is switched between these: the product's compiled.json changes."""
DOMAIN_TOGGLE = ("config: { threads: 6 }", "config: { threads: 7 }")


def write_tree(root: Path, domains: int, products: int, transforms: int) -> list[Path]:
    names = [f"d{i:02d}" for i in range(domains)]
    bench.write_platform(root, names)
    made = []
    for i in range(products):
        domain = names[i % domains]
        made.append(
            bench.write_product(
                root / "products" / domain,
                transforms,
                name=f"p{i:03d}",
                platform=f"../../../platform/domains/{domain}.yaml",
            )
        )
    return made


def remove_targets(root: Path) -> None:
    """Back to a fresh checkout: no artifacts, no partial parse cache."""
    for target in [root / "target", *root.glob("products/*/*/target")]:
        shutil.rmtree(target, ignore_errors=True)


def toggle(path: Path, pair: tuple[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    old, new = pair if pair[0] in text else pair[::-1]
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def timed(
    repeat: int, prepare: Callable[[], object], run: Callable[[], Any], check: Callable[[Any], None]
) -> float:
    """Best of ``repeat``: ``prepare`` (not timed), ``run`` (timed), ``check`` its result."""
    times = []
    for _ in range(repeat):
        prepare()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        check(result)
    return min(times)


def expect(compiled: int, written: int | None = None) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        from floe.platform import COMPILED, FAILED

        got = (result.count(COMPILED), sum(len(p.written) for p in result.products))
        if result.count(FAILED) or got[0] != compiled or (written is not None and got[1] != written):
            raise SystemExit(
                f"unexpected result: {got[0]} compiled, {got[1]} written, "
                f"{result.count(FAILED)} failed; expected {compiled} compiled"
            )

    return check


def in_process(root: Path, products: list[Path], domains: int, repeat: int) -> dict[str, float]:
    from floe.compiler import compile_path
    from floe.manifest_cache import ManifestCache
    from floe.platform import compile_platform
    from floe.plugins import EngineRegistry
    from floe.schemas import SchemaStore

    engines = EngineRegistry.discover()
    store = SchemaStore()
    compile_path(products[0], engines, store)  # one-off costs (lazy imports) are not counted

    def platform(partial: bool = True) -> Any:
        return compile_platform(root, engines, store, partial_parse=partial)

    n = len(products)
    per_domain = len([p for p in products if p.parent.name == products[0].parent.name])
    domain = root / "platform" / "domains" / f"{products[0].parent.name}.yaml"
    figures = {
        "cold_s": timed(repeat, lambda: remove_targets(root), platform, expect(n, 2 * n)),
        "warm_product_s": timed(
            repeat, lambda: toggle(products[0] / "floe.yaml", TOGGLE), platform, expect(1, 2)
        ),
        "warm_nothing_s": timed(repeat, lambda: None, platform, expect(0, 0)),
        "warm_domain_s": timed(repeat, lambda: toggle(domain, DOMAIN_TOGGLE), platform, expect(per_domain)),
        "full_no_partial_s": timed(repeat, lambda: None, lambda: platform(False), expect(n, 0)),
    }
    # compile only (no artifacts): each product alone, as a loop over compile_path did, vs shared
    figures["compile_unshared_s"] = timed(
        repeat, lambda: None, lambda: [compile_path(p, engines, store) for p in products], lambda r: None
    )
    figures["compile_shared_s"] = timed(
        repeat,
        lambda: None,
        lambda: (lambda cache: [compile_path(p, engines, store, cache) for p in products])(ManifestCache()),
        lambda r: None,
    )
    cache = ManifestCache()
    for p in products:
        compile_path(p, engines, store, cache)
    figures["manifest_reads"] = sum(cache.reads.values())
    figures["manifests"] = domains + 1
    return figures


def process(root: Path, products: list[Path], repeat: int, timeout: float) -> dict[str, float | str | None]:
    def command(*args: str) -> Callable[[], None]:
        def run() -> None:
            done = subprocess.run(
                [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
            )
            if done.returncode:
                raise RuntimeError(bench.first_line(done.stderr + done.stdout, done.returncode))

        return run

    platform = command("-m", "floe", "compile", str(root))
    figures: dict[str, float | str | None] = {}
    try:
        figures["cold_s"] = timed(repeat, lambda: remove_targets(root), platform, lambda r: None)
        figures["warm_product_s"] = timed(
            repeat, lambda: toggle(products[0] / "floe.yaml", TOGGLE), platform, lambda r: None
        )
        figures["single_product_s"] = timed(
            repeat, lambda: None, command("-m", "floe", "compile", str(products[1])), lambda r: None
        )
        figures["import_yaml_s"] = timed(repeat, lambda: None, command("-c", "import yaml"), lambda r: None)
        figures["status"] = "ok"
    except subprocess.TimeoutExpired:
        figures["status"] = f"timeout (> {timeout:g} s)"
    except RuntimeError as exc:
        figures["status"] = f"error: {exc}"
    return figures


def run(domains: int, products: int, transforms: int, repeat: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="floe-platform-bench-") as tmp:
        root = Path(tmp)
        made = write_tree(root, domains, products, transforms)
        print(
            f"{products} products x {transforms} transforms below {domains} domains; "
            f"in process, best of {repeat}…",
            file=sys.stderr,
        )
        inproc = in_process(root, made, domains, repeat)
        print(f"whole process, best of {repeat}…", file=sys.stderr)
        proc = process(root, made, repeat, timeout)
    ratio = inproc["warm_product_s"] / inproc["cold_s"]
    cold_p, warm_p = proc.get("cold_s"), proc.get("warm_product_s")
    proc_ratio = warm_p / cold_p if isinstance(cold_p, float) and isinstance(warm_p, float) else None
    return {
        "python": sys.version.split()[0],
        "repeat": repeat,
        "domains": domains,
        "products": products,
        "transforms": transforms,
        "in_process": inproc,
        "process": proc,
        "ratio": ratio,
        "process_ratio": proc_ratio,
        "goal": GOAL,
        "met": ratio <= GOAL,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, seconds, ratio to the cold compile) for the report and the Markdown table."""
    ip, pr = result["in_process"], result["process"]
    cold = ip["cold_s"]
    n = result["products"]

    def line(name: str, value: Any, base: float | None) -> tuple[str, str, str]:
        if not isinstance(value, float):
            return name, "-", "-"
        return name, f"{value:.3f}", f"{value / base:.3f}" if base else "-"

    per_domain = n // result["domains"]
    out = [
        line(f"cold: no cache, no artifacts ({n} compiled, {2 * n} files written) — baseline", cold, cold),
        line("warm: one product changed (1 compiled, its 2 artifacts rewritten)", ip["warm_product_s"], cold),
        line("warm: nothing changed", ip["warm_nothing_s"], cold),
        line(f"warm: one domain changed ({per_domain} products compiled)", ip["warm_domain_s"], cold),
        line(
            "`--no-partial-parse` over existing artifacts (all compiled, none rewritten)",
            ip["full_no_partial_s"],
            cold,
        ),
        line(
            f"compile only, each product alone (parents parsed {n} times)",
            ip["compile_unshared_s"],
            ip["compile_unshared_s"],
        ),
        line(
            f"compile only, manifests shared ({ip['manifest_reads']} reads of {ip['manifests']} manifests)",
            ip["compile_shared_s"],
            ip["compile_unshared_s"],
        ),
    ]
    pcold = pr.get("cold_s") if isinstance(pr.get("cold_s"), float) else None
    out += [
        line("whole process `floe compile DIR`, cold — baseline", pr.get("cold_s"), pcold),
        line("whole process `floe compile DIR`, one product changed", pr.get("warm_product_s"), pcold),
        line("whole process `floe compile PRODUCT` (one product alone)", pr.get("single_product_s"), pcold),
        line("whole process `python -c 'import yaml'`", pr.get("import_yaml_s"), pcold),
    ]
    return out


def report(result: dict[str, Any]) -> None:
    print(
        f"best of {result['repeat']}, Python {result['python']}: 1 enterprise, {result['domains']} domains, "
        f"{result['products']} products x {result['transforms']} transforms"
    )
    table = rows(result)
    width = max(len(r[0]) for r in table)
    print(f"{'figure':<{width}} {'s':>8} {'ratio':>7}")
    for name, seconds, ratio in table:
        print(f"{name:<{width}} {seconds:>8} {ratio:>7}")
    print(
        f"goal: warm (one product changed) / cold <= {GOAL}: {result['ratio']:.3f} -> "
        f"{'met' if result['met'] else 'NOT met'}; whole process: "
        f"{'-' if result['process_ratio'] is None else format(result['process_ratio'], '.3f')} "
        f"({result['process']['status']})"
    )


def markdown(result: dict[str, Any], argv: list[str]) -> str:
    lines = [
        f"## Platform compile: 1 enterprise, {result['domains']} domains, {result['products']} products "
        "(shared manifests, partial parsing)",
        "",
        f"`python benchmarks/compile_platform.py{''.join(' ' + a for a in argv)}`",
        "",
        f"Best of {result['repeat']}, Python {result['python']}, {result['transforms']} transforms per product; "
        "ratios against the baseline of their group, measured in the same run.",
        "",
        "| figure | seconds | ratio |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {seconds} | {ratio} |" for name, seconds, ratio in rows(result)]
    goal = {
        "goal": "in process: a repeat with one product changed / the cold compile",
        "figure": result["ratio"],
        "limit": GOAL,
        "met": result["met"],
    }
    lines += ["", *bench.goal_table([goal])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", type=int, default=20)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--transforms", type=int, default=10, help="transforms per product")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed per `floe compile` process"
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the figures as JSON")
    out.add_argument(
        "--markdown", action="store_true", help="print a Markdown section for benchmarks/RESULTS.md"
    )
    args = parser.parse_args()
    if min(args.domains, args.products, args.transforms, args.repeat) < 1 or args.products < args.domains:
        parser.error("--domains, --products, --transforms and --repeat must be positive, products >= domains")
    result = run(args.domains, args.products, args.transforms, args.repeat, args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(markdown(result, sys.argv[1:]))
    else:
        report(result)
    return 0 if result["process"]["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
