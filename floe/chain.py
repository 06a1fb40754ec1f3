"""The manifest chain: from the file compiled up to the enterprise manifest.

A data product names its platform manifest (``platform:``); a domain manifest names its parent
(``parent:``), up to the enterprise manifest, which has none. :func:`load_chain` follows those
references, reading each manifest (once per compile of many products, with a
:class:`~floe.manifest_cache.ManifestCache`), and refuses what makes the chain unusable: a
reference to nothing, to a directory or to a product, a cycle, a misplaced ``scope``. What the
chain then decides is :mod:`floe.governance`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from floe.documents import Document, WrongKindError, display_path, peek_kind, read_document
from floe.errors import GovernanceError, Problem
from floe.specs import ManifestSpec

if TYPE_CHECKING:
    from floe.manifest_cache import ManifestCache
    from floe.schemas import SchemaStore


def load_chain(start: Document, store: SchemaStore, cache: ManifestCache | None = None) -> list[Document]:
    """The governing manifests of ``start``, root (enterprise) first, ending with ``start``.

    With a ``cache`` (one per compile of many products), each parent is read once and shared.
    """
    chain = [start]
    seen = {start.path.resolve(): start}
    current = start
    while True:
        key = current.spec.governor_key
        reference = current.spec.governor
        if reference is None:
            break
        target = current.resolve((key,), reference)
        if isinstance(target, Problem):  # a NUL character, a symlink loop, a name too long
            raise GovernanceError([target])
        if target in seen:
            cycle = " → ".join(d.label for d in chain) + f" → {seen[target].label}"
            raise GovernanceError(
                [
                    current.problem(
                        (key,),
                        f"parent cycle: {cycle}",
                        fix="a manifest's parents must end at an enterprise manifest",
                    )
                ]
            )
        if not target.is_file():
            raise GovernanceError([_missing_parent(current, key, reference, target)])
        parent = _read_parent(current, key, reference, target, store, cache)
        _check_scope(parent)
        chain.append(parent)
        seen[target] = parent
        current = parent
    chain.reverse()
    root = chain[0]
    if not isinstance(root.spec, ManifestSpec) or root.spec.scope != "enterprise":
        raise GovernanceError(
            [
                root.problem(
                    ("scope",) if root.kind == "Manifest" else ("platform",),
                    "the chain does not end at an enterprise manifest",
                    fix="give the root manifest `scope: enterprise`, or set its `parent:`",
                )
            ]
        )
    return chain


def _read_parent(
    current: Document, key: str, reference: str, target: Path, store: SchemaStore, cache: ManifestCache | None
) -> Document:
    """The manifest ``current`` names at ``key``; another kind of file is this reference's mistake."""
    try:
        if cache is None:
            return read_document(target, store, expect_kind="Manifest")
        return cache.read(target, store, expect_kind="Manifest")
    except WrongKindError as exc:  # another product's floe.yaml: the mistake is this reference
        raise GovernanceError(
            [
                current.problem(
                    (key,),
                    f"{key} {reference!r} is a {exc.kind} file ({display_path(target)}), not a manifest"
                    + (
                        ": a data product is governed by a manifest, never by another product"
                        if exc.kind == "DataProduct"
                        else ""
                    ),
                    "a platform manifest (kind: Manifest): the enterprise manifest or a domain's",
                    f"point `{key}:` at the manifest that governs this {'product' if key == 'platform' else 'manifest'}; "
                    f"it is relative to {current.label}",
                )
            ]
        ) from None


def _missing_parent(current: Document, key: str, reference: str, target: Path) -> Problem:
    """``key`` (``platform``/``parent``) names no file: nothing there, or a directory."""
    fix = f"correct `{key}:`; it is relative to {current.label}"
    if not target.is_dir():
        return current.problem(
            (key,), f"{key} manifest {reference!r} not found (looked for {target})", fix=fix
        )
    manifests = sorted(
        p.name
        for p in target.iterdir()
        if p.suffix in (".yaml", ".yml") and p.is_file() and peek_kind(p) == "Manifest"
    )
    if manifests:
        fix = f"did you mean {(reference.rstrip('/') + '/' + manifests[0])!r}? ({key} names the manifest file itself)"
    return current.problem(
        (key,),
        f"{key} {reference!r} is a directory ({display_path(target)}), not a manifest file"
        + (f"; it holds {', '.join(manifests)}" if manifests else ""),
        "the path of a manifest file (kind: Manifest), such as platform/enterprise.yaml",
        fix,
    )


def _check_scope(manifest: Document) -> None:
    """An enterprise manifest has no parent; a domain manifest has one."""
    spec = manifest.spec
    assert isinstance(spec, ManifestSpec)  # read as a Manifest
    if spec.scope == "enterprise" and spec.parent is not None:
        raise GovernanceError(
            [
                manifest.problem(
                    ("parent",),
                    "an enterprise manifest cannot have a parent",
                    fix="remove `parent:` or use `scope: domain`",
                )
            ]
        )
    if spec.scope == "domain" and spec.parent is None:
        raise GovernanceError(
            [
                manifest.problem(
                    ("scope",),
                    "a domain manifest needs `parent:`",
                    fix="set `parent:` to its parent manifest's path",
                )
            ]
        )
