"""What a file, a folder or an artifact looked like, told apart cheaply: the stats and digests that
partial parsing (:mod:`floe.partial_parse`) and the compile stamp (:mod:`floe.compile_stamp`)
record and compare.

Kept free of attrs and of floe's typed manifests: the compile stamp checks these before anything
else of floe is imported.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

RACY_NS = 2_000_000_000
"""A stat taken less than this after the file's last change may not tell a later change apart
(coarse file-system clocks): such a fingerprint is checked by content next time."""

Fingerprint = tuple[int, int, int, int, str, bool]
"""size, mtime_ns, ctime_ns, inode, content digest, whether the stat alone may be trusted."""


def digest(data: bytes) -> str:
    return str(blake2b()(data, digest_size=16).hexdigest())


def blake2b() -> Callable[..., Any]:
    """:func:`hashlib.blake2b`, imported when first needed and without :mod:`hashlib` when the
    interpreter has it built in: ``import hashlib`` loads OpenSSL's bindings (~2 ms of a start-up
    that needs only BLAKE2)."""
    try:
        from _blake2 import blake2b as built_in
    except ImportError:  # pragma: no cover - an interpreter without the built-in module
        from hashlib import blake2b as from_hashlib

        return from_hashlib
    return cast("Callable[..., Any]", built_in)


def fingerprint(path: str) -> Fingerprint | None:
    """The file's fingerprint, or None when it cannot be read; stat first, then content."""
    now = time.time_ns()
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError):  # ValueError: a NUL character in the path
        return None
    trusted = now - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest(data), trusted)


def same_file(a: Fingerprint | None, b: Fingerprint | None) -> bool:
    """Whether two fingerprints describe the same file state (trust aside)."""
    return a is not None and b is not None and a[:5] == b[:5]


def unchanged(path: str, recorded: Fingerprint) -> Fingerprint | None:
    """The file's fingerprint now when its content is as ``recorded``, else None.

    A trusted fingerprint whose stat is unchanged is the file as recorded, without reading it;
    otherwise the content decides.
    """
    if recorded[5]:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == recorded[:4]:
            return recorded
        if st.st_size != recorded[0]:
            return None
    current = fingerprint(path)
    return current if current is not None and current[4] == recorded[4] else None


def folders_digest(product_dir: str, folders: Iterable[str]) -> str:
    """Which directory each transform folder is (device, inode), or that it does not exist."""
    ids: list[Any] = []
    for raw in folders:
        try:
            st = os.stat(os.path.join(product_dir, raw))
            ids.append([raw, st.st_dev, st.st_ino])
        except (OSError, ValueError):
            ids.append([raw, None])
    return digest(json.dumps(ids).encode())


def artifact_stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)
