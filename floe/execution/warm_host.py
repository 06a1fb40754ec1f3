"""The warm host of a data product: keeps its catalog and its computes' dbt workers up between runs.

``floe run --keep-warm`` starts one (or finds the one up) per user and product directory, and
hands its work to it; :mod:`floe.execution.warm` is the run's end. The host is a detached process
(a session of its own, umask 077) that holds:

- the product's embedded catalog process (:mod:`floe.execution.catalog_process`), on one port with
  one token for the host's life;
- a fork server (:mod:`floe.execution.forkserver`) with dbt imported, and one dbt worker per
  compute (:mod:`floe.execution.worker`), each with its engine's extension started (Spark's
  session up). A worker is keyed by the fingerprint of what it was started from (its engine's
  ``WorkerSetup``, its start environment): a run whose fingerprint differs gets a new worker for
  that compute (a cold start for that compute only).

``python -m floe.execution.warm_host SOCKET PRODUCT_DIR IDLE_SECONDS SESSION_ID`` serves on the
Unix socket ``SOCKET`` (``SOCK_SEQPACKET``; its folder is the user's alone, see
:func:`floe.execution.warm.socket_path`) and refuses a peer of another user (``SO_PEERCRED``).
One request per message, one JSON answer; a run's connection is its lease:

- ``{"op": "catalog", "catalog": {state_dir, name, port, namespace}}`` → ``{"token", "uri"}``:
  starts the catalog if it is not up (creates the namespace if it is);
- ``{"op": "catalog_ready"}`` → ``{"uri"}`` or ``{"error"}``; ``{"op": "maintain", "policy"}``
  → the catalog's answer; ``{"op": "catalog_status"}`` → ``{"code"}``;
- ``{"op": "workers", "workers": {compute: spec}}`` → ``{"workers": {compute: pid}}`` with two
  file descriptors per compute passed alongside (``SCM_RIGHTS``, in the answer's order): the
  worker's stdin and the read end of its answers, so the run speaks the worker protocol itself;
- ``{"op": "exit_code", "compute"}`` → ``{"code"}`` of a leased worker that ended;
- ``{"op": "release", "computes": [...]}``: the run is done; the workers it released are kept,
  the others stopped. A connection that ends without it (the run was killed) stops every worker
  it leased: a killed run's build must not go on;
- ``{"op": "status"}`` → the host's pid, the workers' pids, the catalog's uri; ``{"op": "stop"}``.

The host exits after ``IDLE_SECONDS`` without a run, when the session ``SESSION_ID`` of the user
who started it ends (its leader is gone), on SIGTERM, or on ``stop``; it stops its workers (each
one's process group: Spark's JVM goes too), the fork server and the catalog first. Its own log
and the workers' output between runs go to ``<product>/.floe/warm/``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from floe.artifacts import PRIVATE_UMASK, private_directory
from floe.execution.forkserver import AVAILABLE as FORKSERVER_AVAILABLE
from floe.execution.forkserver import ForkedProcess, ForkServer
from floe.execution.lifeline import note
from floe.execution.ports import free_port
from floe.execution.workers import start_worker_process

MESSAGE_BYTES = 1 << 20
WARM_DIR = "warm"
"""Under the product's state folder (``.floe``): the host's log, its workers' output between runs."""
WATCH_S = 0.5
FORK_WAIT_S = 120.0
STOP_TIMEOUT = 10.0
Process = subprocess.Popen[str] | ForkedProcess


def peer_uid(connection: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (Linux's ``SO_PEERCRED``)."""
    size = struct.calcsize("3i")
    _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))
    return int(uid)


def running(process: Process) -> bool:
    try:
        process.wait(timeout=0)
    except subprocess.TimeoutExpired:
        return True
    return False


class HostWorker:
    """One warm worker: its process, its stdin, the read end of its answers, what started it."""

    def __init__(self, compute: str, fingerprint: str, process: Process, answers: int) -> None:
        self.compute = compute
        self.fingerprint = fingerprint
        self.process = process
        self.answers = answers
        self.leased = False
        self.env: dict[str, str] = {}
        """Its start environment (the names of what changed are logged when it is replaced)."""

    @property
    def stdin(self) -> int:
        assert self.process.stdin is not None
        return self.process.stdin.fileno()

    def send(self, request: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()

    def stop(self, graceful: bool = True) -> None:
        """Ask it to exit (it closes what dbt opened); kill its process group if it does not, or at
        once when not ``graceful`` (its run was killed: a build it still runs must not go on)."""
        if graceful:
            self.send({"op": "exit"})
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_TIMEOUT if graceful else 0.0)
        except subprocess.TimeoutExpired:
            pass
        pid = self.process.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        with contextlib.suppress(OSError):
            os.close(self.answers)


class Host:
    """The host's state; each connection's requests are answered under :attr:`lock`."""

    def __init__(self, product_dir: Path, idle: float, session: int) -> None:
        self.product_dir = product_dir
        self.state_dir = product_dir / ".floe"
        self.log_dir = private_directory(self.state_dir / WARM_DIR)
        self.idle = idle
        self.session = session
        self.token = secrets.token_urlsafe(32)
        self.lock = threading.RLock()
        self.workers: dict[str, HostWorker] = {}
        self.forkserver: ForkServer | None = None
        self.catalog: Any = None  # CatalogProcess, imported when first needed
        self.catalog_uri: str | None = None
        self.namespaces: set[str] = set()
        self.leases = 0
        self.last_used = time.monotonic()
        self.stopping = threading.Event()
        self.spawner = concurrent.futures.ThreadPoolExecutor(1, "floe-warm-spawner")
        """Where every request is answered: the processes the host starts ask the kernel to kill
        them when the thread that started them ends (``PR_SET_PDEATHSIG``), so one thread, for the
        host's life, starts them all."""

    def say(self, text: str) -> None:
        note(f"floe warm host {os.getpid()}: {text}")

    # -- requests -------------------------------------------------------------------------------------

    def answer(self, request: dict[str, Any], leased: set[str]) -> tuple[dict[str, Any], list[int]]:
        op = request.get("op")
        if op == "catalog":
            return self._catalog(dict(request["catalog"])), []
        if op == "catalog_ready":
            return self._catalog_ready(), []
        if op == "catalog_status":
            catalog = self.catalog
            return {"code": None if catalog is None else catalog.returncode()}, []
        if op == "maintain":
            ready = self._catalog_ready()
            if "error" in ready:
                return ready, []
            answer = self.catalog.request({"op": "maintain", "policy": request.get("policy")}, 600.0)
            return answer or {"error": "no answer"}, []
        if op == "workers":
            if "idle" in request:
                self.idle = float(request["idle"])
            return self._lease(dict(request["workers"]), leased)
        if op == "exit_code":
            worker = self.workers.get(str(request.get("compute")))
            code = None
            if worker is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = worker.process.wait(timeout=2.0)
            return {"code": code}, []
        if op == "release":
            self._release(leased, set(request.get("computes") or ()))
            return {"released": True}, []
        if op == "status":
            with self.lock:
                pids = {c: w.process.pid for c, w in self.workers.items() if running(w.process)}
            return {"pid": os.getpid(), "workers": pids, "catalog": self.catalog_uri}, []
        if op == "stop":
            self.stopping.set()
            return {"stopping": True}, []
        return {"error": f"unknown operation {op!r}"}, []

    def _catalog(self, spec: dict[str, Any]) -> dict[str, Any]:
        from floe.execution.catalog_process import CatalogProcess
        from floe.execution.profiles import dbt_environ

        with self.lock:
            namespace = spec.get("namespace")
            if self.catalog is not None and self.catalog.returncode() is None:
                ready = self._catalog_ready()
                if namespace and namespace not in self.namespaces and "uri" in ready:
                    self.catalog.request({"op": "namespace", "name": namespace}, 60.0)
                    self.namespaces.add(namespace)
                return {"token": self.token, "uri": self.catalog_uri}
            if self.catalog is not None:
                self.say(f"the catalog's process ended (code {self.catalog.returncode()}): starting it again")
            port = free_port(int(spec.get("port") or 0))
            self.catalog = CatalogProcess(
                Path(spec["state_dir"]),
                str(spec["name"]),
                port,
                self.token,
                self.log_dir / "catalog.log",
                dbt_environ(os.environ),
                namespace,
            )
            self.catalog_uri = None
            self.namespaces = {namespace} if namespace else set()
            self.say(f"catalog process {self.catalog.pid} starting on port {port}")
            return {"token": self.token, "uri": f"http://127.0.0.1:{port}"}

    def _catalog_ready(self) -> dict[str, Any]:
        from floe.execution.catalog_process import CatalogProcessError

        with self.lock:
            if self.catalog is None:
                return {"error": "no catalog was asked for"}
            if self.catalog_uri is None:
                try:
                    self.catalog_uri = self.catalog.ready()
                except CatalogProcessError as exc:
                    return {"error": str(exc)}
            return {"uri": self.catalog_uri}

    def _lease(self, specs: dict[str, dict[str, Any]], leased: set[str]) -> tuple[dict[str, Any], list[int]]:
        """A worker per compute in ``specs``: the one up when its fingerprint matches, else a new one."""
        with self.lock:
            pids: dict[str, int] = {}
            kept: list[str] = []
            fds: list[int] = []
            for compute, spec in sorted(specs.items()):
                worker = self.workers.get(compute)
                if worker is not None and worker.leased:
                    continue  # another run has it (a run of another environment): it starts its own
                if worker is not None and (
                    worker.fingerprint != spec["fingerprint"] or not running(worker.process)
                ):
                    changed = sorted(
                        k for k in {*worker.env, *spec["env"]} if worker.env.get(k) != spec["env"].get(k)
                    )
                    why = (
                        "it ended"
                        if not running(worker.process)
                        else "what it was started from changed"
                        + (
                            f": variable(s) {', '.join(changed)}"
                            if changed
                            else ": its engine's setup, or the code it runs"
                        )
                    )
                    self.say(f"replacing the worker of {compute!r} ({why})")
                    del self.workers[compute]
                    worker.stop()
                    worker = None
                if worker is None:
                    try:
                        worker = self._spawn(compute, spec)
                    except OSError as exc:
                        self.say(f"could not start the worker of {compute!r}: {exc}")
                        continue
                    self.workers[compute] = worker
                else:
                    self.say(f"reusing the worker of {compute!r} (pid {worker.process.pid})")
                    kept.append(compute)
                if worker.process.pid is None:
                    continue
                worker.leased = True
                leased.add(compute)
                pids[compute] = worker.process.pid
                fds += [worker.stdin, worker.answers]
            self.leases += 1 if leased else 0
            self.last_used = time.monotonic()
            return {"workers": pids, "order": sorted(pids), "kept": kept}, fds

    def _spawn(self, compute: str, spec: dict[str, Any]) -> HostWorker:
        cwd = Path(spec["cwd"])
        cwd.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{compute}.log"
        env = {
            **dict(spec["env"]),
            **({spec["token_variable"]: self.token} if spec.get("token_variable") else {}),
        }
        read_fd, write_fd = os.pipe()
        process: Process
        try:
            if spec.get("forkable") and FORKSERVER_AVAILABLE:
                forkserver = self._forkserver(list(spec.get("preload") or []))
                process = forkserver.spawn(write_fd, log, cwd, env)
                deadline = time.monotonic() + FORK_WAIT_S
                while process.pid is None and running(process) and time.monotonic() < deadline:
                    time.sleep(0.02)
            else:
                process = start_worker_process(write_fd, log, cwd, env)
                threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        worker = HostWorker(compute, str(spec["fingerprint"]), process, read_fd)
        worker.env = dict(spec["env"])
        if spec.get("extension"):  # started now, in the environment free of the runs' secrets
            worker.send(
                {
                    "id": 0,
                    "op": "extension",
                    "module": spec["extension"],
                    "settings": spec.get("settings") or {},
                    "wait": True,  # what it starts in the background starts before a run's lease
                }
            )
        self.say(f"started the worker of {compute!r} (pid {process.pid})")
        return worker

    def _forkserver(self, preload: list[str]) -> ForkServer:
        from floe.execution.profiles import dbt_environ

        if self.forkserver is None or self.forkserver.process.poll() is not None:
            self.forkserver = ForkServer(
                ["dbt.cli.main", *preload], dbt_environ(os.environ), self.log_dir / "forkserver.log"
            )
        return self.forkserver

    def _release(self, leased: set[str], kept: set[str]) -> None:
        """The run of ``leased`` ended: keep the workers it released, stop the others."""
        with self.lock:
            for compute in sorted(leased):
                worker = self.workers.get(compute)
                if worker is None:
                    continue
                worker.leased = False
                if compute not in kept or not running(worker.process):
                    self.say(f"stopping the worker of {compute!r}: its run did not release it")
                    del self.workers[compute]
                    worker.stop(graceful=False)
            leased.clear()
            self.last_used = time.monotonic()

    # -- life -------------------------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._watch, name="floe-warm-watch", daemon=True).start()
        listener.settimeout(WATCH_S)
        while not self.stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if peer_uid(connection) != os.getuid():  # another user: nothing said, nothing served
                self.say("refused a connection from another user")
                connection.close()
                continue
            threading.Thread(target=self._connection, args=(connection,), daemon=True).start()

    def _connection(self, connection: socket.socket) -> None:
        leased: set[str] = set()
        with connection:
            while True:
                try:
                    data = connection.recv(MESSAGE_BYTES)
                except OSError:
                    data = b""
                if not data:
                    break
                try:
                    answer, fds = self.spawner.submit(self.answer, json.loads(data), leased).result()
                except Exception as exc:  # noqa: BLE001 - said to the run, which goes on cold
                    answer, fds = {"error": f"{type(exc).__name__}: {exc}"}, []
                try:
                    socket.send_fds(connection, [json.dumps(answer).encode()], fds)
                except OSError:
                    break
        if leased:  # the run ended without releasing its workers: killed, or failed in floe
            self.spawner.submit(self._release, leased, set()).result()

    def _watch(self) -> None:
        while not self.stopping.wait(WATCH_S):
            if not _session_alive(self.session):
                self.say(f"the session {self.session} that started it ended: stopping")
                self.stopping.set()
            with self.lock:
                busy = any(w.leased for w in self.workers.values())
                if not busy and time.monotonic() - self.last_used > self.idle:
                    self.say(f"idle for {self.idle:g}s: stopping")
                    self.stopping.set()

    def shutdown(self) -> None:
        with self.lock:
            for worker in self.workers.values():
                worker.stop()
            self.workers.clear()
            if self.forkserver is not None:
                self.forkserver.close(STOP_TIMEOUT)
            if self.catalog is not None:
                self.catalog.stop(STOP_TIMEOUT)
        self.say("stopped")


def _session_alive(session: int) -> bool:
    """Whether the session's leader still runs (``0``: no session to watch)."""
    if session <= 1:
        return True
    try:
        return os.getsid(session) == session
    except (ProcessLookupError, PermissionError):
        return False


def main(argv: list[str]) -> int:
    path, product_dir, idle, session = Path(argv[1]), Path(argv[2]), float(argv[3]), int(argv[4])
    os.umask(PRIVATE_UMASK)
    lock_path = path.with_suffix(".lock")
    while True:  # the lock of the file at lock_path now: an exiting host removes its own
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another host serves this product already
        try:
            if os.fstat(lock).st_ino == os.stat(lock_path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(lock)
    host = Host(product_dir, idle, session)
    signal.signal(signal.SIGTERM, lambda *_: host.stopping.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(8)
    host.say(f"serving {product_dir} on {path}, idle bound {idle:g}s, session {session}")
    try:
        host.serve(listener)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener.close()
        host.shutdown()
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()  # still holding its lock: the next host locks a new file
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    from floe.execution.worker import exit_now

    exit_now(main(sys.argv))
