"""Storage credentials an Iceberg REST catalog vends, for floe's own pyiceberg reads.

With ``X-Iceberg-Access-Delegation: vended-credentials`` a REST catalog answers ``loadTable`` with
short-lived storage credentials scoped to the table (``s3.access-key-id``, ``s3.secret-access-key``,
``s3.session-token``) and when they expire (``s3.session-token-expires-at-ms``).

- DuckDB's iceberg extension (1.5.5) renews them by itself: it keeps each table's credentials in a
  temporary S3 secret that knows how to reload the table, and when storage refuses a request
  (HTTP 403) it loads the table again from the catalog and retries with the new credentials.
- pyiceberg does not: a loaded :class:`~pyiceberg.table.Table` keeps the credentials it was loaded
  with, and once they expire every read fails (``ACCESS_DENIED``). :class:`VendedTable` holds a
  table and loads it again from the catalog *before* its credentials expire, the way DuckDB's
  OAuth2 tokens are renewed: half the lifetime early, at most ``max_margin`` seconds early.

:func:`pyiceberg_rest_properties` turns floe's :class:`~floe.model.CatalogConfig` into pyiceberg
``RestCatalog`` properties, with the secrets read from the environment at the last moment.

Importing this module imports neither pyiceberg nor floe's model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from floe.model import CatalogConfig, SecretReference

ACCESS_DELEGATION_HEADER = "X-Iceberg-Access-Delegation"
"""The request header that asks a REST catalog for vended credentials (or remote signing)."""
VENDED_CREDENTIALS = "vended-credentials"

_EXPIRY_KEYS = ("s3.session-token-expires-at-ms", "gcs.oauth2.token-expires-at")
_EXPIRY_PREFIXES = ("adls.sas-token-expires-at-ms.",)  # one per storage account
DEFAULT_MAX_MARGIN = 30.0
"""Seconds before expiry a table is reloaded at most (less for lifetimes under a minute)."""


def credential_expiry(properties: Mapping[str, str]) -> float | None:
    """When the earliest vended storage credential in ``properties`` expires (epoch seconds).

    ``properties`` are a loaded table's FileIO properties (``table.io.properties``) or the
    ``config`` of a ``loadTable`` answer. ``None`` when no credential says when it expires; an
    expiry that is not a number of milliseconds is ignored.
    """
    found: list[float] = []
    for key, value in properties.items():
        if key in _EXPIRY_KEYS or key.startswith(_EXPIRY_PREFIXES):
            try:
                found.append(int(str(value).strip()) / 1000)
            except ValueError:
                continue
    return min(found) if found else None


def refresh_margin(lifetime: float, max_margin: float = DEFAULT_MAX_MARGIN) -> float:
    """How long before expiry to renew credentials valid for ``lifetime`` seconds.

    Half the lifetime, at most ``max_margin``: credentials valid for an hour are renewed 30 s
    before they expire, credentials valid for 20 s after 10 s.
    """
    return max(0.0, min(max_margin, lifetime / 2))


class VendedTable:
    """An Iceberg table loaded with vended credentials, loaded again before they expire.

    ::

        orders = VendedTable(catalog, "shop.orders")
        orders.table().scan().to_arrow()   # loads the table on first use
        ...                                # an hour later:
        orders.table().scan().to_arrow()   # loaded again: new credentials, never the stale ones

    Each :meth:`table` call returns the current table; it is loaded again when its credentials are
    within the refresh margin of their expiry (or past it). A table whose credentials carry no
    expiry is loaded once. Safe to share between threads. A scan that outlasts the credentials it
    started with still fails: call :meth:`table` for each read.
    """

    def __init__(
        self,
        catalog: Catalog,
        identifier: str | tuple[str, ...],
        *,
        max_margin: float = DEFAULT_MAX_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self.identifier = identifier
        self._max_margin = max_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._table: Table | None = None
        self._expires_at: float | None = None
        self._refresh_at: float | None = None
        self.loads = 0
        """How many times the table was loaded from the catalog."""

    @property
    def expires_at(self) -> float | None:
        """When the current table's credentials expire (epoch seconds), if they say so."""
        return self._expires_at

    @property
    def refresh_at(self) -> float | None:
        """When :meth:`table` loads the table again (epoch seconds), if ever."""
        return self._refresh_at

    def table(self) -> Table:
        """The table, loaded again first when its credentials are about to expire."""
        with self._lock:
            if self._table is None or (self._refresh_at is not None and self._clock() >= self._refresh_at):
                self._load()
            assert self._table is not None
            return self._table

    def reload(self) -> Table:
        """Load the table from the catalog now (new metadata and new credentials)."""
        with self._lock:
            self._load()
            assert self._table is not None
            return self._table

    def _load(self) -> None:
        loaded_at = self._clock()
        table = self._catalog.load_table(self.identifier)
        expires_at = credential_expiry(table.io.properties)
        self._table = table
        self._expires_at = expires_at
        self._refresh_at = (
            None
            if expires_at is None
            else expires_at - refresh_margin(expires_at - loaded_at, self._max_margin)
        )
        self.loads += 1

    def __repr__(self) -> str:
        return f"VendedTable({self.identifier!r}, loads={self.loads}, expires_at={self._expires_at})"


def pyiceberg_rest_properties(catalog: CatalogConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """Properties for pyiceberg's ``RestCatalog(catalog.name, **properties)``.

    ``uri``, ``warehouse``; ``credential`` (``client_id:client_secret``) with
    ``oauth2-server-uri`` (``<uri>/v1/oauth/tokens`` unless the catalog names one, as in floe's
    DuckDB attachment) or ``token``; and, with ``access_delegation:
    vended-credentials``, the ``X-Iceberg-Access-Delegation`` header on every request. Secret values
    come from ``environ``. (Without a credential or token, pyiceberg 0.12 sends
    ``Authorization: Bearer None``, which a catalog that checks authentication refuses.)

    :raises MissingSecretError: a referenced secret is not set (the message names the variable,
        never a value).
    :raises ValueError: the catalog is not a REST catalog with a uri.
    """
    if catalog.type != "rest" or not catalog.uri:
        raise ValueError(f"catalog {catalog.name!r} is not a REST catalog with a uri")
    properties = {"uri": catalog.uri}
    if catalog.warehouse:
        properties["warehouse"] = catalog.warehouse
    if catalog.client_id is not None and catalog.client_secret is not None:
        secret = _value(catalog.client_secret, environ)
        properties["credential"] = f"{catalog.client_id}:{secret}"
        # the token endpoint DuckDB uses too (floe's attachment SQL sets ENDPOINT to the uri)
        properties["oauth2-server-uri"] = (
            catalog.oauth2_server_uri or f"{catalog.uri.rstrip('/')}/v1/oauth/tokens"
        )
    elif catalog.token is not None:
        properties["token"] = _value(catalog.token, environ)
    if catalog.access_delegation == VENDED_CREDENTIALS:
        properties[f"header.{ACCESS_DELEGATION_HEADER}"] = VENDED_CREDENTIALS
    return properties


class MissingSecretError(ValueError):
    """A secret the catalog references is not set in the environment; :attr:`variable` names it."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"the secret environment variable {variable} is not set")
        self.variable = variable


def _value(ref: SecretReference, environ: Mapping[str, str]) -> str:
    value = environ.get(ref.name)
    if not value:
        raise MissingSecretError(ref.name)
    return value
