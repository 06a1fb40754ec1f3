"""The Python API of compiling, planning and running a data product: :func:`compile`,
:func:`plan` and :func:`run`.

What ``floe compile``, ``floe plan`` and ``floe run`` do, for programs (an orchestrator, a
notebook, a test)::

    import floe

    compiled = floe.compile("shop")                 # governed, typed; nothing written
    the_plan = floe.plan("shop", env="dev")        # starts nothing
    print(the_plan.render())
    report = floe.run("shop", env="dev")            # the same transforms, in the same order
    assert report.success, [t.message for t in report.transforms if t.status != "success"]

Both raise :class:`floe.FloeError` for what is wrong before the run starts (an invalid product, a
secret not set, a ref between computes nothing can cross…), located at the manifest's file, line
and ``$.path``. A transform that fails raises nothing: the :class:`RunReport` says so, and its
``to_json()`` is what ``floe run --json`` prints. Importing this module imports no dbt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from floe.compiled import Compiled
    from floe.execution.observers import RunObserver
    from floe.execution.plan import RunPlan
    from floe.execution.report import RunReport
    from floe.model import CatalogConfig
    from floe.plugins import EngineRegistry


def compile(path: str | os.PathLike[str], *, engines: EngineRegistry | None = None) -> Compiled:
    """Compile ``path`` (a data product's directory, its ``floe.yaml``, or a manifest file): its
    chain of manifests read and governed, each compute's settings typed by its engine.

    Writes nothing: :func:`floe.write_artifacts` writes a product's ``target/floe`` artifacts.

    :param engines: the engines to use (default: those installed).
    :raises FloeError: the product or a manifest of its chain is invalid, located at its file,
        line and ``$.path``.
    """
    from floe.compiled import compile_path

    return compile_path(path, engines)


def plan(
    path: str | os.PathLike[str],
    *,
    env: str,
    select: Sequence[str] = (),
    engines: EngineRegistry | None = None,
) -> RunPlan:
    """What ``floe run`` will do with the data product at ``path`` in environment ``env``.

    Compiles the product, asks each compute's engine how its worker reaches the catalog, and runs
    one ``dbt parse`` in a subprocess for the graph; starts no catalog and no worker.

    :param select: transform names to plan (default: all); the others' tables are taken as built.
    :param engines: the engines to use (default: those installed).
    :raises FloeError: everything that would make the run fail before it starts, located.
    """
    from floe.execution.plan import plan_path

    return plan_path(Path(path), env, tuple(select), engines)


def run(
    path: str | os.PathLike[str],
    *,
    env: str,
    select: Sequence[str] = (),
    threads: int | None = None,
    wait: bool = True,
    progress: IO[str] | None = None,
    engines: EngineRegistry | None = None,
    after: Callable[[RunReport, CatalogConfig], None] | None = None,
    observers: Sequence[RunObserver] = (),
    keep_snapshots: int = 5,
    keep_warm: float | None = None,
) -> RunReport:
    """Run every transform (or ``select``) of the data product at ``path`` in environment ``env``,
    each on its compute, as :func:`plan` says.

    :param threads: at most this many transforms at once (default: one per compute).
    :param wait: wait for another run of the product to finish (else fail at once, naming it).
    :param progress: where progress lines go (default: nowhere).
    :param engines: the engines to use (default: those installed).
    :param after: called with the report and the catalog when the transforms finished, while the
        catalog still serves (``floe run --show`` reads the tables there).
    :param observers: more watchers of the run (:class:`floe.execution.observers.RunObserver`), after
        the progress lines and OpenLineage (:mod:`floe.lineage`, on when the governing manifests
        declare ``lineage:`` or the OpenLineage client's environment configures it:
        ``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``…).
    :param keep_snapshots: the embedded catalog's retention: the newest snapshots it keeps of each
        table when the run ends (older ones expire, files nothing reaches any more are removed; see
        :mod:`floe.catalog.retention`); ``0`` keeps everything. A declared catalog is not touched.
    :param keep_warm: keep the product's catalog and its computes' dbt workers up for this many
        idle seconds after the run, and hand this run's work to those a previous run kept
        (:mod:`floe.execution.warm`); ``None`` stops them first and runs cold.
    :returns: what happened, per transform and node.
    :raises FloeError: the product is invalid or cannot run (see :func:`plan`), the lock is held
        and ``wait`` is false, the catalog cannot start, or dbt cannot parse the project.
    """
    from floe.catalog.retention import RetentionPolicy
    from floe.execution.progress import Progress
    from floe.execution.runner import RunOptions
    from floe.execution.runner import run as run_product
    from floe.lineage.observer import LineageObserver

    if keep_snapshots < 0:
        from floe.errors import FloeError

        raise FloeError(f"keep_snapshots must be 0 (keep everything) or more, not {keep_snapshots}")
    retention = RetentionPolicy(keep_snapshots) if keep_snapshots else None
    options = RunOptions(
        environment=env,
        select=tuple(select),
        parallel=threads,
        wait=wait,
        retention=retention,
        keep_warm=keep_warm,
    )
    lines = Progress(progress)
    return run_product(Path(path), options, lines, engines, after, [LineageObserver(lines.line), *observers])
