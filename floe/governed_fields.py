"""Narrow-only beyond the approved list: where data goes, where lineage goes, how much a compute
may use, which environments exist.

Each check reads the rule of its fields from :mod:`floe.inheritance` and the levels as typed values
(:attr:`Document.spec <floe.documents.Document.spec>`); documents only locate what it finds (file,
line, ``$.path``). Nothing here imports an engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from floe.diagnostics import JsonPath, did_you_mean
from floe.documents import Document
from floe.durations import parse_duration
from floe.errors import Problem
from floe.inheritance import MANIFEST, Rule, fields_with, leaf, rule_for
from floe.model import BuildTimeout, CatalogConfig, SecretReference
from floe.resources import QuantityError, parse_quantity
from floe.specs import CatalogSpec, LineageAuthSpec, LineageSpec, ResourceSpec

DEFAULT_ENVIRONMENT = "dev"
"""The one environment of a chain whose manifests declare none."""

_CATALOG_FIELDS = tuple(leaf(row) for row in fields_with(Rule.FIXED_BY_DECLARER, "catalog"))
_LINEAGE_FIELDS = frozenset(
    row.field.removeprefix("lineage.") for row in fields_with(Rule.FIXED_BY_DECLARER, "lineage")
)
_RESOURCE_KINDS = tuple(
    leaf(row) for row in fields_with(Rule.LOWER_ONLY, "plugins.compute.approved[].resources")
)
_SQL_SCHEME = re.compile(r"[a-z][a-z0-9]*(\+[a-z0-9_]+)?")


def level_name(doc: Document) -> str:
    return doc.spec.metadata.name


def where(doc: Document, path: JsonPath) -> str:
    """``file:line`` of ``path`` in ``doc``."""
    line = doc.line_of(path)
    return f"{doc.label}:{line}" if line is not None else doc.label


# -- the catalog --------------------------------------------------------------------------------------


def catalog_declarer(chain: Sequence[Document]) -> Document | None:
    """The manifest whose ``catalog:`` decides where the chain's data goes: the highest that declares one."""
    return next((doc for doc in chain if doc.spec.catalog is not None), None)


def effective_catalog(chain: Sequence[Document]) -> CatalogConfig | None:
    """The catalog every engine of the chain attaches to; ``None`` when no manifest declares one."""
    declarer = catalog_declarer(chain)
    if declarer is None:
        return None
    spec = declarer.spec.catalog
    assert spec is not None
    return CatalogConfig(**spec.written())


def _effective(spec: CatalogSpec, key: str) -> Any:
    value = getattr(spec, key)
    if value is None:
        default = attrs.fields_dict(CatalogConfig)[key].default
        return None if default is attrs.NOTHING else default
    return value


def _shown(value: Any) -> str:
    if isinstance(value, SecretReference):
        return f"{{secret_ref: {value.name}}}"
    if isinstance(value, LineageAuthSpec):
        return f"{{type: {value.type}, api_key: {_shown(value.api_key)}}}"
    return repr(value)


def check_catalogs(chain: Sequence[Document]) -> list[Problem]:
    """Every ``catalog:`` of the chain: well formed where it is written, and fixed by its declarer.

    The highest manifest that declares a catalog fixes every field of it (the rule of
    :data:`~floe.inheritance.FIELDS`); a lower manifest may repeat a field with the same value
    (so that copying the declaration is harmless) and nothing else: not another URI, warehouse,
    credential or delegation, and not a field the declarer left to its default.
    """
    problems: list[Problem] = []
    declarer: Document | None = None
    for doc in chain:
        spec = doc.spec.catalog
        if spec is None:
            continue
        if declarer is None:
            declarer = doc
            problems += _catalog_form(doc, spec, declared=True)
            continue
        problems += _catalog_form(doc, spec, declared=False)
        base = declarer.spec.catalog
        assert base is not None
        for key, value in spec.written().items():
            if key not in _CATALOG_FIELDS:
                continue
            fixed = _effective(base, key)
            if value == fixed:
                continue
            row = rule_for(("catalog", key))
            if getattr(base, key) is not None:
                said = f"{key} {_shown(fixed)}"
            else:
                said = f"no {key}" + (f" (default {_shown(fixed)})" if fixed is not None else "")
            problems.append(
                doc.problem(
                    ("catalog", key),
                    f"catalog.{key} is fixed by manifest {level_name(declarer)!r} ({where(declarer, ('catalog',))}), "
                    f"which declares the catalog with {said}; manifest {level_name(doc)!r} may not change "
                    f"{row.meaning if row else key}",
                    f"{key} {_shown(fixed)} as declared there, or no `{key}:` here (it is inherited)",
                    f"remove `{key}:` from this catalog; where data goes is decided in {declarer.label}, "
                    "by the platform team that declares the catalog",
                )
            )
    return problems


def _catalog_form(doc: Document, spec: CatalogSpec, declared: bool) -> list[Problem]:
    """A catalog's URIs are URIs, and the settings that go together are written together."""
    problems: list[Problem] = []
    if declared and spec.type == "rest" and spec.uri is None:
        problems.append(
            doc.problem(
                ("catalog",),
                "a REST catalog needs `uri:`, the endpoint engines attach to",
                "uri: the catalog's REST endpoint, e.g. https://polaris.example.com/api/catalog",
                "add `uri:` under catalog, or remove `catalog:` to use the embedded catalog",
            )
        )
    if spec.uri is not None:
        if spec.type == "rest":
            wrong = _http_url_problem(spec.uri)
            expected = (
                "an http:// or https:// URL of the REST catalog, e.g. https://polaris.example.com/api/catalog"
            )
        else:
            wrong = _sql_url_problem(spec.uri)
            expected = "a SQLAlchemy URL, e.g. sqlite:////srv/catalog.db or postgresql://host/db"
        if wrong:
            problems.append(
                doc.problem(
                    ("catalog", "uri"),
                    f"catalog uri {spec.uri!r} is not a URI: {wrong}",
                    expected,
                    "write the full URL, scheme first, without spaces",
                )
            )
    if spec.oauth2_server_uri is not None:
        wrong = _http_url_problem(spec.oauth2_server_uri)
        if wrong:
            problems.append(
                doc.problem(
                    ("catalog", "oauth2_server_uri"),
                    f"oauth2_server_uri {spec.oauth2_server_uri!r} is not a URI: {wrong}",
                    "the http(s) URL of the OAuth2 token endpoint",
                    "write the full URL, scheme first, without spaces",
                )
            )
    if declared and (spec.client_id is None) != (spec.client_secret is None):
        given, missing = (
            ("client_id", "client_secret") if spec.client_id is not None else ("client_secret", "client_id")
        )
        problems.append(
            doc.problem(
                ("catalog", given),
                f"catalog {given} is set without {missing}: engines "
                "authenticate to the catalog with the two together",
                f"{missing} as well",
                f"add `{missing}:` under catalog, or remove `{given}:`",
            )
        )
    return problems


def _http_url_problem(text: str) -> str | None:
    if any(c.isspace() for c in text):
        return "it contains a space"
    parts = urlsplit(text)
    if "://" not in text or not parts.scheme:
        return "it has no scheme (https://…)"
    if parts.scheme not in ("http", "https"):
        return f"its scheme {parts.scheme!r} is not http or https"
    if not parts.hostname:
        return "it names no host"
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        return "its port is not a number from 0 to 65535"
    return None


def _sql_url_problem(text: str) -> str | None:
    if any(c.isspace() for c in text):
        return "it contains a space"
    scheme, sep, _ = text.partition("://")
    if not sep or not _SQL_SCHEME.fullmatch(scheme):
        return "it does not start with a database scheme such as sqlite:// or postgresql://"
    return None


# -- lineage ------------------------------------------------------------------------------------------

LINEAGE_DEFAULTS: Mapping[str, Any] = {
    "transport.endpoint": "api/v1/lineage",
    "transport.timeout": 5.0,
    "transport.verify": True,
    "transport.append": False,
}
"""The OpenLineage client's defaults for the transport keys a manifest may leave out: a lower level
may repeat one of these when the declarer left it out (the same value), and nothing else."""

LINEAGE_TRANSPORT_KEYS: Mapping[str, tuple[str, ...]] = {
    "http": ("url", "endpoint", "timeout", "verify", "compression", "auth"),
    "file": ("log_file_path", "append"),
    "console": (),
}
"""The keys each transport type takes (``type`` aside), as the OpenLineage client's transports do."""
_LINEAGE_REQUIRED = {"http": "url", "file": "log_file_path"}


def lineage_declarer(chain: Sequence[Document]) -> Document | None:
    """The manifest whose ``lineage:`` decides where the chain's events go: the highest that declares one."""
    return next((doc for doc in chain if doc.spec.lineage is not None), None)


def effective_lineage(chain: Sequence[Document]) -> LineageSpec | None:
    """Where the chain's OpenLineage events go; ``None`` when no manifest declares it (the
    OpenLineage client's own environment decides then)."""
    declarer = lineage_declarer(chain)
    return None if declarer is None else declarer.spec.lineage


def check_lineage(chain: Sequence[Document]) -> list[Problem]:
    """Every ``lineage:`` of the chain: well formed where it is written, and fixed by its declarer.

    As for the catalog, the highest manifest that declares lineage fixes every field of it (the
    rule of :data:`~floe.inheritance.FIELDS`): a lower manifest may repeat a field with the same
    value, never send the events elsewhere, with another credential, or to no back end.
    """
    problems: list[Problem] = []
    declarer: Document | None = None
    for doc in chain:
        spec = doc.spec.lineage
        if spec is None:
            continue
        problems += _lineage_form(doc, spec, declared=declarer is None)
        if declarer is None:
            declarer = doc
            continue
        base = declarer.spec.lineage
        assert base is not None
        if not spec.written():
            problems.append(
                doc.problem(
                    ("lineage",),
                    f"an empty `lineage:` neither turns off nor replaces the lineage that manifest "
                    f"{level_name(declarer)!r} declares ({where(declarer, ('lineage',))}); manifest "
                    f"{level_name(doc)!r} may only repeat its fields with the same values",
                    "no `lineage:` here (it is inherited)",
                    f"remove `lineage:` from this manifest; where lineage goes is decided in {declarer.label}, by "
                    "the platform team that declares it (OPENLINEAGE_DISABLED=true turns it off for one run)",
                )
            )
            continue
        fixed_fields = base.written()
        takes = LINEAGE_TRANSPORT_KEYS.get(spec.transport.type, ()) if spec.transport is not None else ()
        for key, value in spec.written().items():
            if key not in _LINEAGE_FIELDS or key.removeprefix("transport.") not in (
                *takes,
                "type",
                "namespace",
            ):
                continue  # a key of another transport: refused above
            fixed = fixed_fields.get(key, LINEAGE_DEFAULTS.get(key))
            if value == fixed:
                continue
            row = rule_for(("lineage", *key.split(".")))
            said = (
                f"{key} {_shown(fixed)}"
                if key in fixed_fields
                else (f"no {key}" + (f" (default {_shown(fixed)})" if fixed is not None else ""))
            )
            leaf_name = key.rsplit(".", 1)[-1]
            problems.append(
                doc.problem(
                    ("lineage", *key.split(".")),
                    f"lineage.{key} is fixed by manifest {level_name(declarer)!r} ({where(declarer, ('lineage',))}), "
                    f"which declares lineage with {said}; manifest {level_name(doc)!r} may not change "
                    f"{row.meaning if row else key}",
                    f"{key} {_shown(fixed)} as declared there, or no `{leaf_name}:` here (it is inherited)"
                    if fixed is not None
                    else f"no `{leaf_name}:` here",
                    f"remove `{leaf_name}:` from this lineage block (or the whole block: it is inherited); where "
                    f"lineage goes is decided in {declarer.label}, by the platform team that declares it",
                )
            )
    return problems


def _lineage_form(doc: Document, spec: LineageSpec, declared: bool) -> list[Problem]:
    """A transport takes its own type's keys, the declared one all it needs, and its URL is a URL."""
    problems: list[Problem] = []
    transport = spec.transport
    if transport is None:
        if declared:
            problems.append(
                doc.problem(
                    ("lineage",),
                    "`lineage:` declares no transport: where should events go?",
                    "transport: {type: http, url: …}, {type: file, log_file_path: …} or {type: console}",
                    "add `transport:` under lineage",
                )
            )
        return problems
    takes = LINEAGE_TRANSPORT_KEYS.get(transport.type, ())
    for key in spec.written():
        name = key.removeprefix("transport.")
        if key.startswith("transport.") and name != "type" and name not in takes:
            problems.append(
                doc.problem(
                    ("lineage", "transport", name),
                    f"`{name}` is not a setting of the {transport.type} transport",
                    f"the {transport.type} transport's keys: " + (", ".join(takes) or "none besides type"),
                    f"remove `{name}:`, or use the transport it belongs to",
                )
            )
    required = _LINEAGE_REQUIRED.get(transport.type)
    if declared and required is not None and getattr(transport, required) is None:
        example = "https://marquez.example.com" if required == "url" else "/var/log/floe/lineage.jsonl"
        problems.append(
            doc.problem(
                ("lineage", "transport"),
                f"the {transport.type} transport needs `{required}:`",
                f"{required}: e.g. {example}",
                f"add `{required}:` under lineage.transport",
            )
        )
    if transport.url is not None:
        wrong = _http_url_problem(transport.url)
        if wrong:
            problems.append(
                doc.problem(
                    ("lineage", "transport", "url"),
                    f"lineage url {transport.url!r} is not a URL: {wrong}",
                    "the http(s) URL of the lineage back end, e.g. https://marquez.example.com",
                    "write the full URL, scheme first, without spaces",
                )
            )
    return problems


# -- resources ----------------------------------------------------------------------------------------


@attrs.frozen
class Quantity:
    """A resource quantity one level wrote, with where."""

    value: str
    doc: Document
    path: JsonPath


def check_resources(
    doc: Document,
    path: JsonPath,
    name: str,
    written: ResourceSpec | None,
    inherited: Mapping[str, Mapping[str, Quantity]],
) -> list[Problem]:
    """A level may only lower the requests and limits its ancestors set for compute ``name``.

    ``inherited`` holds, by kind (``requests``/``limits``) and resource, the quantity the nearest
    ancestor wrote. Quantities are compared by value: ``500m`` is below ``1``, ``1Gi`` above ``1G``.
    A resource no ancestor set may be set freely (the engine's default applied until then).
    """
    problems: list[Problem] = []
    if written is None:
        return problems
    for kind in _RESOURCE_KINDS:
        for resource, value in (getattr(written, kind) or {}).items():
            before = inherited.get(kind, {}).get(resource)
            if before is None:
                continue
            try:
                wider = parse_quantity(value) > parse_quantity(before.value)
            except QuantityError:  # the schema refused it already
                continue
            if wider:
                at = path + ("resources", kind, resource)
                problems.append(
                    doc.problem(
                        at,
                        f"compute {name!r}: {kind}.{resource} {value} is above the {before.value} that manifest "
                        f"{level_name(before.doc)!r} allows ({where(before.doc, before.path)}); a lower level may only "
                        f"lower {kind}",
                        f"at most {before.value}",
                        f"write a {kind[:-1]} of at most {before.value}, or ask the platform team to raise it in "
                        f"{before.doc.label}",
                    )
                )
    return problems


def merge_resources(
    doc: Document,
    path: JsonPath,
    written: ResourceSpec | None,
    inherited: Mapping[str, Mapping[str, Quantity]],
) -> dict[str, dict[str, Quantity]]:
    """The quantities of compute entry ``path`` of ``doc`` for the levels below: the ``inherited``
    ones, with those this level writes in their place (:func:`check_resources` says whether
    each is lower)."""
    resources = {kind: dict(values) for kind, values in inherited.items()}
    for kind in _RESOURCE_KINDS if written is not None else ():
        for resource, value in (getattr(written, kind) or {}).items():
            resources.setdefault(kind, {})[resource] = Quantity(
                value, doc, path + ("resources", kind, resource)
            )
    return resources


def narrow_timeout(
    doc: Document, path: JsonPath, name: str, written: str | None, inherited: Quantity | None
) -> tuple[Quantity | None, list[Problem]]:
    """The build timeout of compute entry ``path`` of ``doc`` for the levels below, and the problem
    when it is above the one an ancestor set (a lower level may only lower it)."""
    if written is None:
        return inherited, []
    mine = Quantity(written, doc, path + ("timeout",))
    if inherited is None or parse_duration(written) <= parse_duration(inherited.value):
        return mine, []
    problem = doc.problem(
        mine.path,
        f"compute {name!r}: timeout {written} is above the {inherited.value} that {level_label(inherited.doc)} "
        f"allows ({where(inherited.doc, inherited.path)}); a lower level may only lower a timeout",
        f"at most {inherited.value}",
        f"write a timeout of at most {inherited.value}, remove it, or ask the platform team to raise it in "
        f"{inherited.doc.label}",
    )
    return inherited, [problem]


def level_label(doc: Document) -> str:
    """``manifest 'NAME'`` or ``data product 'NAME'``."""
    kind = "manifest" if doc.spec.kind == MANIFEST else "data product"
    return f"{kind} {level_name(doc)!r}"


def build_timeout(timeout: Quantity | None) -> BuildTimeout | None:
    """The run's view of a compute's build timeout: its seconds and where it was set."""
    if timeout is None:
        return None
    set_at = f"{level_label(timeout.doc)} ({where(timeout.doc, timeout.path)})"
    return BuildTimeout(parse_duration(timeout.value), timeout.value, set_at)


# -- environments -------------------------------------------------------------------------------------


def declared_environments(chain: Sequence[Document]) -> dict[str, Document]:
    """The environments the chain's manifests declare, each with the first manifest declaring it."""
    declared: dict[str, Document] = {}
    for doc in chain:
        if doc.kind == MANIFEST:
            for env in doc.spec.environments or ():
                declared.setdefault(env.name, doc)
    return declared


def check_environment_names(chain: Sequence[Document]) -> list[Problem]:
    """A data product may only name environments its manifests declare (it cannot create one)."""
    declared = list(declared_environments(chain)) or [DEFAULT_ENVIRONMENT]
    problems: list[Problem] = []
    for doc in chain:
        if doc.kind == MANIFEST:
            continue
        for i, env in enumerate(doc.spec.environments or ()):
            if env.name in declared:
                continue
            guess = did_you_mean(env.name, declared)
            manifests = ", ".join(level_name(d) for d in chain if d.kind == MANIFEST)
            problems.append(
                doc.problem(
                    ("environments", i, "name"),
                    f"environment {env.name!r} is not declared by the platform (manifests {manifests} declare "
                    f"{', '.join(declared)}); a data product may only set overrides for declared environments",
                    "one of " + ", ".join(declared),
                    f"did you mean {guess!r}?"
                    if guess
                    else "use a declared environment, or ask the platform team to declare this one in a manifest",
                )
            )
    return problems
