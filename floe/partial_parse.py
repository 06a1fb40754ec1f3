"""Partial parsing: what a platform compile depended on, so that a repeat compiles only what changed.

Like dbt's partial parsing, ``floe compile DIR`` records, for every product it compiled, what that
compile read, in ``DIR/target/floe/partial_parse.json`` (plain JSON, written atomically). The next
``floe compile DIR`` reuses a product, without reading or writing anything of it, when all of
these are as they were:

- its ``floe.yaml`` and every manifest of its chain (size, mtime, ctime and inode; the content's
  hash when the stat differs, or when it was taken too soon after the file changed to be trusted);
- where each ``platform:`` / ``parent:`` reference resolves to (a retargeted symlink changes the
  chain even when no file does), and where the product directory itself resolves to;
- each transform folder: whether it exists, and which directory it is (the compile checks that);
- its artifacts under ``target/floe/`` (deleted or edited artifacts are written again).

The whole cache is ignored, and every product compiled, when the floe version, the installed
engines (names, versions, distributions), floe's schema files, the directory or the home directory
differ; so is a cache that cannot be read or does not have the expected shape. Products that
failed are never recorded: they are compiled, and their problems reported, every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from floe.artifacts import write_atomic
from floe.compiled import PRODUCT_FILE
from floe.fingerprints import (  # re-exported: partial parsing's vocabulary
    RACY_NS,
    Fingerprint,
    artifact_stat,
    digest,
    fingerprint,
    folders_digest,
    same_file,
    unchanged,
)

FORMAT = "floe-partial-parse/1"
CACHE_FILE = "partial_parse.json"

__all__ = [
    "RACY_NS",
    "Fingerprint",
    "artifact_stat",
    "digest",
    "fingerprint",
    "folders_digest",
    "same_file",
    "unchanged",
]


@attrs.frozen
class Link:
    """One ``platform:``/``parent:`` reference: the path as joined, what it resolved to, that file."""

    joined: str
    resolved: str
    file: Fingerprint


@attrs.frozen
class Entry:
    """What one product's compile depended on and wrote."""

    file: Fingerprint
    real: str
    chain: tuple[Link, ...]
    folders: tuple[str, ...]
    folders_digest: str
    artifacts: tuple[tuple[str, int, int, int], ...]
    """Each artifact's path relative to the product, size, mtime_ns and inode as written."""


def environment_key(engines: Iterable[tuple[str, str, str]], root: Path) -> dict[str, Any]:
    """What every entry depends on: when any of it differs, the whole cache is ignored."""
    from floe import __version__

    return {
        "floe": __version__,
        "python": sys.version.split()[0],
        "engines": sorted([list(e) for e in engines]),
        "schemas": schemas_digest(),
        "root": os.path.realpath(root),
        "home": os.path.expanduser("~"),
    }


def schemas_digest() -> str:
    """A digest of floe's JSON Schema files, which decide how every file is typed and validated."""
    from importlib import resources

    hasher = hashlib.blake2b(digest_size=16)
    pending = [resources.files("floe.jsonschema")]
    while pending:
        folder = pending.pop()
        for item in sorted(folder.iterdir(), key=lambda i: i.name):
            if item.is_dir():
                pending.append(item)
            elif item.name.endswith(".json"):
                hasher.update(item.name.encode() + b"\0" + item.read_bytes() + b"\0")
    return hasher.hexdigest()


_REASONS = {
    "floe": "floe's version changed",
    "python": "the Python version changed",
    "engines": "the installed engines changed",
    "schemas": "floe's schema files changed",
    "root": "it was written for another directory",
    "home": "the home directory changed",
}


def load(path: Path, key: Mapping[str, Any]) -> tuple[dict[str, Entry], str | None]:
    """The entries of the cache at ``path``, or none and why the cache is not used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, "no partial parse cache yet"
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"cache ignored: cannot read it ({type(exc).__name__})"
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}, "cache ignored: not a floe partial parse cache of this format"
        stored = data["key"]
        for name, reason in _REASONS.items():
            if stored.get(name) != key[name]:
                return {}, f"cache ignored: {reason}"
        entries = {str(name): _entry(raw) for name, raw in data["products"].items()}
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return {}, "cache ignored: it is corrupted"
    return entries, None


def _entry(raw: Any) -> Entry:
    """An entry, strictly checked: anything unexpected raises and the whole cache is ignored."""
    if not isinstance(raw, dict) or set(raw) != {
        "file",
        "real",
        "chain",
        "folders",
        "folders_digest",
        "artifacts",
    }:
        raise ValueError("unexpected entry")
    chain = []
    for link in _list(raw["chain"]):
        joined, resolved, file = _list(link, 3)
        chain.append(Link(_str(joined), _str(resolved), _fingerprint(file)))
    artifacts = []
    for item in _list(raw["artifacts"]):
        name, size, mtime, inode = _list(item, 4)
        artifacts.append((_str(name), _int(size), _int(mtime), _int(inode)))
    return Entry(
        _fingerprint(raw["file"]),
        _str(raw["real"]),
        tuple(chain),
        tuple(_str(f) for f in _list(raw["folders"])),
        _str(raw["folders_digest"]),
        tuple(artifacts),
    )


def _fingerprint(raw: Any) -> Fingerprint:
    size, mtime, ctime, inode, content, trusted = _list(raw, 6)
    if not isinstance(trusted, bool):
        raise TypeError("trusted")
    return (_int(size), _int(mtime), _int(ctime), _int(inode), _str(content), trusted)


def _list(value: Any, length: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise TypeError("expected a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def save(path: Path, key: Mapping[str, Any], entries: Mapping[str, Entry]) -> None:
    """Write the cache atomically: a concurrent reader sees the old one or the new one."""
    products = {name: _dump(entry) for name, entry in sorted(entries.items())}
    data = {"format": FORMAT, "key": dict(key), "products": products}
    write_atomic(path, json.dumps(data, separators=(",", ":")) + "\n")


def _dump(entry: Entry) -> dict[str, Any]:
    return {
        "file": list(entry.file),
        "real": entry.real,
        "chain": [[link.joined, link.resolved, list(link.file)] for link in entry.chain],
        "folders": list(entry.folders),
        "folders_digest": entry.folders_digest,
        "artifacts": [list(a) for a in entry.artifacts],
    }


class Checker:
    """Decides whether an entry still describes what compiling its product would give.

    Results about shared files (manifests, resolved references) are remembered for one run, so
    500 products below the same two manifests check those manifests once.
    """

    def __init__(self) -> None:
        self._real: dict[str, str] = {}
        self._files: dict[tuple[str, Fingerprint], Fingerprint | None] = {}

    def realpath(self, path: str) -> str:
        real = self._real.get(path)
        if real is None:
            real = self._real[path] = os.path.realpath(path)
        return real

    def real_dir(self, path: str) -> str:
        """``os.path.realpath(path)``, resolving the (shared) parent once: one lstat per product."""
        parent, name = os.path.split(path)
        candidate = os.path.join(self.realpath(parent), name)
        if name in ("", ".", "..") or os.path.islink(candidate):
            return os.path.realpath(path)
        return candidate

    def resolve_reference(self, real_dir: str, reference: str) -> str:
        """``os.path.realpath(os.path.join(real_dir, reference))`` for a symlink-free ``real_dir``.

        Leading ``..`` of the reference step up lexically (exact on a symlink-free path); the rest
        is resolved once for every product that names it.
        """
        parts = reference.split("/")
        base = real_dir
        while parts and parts[0] in ("..", ".", ""):
            if parts.pop(0) == "..":
                base = os.path.dirname(base)
        return self.realpath(os.path.join(base, *parts)) if parts else self.realpath(base)

    def file(self, path: str, recorded: Fingerprint) -> Fingerprint | None:
        """The file's fingerprint now when its content is as recorded, else None."""
        key = (path, recorded)
        if key not in self._files:
            self._files[key] = unchanged(path, recorded)
        return self._files[key]

    def entry(self, product_dir: str, entry: Entry) -> Entry | None:
        """``entry`` refreshed (new stats of files whose content is unchanged), or None if stale."""
        try:
            return self._entry(product_dir, entry)
        except (OSError, ValueError, RuntimeError):  # e.g. a NUL in a path of a tampered cache
            return None

    def _entry(self, product_dir: str, entry: Entry) -> Entry | None:
        real = self.real_dir(product_dir)
        if real != entry.real:
            return None
        file = self.file(os.path.join(product_dir, PRODUCT_FILE), entry.file)
        if file is None:
            return None
        chain = []
        for i, link in enumerate(entry.chain):
            if i == len(entry.chain) - 1 and os.sep == "/" and link.joined.startswith(product_dir + "/"):
                resolved = self.resolve_reference(real, link.joined[len(product_dir) + 1 :])
            else:
                resolved = self.realpath(link.joined)
            if resolved != link.resolved:
                return None
            current = self.file(link.resolved, link.file)
            if current is None:
                return None
            chain.append(attrs.evolve(link, file=current))
        if folders_digest(product_dir, entry.folders) != entry.folders_digest:
            return None
        for name, *recorded in entry.artifacts:
            if artifact_stat(os.path.join(product_dir, name)) != tuple(recorded):
                return None
        return attrs.evolve(entry, file=file, chain=tuple(chain))
