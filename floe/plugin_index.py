"""The entry points of floe's plugin group, found without scanning every installed distribution.

Asking :mod:`importlib.metadata` for one group's entry points imports it (with :mod:`email`,
:mod:`zipfile`, :mod:`csv`…) and reads the metadata of every distribution on ``sys.path``: the
largest part of a short command's start-up. What it answers depends only on files that are cheap
to stat, so the answer is kept per ``sys.path`` entry in a user cache file, with a *stamp* of that
entry: the entry's own mtime (a distribution installed or removed adds or removes a ``*.dist-info``
folder there) and the mtime, size and inode of every ``entry_points.txt`` in it (an entry point
edited in place). A stamp that differs, or a cache file that cannot be read, means a scan of that
entry with :mod:`importlib.metadata` and a rewrite of the file; nothing else is trusted. A stamp
holding an mtime of the last few seconds is not kept: a file can change again within the same
timestamp tick, so what was just written is scanned again until it has settled.

Only what the entry points *say* is kept: the plugins themselves are imported on every run, so a
plugin that breaks or changes is seen as it is now.

The cache is ``$XDG_CACHE_HOME/floe/entry-points.json`` (``~/.cache`` without it), private to
the user (``0600`` in a ``0700`` folder), written atomically. ``FLOE_NO_PLUGIN_CACHE=1`` bypasses it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple

CACHE_VERSION = 1
CACHE_FILE = "entry-points.json"
NO_CACHE_ENV = "FLOE_NO_PLUGIN_CACHE"
SETTLE_NS = 2_000_000_000
"""A file modified less than this long ago (2 s) may change again unseen: its entry is not cached."""
MAX_ENTRIES = 64
"""At most this many ``sys.path`` entries are remembered (the least recently used are dropped)."""
METADATA_SUFFIXES = (".dist-info", ".egg-info")

Stamp = list[Any]


class EntryPointRecord(NamedTuple):
    """One entry point: its name, where it points (``module:attr``) and its distribution's name.

    (A named tuple rather than an attrs class: attrs compiles each class's methods at import.)
    """

    name: str
    module: str
    attr: str | None
    distribution: str

    def load(self) -> object:
        """Import the module and return the object the entry point names (as ``EntryPoint.load``)."""
        found: object = import_module(self.module)
        for part in (self.attr or "").split("."):
            if part:
                found = getattr(found, part)
        return found


def entry_points(group: str, environ: Mapping[str, str] | None = None) -> list[EntryPointRecord]:
    """The entry points of ``group`` that :func:`importlib.metadata.entry_points` would find, in its order."""
    env = os.environ if environ is None else environ
    if env.get(NO_CACHE_ENV) or _other_distribution_finders():
        return _scan_everything(group)
    cache_path = cache_file(env)
    cached = _read(cache_path)
    entries = cached.get("entries", {}) if cached.get("group") == group else {}
    found: list[EntryPointRecord] = []
    seen: set[str] = set()  # a distribution earlier on sys.path hides any later one of that name
    changed = False
    stamps: list[list[Any]] = []
    for raw in sys.path:
        where = os.path.abspath(raw or ".")
        stamp = path_stamp(where)
        if stamp is None:
            continue  # no such entry, or no distribution in it
        stamps.append([where, stamp])
        known = entries.pop(where, None)
        if not isinstance(known, dict) or known.get("stamp") != stamp:
            known = {"stamp": stamp, "distributions": _scan_entry(where, group)}
            changed = True
        if not settled(stamp):
            changed = True  # dropped from the cache (a previous run may have kept a stale answer)
        else:
            entries[where] = known  # re-inserted last: the most recently used
        for normalized, dist, points in known["distributions"]:
            if normalized in seen:
                continue
            seen.add(normalized)
            found.extend(EntryPointRecord(name, module, attr, dist) for name, module, attr in points)
    if changed:
        while len(entries) > MAX_ENTRIES:
            del entries[next(iter(entries))]
        _write(cache_path, {"version": CACHE_VERSION, "group": group, "entries": entries})
    _last_scans[group] = (list(sys.path), stamps, list(found))
    return found


_last_scans: dict[str, tuple[list[str], list[list[Any]], list[EntryPointRecord]]] = {}


def last_scan(group: str) -> tuple[list[list[Any]], list[EntryPointRecord]] | None:
    """What this process's last :func:`entry_points` of ``group`` found through the cache: the
    stamp of each ``sys.path`` entry holding distributions (``[where, stamp]``, in order) and the
    entry points; None when it did not use the cache, or ``sys.path`` changed since (the compile
    stamp records what the compile's discovery depended on, without stamping it all again)."""
    last = _last_scans.get(group)
    if last is None or last[0] != sys.path:
        return None
    return last[1], last[2]


def cache_file(environ: Mapping[str, str]) -> Path:
    """Where the cache of this interpreter lives: one file per ``sys.prefix``."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "floe" / f"{_prefix_tag()}-{CACHE_FILE}"


def _prefix_tag() -> str:
    import zlib

    return format(zlib.crc32(os.fsencode(sys.prefix)), "08x")


def _other_distribution_finders() -> bool:
    """Whether a finder other than the path finder provides distributions (then scan them all).

    The ``importlib_metadata`` backport (which snowflake-connector-python and others import) adds
    its own ``MetadataPathFinder`` to ``sys.meta_path``: it reads the same ``sys.path`` folders as
    the standard path finder, so it is not another source of distributions.
    """
    from importlib.machinery import PathFinder

    return any(
        finder is not PathFinder and hasattr(finder, "find_distributions") and not _reads_sys_path(finder)
        for finder in sys.meta_path
    )


def _reads_sys_path(finder: object) -> bool:
    kind = type(finder)
    return kind.__name__ == "MetadataPathFinder" and kind.__module__.split(".")[0] == "importlib_metadata"


def path_stamp(where: str) -> Stamp | None:
    """What the entry points found in ``where`` depend on; ``None`` when it holds no distribution."""
    try:
        info = os.stat(where)
    except OSError:
        return None
    if not os.path.isdir(where):  # a zip or an egg on sys.path
        return [info.st_mtime_ns, info.st_size, info.st_ino]
    try:
        children = os.listdir(where)
    except OSError:
        return None
    egg = os.path.basename(where).lower().endswith(".egg")  # an unpacked egg: its EGG-INFO folder
    names = sorted(
        n for n in children if n.lower().endswith(METADATA_SUFFIXES) or (egg and n.lower() == "egg-info")
    )
    if not names:
        return None
    stamp: Stamp = [info.st_mtime_ns, info.st_ino]
    for name in names:
        try:
            file = os.stat(os.path.join(where, name, "entry_points.txt"))
        except OSError:  # none (or an egg-info file): one appearing changes the stamp
            stamp.append([name, None])
            continue
        stamp.append([name, file.st_mtime_ns, file.st_size, file.st_ino])
    return stamp


def settled(stamp: Stamp) -> bool:
    """Whether every mtime in ``stamp`` is older than :data:`SETTLE_NS`."""
    import time

    newest = max(
        [stamp[0]] + [item[1] for item in stamp[2:] if isinstance(item, list) and item[1] is not None]
    )
    return bool(time.time_ns() - newest >= SETTLE_NS)


def _scan_entry(where: str, group: str) -> list[list[Any]]:
    """Every distribution in ``where`` (normalized name, name, entry points of ``group``), in order."""
    from importlib import metadata

    distributions: list[list[Any]] = []
    for dist in metadata.distributions(path=[where]):
        name = dist.metadata["Name"] or ""
        points = [[ep.name, ep.module, ep.attr] for ep in dist.entry_points if ep.group == group]
        distributions.append([_normalized(name), name, points])
    return distributions


def _scan_everything(group: str) -> list[EntryPointRecord]:
    from importlib import metadata

    return [
        EntryPointRecord(
            ep.name, ep.module, ep.attr, ep.dist.name if ep.dist is not None else "unknown distribution"
        )
        for ep in metadata.entry_points(group=group)
    ]


def _normalized(name: str) -> str:
    """A distribution name as :mod:`importlib.metadata` compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _read(path: Path) -> dict[str, Any]:
    """The cache's content; empty when absent, unreadable, not ours or malformed (then rewritten).

    It names the modules floe imports, so a file another user owns or could have written (or a
    symbolic link) is not read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return {}
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("entries"), dict)
    ):
        return {}
    entries = {where: known for where, known in data["entries"].items() if _well_formed(known)}
    return {**data, "entries": entries}


def _well_formed(known: Any) -> bool:
    if not isinstance(known, dict) or not isinstance(known.get("stamp"), list):
        return False
    dists = known.get("distributions")
    return isinstance(dists, list) and all(
        isinstance(d, list)
        and len(d) == 3
        and isinstance(d[0], str)
        and isinstance(d[1], str)
        and isinstance(d[2], list)
        and all(_well_formed_point(p) for p in d[2])
        for d in dists
    )


def _well_formed_point(point: Any) -> bool:
    return (
        isinstance(point, list)
        and len(point) == 3
        and isinstance(point[0], str)
        and isinstance(point[1], str)
        and (point[2] is None or isinstance(point[2], str))
    )


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write the cache atomically, private to the user; a cache that cannot be written is no error."""
    from floe.artifacts import write_atomic

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _replace_unless_private(path)
        write_atomic(path, json.dumps(data, separators=(",", ":")))
    except OSError:
        pass


def _replace_unless_private(path: Path) -> None:
    """Remove a cache file others may read: the new one is then created ``0600``."""
    try:
        mode = os.stat(path, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if mode & 0o077 or not os.path.isfile(path) or os.path.islink(path):
        os.unlink(path)
