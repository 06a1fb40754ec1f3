"""Writing floe's artifacts atomically: a reader sees the old file or the new one, never half.

A file is written to a temporary sibling (``.<name>.<random>.tmp``), synced, and renamed over the
target. A process killed mid-write (``kill -9``, a failed node) leaves its temporary file behind,
so every writer holds an exclusive ``flock`` on its temporary file while it writes: the next write
of the same target (or one sweep of its folder, :func:`remove_stale_temporaries`, by a caller
writing many files there) removes the temporary files nobody holds, those of writers that died.
The operating system releases a dead process's locks, whatever killed it; a live writer's file is
never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from floe.errors import FloeError, Problem

PRIVATE_UMASK = 0o077
"""The umask of the processes a run starts: what they create is their user's alone (0700, 0600)."""
CREATE_ATTEMPTS = 5
TEMPORARY = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{12}\.tmp")
"""The name of a temporary file: ``.<target>.<12 hex digits>.tmp``."""
OUT_OF_ROOM = {
    errno.ENOSPC: "free space on the filesystem that holds it",
    errno.EDQUOT: "free space within your disk quota, or raise it",
    errno.EFBIG: "raise the limit on the size of a file this process may write (ulimit -f)",
    errno.EROFS: "make that filesystem writable",
}
"""The errors of a write the system refused for want of room (or of a writable disk), and what to do."""


class NoRoomError(FloeError, OSError):
    """A write the system refused for want of room, as a user reads it: what, why, what to do.

    Still an :class:`OSError` (its ``errno`` the system's), so a caller that writes a file only
    to save time later (a cache) and ignores a failed write goes on ignoring it."""


def cannot_write(what: Path | str, exc: OSError) -> NoRoomError:
    """:class:`NoRoomError` for the write of ``what`` that failed with ``exc``."""
    code = exc.errno or 0
    error = NoRoomError(
        [
            Problem(
                f"could not write {what}: {os.strerror(code)} ({errno.errorcode.get(code, code)})",
                fix=f"{OUT_OF_ROOM.get(code, 'free space there')}, then run again; what was written "
                "before is intact and nothing needs cleaning up",
            )
        ]
    )
    error.errno = code
    return error


LOW_ROOM = 2**20
"""Bytes free under which a failure to write (a database saying "disk I/O error") is blamed on room."""


def out_of_room(path: Path, said: str = "") -> tuple[str, str] | None:
    """Why writing under ``path`` failed for want of room, and what to do, if it did: its
    filesystem is (nearly) full, or ``said`` (another process's error) names one of
    :data:`OUT_OF_ROOM`'s errors (a file size limit, a quota)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        stats = None
    if stats is not None and stats.f_bavail * stats.f_frsize < LOW_ROOM:
        free = stats.f_bavail * stats.f_frsize
        return f"no space left on device ({free} bytes free)", OUT_OF_ROOM[errno.ENOSPC]
    for code, fix in OUT_OF_ROOM.items():
        if os.strerror(code) in said:
            return f"{os.strerror(code)} ({errno.errorcode[code]})", fix
    return None


@contextlib.contextmanager
def writing(what: Path | str) -> Iterator[None]:
    """Turn a write refused for want of room (:data:`OUT_OF_ROOM`) into a :class:`FloeError`
    naming the file (the system's, else ``what``) and the cause; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in OUT_OF_ROOM or isinstance(exc, NoRoomError):
            raise
        raise cannot_write(exc.filename or what, exc) from None


def private_directory(path: Path) -> Path:
    """Create the folder ``path`` readable by its owner only (``0o700``), or make it so.

    ``<product>/.floe`` and ``<product>/target/floe`` hold the catalog's files, the run's logs and
    dbt's artifacts (compiled SQL, results): nobody but their user reads them. An existing folder
    is narrowed when this user owns it; one that is a symbolic link is not followed.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        status = os.lstat(path)
        if status.st_uid == os.getuid() and status.st_mode & 0o077 and not os.path.islink(path):
            os.chmod(path, 0o700)
    return path


def open_private(path: Path) -> IO[str]:
    """Open ``path`` to write text (truncated), created ``0o600`` when new: a log of the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def write_atomic(path: Path, text: str, *, clean: bool = True) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and an atomic rename.

    A new file gets mode ``0o600`` (less the umask); a replaced file keeps the mode it had.

    :param clean: first remove the temporary files of ``path`` that dead writers left; a caller
        writing many files into one folder does it once, with :func:`remove_stale_temporaries`.
    """
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if clean:
            remove_stale_temporaries(path.parent, path.name)
        fd, tmp = _create_locked(path)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # closing it releases the lock
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _sync_directory(path.parent)


def write_if_changed(path: Path, text: str, *, clean: bool = True) -> bool:
    """:func:`write_atomic` ``text`` to ``path`` unless the file already holds exactly it; whether it wrote.

    A file left alone was renamed into place after being synced, by an earlier write: it is
    already durable, and rewriting it would only cost a sync (and change its mtime for nothing).
    """
    data = text.encode("utf-8")
    try:
        with open(path, "rb") as handle:
            if handle.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    write_atomic(path, text, clean=clean)
    return True


def remove_stale_temporaries(folder: Path, target: str | None = None) -> list[Path]:
    """Remove the temporary files in ``folder`` (of ``target`` only, if given) that writers killed
    mid-write left; return them."""
    removed: list[Path] = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY.fullmatch(entry)
        if match is None or (target is not None and match["target"] != target):
            continue
        name = os.path.join(folder, entry)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not a plain file of ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # held: its writer is alive
            continue
        try:
            if _same_file(name, fd):  # still the file that was locked, not a new one by that name
                os.unlink(name)
                removed.append(Path(name))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _create_locked(path: Path) -> tuple[int, Path]:
    """A new temporary file next to ``path``, open and exclusively locked by this process.

    Between its creation and its lock, another writer's cleanup may lock and remove it: then the
    locked file is no longer the one by that name, and another name is tried.
    """
    for _ in range(CREATE_ATTEMPTS):
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(str(tmp), fd):
                return fd, tmp
        except OSError:
            pass
        os.close(fd)
    raise OSError(f"could not create a temporary file next to {path}")


def _same_file(name: str, fd: int) -> bool:
    try:
        found = os.stat(name, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)


def _sync_directory(folder: Path) -> None:
    """Make the rename durable: sync the directory entry (where directories can be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
