"""Choosing the loopback port a catalog is served on (one module, for the run's catalog and the
warm host's alike)."""

from __future__ import annotations

import socket


def free_port(preferred: int) -> int:
    """``preferred`` if it can be bound on 127.0.0.1 (as the catalog binds it), else a free port.

    A product's catalog keeps its port from run to run where it can (the engines' profiles name
    it, so an unchanged port leaves them unchanged for dbt's partial parse).
    """
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    return 0
