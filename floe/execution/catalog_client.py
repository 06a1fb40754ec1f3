"""floe's own client of a run's catalog (bridges, ``floe run --show``, lineage, the namespace a
run creates), and the embedded catalog's token as this process knows it.

The embedded catalog of a run requires a per-run token (:mod:`floe.execution.catalog`); the engines
read it from their environment, floe's own clients in the run's process from :func:`served_token`,
which :class:`~floe.execution.catalog.RunCatalog` fills while the catalog serves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from floe.catalog.vending import MissingSecretError, pyiceberg_rest_properties
from floe.errors import FloeError, Problem
from floe.model import CatalogConfig

TOKEN_VARIABLE = "FLOE_CATALOG_TOKEN"
"""The environment variable that holds the embedded catalog's token in a run's workers."""

_SERVED: dict[str, str] = {}
_SERVED_LOCK = threading.Lock()


def served_token(uri: str | None) -> str | None:
    """The token of the embedded catalog this process's run serves at ``uri``, if any."""
    with _SERVED_LOCK:
        return _SERVED.get(uri or "")


def remember_token(uri: str, token: str) -> None:
    """The embedded catalog at ``uri`` serves with ``token`` (until :func:`forget_token`)."""
    with _SERVED_LOCK:
        _SERVED[uri] = token


def forget_token(uri: str | None) -> None:
    with _SERVED_LOCK:
        _SERVED.pop(uri or "", None)


def client(catalog: CatalogConfig, environ: Mapping[str, str] | None = None) -> Any:
    """A pyiceberg REST catalog client configured like the engines (secrets from the environment).

    The properties come from :func:`~floe.catalog.vending.pyiceberg_rest_properties`, the one
    translation of a :class:`~floe.model.CatalogConfig` for pyiceberg. The embedded catalog of a
    run in this process is reached with the run's token (:func:`served_token`).

    :raises FloeError: a secret the catalog references is not set (named, its value never shown),
        or the catalog is not a REST catalog with a uri.
    """
    from pyiceberg.catalog.rest import RestCatalog

    environ = os.environ if environ is None else environ
    token = (
        served_token(catalog.uri)
        if catalog.token is not None and catalog.token.name == TOKEN_VARIABLE
        else None
    )
    if (
        token is not None
    ):  # the embedded catalog this process's run serves: its token is here, not in the environment
        environ = {**environ, TOKEN_VARIABLE: token}
    try:
        properties = pyiceberg_rest_properties(catalog, environ)
    except MissingSecretError as exc:
        raise FloeError(
            [
                Problem(
                    f"catalog {catalog.name!r}: {exc}",
                    fix=f"set {exc.variable} in the environment floe runs in "
                    "(the manifest's catalog names it with secret_ref)",
                )
            ]
        ) from None
    except ValueError as exc:
        raise FloeError([Problem(str(exc), fix="declare a catalog with `type: rest` and a `uri`")]) from None
    return RestCatalog(catalog.name, **properties)
