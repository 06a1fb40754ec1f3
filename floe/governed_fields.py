"""Narrow-only beyond the approved list: where data goes, how much a compute may use, which
environments exist.

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
from floe.errors import Problem
from floe.inheritance import MANIFEST, Rule, fields_with, leaf, rule_for
from floe.model import CatalogConfig, SecretReference
from floe.resources import QuantityError, parse_quantity
from floe.specs import CatalogSpec, ResourceSpec

DEFAULT_ENVIRONMENT = "dev"
"""The one environment of a chain whose manifests declare none."""

_CATALOG_FIELDS = tuple(leaf(row) for row in fields_with(Rule.FIXED_BY_DECLARER, "catalog"))
_RESOURCE_KINDS = tuple(leaf(row) for row in fields_with(Rule.LOWER_ONLY, "plugins.compute.approved[].resources"))
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
            problems.append(doc.problem(
                ("catalog", key),
                f"catalog.{key} is fixed by manifest {level_name(declarer)!r} ({where(declarer, ('catalog',))}), "
                f"which declares the catalog with {said}; manifest {level_name(doc)!r} may not change "
                f"{row.meaning if row else key}",
                f"{key} {_shown(fixed)} as declared there, or no `{key}:` here (it is inherited)",
                f"remove `{key}:` from this catalog; where data goes is decided in {declarer.label}, "
                "by the platform team that declares the catalog",
            ))  # fmt: skip
    return problems


def _catalog_form(doc: Document, spec: CatalogSpec, declared: bool) -> list[Problem]:
    """A catalog's URIs are URIs, and the settings that go together are written together."""
    problems: list[Problem] = []
    if declared and spec.type == "rest" and spec.uri is None:
        problems.append(doc.problem(("catalog",), "a REST catalog needs `uri:`, the endpoint engines attach to",
                                    "uri: the catalog's REST endpoint, e.g. https://polaris.example.com/api/catalog",
                                    "add `uri:` under catalog, or remove `catalog:` to use the embedded catalog"))  # fmt: skip
    if spec.uri is not None:
        if spec.type == "rest":
            wrong = _http_url_problem(spec.uri)
            expected = "an http:// or https:// URL of the REST catalog, e.g. https://polaris.example.com/api/catalog"
        else:
            wrong = _sql_url_problem(spec.uri)
            expected = "a SQLAlchemy URL, e.g. sqlite:////srv/catalog.db or postgresql://host/db"
        if wrong:
            problems.append(doc.problem(("catalog", "uri"), f"catalog uri {spec.uri!r} is not a URI: {wrong}",
                                        expected, "write the full URL, scheme first, without spaces"))  # fmt: skip
    if spec.oauth2_server_uri is not None:
        wrong = _http_url_problem(spec.oauth2_server_uri)
        if wrong:
            problems.append(doc.problem(("catalog", "oauth2_server_uri"),
                                        f"oauth2_server_uri {spec.oauth2_server_uri!r} is not a URI: {wrong}",
                                        "the http(s) URL of the OAuth2 token endpoint",
                                        "write the full URL, scheme first, without spaces"))  # fmt: skip
    if declared and (spec.client_id is None) != (spec.client_secret is None):
        given, missing = ("client_id", "client_secret") if spec.client_id is not None else ("client_secret", "client_id")
        problems.append(doc.problem(("catalog", given), f"catalog {given} is set without {missing}: engines "
                                    "authenticate to the catalog with the two together",
                                    f"{missing} as well", f"add `{missing}:` under catalog, or remove `{given}:`"))  # fmt: skip
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


# -- resources ----------------------------------------------------------------------------------------


@attrs.frozen
class Quantity:
    """A resource quantity one level wrote, with where."""

    value: str
    doc: Document
    path: JsonPath


def check_resources(doc: Document, path: JsonPath, name: str, written: ResourceSpec | None,
                    inherited: Mapping[str, Mapping[str, Quantity]]) -> list[Problem]:  # fmt: skip
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
                problems.append(doc.problem(
                    at, f"compute {name!r}: {kind}.{resource} {value} is above the {before.value} that manifest "
                    f"{level_name(before.doc)!r} allows ({where(before.doc, before.path)}); a lower level may only "
                    f"lower {kind}",
                    f"at most {before.value}",
                    f"write a {kind[:-1]} of at most {before.value}, or ask the platform team to raise it in "
                    f"{before.doc.label}",
                ))  # fmt: skip
    return problems


def merge_resources(doc: Document, path: JsonPath, written: ResourceSpec | None,
                    inherited: Mapping[str, Mapping[str, Quantity]]) -> dict[str, dict[str, Quantity]]:  # fmt: skip
    """The quantities of compute entry ``path`` of ``doc`` for the levels below: the ``inherited``
    ones, with those this level writes in their place (:func:`check_resources` says whether
    each is lower)."""
    resources = {kind: dict(values) for kind, values in inherited.items()}
    for kind in _RESOURCE_KINDS if written is not None else ():
        for resource, value in (getattr(written, kind) or {}).items():
            resources.setdefault(kind, {})[resource] = Quantity(value, doc, path + ("resources", kind, resource))
    return resources


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
            problems.append(doc.problem(
                ("environments", i, "name"),
                f"environment {env.name!r} is not declared by the platform (manifests {manifests} declare "
                f"{', '.join(declared)}); a data product may only set overrides for declared environments",
                "one of " + ", ".join(declared),
                f"did you mean {guess!r}?" if guess else
                "use a declared environment, or ask the platform team to declare this one in a manifest",
            ))  # fmt: skip
    return problems
