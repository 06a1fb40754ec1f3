"""A loopback OpenLineage HTTP receiver: what a lineage back end (Marquez…) sees of a run.

It listens on 127.0.0.1 and keeps every event POSTed to ``/api/v1/lineage`` (the client's default
endpoint) with the request's headers. ``delay`` makes it slow (seconds before each answer);
``status`` makes it answer with an error.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, delay: float = 0.0, status: int = 201) -> None:
        self.delay = delay
        self.status = status
        self.events: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    owner.bodies.append(body)
                    owner.headers.append(dict(self.headers))
                    owner.paths.append(self.path)
                    if self.path == "/api/v1/lineage":
                        owner.events.append(json.loads(body))
                if owner.delay:
                    time.sleep(owner.delay)
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
