"""The BigQuery emulator ``bqemulator`` (PyPI, REST + gRPC, DuckDB-backed) on 127.0.0.1, offline.

It serves the BigQuery v2 REST API the unmodified google-cloud-bigquery and dbt-bigquery use, and
runs GoogleSQL by translating it to DuckDB. Three things make it start here without a network:

- a private, writable ``HOME`` under the test's temporary folder, where DuckDB keeps its
  extensions (``~/.duckdb/extensions``), so nothing of the user's home is read or written;
- DuckDB's ``spatial`` extension, which the emulator installs and loads at start (``INSTALL
  spatial``, from DuckDB's server by default), installed beforehand into that ``HOME`` from the
  ``duckdb-extension-spatial`` wheel with ``INSTALL '<file>'``; DuckDB then finds it installed;
- ``BQEMU_ENABLE_FORMAT_EXTENSIONS=false``: no attempt to fetch the ``avro`` extension (only Avro
  load/extract jobs need it; the emulator documents the switch for air-gapped use).

The REST and gRPC ports are picked free and passed explicitly; :meth:`BigQueryEmulator.start`
returns once ``/readyz`` answers ``200`` (DuckDB and the catalog respond), and :meth:`stop` ends the
process (SIGINT, then SIGKILL). The emulator accepts any bearer token: authentication failures
are shown against the scripted peer (:mod:`tests.support.bigquery_peer`) instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.snowflake_peer import free_port

HOST = "127.0.0.1"


def install_spatial(home: Path) -> Path:
    """Install DuckDB's spatial extension from its wheel into ``home``'s DuckDB extension folder."""
    import duckdb

    from floe.engines.duckdb import extension_files

    (wheel_file,) = extension_files(["spatial"])
    directory = home / ".duckdb" / "extensions"
    directory.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(config={"extension_directory": str(directory)}) as conn:
        conn.execute(f"INSTALL '{wheel_file}'")
        (path,) = conn.execute(
            "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'spatial'"
        ).fetchone() or ("",)
    return Path(path)


class BigQueryEmulator:
    """``bqemulator start`` in a child process, for one project."""

    def __init__(self, folder: Path, project: str, start_timeout: float = 60.0) -> None:
        self.folder = folder
        self.project = project
        self.start_timeout = start_timeout
        self.home = folder / "home"
        self.log_path = folder / "bqemulator.log"
        self.port = 0
        self.grpc_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The REST endpoint: a compute's ``api_endpoint``."""
        return f"http://{HOST}:{self.port}"

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
            "BQEMU_LOG_FORMAT": "console",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> BigQueryEmulator:
        install_spatial(self.home)
        for _attempt in range(3):  # a free port can be taken between the pick and the bind
            self.port, self.grpc_port = free_port(), free_port()
            command = [
                sys.executable,
                "-m",
                "bqemulator",
                "start",
                "--rest-host",
                HOST,
                "--rest-port",
                str(self.port),
                "--grpc-host",
                HOST,
                "--grpc-port",
                str(self.grpc_port),
                "--project",
                self.project,
                "--ephemeral",
            ]
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.environ(),
                )
            if self._wait_until_ready():
                return self
            self.stop()
        raise RuntimeError(f"bqemulator did not start; its log:\n{self.log_path.read_text()[-3000:]}")

    def _wait_until_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(0.1)
        return False

    def ready(self) -> bool:
        """Whether ``/readyz`` reports the engine and the catalog answering."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:
                return bool(json.load(answer).get("status") == "ok")
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def client(self) -> Any:
        """A google-cloud-bigquery client of the emulator (any token is accepted)."""
        from google.api_core.client_options import ClientOptions
        from google.cloud import bigquery
        from google.oauth2 import credentials

        return bigquery.Client(
            self.project,
            credentials.Credentials("ya29.emulator"),
            client_options=ClientOptions(api_endpoint=self.url),
        )

    def create_dataset(self, dataset: str, location: str = "US") -> None:
        """The dataset a compute names, created as an administrator would before dbt runs."""
        from google.cloud import bigquery

        entry = bigquery.Dataset(f"{self.project}.{dataset}")
        entry.location = location
        self.client().create_dataset(entry, exists_ok=True)

    def __enter__(self) -> BigQueryEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_bqemulator(
    folder: Path, project: str, datasets: tuple[str, ...] = ()
) -> Iterator[BigQueryEmulator]:
    """Start the emulator under ``folder`` with ``datasets`` created; stop it at the end."""
    with BigQueryEmulator(folder, project) as emulator:
        for dataset in datasets:
            emulator.create_dataset(dataset)
        yield emulator
