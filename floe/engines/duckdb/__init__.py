"""The built-in DuckDB engine: dbt-duckdb profiles that never reach the network, and Iceberg REST.

DuckDB runs inside the dbt process, so "the compute" is a database file and a set of extensions.
Extensions come from their PyPI wheels (``duckdb-extension-<name>``): the profile lists the
absolute paths of the extension files in those wheels, dbt-duckdb installs each file into a
directory under the product's state directory and loads it, and DuckDB's own autoinstall and
autoload are switched off. A run therefore needs neither network access nor a writable home
directory.

Importing this module is cheap: duckdb, dbt and floe's schema machinery are imported inside the
methods that need them.

**Modules.** :mod:`~floe.engines.duckdb.settings` (what the settings mean, the extension files),
:mod:`~floe.engines.duckdb.engine` (the hooks), :mod:`~floe.engines.duckdb.errors` (error
translation), :mod:`~floe.engines.duckdb.run` (``floe run``); :mod:`floe.engines.duckdb_plugin` is
the dbt-duckdb plugin a run's profile names.
"""

from __future__ import annotations

from floe.engines.duckdb.engine import DuckDBEngine, plugin
from floe.engines.duckdb.settings import (
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    DEFAULT_SCHEMA,
    DEFAULT_THREADS,
    ENGINE,
    EXTENSIONS_DIR,
    KEYWORDS_NOT_NAMES,
    MEMORY_HEADROOM_GI,
    REQUIRED_EXTENSIONS,
    connect_config,
    cursor_settings,
    database_path,
    extension_directory,
    extension_files,
    ordered_extensions,
    set_statement,
    unquoted_name,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_REQUESTS",
    "DEFAULT_SCHEMA",
    "DEFAULT_THREADS",
    "ENGINE",
    "EXTENSIONS_DIR",
    "KEYWORDS_NOT_NAMES",
    "MEMORY_HEADROOM_GI",
    "REQUIRED_EXTENSIONS",
    "DuckDBEngine",
    "connect_config",
    "cursor_settings",
    "database_path",
    "extension_directory",
    "extension_files",
    "ordered_extensions",
    "plugin",
    "set_statement",
    "unquoted_name",
]
