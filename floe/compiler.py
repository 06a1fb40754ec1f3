"""``floe compile PATH``: what the path names, and compiling it.

A path names one of three things, and this module alone decides which:

- a data product: its directory or its ``floe.yaml``, compiled into a
  :class:`~floe.compiled.Compiled` with its transforms and dbt profiles (:func:`compile_path`;
  :func:`write_artifacts` writes them);
- a manifest file, compiled on its own: its chain governed, no transforms, nothing written;
- a directory that is no product: every product below it, each manifest read once, the artifacts
  of each product that compiles written (:func:`floe.platform.compile_platform`).

The names of :mod:`floe.compiled` that programs and floe's other modules import from here are
re-exported below. Importing this module does not import the platform compile (its writer
threads, partial parsing) until a directory of products is compiled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from floe.compiled import (
    ARTIFACT_DIR,
    PRODUCT_FILE,
    STATE_DIR,
    ChainLevel,
    Compiled,
    CompiledTransform,
    artifact_texts,
    build_profiles,
    catalog_document,
    compile_path,
    find_source,
    govern,
    profile_name,
    write_artifacts,
)

if TYPE_CHECKING:
    from floe.manifest_cache import ManifestCache
    from floe.platform import PlatformResult
    from floe.plugins import EngineRegistry
    from floe.schemas import SchemaStore

__all__ = [
    "ARTIFACT_DIR",
    "PRODUCT_FILE",
    "STATE_DIR",
    "ChainLevel",
    "Compiled",
    "CompiledTransform",
    "artifact_texts",
    "build_profiles",
    "catalog_document",
    "compile_any",
    "compile_path",
    "find_source",
    "govern",
    "names_products",
    "profile_name",
    "write_artifacts",
]


def names_products(path: Path) -> bool:
    """Whether ``path`` names a directory of products rather than one file: a directory without a
    ``floe.yaml`` (a path that does not exist names one file, which compiling then reports missing).

    :raises ManifestError: the system refuses the path (a name too long, a symlink loop, a NUL).
    """
    source = find_source(path)
    return source != path and not os.path.lexists(source)


def compile_any(
    path: str | os.PathLike[str],
    *,
    partial_parse: bool = True,
    engines: EngineRegistry | None = None,
    store: SchemaStore | None = None,
    manifests: ManifestCache | None = None,
) -> Compiled | PlatformResult:
    """Compile what ``path`` names (see the module's docstring).

    A product or a manifest gives its :class:`Compiled` (a product's artifacts are not written yet:
    :func:`write_artifacts`); a directory of products gives the :class:`PlatformResult` of compiling
    and writing each, with ``partial_parse`` recompiling only the products whose inputs changed.
    ``manifests`` reads a single product's or manifest's parents (a platform shares its own).

    :raises FloeError: the product or manifest is invalid; no product is found below the directory.
    """
    path = Path(os.fspath(path))
    if names_products(path):
        from floe.platform import compile_platform  # its writer threads only when a platform is compiled

        return compile_platform(path, engines, store, partial_parse=partial_parse)
    return compile_path(path, engines, store, manifests)
