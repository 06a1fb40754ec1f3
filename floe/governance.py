"""Compute governance (REQ-021…024): what a chain of manifests decides, as policy over typed values.

A data product names its platform manifest; each manifest may name a parent, up to the enterprise
manifest (:mod:`floe.chain` loads that chain). Walking the chain from the root, each level may only
narrow the approved computes (and refine their settings); the product's transforms then pick from
what is left. How each field passes from a level to the ones below is :mod:`floe.inheritance`'s
table; the narrow-only fields beyond the approved list (the catalog, resources, environment names)
are checked in :mod:`floe.governed_fields`.

:func:`decide` reads the levels as typed values (:attr:`Document.spec
<floe.documents.Document.spec>`) and asks no engine: it says which computes are approved, with which
engine and default, and where each of their settings is written. What those settings mean only a
compute's engine can say: :mod:`floe.engine_settings` types and checks them, and completes the
:class:`Policy` into the :class:`Governance` a compile uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from floe.diagnostics import JsonPath, did_you_mean
from floe.documents import Document
from floe.errors import GovernanceError, InvalidComputeError, Problem
from floe.governed_fields import (
    DEFAULT_ENVIRONMENT,
    Quantity,
    check_catalogs,
    check_environment_names,
    check_lineage,
    check_resources,
    merge_resources,
    narrow_timeout,
)
from floe.model import ComputeConfig, ResourceOverrides
from floe.specs import ApprovedSpec, ProductSpec
from floe.structure import unstructure_secrets as unstructure_secrets  # floe.testing imports it from here

COMPUTE: JsonPath = ("plugins", "compute")
"""Where a level governs its computes (``plugins.compute``: ``approved`` and ``default``)."""


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
                f"default compute {self.default!r} is not approved (approved: {', '.join(self.approved)})"
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

    @property
    def written(self) -> Any:
        """What is written there (see :meth:`Document.written_at <floe.documents.Document.written_at>`)."""
        return self.doc.written_at(self.path)


@attrs.frozen
class ApprovedCompute:
    """A compute as the levels down to one have approved it: its engine (fixed where it is first
    approved), its resource quantities (each the lowest level's) and where its settings are written."""

    name: str
    engine: str
    resources: Mapping[str, Mapping[str, Quantity]]
    """By kind (requests, limits) and resource: the quantity the lowest level wrote, and where."""
    config_writes: tuple[Origin, ...]
    """Where the compute's settings (``config``) were written, root first: merged in that order."""
    declared: Origin
    """Its entry where it was first approved."""
    timeout: Quantity | None = None
    """The longest one build may run, as the lowest level that set it wrote it (``None``: no limit)."""

    def resource_overrides(self) -> ResourceOverrides:
        """The quantities the levels set over the engine's defaults."""
        return ResourceOverrides(
            {k: q.value for k, q in self.resources.get("requests", {}).items()},
            {k: q.value for k, q in self.resources.get("limits", {}).items()},
        )


@attrs.frozen
class Policy:
    """What a chain decides before any engine is asked (see :func:`decide`)."""

    chain: tuple[Document, ...]
    levels: tuple[Mapping[str, ApprovedCompute], ...]
    """The approved computes as each level of the chain leaves them, root first; the last are the
    chain's."""
    default: str
    removed_by: Mapping[str, Document]
    """The level that narrowed each compute away."""
    ever_approved: frozenset[str]
    overrides: Mapping[str, Mapping[str, tuple[Origin, ...]]]
    """By environment and compute: where the environment overrides the compute's settings, root
    first. Without environments declared anywhere, the default environment alone, overriding nothing."""

    @property
    def approved(self) -> Mapping[str, ApprovedCompute]:
        """The computes the chain approves, in the order the root approves them."""
        return self.levels[-1]

    def for_product(self, product: Document) -> Policy:
        """This policy of a chain of manifests, for ``product`` below it, which writes no compute
        settings and no environments of its own (so decides nothing)."""
        return attrs.evolve(self, chain=(*self.chain, product), levels=(*self.levels, self.levels[-1]))

    def settings_writes(self, environment: str, compute: str) -> tuple[Origin, ...]:
        """Every write of ``compute``'s settings in ``environment``, in the order they apply: its
        ``config`` down the chain, then the environment's overrides of it down the chain."""
        return self.approved[compute].config_writes + tuple(self.overrides[environment].get(compute, ()))

    def settings_origins(self) -> dict[tuple[str, str], Origin]:
        """By ``(environment, compute)``: where its settings were last written (the environment's
        override of the compute, else the compute's entry where it was first approved)."""
        return {
            (env, name): (per_compute.get(name) or (entry.declared,))[-1]
            for env, per_compute in self.overrides.items()
            for name, entry in self.approved.items()
        }

    def stray_overrides(self, environment: str) -> list[Problem]:
        """An override in ``environment`` of a compute that no level ever approved."""
        ever = sorted(self.ever_approved)
        return [
            origins[-1].doc.problem(
                origins[-1].path,
                f"environment {environment!r} overrides compute {name!r}, which no manifest approves",
                "one of " + ", ".join(ever),
                _suggest(name, ever),
            )
            for name, origins in self.overrides[environment].items()
            if name not in self.ever_approved
        ]


@attrs.frozen
class Governance:
    """The effective result of a manifest chain for one data product (or one manifest): its
    :class:`Policy`, completed by the engines with each compute's settings per environment."""

    policy: Policy
    registry: ComputeRegistry
    environments: Mapping[str, Mapping[str, ComputeConfig]]

    @property
    def chain(self) -> tuple[Document, ...]:
        return self.policy.chain

    @property
    def removed_by(self) -> Mapping[str, Document]:
        return self.policy.removed_by

    @property
    def ever_approved(self) -> frozenset[str]:
        return self.policy.ever_approved

    @property
    def origins(self) -> Mapping[tuple[str, str], Origin]:
        """Where the settings of ``(environment, compute)`` were last written: the environment's
        override of the compute, else the compute's entry in ``approved``."""
        return self.policy.settings_origins()

    def for_product(self, product: Document) -> Governance:
        """This governance of a chain of manifests, for ``product`` below it, which writes no
        compute settings and no environments of its own: the same decisions, one level longer."""
        return attrs.evolve(self, policy=self.policy.for_product(product))

    def compute_for(self, name: str, environment: str) -> ComputeConfig:
        """The compute ``name`` with its settings for ``environment``."""
        return self.environments[environment][name]

    def problem(
        self, name: str, environment: str, message: str, expected: str | None = None, fix: str | None = None
    ) -> Problem:
        """A problem with compute ``name`` in ``environment``, located where its settings were written."""
        origin = self.origins.get((environment, name))
        if origin is None:
            return Problem(message, expected=expected, fix=fix)
        return origin.doc.problem(origin.path, message, expected, fix)


def decide(chain: list[Document]) -> Policy:
    """What ``chain`` (root first) decides: the approved computes level by level, the default, the
    environments and where each setting is written.

    :raises GovernanceError: every problem of the chain's policy: a level approving what its parent
        does not, changing a compute's engine or raising a resource, a default that is not
        approved, a catalog changed below its declarer, an environment no manifest declares.
    """
    problems: list[Problem] = []
    approved: dict[str, ApprovedCompute] = {}
    default: str | None = None
    removed_by: dict[str, Document] = {}
    ever: set[str] = set()
    levels: list[dict[str, ApprovedCompute]] = []
    for level, doc in enumerate(chain):
        block = doc.spec.compute
        if level == 0 and (block is None or block.approved is None):
            problems.append(
                doc.problem(
                    COMPUTE,
                    "an enterprise manifest must approve computes",
                    "plugins.compute.approved with at least one compute",
                    "add `plugins: {compute: {approved: [duckdb], default: duckdb}}`",
                )
            )
            break
        if block is not None:
            if block.approved is not None:
                narrowed = _narrow(doc, block.approved, approved if level else None, problems)
                removed_by.update((name, doc) for name in approved if name not in narrowed)
                approved = narrowed
                ever.update(narrowed)
            default = _default(doc, level, block.default, default, approved, problems)
        levels.append(approved)
    problems += check_catalogs(chain)
    problems += check_lineage(chain)
    problems += check_environment_names(chain)
    if problems:
        raise GovernanceError(problems)
    assert default is not None
    return Policy(tuple(chain), tuple(levels), default, removed_by, frozenset(ever), _overrides(chain))


def _default(
    doc: Document,
    level: int,
    written: str | None,
    inherited: str | None,
    approved: Mapping[str, ApprovedCompute],
    problems: list[Problem],
) -> str | None:
    """The default compute after ``doc``: inherited, or replaced by one it still approves."""
    default = inherited
    if written is not None:
        default = written
        if default not in approved:
            problems.append(
                doc.problem(
                    COMPUTE + ("default",),
                    f"default compute {default!r} is not approved at this level",
                    "one of " + ", ".join(approved),
                    _suggest(default, approved),
                )
            )
    elif default is not None and default not in approved:
        problems.append(
            doc.problem(
                COMPUTE + ("approved",),
                f"the inherited default {default!r} is no longer approved here, so this "
                "manifest must set its own default",
                "plugins.compute.default naming one of " + ", ".join(approved),
                "add `default:` under plugins.compute",
            )
        )
    if level == 0 and written is None:
        problems.append(
            doc.problem(
                COMPUTE,
                "an enterprise manifest must name its default compute",
                fix="add `default:` under plugins.compute",
            )
        )
    return default


def _narrow(
    doc: Document,
    entries: tuple[ApprovedSpec, ...],
    parent: dict[str, ApprovedCompute] | None,
    problems: list[Problem],
) -> dict[str, ApprovedCompute]:
    """The computes ``doc`` approves (``parent``'s, narrowed; anything at the root)."""
    out: dict[str, ApprovedCompute] = {}
    for i, entry in enumerate(entries):
        path = COMPUTE + ("approved", i)
        name = entry.name
        if name in out:
            problems.append(
                doc.problem(path, f"compute {name!r} is approved twice", fix="remove the duplicate entry")
            )
            continue
        if parent is None:
            base = ApprovedCompute(name, entry.engine or name, {}, (), Origin(doc, path))
        elif name not in parent:
            problems.append(
                doc.problem(
                    path,
                    f"compute {name!r} is not approved by the parent manifest; "
                    "a manifest may only narrow its parent's approved computes",
                    "one of " + ", ".join(parent) if parent else "nothing (parent approves none)",
                    _suggest(name, parent) or "ask the platform team to approve it in the parent manifest",
                )
            )
            continue
        else:
            base = parent[name]
            if entry.engine is not None and entry.engine != base.engine:
                problems.append(
                    doc.problem(
                        path + ("engine",),
                        f"compute {name!r} is engine {base.engine!r} in the parent; a child cannot change it",
                        fix="remove `engine:` or approve a new compute name upstream",
                    )
                )
                continue
        writes = base.config_writes + ((Origin(doc, path + ("config",)),) if entry.config is not None else ())
        problems += check_resources(doc, path, name, entry.resources, base.resources)
        resources = merge_resources(doc, path, entry.resources, base.resources)
        timeout, wider = narrow_timeout(doc, path, name, entry.timeout, base.timeout)
        problems += wider
        out[name] = ApprovedCompute(name, base.engine, resources, writes, base.declared, timeout)
    return out


def _overrides(chain: list[Document]) -> dict[str, dict[str, tuple[Origin, ...]]]:
    """Where each environment overrides each compute, root manifest first (the default
    environment alone when no manifest declares environments)."""
    overrides: dict[str, dict[str, tuple[Origin, ...]]] = {}
    for doc in chain:
        for i, env in enumerate(doc.spec.environments or ()):
            per_compute = overrides.setdefault(env.name, {})
            for compute in env.overrides or {}:
                origin = Origin(doc, ("environments", i, "overrides", compute))
                per_compute[compute] = per_compute.get(compute, ()) + (origin,)
    if not overrides:
        overrides[DEFAULT_ENVIRONMENT] = {}
    return overrides


def check_selections(product: Document, governance: Governance) -> list[tuple[str, str, str]]:
    """Each transform's name, path and resolved compute; every bad selection in one error."""
    spec = product.spec
    assert isinstance(spec, ProductSpec)
    problems: list[Problem] = []
    invalid: list[Problem] = []
    resolved: list[tuple[str, str, str]] = []
    approved = governance.registry.names()
    seen: dict[str, int] = {}
    for i, transform in enumerate(spec.transforms):
        path = transform.path
        name = transform.name or transform_name(path)
        if name in seen:
            problems.append(
                product.problem(
                    ("transforms", i),
                    f"transform {name!r} is declared twice (also transforms[{seen[name]}])",
                    fix="give each transform its own path, or a distinct `name:`",
                )
            )
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


def _invalid_compute(
    product: Document, governance: Governance, index: int, name: str, compute: str, approved: list[str]
) -> Problem:
    chain = " → ".join(d.spec.metadata.name for d in governance.chain if d.kind == "Manifest")
    remover = governance.removed_by.get(compute)
    if remover is not None:
        why = (
            f"it was removed by manifest {remover.spec.metadata.name!r} "
            f"({remover.label}:{remover.line_of(COMPUTE + ('approved',))})"
        )
    else:
        why = f"no manifest in the chain ({chain}) ever approved it"
    guess = _suggest(compute, approved)
    return product.problem(
        ("transforms", index, "compute"),
        f"transform {name!r} selects compute {compute!r}, which is not in the effective "
        f"approved list [{', '.join(approved)}]: {why}",
        "one of " + ", ".join(approved),
        guess or "pick an approved compute, or ask the platform team to approve this one",
    )


def transform_name(path: str) -> str:
    """A transform's default name: its path, as an identifier (``models/staging/`` → ``staging``)."""
    parts = [p for p in Path(path).parts if p not in (".", "models")]
    return "_".join(parts) or "models"


def _suggest(name: str, choices: Mapping[str, Any] | list[str]) -> str | None:
    guess = did_you_mean(name, list(choices))
    return f"did you mean {guess!r}?" if guess else None
