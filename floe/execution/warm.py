"""A run's end of its product's warm host (:mod:`floe.execution.warm_host`): ``floe run --keep-warm``.

:func:`connect` finds the host of the product directory (starting one when none is up) on a Unix
socket in a folder that is the user's alone (:func:`socket_dir`: created ``0700``; refused when
another user owns it or others may enter it). The run leases the host's catalog and its workers;
anything that goes wrong with the host (it is gone, it does not answer, a folder is not private)
raises :class:`WarmError`, and the run goes on cold: a warm host costs at most one cold start.

What a warm worker is started from holds none of the runs' secrets (:func:`start_environ`); each
run sends its own environment when it leases the worker, and the worker puts its start
environment back when the run releases it (:mod:`floe.execution.worker`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from floe.artifacts import PRIVATE_UMASK, open_private, private_directory
from floe.execution.warm_host import MESSAGE_BYTES, WARM_DIR, peer_uid

DEFAULT_IDLE = "15m"
"""How long a warm host waits for the next run by default (``floe run --keep-warm``)."""
CONNECT_TIMEOUT = 30.0
ANSWER_TIMEOUT = 180.0
"""Seconds the host may take to answer (a first lease waits for the fork server's import of dbt)."""
HOST_ENVIRON = re.compile(r"PATH|HOME|USER|LOGNAME|LANG|LC_.*|TZ|TMPDIR|PYTHONPATH|VIRTUAL_ENV|JAVA_HOME")
"""The variables the host itself (and its fork server) starts with: nothing else of the user's."""
SECRET_LIKE = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY", re.IGNORECASE)
"""Variables kept out of a warm worker's start environment even when no profile references them."""
SESSION_VARIABLES = re.compile(r"PWD|PS\d|SSH_.*|TMUX.*|WINDOWID|TERM_.*")
"""Besides the parse cache's volatile variables (:data:`floe.execution.parse_cache.VOLATILE`),
variables of a terminal or login session that change from shell to shell without changing what a
worker starts: neither is in a worker's fingerprint. Every run still sends its whole environment
to the worker."""


class WarmError(Exception):
    """The warm host cannot be used; the run goes on cold."""


def socket_dir(create: bool = True) -> Path:
    """``<tmp>/floe-<uid>``: created ``0700``; refused unless this user owns it and only they may enter.

    A short folder (Unix socket paths are limited to 107 bytes), checked because ``/tmp`` is shared:
    another user could create the folder first.
    """
    path = Path(tempfile.gettempdir()) / f"floe-{os.getuid()}"
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    elif not os.path.lexists(path):
        return path
    status = os.lstat(path)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise WarmError(
            f"{path} is not a folder only this user may enter (owner uid {status.st_uid}, mode "
            f"{stat.S_IMODE(status.st_mode):o}): remove it, or set TMPDIR to a private folder"
        )
    return path


def socket_path(product_dir: Path, create: bool = True) -> Path:
    """The socket of the warm host of ``product_dir`` (one per user and product directory); its
    folder is created unless ``create`` is false."""
    digest = hashlib.sha256(str(product_dir.resolve()).encode()).hexdigest()[:24]
    path = socket_dir(create) / f"{digest}.sock"
    if len(str(path).encode()) > 107:
        raise WarmError(f"the socket path {path} is too long for a Unix socket: set TMPDIR to a short folder")
    return path


def host_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the host starts with: where programs and Python's packages are, the locale."""
    return {k: v for k, v in environ.items() if HOST_ENVIRON.fullmatch(k)}


def start_environ(environ: Mapping[str, str], secret_names: Iterable[str]) -> dict[str, str]:
    """A warm worker's start environment: ``environ`` without the secrets the run's manifests name,
    nor anything that looks like one (each run sends them when it leases the worker)."""
    drop = set(secret_names)
    return {k: v for k, v in environ.items() if k not in drop and not SECRET_LIKE.search(k)}


def fingerprint(spec: Mapping[str, Any]) -> str:
    """What a worker was started from (its setup, its start environment but shell-volatile
    variables, the code it runs): a run whose fingerprint differs gets a new worker."""
    from floe.execution.parse_cache import VOLATILE

    env = {
        k: v
        for k, v in dict(spec.get("env") or {}).items()
        if k not in VOLATILE and not SESSION_VARIABLES.fullmatch(k)
    }
    text = json.dumps({**spec, "env": env}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def runtime() -> list[object]:
    """What a worker's code comes from: floe's version and files, Python, the folders packages are
    installed in (installing or upgrading one changes its folder): a run puts it in each worker's
    fingerprint, so a worker started from older code is replaced."""
    from floe import __version__

    package = Path(__file__).resolve().parents[1]
    newest = max((p.stat().st_mtime_ns for p in package.rglob("*.py")), default=0)
    folders: list[tuple[str, int | None]] = []
    for entry in sys.path:  # where packages are installed (not the current folder: a product's)
        if Path(entry).name not in ("site-packages", "dist-packages"):
            continue
        try:
            folders.append((entry, os.stat(entry).st_mtime_ns))
        except OSError:
            folders.append((entry, None))
    return [__version__, sys.version, sys.executable, newest, folders]


class WarmHost:
    """A run's connection to its product's warm host (its lease); see the module docstring."""

    def __init__(self, connection: socket.socket, product_dir: Path) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.product_dir = product_dir
        self.log_dir = product_dir / ".floe" / WARM_DIR
        self.token: str | None = None

    def request(self, request: Mapping[str, Any], fds: int = 0) -> tuple[dict[str, Any], list[int]]:
        """One request, its answer and the file descriptors that came with it.

        :raises WarmError: the host is gone, or said why it could not.
        """
        with self._lock:
            try:
                self._connection.settimeout(ANSWER_TIMEOUT)
                self._connection.send(json.dumps(request).encode())
                data, received, _, _ = socket.recv_fds(self._connection, MESSAGE_BYTES, max(fds, 1))
            except OSError as exc:
                raise WarmError(f"the warm host does not answer: {type(exc).__name__}: {exc}") from None
        if not data:
            for fd in received:
                os.close(fd)
            raise WarmError("the warm host ended the connection")
        answer = json.loads(data)
        if "error" in answer and request.get("op") != "catalog_ready":
            for fd in received:
                os.close(fd)
            raise WarmError(str(answer["error"]))
        return dict(answer), list(received)

    def catalog(self, state_dir: Path, name: str, port: int, namespace: str | None) -> tuple[str, str]:
        """The host's embedded catalog: its planned uri and its token (it may still be starting)."""
        spec = {"state_dir": str(state_dir), "name": name, "port": port, "namespace": namespace}
        answer, _ = self.request({"op": "catalog", "catalog": spec})
        self.token = str(answer["token"])
        return str(answer["uri"]), self.token

    def catalog_ready(self) -> str:
        """The catalog's uri once it serves; :raises WarmError: it could not start (why)."""
        answer, _ = self.request({"op": "catalog_ready"})
        if "error" in answer:
            raise WarmError(str(answer["error"]))
        return str(answer["uri"])

    def catalog_failure(self) -> str | None:
        try:
            answer, _ = self.request({"op": "catalog_status"})
        except WarmError as exc:
            return f"the warm host of the embedded catalog is gone ({exc})"
        code = answer.get("code")
        if code is None:
            return None
        from floe.execution.lifeline import ended

        return f"the warm host's embedded Iceberg catalog stopped during the run ({ended(code)}); its log: {self.log_dir / 'catalog.log'}"

    def maintain(self, policy: Mapping[str, Any]) -> dict[str, Any] | None:
        with contextlib.suppress(WarmError):
            answer, _ = self.request({"op": "maintain", "policy": dict(policy)})
            return dict(answer["maintained"]) if "maintained" in answer else None
        return None

    def workers(
        self, specs: Mapping[str, Mapping[str, Any]], idle: float
    ) -> dict[str, tuple[int, int, int, bool]]:
        """Lease a worker per compute of ``specs``: ``{compute: (pid, stdin fd, answers fd, kept)}``,
        ``kept`` when it served an earlier run (those the host could not lease are missing: the
        run starts them itself)."""
        answer, fds = self.request({"op": "workers", "workers": dict(specs), "idle": idle}, 2 * len(specs))
        order = list(answer.get("order") or [])
        if len(fds) != 2 * len(order):
            for fd in fds:
                os.close(fd)
            raise WarmError(f"the warm host passed {len(fds)} file descriptor(s) for {len(order)} worker(s)")
        pids = dict(answer["workers"])
        kept = set(answer.get("kept") or ())
        return {c: (int(pids[c]), fds[2 * i], fds[2 * i + 1], c in kept) for i, c in enumerate(order)}

    def exit_code(self, compute: str) -> int | None:
        with contextlib.suppress(WarmError):
            code = self.request({"op": "exit_code", "compute": compute})[0].get("code")
            return None if code is None else int(code)
        return None

    def release(self, computes: Iterable[str]) -> None:
        """The run is done: the host keeps the workers it released cleanly, and stops the others."""
        with contextlib.suppress(WarmError):
            self.request({"op": "release", "computes": sorted(computes)})

    def status(self) -> dict[str, Any]:
        return self.request({"op": "status"})[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._connection.close()


def _connect(path: Path, product_dir: Path) -> WarmHost | None:
    if not hasattr(socket, "SO_PEERCRED"):
        raise WarmError("warm engines need Linux (the host checks who connects with SO_PEERCRED)")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(str(path))
        if peer_uid(connection) != os.getuid():
            raise WarmError(f"the warm host socket {path} is served by another user")
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        return None
    except OSError as exc:
        connection.close()
        raise WarmError(f"cannot reach the warm host at {path}: {exc}") from None
    return WarmHost(connection, product_dir)


def find(product_dir: Path) -> WarmHost | None:
    """The warm host of ``product_dir`` if one is up (none is started, no folder created)."""
    path = socket_path(product_dir, create=False)
    if not path.exists():
        return None
    return _connect(path, product_dir)


def connect(product_dir: Path, idle: float, environ: Mapping[str, str]) -> WarmHost:
    """The warm host of ``product_dir``, started (detached, in a session of its own) if none is up.

    :raises WarmError: it cannot be reached or started.
    """
    host = find(product_dir)
    if host is not None:
        return host
    path = socket_path(product_dir)
    private_directory(product_dir / ".floe" / WARM_DIR)
    from floe.execution.profiles import dbt_environ

    with open_private(product_dir / ".floe" / WARM_DIR / "host.log") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "floe.execution.warm_host",
                str(path),
                str(product_dir),
                f"{idle:g}",
                str(os.getsid(0)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=product_dir,
            env=dbt_environ(host_environ(environ)),
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )
    threading.Thread(target=process.wait, name="floe-warm-host-reaper", daemon=True).start()
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while time.monotonic() < deadline:
        host = find(product_dir)
        if host is not None:
            return host
        if process.poll() is not None and process.returncode != 0:
            break
        time.sleep(0.02)
    raise WarmError(f"the warm host did not start; its log: {product_dir / '.floe' / WARM_DIR / 'host.log'}")


def stop(product_dir: Path, timeout: float = 60.0) -> int | None:
    """Stop the warm host of ``product_dir``, if one is up; its pid, once it is gone."""
    try:
        host = find(product_dir)
    except WarmError:
        return None
    if host is None:
        return None
    try:
        pid = int(host.status()["pid"])
        host.request({"op": "stop"})
    except WarmError:
        return None
    finally:
        host.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if _zombie(pid):
            break
        time.sleep(0.05)
    return pid


def _zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] in ("Z", "X")
