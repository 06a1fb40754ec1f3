"""One process that imports dbt once and forks a ready dbt worker per compute.

A ``floe run`` over several DuckDB computes starts one worker per compute (see
:mod:`floe.execution.worker` for why), and each would pay dbt's import: about 1.6 CPU-seconds of the
~4 a small build needs. On a two-core machine two workers importing dbt at once, next to the
catalog, take a quarter longer than one. The fork server imports dbt and the adapters once, while
floe writes the dbt projects, then forks each worker from that state: a forked worker starts with
dbt in memory (shared copy-on-write) and goes straight to its parse.

Only workers whose engine allows it are forked (``WorkerSetup.forkable``): Spark's, say, starts its
JVM as its first act, which a fork after dbt's import would delay, so it starts as a fresh process
(``python -m floe.execution.worker``). Forking needs ``os.fork`` without the platform's objections (macOS frameworks
are not fork-safe), so the fork server is used on Linux only (:data:`AVAILABLE`).

``python -m floe.execution.forkserver SOCKET_FD PARENT_PID MODULE…``: imports each ``MODULE``, then
serves requests on ``SOCKET_FD``, an ``AF_UNIX``/``SOCK_SEQPACKET`` socket (one message per
request, file descriptors passed alongside):

- ``{"id": N, "cwd": …, "env": {…}}`` with the worker's stdin, answer channel and log file →
  ``{"id": N, "pid": …}`` (``null`` when the fork failed; the worker's log says why); the child
  leads a session of its own (``floe run`` kills a worker's process group) and runs
  :func:`floe.execution.worker.serve`;
- when a child exits → ``{"exited": pid, "code": …}`` (as ``Popen.returncode``);
- the socket's end (``floe run`` closed it, or died) → the children are killed and the server
  exits. It also dies with ``floe run`` (``PR_SET_PDEATHSIG``), even while it imports dbt.

The client side is :class:`ForkServer`; :class:`ForkedProcess` stands for one worker the way a
``subprocess.Popen`` does.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from floe.artifacts import PRIVATE_UMASK, open_private
from floe.execution.lifeline import die_with, note

AVAILABLE = sys.platform == "linux"
"""Whether ``floe run`` forks its workers from a fork server here (else each starts afresh)."""
MESSAGE_BYTES = 1 << 20
"""The largest request: a worker's environment, with room to spare."""
PASSED_FDS = 3
"""A worker's stdin, answer channel and log, in that order."""


# -- the server ------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    channel = socket.socket(fileno=int(argv[1]))
    die_with(int(argv[2]))
    for module in argv[3:]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - the worker meets (and reports) the same problem
            note(f"floe: preloading {module} failed: {type(exc).__name__}: {exc}")
    note(f"floe: fork server ready with {', '.join(argv[3:]) or 'nothing'} imported")
    _serve(channel)
    return 0


def _serve(channel: socket.socket) -> None:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the wake-up fd
    signal.set_wakeup_fd(wake_write)
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    own_fds = (channel.fileno(), wake_read, wake_write, selector.fileno())  # none of them the worker's
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is not channel:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_read, 512):
                            pass
                    continue
                data, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, PASSED_FDS)
                if not data:
                    return  # floe run is done, or dead
                try:
                    request = json.loads(data)
                    try:
                        pid = _fork(request, fds, own_fds)
                    except OSError as exc:  # no memory, too many processes: the worker's log says so
                        os.write(
                            fds[2], f"floe: the fork server could not start this worker: {exc}\n".encode()
                        )
                        _reply(channel, {"id": request["id"], "pid": None})
                    else:
                        children.add(pid)
                        _reply(channel, {"id": request["id"], "pid": pid})
                finally:
                    for fd in fds:
                        os.close(fd)
            _reap(channel, children)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _reap(channel: socket.socket, children: set[int]) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        children.discard(pid)
        _reply(channel, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _reply(channel: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # floe run is gone: the end of the socket says so next
        channel.send(json.dumps(message).encode())


def _fork(request: dict[str, Any], fds: list[int], own_fds: tuple[int, ...]) -> int:
    stdin, answers, log = fds
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:  # the child: a worker, and never back into the server's loop
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in own_fds:
            os.close(fd)
        os.dup2(stdin, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(stdin)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from floe.execution import worker

        note(f"floe: worker {os.getpid()} forked from fork server {os.getppid()}, dbt imported")
        code = worker.serve(answers, open(0, encoding="utf-8", closefd=False))
    except BaseException:  # noqa: BLE001 - reported in the worker's log, as a fresh worker would
        import traceback

        traceback.print_exc()
    finally:
        from floe.execution.worker import exit_now

        exit_now(code)
    raise AssertionError("unreachable")  # pragma: no cover


# -- the client ------------------------------------------------------------------------------------


class ForkedProcess:
    """A worker the fork server forked, with the part of ``subprocess.Popen`` ``floe run`` uses."""

    def __init__(self, stdin: IO[str]) -> None:
        self.stdin: IO[str] | None = stdin
        self.returncode: int | None = None
        self._pid: int | None = None
        self._exited = threading.Event()

    @property
    def pid(self) -> int | None:
        """The worker's process id; ``None`` until it is forked, or if it never was."""
        return self._pid

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, as ``Popen.wait``; ``None`` if the fork server died without telling."""
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired("floe.execution.worker (forked)", timeout or 0.0)
        return self.returncode

    def started(self, pid: int) -> None:
        self._pid = pid

    def exited(self, code: int | None) -> None:
        self.returncode = code
        self._exited.set()


class ForkServer:
    """``floe run``'s end of the fork server: start it, fork workers from it, stop it.

    :param preload: the modules to import once (dbt's entry point, the adapters of the computes).
    :param env: its environment; each worker gets its own in :meth:`spawn`.
    :param log: where its own output goes (a module that failed to import, say).
    """

    def __init__(self, preload: list[str], env: dict[str, str], log: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open_private(log) as out:
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "floe.execution.forkserver",
                        str(theirs.fileno()),
                        str(os.getpid()),
                        *preload,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),),
                    cwd=log.parent,
                    env=env,
                    start_new_session=True,
                    umask=PRIVATE_UMASK,
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self._ids = iter(range(1, sys.maxsize))
        self._lock = threading.Lock()
        self._pending: dict[int, ForkedProcess] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._reader = threading.Thread(target=self._read, name="floe-run-fork-server", daemon=True)
        self._reader.start()

    def spawn(self, answers: int, log: Path, cwd: Path, env: dict[str, str]) -> ForkedProcess:
        """Fork a worker answering on file descriptor ``answers`` (which the caller still owns),
        printing to ``log``, in ``cwd`` with ``env``. Returns at once: the fork happens when the
        server has imported dbt; requests written to the worker's stdin meanwhile wait in the pipe."""
        stdin_read, stdin_write = os.pipe()
        process = ForkedProcess(open(stdin_write, "w", encoding="utf-8"))
        try:
            log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with self._lock:
                    request_id = next(self._ids)
                    self._pending[request_id] = process
                request = {"id": request_id, "cwd": str(cwd), "env": env}
                socket.send_fds(self._socket, [json.dumps(request).encode()], [stdin_read, answers, log_fd])
            finally:
                os.close(log_fd)
        except OSError:
            process.exited(None)
        finally:
            os.close(stdin_read)
        return process

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(MESSAGE_BYTES)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                if "pid" in message:
                    process = self._pending.pop(message["id"], None)
                    if process is not None and message["pid"] is None:
                        process.exited(None)
                    elif process is not None:
                        self._children[message["pid"]] = process
                        process.started(message["pid"])
                elif "exited" in message:
                    process = self._children.pop(message["exited"], None)
                    if process is not None:
                        process.exited(message["code"])
        self.process.wait()
        with self._lock:  # the server is gone, and its children with it
            for process in [*self._pending.values(), *self._children.values()]:
                process.exited(None)
            self._pending.clear()
            self._children.clear()

    def close(self, timeout: float) -> None:
        """Stop the server: it kills the workers still running, and exits."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(timeout=5)
        self._socket.close()


if __name__ == "__main__":  # pragma: no cover - run as a process
    from floe.execution.worker import exit_now

    exit_now(main(sys.argv))  # without Python's slow shutdown of everything dbt imported
