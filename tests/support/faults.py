"""Fault injection at a random, reproducible moment of a real run.

:func:`fault_random` gives a test its random source: seeded from ``FLOE_FAULT_SEED`` when set (to
replay a failure), else from a fresh seed; the seed is printed, so a failure in CI says how to
replay it. :func:`fault_rounds` is how many times a test injects its fault (``FLOE_FAULT_ROUNDS``,
default 1: each round is a real ``floe run`` or two, and the suite must stay quick).

:class:`FaultyProxy` is a :class:`~tests.support.seaweed.RecordingProxy` that a test arms to fail
at the wire: answer a request itself (an S3 ``403 AccessDenied``), drop the connection after the
upstream answered (the client never hears), or stop listening altogether and start again later on
the same port (an endpoint that went away and came back).
"""

from __future__ import annotations

import os
import random
import secrets
import threading
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from tests.support.seaweed import Exchange, RecordingProxy

SEED_VARIABLE = "FLOE_FAULT_SEED"
ROUNDS_VARIABLE = "FLOE_FAULT_ROUNDS"


def fault_random(test: str) -> random.Random:
    """The test's random source; prints the seed (``FLOE_FAULT_SEED=…`` replays it)."""
    written = os.environ.get(SEED_VARIABLE)
    seed = int(written) if written else secrets.randbits(32)
    print(f"{test}: {SEED_VARIABLE}={seed}")
    return random.Random(seed)


def fault_rounds() -> int:
    return max(1, int(os.environ.get(ROUNDS_VARIABLE) or 1))


Answer = tuple[int, str, bytes]
"""Status, content type and body of an answer the proxy gives instead of the upstream."""


class FaultyProxy(RecordingProxy):
    """A recording proxy that fails on the test's cue (see the module docstring).

    - :attr:`instead`: called with each request's method, path and headers before it is forwarded;
      an :data:`Answer` is sent instead of forwarding, ``False`` drops the connection unanswered,
      ``None`` forwards it;
    - :attr:`heard`: called with each exchange once the upstream answered, before the client gets
      the answer; ``False`` drops the connection (the upstream acted, the client never heard);
    - :meth:`stop_listening` / :meth:`listen_again`: the endpoint refuses connections (and drops
      every request already on a kept-alive connection) until it listens again on the same port.
    """

    def __init__(self, upstream: str | None = None, *, keep_bodies: bool = False) -> None:
        super().__init__(upstream, keep_bodies=keep_bodies)
        self.instead: Callable[[str, str, Mapping[str, str]], Answer | bool | None] | None = None
        self.heard: Callable[[Exchange], bool] | None = None
        self.stopped = threading.Event()
        self._address = self._server.server_address

    def stop_listening(self) -> None:
        """Refuse connections from now on (safe to call from a request's own thread)."""
        self.stopped.set()
        server = self._server
        threading.Thread(target=lambda: (server.shutdown(), server.server_close()), daemon=True).start()

    def listen_again(self) -> None:
        """Listen on the same port again, as an endpoint restarted."""
        self._thread.join(timeout=10)
        handler = self._server.RequestHandlerClass
        self._server = ThreadingHTTPServer(self._address[:2], handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.stopped.clear()
        self._thread.start()

    def _forward(self, handler: Any) -> None:
        if self.stopped.is_set():
            handler.close_connection = True
            return
        verdict = (
            self.instead(handler.command, handler.path, dict(handler.headers.items()))
            if self.instead
            else None
        )
        if verdict is False:
            handler.close_connection = True
            return
        if isinstance(verdict, tuple):
            status, content_type, body = verdict
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
            return
        try:
            super()._forward(handler)
        except OSError:  # the upstream is down: its client gets no answer either
            handler.close_connection = True

    def _deliver(self, exchange: Exchange) -> bool:
        return self.heard(exchange) if self.heard is not None else True
