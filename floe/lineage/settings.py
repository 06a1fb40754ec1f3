"""Whether a run sends OpenLineage events, and the client that sends them.

As for ``dbt-ol``, the OpenLineage client's own configuration decides, read by the client itself:
``OPENLINEAGE_URL`` (with ``OPENLINEAGE_API_KEY``, ``OPENLINEAGE_ENDPOINT``), ``OPENLINEAGE_CONFIG``
or an ``openlineage.yml`` in the working directory or ``~/.openlineage/``, ``OPENLINEAGE__…``
variables; ``OPENLINEAGE_DISABLED=true`` turns it off. With none of these, a run sends nothing
(the client's fallback to printing events on the console is not taken: a run's output is its
own). ``OPENLINEAGE_NAMESPACE`` names the jobs' namespace (default ``default``, as for dbt-ol).
``FLOE_LINEAGE_TIMEOUT`` bounds, in seconds, how long the end of a run waits for events still
being delivered (default 10).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

DEFAULT_NAMESPACE = "default"
DEFAULT_TIMEOUT = 10.0


@attrs.frozen
class LineageSettings:
    enabled: bool
    namespace: str = DEFAULT_NAMESPACE
    timeout: float = DEFAULT_TIMEOUT
    why: str = ""
    """Where the configuration came from (for messages)."""


def settings(environ: Mapping[str, str], cwd: Path | None = None, home: Path | None = None) -> LineageSettings:
    """The lineage settings of a run in ``environ``; see the module docstring."""
    namespace = environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE
    try:
        timeout = max(0.0, float(environ.get("FLOE_LINEAGE_TIMEOUT") or DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return LineageSettings(False, namespace, timeout, "OPENLINEAGE_DISABLED=true")
    for variable in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        if environ.get(variable):
            return LineageSettings(True, namespace, timeout, variable)
    if any(key.startswith("OPENLINEAGE__TRANSPORT") for key in environ):
        return LineageSettings(True, namespace, timeout, "OPENLINEAGE__TRANSPORT variables")
    for folder in (cwd or Path.cwd(), (home or Path.home()) / ".openlineage"):
        if (folder / "openlineage.yml").is_file():
            return LineageSettings(True, namespace, timeout, str(folder / "openlineage.yml"))
    return LineageSettings(False, namespace, timeout, "no OpenLineage configuration")


def make_client() -> Any:
    """The OpenLineage client, configured from the environment by the client itself.

    The client copies ``OPENLINEAGE_URL`` and friends into ``OPENLINEAGE__TRANSPORT__…`` variables
    of this process as it starts; they are removed again, so the next run (a test, a notebook)
    reads only what the user set.
    """
    from openlineage.client import OpenLineageClient

    before = dict(os.environ)
    try:
        return OpenLineageClient()
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
    return kind
