"""A repeat of ``floe compile PRODUCT`` with nothing changed, answered from a stamp of its inputs.

While a data engineer iterates on models, most ``floe compile`` runs see the same manifests, the
same floe and the same engines as the last one: they print what it printed and write nothing.
After a successful compile of a data product, the ``floe`` program records in the product's
private folder (``.floe/compile-stamp.json``, ``0600``, written atomically) everything that
compile depended on, each by something cheap to stat:

- the command line, the working directory and the interpreter (executable, prefix, version,
  ``sys.path``);
- the product's ``floe.yaml`` and every manifest of its chain (their stats; their content's digest
  decides when a stat was taken too soon after a change to be trusted), where each
  ``platform:``/``parent:`` reference resolves to, which directory the product and each of its
  transform folders is;
- the code that ran: every file of floe's package and of each engine package loaded (and what
  each of their folders holds), the source file of every other module loaded, what each folder of
  ``sys.path`` holds (a module added there could shadow one the compile imported), and the entry-point stamp of every ``sys.path``
  entry (:mod:`floe.plugin_index`: a distribution installed, removed or changed in place);
- the environment variables the command consulted, each by a digest keyed with a random key kept
  in the stamp (a secret's value is never written);
- the artifacts it wrote or kept, and the private folders (stat and mode).

The next ``floe compile`` with the same command line checks all of these first and, when every
one is as recorded, prints what the compile would print (its summary and ``artifacts unchanged
in …``) and exits 0, without importing the typed manifests, attrs, cattrs, pluggy or jsonschema.
Anything different, a missing stamp, or one that is not the user's own and private, and the compile
runs as usual (reporting what it finds: an invalid manifest, a broken plugin) and is recorded again.
A compile that failed, wrote anything to stderr, or read a file that changed while it ran is never
recorded; nor is one whose code or plugins changed in the last seconds (a file can change again
within one timestamp tick). ``FLOE_NO_COMPILE_STAMP=1`` turns all of this off.

This module imports only the standard library and :mod:`floe.fingerprints` until a compile is
recorded.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from floe.fingerprints import (
    RACY_NS,
    Fingerprint,
    artifact_stat,
    blake2b,
    fingerprint,
    folders_digest,
    same_file,
)
from floe.fingerprints import unchanged as unchanged_file
from floe.layout import ARTIFACT_FILES, ARTIFACT_PARTS, STATE_DIR

if TYPE_CHECKING:
    from floe.compiled import Compiled
    from floe.plugin_index import EntryPointRecord

FORMAT = "floe-compile-stamp/1"
STAMP_FILE = "compile-stamp.json"
OFF_ENV = "FLOE_NO_COMPILE_STAMP"
WHOLE_ENVIRONMENT = "*"
"""Recorded instead of names when the command read the whole environment (then all of it counts)."""


def eligible(argv: Sequence[str]) -> bool:
    """Whether the command line ``argv`` (without the program) may be answered from a stamp:
    ``compile PATH`` and nothing else, with :data:`OFF_ENV` unset."""
    return (
        len(argv) == 2
        and argv[0] == "compile"
        and not argv[1].startswith("-")
        and not os.environ.get(OFF_ENV)
    )


def stamp_path(product_dir: str) -> str:
    return os.path.join(product_dir, STATE_DIR, STAMP_FILE)


def _product_dir(raw: str) -> str:
    """The product directory a compile of ``raw`` would write the stamp in (a guess: the stamp's
    own record of the command line and the product's path decides)."""
    return raw if os.path.isdir(raw) else os.path.dirname(raw) or "."


# -- the check at start-up ---------------------------------------------------------------------


def replay(argv: Sequence[str]) -> list[str] | None:
    """The lines the compile ``argv`` printed last time, when every input it had is unchanged;
    None when anything differs or cannot be told (then the compile must run)."""
    try:
        data = _read(stamp_path(_product_dir(argv[1])))
        if data is None or data.get("format") != FORMAT:
            return None
        if not _still(data, argv):
            return None
        lines = data["lines"]
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            return None
        return lines
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None  # a stamp of another shape (tampered, another version): compile


def _read(path: str) -> dict[str, Any] | None:
    """The stamp at ``path`` when it is a regular file of this user's, private to them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, ValueError):
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or not _regular(info.st_mode):
            return None
        data = json.loads(handle.read())
    return data if isinstance(data, dict) else None


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _still(data: dict[str, Any], argv: Sequence[str]) -> bool:
    """Whether every input recorded in ``data`` is as it was (what changes most often first: the
    manifests being edited)."""
    if data["argv"] != list(argv) or data["cwd"] != os.getcwd() or data["python"] != _interpreter():
        return False
    product, real = data["product"]
    if os.path.realpath(product) != real:
        return False
    for path, recorded in data["manifests"]:
        if unchanged_file(path, _fingerprint(recorded)) is None:
            return False
    for joined, resolved in data["links"]:
        if os.path.realpath(joined) != resolved:
            return False
    folders, digest = data["transform_folders"]
    if folders_digest(product, folders) != digest:
        return False
    key = bytes.fromhex(data["key"])
    environment = data["environment"]
    if environment != environment_digests(key, list(environment)):
        return False
    for path, size, mtime, inode in data["artifacts"]:
        if artifact_stat(path) != (size, mtime, inode):
            return False
    for path, mode, uid, inode in data["folders_private"]:
        st = os.lstat(path)
        if (st.st_mode, st.st_uid, st.st_ino) != (mode, uid, inode):
            return False
    if data["import_path"] != import_path_listings():
        return False
    for folder, names in data["code_folders"]:
        if _listing(folder) != names:
            return False
    for path, *recorded in data["code"]:
        if _code_stat(path) != recorded:
            return False
    return bool(data["plugins"] == plugin_stamps())


def _fingerprint(raw: list[Any]) -> Fingerprint:
    size, mtime, ctime, inode, content, trusted = raw
    return (int(size), int(mtime), int(ctime), int(inode), str(content), bool(trusted))


def _interpreter() -> list[Any]:
    """The interpreter and how it runs: its flags (``-O``, ``-X dev``…) and warning filters
    (``-W error`` turns a warning into a failed compile) count; ``-X importtime`` does not."""
    return [sys.executable, sys.prefix, sys.version, list(sys.path), list(sys.flags), list(sys.warnoptions)]


def _listing(folder: str) -> list[str]:
    """What a folder of code holds (a module added or removed), bytecode caches aside: its names,
    not its mtime, which every bytecode cache written changes."""
    return sorted(name for name in os.listdir(folder) if name != "__pycache__")


def import_path_listings() -> list[list[str]]:
    """A digest of the names in each folder of ``sys.path``: a module or package added or removed
    anywhere on it (one that would shadow a module the compile imported) changes one."""
    hasher = blake2b()
    listings = []
    for raw in sys.path:
        where = os.path.abspath(raw or ".")
        try:
            names = sorted(os.listdir(where))
        except (OSError, ValueError):
            continue  # not a folder (a zip: its stat is in the entry-point stamps), or gone
        text = "\0".join(names).encode("utf-8", "surrogateescape")
        listings.append([where, hasher(text, digest_size=16).hexdigest()])
    return listings


def _code_stat(path: str) -> list[int] | None:
    """What tells a file or folder of code changed: size, mtime, ctime, inode (None: gone)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def plugin_stamps() -> list[list[Any]]:
    """The entry-point stamp of every ``sys.path`` entry holding distributions, in order (as
    :func:`floe.plugin_index.entry_points` stamps them)."""
    from floe.plugin_index import path_stamp

    stamps: list[list[Any]] = []
    for raw in sys.path:
        where = os.path.abspath(raw or ".")
        stamp = path_stamp(where)
        if stamp is not None:
            stamps.append([where, stamp])
    return stamps


def environment_digests(key: bytes, names: Sequence[str]) -> dict[str, str]:
    """A keyed digest of each variable's value now (or of its absence); for
    :data:`WHOLE_ENVIRONMENT`, of every variable's name and value."""
    hasher = blake2b()
    digests: dict[str, str] = {}
    for name in names:
        if name == WHOLE_ENVIRONMENT:
            text = "\0".join(f"{k}={v}" for k, v in sorted(os.environ.items()))
        else:
            value = os.environ.get(name)
            text = f"{name}\0" + ("\1" if value is None else f"={value}")
        digests[name] = hasher(text.encode("utf-8", "surrogateescape"), key=key, digest_size=16).hexdigest()
    return digests


# -- recording a compile -------------------------------------------------------------------------


class Recording:
    """What the running ``floe compile`` consulted: the variables of the environment it read, the
    manifests (fingerprinted before their first read), whether it wrote to stderr."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.environment: set[str] = set()
        self.read_first: dict[str, Fingerprint | None] = {}
        self.wrote_stderr = False

    def before_read(self, path: object) -> None:
        """Fingerprint ``path`` before the compile first reads it (a ``ManifestCache`` hook)."""
        self.read_first.setdefault(str(path), fingerprint(str(path)))


_recording: Recording | None = None


def recording() -> Recording | None:
    """The recording of this process's compile, when the ``floe`` program armed one."""
    return _recording


def arm(argv: Sequence[str]) -> Recording:
    """Record what the compile about to run consults: ``os.environ`` and ``sys.stderr`` are
    replaced by watching stand-ins for the rest of the process (the program only: a caller of
    :func:`floe.cli.main` never arms it)."""
    global _recording
    _recording = Recording(argv)
    os.environ = _WatchedEnviron(os.environ, _recording.environment)  # noqa: B003 (same variables)
    sys.stderr = cast(TextIO, _WatchedStream(sys.stderr, _recording))
    return _recording


class _WatchedEnviron(os._Environ[str]):
    """``os.environ``, the same variables (it shares their storage), noting every name read."""

    def __init__(self, real: os._Environ[str], seen: set[str]) -> None:
        super().__init__(
            real._data,  # type: ignore[attr-defined]
            real.encodekey,
            real.decodekey,
            real.encodevalue,
            real.decodevalue,
        )
        self._seen = seen

    def __getitem__(self, key: str) -> str:
        self._seen.add(key)
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        self._seen.add(WHOLE_ENVIRONMENT)
        return super().__iter__()

    def __len__(self) -> int:
        self._seen.add(WHOLE_ENVIRONMENT)
        return super().__len__()


class _WatchedStream:
    """A text stream that notes it was written to (a warning, an error: such a run is not recorded)."""

    def __init__(self, stream: TextIO, recording: Recording) -> None:
        self._stream = stream
        self._recording = recording

    def write(self, text: str) -> int:
        if text:
            self._recording.wrote_stderr = True
        return self._stream.write(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def save(recording: Recording, compiled: Compiled, lines: Sequence[str]) -> bool:
    """Record the successful compile of ``compiled`` (its artifacts written or kept) whose repeat
    prints ``lines``; whether a stamp was written (not when an input cannot be trusted)."""
    now = time.time_ns()
    product = str(compiled.product_dir)
    if recording.wrote_stderr:
        return False
    manifests = []
    source = str(compiled.source.path)
    chain = compiled.governance.chain
    for document in chain:
        path = str(document.path)
        first = recording.read_first.get(path)
        if first is None or not same_file(first, fingerprint(path)):
            return False  # not read through the recording, or changed while the compile ran
        manifests.append([path, list(first)])
    if source not in recording.read_first:
        return False
    links = []
    for parent, child in itertools.pairwise(chain):
        joined = os.path.join(str(child.path.parent), str(child.spec.governor))
        links.append([joined, str(parent.path)])
    artifact_dir = os.path.join(product, *ARTIFACT_PARTS)
    artifacts = []
    for name in ARTIFACT_FILES:
        path = os.path.join(artifact_dir, name)
        stat = artifact_stat(path)
        if stat is None:
            return False
        artifacts.append([path, *stat])
    private = []
    for path in (artifact_dir, os.path.join(product, STATE_DIR)):
        st = os.lstat(path)
        private.append([path, st.st_mode, st.st_uid, st.st_ino])
    from floe._markers import PROJECT_NAME
    from floe.plugin_index import last_scan, settled

    scan = last_scan(PROJECT_NAME)  # what the compile's discovery saw, stamped before it ran
    if scan is None:
        return False  # discovery did not use the cache (FLOE_NO_PLUGIN_CACHE…): nothing cheap to check
    plugins, points = scan
    if not all(settled(stamp) for _, stamp in plugins):
        return False
    found = _code_files(points)
    if found is None:
        return False
    folders_of_code, code = found
    if any(max(stat[1], stat[2]) > now - RACY_NS for _, *stat in code):
        return False  # code that just changed may change again unseen
    folders = [t.path for t in compiled.transforms]
    if not all(os.path.isdir(os.path.join(product, folder)) for folder in folders):
        return False  # removed since the compile found it: the next compile reports it
    key = os.urandom(16)
    data = {
        "format": FORMAT,
        "argv": recording.argv,
        "cwd": os.getcwd(),
        "python": _interpreter(),
        "key": key.hex(),
        "environment": environment_digests(key, sorted(recording.environment)),
        "artifacts": artifacts,
        "folders_private": private,
        "product": [product, os.path.realpath(product)],
        "manifests": manifests,
        "links": links,
        "transform_folders": [folders, folders_digest(product, folders)],
        "import_path": import_path_listings(),
        "code_folders": folders_of_code,
        "code": code,
        "plugins": plugins,
        "lines": list(lines),
    }
    try:
        _write(stamp_path(product), json.dumps(data, separators=(",", ":")))
    except OSError:
        return False  # a stamp that cannot be written only costs the next compile its shortcut
    return True


def _write(path: str, text: str) -> None:
    """Replace the stamp at once (a reader sees the old or the new), created ``0600``.

    Not synced: a stamp lost or torn by a crash only makes the next compile run in full.
    """
    temporary = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by a killed process of the same id (the folder is private)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _code_files(points: Sequence[EntryPointRecord]) -> tuple[list[list[Any]], list[list[Any]]] | None:
    """The code the compile ran and the data it may have read: each folder of floe's package and
    of each loaded engine's (its listing) and each file in them, then the source file of every
    other module loaded (their stats); None if one vanished meanwhile."""
    tops = {"floe"} | {point.module.split(".")[0] for point in points if point.module in sys.modules}
    trees: list[str] = []
    for top in sorted(tops):
        paths = getattr(sys.modules.get(top), "__path__", None)
        trees.extend(str(p) for p in paths or ())
    folders: list[list[Any]] = []
    files: list[str] = []
    try:
        for tree in trees:
            for folder, subfolders, names in os.walk(tree):
                subfolders[:] = sorted(s for s in subfolders if s != "__pycache__")
                folders.append([folder, sorted([*subfolders, *names])])  # as _listing() reads it
                files.extend(os.path.join(folder, name) for name in sorted(names))
    except OSError:
        return None
    inside = tuple(os.path.join(tree, "") for tree in trees)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and not file.startswith(inside):
            files.append(file)
    code = []
    for path in dict.fromkeys(files):
        stat = _code_stat(path)
        if stat is None:
            return None
        code.append([path, *stat])
    return folders, code
