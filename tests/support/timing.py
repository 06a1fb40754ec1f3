"""Bounding a check's time in a test by what the code controls, not by what the machine does.

A check given ``timeout`` seconds answers by deadlines the code sets from it (floe's
:func:`~floe.deadline.call_with_deadline` waits for its worker thread with ``Thread.join(seconds)``).
Tests record those deadlines (:func:`record_deadlines`) and assert them; how long after a deadline
the answer reaches the test depends on the machine's load, which the code does not control, so the
elapsed time is checked only for a hang, a wait far past the timeout. Speed is measured in
``benchmarks/``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

HANG_GUARD_S = 30.0
"""Seconds past its timeout after which a check counts as hung (a loaded 2-core machine is slow by
seconds, a hang by minutes)."""


def assert_not_hung(elapsed: float, timeout: float) -> None:
    assert elapsed < timeout + HANG_GUARD_S, (
        f"the check took {elapsed:.1f} s with a timeout of {timeout:g} s: it waited on something its deadline does not bound"
    )


def record_deadlines(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The timeout of every ``Thread.join`` the test's own thread makes from now on: the deadlines
    the code under test sets (joins of other threads, such as servers', are left out)."""
    deadlines: list[float] = []
    join = threading.Thread.join
    caller = threading.current_thread()

    def recording(self: threading.Thread, timeout: float | None = None) -> Any:
        if timeout is not None and threading.current_thread() is caller:
            deadlines.append(timeout)
        return join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", recording)
    return deadlines
