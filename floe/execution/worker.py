"""The process that runs dbt for one compute of a ``floe run``: forked by :mod:`floe.execution.forkserver`
with dbt imported, or started as ``python -m floe.execution.worker FD`` (when the engine refuses the
fork, or where there is no fork server).

dbt cannot run twice at once in one process: ``dbtRunner`` sets process-wide flags, event logging
and adapter state (``set_flags``, ``setup_event_logger``, the adapter factory), dbt-duckdb keeps one
database environment per process (closing another transform's when its credentials differ), and
pyspark one SparkContext (whose static confs, such as the catalog's, are fixed when it starts).
So ``floe run`` starts one worker per compute and runs the transforms of different computes in
different workers at once; a worker runs its compute's builds one after another (a build may hold
several transforms), in-process, paying the project's parse and Spark's start once per compute
(dbt's import, ~1.6 s, once per run where the fork server forks the workers): a build reuses the
manifest the worker's parse of the same project produced. At the end the worker closes dbt's
connections and exits without Python's slow shutdown (:func:`exit_now`).

Protocol: requests are JSON lines on stdin, answers JSON lines on the file descriptor ``FD``
(stdout and stderr, where dbt prints, go to the worker's log file). dbt is imported by the first
parse or build, so that an engine's extension starts first:

- ``{"id": 1, "op": "parse", "args": [...]}`` → ``{"type": "result", "id": 1, "success": …,
  "project": name, "nodes": [...], "error": …}``;
- ``{"id": 2, "op": "build", "args": [...]}`` → ``{"type": "node", "id": 2, "event": "start"|"finish",
  …}`` as dbt goes, then ``{"type": "result", "id": 2, "success": …, "results": [...], "error": …}``;
- ``{"id": 3, "op": "extension", "module": name, "settings": {...}}`` → ``{"type": "result",
  "id": 3, "success": …}``: imports the engine's worker extension (``WorkerSetup.extension``) and
  calls its ``start(settings)``, which returns at once (it may start work in a thread: Spark's
  session starts while dbt parses); its ``stop()`` runs at the exit. With ``"wait": true`` the
  answer waits for that work too (the extension's ``started()``, if it has one);
- ``{"op": "exit"}``: close dbt's connections, stop the extensions, and exit.

A warm worker (:mod:`floe.execution.warm_host`) serves one run after another. Its host starts it
with an environment that holds none of the runs' secrets, and each run leases it:

- ``{"id": N, "op": "lease", "env": {...}, "log": path, "cwd": path}`` → ``{"type": "result",
  "id": N, "success": true}``: this run's environment (secrets included) replaces the worker's,
  its output goes to this run's ``log`` (``dup2`` onto file descriptors 1 and 2);
- ``{"id": N, "op": "release", "log": path}`` → ``{"type": "result", "id": N, "success": …}``: dbt's
  connections close, the extensions' ``release()`` runs (DuckDB closes its database: its file
  lock, the secrets it was given), dbt's adapters are dropped (their credentials with them), the
  environment is put back as the host started it and the output goes to ``log`` (the host's), so
  no secret outlives the run that needed it. An extension is started once per worker: a second
  ``extension`` request for it is answered at once.

This module names no engine: what an engine needs in its worker is its extension's.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import IO, Any

from floe.connection_check import first_lines
from floe.execution.lifeline import note

Send = Callable[[dict[str, Any]], None]
MESSAGE_LINES = 12
"""Lines of a failed node's message passed on (dbt's messages can be long)."""


PARENT_POLL_S = 0.2


START_ENVIRON: dict[str, str] = {}
"""The environment the worker started with (a warm worker's, free of the runs' secrets): put back
when a run releases it."""


def _lease(request: dict[str, Any]) -> dict[str, Any]:
    """A warm worker's ``lease`` or ``release`` (see the module docstring)."""
    try:
        if request["op"] == "lease":
            _start_helpers()
            _redirect(str(request["log"]))
            os.chdir(str(request["cwd"]))
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
            note(f"floe: warm worker {os.getpid()} leased to a run")
            return {"success": True}
        _close_connections()
        failures = _call_extensions("release")
        _drop_adapters()
        os.environ.clear()
        os.environ.update(START_ENVIRON)
        if "dbt_common.context" in sys.modules:  # dbt's copy of the run's environment, for env_var()
            from dbt_common.context import set_invocation_context

            set_invocation_context(START_ENVIRON)
        note(f"floe: warm worker {os.getpid()} released")
        _redirect(str(request.get("log") or os.devnull))
        return {"success": not failures, "error": "; ".join(failures) or None}
    except Exception as exc:  # noqa: BLE001 - the run then stops this worker
        return {"success": False, "error": f"{type(exc).__name__}: {exc}"}


def _start_helpers() -> None:
    """Start, before a run's environment is here, the helper processes dbt would start during the
    run and keep for the worker's life: multiprocessing's resource tracker (dbt's locks), which
    would otherwise hold the first run's secrets in its environment as long as the worker lives."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def _redirect(log: str) -> None:
    """Send this process's output (dbt's, the extensions') to ``log`` from now on."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _drop_adapters() -> None:
    """Forget dbt's adapters (and the credentials their configs hold); the next run registers anew."""
    if "dbt.adapters.factory" not in sys.modules:
        return
    with contextlib.suppress(Exception):
        from dbt.adapters.factory import reset_adapters

        reset_adapters()  # type: ignore[no-untyped-call]


def _exit_with_parent() -> None:
    """Die, with whatever dbt started here, as soon as ``floe run`` dies (``kill -9``, OOM killer).

    The worker leads a session of its own, so a kill of the run's process group misses it; an
    orphan would go on building against a dead catalog, holding the DuckDB file the next run
    needs, or commit stale rows through the next run's catalog on the same port.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        if os.getpgrp() == os.getpid():  # the group is this worker's own: Spark's JVM goes too
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="floe-run-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    return serve(int(argv[1]), sys.stdin)


def serve(answers: int, requests: IO[str]) -> int:
    """Answer ``requests`` (JSON lines) on file descriptor ``answers`` until asked to exit.

    The loop of a fresh worker (:func:`main`) and of one forked by :mod:`floe.execution.forkserver`.
    """
    _exit_with_parent()
    START_ENVIRON.clear()
    START_ENVIRON.update(os.environ)
    channel = os.fdopen(answers, "w", encoding="utf-8", buffering=1)
    send = _sender(channel)
    try:
        for line in requests:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            if request.get("op") in ("lease", "release"):
                send({"type": "result", "id": request.get("id"), **_lease(request)})
                continue
            send({"type": "result", "id": request.get("id"), **_answer(request, send)})
    finally:
        _close_connections()
        _stop_extensions()
        channel.close()
    return 0


def exit_now(code: int) -> None:
    """Exit at once, skipping Python's shutdown: the connections are closed and the logs flushed.

    Python's own shutdown of a process that imported dbt and an adapter takes about a second
    (module teardown, executor and finaliser hooks), and ``floe run`` waits for its workers before
    it releases the run. dbt's semaphores are unlinked as multiprocessing would at exit.
    """
    import logging

    if "multiprocessing.util" in sys.modules:  # dbt's locks: their semaphores are unlinked here
        try:
            sys.modules["multiprocessing.util"]._exit_function()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _sender(channel: IO[str]) -> Send:
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        text = json.dumps(message, default=str)
        with lock:
            channel.write(text + "\n")
            channel.flush()

    return send


def _answer(request: dict[str, Any], send: Send) -> dict[str, Any]:
    try:
        if request["op"] == "parse":
            return parse(list(request["args"]))
        if request["op"] == "build":
            return _build(int(request["id"]), list(request["args"]), send)
        if request["op"] == "extension":
            settings = dict(request.get("settings") or {})
            return _start_extension(str(request["module"]), settings, bool(request.get("wait")))
        return {"success": False, "error": f"unknown operation {request['op']!r}"}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return {"success": False, "error": f"{type(exc).__name__}: {exc}"}


MANIFESTS: dict[str, Any] = {}
"""The manifest of each project this worker parsed: its builds reuse it instead of parsing again."""


def _project(args: list[str]) -> str:
    return args[args.index("--project-dir") + 1] if "--project-dir" in args else ""


def parse(args: list[str]) -> dict[str, Any]:
    """dbt's parse of the project ``args`` name: the nodes floe plans with (kept for the builds)."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(["parse", *args])
    manifest: Any = result.result
    if not result.success or manifest is None or not hasattr(manifest, "nodes"):
        return {"success": False, "error": _error_text(result.exception) or "dbt parse failed"}
    MANIFESTS[_project(args)] = manifest
    nodes = []
    node: Any
    for node in manifest.nodes.values():
        config = getattr(node, "config", None)
        depends = getattr(node, "depends_on", None)
        nodes.append(
            {
                "unique_id": node.unique_id,
                "resource_type": str(node.resource_type),
                "package_name": node.package_name,
                "name": node.name,
                "original_file_path": node.original_file_path,
                "fqn": list(node.fqn),
                "depends_on": list(getattr(depends, "nodes", []) or []),
                "materialized": getattr(config, "materialized", None),
                "database": getattr(node, "database", None),
                "schema": getattr(node, "schema", None),
                "alias": getattr(node, "alias", None),
            }
        )
    project = getattr(manifest.metadata, "project_name", None)
    return {"success": True, "project": project, "nodes": nodes}


def _build(request_id: int, args: list[str], send: Send) -> dict[str, Any]:
    from dbt.cli.main import dbtRunner

    def on_event(event: Any) -> None:
        name = event.info.name
        if name not in ("NodeStart", "NodeFinished"):
            return
        info = event.data.node_info
        result = getattr(event.data, "run_result", None)
        send(
            {
                "type": "node",
                "id": request_id,
                "event": "start" if name == "NodeStart" else "finish",
                "unique_id": info.unique_id,
                "name": info.node_name,
                "resource_type": info.resource_type,
                "status": info.node_status,
                "seconds": getattr(result, "execution_time", None),
            }
        )

    manifest = MANIFESTS.get(_project(args))
    result = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(["build", *args])
    executed = getattr(result.result, "results", None)
    results = []
    for item in executed or []:
        node = item.node
        config = getattr(node, "config", None)
        results.append(
            {
                **_lineage_details(node, manifest),
                "unique_id": node.unique_id,
                "name": node.name,
                "resource_type": str(node.resource_type),
                "status": str(getattr(item.status, "value", item.status)),
                "seconds": round(float(item.execution_time or 0.0), 3),
                "message": first_lines(str(item.message or ""), MESSAGE_LINES),
                "database": getattr(node, "database", None),
                "schema": getattr(node, "schema", None),
                "alias": getattr(node, "alias", None),
                "materialized": getattr(config, "materialized", None),
            }
        )
    error = _error_text(result.exception)
    if error is None and not result.success:
        from floe.execution.report import NODE_FAILURES

        failed = [r for r in results if r["status"] in NODE_FAILURES]
        error = failed[0]["message"] if failed else "dbt build failed"
    return {"success": bool(result.success), "results": results, "error": error}


def _lineage_details(node: Any, manifest: Any) -> dict[str, Any]:
    """What lineage needs of a built node beyond its result: the SQL dbt ran, the columns the
    project declares, and the relation of each node or source it reads (from the parse's manifest)."""
    parents = []
    for unique_id in getattr(getattr(node, "depends_on", None), "nodes", None) or []:
        parent = None
        if manifest is not None:
            parent = manifest.nodes.get(unique_id) or manifest.sources.get(unique_id)
        parents.append(
            {
                "unique_id": unique_id,
                "database": getattr(parent, "database", None),
                "schema": getattr(parent, "schema", None),
                "identifier": getattr(parent, "identifier", None) or getattr(parent, "alias", None),
            }
        )
    columns = [
        {
            "name": str(name),
            "data_type": getattr(column, "data_type", None),
            "description": getattr(column, "description", None) or None,
        }
        for name, column in (getattr(node, "columns", None) or {}).items()
    ]
    return {"sql": getattr(node, "compiled_code", None), "parents": parents, "columns": columns}


EXTENSIONS: list[ModuleType] = []
"""The engine extensions this worker started, stopped at its exit in reverse order."""


def _start_extension(name: str, settings: dict[str, Any], wait: bool = False) -> dict[str, Any]:
    """Start an engine's extension; with ``wait``, until what it starts in the background has
    started (its ``started()``): a warm worker's host asks so, so that what the extension starts
    (Spark's JVM) starts with the worker's own environment, before a run's secrets are there."""
    if any(module.__name__ == name for module in EXTENSIONS):  # a warm worker's: started already
        return {"success": True}
    module = importlib.import_module(name)
    start = getattr(module, "start", None)
    if start is not None:
        start(settings)
    EXTENSIONS.append(module)
    started = getattr(module, "started", None)
    if wait and started is not None:
        started()
    return {"success": True}


def _error_text(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return first_lines(f"{type(exc).__name__}: {exc}", MESSAGE_LINES)


def _close_connections() -> None:
    """Close dbt's connections (the engines' extensions close what their adapters keep open)."""
    if "dbt.adapters.factory" not in sys.modules:
        return
    try:
        from dbt.adapters.factory import cleanup_connections

        cleanup_connections()  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


def _stop_extensions() -> None:
    _call_extensions("stop")


def _call_extensions(hook: str) -> list[str]:
    """Call each extension's ``hook`` (``stop``, ``release``), last started first; what failed."""
    failures = []
    for module in reversed(EXTENSIONS):
        call = getattr(module, hook, None)
        if call is None:
            continue
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - best effort, said in the log
            failures.append(f"{module.__name__}.{hook}: {type(exc).__name__}")
            note(f"floe: {hook} of {module.__name__} failed: {type(exc).__name__}: {exc}")
    return failures


if __name__ == "__main__":  # pragma: no cover - run as a process
    exit_now(main(sys.argv))
