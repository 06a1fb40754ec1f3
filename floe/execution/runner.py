"""``floe run``: every transform of a data product on its compute, handing data over through Iceberg.

The steps, in one process plus one dbt worker process per compute (see :mod:`floe.execution.worker`):

1. compile the product (:func:`floe.compiler.compile_path`) and write its artifacts;
2. take the product's run lock (:mod:`floe.execution.lock`): a second run waits, or fails with
   ``wait=False``;
3. start the catalog: the manifest's REST catalog when one is declared, else the embedded one
   (:class:`floe.catalog.rest_server.EmbeddedCatalog`, a real Iceberg REST catalog on 127.0.0.1
   whose SQLite file and warehouse live in ``<product>/.floe/iceberg/``, which ``dbt clean`` does
   not touch), in a thread, on a port chosen first, while the next steps go on: only builds need
   it (with several computes, the thread also creates the run's namespace). Every engine attaches
   to it the way it attaches to a production REST catalog;
4. write a dbt project and run profile per compute (:mod:`floe.execution.projects`,
   :mod:`floe.execution.profiles`) as the compute's engine says (its run hooks), and start a worker
   per compute, each parsing its project at once (with the engine's extension started first, such
   as Spark's session); those the engines allow are forked from one fork server
   (:mod:`floe.execution.forkserver`) that imported dbt while the projects were written;
5. derive the transform DAG from dbt's own graph, as one worker parsed it (:mod:`floe.execution.graph`);
6. run ``dbt build`` of each transform's nodes on its compute's worker as soon as the transforms
   it depends on succeeded, transforms on different computes at the same time; a failure skips
   only the transforms downstream of it; what committed stays committed. Transforms of one
   compute that dbt can build together without changing what a failure skips go in one
   ``dbt build`` (see :meth:`_Run._batch`);
7. stop the workers and the catalog, release the lock; the :class:`~floe.execution.report.RunReport`
   says what happened.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from floe.artifacts import write_atomic
from floe.compiler import (
    ARTIFACT_DIR,
    STATE_DIR,
    Compiled,
    catalog_document,
    compile_path,
    profile_name,
    write_artifacts,
)
from floe.errors import FloeError, Problem, UnattachableCatalog
from floe.execution.forkserver import AVAILABLE as FORKSERVER_AVAILABLE
from floe.execution.forkserver import ForkedProcess, ForkServer
from floe.execution.graph import BUILDABLE, Node, Plan, TransformInput, plan
from floe.execution.lock import RunLock
from floe.execution.profiles import dbt_environ, namespace, worker_environ
from floe.execution.projects import read_user_project, write_project
from floe.execution.report import (
    FAILED,
    NODE_FAILURES,
    SKIPPED,
    SUCCESS,
    NodeResult,
    Progress,
    RunReport,
    TransformReport,
)
from floe.model import CatalogConfig, WorkerSetup
from floe.plugins import EngineRegistry
from floe.secrets import find_secret_refs, redact, secret_values

if TYPE_CHECKING:
    from floe.catalog.rest_server import EmbeddedCatalog

RUN_DIR = ARTIFACT_DIR / "run"
WORKER_DIR = ".workers"
FORKSERVER_LOG = ".forkserver.log"
"""In ``WORKER_DIR``, next to the workers' logs (named after computes, which never start with a dot)."""
STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 15
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


def run(path: Path, options: RunOptions, progress: Progress | None = None,
        engines: EngineRegistry | None = None, after: After | None = None) -> RunReport:  # fmt: skip
    """Run the data product at ``path``; see the module docstring.

    :param after: called with the report and the catalog once the transforms finished, while the
        catalog still serves (``floe run --show`` reads the tables there).
    :raises FloeError: the product is invalid, the lock is held (``wait=False``), the catalog
        cannot start, or the dbt project cannot be parsed. A failing transform raises nothing: the
        report says so.
    """
    progress = progress or Progress(None)
    started = time.time()
    clock = time.monotonic()
    registry = engines or EngineRegistry.discover()
    compiled = compile_path(path, registry)
    inputs = _check(compiled, options)
    product = str(compiled.source.data["metadata"]["name"])
    product_dir = compiled.product_dir.resolve()
    phases = {"compile": time.monotonic() - clock}

    clock = time.monotonic()
    lock = RunLock(product_dir / STATE_DIR).acquire(wait=options.wait, environment=options.environment,
                                                     on_wait=progress.line, timeout=options.lock_timeout)  # fmt: skip
    phases["lock"] = time.monotonic() - clock
    with lock:
        write_artifacts(compiled)
        schema = namespace(product, options.environment)
        computes = {t.compute for t in inputs if not options.select or t.name in options.select}
        catalog = _Catalog(compiled, product_dir / STATE_DIR, schema if len(computes) > 1 else None)
        try:
            embedded = catalog.embedded
            report = RunReport(product, options.environment, _catalog_json(catalog.planned, embedded), schema,
                               started_at=started, phases=phases)  # fmt: skip
            where = f"embedded, {embedded.root}" if embedded is not None else "declared in the manifest"
            progress.line(f"catalog {catalog.planned.name!r} at {catalog.planned.uri} ({where}); namespace {schema}")
            the_run = _Run(compiled, registry, options, inputs, catalog, schema, report, progress)
            the_run.execute()
            if after is not None:
                after(report, the_run.catalog)
        finally:
            catalog.stop()
            phases["catalog_start"] = catalog.seconds
        report.finished_at = time.time()  # before the lock goes: a waiting run starts after this
    return report


def _check(compiled: Compiled, options: RunOptions) -> list[TransformInput]:
    if not compiled.transforms:
        raise FloeError([Problem(f"{compiled.source.path} is a manifest: `floe run` runs a data product",
                                 fix="pass a data product directory or its floe.yaml")])  # fmt: skip
    environments = list(compiled.governance.environments)
    if options.environment not in environments:
        raise FloeError([Problem(f"unknown environment {options.environment!r}",
                                 expected="one of " + ", ".join(environments),
                                 fix="pass --env with an environment the manifests declare")])  # fmt: skip
    names = [t.name for t in compiled.transforms]
    unknown = [s for s in options.select if s not in names]
    if unknown:
        raise FloeError([Problem(f"no transform named {', '.join(map(repr, unknown))}",
                                 expected="one of " + ", ".join(names),
                                 fix="name transforms as `floe compile` lists them (their `name:`, else "
                                     "their path as an identifier)")])  # fmt: skip
    if options.parallel is not None and options.parallel < 1:
        raise FloeError("--threads must be at least 1")
    return [TransformInput(t.name, t.path, t.compute) for t in compiled.transforms]


class _Catalog:
    """The run's catalog: the manifest's, or the embedded one, started while the workers start.

    Starting the embedded catalog (pyiceberg's import, SQLite) takes about as long as a worker's
    start of Python and dbt, and only builds need it: its port is chosen first, so the run
    profiles can name it, then it starts in a thread; :meth:`ready` waits for it before the first
    build.

    With ``namespace``, that thread also creates the run's namespace in the catalog, if missing:
    workers of several computes building at once into a fresh catalog would each create it, and
    the second ``CREATE SCHEMA`` fails on the REST catalog's conflict (409).
    """

    def __init__(self, compiled: Compiled, state_dir: Path, namespace: str | None = None) -> None:
        self.embedded: EmbeddedCatalog | None = None
        self.seconds = 0.0
        self._thread: threading.Thread | None = None
        self._error: FloeError | None = None
        self._namespace = namespace
        declared = compiled.catalog
        if declared is not None:
            if declared.type != "rest" or not declared.uri:
                raise FloeError([Problem(
                    f"the manifest declares a {declared.type} catalog {declared.name!r}: `floe run` needs an "
                    "Iceberg REST catalog (with a uri), which floe and the engines reach over HTTP",
                    fix="declare the REST endpoint of your catalog, or remove `catalog:` to use the embedded one",
                )])  # fmt: skip
            self.config = self.planned = declared
            if namespace is not None:
                self._thread = threading.Thread(target=self._create_namespace, name="floe-run-namespace",
                                                daemon=True)  # fmt: skip
                self._thread.start()
            return
        from floe.catalog.rest_server import EmbeddedCatalog

        # The port of the last run, when it is free: the same catalog uri keeps the run profiles the
        # same from run to run, so dbt can reuse its parse of the project (partial parsing).
        self._port_file = state_dir / "iceberg" / "port"
        try:
            preferred = int(self._port_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            preferred = 0
        port = _free_port(preferred)
        self.embedded = EmbeddedCatalog(state_dir, port=port)
        self.config = CatalogConfig(type="rest", name=self.embedded.name, uri=f"http://127.0.0.1:{port}",
                                    warehouse=self.embedded.warehouse)  # fmt: skip
        self.planned = self.config
        self._thread = threading.Thread(target=self._start, name="floe-run-catalog-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        from floe.catalog.rest_server import EmbeddedCatalog

        clock = time.monotonic()
        embedded = self.embedded
        assert embedded is not None
        try:
            try:
                embedded.start()
            except OSError:  # the port was taken since it was chosen: any port will do
                embedded = self.embedded = EmbeddedCatalog(embedded.state_dir).start()
        except Exception as exc:  # noqa: BLE001 - pyiceberg missing, a read-only disk, a corrupt file…
            self._error = FloeError([Problem(
                f"the embedded Iceberg catalog could not start: {type(exc).__name__}: {exc}",
                fix=f"check that {embedded.root} is writable; pip install 'floe[iceberg]' if pyiceberg is missing",
            )])  # fmt: skip
            return
        finally:
            self.seconds = time.monotonic() - clock
        with contextlib.suppress(OSError):
            write_atomic(self._port_file, embedded.uri.rsplit(":", 1)[1] + "\n")
        self.config = embedded.catalog_config()
        self._create_namespace()

    def _create_namespace(self) -> None:
        if self._namespace is None:
            return
        try:
            if self.embedded is not None:  # no credentials: one request, no client library
                import urllib.error
                import urllib.request

                body = json.dumps({"namespace": [self._namespace]}).encode()
                request = urllib.request.Request(f"{self.config.uri}/v1/namespaces", data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})  # fmt: skip
                with contextlib.suppress(urllib.error.HTTPError), urllib.request.urlopen(request, timeout=10):
                    pass  # 409: it exists
                return
            from floe.execution.show import client

            client(self.config).create_namespace_if_not_exists(self._namespace)
        except Exception:  # noqa: BLE001 - no right to, unreachable…: dbt's own attempt says why
            pass

    def ready(self) -> CatalogConfig:
        """The catalog, serving; its uri may differ from the planned :attr:`config`'s.

        :raises FloeError: the embedded catalog could not start.
        """
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.config

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.embedded is not None and self.embedded.running:
            self.embedded.stop()


def _free_port(preferred: int) -> int:
    """``preferred`` if it can be bound on 127.0.0.1 (as the catalog binds it), else a free port."""
    import socket

    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    return 0


def _catalog_json(catalog: CatalogConfig, embedded: EmbeddedCatalog | None) -> dict[str, Any]:
    info: dict[str, Any] = {"name": catalog.name, "type": catalog.type, "uri": catalog.uri,
                            "warehouse": catalog.warehouse, "embedded": embedded is not None}  # fmt: skip
    if embedded is not None:
        info["path"] = str(embedded.root)
    return info


# -- the workers -----------------------------------------------------------------------------------

Message = tuple["_Worker", dict[str, Any]]


def _exit_code(message: dict[str, Any]) -> str:
    code = message.get("code")
    return "no exit code: its fork server stopped, or could not fork it" if code is None else f"exit code {code}"


class _Worker:
    """One dbt worker process (forked by the fork server, else ``python -m floe.execution.worker``): its dbt
    runs one build (of one or more transforms) at a time."""

    def __init__(self, compute: str, env: dict[str, str], directory: Path,
                 messages: queue.Queue[Message], forkserver: ForkServer | None) -> None:  # fmt: skip
        self.compute = compute
        self.busy: str | None = None
        self.alive = True
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory.with_suffix(".log")
        read_fd, write_fd = os.pipe()
        self.process: subprocess.Popen[str] | ForkedProcess
        try:
            if forkserver is not None:
                self.process = forkserver.spawn(write_fd, self.log, directory, env)
            else:
                with open(self.log, "w", encoding="utf-8") as log:
                    self.process = subprocess.Popen(
                        [sys.executable, "-m", "floe.execution.worker", str(write_fd)],
                        stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
                        cwd=directory, env=env, text=True, start_new_session=True,
                    )  # fmt: skip
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._reader = threading.Thread(target=self._read, args=(read_fd, messages),
                                        name=f"floe-run-{compute}", daemon=True)  # fmt: skip
        self._reader.start()

    def _read(self, fd: int, messages: queue.Queue[Message]) -> None:
        with os.fdopen(fd, encoding="utf-8") as replies:
            for line in replies:
                with contextlib.suppress(ValueError):
                    messages.put((self, json.loads(line)))
        messages.put((self, {"type": "exit", "code": self.process.wait()}))

    def send(self, request: dict[str, Any]) -> bool:
        stdin = self.process.stdin
        if stdin is None or not self.alive:
            return False
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def ask_to_exit(self) -> None:
        self.send({"op": "exit"})
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()

    def finish(self, timeout: float) -> None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reader.join(timeout=5)

    def kill(self) -> None:
        pid = self.process.pid
        if pid is None:  # not forked (yet): the fork server kills it, or never forks it, when it stops
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            try:
                self.process.wait(timeout=5)
                return
            except subprocess.TimeoutExpired:
                continue

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


class _Run:
    """The state of one run: the plan, the workers, the report."""

    def __init__(self, compiled: Compiled, registry: EngineRegistry, options: RunOptions,
                 inputs: list[TransformInput], catalog: _Catalog, schema: str,
                 report: RunReport, progress: Progress) -> None:  # fmt: skip
        self.compiled = compiled
        self.registry = registry
        self.options = options
        self.inputs = inputs
        self.starting: _Catalog | None = catalog
        """The catalog until it serves: :meth:`_await_catalog` waits for it before the first build."""
        self.catalog = catalog.planned
        self.schema = schema
        self.report = report
        self.progress = progress
        self.env = options.environment
        self.product_dir = compiled.product_dir.resolve()
        self.run_dir = self.product_dir / RUN_DIR
        selected = set(options.select) or {t.name for t in inputs}
        self.selected = [t for t in inputs if t.name in selected]
        self.messages: queue.Queue[Message] = queue.Queue()
        self.workers: dict[str, _Worker] = {}
        self.forkserver: ForkServer | None = None
        """Forks the workers of the computes whose engines allow it, from :meth:`execute` on (where it can)."""
        self.ids = itertools.count(1)
        self.profiles: dict[str, dict[str, Any]] = {}
        """The run profile of each compute (:meth:`_profiles`)."""
        self.setups: dict[str, WorkerSetup] = {}
        """How each compute's worker starts, as its engine says (``floe_run_worker``)."""
        self.secrets = self._secrets()
        self.node_times: dict[int, dict[str, list[float]]] = {}
        """Per build request, per transform: when dbt started its first node and finished its last."""

    # -- setup -------------------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        refs = find_secret_refs(attrs.asdict(self.catalog, recurse=False))
        for transform in self.selected:
            refs += find_secret_refs(self.compiled.governance.compute_for(transform.compute, self.env).config)
        return secret_values(refs)

    def _profiles(self) -> None:
        """The run profile and worker setup of each compute the selected transforms use, as their
        engines make them (``floe_run_profile``, ``floe_run_worker``)."""
        for name in dict.fromkeys(t.compute for t in self.selected):
            compute = self.compiled.governance.compute_for(name, self.env)
            engine = self.registry.engines[compute.engine]
            output = self.compiled.profiles[profile_name(name)]["outputs"][self.env]
            try:
                profile = engine.run_profile(compute, output, self.catalog, self.schema)
            except UnattachableCatalog as exc:  # located where the manifest declares the catalog
                declared = catalog_document(self.compiled.governance.chain)
                if declared is None:
                    raise
                raise exc.located(declared.problem(exc.key, p.message, p.expected, p.fix)
                                  for p in exc.problems) from None  # fmt: skip
            self.profiles[name] = profile
            self.setups[name] = engine.run_worker(compute, profile, self.catalog, os.environ)

    def _projects(self) -> dict[str, Path]:
        """The dbt project of each compute the selected transforms use, by compute name.

        The transforms of one compute run one after another in its worker, so they share one
        project (and its parse); transforms of different computes have their own ``target/``.
        """
        user_project = read_user_project(self.product_dir)
        projects = {}
        for name in dict.fromkeys(t.compute for t in self.selected):
            compute = self.compiled.governance.compute_for(name, self.env)
            engine = self.registry.engines[compute.engine]
            projects[name] = write_project(
                self.product_dir, self.run_dir / name, user_project, profile_name(name),
                self.env, self.profiles[name], engine.run_project_config(compute, self.catalog),
                engine.run_macro_paths(compute, self.catalog),
            )  # fmt: skip
        return projects

    def _worker(self, compute_name: str) -> _Worker:
        worker = self.workers.get(compute_name)
        if worker is not None and worker.alive:
            return worker
        setup = self.setups[compute_name]
        env = worker_environ(setup, os.environ)
        directory = self.run_dir / WORKER_DIR / compute_name
        forkserver = self.forkserver if setup.forkable else None
        worker = _Worker(compute_name, env, directory, self.messages, forkserver)
        self.workers[compute_name] = worker
        return worker

    def _dbt_args(self, project: Path) -> list[str]:
        return ["--project-dir", str(project), "--profiles-dir", str(project), "--target", self.env,
                "--target-path", str(project / "target"), "--log-path", str(project / "logs")]  # fmt: skip

    # -- the run -----------------------------------------------------------------------------------

    def execute(self) -> None:
        self._profiles()
        self.forkserver = self._start_forkserver()
        try:
            self._execute()
        finally:
            if self.forkserver is not None:
                self.forkserver.close(STOP_TIMEOUT)

    def _start_forkserver(self) -> ForkServer | None:
        """The fork server of the workers that can be forked, importing dbt while floe writes the
        projects; ``None`` where there is no such worker or no fork server (:mod:`floe.execution.forkserver`)."""
        adapters = set()
        for name in {t.compute for t in self.selected}:
            engine = self.registry.engines[self.compiled.governance.compute_for(name, self.env).engine]
            if self.setups[name].forkable:
                adapters.add(engine.info.dbt_adapter)
        if not adapters or not FORKSERVER_AVAILABLE:
            return None
        preload = ["dbt.cli.main", *(f"dbt.adapters.{adapter}" for adapter in sorted(adapters))]
        directory = self.run_dir / WORKER_DIR
        directory.mkdir(parents=True, exist_ok=True)
        return ForkServer(preload, dbt_environ(os.environ), directory / FORKSERVER_LOG)

    def _execute(self) -> None:
        projects = self._projects()
        try:
            parse_id, worker, project = self._start_workers(projects)
            the_plan = self._parse(parse_id, worker, project, projects)
            self._schedule(the_plan, projects)
        except BaseException:
            for worker in self.workers.values():  # interrupted, or floe failed: no waiting
                worker.kill()
            raise
        finally:
            clock = time.monotonic()
            self._stop_workers()
            self.report.phases["shutdown"] = time.monotonic() - clock

    def _start_workers(self, projects: dict[str, Path]) -> tuple[int, _Worker, Path]:
        """Start a worker per compute, each parsing its compute's project at once, in parallel.

        The worker's builds reuse that parse. A worker whose engine names an extension starts it
        first (Spark's starts its SparkSession in the background). The parse of a forked worker
        gives the graph (it has dbt imported; a fresh one is busy starting what its engine needs);
        every compute's project holds the whole dbt project, so any will do.
        """
        clock = time.monotonic()
        parses: dict[str, tuple[int, _Worker, Path]] = {}
        for compute, project in projects.items():
            worker = self._worker(compute)
            setup = self.setups[compute]
            if setup.extension is not None:
                worker.send({"id": next(self.ids), "op": "extension", "module": setup.extension,
                             "settings": dict(setup.settings)})  # fmt: skip
            request_id = next(self.ids)
            worker.send({"id": request_id, "op": "parse", "args": self._dbt_args(project)})
            parses[compute] = (request_id, worker, project)
        self.report.phases["workers_start"] = time.monotonic() - clock
        chosen = next((c for c in parses if self.setups[c].forkable), next(iter(parses)))
        return parses[chosen]

    def _parse(self, request_id: int, worker: _Worker, project: Path, projects: dict[str, Path]) -> Plan:
        clock = time.monotonic()
        while True:
            sender, message = self.messages.get()
            if message.get("type") == "exit":
                sender.alive = False
            if sender is not worker:
                continue
            if message["type"] == "exit":
                raise FloeError([Problem(f"dbt could not parse the project: the process for compute "
                                         f"{worker.compute!r} stopped (exit code {message['code']}):\n"
                                         + redact(worker.tail(), self.secrets),
                                         fix=f"see {worker.log}")])  # fmt: skip
            if message["type"] == "result" and message.get("id") == request_id:
                break
        self.report.phases["parse"] = time.monotonic() - clock
        if not message.get("success"):
            raise FloeError([Problem("dbt could not parse the project:\n"
                                     + redact(str(message.get("error")), self.secrets),
                                     fix=f"fix the dbt project; dbt's log: {project / 'logs' / 'dbt.log'}")])  # fmt: skip
        nodes = [Node.from_json(n) for n in message["nodes"]]
        the_plan = plan(nodes, self.inputs, str(message.get("project")))
        selected = {t.name for t in self.selected}
        for planned in the_plan.transforms:
            if planned.name not in selected:
                continue
            compute = self.compiled.governance.compute_for(planned.compute, self.env)
            self.report.transforms.append(TransformReport(
                planned.name, planned.path, planned.compute, compute.engine,
                list(planned.upstream), [n.unique_id for n in planned.nodes], planned.tests,
                log=str(projects[planned.compute] / "logs" / "dbt.log"),
            ))  # fmt: skip
        self.report.unassigned = [n.unique_id for n in the_plan.unassigned]
        order = " → ".join(f"{t.name} ({t.compute})" for t in self.report.transforms)
        self.progress.line(f"parsed the dbt project in {self.report.phases['parse']:.1f}s: {order}")
        if the_plan.unassigned:
            self.progress.line(f"note: {len(the_plan.unassigned)} node(s) lie outside every transform path and "
                               "no transform needs them; not built: "
                               + ", ".join(n.name for n in the_plan.unassigned))  # fmt: skip
        return the_plan

    def _await_catalog(self) -> None:
        """Wait for the catalog to serve; if it took another port, rewrite the run profiles."""
        if self.starting is None:
            return
        clock = time.monotonic()
        catalog = self.starting.ready()
        self.starting = None
        self.report.phases["catalog_wait"] = time.monotonic() - clock
        if catalog != self.catalog:
            self.catalog = catalog
            self.report.catalog["uri"] = catalog.uri
            self._profiles()
            self._projects()

    def _schedule(self, the_plan: Plan, projects: dict[str, Path]) -> None:
        self._await_catalog()
        reports = {t.name: t for t in self.report.transforms}
        limit = self.options.parallel or len(reports) or 1
        running: dict[int, list[str]] = {}
        while True:
            for transform in self.report.transforms:
                busy = sum(len(names) for names in running.values())
                if busy >= limit:
                    break
                if transform.status != "pending":
                    continue
                upstream = [reports[u] for u in transform.depends_on if u in reports]
                if any(u.status in (FAILED, SKIPPED) for u in upstream):
                    continue  # marked skipped when the failure was seen
                if not all(u.status == SUCCESS for u in upstream):
                    continue
                worker = self._worker(transform.compute)
                if worker.busy is not None:
                    continue
                batch = self._batch(transform, the_plan, reports, limit - busy)
                self._start(batch, the_plan, worker, projects, running)
            if not running:
                break
            sender, message = self.messages.get()
            self._handle(sender, message, running, reports, the_plan)
        for transform in self.report.transforms:
            if transform.status == "pending":  # pragma: no cover - every pending one is started or skipped
                transform.status, transform.message = SKIPPED, "not started"

    def _batch(self, first: TransformReport, the_plan: Plan, reports: dict[str, TransformReport],
               room: int) -> list[TransformReport]:  # fmt: skip
        """``first`` and the transforms one ``dbt build`` on its worker can build with it.

        Every dbt invocation pays dbt's start (flags, project, profile, adapter, relation cache),
        and one transform at a time leaves dbt's threads idle; one invocation of several
        transforms pays it once and runs their independent models at once. So the worker builds
        together the transforms of its compute that are ready, and those whose upstream
        transforms are ready or in the batch when dbt itself skips them as floe would
        (:meth:`Plan.chains`). A transform that a transform on another compute waits for runs
        alone: it reports as soon as it finished.
        """
        if not self._batchable(first, the_plan, reports):
            return [first]
        batch, names = [first], {first.name}
        for transform in self.report.transforms:  # plan order: upstream transforms come first
            if len(batch) >= room:
                break
            if transform.status != "pending" or transform.name in names or transform.compute != first.compute:
                continue
            if not self._batchable(transform, the_plan, reports):
                continue
            upstream = [u for u in transform.depends_on if u in reports]
            if not all(u in names or reports[u].status == SUCCESS for u in upstream):
                continue
            if all(the_plan.chains(u, transform.name) for u in upstream if u in names):
                batch.append(transform)
                names.add(transform.name)
        return batch

    @staticmethod
    def _batchable(transform: TransformReport, the_plan: Plan, reports: dict[str, TransformReport]) -> bool:
        if not the_plan.get(transform.name).nodes:
            return False
        return all(other.compute == transform.compute for other in reports.values()
                   if transform.name in other.depends_on)  # fmt: skip

    def _start(self, batch: list[TransformReport], the_plan: Plan, worker: _Worker,
               projects: dict[str, Path], running: dict[int, list[str]]) -> None:  # fmt: skip
        now = time.time()
        runnable = []
        for transform in batch:
            transform.started_at = now
            transform.status = "running"
            self.progress.transform_started(transform)
            if the_plan.get(transform.name).nodes:
                runnable.append(transform)
                continue
            transform.finished_at = time.time()
            transform.status, transform.message = SUCCESS, "no models in this transform's path"
            self.progress.transform_finished(transform)
        if not runnable:
            return
        request_id = next(self.ids)
        selectors = [s for t in runnable for s in the_plan.get(t.name).selectors]
        # dbt's manifest.json is the parse's; run_results.json would hold one batch: floe's report has all
        args = [*self._dbt_args(projects[runnable[0].compute]), "--no-write-json", "--select", *selectors,
                "--indirect-selection", "buildable"]  # fmt: skip
        if worker.send({"id": request_id, "op": "build", "args": args}):
            worker.busy = runnable[0].name
            running[request_id] = [t.name for t in runnable]
            self.node_times[request_id] = {}
            return
        for transform in runnable:
            self._finish(transform, False, [], f"the dbt process of compute {worker.compute!r} is not running:\n"
                         + worker.tail(), the_plan)  # fmt: skip

    def _handle(self, worker: _Worker, message: dict[str, Any], running: dict[int, list[str]],
                reports: dict[str, TransformReport], the_plan: Plan) -> None:  # fmt: skip
        compute = worker.compute
        kind = message.get("type")
        request_id = int(message.get("id") or 0)
        if kind == "node":
            names = running.get(request_id)
            if names is None:
                return
            name = self._owner(str(message["unique_id"]), names, the_plan)
            span = self.node_times[request_id].setdefault(name, [time.time(), time.time()])
            span[1] = time.time()
            if message.get("event") == "finish":
                self.progress.node_finished(name, NodeResult(
                    str(message["unique_id"]), str(message["name"]), str(message["resource_type"]),
                    str(message["status"]), float(message.get("seconds") or 0.0)))  # fmt: skip
        elif kind == "result":
            names = running.pop(request_id, None)
            if names is None:
                return
            worker.busy = None
            times = self.node_times.pop(request_id, {})
            results: dict[str, list[NodeResult]] = {name: [] for name in names}
            for r in message.get("results") or []:
                results[self._owner(r["unique_id"], names, the_plan)].append(NodeResult(
                    r["unique_id"], r["name"], r["resource_type"], r["status"], r["seconds"],
                    redact(r.get("message") or "", self.secrets), self._relation(r)))  # fmt: skip
            error = message.get("error") or ""
            success = bool(message.get("success"))
            for position, name in enumerate(names):
                transform = reports[name]
                failed = [u for u in transform.depends_on if u in names and reports[u].status != SUCCESS]
                if failed:  # dbt skipped it, as Plan.chains made sure
                    self._skip(transform, failed[0])
                    continue
                own = results[name]
                ok = success if len(names) == 1 else (
                    (success or bool(own)) and not any(r.status == SKIPPED for r in own))  # fmt: skip
                if position and name in times:  # built with the batch: started when its nodes did
                    transform.started_at = times[name][0]
                self._finish(transform, ok, own, error, the_plan, times.get(name, [0.0, 0.0])[1] or None)
        elif kind == "exit":
            worker.alive = False
            for request_id, names in list(running.items()):
                if worker.busy in names:
                    del running[request_id]
                    worker.busy = None
                    for name in names:
                        self._finish(reports[name], False, [],
                                     f"the dbt process of compute {compute!r} stopped unexpectedly ({_exit_code(message)}); "
                                     f"its last output ({worker.log}):\n" + worker.tail(),
                                     the_plan)  # fmt: skip

    @staticmethod
    def _owner(unique_id: str, names: list[str], the_plan: Plan) -> str:
        """The transform of the batch ``names`` a node's result belongs to."""
        owner = the_plan.owners.get(unique_id)
        return owner if owner in names else names[-1]

    def _skip(self, transform: TransformReport, upstream: str) -> None:
        transform.finished_at = time.time()
        transform.status = SKIPPED
        transform.message = f"not run: upstream transform {upstream!r} failed"
        self.progress.line(f"[{transform.name}] SKIPPED: upstream transform {upstream!r} failed")

    def _relation(self, result: dict[str, Any]) -> str | None:
        """``<catalog>.<namespace>.<table>``: the same Iceberg table whichever engine built it."""
        if result.get("resource_type") not in BUILDABLE or not result.get("alias"):
            return None
        if result.get("materialized") == "ephemeral":
            return None
        return f"{self.catalog.name}.{result.get('schema')}.{result.get('alias')}"

    def _finish(self, transform: TransformReport, success: bool, results: list[NodeResult], error: str,
                the_plan: Plan, finished_at: float | None = None) -> None:  # fmt: skip
        transform.finished_at = finished_at or time.time()
        transform.results = results
        failed = [r for r in results if r.status in NODE_FAILURES]
        if success and not failed:
            transform.status = SUCCESS
        else:
            transform.status = FAILED
            lines = [f"{r.resource_type} {r.name}: {r.message}" for r in failed] or [error or "dbt build failed"]
            transform.message = redact("\n".join(lines), self.secrets)
        self.progress.transform_finished(transform)
        if transform.status == SUCCESS:
            return
        for name in the_plan.downstream(transform.name):
            other = next((t for t in self.report.transforms if t.name == name), None)
            if other is not None and other.status == "pending":
                self._skip(other, transform.name)

    def _stop_workers(self) -> None:
        workers = list(self.workers.values())
        for worker in workers:
            worker.ask_to_exit()
        for worker in workers:
            worker.finish(STOP_TIMEOUT)
