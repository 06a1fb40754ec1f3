"""Delivery of a run's events off the run's thread, so that a lineage back end that is down or
slow never fails the run nor slows it beyond a bound.

Work (a function that makes events: it may read the catalog for a table's schema) goes on a
queue; one thread makes the events and hands them to the OpenLineage client's transport. The
first failure (after the transport's own retries) is kept and the rest of the run's events are
not tried: a down back end costs one timeout, not one per event. At the run's end :meth:`Emitter.close`
waits at most its bound for what is queued, then gives up on it. Whatever was not delivered is
reported once, in one line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

Work = Callable[[], Iterable[Any]]
MAX_QUEUED = 100_000
"""More work than this waiting is dropped (and counted) rather than held in memory."""


class Emitter:
    """One run's delivery thread; see the module docstring.

    :param send: hands one event to the transport (``OpenLineageClient.emit``); raises on failure.
    :param report: where the one line about undelivered events goes.
    :param describe: the transport, as the line names it.
    """

    def __init__(self, send: Callable[[Any], None], report: Callable[[str], None], describe: str) -> None:
        self._send = send
        self._report = report
        self.describe = describe
        self._queue: queue.Queue[Work | None] = queue.Queue(MAX_QUEUED)
        self.made = 0
        self.delivered = 0
        self.dropped = 0
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._loop, name="floe-lineage", daemon=True)
        self._thread.start()

    def submit(self, work: Work) -> None:
        """Queue ``work``; never blocks."""
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                events = list(work())
            except Exception as exc:  # noqa: BLE001 - a bug making events never stops the run
                self.failure = self.failure or f"making events failed: {type(exc).__name__}: {exc}"
                self.dropped += 1
                continue
            for event in events:
                self.made += 1
                if self.failure is not None:
                    self.dropped += 1
                    continue
                try:
                    self._send(event)
                    self.delivered += 1
                except Exception as exc:  # noqa: BLE001 - the back end's failure is reported, never raised
                    self.failure = f"{type(exc).__name__}: {exc}"
                    self.dropped += 1

    def close(self, timeout: float) -> float:
        """Wait at most ``timeout`` seconds for the queued work; report what was not delivered,
        once. Returns the seconds waited."""
        clock = time.monotonic()
        try:
            self._queue.put(None, timeout=timeout)
            self._thread.join(max(0.0, timeout - (time.monotonic() - clock)))
        except queue.Full:
            pass
        waited = time.monotonic() - clock
        pending = self._queue.qsize()
        if self._thread.is_alive():
            self._report(
                f"lineage: events were still being sent to {self.describe} after {timeout:g}s; "
                f"{self.delivered} delivered, the rest ({pending} queued step(s) and the event in flight) "
                "dropped: the run does not wait longer"
            )
        elif self.failure is not None:
            self._report(
                f"lineage: {self.dropped} of {self.made} OpenLineage event(s) not delivered to "
                f"{self.describe}: {self.failure}"
            )
        return waited
