"""Run a call with a hard deadline, even when the callee hangs in C code or on a socket.

The call runs in a daemon thread: if it does not finish in time the caller gets
:class:`DeadlineExceeded` and goes on; the stuck thread cannot keep the process alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The call did not return within its deadline."""


def call_with_deadline(fn: Callable[[], T], seconds: float) -> T:
    """Return ``fn()``, re-raise what it raised, or raise :class:`DeadlineExceeded`."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="floe-deadline", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise DeadlineExceeded(f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    raise value
