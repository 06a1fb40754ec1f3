"""The life of the processes a run starts: each dies with ``floe run``, and its end is told in words.

:func:`die_with` makes a child process of ``floe run`` (the fork server, the embedded catalog's
process) receive SIGKILL the moment ``floe run`` dies, whatever the child is doing (importing
dbt, serving a request): ``kill -9`` of ``floe run``, or the kernel's out-of-memory killer
choosing it, must not leave a server behind holding the product's files or port.

:func:`ended` says how a process ended from its exit status, as ``subprocess`` reports it (a
negative code is the signal that killed it). SIGKILL is also what the kernel's out-of-memory
killer sends, so a process killed by it is said to be, with what to check.

:func:`note` writes a line to the process's own log: a log the disk has no room for loses the
line, never the process (the write that matters then fails where it is made, and says so).

Importing this module imports only the standard library.
"""

from __future__ import annotations

import os
import signal
import sys

OOM_HINT = (
    "SIGKILL is what the kernel's out-of-memory killer sends when memory runs out: check the "
    "kernel log (dmesg) for 'Out of memory', and give the compute more memory "
    "(resources.limits.memory in the manifest, or the machine's) or less work at once (threads)"
)


def die_with(parent: int) -> None:
    """Get SIGKILL when process ``parent`` dies (Linux); exit at once if it is gone already."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the end of the parent's pipe still stops the child
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def signal_text(number: int) -> str:
    """``signal SIGKILL (9)``, or ``signal 40`` for a number without a name."""
    try:
        return f"signal {signal.Signals(number).name} ({number})"
    except ValueError:
        return f"signal {number}"


def ended(code: int | None) -> str:
    """How a process ended: ``killed by signal SIGKILL (9)``, ``exit code 3``, or ``no exit code``."""
    if code is None:
        return "no exit code"
    if code < 0:
        return f"killed by {signal_text(-code)}"
    return f"exit code {code}"


def killed_by_sigkill(code: int | None) -> bool:
    return code == -signal.SIGKILL


def note(line: str, stream: str = "stdout") -> None:
    """Write ``line`` to this process's log (its ``stdout`` or ``stderr``), flushed; a full disk
    or a closed log loses the line, not the process."""
    out = sys.stdout if stream == "stdout" else sys.stderr
    try:
        print(line, file=out, flush=True)
    except (OSError, ValueError):
        pass
