"""Compiling one file, a data product's floe.yaml or a manifest, into a :class:`Compiled`.

The steps run in one direction: the file is read (:mod:`floe.documents`), its chain of manifests
loaded (:mod:`floe.chain`), what the chain decides worked out (:func:`floe.governance.decide`)
and completed by the engines (:func:`floe.engine_settings.type_settings`); for a product, each
transform's compute is checked against it, each transform's folder found inside the product, and
a dbt profile generated per compute the product uses. :func:`artifact_texts` and
:func:`write_artifacts` turn the result into ``target/floe/profiles.yml`` and ``compiled.json``.
Which files ``floe compile`` compiles (one, or every product below a directory) is
:mod:`floe.compiler`'s to decide.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import attrs

from floe.artifacts import private_directory, write_if_changed
from floe.chain import load_chain
from floe.documents import Document, display_path, path_refusal, read_document
from floe.engine_settings import type_settings
from floe.errors import FloeError, GovernanceError, ManifestError, PluginExecutionError, Problem
from floe.governance import Governance, check_selections, decide
from floe.governed_fields import (
    catalog_declarer,
    effective_catalog,
    effective_lineage,
    lineage_declarer,
    where,
)
from floe.layout import ARTIFACT_FILES, ARTIFACT_PARTS
from floe.layout import PRODUCT_FILE as PRODUCT_FILE  # re-exported: its users import it from here
from floe.layout import STATE_DIR as STATE_DIR
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore
from floe.schemas import store as default_store
from floe.specs import LineageSpec, ProductSpec
from floe.structure import converter, unstructure_secrets

if TYPE_CHECKING:
    from floe.manifest_cache import ManifestCache

ARTIFACT_DIR = Path(*ARTIFACT_PARTS)


@attrs.frozen
class CompiledTransform:
    name: str
    path: str
    compute: str
    engine: str


@attrs.frozen
class ChainLevel:
    """One file of a compiled chain: the enterprise manifest first, the compiled file last."""

    name: str
    kind: str
    """``Manifest`` or ``DataProduct``."""
    scope: str | None
    """``enterprise`` or ``domain`` for a manifest; ``None`` for a data product."""
    file: Path
    """Absolute."""

    @classmethod
    def of(cls, doc: Document) -> ChainLevel:
        """The level ``doc`` is."""
        return cls(
            doc.spec.metadata.name,
            doc.kind,
            getattr(doc.spec, "scope", None),
            Path(os.path.abspath(doc.path)),
        )


@attrs.frozen
class Compiled:
    """What a compile produced; ``transforms`` is empty when a manifest alone was compiled.

    The typed answers users ask of a compile: :attr:`name`, :attr:`chain` (with files),
    :attr:`transforms` (each with its compute and engine), :attr:`approved`, :attr:`default`,
    :attr:`environments` and :meth:`settings` (each compute's effective settings in an environment).
    """

    source: Document
    governance: Governance
    transforms: tuple[CompiledTransform, ...]
    catalog: CatalogConfig | None
    profiles: Mapping[str, Any]
    lineage: LineageSpec | None = None
    """Where OpenLineage events go, as the governing manifests fix it (``None``: not declared,
    the OpenLineage client's environment decides)."""

    @property
    def product_dir(self) -> Path:
        return self.source.path.parent

    @property
    def name(self) -> str:
        """The compiled product's (or manifest's) ``metadata.name``."""
        return self.source.spec.metadata.name

    @property
    def chain(self) -> tuple[ChainLevel, ...]:
        """The governing files, enterprise manifest first, ending with the compiled one."""
        return tuple(map(ChainLevel.of, self.governance.chain))

    @property
    def approved(self) -> tuple[str, ...]:
        """The effective approved computes, in the order the manifests approve them."""
        return tuple(self.governance.registry.names())

    @property
    def default(self) -> str:
        """The effective default compute."""
        return self.governance.registry.default

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(self.governance.environments)

    def settings(self, environment: str) -> Mapping[str, ComputeConfig]:
        """Each approved compute with its effective settings in ``environment`` (overrides merged;
        credentials as :class:`~floe.model.SecretReference`).

        :raises KeyError: ``environment`` is not one of :attr:`environments`.
        """
        if environment not in self.governance.environments:
            raise KeyError(f"unknown environment {environment!r}; known: {', '.join(self.environments)}")
        return dict(self.governance.environments[environment])

    @property
    def lineage_declared_at(self) -> str | None:
        """``manifest 'NAME' (file:line)`` of the ``lineage:`` the run uses, for messages."""
        declarer = lineage_declarer(self.governance.chain)
        if declarer is None:
            return None
        return f"manifest {declarer.spec.metadata.name!r} ({where(declarer, ('lineage',))})"

    def transform(self, name: str) -> CompiledTransform:
        """The transform called ``name``."""
        found = next((t for t in self.transforms if t.name == name), None)
        if found is None:
            raise KeyError(f"no transform {name!r}; transforms: {', '.join(t.name for t in self.transforms)}")
        return found

    def to_json(self) -> dict[str, Any]:
        """The content of ``compiled.json``: secrets appear only as references."""
        gov = self.governance
        computes = {
            name: {
                "engine": c.engine,
                "config": unstructure_secrets(dict(c.config)),
                "resources": {"requests": dict(c.resources.requests), "limits": dict(c.resources.limits)},
                **({"timeout": c.timeout.written} if c.timeout is not None else {}),
            }
            for name, c in gov.registry.approved.items()
        }
        return {
            "apiVersion": "floe.dev/v1",
            "kind": "CompiledProduct" if self.source.kind == "DataProduct" else "CompiledManifest",
            "product": self.name,
            "chain": [level.name for level in self.chain if level.kind == "Manifest"],
            "chain_files": [str(d.path) for d in gov.chain],
            "approved": gov.registry.names(),
            "default": gov.registry.default,
            "environments": list(gov.environments),
            "computes": computes,
            "catalog": converter.unstructure(self.catalog) if self.catalog else None,
            "lineage": converter.unstructure(self.lineage) if self.lineage else None,
            "transforms": [attrs.asdict(t) for t in self.transforms],
            "profiles": sorted(self.profiles),
        }


def find_source(path: Path) -> Path:
    """The file to compile: ``PATH/floe.yaml`` for a directory, else ``PATH`` itself.

    :raises ManifestError: the system refuses the path (a name too long, a symlink loop, a NUL).
    """
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return path  # the caller says it does not exist
    except (OSError, ValueError) as exc:
        raise _refused(path, exc) from None
    return path / PRODUCT_FILE if is_dir else path


def _refused(path: Path, exc: BaseException) -> ManifestError:
    return ManifestError(
        [
            Problem(
                f"cannot use this path: {path_refusal(exc)}",
                display_path(path),
                fix="pass a data product directory, its floe.yaml, or a manifest, by a "
                "path the system accepts (each name at most 255 bytes)",
            )
        ]
    )


def compile_path(
    path: str | os.PathLike[str],
    engines: EngineRegistry | None = None,
    store: SchemaStore | None = None,
    manifests: ManifestCache | None = None,
) -> Compiled:
    """Parse, govern and resolve ``path`` (a product directory, its floe.yaml or a manifest; any
    path-like); raise a :class:`~floe.errors.FloeError` if invalid.

    ``manifests``, shared by the compiles of many products (with the same ``engines`` and
    ``store``), reads each parent manifest once and governs each chain of manifests once.
    """
    path = Path(os.fspath(path))
    store = store or default_store()
    engines = engines or EngineRegistry.discover()
    source_path = find_source(path)
    try:
        exists = source_path.exists()
    except (OSError, ValueError) as exc:
        raise _refused(source_path, exc) from None
    if not exists:
        raise ManifestError(
            [
                Problem(
                    f"{source_path} does not exist",
                    str(source_path),
                    fix="pass a data product directory, its floe.yaml, or a manifest",
                )
            ]
        )
    source = read_document(source_path, store)
    chain = load_chain(source, store, manifests)
    governance = govern(chain, engines, store, manifests)
    catalog = effective_catalog(chain)
    lineage = effective_lineage(chain)
    if source.kind != "DataProduct":
        return Compiled(source, governance, (), catalog, {}, lineage)
    selections = check_selections(source, governance)
    _check_paths(source)
    transforms = tuple(
        CompiledTransform(name, path_, compute, governance.registry.approved[compute].engine)
        for name, path_, compute in selections
    )
    profiles = build_profiles(source, governance, transforms, engines)
    return Compiled(source, governance, transforms, catalog, profiles, lineage)


def govern(
    chain: list[Document], engines: EngineRegistry, store: SchemaStore, manifests: ManifestCache | None = None
) -> Governance:
    """What ``chain`` decides (:func:`~floe.governance.decide`), completed by the engines
    (:func:`~floe.engine_settings.type_settings`); shared by the products below the same
    manifests when ``manifests`` is given.

    A product that sets no compute settings or environments of its own adds nothing to the
    governance of its manifests, so theirs (or their error) is reused with the product appended.
    """
    start = chain[-1]
    own = start.spec.plugins is not None or start.spec.environments is not None
    if manifests is None or start.kind != "DataProduct" or own:
        return type_settings(decide(chain), engines, store)
    parents = chain[:-1]
    key = tuple(d.path for d in parents)
    shared = manifests.once(manifests.governed, key, lambda: type_settings(decide(parents), engines, store))
    return shared.for_product(start)


catalog_document = catalog_declarer
"""The manifest whose ``catalog:`` a product uses (the name :mod:`floe.execution` imports)."""


def _check_paths(product: Document) -> None:
    spec = product.spec
    assert isinstance(spec, ProductSpec)
    root = product.path.parent.resolve()
    problems = []
    for i, transform in enumerate(spec.transforms):
        raw = transform.path
        if _plainly_below(root, raw):
            continue
        target = product.resolve(("transforms", i, "path"), raw, root)
        if isinstance(target, Problem):  # a NUL character, a symlink loop, a name too long
            problems.append(target)
        elif Path(raw).is_absolute() or (target != root and root not in target.parents):
            problems.append(
                product.problem(
                    ("transforms", i, "path"),
                    f"path {raw!r} leaves the data product",
                    "a path relative to the directory of floe.yaml",
                    "point to a folder of models inside the product",
                )
            )
        elif not target.exists():
            problems.append(
                product.problem(
                    ("transforms", i, "path"),
                    f"path {raw!r} does not exist",
                    f"a folder of dbt models below {root}",
                    "create the folder or correct the path",
                )
            )
    if problems:
        raise ManifestError(problems)


def _plainly_below(root: Path, raw: str) -> bool:
    """Whether ``raw`` names an existing path below ``root`` through no symlink and no ``..``.

    Then it is inside the product and exists, as resolving it would tell, with one ``lstat`` per
    component of ``raw`` instead of one per component of the whole path (a platform compile does
    this for thousands of transforms). Anything else is left to :meth:`Path.resolve`.
    """
    relative = PurePath(raw)
    if relative.anchor:
        return False
    path = str(root)
    for part in relative.parts:
        if part == "..":
            return False
        path = os.path.join(path, part)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return False
        except (OSError, ValueError):  # ValueError: a NUL character
            return False
    return True


def build_profiles(
    product: Document,
    governance: Governance,
    transforms: tuple[CompiledTransform, ...],
    engines: EngineRegistry,
) -> dict[str, Any]:
    """One dbt profile per compute the product uses, one output per environment."""
    profiles: dict[str, Any] = {}
    targets = profile_targets(product, governance.environments)
    for compute_name in dict.fromkeys(t.compute for t in transforms):
        outputs: dict[str, Any] = {}
        for env in governance.environments:
            compute: ComputeConfig = governance.compute_for(compute_name, env)
            engine = engines.get(compute.engine)
            if engine is None:  # pragma: no cover - governance checked engines are installed
                raise GovernanceError(f"engine {compute.engine!r} is not installed")
            try:
                output = engine.generate_dbt_profile(compute, targets[env])
            except FloeError as exc:  # the engine refused these settings: point at where they are
                raise exc.located(
                    governance.problem(
                        compute_name, env, f"environment {env!r}: {p.message}", p.expected, p.fix
                    )
                    for p in exc.problems
                ) from None
            if output.get("type") != engine.info.dbt_adapter:
                raise PluginExecutionError(
                    engine.name,
                    "generate_dbt_profile",
                    f"the profile's type is {output.get('type')!r}, expected "
                    f"{engine.info.dbt_adapter!r} in every environment",
                    f"fix the engine plugin ({engine.distribution})",
                    compute=compute_name,
                )
            outputs[env] = output
        profiles[profile_name(compute_name)] = {"target": next(iter(outputs)), "outputs": outputs}
    return profiles


def profile_targets(source: Document, environments: Iterable[str]) -> dict[str, ProfileTarget]:
    """What an engine is told about the profile it generates (or checks) for each environment: the
    product (or manifest) by name, its directory, and floe's state directory in it."""
    folder = source.path.parent.resolve()
    return {
        env: ProfileTarget(env, source.spec.metadata.name, folder, folder / STATE_DIR) for env in environments
    }


def profile_name(compute: str) -> str:
    """The dbt profile floe generates for a compute."""
    return f"floe_{compute}"


def artifact_texts(compiled: Compiled) -> dict[Path, str]:
    """The artifacts of ``compiled`` by path, in the order they are written: profiles first."""
    import yaml

    out = compiled.product_dir / ARTIFACT_DIR
    header = "# Generated by `floe compile`; secrets are read from the environment at run time.\n"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter: same text, ~4x faster
    profiles, compiled_json = ARTIFACT_FILES
    return {
        out / profiles: header + yaml.dump(dict(compiled.profiles), Dumper=dumper, sort_keys=False),
        out / compiled_json: json.dumps(compiled.to_json(), indent=2) + "\n",
    }


def write_artifacts(compiled: Compiled) -> list[Path]:
    """Write ``target/floe/profiles.yml`` then ``compiled.json``, each atomically; the paths written.

    ``target/floe`` and ``.floe`` are their user's alone (:func:`~floe.artifacts.private_directory`).
    An artifact whose file already holds exactly its text is left alone (the usual case while a
    data engineer iterates on models: the manifests, and so the artifacts, stay the same).
    """
    texts = artifact_texts(compiled)
    private_directory(compiled.product_dir / ARTIFACT_DIR)
    private_directory(compiled.product_dir / STATE_DIR)
    written = [path for path, text in texts.items() if write_if_changed(path, text)]
    return list(reversed(written))
