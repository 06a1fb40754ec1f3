"""The ``floe`` command line. Each command imports what it needs when it runs.

Exit status: 0 success, 1 invalid input or a failed check (messages on stderr), 2 usage error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

if TYPE_CHECKING:
    import argparse

    from floe.plugins import EngineRegistry

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
SHORT_RUN_GC_THRESHOLD = 100_000
"""The youngest generation's collection threshold of a short command run by the program (see :func:`entry`)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    status, _ = _dispatch(argv)
    return status


def entry() -> NoReturn:
    """The ``floe`` program (its console script and ``python -m floe``): :func:`main`, then the exit.

    After a command that declares it leaves nothing open (``exit_at_once``: its files written,
    synced and closed), the process ends as soon as its output is flushed and its ``atexit``
    handlers have run, when no other thread runs: tearing the interpreter down (freeing every
    object of every module, ~20 ms after a compile) would only delay the prompt. After any other
    command, or in any doubt, it exits the usual way. Such a command also runs with the cyclic
    garbage collector's youngest generation collected every :data:`SHORT_RUN_GC_THRESHOLD`
    allocations instead of 700: what it allocates is mostly what lives until the end (modules,
    classes, schemas), so frequent collections only cost time (~6 ms of a compile); garbage
    cycles are still collected.
    """
    argv = sys.argv[1:]
    from floe import compile_stamp

    if compile_stamp.eligible(argv):
        lines = compile_stamp.replay(argv)
        if lines is not None:  # nothing the compile depends on changed: what it would print
            try:
                print("\n".join(lines))
                sys.stdout.flush()
                status = EXIT_OK
            except BrokenPipeError:
                status = _closed_pipe()
            _end_at_once(status)
            raise SystemExit(status)
        compile_stamp.arm(argv)
    status, at_once = _dispatch(None, program=True)
    if at_once:
        _end_at_once(status)
    raise SystemExit(status)


def _end_at_once(status: int) -> None:
    """End the process with ``status`` without the interpreter's teardown; return if it may not."""
    import atexit

    threading = sys.modules.get("threading")  # never imported: no thread the usual exit would wait for
    if threading is not None and any(
        t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()
    ):
        return  # the usual exit waits for it
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # the usual exit reports it
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _dispatch(argv: Sequence[str] | None, program: bool = False) -> tuple[int, bool]:
    """The command's exit status, and whether the process may end at once (see :func:`entry`;
    ``program``: this process is the ``floe`` program, not a caller of :func:`main`)."""
    args = _compile_args(sys.argv[1:] if argv is None else argv)
    if args is None:
        parser = _parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE, False
    from floe.errors import FloeError

    at_once = bool(getattr(args, "exit_at_once", False))
    if program and at_once:
        import gc

        gc.set_threshold(SHORT_RUN_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        status = int(args.run(args))
        sys.stdout.flush()  # a closed pipe is reported here, not at exit
        return status, at_once
    except BrokenPipeError:
        return _closed_pipe(), False
    except FloeError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_INVALID, at_once
    except KeyboardInterrupt:
        print("floe: interrupted", file=sys.stderr)
        return 130, False
    except Exception as exc:
        if os.environ.get("FLOE_DEBUG"):
            raise
        print(
            f"floe: internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in floe; rerun with FLOE_DEBUG=1 and report the traceback",
            file=sys.stderr,
        )
        return 70, False


def _compile_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """``compile PATH``, the command run most often, read as :func:`_parser` reads it, without
    importing argparse and building the parser of every command (~8 ms of a compile); None for
    any other command line (then the parser reads it)."""
    if len(argv) != 2 or argv[0] != "compile" or argv[1].startswith("-"):
        return None
    from types import SimpleNamespace

    args = SimpleNamespace(
        command="compile", path=Path(argv[1]), no_partial_parse=False, run=_compile, exit_at_once=True
    )
    return cast("argparse.Namespace", args)


def _closed_pipe() -> int:
    """The reader of stdout went away (``floe engines | head -1``): a normal end, not an error.

    Whatever is still buffered for stdout is dropped: stdout is pointed at /dev/null so that the
    interpreter's final flush does not fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    import argparse

    from floe import __version__

    parser = argparse.ArgumentParser(prog="floe", description="Run dbt transforms on governed computes.")
    parser.add_argument("--version", action="version", version=f"floe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("compile", help="validate a data product (or manifest) and write its artifacts")
    p.add_argument(
        "path",
        type=Path,
        help="a product directory, its floe.yaml, a manifest file, or a "
        "directory of products (every */floe.yaml below it)",
    )
    p.add_argument(
        "--no-partial-parse",
        action="store_true",
        help="for a directory of products: compile every product, ignoring what the last compile recorded",
    )
    p.set_defaults(run=_compile, exit_at_once=True)  # its artifacts are synced and closed when it returns

    p = sub.add_parser("engines", help="list installed compute engines")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a plugin is broken (for the CI of a platform image)",
    )
    p.set_defaults(run=_engines)

    p = sub.add_parser("validate", help="check every approved compute can be reached (10 s each)")
    p.add_argument("path", type=Path)
    p.add_argument("--env", default=None, help="environment whose settings to use (default: first)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_validate)

    p = sub.add_parser("render", help="render deployment manifests of a data product")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    p = targets.add_parser("k8s", help="one Kubernetes Job per transform, written to target/floe/k8s/ENV/")
    p.add_argument("path", type=Path, help="a product directory or its floe.yaml")
    p.add_argument("--env", required=True, help="the environment the Jobs run in")
    p.add_argument(
        "--image", default=None, help="container image with the product baked in (default: floe:VERSION)"
    )
    p.add_argument("--namespace", default=None, help="metadata.namespace of the Jobs (default: unset)")
    p.add_argument(
        "--secret-name",
        default=None,
        help="Kubernetes Secret holding the referenced secrets (default: floe-PRODUCT-secrets)",
    )
    p.set_defaults(run=_render_k8s)
    p = targets.add_parser(
        "argo",
        help="one Argo Workflow whose DAG runs the transforms in the plan's order, "
        "written to target/floe/argo/ENV/",
    )
    p.add_argument("path", type=Path, help="a product directory or its floe.yaml")
    p.add_argument("--env", required=True, help="the environment the Workflow runs in")
    p.add_argument(
        "--image", default=None, help="container image with the product baked in (default: floe:VERSION)"
    )
    p.add_argument("--namespace", default=None, help="metadata.namespace of the Workflow (default: unset)")
    p.add_argument(
        "--secret-name",
        default=None,
        help="Kubernetes Secret holding the referenced secrets (default: floe-PRODUCT-secrets)",
    )
    p.set_defaults(run=_render_argo)

    p = sub.add_parser("run", help="run every transform on its compute, through one Iceberg catalog")
    p.add_argument("path", type=Path, help="a product directory or its floe.yaml")
    p.add_argument("--env", required=True, help="the environment to run in")
    p.add_argument(
        "--select",
        nargs="+",
        default=[],
        metavar="TRANSFORM",
        help="run only these transforms (the others' tables must exist)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="at most N transforms at once (default: one per compute)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once when another run of the product is in progress (default: wait)",
    )
    p.add_argument("--show", action="store_true", help="print the tables the run built (first 20 rows)")
    p.add_argument("--json", action="store_true", help="print the run report as JSON (progress on stderr)")
    p.add_argument(
        "--keep-snapshots",
        type=_count,
        default=5,
        metavar="N",
        help="the embedded catalog keeps the newest N snapshots of each table and removes files "
        "nothing reaches when the run ends (default: 5; 0 keeps everything)",
    )
    p.add_argument(
        "--keep-warm",
        nargs="?",
        const="15m",
        default=None,
        type=_duration,
        metavar="DURATION",
        help="keep the catalog and each compute's dbt worker (dbt parsed, Spark's session up) warm "
        "for the next run, until idle for DURATION (default: 15m); the next --keep-warm run uses "
        "them. A run without it stops them first. `floe warm stop PATH` stops them",
    )
    p.set_defaults(run=_run)

    p = sub.add_parser("warm", help="the warm engines `floe run --keep-warm` keeps: status, stop")
    p.add_argument("action", choices=["status", "stop"])
    p.add_argument("path", type=Path, help="a product directory or its floe.yaml")
    p.set_defaults(run=_warm)

    p = sub.add_parser(
        "explain", help="why each compute is (not) available, and where each setting comes from"
    )
    p.add_argument("path", type=Path, help="a product directory, its floe.yaml, or a manifest")
    p.add_argument(
        "--env", default=None, help="explain this environment's settings only (default: every one)"
    )
    p.add_argument("--compute", default=None, metavar="NAME", help="explain this compute only")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_explain)

    p = sub.add_parser(
        "init", help="scaffold a platform manifest, a domain and a DuckDB data product that runs at once"
    )
    p.add_argument("path", type=Path, help="the directory to write into (created if missing)")
    p.add_argument("--product", default="my_product", help="the data product's name (default: my_product)")
    p.set_defaults(run=_init)

    p = sub.add_parser("plan", help="what `floe run` will do, without starting anything")
    p.add_argument("path", type=Path, help="a product directory or its floe.yaml")
    p.add_argument("--env", required=True, help="the environment to plan for")
    p.add_argument("--select", nargs="+", default=[], metavar="TRANSFORM", help="plan only these transforms")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(run=_plan)

    p = sub.add_parser("schema", help="print a JSON Schema (manifest, dataproduct, definitions)")
    p.add_argument(
        "kind", nargs="?", default="dataproduct", choices=["manifest", "dataproduct", "definitions"]
    )
    p.add_argument("--engine", help="print this engine's config schema instead")
    p.add_argument(
        "--bundle",
        action="store_true",
        help="print one self-contained schema for editors: manifests and floe.yaml, each compute's "
        "config typed by its installed engine (JSON Schema draft-07, no remote references)",
    )
    p.set_defaults(run=_schema)
    return parser


def _count(text: str) -> int:
    """A whole number, 0 or more, for an option that counts something."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {value}")
    return value


def _compile(args: argparse.Namespace) -> int:
    from floe.compile_stamp import recording
    from floe.compiler import ARTIFACT_DIR, Compiled, compile_any, find_source, write_artifacts
    from floe.manifest_cache import ManifestCache

    stamp = recording()
    manifests = None
    if stamp is not None:  # the files read are fingerprinted first, for the stamp
        stamp.before_read(find_source(args.path))
        manifests = ManifestCache(before_read=stamp.before_read)
    compiled = compile_any(args.path, partial_parse=not args.no_partial_parse, manifests=manifests)
    if not isinstance(compiled, Compiled):  # every product below a directory, written as they compiled
        from floe.platform import FAILED, render

        render(compiled, print, lambda text: print(text, file=sys.stderr))
        return EXIT_INVALID if compiled.count(FAILED) else EXIT_OK
    gov = compiled.governance
    chain = " → ".join(level.name for level in compiled.chain)
    if not compiled.transforms:
        print(f"ok: {chain}: approved {', '.join(gov.registry.names())} (default {gov.registry.default})")
        return EXIT_OK
    written = write_artifacts(compiled)
    summary = (
        f"ok: {chain}: {len(compiled.transforms)} transform(s) on "
        f"{', '.join(sorted({t.compute for t in compiled.transforms}))}; "
        f"environments {', '.join(gov.environments)}"
    )
    unchanged = f"artifacts unchanged in {compiled.product_dir / ARTIFACT_DIR}"
    print(summary)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(unchanged)
    if stamp is not None:
        from floe.compile_stamp import save

        sys.stdout.flush()  # what it printed reached its reader: a repeat may print the same
        save(stamp, compiled, [summary, unchanged])
    return EXIT_OK


def _registry() -> EngineRegistry:
    from floe.plugins import EngineRegistry

    return EngineRegistry.discover()


def _engines(args: argparse.Namespace) -> int:
    import json

    registry = _registry()
    rows = []
    for name in registry.names():
        engine = registry.engines[name]
        from floe.errors import FloeError

        try:
            packages = ", ".join(engine.get_required_dbt_packages())
        except FloeError as exc:
            packages = f"(error: {exc.render()})"
        rows.append(
            {
                "engine": name,
                "version": engine.info.version,
                "distribution": engine.distribution,
                "dbt_adapter": engine.info.dbt_adapter,
                "packages": packages,
            }
        )
    if args.json:
        print(json.dumps({"engines": rows, "problems": [p.render() for p in registry.problems]}, indent=2))
    else:
        from floe.execution.report import table

        print(table(rows, ["engine", "version", "distribution", "dbt_adapter", "packages"], one_line=True))
    for problem in registry.problems:
        print(f"{'error' if args.strict else 'warning'}: {problem.render()}", file=sys.stderr)
    return EXIT_INVALID if args.strict and registry.problems else EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    import json
    import time
    from concurrent.futures import ThreadPoolExecutor

    from floe.compiled import compile_path, profile_targets
    from floe.errors import FloeError

    registry = _registry()
    compiled = compile_path(args.path, registry)
    gov = compiled.governance
    env = args.env or next(iter(gov.environments))
    if env not in gov.environments:
        raise FloeError(f"unknown environment {env!r}; known: {', '.join(gov.environments)}")
    target = profile_targets(compiled.source, [env])[env]

    def check(name: str) -> dict[str, Any]:
        compute = gov.compute_for(name, env)
        engine = registry.engines[compute.engine]
        start = time.monotonic()
        result = engine.validate_connection(compute, target)
        return {
            "compute": name,
            "engine": compute.engine,
            "status": "ok" if result.success else "FAILED",
            "seconds": f"{time.monotonic() - start:.1f}",
            "message": result.message,
        }

    names = gov.registry.names()
    with ThreadPoolExecutor(max_workers=max(1, len(names) + 1)) as pool:
        catalog = pool.submit(_validate_catalog, compiled.catalog)
        rows = list(pool.map(check, names))
        catalog_row = catalog.result()
    if args.json:
        print(json.dumps({"environment": env, "computes": rows, "catalog": catalog_row}, indent=2))
    else:
        from floe.execution.report import table

        shown = [*rows, catalog_row] if catalog_row else rows
        print(table(shown, ["compute", "engine", "status", "seconds", "message"], one_line=True))
    if catalog_row and catalog_row["status"] == "FAILED":
        rows = [*rows, catalog_row]
    # The checks imported every engine's connector: the interpreter's last garbage collections
    # would walk all their objects (~1 s) before the exit. Frozen objects are not walked.
    import gc

    gc.freeze()
    return EXIT_OK if all(r["status"] == "ok" for r in rows) else EXIT_INVALID


def _validate_catalog(catalog: Any) -> dict[str, Any] | None:
    """``floe validate``'s row for the declared catalog (``None`` when floe run embeds one)."""
    if catalog is None:
        return None
    if catalog.type != "rest":
        return {
            "compute": f"catalog {catalog.name}",
            "engine": f"iceberg {catalog.type}",
            "status": "skipped",
            "seconds": "0.0",
            "vends_credentials": None,
            "message": f"catalog {catalog.name!r}: a {catalog.type} catalog has no REST endpoint to check; "
            "engines attach it themselves (floe run needs a REST catalog)",
        }
    import time

    from floe.catalog.check import check_catalog

    start = time.monotonic()
    result = check_catalog(catalog)
    return {
        "compute": f"catalog {catalog.name}",
        "engine": f"iceberg {catalog.type}",
        "status": "ok" if result.success else "FAILED",
        "seconds": f"{time.monotonic() - start:.1f}",
        "message": result.message,
        "vends_credentials": result.details.get("vends_credentials"),
    }


def _render_k8s(args: argparse.Namespace) -> int:
    from floe.compiler import compile_path
    from floe.kubernetes import jobs_dir, render_jobs, write_jobs

    registry = _registry()
    compiled = compile_path(args.path, registry)
    jobs = render_jobs(
        compiled, args.env, args.image, args.namespace, secret_name=args.secret_name, engines=registry
    )
    written = write_jobs(jobs, jobs_dir(compiled, args.env))
    product = compiled.name
    print(f"ok: {product}: {len(jobs)} Job(s) for environment {args.env}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _render_argo(args: argparse.Namespace) -> int:
    from floe.argo import render_workflow, workflow_path, write_workflow
    from floe.compiler import compile_path

    registry = _registry()
    compiled = compile_path(args.path, registry)
    workflow = render_workflow(
        compiled, args.env, args.image, args.namespace, secret_name=args.secret_name, engines=registry
    )
    path = write_workflow(workflow, workflow_path(compiled, args.env))
    tasks = workflow["spec"]["templates"][0]["dag"]["tasks"]
    print(f"ok: {compiled.name}: one Workflow of {len(tasks)} task(s) for environment {args.env}")
    print(f"wrote {path}")
    return EXIT_OK


def _duration(text: str) -> float:
    import argparse

    from floe.durations import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the idle bound must be more than 0")
    return seconds


def _warm(args: argparse.Namespace) -> int:
    from floe.execution.cli import warm_command

    return warm_command(args)


def _run(args: argparse.Namespace) -> int:
    from floe.execution.cli import run_command

    return run_command(args)


def _explain(args: argparse.Namespace) -> int:
    import json

    from floe.explanation import explain

    explanation = explain(args.path, args.env, args.compute, _registry())
    print(json.dumps(explanation.to_json(), indent=2) if args.json else explanation.render())
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from floe.scaffold import init

    written = init(args.path, args.product)
    for path in written:
        print(f"wrote {path}")
    print(f"next: floe run {args.path / args.product} --env dev --show")
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from floe.execution.cli import plan_command

    return plan_command(args)


def _schema(args: argparse.Namespace) -> int:
    import json

    from floe.errors import FloeError
    from floe.schemas import schema_file

    if args.bundle:
        return _schema_bundle()
    if args.engine:
        engine = _registry().get(args.engine)
        if engine is None:
            raise FloeError(f"no engine {args.engine!r} is installed; see `floe engines`")
        print(json.dumps(dict(engine.config_schema()), indent=2))
    else:
        print(json.dumps(schema_file(f"{args.kind}.schema.json"), indent=2))
    return EXIT_OK


def _schema_bundle() -> int:
    import json

    from floe.schema_bundle import bundle
    from floe.schemas import store

    print(json.dumps(bundle(_registry(), store()), indent=2))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
