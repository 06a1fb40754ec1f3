"""``floe run``: every transform of a data product on its compute, handing data over through Iceberg.

The steps, in one process plus one dbt worker process per compute (see :mod:`floe.execution.worker`):

1. compile the product (:func:`floe.compiler.compile_path`) and plan the run
   (:func:`floe.execution.plan.prepare`): everything that would make it fail and is known before
   it starts is reported here, located, before anything starts. When a ref between computes could
   be one nothing crosses (a compute of the product builds in its own warehouse), dbt's parse
   comes first too (:mod:`floe.execution.parse`) and the whole plan is checked here; otherwise the
   first worker's parse completes the plan (step 5), which needs no extra dbt start;
2. take the product's run lock (:mod:`floe.execution.lock`), write the artifacts: a second run
   waits, or fails with ``wait=False``;
3. start the catalog: the manifest's REST catalog when one is declared, else the embedded one
   (:class:`floe.catalog.rest_server.EmbeddedCatalog`, a real Iceberg REST catalog on 127.0.0.1
   whose SQLite file and warehouse live in ``<product>/.floe/iceberg/``, which ``dbt clean`` does
   not touch), in a thread, on a port chosen first, while the next steps go on: only builds need
   it (with several computes, the thread also creates the run's namespace). Every engine attaches
   to it the way it attaches to a production REST catalog. When no compute of the run attaches
   the catalog (each builds in its own warehouse), nothing starts;
4. write a dbt project and run profile per compute (:mod:`floe.execution.projects`,
   :mod:`floe.execution.profiles`) as the compute's engine says (its run hooks), and start a worker
   per compute, each parsing its project at once (with the engine's extension started first, such
   as Spark's session); those the engines allow are forked from one fork server
   (:mod:`floe.execution.forkserver`) that imported dbt while the projects were written;
5. complete the plan with dbt's own graph, as one worker parsed it (:mod:`floe.execution.graph`,
   :func:`floe.execution.plan.complete`), before any build;
6. run ``dbt build`` of each transform's nodes on its compute's worker as soon as the transforms
   it depends on succeeded, transforms on different computes at the same time; a failure skips
   only the transforms downstream of it; what committed stays committed. Transforms of one
   compute that dbt can build together without changing what a failure skips go in one
   ``dbt build``; the pure :mod:`floe.execution.scheduler` decides, :class:`_Run` carries it out;
7. stop the workers and the catalog, release the lock; the :class:`~floe.execution.report.RunReport`
   says what happened.

With ``keep_warm`` (``floe run --keep-warm``) steps 3 and 4 lease the product's warm host's
catalog and workers (:mod:`floe.execution.warm`) instead of starting them, and step 7 gives them
back; whatever the host cannot give, the run starts itself, as a cold run does.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import queue
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from floe.artifacts import out_of_room, private_directory, writing
from floe.catalog.retention import RetentionPolicy
from floe.compiler import (
    ARTIFACT_DIR,
    STATE_DIR,
    compile_path,
    profile_name,
    write_artifacts,
)
from floe.errors import FloeError, Problem, UnattachableCatalog
from floe.execution.bridges import RunBridges
from floe.execution.catalog import RunCatalog
from floe.execution.catalog_client import TOKEN_VARIABLE
from floe.execution.graph import BUILDABLE, Node, Plan
from floe.execution.lock import RunLock
from floe.execution.observers import Observers, RunObserver
from floe.execution.plan import CrossingKind, Preparation, RunPlan, complete, located_catalog_error, prepare
from floe.execution.profiles import worker_environ
from floe.execution.progress import Progress
from floe.execution.projects import read_user_project, write_project
from floe.execution.report import (
    NODE_FAILURES,
    BridgeReport,
    Column,
    NodeResult,
    Parent,
    RunReport,
    TransformReport,
)
from floe.execution.scheduler import Action, BuildDone, BuildLost, Run, Scheduler, Settle, State, Task
from floe.execution.workers import Lease, Worker, Workers, exit_text
from floe.model import CatalogConfig, WorkerSetup
from floe.plugins import EngineRegistry
from floe.secrets import find_secret_refs, floe_names, redact, secret_values
from floe.sqlsecrets import PLACEHOLDER

if TYPE_CHECKING:
    from floe.execution.warm import WarmHost

RUN_DIR = ARTIFACT_DIR / "run"
WORKER_DIR = ".workers"
CATALOG_LOG = ".catalog.log"
"""In the workers' folder: the embedded catalog's process's own output."""
STOP_TIMEOUT = 30.0
After = Callable[[RunReport, CatalogConfig], None]


@attrs.frozen
class RunOptions:
    """What to run and how."""

    environment: str
    select: tuple[str, ...] = ()
    """Transform names to run (default: all). Transforms not selected are assumed built."""
    parallel: int | None = None
    """At most this many transforms at once (default: one per compute)."""
    wait: bool = True
    """Wait for another run of the product to finish (else fail at once)."""
    lock_timeout: float | None = None
    retention: RetentionPolicy | None = attrs.field(factory=lambda: RetentionPolicy())
    """What the embedded catalog keeps of each table's history (``None``: no maintenance)."""
    keep_warm: float | None = None
    """Seconds the product's warm host waits for the next run (``floe run --keep-warm``): this run
    hands its work to the host's catalog and workers, started if none is up. ``None``: a run
    without it stops the product's warm host first, and runs cold (:mod:`floe.execution.warm`)."""


def _say_maintenance(progress: Progress, done: dict[str, Any]) -> None:
    """One line on what the embedded catalog's retention removed, when it removed anything."""
    if done.get("snapshots_expired") or done.get("files_removed") or done.get("folders_removed"):
        compacted = done.get("tables_compacted", 0)
        progress.line(
            f"catalog retention: {f'{compacted} table(s) compacted, ' if compacted else ''}"
            f"{done.get('snapshots_expired', 0)} old snapshot(s) expired, "
            f"{done.get('files_removed', 0) + done.get('folders_removed', 0)} unreferenced file(s) or "
            f"dropped table folder(s) removed ({done.get('bytes_removed', 0) / 2**20:.1f} MiB) in "
            f"{done.get('seconds', 0.0):.1f}s"
        )
    for error in done.get("errors") or []:
        progress.line(f"note: catalog retention skipped a table: {error}")


def run(
    path: Path,
    options: RunOptions,
    progress: Progress | None = None,
    engines: EngineRegistry | None = None,
    after: After | None = None,
    observers: Sequence[RunObserver] = (),
) -> RunReport:
    """Run the data product at ``path``; see the module docstring and :func:`_run_product`.

    A write of floe's own (the lock, the artifacts, the run's projects and logs) that the system
    refuses for want of room (a full disk, a quota, a file size limit) raises a :class:`FloeError`
    naming the file and the cause (:func:`floe.artifacts.writing`), after the run's workers and
    catalog are stopped; what earlier runs wrote is intact (floe writes its files atomically).
    """
    with writing(path):
        return _run_product(path, options, progress, engines, after, observers)


def _run_product(
    path: Path,
    options: RunOptions,
    progress: Progress | None = None,
    engines: EngineRegistry | None = None,
    after: After | None = None,
    observers: Sequence[RunObserver] = (),
) -> RunReport:
    """Run the data product at ``path``; see the module docstring.

    :param after: called with the report and the catalog once the transforms finished, while the
        catalog still serves (``floe run --show`` reads the tables there).
    :param observers: watch the run (:mod:`floe.execution.observers`), after ``progress``; the
        seconds their :meth:`~floe.execution.observers.RunObserver.run_finished` takes are the
        report's ``observers`` phase.
    :raises FloeError: the product is invalid or its plan has a problem (located, before anything
        starts), the lock is held (``wait=False``), the catalog cannot start, or the dbt project
        cannot be parsed. A failing transform raises nothing: the report says so.
    """
    progress = progress or Progress(None)
    started = time.time()
    clock = time.monotonic()
    registry = engines or EngineRegistry.discover()
    compiled = compile_path(path, registry)
    if options.parallel is not None and options.parallel < 1:
        raise FloeError("--threads must be at least 1")
    preparation = prepare(compiled, registry, options.environment, options.select)
    phases = {"compile": time.monotonic() - clock}
    the_plan: RunPlan | None = None
    if preparation.crossing_can_fail:  # the whole plan before anything starts
        from floe.execution.parse import parse_for_plan

        clock = time.monotonic()
        nodes, root = parse_for_plan(preparation, registry)
        the_plan = complete(preparation, nodes, root)
        phases["plan"] = time.monotonic() - clock
    product_dir = compiled.product_dir.resolve()

    private_directory(product_dir / STATE_DIR)  # the catalog, the logs, dbt's artifacts: the user's alone
    private_directory(product_dir / ARTIFACT_DIR)
    clock = time.monotonic()
    lock = RunLock(product_dir / STATE_DIR).acquire(
        wait=options.wait,
        environment=options.environment,
        on_wait=progress.line,
        timeout=options.lock_timeout,
    )
    phases["lock"] = time.monotonic() - clock
    with lock:
        write_artifacts(compiled)
        warm_host = _warm_host(product_dir, options, progress)
        schema = preparation.namespace
        # the catalog serves a worker that attaches it, or carries a bridged table between two that do not
        used = any(preparation.computes[name].access.in_place for name in preparation.selected_computes) or (
            the_plan is not None and any(c.kind is CrossingKind.BRIDGED for c in the_plan.crossings)
        )
        catalog = RunCatalog(
            preparation.catalog,
            product_dir / STATE_DIR,
            schema if len(preparation.selected_computes) > 1 else None,
            used=used,
            log=product_dir / RUN_DIR / WORKER_DIR / CATALOG_LOG,
            retention=options.retention,
            warm=warm_host,
        )
        if warm_host is not None and catalog.plan.embedded and used and catalog.warm is None:
            progress.line("note: the warm host's catalog did not answer: this run starts cold")
            warm_host.close()  # its workers know its catalog's token, not this run's
            warm_host = None
        try:
            report = RunReport(
                preparation.product,
                options.environment,
                catalog.to_json(),
                schema,
                started_at=started,
                phases=phases,
            )
            watch = Observers([progress, *observers], progress.line)
            watch.run_started(preparation, report)
            where = f"embedded, {catalog.plan.root}" if catalog.plan.embedded else "declared in the manifest"
            if used:
                progress.line(
                    f"catalog {catalog.planned.name!r} at {catalog.planned.uri} ({where}); namespace {schema}"
                )
            else:
                progress.line(
                    f"catalog {catalog.planned.name!r} ({where}) not started: no compute of this run "
                    f"attaches it, each builds in its own warehouse; namespace {schema}"
                )
            the_run = _Run(
                preparation, registry, options, catalog, report, progress, the_plan, watch, warm_host
            )
            error: BaseException | None = None
            try:
                the_run.execute()
                if after is not None:
                    after(report, the_run.catalog)
            except BaseException as exc:
                error = exc
                raise
            finally:
                clock = time.monotonic()
                report.finished_at = time.time()
                watch.run_finished(report, error)
                phases["observers"] = time.monotonic() - clock
        finally:
            clock = time.monotonic()
            catalog.stop()
            phases["catalog_start"] = catalog.seconds
            if catalog.maintenance is not None:
                phases["retention"] = time.monotonic() - clock
                report.catalog["maintenance"] = catalog.maintenance
                _say_maintenance(progress, catalog.maintenance)
            if warm_host is not None:
                warm_host.close()
        report.finished_at = time.time()  # before the lock goes: a waiting run starts after this
    return report


def _warm_host(product_dir: Path, options: RunOptions, progress: Progress) -> WarmHost | None:
    """The product's warm host for a ``--keep-warm`` run (``None``: it could not be had, the run
    goes cold); a run without the flag stops it (it may hold the catalog's files) and runs cold."""
    from floe.execution import warm

    if options.keep_warm is None:
        stopped = warm.stop(product_dir)
        if stopped is not None:
            progress.line(
                f"stopped the warm host (pid {stopped}): this run is cold (floe run --keep-warm keeps it)"
            )
        return None
    try:
        return warm.connect(product_dir, options.keep_warm, os.environ)
    except (warm.WarmError, OSError) as exc:
        progress.line(f"note: no warm host, this run starts cold: {exc}")
        return None


class _Run:
    """The state of one run: the profiles, the workers, the scheduler's decisions, the report."""

    def __init__(
        self,
        preparation: Preparation,
        registry: EngineRegistry,
        options: RunOptions,
        catalog: RunCatalog,
        report: RunReport,
        progress: Progress,
        the_plan: RunPlan | None = None,
        observers: RunObserver | None = None,
        warm: WarmHost | None = None,
    ) -> None:
        self.warm = warm
        """The product's warm host, whose workers this run leases (``floe run --keep-warm``)."""
        self.preparation = preparation
        self.compiled = preparation.compiled
        self.registry = registry
        self.options = options
        self.plan = the_plan
        """The plan, when it was made before the run started; else the first parse makes it."""
        self.starting: RunCatalog | None = catalog
        """The catalog until it serves: :meth:`_await_catalog` waits for it before the first build."""
        self.run_catalog = catalog
        self.catalog = catalog.planned
        self.schema = preparation.namespace
        self.report = report
        self.progress = progress
        self.observers = observers or progress
        """Everything that watches the run, ``progress`` first (:mod:`floe.execution.observers`)."""
        self.env = options.environment
        self.product_dir = self.compiled.product_dir.resolve()
        self.run_dir = self.product_dir / RUN_DIR
        self.computes = preparation.selected_computes
        self.ids = itertools.count(1)
        self.profiles: dict[str, dict[str, Any]] = {}
        """The run profile of each compute (:meth:`_profiles`)."""
        self.setups: dict[str, WorkerSetup] = {}
        """How each compute's worker starts, as its engine says (``floe_run_worker``)."""
        self.workers = Workers(self.run_dir / WORKER_DIR, self.setups, catalog.environ)
        self.secrets = self._secrets() + catalog.secrets
        self.names = [n for name in self.computes for n in floe_names(preparation.compute_config(name))]
        """floe's own names in the run's messages (computes, engines, settings' keys): a short
        secret inside one of them is not hidden there (:func:`floe.secrets.redact`)."""
        self.requests: dict[int, int] = {}
        """The scheduler's build of each build request sent to a worker."""
        self.node_times: dict[int, dict[str, list[float]]] = {}
        """Per build, per transform: when dbt started its first node and finished its last."""
        self.outcomes: dict[int, dict[str, tuple[list[NodeResult], str, float | None]]] = {}
        """Per finished build, per transform: dbt's results, the error, when its last node finished."""
        self.lost: dict[int, str] = {}
        """Why a build ended without an answer."""
        self.build_workers: dict[int, Worker] = {}
        """The worker each build runs on."""
        self.catalog_failure: str | None = None
        self.bridges = RunBridges(
            {c: registry.engines[preparation.compute_config(c).engine] for c in self.computes},
            {c: preparation.compute_config(c) for c in self.computes},
            progress,
            self.secrets,
        )
        """The models carried between the catalog and the computes that build in their own warehouse."""
        self.waiting: dict[int, tuple[Worker, int, list[str]]] = {}
        """Builds waiting for their loads: the worker, the request id and dbt's arguments."""
        self.publishing: dict[int, dict[str, bool]] = {}
        """Builds whose publishes run: what dbt's build succeeded in, per transform."""
        self.deadlines: dict[int, float] = {}
        """Builds on a compute with a timeout: when (``time.monotonic()``) their dbt must have answered."""
        self.parsing: dict[str, int] = {}
        """The parse request of each compute whose worker has not finished parsing: its builds wait
        behind it, so their timeout starts once it is done."""
        self.unclocked: dict[int, tuple[str, float]] = {}
        """Builds sent to a worker still parsing: their compute and timeout (seconds)."""
        self.timed_out: dict[int, str] = {}
        """Builds whose worker floe killed for running past their compute's timeout: why."""

    # -- setup -------------------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        refs = find_secret_refs(attrs.asdict(self.catalog, recurse=False))
        for name in self.computes:
            refs += find_secret_refs(self.preparation.compute_config(name).config)
        return secret_values(refs)

    def _profiles(self) -> None:
        """The run profile and worker setup of each compute the selected transforms use, as their
        engines make them (``floe_run_profile``, ``floe_run_worker``)."""
        for name in self.computes:
            compute = self.preparation.compute_config(name)
            engine = self.registry.engines[compute.engine]
            output = self.compiled.profiles[profile_name(name)]["outputs"][self.env]
            try:
                profile = engine.run_profile(compute, output, self.catalog, self.schema)
            except UnattachableCatalog as exc:  # located where the manifest declares the catalog
                raise located_catalog_error(self.compiled, exc) from None
            self.profiles[name] = profile
            self.setups[name] = engine.run_worker(compute, profile, self.catalog, self.run_catalog.environ)

    def _projects(self) -> dict[str, Path]:
        """The dbt project of each compute the selected transforms use, by compute name.

        The transforms of one compute run one after another in its worker, so they share one
        project (and its parse); transforms of different computes have their own ``target/``.
        """
        user_project = read_user_project(self.product_dir)
        projects = {}
        for name in self.computes:
            compute = self.preparation.compute_config(name)
            engine = self.registry.engines[compute.engine]
            projects[name] = write_project(
                self.product_dir,
                self.run_dir / name,
                user_project,
                profile_name(name),
                self.env,
                self.profiles[name],
                engine.run_project_config(compute, self.catalog),
                engine.run_macro_paths(compute, self.catalog),
            )
        return projects

    def _dbt_args(self, project: Path) -> list[str]:
        return [
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target",
            self.env,
            "--target-path",
            str(project / "target"),
            "--log-path",
            str(project / "logs"),
        ]

    # -- the run -----------------------------------------------------------------------------------

    def _adapter(self, compute: str) -> str:
        return self.registry.engines[self.preparation.compute_config(compute).engine].info.dbt_adapter

    def _lease_workers(self) -> None:
        """Lease the warm host's worker of each compute (see :mod:`floe.execution.warm`); a compute
        the host has none for starts its own, cold."""
        from floe.execution.warm import WarmError, fingerprint, runtime, start_environ

        assert self.warm is not None
        secret_names = {r.name for r in find_secret_refs(attrs.asdict(self.catalog, recurse=False))}
        for name in self.computes:
            secret_names |= {r.name for r in find_secret_refs(self.preparation.compute_config(name).config)}
        secret_names.add(TOKEN_VARIABLE)
        specs: dict[str, dict[str, Any]] = {}
        code = runtime()
        for name in self.computes:
            setup = self.setups[name]
            held = {m["name"] for m in PLACEHOLDER.finditer(json.dumps(dict(setup.settings)))} - {
                TOKEN_VARIABLE
            }
            if held:  # its engine would keep them past the run (e.g. in a session's static confs)
                self.progress.line(
                    f"note: compute {name!r} is not kept warm: its engine starts with secret(s) "
                    f"{', '.join(sorted(held))}, which must not outlive the run"
                )
                continue
            spec: dict[str, Any] = {
                "forkable": setup.forkable,
                "extension": setup.extension,
                "settings": dict(setup.settings),
                "env": worker_environ(setup, start_environ(os.environ, secret_names)),
                "preload": [f"dbt.adapters.{self._adapter(name)}"],
                "cwd": str(self.run_dir / WORKER_DIR / name),
                "token_variable": TOKEN_VARIABLE if self.run_catalog.warm is not None else None,
                "runtime": code,
            }
            spec["fingerprint"] = fingerprint(spec)
            specs[name] = spec
        try:
            leased = self.warm.workers(specs, self.options.keep_warm or 0.0) if specs else {}
        except WarmError as exc:
            self.progress.line(f"note: the warm host leased no worker, this run starts its own: {exc}")
            return
        for name, (pid, stdin, answers, kept) in leased.items():
            self.workers.leases[name] = Lease(
                pid,
                stdin,
                answers,
                worker_environ(self.setups[name], self.run_catalog.environ),
                self.warm.log_dir / f"{name}.log",
                functools.partial(self.warm.exit_code, name),
            )
            how = "kept warm from an earlier run" if kept else "started now, kept warm after this run"
            self.progress.line(f"compute {name!r}: warm worker (pid {pid}, {how})")

    def execute(self) -> None:
        self._profiles()
        if self.warm is not None:
            self._lease_workers()
        adapters = [
            self._adapter(name)
            for name, setup in self.setups.items()
            if setup.forkable and name not in self.workers.leases
        ]
        self.workers.start_forkserver(adapters)
        try:
            projects = self._projects()
            try:
                parse_id, worker, project = self._start_workers(projects)
                the_plan = self._parse(parse_id, worker, project, projects)
                self._schedule(the_plan.graph, projects)
            except BaseException as exc:
                # interrupted, or floe failed: no waiting; a warm worker is given back (a parse
                # error, say, need not cost the next run its warm workers)
                self.workers.kill(keep_leased=isinstance(exc, FloeError))
                raise
            finally:
                clock = time.monotonic()
                released = self.workers.stop(STOP_TIMEOUT)
                if self.warm is not None:
                    self.warm.release(released)
                self.report.phases["shutdown"] = time.monotonic() - clock
        finally:
            self.workers.close(STOP_TIMEOUT)

    def _start_workers(self, projects: dict[str, Path]) -> tuple[int, Worker, Path]:
        """Start a worker per compute, each parsing its compute's project at once, in parallel.

        The worker's builds reuse that parse. A worker whose engine names an extension starts it
        first (Spark's starts its SparkSession in the background). The parse of a forked worker
        gives the graph (it has dbt imported; a fresh one is busy starting what its engine needs);
        every compute's project holds the whole dbt project, so any will do.
        """
        clock = time.monotonic()
        parses: dict[str, tuple[int, Worker, Path]] = {}
        for compute, project in projects.items():
            parses[compute] = self._start_parse(compute, project)
        self.report.phases["workers_start"] = time.monotonic() - clock
        chosen = next((c for c in parses if self.setups[c].forkable), next(iter(parses)))
        return parses[chosen]

    def _start_parse(self, compute: str, project: Path) -> tuple[int, Worker, Path]:
        """The compute's worker (started if it has none), its extension started, parsing ``project``."""
        worker = self.workers.get(compute)
        setup = self.setups[compute]
        if setup.extension is not None:
            worker.send(
                {
                    "id": next(self.ids),
                    "op": "extension",
                    "module": setup.extension,
                    "settings": dict(setup.settings),
                }
            )
        request_id = next(self.ids)
        self.parsing[compute] = request_id
        self.bridges.parse_started(compute, request_id)
        worker.send({"id": request_id, "op": "parse", "args": self._dbt_args(project)})
        return request_id, worker, project

    def _parse(self, request_id: int, worker: Worker, project: Path, projects: dict[str, Path]) -> RunPlan:
        """Wait for the parse of ``worker``; complete the plan with it, unless it was made before."""
        clock = time.monotonic()
        while True:
            sender, message = self.workers.messages.get()
            self.bridges.note(sender.compute, message)
            if message.get("type") == "exit":
                sender.alive = False
            self._parsed(sender, message)
            if sender is not worker:
                continue
            if message["type"] == "exit" and worker.lease is not None:  # a warm worker died: start one cold
                self.progress.line(
                    f"note: the warm worker of compute {worker.compute!r} ended ({exit_text(message)}): "
                    "starting one for this run"
                )
                request_id, worker, project = self._start_parse(worker.compute, project)
                continue
            if message["type"] == "exit":
                tail = redact(worker.tail(), self.secrets, self.names)
                room = out_of_room(project, tail)
                raise FloeError(
                    [
                        Problem(
                            f"dbt could not parse the project: the process for compute "
                            f"{worker.compute!r} stopped (exit code {message['code']})"
                            + (f"; writing under {project}: {room[0]}" if room else "")
                            + ":\n"
                            + tail,
                            fix=f"{room[1]}, then run again" if room else f"see {worker.log}",
                        )
                    ]
                )
            if message["type"] == "result" and message.get("id") == request_id:
                break
        self.report.phases["parse"] = time.monotonic() - clock
        if not message.get("success"):
            error = redact(str(message.get("error")), self.secrets, self.names)
            room = out_of_room(project, error)
            raise FloeError(
                [
                    Problem(
                        "dbt could not parse the project"
                        + (f": writing under {project}: {room[0]}" if room else "")
                        + ":\n"
                        + error,
                        fix=f"{room[1]}, then run again"
                        if room
                        else f"fix the dbt project; dbt's log: {project / 'logs' / 'dbt.log'}",
                    )
                ]
            )
        the_plan = self.plan
        if the_plan is None:
            nodes = [Node.from_json(n) for n in message["nodes"]]
            the_plan = self.plan = complete(self.preparation, nodes, str(message.get("project")))
        self.bridges.plan(the_plan.crossings)
        for planned in the_plan.transforms:
            self.report.transforms.append(
                TransformReport(
                    planned.name,
                    planned.path,
                    planned.compute,
                    planned.engine,
                    list(planned.depends_on),
                    list(planned.nodes),
                    planned.tests,
                    log=str(projects[planned.compute] / "logs" / "dbt.log"),
                    in_catalog=self.preparation.computes[planned.compute].access.in_place,
                )
            )
        self.report.unassigned = the_plan.unassigned
        self.observers.plan_completed(the_plan)
        order = " → ".join(f"{t.name} ({t.compute})" for t in self.report.transforms)
        self.progress.line(f"parsed the dbt project in {self.report.phases['parse']:.1f}s: {order}")
        if the_plan.unassigned:
            self.progress.line(
                f"note: {len(the_plan.unassigned)} node(s) lie outside every transform path and "
                "no transform needs them; not built: " + ", ".join(n.name for n in the_plan.graph.unassigned)
            )
        return the_plan

    def _await_catalog(self) -> None:
        """Wait for the catalog to serve; if it took another port, rewrite the run profiles."""
        if self.starting is None:
            return
        clock = time.monotonic()
        catalog = self.starting.ready()
        self.starting = None
        self.report.phases["catalog_wait"] = time.monotonic() - clock
        self.observers.catalog_ready(catalog)
        if catalog != self.catalog:
            self.catalog = catalog
            self.report.catalog["uri"] = catalog.uri
            self._profiles()
            self._projects()

    # -- building: the scheduler decides, this carries it out ----------------------------------------

    def _schedule(self, the_plan: Plan, projects: dict[str, Path]) -> None:
        self._await_catalog()
        reports = {t.name: t for t in self.report.transforms}
        tasks = [
            Task(
                t.name,
                t.compute,
                tuple(u for u in t.depends_on if u in reports),
                bool(the_plan.get(t.name).nodes),
            )
            for t in self.report.transforms
        ]
        chains = {
            (up, t.name)
            for t in self.report.transforms
            for up in t.depends_on
            if up in reports and reports[up].compute == t.compute and the_plan.chains(up, t.name)
        }
        scheduler = Scheduler(tasks, self.options.parallel or len(tasks) or 1, chains)
        self._apply(scheduler, scheduler.start(), the_plan, projects)
        while scheduler.running:
            try:
                sender, message = self.workers.messages.get(timeout=self._until_deadline())
            except queue.Empty:
                self._stop_overdue(scheduler)
                continue
            self._parsed(sender, message)
            self.bridges.note(sender.compute, message)
            event = self._event(scheduler, sender, message, the_plan)
            if event is not None:
                self._apply(scheduler, scheduler.handle(event), the_plan, projects)
        for transform in self.report.transforms:
            if transform.status == State.PENDING:  # pragma: no cover - the scheduler settles every transform
                transform.status, transform.message = State.SKIPPED, "not started"

    def _apply(
        self, scheduler: Scheduler, actions: list[Action], the_plan: Plan, projects: dict[str, Path]
    ) -> None:
        for action in actions:
            if isinstance(action, Run):
                self._run(scheduler, action, the_plan, projects)
            else:
                self._settle(action)

    def _run(self, scheduler: Scheduler, action: Run, the_plan: Plan, projects: dict[str, Path]) -> None:
        build = action.build
        now = time.time()
        for name in build.transforms:
            transform = self.report.get(name)
            transform.started_at = now
            transform.status = State.RUNNING
            self.observers.transform_started(transform)
        worker = self.workers.get(build.compute)
        self.build_workers[build.id] = worker
        request_id = next(self.ids)
        selectors = [s for name in build.transforms for s in the_plan.get(name).selectors]
        # dbt's manifest.json is the parse's; run_results.json would hold one batch: floe's report has all
        args = [
            *self._dbt_args(projects[build.compute]),
            "--no-write-json",
            "--select",
            *selectors,
            "--indirect-selection",
            "buildable",
        ]
        self.requests[request_id] = build.id
        self.node_times[build.id] = {}
        failure = self._catalog_failure(probe=False)
        if failure is not None and (
            self.preparation.computes[build.compute].access.in_place or self.bridges.loads(build.transforms)
        ):
            self.lost[build.id] = "not started: " + failure
            self._apply(scheduler, scheduler.handle(BuildLost(build.id)), the_plan, projects)
            return
        loads = self.bridges.loads(build.transforms)
        if loads:  # the build starts once they are loaded (see _bridged)
            self.waiting[build.id] = (worker, request_id, args)
            self.bridges.start(loads, self.catalog, self._poster(worker, build.id), stop_at_failure=True)
            return
        if not self._send_build(build.id, worker, request_id, args):
            self._apply(scheduler, scheduler.handle(BuildLost(build.id)), the_plan, projects)

    def _send_build(self, build_id: int, worker: Worker, request_id: int, args: list[str]) -> bool:
        """Ask ``worker`` to build; ``False`` (the build is lost) when it is not there to."""
        if worker.send({"id": request_id, "op": "build", "args": args}):
            timeout = self.preparation.compute_config(worker.compute).timeout
            if timeout is not None and worker.compute in self.parsing:  # clocked once the parse is done
                self.unclocked[build_id] = (worker.compute, timeout.seconds)
            elif timeout is not None:
                self.deadlines[build_id] = time.monotonic() + timeout.seconds
            return True
        self.lost[build_id] = (
            f"the dbt process of compute {worker.compute!r} is not running:\n" + worker.tail()
        )
        return False

    def _parsed(self, worker: Worker, message: dict[str, Any]) -> None:
        """Note the end of ``worker``'s parse (its answer, or its exit): the timeouts of the builds
        sent behind it start now."""
        ended = message.get("type") == "exit" or (
            message.get("type") == "result" and message.get("id") == self.parsing.get(worker.compute)
        )
        if not ended or self.parsing.pop(worker.compute, None) is None:
            return
        now = time.monotonic()
        for build_id, (compute, seconds) in list(self.unclocked.items()):
            if compute == worker.compute:
                del self.unclocked[build_id]
                self.deadlines[build_id] = now + seconds

    def _until_deadline(self) -> float | None:
        """How long the run may wait for a message before a build runs past its timeout."""
        if not self.deadlines:
            return None
        return max(0.0, min(self.deadlines.values()) - time.monotonic())

    def _stop_overdue(self, scheduler: Scheduler) -> None:
        """Kill the worker of every build that ran past its compute's timeout: its ``exit`` message
        then fails the build (:meth:`_event`), and the compute's next build gets a new worker."""
        now = time.monotonic()
        for build_id, deadline in list(self.deadlines.items()):
            build = scheduler.running.get(build_id)
            if build is None:
                del self.deadlines[build_id]
                continue
            if deadline > now:
                continue
            del self.deadlines[build_id]
            worker = self.build_workers[build_id]
            timeout = self.preparation.compute_config(build.compute).timeout
            assert timeout is not None
            which = ", ".join(repr(t) for t in build.transforms)
            self.timed_out[build_id] = (
                f"transform {which} on compute {build.compute!r} ran longer than the compute's timeout of "
                f"{timeout.written}, set by {timeout.set_at}; floe killed its dbt process (and what it "
                f"started). Raise the timeout there, or find what the build waited for; its last output "
                f"({worker.log}):\n"
            )
            self.progress.line(
                f"[{build.transforms[0]}] timed out after {timeout.written}: stopping compute {build.compute!r}"
            )
            worker.kill()

    def _poster(self, worker: Worker, build_id: int) -> Callable[[list[BridgeReport]], None]:
        """What a bridge thread calls when it is done: its reports, on the run's queue."""
        return lambda reports: self.workers.messages.put(
            (worker, {"type": "bridged", "build": build_id, "reports": reports})
        )

    def _bridged(self, scheduler: Scheduler, message: dict[str, Any]) -> BuildDone | BuildLost | None:
        """A batch of bridges ended: start the build that waited for its loads (or fail it), or hand
        the scheduler the build whose models were published (failing the transforms whose were not)."""
        build_id = int(message["build"])
        reports: list[BridgeReport] = message["reports"]
        self.report.bridges += reports
        if build_id not in scheduler.running:  # its worker died meanwhile: the build is settled already
            return None
        failed = [r for r in reports if r.status != "success"]
        if build_id in self.waiting:
            worker, request_id, args = self.waiting.pop(build_id)
            if failed:
                self.lost[build_id] = "a model could not be loaded before the build:\n" + failed[0].message
                return BuildLost(build_id)
            return None if self._send_build(build_id, worker, request_id, args) else BuildLost(build_id)
        succeeded = self.publishing.pop(build_id, {})
        for report in failed:
            succeeded[report.transform] = False
            results, _, finished = self.outcomes[build_id][report.transform]
            error = (
                "built, but a model other computes read could not be published into the catalog:\n"
                + report.message
            )
            self.outcomes[build_id][report.transform] = (results, error, finished)
        return BuildDone(build_id, succeeded)

    def _event(
        self, scheduler: Scheduler, worker: Worker, message: dict[str, Any], the_plan: Plan
    ) -> BuildDone | BuildLost | None:
        """What a worker's ``message`` means to the scheduler (``None``: nothing it decides on)."""
        kind = message.get("type")
        if kind == "bridged":
            return self._bridged(scheduler, message)
        if kind == "exit":
            worker.alive = False
            build = next(
                (b for b in scheduler.running.values() if self.build_workers.get(b.id) is worker), None
            )
            if build is None:
                return None
            self.deadlines.pop(build.id, None)
            if build.id in self.timed_out:
                self.lost[build.id] = self.timed_out.pop(build.id) + worker.tail()
                return BuildLost(build.id)
            which = ", ".join(repr(t) for t in build.transforms)
            self.lost[build.id] = (
                f"the dbt process of compute {worker.compute!r} stopped unexpectedly while it built "
                f"transform {which} ({exit_text(message)}); its last output ({worker.log}):\n" + worker.tail()
            )
            return BuildLost(build.id)
        build_id = self.requests.get(int(message.get("id") or 0))
        build = scheduler.running.get(build_id) if build_id is not None else None
        if build is None:
            return None
        names = list(build.transforms)
        if kind == "node":
            name = self._owner(str(message["unique_id"]), names, the_plan)
            span = self.node_times[build.id].setdefault(name, [time.time(), time.time()])
            span[1] = time.time()
            if message.get("event") == "start":
                self.observers.node_started(name, str(message["unique_id"]))
            elif message.get("event") == "finish":
                self.observers.node_finished(
                    name,
                    NodeResult(
                        str(message["unique_id"]),
                        str(message["name"]),
                        str(message["resource_type"]),
                        str(message["status"]),
                        float(message.get("seconds") or 0.0),
                    ),
                )
            return None
        if kind != "result":
            return None
        self.deadlines.pop(build.id, None)
        times = self.node_times.pop(build.id, {})
        results: dict[str, list[NodeResult]] = {name: [] for name in names}
        for r in message.get("results") or []:
            owner = self._owner(r["unique_id"], names, the_plan)
            results[owner].append(
                NodeResult(
                    r["unique_id"],
                    r["name"],
                    r["resource_type"],
                    r["status"],
                    r["seconds"],
                    redact(r.get("message") or "", self.secrets, self.names),
                    self._relation(r, self.report.get(owner).in_catalog),
                    redact(r["sql"], self.secrets, self.names) if r.get("sql") else None,
                    tuple(Parent(**p) for p in r.get("parents") or ()),
                    tuple(Column(**c) for c in r.get("columns") or ()),
                )
            )
        error = str(message.get("error") or "")
        success = bool(message.get("success"))
        succeeded = {}
        for position, name in enumerate(names):
            own = results[name]
            ok = (
                success
                if len(names) == 1
                else ((success or bool(own)) and not any(r.status == State.SKIPPED for r in own))
            )
            succeeded[name] = ok and not any(r.status in NODE_FAILURES for r in own)
            if position and name in times:  # built with the batch: started when its nodes did
                self.report.get(name).started_at = times[name][0]
        self.outcomes[build.id] = {
            name: (results[name], error, times.get(name, [0.0, 0.0])[1] or None) for name in names
        }
        publishes = self.bridges.publishes([name for name in names if succeeded[name]])
        if publishes:  # the scheduler hears of the build once they are published (see _bridged)
            self.publishing[build.id] = succeeded
            self.bridges.start(publishes, self.catalog, self._poster(worker, build.id), stop_at_failure=False)
            return None
        return BuildDone(build.id, succeeded)

    def _settle(self, action: Settle) -> None:
        transform = self.report.get(action.transform)
        if action.state == State.SKIPPED:
            transform.finished_at = time.time()
            transform.status = State.SKIPPED
            transform.message = f"not run: upstream transform {action.because!r} failed"
            self.progress.line(f"[{transform.name}] SKIPPED: upstream transform {action.because!r} failed")
            self.observers.transform_finished(transform)
            return
        if action.build is None:  # nothing to build
            transform.started_at = transform.finished_at = time.time()
            self.observers.transform_started(transform)
            transform.status, transform.message = State.SUCCESS, "no models in this transform's path"
            self.observers.transform_finished(transform)
            return
        results, error, finished_at = self.outcomes.get(action.build, {}).get(
            action.transform, ([], "", None)
        )
        if action.build in self.lost:
            error = self.lost[action.build]
        transform.finished_at = finished_at or time.time()
        transform.results = results
        failed = [r for r in results if r.status in NODE_FAILURES]
        if action.state == State.SUCCESS and not failed:
            transform.status = State.SUCCESS
        else:
            transform.status = State.FAILED
            lines = [f"{r.resource_type} {r.name}: {r.message}" for r in failed] or [
                error or "dbt build failed"
            ]
            cause = (
                self._catalog_failure(probe=True)
                if transform.in_catalog or self.bridges.loads([transform.name])
                else None
            )
            if cause is None:
                cause = self._out_of_room("\n".join(lines))
            if cause is not None and not any(cause in line for line in lines):
                lines.append("cause: " + cause)
            transform.message = redact("\n".join(lines), self.secrets, self.names)
        self.observers.transform_finished(transform)

    def _out_of_room(self, said: str) -> str | None:
        """Why a failed build may have found no room to write: the filesystem of the product's
        state (the embedded catalog's files) or of the run's projects (dbt's target and logs) is
        full. An engine or catalog that failed on it may say only "HTTP 500"."""
        for where in (self.product_dir / STATE_DIR, self.run_dir):
            room = out_of_room(where)
            if room is not None:
                return f"writing under {where}: {room[0]}; {room[1]}, then run again"
        return None

    def _catalog_failure(self, probe: bool) -> str | None:
        """Why the catalog no longer serves the run, once known (``probe``: ask a declared catalog)."""
        if self.catalog_failure is None and (probe or self.run_catalog.plan.embedded):
            self.catalog_failure = self.run_catalog.failure(self.schema)
        return self.catalog_failure

    @staticmethod
    def _owner(unique_id: str, names: list[str], the_plan: Plan) -> str:
        """The transform of the batch ``names`` a node's result belongs to."""
        owner = the_plan.owners.get(unique_id)
        return owner if owner in names else names[-1]

    def _relation(self, result: dict[str, Any], in_catalog: bool) -> str | None:
        """``<catalog>.<namespace>.<table>``: the same Iceberg table whichever engine built it; for
        an engine that builds in its own warehouse, ``<database>.<schema>.<table>`` there."""
        if result.get("resource_type") not in BUILDABLE or not result.get("alias"):
            return None
        if result.get("materialized") == "ephemeral":
            return None
        database = self.catalog.name if in_catalog else result.get("database")
        return f"{database}.{result.get('schema')}.{result.get('alias')}"
