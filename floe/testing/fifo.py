"""Release a reader blocked on a FIFO that stands in for a peer that never answers.

The compliance suite (and DuckDB's own tests) point a check at a FIFO nobody writes: opening it
blocks in C, as a hung network mount does, and the check must give up by itself. The check's
thread is left behind, blocked inside the engine's client. It must not stay there: a thread still
inside a C++ client when the interpreter shuts down can abort the whole process ("terminate
called without an active exception"). Some clients open a path more than once (DuckDB opens a
database file twice), so feeding it once is not enough: feed until nobody has had it open for a
while.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

QUIET_SECONDS = 1.0
"""How long nobody must have the FIFO open for reading before it counts as released."""


def release_fifo(fifo: Path, *, within: float = 15.0) -> bool:
    """Feed ``fifo`` until no reader has opened it for :data:`QUIET_SECONDS`.

    :param fifo: the FIFO a check may still be blocked on.
    :param within: give up after this many seconds.
    :returns: whether it was released (nobody reading it any more) in time.
    """
    deadline = time.monotonic() + within
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: nobody has it open for reading right now
                return True
            if time.monotonic() - quiet_since >= QUIET_SECONDS:
                return True
            time.sleep(0.02)
            continue
        try:
            os.write(fd, b"\0" * 65536)
            time.sleep(0.05)  # let the reader read before the writer goes away
        except OSError:
            pass
        finally:
            os.close(fd)
        quiet_since = time.monotonic()
    return False
