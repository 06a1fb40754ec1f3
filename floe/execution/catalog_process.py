"""The embedded catalog of a run, served by a process of its own.

``floe run`` serves its embedded Iceberg REST catalog (:class:`floe.catalog.rest_server.EmbeddedCatalog`)
from a child process rather than a thread of its own, so that:

- the catalog's requests never wait for floe's own Python (the scheduler, the bridges' Arrow
  work, the lineage events) and floe's process stays small (pyiceberg, SQLAlchemy and pydantic
  live in the catalog's process);
- the catalog can fail on its own, as a production catalog does, and the run says so: which
  process, how it ended (:func:`floe.execution.lifeline.ended`), and which builds it took along.

``python -m floe.execution.catalog_process STATE_DIR NAME PORT PARENT_PID [NAMESPACE]``: reads the
run's token from the first line of its standard input (never from its arguments or environment,
which other users' processes can see: ``ps``), serves the catalog on 127.0.0.1 (``PORT``, or any
free port when that one is taken) with that token required, creates ``NAMESPACE`` if given, and
writes one JSON line to its standard output: ``{"ready": uri}`` (or ``{"error": message}``). Then
it answers JSON requests, one per line of standard input, on standard output:

- ``{"op": "maintain", "policy": {...}}`` → ``{"maintained": {...}}``: the catalog's retention
  (:func:`floe.catalog.retention.maintain`), run by ``floe run`` at its end, under its run lock;
- ``{"op": "namespace", "name": …}`` → ``{"namespace": true|false}``: creates a namespace (a warm
  host's catalog serves runs of several environments, :mod:`floe.execution.warm_host`);

and exits when its standard input ends (``floe run`` closed it, or died) or with ``floe run``
(:func:`~floe.execution.lifeline.die_with`). Its log (stderr) goes to a file floe names.

:class:`CatalogProcess` is ``floe run``'s end. Importing this module imports no pyiceberg.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from floe.artifacts import PRIVATE_UMASK, open_private
from floe.execution.lifeline import ended

READY_TIMEOUT = 120.0
"""Seconds the catalog may take to start (pyiceberg's import on a loaded machine, SQLite)."""
LOG_TAIL_LINES = 15


class CatalogProcessError(Exception):
    """The catalog's process could not start, or ended before it answered."""


class CatalogProcess:
    """The process serving a run's embedded catalog (see the module docstring). It starts at once.

    :param log: where the process's own output goes.
    :param environ: its environment (floe importable; no secret is needed there).
    """

    def __init__(
        self,
        state_dir: Path,
        name: str,
        port: int,
        token: str,
        log: Path,
        environ: Mapping[str, str],
        namespace: str | None = None,
    ) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", __name__, str(state_dir), name, str(port), str(os.getpid())]
        with open_private(log) as out:
            self.process = subprocess.Popen(
                [*command, *([namespace] if namespace else [])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                env=dict(environ),
                cwd=state_dir.parent,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        self.stopping = False
        """Set by :meth:`stop`: the process's end from then on is no failure."""
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        assert self.process.stdin is not None and self.process.stdout is not None
        self._send(self.process.stdin, token)
        self._reader = threading.Thread(
            target=self._read, args=(self.process.stdout,), name="floe-run-catalog-process", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _send(self, stdin: IO[str], line: str) -> bool:
        with self._lock:
            try:
                stdin.write(line + "\n")
                stdin.flush()
            except (OSError, ValueError):
                return False
        return True

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            with contextlib.suppress(ValueError):
                answer = json.loads(line)
                if isinstance(answer, dict):
                    self._answers.put(answer)
        self.process.wait()
        self._answers.put(None)  # the end: whoever waits for an answer gets none

    def ready(self, timeout: float = READY_TIMEOUT) -> str:
        """The catalog's URI once it serves.

        :raises CatalogProcessError: it could not start, or ended first (how, and its log's last lines).
        """
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise CatalogProcessError(
                f"it did not answer within {timeout:g} s; its log ({self.log}):\n" + self.tail()
            ) from None
        if answer is None:
            raise CatalogProcessError(
                f"its process (pid {self.pid}) ended first ({ended(self.process.poll())}); "
                f"its log ({self.log}):\n" + self.tail()
            )
        if "error" in answer:
            raise CatalogProcessError(str(answer["error"]))
        return str(answer["ready"])

    def request(self, request: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one request; its answer, or ``None`` when the process is gone or did not answer."""
        stdin = self.process.stdin
        if stdin is None or self.process.poll() is not None or not self._send(stdin, json.dumps(request)):
            return None
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def returncode(self) -> int | None:
        """How the process ended (``subprocess``'s code), ``None`` while it runs."""
        return self.process.poll()

    def stop(self, timeout: float) -> None:
        """End the process: its standard input closes, it stops serving and exits (killed if it
        does not within ``timeout`` seconds)."""
        self.stopping = True
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


# -- the process -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    from floe.execution.lifeline import die_with, note

    die_with(int(argv[4]))
    state_dir, name, port = Path(argv[1]), argv[2], int(argv[3])
    namespace = argv[5] if len(argv) > 5 else None
    token = sys.stdin.readline().rstrip("\n")

    def reply(answer: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    if not token:
        reply({"error": "no token on standard input"})
        return 2
    try:
        from floe.catalog.rest_server import EmbeddedCatalog

        catalog = EmbeddedCatalog(state_dir, name, port=port, token=token)
        try:
            catalog.start()
        except OSError:  # the port was taken since floe chose it: any port will do
            catalog = EmbeddedCatalog(state_dir, name, port=0, token=token).start()
    except Exception as exc:  # noqa: BLE001 - pyiceberg missing, a read-only disk, a corrupt file…
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    try:
        if namespace is not None:
            with contextlib.suppress(Exception):  # no right to, a full disk…: dbt's own attempt says why
                catalog.create_namespace(namespace)
        reply({"ready": catalog.uri})
        note(f"floe: embedded catalog {name!r} serving at {catalog.uri} (pid {os.getpid()})", "stderr")
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("op") == "maintain":
                from floe.catalog.retention import RetentionPolicy

                done = catalog.maintain(RetentionPolicy.from_json(request.get("policy") or {}))
                reply({"maintained": done.to_json()})
            elif request.get("op") == "namespace":  # a warm host's catalog, for a run of another environment
                try:
                    catalog.create_namespace(str(request["name"]))
                except Exception as exc:  # noqa: BLE001 - it exists, or dbt's own attempt says why
                    reply({"namespace": False, "error": type(exc).__name__})
                else:
                    reply({"namespace": True})
            else:
                reply({"error": f"unknown operation {request.get('op')!r}"})
    finally:
        catalog.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    from floe.execution.worker import exit_now

    exit_now(main(sys.argv))
