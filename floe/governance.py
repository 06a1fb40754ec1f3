"""Compute governance (REQ-021…024): the manifest chain, narrowing, defaults and selections.

A data product names its platform manifest; each manifest may name a parent, up to the enterprise
manifest. Walking that chain from the root, each level may only narrow the approved computes (and
refine their settings); the product's transforms then pick from what is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from floe.diagnostics import JsonPath, did_you_mean, problems_from_errors
from floe.documents import Document, WrongKindError, display_path, peek_kind, read_document, typed_fragment
from floe.errors import BrokenPluginError, FloeError, GovernanceError, InvalidComputeError, Problem
from floe.governed_fields import (
    DEFAULT_ENVIRONMENT,
    Quantity,
    check_catalogs,
    check_environment_names,
    check_resources,
)
from floe.model import ComputeConfig, ResourceOverrides, TransformSpec
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore
from floe.secrets import setting_refusals
from floe.specs import ApprovedSpec
from floe.structure import converter, structure_settings
from floe.structure import unstructure_secrets as unstructure_secrets  # floe.testing imports it from here

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

    from floe.manifest_cache import ManifestCache

_COMPUTE = ("plugins", "compute")


@attrs.frozen
class ComputeRegistry:
    """The approved computes of one level, by name, and its default (REQ-021)."""

    approved: Mapping[str, ComputeConfig]
    default: str

    def __attrs_post_init__(self) -> None:
        if not self.approved:
            raise ValueError("a compute registry needs at least one approved compute")
        if self.default not in self.approved:
            raise ValueError(
                f"default compute {self.default!r} is not approved "
                f"(approved: {', '.join(self.approved)})"
            )

    def names(self) -> list[str]:
        return list(self.approved)

    def resolve(self, selection: str | None) -> ComputeConfig:
        """The compute a transform runs on: its selection, or the default when it has none."""
        name = self.default if selection is None else selection
        if name not in self.approved:
            raise InvalidComputeError(
                f"compute {name!r} is not approved (approved: {', '.join(self.approved)})"
            )
        return self.approved[name]


@attrs.frozen
class Origin:
    """Where a piece of configuration was written."""

    doc: Document
    path: JsonPath


@attrs.define
class _Entry:
    name: str
    engine: str
    resources: dict[str, dict[str, Quantity]]
    """By kind (requests, limits) and resource: the quantity the lowest level wrote, and where."""
    origins: list[Origin]
    """Where the compute's settings were written, root first."""
    declared: Origin


@attrs.frozen
class Governance:
    """The effective result of a manifest chain for one data product (or one manifest)."""

    chain: tuple[Document, ...]
    registry: ComputeRegistry
    environments: Mapping[str, Mapping[str, ComputeConfig]]
    removed_by: Mapping[str, Document]
    ever_approved: frozenset[str]
    origins: Mapping[tuple[str, str], Origin] = attrs.field(factory=dict, eq=False, repr=False)
    """Where the settings of ``(environment, compute)`` were last written: the environment's
    override of the compute, else the compute's entry in ``approved``."""

    def compute_for(self, name: str, environment: str) -> ComputeConfig:
        """The compute ``name`` with its settings for ``environment``."""
        return self.environments[environment][name]

    def problem(self, name: str, environment: str, message: str, expected: str | None = None,
                fix: str | None = None) -> Problem:  # fmt: skip
        """A problem with compute ``name`` in ``environment``, located where its settings were written."""
        origin = self.origins.get((environment, name))
        if origin is None:
            return Problem(message, expected=expected, fix=fix)
        return origin.doc.problem(origin.path, message, expected, fix)


def load_chain(start: Document, store: SchemaStore, cache: ManifestCache | None = None) -> list[Document]:
    """The governing manifests of ``start``, root (enterprise) first, ending with ``start``.

    With a ``cache`` (one per compile of many products), each parent is read once and shared.
    """
    chain = [start]
    seen = {start.path.resolve(): start}
    current = start
    while True:
        key = "platform" if current.kind == "DataProduct" else "parent"
        reference = current.data.get(key)
        if reference is None:
            break
        target = current.resolve((key,), str(reference))
        if isinstance(target, Problem):  # a NUL character, a symlink loop, a name too long
            raise GovernanceError([target])
        if target in seen:
            cycle = " → ".join(d.label for d in chain) + f" → {seen[target].label}"
            raise GovernanceError([current.problem((key,), f"parent cycle: {cycle}",
                                                   fix="a manifest's parents must end at an enterprise manifest")])  # fmt: skip
        if not target.is_file():
            raise GovernanceError([_missing_parent(current, key, str(reference), target)])
        try:
            if cache is None:
                parent = read_document(target, store, expect_kind="Manifest")
            else:
                parent = cache.read(target, store, expect_kind="Manifest")
        except WrongKindError as exc:  # another product's floe.yaml: the mistake is this reference
            raise GovernanceError([current.problem(
                (key,), f"{key} {str(reference)!r} is a {exc.kind} file ({display_path(target)}), not a manifest"
                + (": a data product is governed by a manifest, never by another product" if exc.kind == "DataProduct" else ""),
                "a platform manifest (kind: Manifest): the enterprise manifest or a domain's",
                f"point `{key}:` at the manifest that governs this {'product' if key == 'platform' else 'manifest'}; "
                f"it is relative to {current.label}")]) from None  # fmt: skip
        _check_scope(parent, current)
        chain.append(parent)
        seen[target] = parent
        current = parent
    chain.reverse()
    root = chain[0]
    if root.kind != "Manifest" or root.data.get("scope") != "enterprise":
        raise GovernanceError([root.problem(("scope",) if root.kind == "Manifest" else ("platform",),
                                            "the chain does not end at an enterprise manifest",
                                            fix="give the root manifest `scope: enterprise`, or set its `parent:`")])  # fmt: skip
    return chain


def _missing_parent(current: Document, key: str, reference: str, target: Path) -> Problem:
    """``key`` (``platform``/``parent``) names no file: nothing there, or a directory."""
    fix = f"correct `{key}:`; it is relative to {current.label}"
    if not target.is_dir():
        return current.problem((key,), f"{key} manifest {reference!r} not found (looked for {target})", fix=fix)
    manifests = sorted(p.name for p in target.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
                       and peek_kind(p) == "Manifest")  # fmt: skip
    if manifests:
        fix = f"did you mean {(reference.rstrip('/') + '/' + manifests[0])!r}? ({key} names the manifest file itself)"
    return current.problem((key,), f"{key} {reference!r} is a directory ({display_path(target)}), not a manifest file"
                           + (f"; it holds {', '.join(manifests)}" if manifests else ""),
                           "the path of a manifest file (kind: Manifest), such as platform/enterprise.yaml", fix)  # fmt: skip


def _check_scope(parent: Document, child: Document) -> None:
    scope = parent.data.get("scope")
    if scope == "enterprise" and "parent" in parent.data:
        raise GovernanceError([parent.problem(("parent",), "an enterprise manifest cannot have a parent",
                                              fix="remove `parent:` or use `scope: domain`")])  # fmt: skip
    if scope == "domain" and "parent" not in parent.data:
        raise GovernanceError([parent.problem(("scope",), "a domain manifest needs `parent:`",
                                              fix="set `parent:` to its parent manifest's path")])  # fmt: skip


def govern(chain: list[Document], engines: EngineRegistry, store: SchemaStore) -> Governance:
    """Resolve the chain into the effective approved computes, default and environments.

    Every manifest of the chain is checked whole, as if it were compiled on its own: the settings
    of every compute it approves and every environment override it writes, also of computes a lower
    level narrows away (see :func:`_check_levels`).
    """
    problems: list[Problem] = []
    approved: dict[str, _Entry] = {}
    default: str | None = None
    removed_by: dict[str, Document] = {}
    ever: set[str] = set()
    levels: list[dict[str, _Entry]] = []
    for level, doc in enumerate(chain):
        block = doc.spec.compute
        if level == 0 and (block is None or block.approved is None):
            problems.append(doc.problem(_COMPUTE, "an enterprise manifest must approve computes",
                                        "plugins.compute.approved with at least one compute",
                                        "add `plugins: {compute: {approved: [duckdb], default: duckdb}}`"))  # fmt: skip
            break
        if block is not None:
            if block.approved is not None:
                narrowed = _narrow(doc, block.approved, approved if level else None, problems)
                for name in approved:
                    if name not in narrowed:
                        removed_by[name] = doc
                approved = narrowed
                ever.update(narrowed)
            if block.default is not None:
                default = block.default
                if default not in approved:
                    problems.append(doc.problem(_COMPUTE + ("default",),
                                                f"default compute {default!r} is not approved at this level",
                                                "one of " + ", ".join(approved),
                                                _suggest(default, approved)))  # fmt: skip
            elif default is not None and default not in approved:
                problems.append(doc.problem(_COMPUTE + ("approved",),
                                            f"the inherited default {default!r} is no longer approved here, so this "
                                            "manifest must set its own default",
                                            "plugins.compute.default naming one of " + ", ".join(approved),
                                            "add `default:` under plugins.compute"))  # fmt: skip
            if level == 0 and block.default is None:
                problems.append(doc.problem(_COMPUTE, "an enterprise manifest must name its default compute",
                                            fix="add `default:` under plugins.compute"))  # fmt: skip
        levels.append(approved)
    problems += check_catalogs(chain)
    problems += check_environment_names(chain)
    if problems:
        raise GovernanceError(problems)
    computes = _finish(approved, engines, store, problems)
    overrides = _overrides(chain)
    environments = _environments(overrides, computes, ever, engines, store, problems)
    problems += _check_levels(chain, levels, overrides, set(computes), engines, store)
    if problems:
        raise GovernanceError(_unique(problems))
    assert default is not None
    registry = ComputeRegistry(computes, default)
    origins = {(env, name): overrides.get(env, {}).get(name, [entry.declared])[-1]
               for env in environments for name, entry in approved.items()}  # fmt: skip
    return Governance(tuple(chain), registry, environments, removed_by, frozenset(ever), origins)


def _unique(problems: list[Problem]) -> list[Problem]:
    """``problems`` without repeats (a fragment checked at several levels reports once), in order."""
    return list(dict.fromkeys(problems))


def _narrow(doc: Document, entries: tuple[ApprovedSpec, ...], parent: dict[str, _Entry] | None,
            problems: list[Problem]) -> dict[str, _Entry]:  # fmt: skip
    out: dict[str, _Entry] = {}
    for i, entry in enumerate(entries):
        path = _COMPUTE + ("approved", i)
        name = entry.name
        if name in out:
            problems.append(doc.problem(path, f"compute {name!r} is approved twice",
                                        fix="remove the duplicate entry"))  # fmt: skip
            continue
        if parent is None:
            base = _Entry(name, entry.engine or name, {}, [], Origin(doc, path))
        elif name not in parent:
            problems.append(doc.problem(path, f"compute {name!r} is not approved by the parent manifest; "
                                        "a manifest may only narrow its parent's approved computes",
                                        "one of " + ", ".join(parent) if parent else "nothing (parent approves none)",
                                        _suggest(name, parent) or "ask the platform team to approve it in the parent manifest"))  # fmt: skip
            continue
        else:
            base = parent[name]
            if entry.engine is not None and entry.engine != base.engine:
                problems.append(doc.problem(path + ("engine",), f"compute {name!r} is engine "
                                            f"{base.engine!r} in the parent; a child cannot change it",
                                            fix="remove `engine:` or approve a new compute name upstream"))  # fmt: skip
                continue
        origins = list(base.origins)
        if entry.config is not None:
            origins.append(Origin(doc, path + ("config",)))
        problems += check_resources(doc, path, name, entry.resources, base.resources)
        resources = {kind: dict(values) for kind, values in base.resources.items()}
        for kind in ("requests", "limits"):
            for resource, value in (getattr(entry.resources, kind) if entry.resources else {}).items():
                resources.setdefault(kind, {})[resource] = Quantity(value, doc, path + ("resources", kind, resource))
        out[name] = _Entry(name, base.engine, resources, origins, base.declared)
    return out


def _finish(approved: dict[str, _Entry], engines: EngineRegistry, store: SchemaStore,
            problems: list[Problem]) -> dict[str, ComputeConfig]:  # fmt: skip
    """Check engines are installed, type and validate each compute's merged settings."""
    computes: dict[str, ComputeConfig] = {}
    for name, entry in approved.items():
        engine = engines.get(entry.engine)
        if engine is None:
            problems.append(_not_installed(entry, engines))
            continue
        uri = engine.schema_uri(store)
        config: dict[str, Any] = {}
        for origin in entry.origins:
            fragment = typed_fragment(origin.doc, origin.path, store, uri)
            _check_settings(origin.doc, origin.path, fragment, problems)
            config = deep_merge(config, fragment if isinstance(fragment, dict) else {})
        invalid = _schema_problems(store, uri, config, entry.origins)
        problems.extend(invalid)
        resources = ResourceOverrides({k: q.value for k, q in entry.resources.get("requests", {}).items()},
                                      {k: q.value for k, q in entry.resources.get("limits", {}).items()})  # fmt: skip
        # settings are a mapping even when they read {secret_ref: X}: only values are references
        compute = ComputeConfig(name, entry.engine, structure_settings(config), resources)
        try:
            if not invalid:  # an engine may rely on what its schema promises
                engine.get_resource_requirements(compute)
        except ValueError as exc:
            problems.append(entry.declared.doc.problem(entry.declared.path + ("resources",),
                                                       f"compute {name!r}: {exc}",
                                                       fix="fix the Kubernetes quantities under resources"))  # fmt: skip
        except BrokenPluginError as exc:  # the plugin broke its contract: the manifest is not at fault
            problems.extend(exc.problems)
        except FloeError as exc:  # the engine refused these settings: point at the compute
            problems.extend(entry.declared.doc.problem(entry.declared.path, p.message, p.expected, p.fix)
                            for p in exc.problems)  # fmt: skip
        computes[name] = compute
    return computes


def _not_installed(entry: _Entry, engines: EngineRegistry) -> Problem:
    """Compute ``entry`` names an engine that did not load: not installed, or installed but broken."""
    broken = [p for p in engines.problems if p.plugin == entry.engine]
    at = entry.declared
    if broken:
        problem = broken[0]
        hook = f": hook {problem.hook}" if problem.hook else ""
        return at.doc.problem(at.path, f"compute {entry.name!r} needs engine {entry.engine!r}, whose plugin is "
                              f"installed (from {problem.distribution}) but broken{hook}: {problem.message}",
                              "a plugin that implements every required hook of floe's engine API",
                              f"upgrade or repair {problem.distribution} (`floe engines` lists broken plugins), "
                              "or remove this compute")  # fmt: skip
    installed = ", ".join(engines.names()) or "none"
    return at.doc.problem(at.path, f"compute {entry.name!r} needs engine {entry.engine!r}, which is not installed",
                          f"an installed engine: {installed}",
                          f"pip install the plugin that provides {entry.engine!r}, or remove it")  # fmt: skip


def _check_levels(chain: list[Document], levels: list[dict[str, _Entry]],
                  overrides: dict[str, dict[str, list[Origin]]], complete: set[str],
                  engines: EngineRegistry, store: SchemaStore) -> list[Problem]:  # fmt: skip
    """Each manifest whole: what every level approves and overrides, valid at that level.

    :func:`_finish` and :func:`_environments` check the computes the chain ends with, fully. Here
    every level's settings of every compute known at that level (approved there, or approved above
    and narrowed away) are merged as that level sees them, with each environment's overrides up to
    it, and validated against the compute's engine; a problem is located at the file and line that
    wrote the offending setting. A required setting may still come from a lower level, so only the
    chain's own computes must be complete. A compute narrowed away whose engine is not installed is
    checked for what needs no engine (literal credentials, Jinja).
    """
    problems: list[Problem] = []
    index = {id(doc): i for i, doc in enumerate(chain)}
    last = len(levels) - 1
    known: dict[str, _Entry] = {}
    typed: dict[tuple[int, JsonPath, str], Any] = {}

    def fragment(origin: Origin, uri: str | None) -> Any:
        key = (id(origin.doc), origin.path, uri or "")
        if key not in typed:
            typed[key] = typed_fragment(origin.doc, origin.path, store, uri) if uri else _get(origin.doc.untyped, origin.path)
            _check_settings(origin.doc, origin.path, typed[key], problems)
        return typed[key]

    for level, approved in enumerate(levels):
        known.update(approved)
        for name, entry in known.items():
            if level == last and name in complete:
                continue
            engine = engines.get(entry.engine)
            uri = engine.schema_uri(store) if engine is not None else None
            config: dict[str, Any] = {}
            for origin in entry.origins:
                value = fragment(origin, uri)
                config = deep_merge(config, value if isinstance(value, dict) else {})
            reported: set[tuple[JsonPath, str]] = set()
            if uri is not None:
                problems += _schema_problems(store, uri, config, entry.origins, missing_ok=True)
                reported = {(tuple(e.absolute_path), e.message) for e in store.errors(uri, config)}
            for per_compute in overrides.values():
                origins = [o for o in per_compute.get(name, []) if index[id(o.doc)] <= level]
                merged = config
                for origin in origins:
                    value = fragment(origin, uri)
                    merged = deep_merge(merged, value if isinstance(value, dict) else {})
                if uri is not None and origins:  # what the settings break is reported where they are
                    problems += _schema_problems(store, uri, merged, origins, reported, missing_ok=True)
    return problems


def _overrides(chain: list[Document]) -> dict[str, dict[str, list[Origin]]]:
    """Where each environment overrides each compute, root manifest first (the default
    environment alone when no manifest declares environments)."""
    overrides: dict[str, dict[str, list[Origin]]] = {}
    for doc in chain:
        for i, env in enumerate(doc.data.get("environments") or []):
            per_compute = overrides.setdefault(env["name"], {})
            for compute in env.get("overrides") or {}:
                per_compute.setdefault(compute, []).append(Origin(doc, ("environments", i, "overrides", compute)))
    if not overrides:
        overrides[DEFAULT_ENVIRONMENT] = {}
    return overrides


def _environments(overrides: dict[str, dict[str, list[Origin]]], computes: dict[str, ComputeConfig],
                  ever: set[str], engines: EngineRegistry, store: SchemaStore,
                  problems: list[Problem]) -> dict[str, dict[str, ComputeConfig]]:  # fmt: skip
    """Each environment's settings of every compute: the compute's config with overrides merged.

    Overrides of a compute that a lower level narrowed away are ignored; overrides of a compute
    that no level ever approved are errors.
    """
    result: dict[str, dict[str, ComputeConfig]] = {}
    for env_name, per_compute in overrides.items():
        for compute_name, origins in per_compute.items():
            if compute_name not in ever:
                o = origins[-1]
                problems.append(o.doc.problem(o.path, f"environment {env_name!r} overrides compute "
                                              f"{compute_name!r}, which no manifest approves",
                                              "one of " + ", ".join(sorted(ever)), _suggest(compute_name, sorted(ever))))  # fmt: skip
        result[env_name] = {}
        for name, compute in computes.items():
            origins = per_compute.get(name, [])
            engine = engines.get(compute.engine)
            if not origins or engine is None:
                result[env_name][name] = compute
                continue
            uri = engine.schema_uri(store)
            config = dict(compute.config)
            for origin in origins:
                fragment = typed_fragment(origin.doc, origin.path, store, uri)
                _check_settings(origin.doc, origin.path, fragment, problems)
                config = deep_merge(config, structure_settings(fragment) if isinstance(fragment, dict) else {})
            reported = {(tuple(e.absolute_path), e.message)  # already reported where the compute is
                        for e in store.errors(uri, unstructure_secrets(dict(compute.config)))}
            problems.extend(_schema_problems(store, uri, unstructure_secrets(config), origins, reported))
            result[env_name][name] = attrs.evolve(compute, config=config)
    return result


def _schema_problems(store: SchemaStore, uri: str, config: dict[str, Any], origins: list[Origin],
                     reported: set[tuple[JsonPath, str]] | None = None, missing_ok: bool = False) -> list[Problem]:  # fmt: skip
    """Validate merged settings; locate each error in the file that set the offending key.

    With ``missing_ok``, settings that are only missing are no error (a lower level may add them).
    """
    problems: list[Problem] = []
    for error in store.errors(uri, config):
        relative = tuple(error.absolute_path)
        if reported and (relative, error.message) in reported:
            continue
        if missing_ok and _only_missing(error):
            continue
        origin = _origin_of(relative, origins)
        if origin is None:
            continue
        problems.extend(problems_from_errors([error], origin.doc.label, origin.doc.line_of, origin.path))
    return problems


def _only_missing(error: ValidationError) -> bool:
    """Whether ``error`` says only that settings are missing (``required``, or a choice among
    groups of required settings none of which is written yet)."""
    if error.validator == "required":
        return True
    if error.validator in ("anyOf", "oneOf") and error.context:
        return all(_only_missing(sub) for sub in error.context)
    return False


def _origin_of(relative: JsonPath, origins: list[Origin]) -> Origin | None:
    for origin in reversed(origins):
        node: Any = _get(origin.doc.data, origin.path)
        for part in relative:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                break
        else:
            return origin
    return None  # set by none of these origins: reported where it was set


def _check_settings(doc: Document, path: JsonPath, value: Any, problems: list[Problem]) -> None:
    """The rules for a compute's settings as written (:func:`floe.secrets.setting_refusals`)."""
    problems.extend(doc.problem(path + r.path, r.message, r.expected, r.fix) for r in setting_refusals(value))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; nested mappings merge, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and "secret_ref" not in value:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_selections(product: Document, governance: Governance) -> list[tuple[str, str, str]]:
    """Each transform's name, path and resolved compute; every bad selection in one error."""
    problems: list[Problem] = []
    invalid: list[Problem] = []
    resolved: list[tuple[str, str, str]] = []
    approved = governance.registry.names()
    seen: dict[str, int] = {}
    for i, raw in enumerate(product.data.get("transforms") or []):
        transform = converter.structure(raw, TransformSpec)
        path = transform.path
        name = transform.name or transform_name(path)
        if name in seen:
            problems.append(product.problem(("transforms", i), f"transform {name!r} is declared twice "
                                            f"(also transforms[{seen[name]}])",
                                            fix="give each transform its own path, or a distinct `name:`"))  # fmt: skip
        seen[name] = i
        selection = transform.compute
        compute = governance.registry.default if selection is None else selection
        if compute not in governance.registry.approved:
            invalid.append(_invalid_compute(product, governance, i, name, compute, approved))
            continue
        resolved.append((name, path, compute))
    if invalid:
        raise InvalidComputeError(invalid + problems)
    if problems:
        raise GovernanceError(problems)
    return resolved


def _invalid_compute(product: Document, governance: Governance, index: int, name: str,
                     compute: str, approved: list[str]) -> Problem:  # fmt: skip
    chain = " → ".join(d.spec.metadata.name for d in governance.chain if d.kind == "Manifest")
    remover = governance.removed_by.get(compute)
    if remover is not None:
        why = (f"it was removed by manifest {remover.spec.metadata.name!r} "
               f"({remover.label}:{remover.line_of(_COMPUTE + ('approved',))})")  # fmt: skip
    else:
        why = f"no manifest in the chain ({chain}) ever approved it"
    guess = _suggest(compute, approved)
    return product.problem(("transforms", index, "compute"),
                           f"transform {name!r} selects compute {compute!r}, which is not in the effective "
                           f"approved list [{', '.join(approved)}]: {why}",
                           "one of " + ", ".join(approved),
                           guess or "pick an approved compute, or ask the platform team to approve this one")  # fmt: skip


def transform_name(path: str) -> str:
    """A transform's default name: its path, as an identifier (``models/staging/`` → ``staging``)."""
    parts = [p for p in Path(path).parts if p not in (".", "models")]
    return "_".join(parts) or "models"


def _suggest(name: str, choices: Mapping[str, Any] | list[str]) -> str | None:
    guess = did_you_mean(name, list(choices))
    return f"did you mean {guess!r}?" if guess else None


def _get(data: Any, path: JsonPath) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data
