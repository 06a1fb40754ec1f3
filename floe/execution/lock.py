"""One ``floe run`` per data product at a time: an ``fcntl`` lock on ``<product>/.floe/run.lock``;
and one plan's dbt parse at a time (:func:`exclusive` on ``<product>/.floe/plan.lock``).

The lock covers the whole product (every environment): runs share the generated dbt projects
under ``target/floe/run/`` and the embedded catalog. The holder writes who it is (pid, host,
environment, start time) into the file, so that a second run can say what it waits for. The
operating system releases the lock when the holder exits, however it exits: a crashed run never
leaves a stale lock behind (``kill -9`` included: the descriptor is not inheritable, so no worker
process holds it, and the workers die with the run anyway). The file keeps the dead holder's
description until the next run takes the lock; nothing reads it to decide anything.

A plan (``floe plan``, and ``floe run`` when it plans before its lock) writes a dbt project under
``target/floe/plan/`` and parses it there, without the run lock: a plan must not wait for a run
that may last an hour. Two plans at once (a ``floe plan`` while a ``floe run`` plans) would write
that project and dbt's partial parse over each other, so each holds :data:`PLAN_LOCK_FILE` while it
writes and parses; a plan waits only for another plan's parse, a few seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from floe.artifacts import writing
from floe.errors import FloeError, Problem

LOCK_FILE = "run.lock"
PLAN_LOCK_FILE = "plan.lock"


class RunLockedError(FloeError):
    """Another ``floe run`` of the same product holds the lock, and this one would not wait."""


class RunLock:
    """The product's run lock; use as a context manager after :meth:`acquire`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(
        self,
        *,
        wait: bool,
        environment: str,
        on_wait: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> RunLock:
        """Take the lock; when another run holds it, wait (saying so through ``on_wait``) or fail.

        :param timeout: with ``wait``, give up after this many seconds (``None``: no limit).
        :raises RunLockedError: the lock is held and ``wait`` is false, or ``timeout`` passed.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _try_lock(fd):
                holder = self.holder()
                if not wait:
                    raise RunLockedError(
                        [_busy(self.path, holder, "run without --no-wait to queue behind it")]
                    )
                if on_wait is not None:
                    on_wait(
                        f"another floe run of this product is in progress ({holder}); waiting for it "
                        f"to finish (lock {self.path})"
                    )
                deadline = None if timeout is None else time.monotonic() + timeout
                while not _try_lock(fd):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise RunLockedError([_busy(self.path, self.holder(), "retry later")])
                    time.sleep(0.2)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "environment": environment,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            with writing(self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def holder(self) -> str:
        """Who holds the lock, as its holder described itself."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "holder unknown"
        if not isinstance(info, dict) or "pid" not in info:
            return "holder unknown"
        return (
            f"pid {info['pid']} on {info.get('host', '?')}, environment {info.get('environment', '?')}, "
            f"started {info.get('started_at', '?')}"
        )

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if missing) for the block, waiting
    while another process holds it. The operating system releases it when the holder exits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _busy(path: Path, holder: str, fix: str) -> Problem:
    return Problem(
        f"another floe run of this product is in progress ({holder})",
        expected=f"no other run holding {path}",
        fix=f"wait for it to finish, or {fix}",
    )
