"""The dbt worker processes of a run, one per compute (see :mod:`floe.execution.worker` for why).

:class:`Workers` starts each compute's worker when it is first needed (again, if it died): forked
from the run's fork server (:mod:`floe.execution.forkserver`, which imported dbt and the adapters
once) when the compute's engine allows it, else as ``python -m floe.execution.worker``. Every
worker's answers arrive on one queue, as ``(worker, message)``, with an ``{"type": "exit"}``
message when its process ended. At the end the workers are asked to exit, and killed (their
whole process group) if they do not.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from floe.artifacts import PRIVATE_UMASK, open_private
from floe.execution.forkserver import AVAILABLE as FORKSERVER_AVAILABLE
from floe.execution.forkserver import ForkedProcess, ForkServer
from floe.execution.lifeline import OOM_HINT, ended, killed_by_sigkill
from floe.execution.profiles import dbt_environ, worker_environ
from floe.model import WorkerSetup

FORKSERVER_LOG = ".forkserver.log"
"""In the workers' folder, next to their logs (named after computes, which never start with a dot)."""
LOG_TAIL_LINES = 15
Message = tuple["Worker", dict[str, Any]]


@attrs.frozen
class Lease:
    """A warm worker a run leased from its product's warm host (:mod:`floe.execution.warm`)."""

    pid: int
    stdin: int
    """The write end of its requests (this process's copy, passed by the host)."""
    answers: int
    """The read end of its answers."""
    env: Mapping[str, str]
    """This run's environment for it, secrets included: sent with the lease, taken back at release."""
    host_log: Path
    """Where its output goes between runs."""
    exit_code: Callable[[], int | None]
    """Asks the host how it ended (it is the host's child, not this process's)."""


class LeasedProcess:
    """A leased warm worker, with the part of ``subprocess.Popen`` ``floe run`` uses."""

    def __init__(self, lease: Lease) -> None:
        self.pid: int | None = lease.pid
        self.stdin: IO[str] | None = open(lease.stdin, "w", encoding="utf-8")
        self.returncode: int | None = None
        self._exit_code = lease.exit_code

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pid is not None and _running(self.pid):
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("floe.execution.worker (warm)", timeout or 0.0)
            time.sleep(0.02)
        if self.returncode is None:
            self.returncode = self._exit_code()
        return self.returncode


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (not a zombie its parent, the warm host, has not reaped yet)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return text.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def exit_text(message: Mapping[str, Any]) -> str:
    """How a worker's process ended, from its ``exit`` message: its exit code, or the signal that
    killed it (with what SIGKILL, the out-of-memory killer's signal, may mean)."""
    code = message.get("code")
    if code is None:
        return "no exit code: its fork server stopped, or could not fork it"
    text = f"it was {ended(code)}" if code < 0 else ended(code)
    return f"{text}; {OOM_HINT}" if killed_by_sigkill(code) else text


def start_worker_process(answers: int, log: Path, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """A worker started as ``python -m floe.execution.worker FD`` (where it is not forked): its
    answers on file descriptor ``answers``, its output to ``log`` (private), in a session of its
    own, with the private umask. A run's workers and a warm host's are started alike."""
    with open_private(log) as out:
        return subprocess.Popen(
            [sys.executable, "-m", "floe.execution.worker", str(answers)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(answers,),
            cwd=cwd,
            env=dict(env),
            text=True,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )


class Worker:
    """One dbt worker process; its dbt runs one request (a parse, a build) at a time."""

    def __init__(
        self,
        compute: str,
        env: dict[str, str],
        directory: Path,
        messages: queue.Queue[Message],
        forkserver: ForkServer | None,
        lease: Lease | None = None,
    ) -> None:
        self.compute = compute
        self.alive = True
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory.with_suffix(".log")
        self.lease = lease
        self._handshake: str | None = None
        self._release: str | None = None
        self.released = threading.Event()
        self.process: subprocess.Popen[str] | ForkedProcess | LeasedProcess
        if lease is not None:
            self._adopt(lease, directory, messages)
            return
        read_fd, write_fd = os.pipe()
        try:
            if forkserver is not None:
                self.process = forkserver.spawn(write_fd, self.log, directory, env)
            else:
                self.process = start_worker_process(write_fd, self.log, directory, env)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._reader = threading.Thread(
            target=self._read, args=(read_fd, messages), name=f"floe-run-{compute}", daemon=True
        )
        self._reader.start()

    def _adopt(self, lease: Lease, directory: Path, messages: queue.Queue[Message]) -> None:
        """Take over a warm worker: this run's log and environment go with the lease request; what
        it answered before that (to an earlier run, to its host) is not this run's."""
        self.process = LeasedProcess(lease)
        self._handshake = "lease-" + secrets.token_hex(8)
        with open_private(self.log):  # created 0600 and emptied here; the worker appends
            pass
        self._reader = threading.Thread(
            target=self._read, args=(lease.answers, messages), name=f"floe-run-{self.compute}", daemon=True
        )
        self._reader.start()
        self.send(
            {
                "id": self._handshake,
                "op": "lease",
                "env": dict(lease.env),
                "log": str(self.log),
                "cwd": str(directory),
            }
        )

    def _read(self, fd: int, messages: queue.Queue[Message]) -> None:
        with os.fdopen(fd, encoding="utf-8") as replies:
            for line in replies:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if self._handshake is not None:  # a warm worker's answers before this run's lease
                    if message.get("type") == "result" and message.get("id") == self._handshake:
                        self._handshake = None
                    continue
                if self._release is not None and message.get("id") == self._release:
                    if message.get("success"):
                        self.released.set()
                    return  # the worker goes back to its host; its end is not this run's
                messages.put((self, message))
        messages.put((self, {"type": "exit", "code": self.process.wait()}))

    def release(self) -> None:
        """Give a warm worker back (see :mod:`floe.execution.worker`): it drops this run's secrets."""
        assert self.lease is not None
        self._release = "release-" + secrets.token_hex(8)
        self.send({"id": self._release, "op": "release", "log": str(self.lease.host_log)})

    def send(self, request: dict[str, Any]) -> bool:
        """Write ``request``; ``False`` when the worker is not there to read it."""
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
        if self.lease is not None:  # released: its answer, or it is stopped by its host
            self._reader.join(timeout=timeout)
            with contextlib.suppress(OSError, ValueError):
                if self.process.stdin is not None:
                    self.process.stdin.close()
            return
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
        """The last lines of the worker's log (dbt's output, the worker's own notes)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


class Workers:
    """The workers of one run, by compute, and the fork server they are forked from.

    :param directory: where each worker runs and logs (``<compute>/``, ``<compute>.log``).
    :param setups: how each compute's worker starts, as its engine said (``floe_run_worker``).
    :param environ: the environment the workers start from (default: this process's); the run's
        own secrets (the embedded catalog's token) are there, and nowhere else.
    """

    def __init__(
        self, directory: Path, setups: Mapping[str, WorkerSetup], environ: Mapping[str, str] | None = None
    ) -> None:
        self.directory = directory
        self.setups = setups
        self.environ = os.environ if environ is None else environ
        self.messages: queue.Queue[Message] = queue.Queue()
        self.workers: dict[str, Worker] = {}
        self.forkserver: ForkServer | None = None
        self.leases: dict[str, Lease] = {}
        """Warm workers leased for this run, by compute: each is used for the compute's first worker."""

    def start_forkserver(self, adapters: Iterable[str]) -> None:
        """Start the fork server, importing dbt and ``adapters`` (the dbt adapter types of the
        computes whose workers it forks) while floe writes the projects; nothing where no worker
        may be forked, or where there is no fork server (:data:`~floe.execution.forkserver.AVAILABLE`)."""
        preload = sorted(set(adapters))
        if not preload or not FORKSERVER_AVAILABLE:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.forkserver = ForkServer(
            ["dbt.cli.main", *(f"dbt.adapters.{a}" for a in preload)],
            dbt_environ(os.environ),
            self.directory / FORKSERVER_LOG,
        )

    def get(self, compute: str) -> Worker:
        """The worker of ``compute``, started now if it has none (or its worker died)."""
        worker = self.workers.get(compute)
        if worker is not None and worker.alive:
            return worker
        setup = self.setups[compute]
        lease = self.leases.pop(compute, None)
        if lease is not None:
            worker = Worker(compute, {}, self.directory / compute, self.messages, None, lease)
            self.workers[compute] = worker
            return worker
        forkserver = self.forkserver if setup.forkable else None
        worker = Worker(
            compute, worker_environ(setup, self.environ), self.directory / compute, self.messages, forkserver
        )
        self.workers[compute] = worker
        return worker

    def stop(self, timeout: float) -> list[str]:
        """Ask every worker to exit (a warm one, to go back to its host); kill those that do not
        within ``timeout`` seconds. The computes whose warm workers were released cleanly."""
        workers = list(self.workers.values())
        for worker in workers:
            if worker.lease is not None and worker.alive:
                worker.release()
            elif worker.lease is None:
                worker.ask_to_exit()
        for worker in workers:
            worker.finish(timeout)
        for lease in self.leases.values():  # leased, never used: back as they came
            for fd in (lease.stdin, lease.answers):
                with contextlib.suppress(OSError):
                    os.close(fd)
        kept = [c for c, w in self.workers.items() if w.lease is not None and w.released.is_set()]
        return kept + list(self.leases)

    def kill(self, keep_leased: bool = False) -> None:
        """Kill the workers (``keep_leased``: but the warm ones, which :meth:`stop` gives back)."""
        for worker in self.workers.values():
            if not (keep_leased and worker.lease is not None):
                worker.kill()

    def close(self, timeout: float) -> None:
        """Stop the fork server (and whatever it still has)."""
        if self.forkserver is not None:
            self.forkserver.close(timeout)
