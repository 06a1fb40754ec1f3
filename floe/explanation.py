"""``floe explain``: why a product may (not) use a compute, and where each setting comes from.

A platform engineer asks "why can't this product use snowflake?" and "where does this setting come
from?". :func:`explain` answers from the chain and its governance: for every compute of the
enterprise manifest, each level's decision with its file and line; for each transform, its compute
and why; each setting's effective value per environment with every write that led to it, in the
order they apply; the catalog and who declared it. Each value carries the inheritance rule of its
field (:mod:`floe.inheritance`). The answer is typed (:class:`Explanation`), rendered as text by
:meth:`Explanation.render` and as JSON by :meth:`Explanation.to_json`.

It explains a chain that governs (a selection of a compute that is not available is explained, not
refused); a chain that does not govern raises its :class:`~floe.errors.FloeError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from floe.chain import load_chain
from floe.compiled import ChainLevel, find_source, govern
from floe.diagnostics import JsonPath, format_path, node_at
from floe.documents import Document, display_path, read_document
from floe.errors import FloeError, Problem
from floe.governance import COMPUTE, Governance, transform_name
from floe.governed_fields import catalog_declarer, lineage_declarer
from floe.inheritance import rule_for
from floe.model import SecretReference
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore
from floe.schemas import store as default_store
from floe.structure import unstructure_secrets


@attrs.frozen
class Where:
    """A place in the chain: the level (manifest or product name), its file, the line and ``$.path``."""

    level: str
    file: str
    line: int | None
    path: str

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{self.level} at {at}"


@attrs.frozen
class Decision:
    """What one level decided about a compute: ``approved`` (the enterprise), ``kept``, ``removed``,
    or ``inherited`` (the level writes no approved list)."""

    level: str
    action: str
    where: Where | None


@attrs.frozen
class ComputeAvailability:
    name: str
    engine: str | None
    available: bool
    decisions: tuple[Decision, ...]

    @property
    def reason(self) -> str:
        if not self.decisions:
            return "no manifest of the chain approves it"
        said = [f"{d.action} by {d.where}" if d.where else f"{d.action} by {d.level}" for d in self.decisions]
        return "; ".join(said)


@attrs.frozen
class DefaultChoice:
    compute: str
    where: Where


@attrs.frozen
class TransformChoice:
    name: str
    path: str
    compute: str
    explicit: bool
    available: bool
    where: Where
    """Where the compute was chosen: the transform's ``compute:``, or where the default was set."""

    @property
    def reason(self) -> str:
        how = (
            f"explicit at {self.where.file}:{self.where.line}"
            if self.explicit
            else f"the default, set by {self.where}"
        )
        return how if self.available else f"{how}; NOT AVAILABLE to this product"


@attrs.frozen
class Write:
    """One write of a setting: its value as written there, and where."""

    value: Any
    where: Where


@attrs.frozen
class SettingValue:
    """A setting's effective value, the write that set it, the writes it replaced (in the order they
    apply) and the inheritance rule of its field."""

    key: str
    value: Any
    where: Where | None
    """``None`` for an engine's default (resources no manifest sets)."""
    replaced: tuple[Write, ...]
    rule: str


@attrs.frozen
class ComputeSettings:
    compute: str
    environment: str
    settings: tuple[SettingValue, ...]
    resources: tuple[SettingValue, ...]
    """Its resource quantities, and its build ``timeout`` where a level sets one."""


@attrs.frozen
class CatalogExplanation:
    declared_by: Where | None
    fields: tuple[SettingValue, ...]

    @property
    def summary(self) -> str:
        if self.declared_by is None:
            return (
                "no manifest declares one: `floe run` serves an embedded Iceberg REST catalog under the "
                "product's .floe/"
            )
        return f"declared by {self.declared_by}; fixed for every level below"


@attrs.frozen
class LineageExplanation:
    declared_by: Where | None
    fields: tuple[SettingValue, ...]

    @property
    def summary(self) -> str:
        if self.declared_by is None:
            return (
                "no manifest declares it: the OpenLineage client's environment decides (OPENLINEAGE_URL, "
                "OPENLINEAGE_CONFIG…)"
            )
        return (
            f"declared by {self.declared_by}; fixed for every level below, over OPENLINEAGE_URL and "
            "OPENLINEAGE_CONFIG (OPENLINEAGE_DISABLED=true still turns it off)"
        )


@attrs.frozen
class Explanation:
    name: str
    kind: str
    chain: tuple[ChainLevel, ...]
    computes: tuple[ComputeAvailability, ...]
    default: DefaultChoice
    transforms: tuple[TransformChoice, ...]
    environments: tuple[str, ...]
    settings: tuple[ComputeSettings, ...]
    catalog: CatalogExplanation
    lineage: LineageExplanation

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (paths as text; secrets only as ``{secret_ref: NAME}``)."""

        def plain(value: Any) -> Any:
            if attrs.has(type(value)):
                out = {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
                for extra in ("reason", "summary"):
                    if hasattr(type(value), extra):
                        out[extra] = getattr(value, extra)
                return out
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, Mapping):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, Path):
                return str(value)
            return value

        data: dict[str, Any] = plain(self)
        return data

    def render(self) -> str:
        """The text ``floe explain`` prints."""
        lines = [
            f"{self.name} ({'data product' if self.kind == 'DataProduct' else 'manifest'}): "
            + " → ".join(f"{level.name} ({display_path(level.file)})" for level in self.chain),
            "",
            "computes",
        ]
        width = max((len(c.name) for c in self.computes), default=0)
        for c in self.computes:
            state = "available" if c.available else "NOT AVAILABLE"
            lines.append(f"  {c.name:<{width}}  {state:<13}  {c.reason}")
        lines.append(f"default: {self.default.compute}, set by {self.default.where}")
        if self.transforms:
            lines += ["", "transforms"]
            width = max(len(t.name) for t in self.transforms)
            compute_width = max(len(t.compute) for t in self.transforms)
            lines += [
                f"  {t.name:<{width}}  {t.compute:<{compute_width}}  {t.reason}" for t in self.transforms
            ]
        for block in self.settings:
            lines += ["", f"settings of {block.compute} in environment {block.environment}"]
            for setting in (*block.settings, *block.resources):
                lines.append(f"  {setting.key} = {_shown(setting.value)}  ({_origin(setting)})")
            if not block.settings and not block.resources:
                lines.append("  (none: the engine's defaults)")
        lines += ["", f"catalog: {self.catalog.summary}"]
        lines += [f"  {f.key} = {_shown(f.value)}  ({_origin(f)})" for f in self.catalog.fields]
        lines += ["", f"lineage: {self.lineage.summary}"]
        lines += [f"  {f.key} = {_shown(f.value)}  ({_origin(f)})" for f in self.lineage.fields]
        return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"secret_ref"}:
        return f"{{secret_ref: {value['secret_ref']}}}"
    return str(value)


def _origin(setting: SettingValue) -> str:
    said = f"set by {setting.where}" if setting.where else "the engine's default: no manifest sets it"
    if setting.replaced:
        said += "; over " + ", ".join(f"{_shown(w.value)} from {w.where}" for w in reversed(setting.replaced))
    return f"{said}; {setting.rule}"


# -- computing the answer ------------------------------------------------------------------------------


def explain(
    path: str | os.PathLike[str],
    environment: str | None = None,
    compute: str | None = None,
    engines: EngineRegistry | None = None,
    store: SchemaStore | None = None,
) -> Explanation:
    """Explain the chain of ``path`` (a product directory, its floe.yaml, or a manifest).

    :param environment: explain the settings of this environment only (default: every one).
    :param compute: explain this compute only (its availability and settings).
    :raises FloeError: the files do not parse or govern, or ``environment`` is not declared.
    """
    store = store or default_store()
    engines = engines or EngineRegistry.discover()
    source = read_document(find_source(Path(os.fspath(path))), store)
    chain = load_chain(source, store)
    governance = govern(chain, engines, store)
    if environment is not None and environment not in governance.environments:
        raise FloeError(
            [
                Problem(
                    f"unknown environment {environment!r}; the chain declares "
                    f"{', '.join(governance.environments)}",
                    source.label,
                    fix="pass one of them to --env",
                )
            ]
        )
    computes = _computes(chain, governance)
    if compute is not None:
        computes = [c for c in computes if c.name == compute] or [
            ComputeAvailability(compute, None, False, ())
        ]
    shown = [c.name for c in computes if c.available]
    environments = [environment] if environment else list(governance.environments)
    settings = [_settings(chain, governance, engines, name, env) for env in environments for name in shown]
    default = _default(chain, governance)
    return Explanation(
        source.spec.metadata.name,
        source.kind,
        tuple(map(ChainLevel.of, chain)),
        tuple(computes),
        default,
        tuple(_transforms(source, governance, default, compute)),
        tuple(governance.environments),
        tuple(settings),
        _catalog(chain),
        _lineage(chain),
    )


def _where(doc: Document, path: JsonPath) -> Where:
    return Where(doc.spec.metadata.name, doc.label, doc.line_of(path), format_path(path))


def _computes(chain: Sequence[Document], governance: Governance) -> list[ComputeAvailability]:
    """Every compute the enterprise approves, with each level's decision about it."""
    root = chain[0].spec.compute
    assert root is not None and root.approved is not None  # governance checked it
    out = []
    for index, entry in enumerate(root.approved):
        decisions = [
            Decision(chain[0].spec.metadata.name, "approved", _where(chain[0], COMPUTE + ("approved", index)))
        ]
        alive = True
        for doc in chain[1:]:
            block = doc.spec.compute
            name = doc.spec.metadata.name
            if not alive:
                break
            if block is None or block.approved is None:
                decisions.append(Decision(name, "inherited", None))
                continue
            position = next((i for i, e in enumerate(block.approved) if e.name == entry.name), None)
            if position is None:
                decisions.append(Decision(name, "removed", _where(doc, COMPUTE + ("approved",))))
                alive = False
            else:
                decisions.append(Decision(name, "kept", _where(doc, COMPUTE + ("approved", position))))
        available = entry.name in governance.registry.approved
        out.append(ComputeAvailability(entry.name, entry.engine or entry.name, available, tuple(decisions)))
    return out


def _default(chain: Sequence[Document], governance: Governance) -> DefaultChoice:
    where = None
    for doc in chain:
        block = doc.spec.compute
        if block is not None and block.default is not None:
            where = _where(doc, COMPUTE + ("default",))
    assert where is not None  # the enterprise manifest names one
    return DefaultChoice(governance.registry.default, where)


def _transforms(
    source: Document, governance: Governance, default: DefaultChoice, only: str | None
) -> Iterator[TransformChoice]:
    if source.kind != "DataProduct":
        return
    for i, transform in enumerate(source.spec.transforms):  # type: ignore[union-attr]
        compute = transform.compute or default.compute
        if only is not None and compute != only:
            continue
        where = _where(source, ("transforms", i, "compute")) if transform.compute else default.where
        yield TransformChoice(
            transform.name or transform_name(transform.path),
            transform.path,
            compute,
            transform.compute is not None,
            compute in governance.registry.approved,
            where,
        )


def _settings(
    chain: Sequence[Document], governance: Governance, engines: EngineRegistry, name: str, environment: str
) -> ComputeSettings:
    """Each setting of compute ``name`` in ``environment``, from every write in the order governance
    applies them (:meth:`Policy.settings_writes <floe.governance.Policy.settings_writes>`); the last
    write wins. Each resource quantity, from every level's entry of the compute."""
    writes = [(o.doc, o.path, o.written) for o in governance.policy.settings_writes(environment, name)]
    resource_writes: list[tuple[Document, JsonPath, Any]] = []
    timeout_writes: list[tuple[Document, JsonPath, Any]] = []
    for doc in chain:
        block = doc.spec.compute
        for i, entry in enumerate(block.approved or () if block is not None else ()):
            if entry.name == name and entry.resources is not None:
                at = COMPUTE + ("approved", i, "resources")
                resource_writes.append((doc, at, doc.written_at(at)))
            if entry.name == name and entry.timeout is not None:
                timeout_writes.append((doc, COMPUTE + ("approved", i), {"timeout": entry.timeout}))
    compute = governance.compute_for(name, environment)
    settings = tuple(_values(writes, unstructure_secrets(dict(compute.config))))
    engine = engines.get(compute.engine)
    effective = engine.get_resource_requirements(compute) if engine is not None else {}
    resources = list(_values(resource_writes, effective, "resources."))
    written = {r.key for r in resources}
    for kind, values in effective.items():
        for resource, quantity in values.items():
            if f"resources.{kind}.{resource}" not in written:
                row = rule_for(COMPUTE + ("approved", 0, "resources", kind))
                resources.append(
                    SettingValue(
                        f"resources.{kind}.{resource}", quantity, None, (), row.rule.value if row else ""
                    )
                )
    if compute.timeout is not None:
        resources += _values(timeout_writes, {"timeout": compute.timeout.written})
    return ComputeSettings(name, environment, settings, tuple(resources))


def _values(
    writes: list[tuple[Document, JsonPath, Any]], effective: Mapping[str, Any], prefix: str = ""
) -> Iterator[SettingValue]:
    """Each leaf written by ``writes`` (document, path, what it writes there): its effective value,
    the write that set it and those it replaced."""
    by_key: dict[tuple[str, ...], list[tuple[Any, Where, JsonPath]]] = {}
    for doc, at, written in writes:
        for key, value in _leaves(written):
            by_key.setdefault(key, []).append((value, _where(doc, at + key), at + key))
    for key, found in by_key.items():
        value = node_at(effective, key)
        *replaced, (_, where, path) = found
        row = rule_for(path)
        yield SettingValue(
            prefix + ".".join(key),
            value,
            where,
            tuple(Write(v, w) for v, w, _ in replaced),
            row.rule.value if row else "",
        )


def _leaves(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, Mapping) and node and set(node) != {"secret_ref"}:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, str(key)))
    elif prefix:
        yield prefix, node


def _catalog(chain: Sequence[Document]) -> CatalogExplanation:
    declarer = catalog_declarer(chain)
    if declarer is None:
        return CatalogExplanation(None, ())
    spec = declarer.spec.catalog
    assert spec is not None
    fields = []
    for key, value in spec.written().items():
        shown = {"secret_ref": value.name} if isinstance(value, SecretReference) else value
        row = rule_for(("catalog", key))
        fields.append(
            SettingValue(
                f"catalog.{key}", shown, _where(declarer, ("catalog", key)), (), row.rule.value if row else ""
            )
        )
    return CatalogExplanation(_where(declarer, ("catalog",)), tuple(fields))


def _lineage(chain: Sequence[Document]) -> LineageExplanation:
    declarer = lineage_declarer(chain)
    if declarer is None:
        return LineageExplanation(None, ())
    spec = declarer.spec.lineage
    assert spec is not None
    written = spec.written()
    auth = written.pop("transport.auth", None)
    if auth is not None:
        written.update({"transport.auth.type": auth.type, "transport.auth.api_key": auth.api_key})
    fields = []
    for key, value in written.items():
        shown = {"secret_ref": value.name} if isinstance(value, SecretReference) else value
        path = ("lineage", *key.split("."))
        row = rule_for(path)
        fields.append(
            SettingValue(f"lineage.{key}", shown, _where(declarer, path), (), row.rule.value if row else "")
        )
    return LineageExplanation(_where(declarer, ("lineage",)), tuple(fields))
