"""A threading HTTP server whose handler threads are all over when it is closed.

The test peers answer each connection in a thread of its own, and several of them run the request
in DuckDB. A daemon handler thread still inside DuckDB when the interpreter shuts down aborts the
whole pytest process ("terminate called without an active exception") after every test passed.
:meth:`JoiningHTTPServer.close_and_join` ends the kept-alive connections (so no handler waits for
a next request) and joins every handler, so that the peer's database can then be closed with
nothing running in it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class JoiningHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handlers: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._guard = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._handle_one,
            args=(request, client_address),
            name=f"{type(self).__name__}-handler",
            daemon=True,
        )
        with self._guard:
            self._handlers.add(thread)
            self._sockets.add(request)
        thread.start()

    def _handle_one(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._guard:
                self._sockets.discard(request)
                self._handlers.discard(threading.current_thread())

    def close_and_join(self, timeout: float = 10.0) -> list[threading.Thread]:
        """Stop serving, end every open connection, join every handler; returns those still alive."""
        self.shutdown()
        self.server_close()
        with self._guard:
            sockets, handlers = list(self._sockets), list(self._handlers)
        for connection in sockets:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for handler in handlers:
            handler.join(timeout)
        return [h for h in handlers if h.is_alive()]
