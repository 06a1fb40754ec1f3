"""The ``floe run`` and ``floe plan`` commands, on :func:`floe.run` and :func:`floe.plan`.

``floe run``: progress as it goes, a summary, ``--json`` for tools, ``--show``. Exit status: 0 when
every transform succeeded; 1 when one failed (or was skipped because an upstream one failed), when
the product is invalid or cannot run, or when another run holds the lock and ``--no-wait`` was
given.

``floe plan``: the plan as text, or ``--json`` (what ``floe run --json`` reports has the same
transforms, computes and nodes). Exit status: 0 when the run can start, 1 when it cannot.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
from types import FrameType

import floe
from floe.errors import FloeError
from floe.execution.progress import Progress
from floe.execution.report import RunReport
from floe.model import CatalogConfig


def plan_command(args: argparse.Namespace) -> int:
    the_plan = floe.plan(args.path, env=args.env, select=args.select)
    print(json.dumps(the_plan.to_json(), indent=2) if args.json else the_plan.render())
    return 0


def run_command(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout
    progress = Progress(out)
    shown: list[str] = []

    def show(report: RunReport, catalog: CatalogConfig) -> None:
        from floe.execution.show import built_tables, read_tables

        tables = built_tables(report)
        if not tables:  # nothing of this run is in the catalog (each compute built in its own warehouse)
            return
        try:
            for item in read_tables(catalog, tables):
                shown.append(item.render(catalog.name))
        except FloeError as exc:  # the run's outcome stands; say why nothing shows
            shown.append(f"could not read the tables through the catalog: {exc.render()}")
        except Exception as exc:  # noqa: BLE001 - as above, with the client's own words
            shown.append(f"could not read the tables through the catalog: {type(exc).__name__}: {exc}")

    progress.line(f"floe run {args.path} --env {args.env}")
    previous = signal.signal(signal.SIGTERM, _interrupted)  # stop the workers, the catalog, the lock
    try:
        report = floe.run(
            args.path,
            env=args.env,
            select=args.select,
            threads=args.threads,
            wait=not args.no_wait,
            progress=out,
            after=show if args.show else None,
            keep_snapshots=args.keep_snapshots,
            keep_warm=args.keep_warm,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    progress.summary(report)
    if shown:
        out = sys.stderr if args.json else sys.stdout
        for text in shown:
            print("\n" + text, file=out)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    # Exiting: the interpreter's last garbage collections would walk every object the catalog's
    # libraries made (pyiceberg, SQLAlchemy…). Frozen objects are not walked.
    gc.freeze()
    return 0 if report.success else 1


def warm_command(args: argparse.Namespace) -> int:
    """``floe warm status|stop PATH``: the warm host ``floe run --keep-warm`` left for the product."""
    from floe.execution import warm

    product_dir = (args.path.parent if args.path.is_file() else args.path).resolve()
    if args.action == "stop":
        pid = warm.stop(product_dir)
        print(
            f"stopped the warm host (pid {pid}) of {product_dir}"
            if pid
            else f"no warm host for {product_dir}"
        )
        return 0
    try:
        host = warm.find(product_dir)
    except warm.WarmError as exc:
        print(f"floe warm: {exc}", file=sys.stderr)
        return 1
    if host is None:
        print(f"no warm host for {product_dir}")
        return 0
    try:
        status = host.status()
    finally:
        host.close()
    workers = ", ".join(f"{c} (pid {p})" for c, p in sorted(status["workers"].items())) or "none"
    print(
        f"warm host pid {status['pid']} for {product_dir}; catalog {status['catalog'] or 'not started'}; workers: {workers}"
    )
    return 0


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
