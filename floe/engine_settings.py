"""Each compute's settings typed and checked by its engine: the step after :mod:`floe.governance`.

Governance decides which computes a chain approves and where each of their settings is written
(:class:`~floe.governance.Policy`); what the settings mean only the compute's engine knows. This
step asks each engine for its config schema (``floe_config_schema``), types every written fragment
of settings by it (by the rules a whole file is typed by: :meth:`SchemaStore.apply_types
<floe.schemas.SchemaStore.apply_types>`), refuses what the rules for settings as written refuse
(:func:`floe.secrets.setting_refusals`), merges the fragments in the order the policy says
(``config`` down the chain, then each environment's overrides: :mod:`floe.inheritance`'s
``merged`` and ``per-environment override`` rules), validates each result against the engine's
schema, locating every error at the file and line that wrote the offending setting, and asks the
engine for the compute's resources. The result is the :class:`~floe.governance.Governance` a
compile uses: each compute as a :class:`~floe.model.ComputeConfig` per environment.

Every level is checked whole, as if it were compiled on its own (:func:`_check_levels`): also the
settings of computes a lower level narrows away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from floe.diagnostics import JsonPath, node_at, only_missing, problems_from_errors
from floe.documents import Document
from floe.errors import BrokenPluginError, FloeError, GovernanceError, Problem
from floe.governance import ApprovedCompute, ComputeRegistry, Governance, Origin, Policy
from floe.governed_fields import build_timeout
from floe.inheritance import merge_settings
from floe.model import ComputeConfig
from floe.plugins import EngineRegistry
from floe.schemas import BrokenSchema, SchemaStore
from floe.secrets import setting_refusals
from floe.structure import structure_settings, unstructure_secrets


def type_settings(policy: Policy, engines: EngineRegistry, store: SchemaStore) -> Governance:
    """``policy`` completed by the engines: every compute's settings typed, checked and merged, per
    environment.

    :raises GovernanceError: every problem found: an engine that is not installed (or broken),
        settings an engine's schema refuses, a literal credential, Jinja, resources the engine
        refuses, an override of a compute no level approves.
    """
    problems: list[Problem] = []
    try:
        computes = _computes(policy.approved, engines, store, problems)
        environments = _environments(policy, computes, engines, store, problems)
        problems += _check_levels(policy, set(computes), engines, store)
    except BrokenSchema as exc:
        raise _blame_schema(exc, engines, store) from None
    if problems:
        raise GovernanceError(
            list(dict.fromkeys(problems))
        )  # a fragment checked at several levels reports once
    return Governance(policy, ComputeRegistry(computes, policy.default), environments)


def _blame_schema(exc: BrokenSchema, engines: EngineRegistry, store: SchemaStore) -> BrokenPluginError:
    """The engine whose config schema is broken, blamed for it (the manifest is not at fault)."""
    for name in engines.names():
        engine = engines.get(name)
        if engine is not None and engine.schema_uri(store) == exc.uri:
            return BrokenPluginError(
                name,
                "config_schema",
                f"the engine's config schema: {exc.detail}",
                f"fix the engine plugin {engine.plugin_name!r} ({engine.distribution})",
            )
    return BrokenPluginError("(unknown)", "config_schema", str(exc), "fix the engine plugin that declares it")


def typed_fragment(doc: Document, path: JsonPath, store: SchemaStore, uri: str) -> Any:
    """The node at ``path`` of ``doc``, as parsed, typed by the schema at ``uri`` (an engine's).

    Engine settings are typed once floe knows which engine a compute is, which may be decided by
    an ancestor manifest; the untyped node is typed by the same rules as a whole file.
    """
    return store.apply_types(node_at(doc.untyped, path), store.get(uri), uri)


def _checked_fragment(origin: Origin, store: SchemaStore, uri: str | None, problems: list[Problem]) -> Any:
    """The settings written at ``origin``, typed by the engine's schema at ``uri`` (as parsed when
    the engine is not installed), with what the rules for settings as written refuse in ``problems``."""
    value = (
        typed_fragment(origin.doc, origin.path, store, uri)
        if uri
        else node_at(origin.doc.untyped, origin.path)
    )
    problems.extend(
        origin.doc.problem(origin.path + r.path, r.message, r.expected, r.fix)
        for r in setting_refusals(value)
    )
    return value


def _merged(config: Mapping[str, Any], fragment: Any) -> dict[str, Any]:
    return merge_settings(config, fragment if isinstance(fragment, dict) else {})


def _computes(
    approved: Mapping[str, ApprovedCompute],
    engines: EngineRegistry,
    store: SchemaStore,
    problems: list[Problem],
) -> dict[str, ComputeConfig]:
    """Check engines are installed, type and validate each compute's merged settings."""
    computes: dict[str, ComputeConfig] = {}
    for name, entry in approved.items():
        engine = engines.get(entry.engine)
        if engine is None:
            problems.append(_not_installed(entry, engines))
            continue
        uri = engine.schema_uri(store)
        config: dict[str, Any] = {}
        for origin in entry.config_writes:
            config = _merged(config, _checked_fragment(origin, store, uri, problems))
        invalid = _schema_problems(store, uri, config, entry.config_writes)
        problems.extend(invalid)
        # settings are a mapping even when they read {secret_ref: X}: only values are references
        compute = ComputeConfig(
            name,
            entry.engine,
            structure_settings(config),
            entry.resource_overrides(),
            build_timeout(entry.timeout),
        )
        try:
            if not invalid:  # an engine may rely on what its schema promises
                engine.get_resource_requirements(compute)
        except ValueError as exc:
            problems.append(
                entry.declared.doc.problem(
                    entry.declared.path + ("resources",),
                    f"compute {name!r}: {exc}",
                    fix="fix the Kubernetes quantities under resources",
                )
            )
        except BrokenPluginError as exc:  # the plugin broke its contract: the manifest is not at fault
            problems.extend(exc.problems)
        except FloeError as exc:  # the engine refused these settings: point at the compute
            problems.extend(
                entry.declared.doc.problem(entry.declared.path, p.message, p.expected, p.fix)
                for p in exc.problems
            )
        computes[name] = compute
    return computes


def _not_installed(entry: ApprovedCompute, engines: EngineRegistry) -> Problem:
    """Compute ``entry`` names an engine that did not load: not installed, or installed but broken."""
    broken = [p for p in engines.problems if p.plugin == entry.engine]
    at = entry.declared
    if broken:
        problem = broken[0]
        hook = f": hook {problem.hook}" if problem.hook else ""
        return at.doc.problem(
            at.path,
            f"compute {entry.name!r} needs engine {entry.engine!r}, whose plugin is "
            f"installed (from {problem.distribution}) but broken{hook}: {problem.message}",
            "a plugin that implements every required hook of floe's engine API",
            f"upgrade or repair {problem.distribution} (`floe engines` lists broken plugins), "
            "or remove this compute",
        )
    installed = ", ".join(engines.names()) or "none"
    return at.doc.problem(
        at.path,
        f"compute {entry.name!r} needs engine {entry.engine!r}, which is not installed",
        f"an installed engine: {installed}",
        f"pip install the plugin that provides {entry.engine!r}, or remove it",
    )


def _environments(
    policy: Policy,
    computes: dict[str, ComputeConfig],
    engines: EngineRegistry,
    store: SchemaStore,
    problems: list[Problem],
) -> dict[str, dict[str, ComputeConfig]]:
    """Each environment's settings of every compute: the compute's config with overrides merged.

    Overrides of a compute that a lower level narrowed away are ignored; overrides of a compute
    that no level ever approved are errors.
    """
    result: dict[str, dict[str, ComputeConfig]] = {}
    for env_name, per_compute in policy.overrides.items():
        problems.extend(policy.stray_overrides(env_name))
        result[env_name] = {}
        for name, compute in computes.items():
            origins = per_compute.get(name, ())
            engine = engines.get(compute.engine)
            if not origins or engine is None:
                result[env_name][name] = compute
                continue
            uri = engine.schema_uri(store)
            config = dict(compute.config)
            for origin in origins:
                fragment = _checked_fragment(origin, store, uri, problems)
                config = merge_settings(
                    config, structure_settings(fragment) if isinstance(fragment, dict) else {}
                )
            reported = {
                (tuple(e.absolute_path), e.message)  # already reported where the compute is
                for e in store.errors(uri, unstructure_secrets(dict(compute.config)))
            }
            problems.extend(_schema_problems(store, uri, unstructure_secrets(config), origins, reported))
            result[env_name][name] = attrs.evolve(compute, config=config)
    return result


def _check_levels(
    policy: Policy, complete: set[str], engines: EngineRegistry, store: SchemaStore
) -> list[Problem]:
    """Each manifest whole: what every level approves and overrides, valid at that level.

    :func:`_computes` and :func:`_environments` check the computes the chain ends with, fully. Here
    every level's settings of every compute known at that level (approved there, or approved above
    and narrowed away) are merged as that level sees them, with each environment's overrides up to
    it, and validated against the compute's engine; a problem is located at the file and line that
    wrote the offending setting. A required setting may still come from a lower level, so only the
    chain's own computes must be complete. A compute narrowed away whose engine is not installed is
    checked for what needs no engine (literal credentials, Jinja).
    """
    problems: list[Problem] = []
    index = {id(doc): i for i, doc in enumerate(policy.chain)}
    last = len(policy.levels) - 1
    known: dict[str, ApprovedCompute] = {}
    typed: dict[tuple[int, JsonPath, str], Any] = {}

    def fragment(origin: Origin, uri: str | None) -> Any:
        key = (id(origin.doc), origin.path, uri or "")
        if key not in typed:
            typed[key] = _checked_fragment(origin, store, uri, problems)
        return typed[key]

    for level, approved in enumerate(policy.levels):
        known.update(approved)
        for name, entry in known.items():
            if level == last and name in complete:
                continue
            engine = engines.get(entry.engine)
            uri = engine.schema_uri(store) if engine is not None else None
            config: dict[str, Any] = {}
            for origin in entry.config_writes:
                config = _merged(config, fragment(origin, uri))
            reported: set[tuple[JsonPath, str]] = set()
            if uri is not None:
                problems += _schema_problems(store, uri, config, entry.config_writes, missing_ok=True)
                reported = {(tuple(e.absolute_path), e.message) for e in store.errors(uri, config)}
            for per_compute in policy.overrides.values():
                origins = [o for o in per_compute.get(name, ()) if index[id(o.doc)] <= level]
                merged = config
                for origin in origins:
                    merged = _merged(merged, fragment(origin, uri))
                if uri is not None and origins:  # what the settings break is reported where they are
                    problems += _schema_problems(store, uri, merged, origins, reported, missing_ok=True)
    return problems


def _schema_problems(
    store: SchemaStore,
    uri: str,
    config: dict[str, Any],
    origins: tuple[Origin, ...] | list[Origin],
    reported: set[tuple[JsonPath, str]] | None = None,
    missing_ok: bool = False,
) -> list[Problem]:
    """Validate merged settings; locate each error in the file that set the offending key.

    With ``missing_ok``, settings that are only missing are no error (a lower level may add them).
    """
    problems: list[Problem] = []
    for error in store.errors(uri, config):
        relative = tuple(error.absolute_path)
        if reported and (relative, error.message) in reported:
            continue
        if missing_ok and only_missing(error):
            continue
        origin = _origin_of(relative, origins)
        if origin is None:
            continue
        problems.extend(problems_from_errors([error], origin.doc.label, origin.doc.line_of, origin.path))
    return problems


def _origin_of(relative: JsonPath, origins: tuple[Origin, ...] | list[Origin]) -> Origin | None:
    """The last of ``origins`` that writes the setting at ``relative`` (or an ancestor of it)."""
    for origin in reversed(origins):
        node: Any = origin.written
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
