"""``floe compile DIR``: every data product below a directory, in one go.

A platform repository holds the enterprise manifest, the domains and hundreds of products. Compiling
it as a whole reads each manifest once (:class:`~floe.manifest_cache.ManifestCache`) and governs
each chain of manifests once, isolates failures (one broken product never stops the others; every
problem is reported, and the products that compiled still get their artifacts) and, through
:mod:`floe.partial_parse`, recompiles on a repeat only the products whose inputs changed. Artifacts
whose content would not change are not rewritten.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import attrs

from floe import partial_parse as pp
from floe.artifacts import remove_stale_temporaries, write_if_changed
from floe.compiled import ARTIFACT_DIR, PRODUCT_FILE, Compiled, artifact_texts, compile_path
from floe.documents import display_path
from floe.errors import FloeError, ManifestError, Problem
from floe.manifest_cache import ManifestCache
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore
from floe.schemas import store as default_store

SKIPPED_DIRS = frozenset({"target"})
"""Never searched for products (nor are hidden directories): build output, not sources."""
WRITERS = 4
"""Artifacts are written (each synced to disk) by this many threads while the next products compile."""

COMPILED, UNCHANGED, FAILED = "compiled", "unchanged", "failed"


@attrs.frozen
class ProductOutcome:
    """What happened to one product: ``name`` is its directory relative to the compiled one."""

    name: str
    status: str
    error: FloeError | None = None
    written: tuple[Path, ...] = ()
    kept: int = 0
    """Artifacts compiled again but identical to the files on disk, which were left alone."""


@attrs.frozen
class PlatformResult:
    root: Path
    products: tuple[ProductOutcome, ...]
    partial_parse: str | None
    """Why the partial parse cache was not used (None when it was)."""
    removed: tuple[str, ...]
    """Products recorded in the cache that are no longer found."""
    manifests: ManifestCache
    cache_problem: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for p in self.products if p.status == status)


def find_products(root: Path) -> list[Path]:
    """The directories below ``root`` holding a ``floe.yaml``, sorted.

    A product's own directory is not searched further; hidden directories and ``target/`` are
    skipped, and a directory reached twice (a symlink loop, or a second link to it) is searched
    once: through its own path when it has one below ``root``, symlinks being followed last.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    pending = [root]
    linked: list[Path] = []  # searched after every directory reached without a symlink
    while pending or linked:
        if not pending:
            pending, linked = linked[::-1], []
        folder = pending.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError:
            continue
        if folder != root and any(e.name == PRODUCT_FILE for e in entries):
            found.append(folder)
            continue
        for entry in sorted(entries, key=lambda e: e.name, reverse=True):
            if entry.name.startswith(".") or entry.name in SKIPPED_DIRS:
                continue
            try:
                if entry.is_dir():
                    (linked if entry.is_symlink() else pending).append(Path(entry.path))
            except OSError:
                continue
    return sorted(found)


def cache_path(root: Path) -> Path:
    return root / ARTIFACT_DIR / pp.CACHE_FILE


def compile_platform(
    root: Path,
    engines: EngineRegistry | None = None,
    store: SchemaStore | None = None,
    partial_parse: bool = True,
) -> PlatformResult:
    """Compile every product below ``root``; raise only when there is none."""
    root = Path(os.path.abspath(root))
    products = find_products(root)
    if not products:
        label = display_path(root)
        raise ManifestError(
            [
                Problem(
                    f"no data product found below {label}",
                    label,
                    expected=f"directories holding a {PRODUCT_FILE} (hidden directories and target/ are skipped)",
                    fix="pass a data product directory, its floe.yaml, a manifest, or a directory of products",
                )
            ]
        )
    engines = engines or EngineRegistry.discover()
    store = store or default_store()
    key = pp.environment_key(((n, e.info.version, e.distribution) for n, e in engines.engines.items()), root)
    cache_file = cache_path(root)
    if partial_parse:
        previous, reason = pp.load(cache_file, key)
    else:
        previous, reason = {}, "off (--no-partial-parse)"
    read_first: dict[str, pp.Fingerprint | None] = {}
    manifests = ManifestCache(before_read=lambda p: read_first.setdefault(str(p), pp.fingerprint(str(p))))
    checker = pp.Checker()
    entries: dict[str, pp.Entry] = {}
    outcomes: dict[str, ProductOutcome] = {}
    compiled: list[tuple[str, Path, Compiled, pp.Fingerprint | None, Future[_Written]]] = []
    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="floe-write") as pool:
        for product in products:
            name = product.relative_to(root).as_posix()
            old = previous.get(name)
            fresh = checker.entry(str(product), old) if old is not None else None
            if fresh is not None:
                entries[name] = fresh
                outcomes[name] = ProductOutcome(name, UNCHANGED)
                continue
            before = pp.fingerprint(str(product / PRODUCT_FILE))
            try:
                result = compile_path(product, engines, store, manifests)
                texts = artifact_texts(result) if result.transforms else {}
            except FloeError as exc:
                outcomes[name] = ProductOutcome(name, FAILED, exc)
                continue
            except Exception as exc:  # a bug met by one product must not stop the others
                if os.environ.get("FLOE_DEBUG"):
                    raise
                outcomes[name] = ProductOutcome(name, FAILED, _internal_error(product, exc))
                continue
            compiled.append((name, product, result, before, pool.submit(_write, product, texts)))
        unstable = {
            path for path, first in read_first.items() if not pp.same_file(first, pp.fingerprint(path))
        }
        for name, product, result, before, future in compiled:
            try:
                written = future.result()
            except OSError as exc:
                outcomes[name] = ProductOutcome(name, FAILED, _write_error(exc))
                continue
            except Exception as exc:  # as above
                if os.environ.get("FLOE_DEBUG"):
                    raise
                outcomes[name] = ProductOutcome(name, FAILED, _internal_error(product, exc))
                continue
            outcomes[name] = ProductOutcome(name, COMPILED, written=written.written, kept=written.kept)
            entry = _entry(product, result, before, written, read_first, unstable)
            if entry is not None:
                entries[name] = entry
    problem = None
    try:
        if reason is not None or entries != previous:  # a repeat that changed nothing writes nothing
            pp.save(cache_file, key, entries)
    except OSError as exc:
        problem = f"could not save the partial parse cache {display_path(cache_file)}: {exc.strerror or exc}"
    removed = tuple(sorted(set(previous) - set(outcomes)))
    return PlatformResult(
        root, tuple(outcomes[n] for n in sorted(outcomes)), reason, removed, manifests, problem
    )


@attrs.frozen
class _Written:
    written: tuple[Path, ...]
    kept: int
    stats: tuple[tuple[str, int, int, int], ...] | None
    """Each artifact's stat once written, for the next partial parse; None if one is missing."""


def _write(product: Path, texts: dict[Path, str]) -> _Written:
    """Write each artifact whose content differs from the file on disk (in a writer thread).

    Each artifact folder is first swept once of the temporary files killed writers left (all of
    them, also beside artifacts that are not rewritten), so the files are written without a sweep
    each: one directory listing per folder, not one per artifact.
    """
    for folder in dict.fromkeys(path.parent for path in texts):
        remove_stale_temporaries(folder)
    written: list[Path] = []
    kept = 0
    stats: list[tuple[str, int, int, int]] | None = []
    for path, text in texts.items():
        if write_if_changed(path, text, clean=False):
            written.append(path)
        else:
            kept += 1
        stat = pp.artifact_stat(str(path))
        if stat is None or stats is None:
            stats = None
        else:
            stats.append((path.relative_to(product).as_posix(), *stat))
    return _Written(tuple(written), kept, None if stats is None else tuple(stats))


def _internal_error(product: Path, exc: Exception) -> FloeError:
    return FloeError(
        [
            Problem(
                f"internal error: {type(exc).__name__}: {exc}",
                display_path(product / PRODUCT_FILE),
                fix="this is a bug in floe; rerun with FLOE_DEBUG=1 and report the traceback",
            )
        ]
    )


def _write_error(exc: OSError) -> FloeError:
    where = display_path(Path(exc.filename)) if exc.filename else None
    return FloeError(
        [
            Problem(
                f"cannot write the artifacts: {exc.strerror or exc}",
                where,
                fix="check that the product's target/ directory is writable",
            )
        ]
    )


def _entry(
    product: Path,
    result: Compiled,
    before: pp.Fingerprint | None,
    written: _Written,
    read_first: dict[str, pp.Fingerprint | None],
    unstable: set[str],
) -> pp.Entry | None:
    """What this compile depended on, or None when an input changed while it ran (not recorded)."""
    if written.stats is None or not pp.same_file(before, pp.fingerprint(str(product / PRODUCT_FILE))):
        return None
    assert before is not None
    chain = result.governance.chain
    links = []
    for parent, child in itertools.pairwise(chain):
        reference = child.spec.governor
        resolved = str(parent.path)
        file = read_first.get(resolved)
        if file is None or resolved in unstable:
            return None
        links.append(pp.Link(os.path.join(str(child.path.parent), str(reference)), resolved, file))
    folders = tuple(t.path for t in result.transforms)
    return pp.Entry(
        before,
        os.path.realpath(product),
        tuple(links),
        folders,
        pp.folders_digest(str(product), folders),
        written.stats,
    )


# -- what the command prints -----------------------------------------------------------------------

MAX_NAMES = 3


def render(result: PlatformResult, out: Callable[[str], None], err: Callable[[str], None]) -> None:
    """A dbt-like summary: counts on ``out``; each distinct problem once on ``err``, with its products."""
    total = len(result.products)
    where = display_path(result.root)
    unchanged = result.count(UNCHANGED)
    if result.partial_parse is None:
        parse = f"partial parse: {unchanged} unchanged, {total - unchanged} to compile"
    else:
        parse = f"partial parse: {result.partial_parse}; compiling all"
    if result.removed:
        parse += f"; {len(result.removed)} no longer found"
    out(f"found {total} data product(s) below {where} ({parse})")
    groups: dict[str, list[str]] = {}
    for product in result.products:
        if product.error is not None:
            groups.setdefault(product.error.render(), []).append(product.name)
    for text, names in groups.items():
        shown = ", ".join(names[:MAX_NAMES]) + (
            f", … {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
        )
        err(f"error: {'product' if len(names) == 1 else f'{len(names)} products'} {shown}:\n{text}")
    written = sum(len(p.written) for p in result.products)
    kept = sum(p.kept for p in result.products)
    touched = sum(1 for p in result.products if p.written)
    line = f"wrote {written} file(s) in {touched} product(s)"
    if kept:
        line += f"; {kept} compiled but identical, not rewritten"
    out(line)
    if result.cache_problem:
        err(f"warning: {result.cache_problem}")
    failed = result.count(FAILED)
    out(
        f"done: {total - failed} ok ({result.count(COMPILED)} compiled, {unchanged} unchanged), "
        f"{failed} failed, {total} total"
    )
