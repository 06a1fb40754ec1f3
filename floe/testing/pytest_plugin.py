"""floe's pytest plugin (entry point ``pytest11: floe``).

It only defines fixtures: nothing is autouse, nothing heavy is imported, and no marker is
registered (floe's own ``req`` marker is registered by floe's test configuration, ``setup.cfg``), so
installing floe neither slows nor changes anyone's unrelated test runs, and a project that runs
with ``--strict-markers`` keeps its own list of markers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def refused_address() -> tuple[str, int]:
    """A loopback address where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "127.0.0.1", port


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A loopback server that accepts connections and never answers (a hung engine)."""
    with serve_silently() as address:
        yield address


@contextlib.contextmanager
def serve_silently() -> Iterator[tuple[str, int]]:
    """The ``silent_server`` fixture's peer, for code that runs outside a test (benchmarks)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, name="floe-silent-server", daemon=True)
    thread.start()
    try:
        yield server.getsockname()
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()
