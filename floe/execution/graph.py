"""The transform DAG of a data product, derived from its dbt project's own ref/source graph.

dbt parses the whole project once (every model of every transform; see :mod:`floe.execution.worker`).
Each node that dbt can build (model, seed, snapshot) belongs to a transform:

1. a node of the root project whose file lies under a transform's ``path`` belongs to it (the
   most specific path wins when paths nest);
2. any other node a transform needs — a seed in ``seeds/``, a model of an installed package, a
   model outside every transform path — belongs to the first transform (in dependency order) whose
   nodes depend on it, directly or through other such nodes;
3. nodes nobody needs are not built, and are reported.

Transform ``A`` depends on ``B`` when a node of ``A`` depends on a node of ``B``: ``A`` runs after
``B`` and is skipped when ``B`` fails. Sources are not nodes: their tables are expected to exist.
Tests are not owned; dbt selects them with the nodes they test.

This module is pure Python: it works on the plain data the parse returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import attrs

from floe.errors import FloeError, Problem

BUILDABLE = ("model", "seed", "snapshot")
"""Resource types that become relations (tests, analyses, operations do not)."""
TESTS = ("test", "unit_test")


@attrs.frozen
class Node:
    """One parsed dbt node, as much of it as floe needs."""

    unique_id: str
    resource_type: str
    package_name: str
    name: str
    original_file_path: str
    fqn: tuple[str, ...]
    depends_on: tuple[str, ...]
    materialized: str | None = None
    database: str | None = None
    """The relation dbt resolves the node to in the parsed project (its compute's profile):
    ``database``, ``schema``, ``alias``; ``None`` for nodes that are no relation."""
    schema: str | None = None
    alias: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Node:
        return cls(
            unique_id=str(data["unique_id"]),
            resource_type=str(data["resource_type"]),
            package_name=str(data["package_name"]),
            name=str(data["name"]),
            original_file_path=str(data.get("original_file_path") or ""),
            fqn=tuple(str(p) for p in data.get("fqn") or ()),
            depends_on=tuple(str(d) for d in data.get("depends_on") or ()),
            materialized=data.get("materialized"),
            database=_text(data.get("database")),
            schema=_text(data.get("schema")),
            alias=_text(data.get("alias")),
        )

    @property
    def buildable(self) -> bool:
        return self.resource_type in BUILDABLE

    @property
    def selector(self) -> str:
        """The dbt selector of exactly this node: its fully qualified name."""
        return "fqn:" + ".".join(self.fqn)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@attrs.frozen
class TransformInput:
    """A transform as declared: name, path (relative to the product directory) and compute."""

    name: str
    path: str
    compute: str


@attrs.frozen
class PlannedTransform:
    """A transform with the nodes it builds and the transforms it waits for."""

    name: str
    path: str
    compute: str
    nodes: tuple[Node, ...]
    """Buildable nodes, in the order dbt parsed them."""
    upstream: tuple[str, ...]
    """Transforms this one depends on (declaration order)."""
    tests: int = 0
    """Tests whose parents all belong to this transform or its ancestors (dbt builds them here)."""

    @property
    def selectors(self) -> list[str]:
        return [n.selector for n in self.nodes]


@attrs.frozen
class Plan:
    """The DAG: transforms in a dependency order, and the buildable nodes nobody builds."""

    transforms: tuple[PlannedTransform, ...]
    unassigned: tuple[Node, ...]
    owners: Mapping[str, str] = attrs.field(factory=dict)
    """The transform each node's result belongs to: buildable nodes by assignment, tests (and unit
    tests) to the last transform, in plan order, owning one of their parents."""
    parents: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    """Every parsed node's ``depends_on``."""
    _ancestors: dict[str, frozenset[str]] = attrs.field(factory=dict, eq=False, repr=False)

    def get(self, name: str) -> PlannedTransform:
        return next(t for t in self.transforms if t.name == name)

    def chains(self, upstream: str, name: str) -> bool:
        """Whether dbt alone, building ``upstream`` and ``name`` in one invocation, skips all of
        ``name`` whenever anything of ``upstream`` fails, as ``floe run`` does between transforms.

        dbt skips the descendants of a failed node, and (``dbt build``) of a failed test's parents
        (those descending from all of them). So it holds when every executed node of ``name``
        descends from every executed node of ``upstream`` and from every parent of its tests.
        The runner then builds both with one ``dbt build`` (one start, one cache, dbt's threads)
        without changing what a failure skips.
        """
        up, down = self.get(upstream), self.get(name)
        gates = {n.unique_id for n in up.nodes if n.materialized != "ephemeral"}
        tests = [
            uid for uid, owner in self.owners.items() if owner == upstream and uid.split(".")[0] in TESTS
        ]
        gates |= {p for uid in tests for p in self.parents.get(uid, ()) if p in self.owners}
        executed = [n.unique_id for n in down.nodes if n.materialized != "ephemeral"]
        return bool(gates) and bool(executed) and all(gates <= self.ancestors(uid) for uid in executed)

    def ancestors(self, unique_id: str) -> frozenset[str]:
        """Every node ``unique_id`` depends on, directly or not (memoised)."""
        found = self._ancestors.get(unique_id)
        if found is not None:
            return found
        result: set[str] = set()
        stack = list(self.parents.get(unique_id, ()))
        while stack:
            parent = stack.pop()
            if parent in result:
                continue
            result.add(parent)
            known = self._ancestors.get(parent)
            if known is not None:
                result |= known
            else:
                stack.extend(self.parents.get(parent, ()))
        self._ancestors[unique_id] = frozenset(result)
        return self._ancestors[unique_id]

    def downstream(self, name: str) -> list[str]:
        """Every transform that depends on ``name``, directly or not, in plan order."""
        found: set[str] = {name}
        for transform in self.transforms:
            if any(u in found for u in transform.upstream):
                found.add(transform.name)
        return [t.name for t in self.transforms if t.name in found and t.name != name]


def plan(nodes: Iterable[Node], transforms: Sequence[TransformInput], root_package: str) -> Plan:
    """Assign ``nodes`` to ``transforms`` and order the transforms; see the module docstring.

    :raises FloeError: the transforms depend on each other in a cycle.
    """
    by_id = {n.unique_id: n for n in nodes}
    order = {t.name: i for i, t in enumerate(transforms)}
    owner: dict[str, str] = {}
    folders = _folders(transforms)
    for node in by_id.values():
        if node.buildable and node.package_name == root_package:
            found = _owner_by_path(node.original_file_path, folders)
            if found is not None:
                owner[node.unique_id] = found
    by_path: dict[str, list[str]] = {t.name: [] for t in transforms}
    for uid, name in owner.items():
        by_path[name].append(uid)

    def edges() -> dict[str, set[str]]:
        result: dict[str, set[str]] = {t.name: set() for t in transforms}
        for uid, name in owner.items():
            for dep in by_id[uid].depends_on:
                other = owner.get(dep)
                if other is not None and other != name:
                    result[name].add(other)
        return result

    # Nodes outside every path go to the first transform, in dependency order, that needs them.
    for name in _topological(edges(), order, by_id, owner):
        stack = [d for uid in by_path[name] for d in by_id[uid].depends_on]
        while stack:
            dep = stack.pop()
            needed = by_id.get(dep)
            if needed is None or not needed.buildable or dep in owner:
                continue
            owner[dep] = name
            stack.extend(needed.depends_on)
    graph = edges()
    ordered = _topological(graph, order, by_id, owner)
    owned_by: dict[str, list[Node]] = {t.name: [] for t in transforms}
    for uid, node in by_id.items():
        if uid in owner:
            owned_by[owner[uid]].append(node)
    planned = []
    for name in ordered:
        spec = transforms[order[name]]
        owned = tuple(owned_by[name])
        upstream = tuple(sorted(graph[name], key=order.__getitem__))
        planned.append(PlannedTransform(spec.name, spec.path, spec.compute, owned, upstream))
    planned, owners = _count_tests(planned, by_id, owner)
    unassigned = tuple(n for uid, n in by_id.items() if n.buildable and uid not in owner)
    return Plan(tuple(planned), unassigned, owners, {uid: n.depends_on for uid, n in by_id.items()})


def _folders(transforms: Sequence[TransformInput]) -> dict[tuple[str, ...], str]:
    """Each transform's folder, as path parts, to its name (the first declared keeps a folder two
    transforms name)."""
    folders: dict[tuple[str, ...], str] = {}
    for transform in transforms:
        parts = tuple(p for p in PurePosixPath(transform.path).parts if p != ".")
        if parts:
            folders.setdefault(parts, transform.name)
    return folders


def _owner_by_path(file_path: str, folders: Mapping[tuple[str, ...], str]) -> str | None:
    """The transform whose folder holds ``file_path`` most closely (the deepest folder), looked up
    once per enclosing folder, so that a plan takes time linear in its nodes, whatever the number
    of transforms."""
    parts = PurePosixPath(file_path).parts
    for depth in range(len(parts), 0, -1):
        found = folders.get(parts[:depth])
        if found is not None:
            return found
    return None


def _topological(
    graph: Mapping[str, set[str]],
    order: Mapping[str, int],
    by_id: Mapping[str, Node],
    owner: Mapping[str, str],
) -> list[str]:
    """Kahn's algorithm; ties go in declaration order. Raises on a cycle, naming the refs."""
    remaining = {name: set(deps) for name, deps in graph.items()}
    result: list[str] = []
    while remaining:
        ready = sorted((n for n, deps in remaining.items() if not deps), key=order.__getitem__)
        if not ready:
            raise FloeError([_cycle_problem(remaining, by_id, owner)])
        for name in ready:
            result.append(name)
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    return result


def _cycle_problem(
    remaining: Mapping[str, set[str]], by_id: Mapping[str, Node], owner: Mapping[str, str]
) -> Problem:
    examples = []
    for uid, name in owner.items():
        if name not in remaining:
            continue
        for dep in by_id[uid].depends_on:
            other = owner.get(dep)
            if other in remaining and other != name:
                examples.append(f"{by_id[uid].name} ({name}) → {by_id[dep].name} ({other})")
    return Problem(
        f"the transforms {', '.join(sorted(remaining))} depend on each other in a cycle: "
        + "; ".join(sorted(examples)[:6]),
        expected="transforms whose refs point one way only",
        fix="move the models that close the cycle into one transform's path",
    )


def _count_tests(
    planned: list[PlannedTransform], by_id: Mapping[str, Node], owner: Mapping[str, str]
) -> tuple[list[PlannedTransform], dict[str, str]]:
    """How many tests dbt builds with each transform (``--indirect-selection buildable``), and the
    owners of all nodes: ``owner`` plus each test's last owning transform (see :attr:`Plan.owners`)."""
    position = {t.name: i for i, t in enumerate(planned)}
    ancestors: dict[str, set[str]] = {}
    for transform in planned:
        found = set(transform.upstream)
        for up in transform.upstream:
            found |= ancestors.get(up, set())
        ancestors[transform.name] = found
    counts = {t.name: 0 for t in planned}
    owners = dict(owner)
    for node in by_id.values():
        if node.resource_type not in TESTS:
            continue
        parents = {owner[d] for d in node.depends_on if d in owner}
        if not parents:
            continue
        last = max(parents, key=position.__getitem__)
        owners[node.unique_id] = last
        if parents <= ancestors[last] | {last}:
            counts[last] += 1
    return [attrs.evolve(t, tests=counts[t.name]) for t in planned], owners
