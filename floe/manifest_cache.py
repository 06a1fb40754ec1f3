"""Parent manifests read once when many products are compiled together.

Compiling a platform (one enterprise manifest, its domains, hundreds of products) would otherwise
parse, type and validate the same few manifests once per product. A :class:`ManifestCache` keeps
each manifest read, keyed by its resolved path, for the life of one compile (files are not
expected to change during it), including a manifest that failed: its error is raised again for
every product below it, without reading it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from floe.documents import Document, read_document
from floe.errors import FloeError
from floe.schemas import SchemaStore

if TYPE_CHECKING:
    from floe.governance import Governance

K = TypeVar("K")
V = TypeVar("V")


class ManifestCache:
    """Documents (or their errors) by resolved path and expected kind; ``reads`` counts real reads."""

    def __init__(self, before_read: Callable[[Path], object] | None = None) -> None:
        self._documents: dict[tuple[Path, str | None], Document | FloeError] = {}
        self.reads: Counter[Path] = Counter()
        """How many times each file was really read: 1 per manifest when sharing works."""
        self._before_read = before_read
        """Called with the path just before a real read (partial parsing fingerprints the file)."""
        self.governed: dict[tuple[Path, ...], Governance | FloeError] = {}
        """Governance results by chain of resolved manifest paths, kept by the compiler."""

    def read(self, path: Path, store: SchemaStore, expect_kind: str | None = None) -> Document:
        """The document at ``path`` (already resolved), read on first use; its error re-raised."""

        def read_once() -> Document:
            if self._before_read is not None:
                self._before_read(path)
            self.reads[path] += 1
            return read_document(path, store, expect_kind=expect_kind)

        return self.once(self._documents, (path, expect_kind), read_once)

    @staticmethod
    def once(results: dict[K, V | FloeError], key: K, produce: Callable[[], V]) -> V:
        """``produce()`` on the first call for ``key``, its result or :class:`FloeError` kept in ``results``.

        Later calls return the kept result, or raise the kept error again, without producing it again.
        """
        found = results.get(key)
        if found is None:
            try:
                found = produce()
            except FloeError as exc:
                found = exc
            results[key] = found
        if isinstance(found, FloeError):
            raise found.with_traceback(None)  # raised once per product: keep no old frames
        return found
