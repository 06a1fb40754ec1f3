"""The process that runs dbt for one compute of a ``floe run``: forked by :mod:`floe.run.forkserver`
with dbt imported, or started as ``python -m floe.run.worker FD`` (Spark's, or where there is no fork
server).

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
parse or build, so that a Spark worker's ``warm`` starts Java first:

- ``{"id": 1, "op": "parse", "args": [...]}`` → ``{"type": "result", "id": 1, "success": …,
  "project": name, "nodes": [...], "error": …}``;
- ``{"id": 2, "op": "build", "args": [...]}`` → ``{"type": "node", "id": 2, "event": "start"|"finish",
  …}`` as dbt goes, then ``{"type": "result", "id": 2, "success": …, "results": [...], "error": …}``;
- ``{"id": 3, "op": "warm", "spark_conf": {...}, "catalog": name}`` (Spark only) →
  ``{"type": "result", "id": 3, "success": true}`` at once: a background thread starts the
  SparkSession dbt-spark will build (the same builder, the same confs, placeholders filled from the
  environment as dbt fills them) and loads the catalog, so that Java's start overlaps the parse
  and the transforms upstream; dbt-spark's ``getOrCreate`` then finds the session ready;
- ``{"op": "exit"}``: stop Spark (if it runs) and exit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from floe.connection_check import first_lines

Send = Callable[[dict[str, Any]], None]
MESSAGE_LINES = 12
"""Lines of a failed node's message passed on (dbt's messages can be long)."""


PARENT_POLL_S = 0.2


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

    The loop of a fresh worker (:func:`main`) and of one forked by :mod:`floe.run.forkserver`.
    """
    _exit_with_parent()
    channel = os.fdopen(answers, "w", encoding="utf-8", buffering=1)
    send = _sender(channel)
    try:
        for line in requests:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            send({"type": "result", "id": request.get("id"), **_answer(request, send)})
    finally:
        _stop_spark()
        _close_connections()
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
            return _parse(list(request["args"]))
        if request["op"] == "build":
            return _build(int(request["id"]), list(request["args"]), send)
        if request["op"] == "warm":
            return _warm_spark(dict(request["spark_conf"]), str(request["catalog"]))
        return {"success": False, "error": f"unknown operation {request['op']!r}"}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return {"success": False, "error": f"{type(exc).__name__}: {exc}"}


MANIFESTS: dict[str, Any] = {}
"""The manifest of each project this worker parsed: its builds reuse it instead of parsing again."""


def _project(args: list[str]) -> str:
    return args[args.index("--project-dir") + 1] if "--project-dir" in args else ""


def _parse(args: list[str]) -> dict[str, Any]:
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
        nodes.append({
            "unique_id": node.unique_id, "resource_type": str(node.resource_type),
            "package_name": node.package_name, "name": node.name,
            "original_file_path": node.original_file_path, "fqn": list(node.fqn),
            "depends_on": list(getattr(depends, "nodes", []) or []),
            "materialized": getattr(config, "materialized", None),
        })  # fmt: skip
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
        send({"type": "node", "id": request_id, "event": "start" if name == "NodeStart" else "finish",
              "unique_id": info.unique_id, "name": info.node_name, "resource_type": info.resource_type,
              "status": info.node_status, "seconds": getattr(result, "execution_time", None)})  # fmt: skip

    manifest = MANIFESTS.get(_project(args))
    result = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(["build", *args])
    executed = getattr(result.result, "results", None)
    results = []
    for item in executed or []:
        node = item.node
        results.append({
            "unique_id": node.unique_id, "name": node.name, "resource_type": str(node.resource_type),
            "status": str(getattr(item.status, "value", item.status)),
            "seconds": round(float(item.execution_time or 0.0), 3),
            "message": first_lines(str(item.message or ""), MESSAGE_LINES),
            "schema": getattr(node, "schema", None), "alias": getattr(node, "alias", None),
            "materialized": getattr(getattr(node, "config", None), "materialized", None),
        })  # fmt: skip
    error = _error_text(result.exception)
    if error is None and not result.success:
        from floe.run.report import NODE_FAILURES

        failed = [r for r in results if r["status"] in NODE_FAILURES]
        error = failed[0]["message"] if failed else "dbt build failed"
    return {"success": bool(result.success), "results": results, "error": error}


def _warm_spark(conf: dict[str, str], catalog: str) -> dict[str, Any]:
    from floe.sqlsecrets import PLACEHOLDER

    rendered = {}
    for key, value in conf.items():
        names = [m["name"] for m in PLACEHOLDER.finditer(str(value))]
        if any(not os.environ.get(n) for n in names):
            return {"success": False, "error": "a secret the Spark conf references is not set"}
        rendered[key] = PLACEHOLDER.sub(lambda m: os.environ[m["name"]], str(value))

    def warm() -> None:
        started = time.monotonic()
        try:
            from pyspark.sql import SparkSession

            builder = SparkSession.builder.enableHiveSupport()  # exactly as dbt-spark's session method
            for key, value in rendered.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
            session.sql(f"SHOW NAMESPACES IN `{catalog}`").collect()
            print(f"floe: Spark warmed up in {time.monotonic() - started:.1f}s", flush=True)
        except Exception as exc:  # noqa: BLE001 - dbt-spark reports the same problem, in its words
            print(f"floe: warming Spark up failed: {type(exc).__name__}", flush=True)

    threading.Thread(target=warm, name="floe-spark-warm-up", daemon=True).start()
    return {"success": True}


def _error_text(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return first_lines(f"{type(exc).__name__}: {exc}", MESSAGE_LINES)


def _close_connections() -> None:
    """Close dbt's connections; dbt-duckdb's database too (its file lock, its write-ahead log)."""
    if "dbt.adapters.factory" not in sys.modules:
        return
    try:
        from dbt.adapters.factory import cleanup_connections

        cleanup_connections()  # type: ignore[no-untyped-call]
        duckdb = sys.modules.get("dbt.adapters.duckdb.connections")
        manager = getattr(duckdb, "DuckDBConnectionManager", None)
        environment = getattr(manager, "_ENV", None)
        if environment is not None:
            environment.close()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


def _stop_spark() -> None:
    """Stop the SparkContext dbt-spark started here (its JVM exits with this process's pipe)."""
    if "pyspark" not in sys.modules:
        return
    try:
        from pyspark import SparkContext

        context = SparkContext._active_spark_context
        if context is not None:
            context.stop()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


if __name__ == "__main__":  # pragma: no cover - run as a process
    exit_now(main(sys.argv))
