"""Peers for the Snowflake engine's tests, all on 127.0.0.1 and started by the tests themselves.

- :class:`FakesnowServer`: the ``fakesnow`` server in a subprocess, on an explicit free port. It
  speaks Snowflake's REST protocol to the unmodified snowflake-connector-python and runs SQL in
  DuckDB. It accepts any credentials, ignores ``USE WAREHOUSE`` and creates a database named at
  login. It is started through :mod:`tests.support.fakesnow_server`, which adds two answers
  Snowflake gives and fakesnow 0.11.18 lacks (to ``BEGIN`` and to ``INSERT OVERWRITE``), both
  needed by dbt-snowflake's seeds.
- :class:`ScriptedSnowflake`: a few fixed answers of Snowflake's login endpoints, for what
  fakesnow cannot show: a refused login (Snowflake's JSON for error 390100) and the SSO URL answer
  of ``/session/authenticator-request``. The real connector parses them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

HOST = "127.0.0.1"
LAUNCHER = Path(__file__).with_name("fakesnow_server.py")


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for an ephemeral bind)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class FakesnowServer:
    """``fakesnow -s`` in a child process; :meth:`start` returns once it answers HTTP."""

    def __init__(self, log_dir: Path, start_timeout: float = 60.0) -> None:
        self.log_path = log_dir / "fakesnow.log"
        self.start_timeout = start_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return HOST

    def start(self) -> FakesnowServer:
        """Start the server (once: ``with FakesnowServer(...).start()`` enters a started server)."""
        if self.process is not None and self.process.poll() is None:
            return self
        for _attempt in range(3):  # the free port can be taken between the pick and the bind
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, str(LAUNCHER), "-s", "--host", HOST, "--port", str(self.port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            if self._wait_until_answering():
                return self
            self.stop()
        raise RuntimeError(f"fakesnow did not start; its log:\n{self.log_path.read_text()[-3000:]}")

    def _wait_until_answering(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.answers():
                return True
            time.sleep(0.1)
        return False

    def answers(self) -> bool:
        """Whether the server answers a session request (401 without a token, as Snowflake)."""
        request = urllib.request.Request(f"http://{HOST}:{self.port}/session", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=1):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False

    def create_database(self, name: str) -> None:
        """Create a database, as an administrator would before dbt runs (fakesnow creates none)."""
        import snowflake.connector

        with snowflake.connector.connect(
            account="fakesnow",
            user="admin",
            password="any",
            host=self.host,
            port=self.port,
            protocol="http",
            login_timeout=10,
            platform_detection_timeout_seconds=0.0,
        ) as admin:
            admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {name}")

    def stop(self) -> None:
        """SIGINT (fakesnow's own way to stop), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> FakesnowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Scripted(BaseHTTPRequestHandler):
    """Snowflake's answers to a login and to an SSO URL request, fixed per server."""

    answers: ClassVar[dict[str, dict[str, Any]]] = {}
    requests: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:  # the connector gzips large bodies; the scripts do not need them
            parsed = {}
        self.requests.append((path, parsed))
        answer = self.answers.get(path)
        if answer is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


LOGIN_REFUSED = {
    "data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD"},
    "code": "390100",
    "message": "Incorrect username or password was specified.",
    "success": False,
    "headers": None,
}
"""Snowflake's answer to a login with a wrong password."""

SSO_URL = {
    "data": {"tokenUrl": None, "ssoUrl": "https://idp.example.test/sso/saml?request=1", "proofKey": "pk"},
    "code": None,
    "message": None,
    "success": True,
}
"""Snowflake's answer to ``/session/authenticator-request`` for an account with browser SSO."""


@contextlib.contextmanager
def scripted_snowflake(
    answers: dict[str, dict[str, Any]],
) -> Iterator[tuple[str, int, list[tuple[str, dict[str, Any]]]]]:
    """A loopback HTTP server answering ``answers`` by path; yields host, port and the requests."""
    seen: list[tuple[str, dict[str, Any]]] = []
    handler = type("Scripted", (_Scripted,), {"answers": answers, "requests": seen})
    server = ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="scripted-snowflake", daemon=True)
    thread.start()
    try:
        yield HOST, int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
