"""Whether a run sends OpenLineage events, and the client that sends them.

As for ``dbt-ol``, the OpenLineage client's own configuration decides, read by the client itself:
``OPENLINEAGE_URL`` (with ``OPENLINEAGE_API_KEY``, ``OPENLINEAGE_ENDPOINT``), ``OPENLINEAGE_CONFIG``
or an ``openlineage.yml`` in the working directory or ``~/.openlineage/``, ``OPENLINEAGE__…``
variables; ``OPENLINEAGE_DISABLED=true`` turns it off. With none of these, a run sends nothing
(the client's fallback to printing events on the console is not taken: a run's output is its
own). ``OPENLINEAGE_NAMESPACE`` names the jobs' namespace (default ``default``, as for dbt-ol).
``FLOE_LINEAGE_TIMEOUT`` bounds, in seconds, how long the end of a run waits for events still
being delivered (default 10).

The enterprise (or a domain) manifest may instead fix where every product's events go, with
``lineage:`` (governed as the catalog is: :func:`floe.governed_fields.check_lineage`). Its
transport keys are the client's own, so :func:`transport_config` maps them one to one; its API
key is a secret reference, read from the environment when the run starts and never written
anywhere. A manifest's ``lineage:`` takes precedence over ``OPENLINEAGE_URL``,
``OPENLINEAGE_CONFIG``, ``openlineage.yml`` and ``OPENLINEAGE__…`` (the platform team decides
where lineage goes, not each shell), and its ``namespace`` over ``OPENLINEAGE_NAMESPACE``.
``OPENLINEAGE_DISABLED=true`` still turns emission off: it is the client's own switch, honoured
by every OpenLineage integration, and a run that sends nothing sends nowhere else either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from floe.specs import LineageSpec

DEFAULT_NAMESPACE = "default"
DEFAULT_TIMEOUT = 10.0


@attrs.frozen
class LineageSettings:
    enabled: bool
    namespace: str = DEFAULT_NAMESPACE
    timeout: float = DEFAULT_TIMEOUT
    why: str = ""
    """Where the configuration came from (for messages)."""
    manifest: LineageSpec | None = None
    """The governing manifests' ``lineage:``, when they declare one (it decides the transport)."""


def settings(
    environ: Mapping[str, str],
    cwd: Path | None = None,
    home: Path | None = None,
    manifest: LineageSpec | None = None,
    declared_at: str | None = None,
) -> LineageSettings:
    """The lineage settings of a run in ``environ`` under the governing manifests' ``lineage:``
    (``manifest``, declared at ``declared_at``); see the module docstring."""
    namespace = environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE
    if manifest is not None and manifest.namespace is not None:
        namespace = manifest.namespace
    try:
        timeout = max(0.0, float(environ.get("FLOE_LINEAGE_TIMEOUT") or DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return LineageSettings(False, namespace, timeout, "OPENLINEAGE_DISABLED=true")
    if manifest is not None:
        return LineageSettings(
            True, namespace, timeout, f"lineage of {declared_at or 'the manifest'}", manifest
        )
    for variable in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        if environ.get(variable):
            return LineageSettings(True, namespace, timeout, variable)
    if any(key.startswith("OPENLINEAGE__TRANSPORT") for key in environ):
        return LineageSettings(True, namespace, timeout, "OPENLINEAGE__TRANSPORT variables")
    for folder in (cwd or Path.cwd(), (home or Path.home()) / ".openlineage"):
        if (folder / "openlineage.yml").is_file():
            return LineageSettings(True, namespace, timeout, str(folder / "openlineage.yml"))
    return LineageSettings(False, namespace, timeout, "no OpenLineage configuration")


class LineageSecretMissing(Exception):
    """The manifest's lineage credential names a variable the run's environment does not set."""


def transport_config(manifest: LineageSpec, environ: Mapping[str, str]) -> dict[str, Any]:
    """The OpenLineage client's transport configuration for a manifest's ``lineage.transport``:
    the keys written, as written (they are the client's), with the API key's reference resolved
    from ``environ``.

    :raises LineageSecretMissing: the referenced variable is not set.
    """
    transport = manifest.transport
    assert transport is not None, "governance refuses a declared lineage without a transport"
    config: dict[str, Any] = {}
    for field in attrs.fields(type(transport)):
        value = getattr(transport, field.name)
        if value is None:
            continue
        if field.name == "auth":
            name = value.api_key.name
            if not environ.get(name):
                raise LineageSecretMissing(
                    f"the secret {name} (lineage.transport.auth.api_key) is not set in the environment"
                )
            value = {"type": value.type, "api_key": environ[name]}
        config[field.name] = value
    return config


def secret_names(manifest: LineageSpec | None) -> list[str]:
    """The variables a manifest's ``lineage:`` reads its secrets from."""
    return [ref.name for ref in manifest.secrets()] if manifest is not None else []


def make_client(manifest: LineageSpec | None = None, environ: Mapping[str, str] | None = None) -> Any:
    """The OpenLineage client: with the transport a manifest's ``lineage:`` fixes (made by the
    client's own transport factory from :func:`transport_config`), else configured from the
    environment by the client itself.

    The client copies ``OPENLINEAGE_URL`` and friends into ``OPENLINEAGE__TRANSPORT__…`` variables
    of this process as it starts; they are removed again, so the next run (a test, a notebook)
    reads only what the user set.

    :raises LineageSecretMissing: the manifest's API key variable is not set.
    """
    from openlineage.client import OpenLineageClient

    transport = None
    if manifest is not None:
        from openlineage.client.transport import get_default_factory

        transport = get_default_factory().create(
            transport_config(manifest, os.environ if environ is None else environ)
        )
    before = dict(os.environ)
    try:
        return OpenLineageClient(transport=transport)
    finally:
        for key in [k for k in os.environ if k not in before]:
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def describe(client: Any) -> str:
    """The client's transport, for messages (``http http://host:port``), never with credentials."""
    transport = getattr(client, "transport", None)
    kind = str(getattr(transport, "kind", None) or type(transport).__name__)
    url = getattr(transport, "url", None)
    if isinstance(url, str):
        from floe.lineage.naming import catalog_namespace

        return f"{kind} {catalog_namespace(url)}"
    path = getattr(getattr(transport, "config", None), "log_file_path", None)
    if isinstance(path, str):
        return f"{kind} {path}"
    return kind
