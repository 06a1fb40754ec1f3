"""``floe plan``: what ``floe run`` will do, decided before anything starts.

A plan is made in two steps, both pure over what they are given:

1. :func:`prepare` (no dbt, no catalog, no worker, no engine connection): the environment and the
   selection, the catalog and namespace, each compute's engine and how its worker reaches the
   catalog (``floe_catalog_access``), why each compute is allowed (the governance chain), and
   every secret the run needs from the environment. Whatever would make the run fail and is known
   here is a problem located at the manifest's file, line and ``$.path``: an engine that cannot
   attach the declared catalog, a secret variable that is not set (an engine that is not
   installed fails the compile before);
2. :func:`complete` with dbt's parse of the project (:mod:`floe.execution.parse`, or the run's
   first worker): each transform's models in build order, the transforms it waits for, and every
   ref that crosses from one compute to another with how it is crossed (:func:`crossing`). A ref
   nothing can cross is a problem located at the reading transform's ``$.transforms[i].compute``.

``floe run`` executes the plan: its transforms, in its order, on its computes (its report has the
same transforms, computes, dependencies and nodes; ``tests/test_plan.py`` compares them).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from floe.compiler import STATE_DIR, Compiled, catalog_document
from floe.documents import Document
from floe.errors import FloeError, Problem, UnattachableCatalog
from floe.execution.catalog import CatalogPlan, plan_catalog
from floe.execution.graph import Node, Plan, TransformInput, plan
from floe.execution.profiles import namespace
from floe.model import CatalogAccess, ComputeConfig, SecretReference
from floe.plugins import EngineRegistry


class CrossingKind(enum.StrEnum):
    """How a ref from a model on one compute to a model on another is satisfied."""

    IN_PLACE = "in_place"
    """Both workers attach the catalog: the reader's engine reads the writer's Iceberg table where
    it is (``<catalog>.<namespace>.<model>``), with no copy."""
    BRIDGED = "bridged"
    """At least one of them builds in its own warehouse, and floe carries the table through the
    catalog (:mod:`floe.execution.bridges`): published into it after the upstream transform
    builds, when the upstream engine cannot write Iceberg; loaded from it into the downstream
    engine's warehouse before the downstream transform builds, when that engine cannot read it."""


@attrs.frozen
class Crossing:
    """The refs from the models of one transform to those of another on a different compute."""

    upstream: str
    downstream: str
    upstream_compute: str
    downstream_compute: str
    refs: tuple[tuple[str, str], ...]
    """``(reading node, read node)`` unique ids."""
    kind: CrossingKind | None
    """``None``: nothing can cross it (a problem of the plan)."""
    how: str
    publish: bool = False
    """Bridged: floe publishes the read models into the catalog after the upstream transform builds."""
    load: bool = False
    """Bridged: floe loads the read models into the downstream warehouse before the downstream builds."""

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.upstream,
            "to": self.downstream,
            "from_compute": self.upstream_compute,
            "to_compute": self.downstream_compute,
            "kind": None if self.kind is None else str(self.kind),
            "how": self.how,
            "publish": self.publish,
            "load": self.load,
            "refs": [list(r) for r in self.refs],
        }


def crossing(
    catalog: str, upstream: CatalogAccess, downstream: CatalogAccess
) -> tuple[CrossingKind | None, str]:
    """How a ref from a compute whose worker reaches the catalog as ``downstream`` to a model built
    by one that reaches it as ``upstream`` is crossed, and why; ``None`` when nothing can.

    The one decision of a crossing. In place when both attach the catalog; bridged when the
    upstream table can reach the catalog (the upstream attaches it, or floe reads its tables) and
    the downstream engine can read it from there (it attaches the catalog, or floe loads tables
    into it); else nothing can cross it. :func:`bridge_steps` says which half a bridge needs.
    """
    if upstream.in_place and downstream.in_place:
        return CrossingKind.IN_PLACE, f"read in place through the catalog {catalog!r}"
    reaches_catalog = upstream.in_place or upstream.reads
    read_from_catalog = downstream.in_place or downstream.loads
    if reaches_catalog and read_from_catalog:
        publish, load = bridge_steps(upstream, downstream)
        halves = ["published into the catalog after the upstream transform builds"] if publish else []
        halves += (
            ["loaded into the downstream warehouse before the downstream transform builds"] if load else []
        )
        return CrossingKind.BRIDGED, f"bridged through the catalog {catalog!r}: " + ", then ".join(halves)
    if not reaches_catalog:
        return (
            None,
            f"the upstream compute builds in its own warehouse and floe cannot read its tables ({upstream.how})",
        )
    return (
        None,
        f"the downstream compute cannot read the catalog and floe cannot load tables into it ({downstream.how})",
    )


def bridge_steps(upstream: CatalogAccess, downstream: CatalogAccess) -> tuple[bool, bool]:
    """``(publish, load)`` of a bridged crossing: what floe carries for it (see :func:`crossing`)."""
    return not upstream.in_place, not downstream.in_place


@attrs.frozen
class ComputePlan:
    """A compute the run uses: its engine, how its worker reaches the catalog, why it is allowed."""

    name: str
    engine: str
    version: str
    distribution: str
    dbt_adapter: str
    access: CatalogAccess
    allowed: tuple[str, ...]
    """The governance chain, one sentence a step: which manifests approve and keep it, with file and line."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine": self.engine,
            "engine_version": self.version,
            "distribution": self.distribution,
            "dbt_adapter": self.dbt_adapter,
            "catalog_access": {
                "in_place": self.access.in_place,
                "how": self.access.how,
                "reads": self.access.reads,
                "loads": self.access.loads,
            },
            "allowed": list(self.allowed),
        }


@attrs.frozen
class TransformPlan:
    """A selected transform: where it runs, what it waits for, what dbt builds for it."""

    name: str
    path: str
    compute: str
    engine: str
    depends_on: tuple[str, ...]
    nodes: tuple[str, ...]
    """Unique ids of the models, seeds and snapshots it builds, in build order."""
    tests: int

    def to_json(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for unique_id in self.nodes:
            kinds[unique_id.split(".", 1)[0]] = kinds.get(unique_id.split(".", 1)[0], 0) + 1
        return {
            "name": self.name,
            "path": self.path,
            "compute": self.compute,
            "engine": self.engine,
            "depends_on": list(self.depends_on),
            "models": kinds.get("model", 0),
            "seeds": kinds.get("seed", 0),
            "snapshots": kinds.get("snapshot", 0),
            "tests": self.tests,
            "nodes": list(self.nodes),
        }


@attrs.frozen
class Preparation:
    """What :func:`prepare` knows before dbt's parse."""

    compiled: Compiled
    environment: str
    product: str
    namespace: str
    catalog: CatalogPlan
    inputs: tuple[TransformInput, ...]
    """Every transform of the product (a selected one may read the tables of one not selected)."""
    selected: tuple[str, ...]
    computes: Mapping[str, ComputePlan]
    """Every compute of the product's transforms, by name."""

    @property
    def selected_computes(self) -> list[str]:
        names = set(self.selected)
        return list(dict.fromkeys(t.compute for t in self.inputs if t.name in names))

    @property
    def crossing_can_fail(self) -> bool:
        """Whether a ref between computes could be one nothing crosses: only when the product uses
        more than one compute and one of them neither attaches the catalog nor lets floe carry its
        tables both ways."""
        return len(self.computes) > 1 and not all(
            c.access.in_place or (c.access.reads and c.access.loads) for c in self.computes.values()
        )

    def compute_config(self, name: str) -> ComputeConfig:
        return self.compiled.governance.compute_for(name, self.environment)


@attrs.frozen
class RunPlan:
    """What ``floe run`` will do; see the module docstring."""

    preparation: Preparation
    graph: Plan
    transforms: tuple[TransformPlan, ...]
    crossings: tuple[Crossing, ...]

    @property
    def unassigned(self) -> list[str]:
        return [n.unique_id for n in self.graph.unassigned]

    def to_json(self) -> dict[str, Any]:
        prep = self.preparation
        used = {t.compute for t in self.transforms}
        return {
            "apiVersion": "floe.dev/v1",
            "kind": "RunPlan",
            "product": prep.product,
            "environment": prep.environment,
            "catalog": prep.catalog.to_json(),
            "namespace": prep.namespace,
            "computes": [c.to_json() for name, c in prep.computes.items() if name in used],
            "transforms": [t.to_json() for t in self.transforms],
            "crossings": [c.to_json() for c in self.crossings],
            "unassigned": self.unassigned,
        }

    def render(self) -> str:
        """The plan for a reader: catalog, computes and why they are allowed, transforms in build
        order with their models, and the crossings."""
        prep = self.preparation
        catalog = prep.catalog
        where = (
            f"embedded, {catalog.root}"
            if catalog.embedded
            else f"declared in the manifest, {catalog.config.uri}"
        )
        lines = [
            f"plan of {prep.product} in {prep.environment}: catalog {catalog.config.name!r} ({where}); "
            f"namespace {prep.namespace}",
            "",
            "computes:",
        ]
        used = {t.compute for t in self.transforms}
        for compute in (c for name, c in prep.computes.items() if name in used):
            lines.append(
                f"  {compute.name}: engine {compute.engine} {compute.version} ({compute.distribution}), "
                f"dbt adapter {compute.dbt_adapter}"
            )
            lines.append(f"    {compute.access.summary()}: {compute.access.how}")
            lines += [f"    {step}" for step in compute.allowed]
        lines += ["", "transforms, in build order:"]
        for position, transform in enumerate(self.transforms, 1):
            after = f", after {', '.join(transform.depends_on)}" if transform.depends_on else ""
            kinds: dict[str, int] = {}
            for unique_id in transform.nodes:
                kinds[unique_id.split(".", 1)[0]] = kinds.get(unique_id.split(".", 1)[0], 0) + 1
            parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(kinds.items())]
            if transform.tests:
                parts.append(f"{transform.tests} test{'s' if transform.tests != 1 else ''}")
            lines.append(
                f"  {position}. {transform.name} on {transform.compute} ({transform.engine}){after}: "
                f"{', '.join(parts) or 'nothing to build'}"
            )
            lines += [f"       {unique_id}" for unique_id in transform.nodes]
        if self.crossings:
            lines += ["", "refs between computes:"]
            for cross in self.crossings:
                models = ", ".join(dict.fromkeys(read.rsplit(".", 1)[-1] for _, read in cross.refs))
                lines.append(
                    f"  {cross.upstream} ({cross.upstream_compute}) → {cross.downstream} "
                    f"({cross.downstream_compute}), {cross.kind or 'not crossable'}: {models}"
                )
                lines.append(f"      {cross.how}")
        if self.unassigned:
            lines += [
                "",
                "not built (outside every transform path, and no transform needs them): "
                + ", ".join(self.unassigned),
            ]
        return "\n".join(lines)


# -- step 1: before dbt's parse --------------------------------------------------------------------


def prepare(
    compiled: Compiled,
    registry: EngineRegistry,
    environment: str,
    select: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Preparation:
    """Everything of the plan that needs no parse; see the module docstring.

    :raises FloeError: every problem found, located where the manifests say what causes it.
    """
    env = os.environ if environ is None else environ
    _check_arguments(compiled, environment, select)
    product = compiled.name
    product_dir = compiled.product_dir.resolve()
    problems: list[Problem] = []
    catalog: CatalogPlan | None = None
    try:
        catalog = plan_catalog(compiled.catalog, product_dir / STATE_DIR)
    except UnattachableCatalog as exc:
        problems += _located(compiled, exc)
    inputs = tuple(TransformInput(t.name, t.path, t.compute) for t in compiled.transforms)
    selected = tuple(t.name for t in inputs if not select or t.name in select)
    computes: dict[str, ComputePlan] = {}
    selected_computes = {t.compute for t in inputs if t.name in selected}
    for name in dict.fromkeys(t.compute for t in inputs):
        compute = compiled.governance.compute_for(name, environment)
        engine = registry.engines[compute.engine]
        access = CatalogAccess.own_warehouse("not known: the catalog is not usable")
        if catalog is not None:
            try:
                access = engine.catalog_access(compute, catalog.config)
            except UnattachableCatalog as exc:
                if name in selected_computes:
                    problems += _located(compiled, exc)
            except FloeError as exc:
                if name in selected_computes:
                    problems += [
                        compiled.governance.problem(name, environment, p.message, p.expected, p.fix)
                        for p in exc.problems
                    ]
        computes[name] = ComputePlan(
            name,
            engine.name,
            engine.info.version,
            engine.distribution,
            engine.info.dbt_adapter,
            access,
            approval_chain(compiled, name),
        )
        if name in selected_computes:
            problems += _unset_secrets(compiled, name, environment, compute, env)
    if (
        catalog is not None and catalog.config.type == "rest" and not catalog.embedded
    ):  # the embedded one's is the run's
        problems += _unset_catalog_secrets(compiled, catalog, env)
    if problems:
        raise FloeError(problems)
    assert catalog is not None
    return Preparation(
        compiled, environment, product, namespace(product, environment), catalog, inputs, selected, computes
    )


def _check_arguments(compiled: Compiled, environment: str, select: Sequence[str]) -> None:
    if not compiled.transforms:
        raise FloeError(
            [
                Problem(
                    f"{compiled.source.path} is a manifest: `floe run` runs a data product",
                    fix="pass a data product directory or its floe.yaml",
                )
            ]
        )
    environments = list(compiled.governance.environments)
    if environment not in environments:
        raise FloeError(
            [
                Problem(
                    f"unknown environment {environment!r}",
                    expected="one of " + ", ".join(environments),
                    fix="pass --env with an environment the manifests declare",
                )
            ]
        )
    names = [t.name for t in compiled.transforms]
    unknown = [s for s in select if s not in names]
    if unknown:
        raise FloeError(
            [
                Problem(
                    f"no transform named {', '.join(map(repr, unknown))}",
                    expected="one of " + ", ".join(names),
                    fix="name transforms as `floe compile` lists them (their `name:`, else "
                    "their path as an identifier)",
                )
            ]
        )


def _located(compiled: Compiled, exc: UnattachableCatalog) -> list[Problem]:
    """The problems of ``exc`` at the ``$.catalog`` key of the manifest that declares the catalog."""
    declared = catalog_document(compiled.governance.chain)
    if declared is None:
        return list(exc.problems)
    return [declared.problem(exc.key, p.message, p.expected, p.fix) for p in exc.problems]


def located_catalog_error(compiled: Compiled, exc: UnattachableCatalog) -> FloeError:
    """``exc``, located as :func:`prepare` locates it (for a refusal the run meets later)."""
    return exc.located(_located(compiled, exc))


def _unset_secrets(
    compiled: Compiled, name: str, environment: str, compute: ComputeConfig, environ: Mapping[str, str]
) -> list[Problem]:
    problems = []
    for path, ref in _secret_paths(compute.config):
        if environ.get(ref.name):
            continue
        where = _secret_origin(compiled, name, environment, ref.name)
        message = (
            f"compute {name!r}: the secret environment variable {ref.name} is not set "
            f"(settings key {'.'.join(map(str, path))})"
        )
        fix = f"set {ref.name} in the environment `floe run` runs in (from your secret store)"
        if where is None:
            problems.append(Problem(message, fix=fix))
        else:
            doc, at = where
            problems.append(doc.problem(at, message, fix=fix))
    return problems


def _unset_catalog_secrets(
    compiled: Compiled, catalog: CatalogPlan, environ: Mapping[str, str]
) -> list[Problem]:
    declared = catalog_document(compiled.governance.chain)
    problems = []
    for key in ("client_secret", "token"):
        ref = getattr(catalog.config, key)
        if isinstance(ref, SecretReference) and not environ.get(ref.name):
            message = (
                f"catalog {catalog.config.name!r}: the secret environment variable {ref.name} is not set"
            )
            fix = f"set {ref.name} in the environment `floe run` runs in (the manifest's catalog names it)"
            problems.append(
                declared.problem(("catalog", key), message, fix=fix)
                if declared
                else Problem(message, fix=fix)
            )
    return problems


def _secret_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], SecretReference]]:
    if isinstance(value, SecretReference):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in _secret_paths(item, (*path, key))]
    if isinstance(value, list | tuple):
        return [found for i, item in enumerate(value) for found in _secret_paths(item, (*path, i))]
    return []


def _secret_origin(
    compiled: Compiled, compute: str, environment: str, variable: str
) -> tuple[Document, tuple[Any, ...]] | None:
    """Where a manifest writes ``{secret_ref: variable}`` for ``compute`` in ``environment``: the
    most specific manifest first (its environment's override, then its approved entry)."""
    for doc in reversed(compiled.governance.chain):
        for i, env in enumerate(doc.data.get("environments") or []):
            if env.get("name") == environment:
                override = (env.get("overrides") or {}).get(compute)
                found = _find_ref(override, ("environments", i, "overrides", compute), variable)
                if found is not None:
                    return doc, found
        block = (doc.data.get("plugins") or {}).get("compute") or {}
        for i, entry in enumerate(block.get("approved") or []):
            if isinstance(entry, dict) and entry.get("name") == compute:
                found = _find_ref(
                    entry.get("config"), ("plugins", "compute", "approved", i, "config"), variable
                )
                if found is not None:
                    return doc, found
    return None


def _find_ref(value: Any, path: tuple[Any, ...], variable: str) -> tuple[Any, ...] | None:
    if isinstance(value, Mapping):
        if value.get("secret_ref") == variable and len(value) == 1:
            return path
        for key, item in value.items():
            found = _find_ref(item, (*path, key), variable)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_ref(item, (*path, i), variable)
            if found is not None:
                return found
    return None


def approval_chain(compiled: Compiled, compute: str) -> tuple[str, ...]:
    """Why ``compute`` may run the product's transforms: each manifest of the chain that approves
    it, keeps it, or makes it the default, then the transforms that select it (or take the default)."""
    steps = []
    first = True
    for doc in compiled.governance.chain:
        if doc.kind != "Manifest":
            continue
        block = (doc.data.get("plugins") or {}).get("compute") or {}
        name = doc.spec.metadata.name
        for i, entry in enumerate(block.get("approved") or []):
            if (entry.get("name") if isinstance(entry, dict) else entry) == compute:
                verb = "approved by" if first else "kept by"
                steps.append(
                    f"{verb} {doc.kind.lower()} {name!r} ({doc.label}:"
                    f"{doc.line_of(('plugins', 'compute', 'approved', i))})"
                )
                first = False
        if block.get("default") == compute:
            steps.append(
                f"the default of {name!r} ({doc.label}:{doc.line_of(('plugins', 'compute', 'default'))})"
            )
    product = compiled.source
    for i, raw in enumerate(product.data.get("transforms") or []):
        transform = compiled.transforms[i] if i < len(compiled.transforms) else None
        if transform is None or transform.compute != compute:
            continue
        if raw.get("compute") is not None:
            steps.append(
                f"selected by transform {transform.name!r} ({product.label}:"
                f"{product.line_of(('transforms', i, 'compute'))})"
            )
        else:
            steps.append(
                f"the default for transform {transform.name!r} ({product.label}:"
                f"{product.line_of(('transforms', i))})"
            )
    return tuple(steps)


# -- step 2: with dbt's parse ------------------------------------------------------------------------


def complete(preparation: Preparation, nodes: Sequence[Node], root_package: str) -> RunPlan:
    """The plan with the transforms' models and the crossings, from dbt's parse of the project.

    :raises FloeError: the transforms depend on each other in a cycle, or a ref between computes
        cannot be crossed (located at the reading transform's ``compute``).
    """
    graph = plan(nodes, preparation.inputs, root_package)
    selected = set(preparation.selected)
    transforms = tuple(
        TransformPlan(
            t.name,
            t.path,
            t.compute,
            preparation.computes[t.compute].engine,
            t.upstream,
            build_order(t.nodes),
            t.tests,
        )
        for t in graph.transforms
        if t.name in selected
    )
    crossings = _crossings(preparation, graph, selected)
    problems = [_uncrossable(preparation, c) for c in crossings if c.kind is None]
    if problems:
        raise FloeError(problems)
    return RunPlan(preparation, graph, transforms, crossings)


def build_order(nodes: Sequence[Node]) -> tuple[str, ...]:
    """The unique ids of ``nodes`` in an order dbt builds them in: each after the nodes of the same
    set it depends on, ties in dbt's parse order."""
    ids = {n.unique_id for n in nodes}
    waiting = {n.unique_id: {d for d in n.depends_on if d in ids and d != n.unique_id} for n in nodes}
    ordered: list[str] = []
    while waiting:
        ready = [uid for uid, deps in waiting.items() if not deps] or [
            next(iter(waiting))
        ]  # a cycle: dbt says so
        for uid in ready:
            ordered.append(uid)
            del waiting[uid]
        for deps in waiting.values():
            deps.difference_update(ready)
    return tuple(ordered)


def _crossings(preparation: Preparation, graph: Plan, selected: set[str]) -> tuple[Crossing, ...]:
    """The crossings into the selected transforms, and those out of them that a bridge publishes
    for (a transform not selected reads the catalog's table later, as the run leaves it)."""
    computes = {t.name: t.compute for t in preparation.inputs}
    refs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for transform in graph.transforms:
        for node in transform.nodes:
            for dep in node.depends_on:
                owner = graph.owners.get(dep)
                if owner is None or owner == transform.name or computes[owner] == transform.compute:
                    continue
                if transform.name in selected or owner in selected:
                    refs.setdefault((owner, transform.name), []).append((node.unique_id, dep))
    found = []
    catalog = preparation.catalog.config.name
    for (upstream, downstream), pairs in refs.items():
        up, down = preparation.computes[computes[upstream]], preparation.computes[computes[downstream]]
        kind, how = crossing(catalog, up.access, down.access)
        publish, load = (
            bridge_steps(up.access, down.access) if kind == CrossingKind.BRIDGED else (False, False)
        )
        if downstream not in selected and not publish:
            continue  # nothing this run does for it
        found.append(
            Crossing(upstream, downstream, up.name, down.name, tuple(pairs), kind, how, publish, load)
        )
    return tuple(found)


def _uncrossable(preparation: Preparation, cross: Crossing) -> Problem:
    product = preparation.compiled.source
    index = next(i for i, t in enumerate(preparation.inputs) if t.name == cross.downstream)
    reading, read = cross.refs[0]
    more = f" (and {len(cross.refs) - 1} more)" if len(cross.refs) > 1 else ""
    return product.problem(
        ("transforms", index, "compute"),
        f"transform {cross.downstream!r} on compute {cross.downstream_compute!r} refs "
        f"{read.split('.')[-1]!r} of transform {cross.upstream!r} on compute {cross.upstream_compute!r} "
        f"({reading} → {read}{more}): {cross.how}, and nothing can carry the table from one to the other",
        expected="refs between computes whose engines attach the catalog in place, or let floe carry their "
        "tables through it (CatalogAccess.bridged)",
        fix=f"run {cross.downstream!r} on {cross.upstream_compute!r} (or both on computes that attach the catalog "
        "or are bridged), or move the model into the same transform",
    )


def plan_path(
    path: Path, environment: str, select: Sequence[str] = (), registry: EngineRegistry | None = None
) -> RunPlan:
    """Compile the product at ``path`` and plan its run: :func:`prepare`, dbt's parse in a
    subprocess (:mod:`floe.execution.parse`), :func:`complete`. Starts no catalog, no worker."""
    from floe.compiler import compile_path
    from floe.execution.parse import parse_for_plan

    registry = registry or EngineRegistry.discover()
    compiled = compile_path(path, registry)
    preparation = prepare(compiled, registry, environment, select)
    nodes, root = parse_for_plan(preparation, registry)
    return complete(preparation, nodes, root)
