"""The Snowflake engine: dbt-snowflake profiles, and checks made with the Snowflake connector.

Four ways to log in, the ones dbt-snowflake users actually use, chosen by ``method`` (or inferred
from the credential that is set):

- ``password``: ``user`` and ``password``;
- ``keypair``: ``user`` and an RSA key, from ``private_key_path`` or ``private_key`` (PEM or
  base64 DER), with an optional ``private_key_passphrase``;
- ``oauth``: an OAuth access ``token``;
- ``externalbrowser``: SSO through a browser for ``user``; no secret, interactive.

Every credential is a secret reference, written into the profile as ``{{ env_var('NAME') }}`` and
read from the environment only by :meth:`SnowflakeEngine.validate_connection`.

Importing this module is cheap: the connector, cryptography, dbt and floe's schema machinery are
imported inside the methods that need them.

**Modules.** :mod:`~floe.engines.snowflake.settings` (what the settings mean),
:mod:`~floe.engines.snowflake.keys` (the key pair's private key),
:mod:`~floe.engines.snowflake.engine` (the hooks), :mod:`~floe.engines.snowflake.validate` (the
connection check), :mod:`~floe.engines.snowflake.errors` (error translation),
:mod:`~floe.engines.snowflake.bridge` (tables carried in and out, imported only then).
"""

from __future__ import annotations

from floe.engines.snowflake.engine import SnowflakeEngine, plugin
from floe.engines.snowflake.keys import private_key_der
from floe.engines.snowflake.settings import (
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    ENGINE,
    METHODS,
    PIP_INSTALL,
    SECRET_KEYS,
    check_settings,
    endpoint,
    key_path,
    schema_lookup_sql,
    schema_name,
    sql_identifier,
    stored_name,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_REQUESTS",
    "ENGINE",
    "METHODS",
    "PIP_INSTALL",
    "SECRET_KEYS",
    "SnowflakeEngine",
    "check_settings",
    "endpoint",
    "key_path",
    "plugin",
    "private_key_der",
    "schema_lookup_sql",
    "schema_name",
    "sql_identifier",
    "stored_name",
]
