"""Run the ``floe`` CLI with every write step in one folder numbered, and stop at one of them.

    FLOE_STEPS_FOLDER=DIR FLOE_STEPS_FD=N [FLOE_STEPS_PAUSE_AT=K] python tests/support/write_steps.py ARGS…

This process is ``python -m floe ARGS…`` whose file-system calls are observed at the ``os`` and ``io``
layer (floe's own code is not touched): each call that changes a file below ``DIR`` — creating or
truncating one, writing to it, flushing, syncing, closing, renaming into ``DIR``, removing — is a
step, reported as ``<number> <what>`` on file descriptor ``N`` right after it returns. At step ``K``
the process stops itself (``SIGSTOP``), so that a test can ``kill -9`` it exactly there: the kills of
``tests/test_crash_safety.py`` land at every step of a write, not where chance puts them.
"""

from __future__ import annotations

import builtins
import io
import os
import signal
import sys
from typing import Any

FOLDER = os.path.realpath(os.environ["FLOE_STEPS_FOLDER"])
PAUSE_AT = int(os.environ.get("FLOE_STEPS_PAUSE_AT") or 0)
REPORT = os.fdopen(int(os.environ["FLOE_STEPS_FD"]), "w", buffering=1, encoding="utf-8")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_real = {
    name: getattr(os, name)
    for name in ("open", "write", "fsync", "close", "replace", "rename", "unlink", "remove")
}
_real_open = io.open
_tracked: dict[int, str] = {}
_count = 0


def step(what: str) -> None:
    """One step done: report it, and stop here if it is the one asked for."""
    global _count
    _count += 1
    REPORT.write(f"{_count} {what}\n")
    if _count == PAUSE_AT:
        os.kill(os.getpid(), signal.SIGSTOP)


def _inside(path: Any) -> str | None:
    """The name of ``path`` relative to the folder, if it is below it."""
    if isinstance(path, int):
        return None
    real = os.path.realpath(os.fsdecode(os.fspath(path)))
    return os.path.relpath(real, FOLDER) if real.startswith(FOLDER + os.sep) else None


def _open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
    fd: int = _real["open"](path, flags, *args, **kwargs)
    name = _inside(path)
    if name is not None and flags & WRITE_FLAGS:
        _tracked[fd] = name
        step(f"open {name}")
    return fd


def _write(fd: int, data: Any) -> int:
    written: int = _real["write"](fd, data)
    if fd in _tracked:
        step(f"write {_tracked[fd]}")
    return written


def _fsync(fd: Any) -> None:
    _real["fsync"](fd)
    number = fd if isinstance(fd, int) else fd.fileno()
    if number in _tracked:
        step(f"fsync {_tracked[number]}")


def _close(fd: int) -> None:
    _real["close"](fd)
    name = _tracked.pop(fd, None)
    if name is not None:
        step(f"close {name}")


def _renamer(real: str) -> Any:
    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        _real[real](src, dst, *args, **kwargs)
        name = _inside(dst)
        if name is not None:
            step(f"{real} {os.path.basename(os.fsdecode(os.fspath(src)))} -> {name}")

    return rename


def _remover(real: str) -> Any:
    def remove(path: Any, *args: Any, **kwargs: Any) -> None:
        name = _inside(path)
        _real[real](path, *args, **kwargs)
        if name is not None:
            step(f"{real} {name}")

    return remove


class _Watched:
    """A file object below the folder, open for writing: its writes, flushes and close are steps."""

    def __init__(self, file: Any, name: str, fd: int | None) -> None:
        self._file, self._name, self._fd = file, name, fd

    def write(self, data: Any) -> Any:
        written = self._file.write(data)
        step(f"write {self._name}")
        return written

    def flush(self) -> None:
        self._file.flush()
        step(f"flush {self._name}")

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        if self._fd is not None:
            _tracked.pop(self._fd, None)
        step(f"close {self._name}")

    def __enter__(self) -> _Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        return iter(self._file)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    opened = _real_open(file, mode, *args, **kwargs)
    writing = any(c in mode for c in "wax+")
    if isinstance(file, int):  # os.fdopen
        name = _tracked.get(file)
        return _Watched(opened, name, file) if name is not None and writing else opened
    name = _inside(file)
    if name is None or not writing:
        return opened
    step(f"open {name}")
    return _Watched(opened, name, None)


os.open = _open
os.write = _write
os.fsync = _fsync
os.close = _close
os.replace = _renamer("replace")
os.rename = _renamer("rename")
os.unlink = _remover("unlink")
os.remove = _remover("remove")
io.open = builtins.open = _io_open

if __name__ == "__main__":
    from floe.cli import main

    status = main(sys.argv[1:])
    REPORT.write("done\n")
    raise SystemExit(status)
